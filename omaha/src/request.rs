//! The request a machine POSTs: written as update_engine writes it (`omaha_request_action.cc`
//! `GetRequestXml`: protocol 3.0, the braced CoreOS appid, `track` = GROUP, `machineid`,
//! braced `bootid`, OEM and aleph versions, `<ping>`, `<updatecheck>`, events), and read as
//! Nebraska reads it, so our server takes update_engine's requests and ours alike.

use crate::codes::{EventResult, EventType};
use crate::xml::{self, escape, Element, XmlError};

/// CoreOS's application id, as update_engine sends it (braced).
pub const COREOS_APP_ID: &str = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}";

/// `installsource`: a scheduled check, or one a person asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InstallSource {
    #[default]
    Scheduler,
    OnDemand,
}

impl InstallSource {
    fn as_str(self) -> &'static str {
        match self {
            InstallSource::Scheduler => "scheduler",
            InstallSource::OnDemand => "ondemandupdate",
        }
    }
}

/// One `<event>`: its error code is sent only when the result is not a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    pub result: EventResult,
    pub error_code: Option<u32>,
    /// Sent with 3/2 (and Flatcar's 3/0 44): the version the machine ran before.
    pub previous_version: Option<String>,
}

impl Event {
    pub fn new(kind: EventType, result: EventResult) -> Event {
        Event {
            kind,
            result,
            error_code: None,
            previous_version: None,
        }
    }
}

/// The `<app>` attributes: who the machine is and what it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub app_id: String,
    pub version: String,
    /// GROUP: the release channel.
    pub track: String,
    pub board: String,
    /// `{` + `/proc/sys/kernel/random/boot_id` + `}`.
    pub boot_id: String,
    /// `/etc/machine-id`, no braces.
    pub machine_id: String,
    pub oem: String,
    pub oem_version: String,
    /// The version the machine was first installed with.
    pub aleph_version: String,
    pub lang: String,
}

impl Default for App {
    fn default() -> App {
        App {
            app_id: COREOS_APP_ID.into(),
            version: String::new(),
            track: "stable".into(),
            board: "amd64-usr".into(),
            boot_id: String::new(),
            machine_id: String::new(),
            oem: String::new(),
            oem_version: String::new(),
            aleph_version: String::new(),
            lang: "en-US".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The `version`/`updaterversion` of `<request>`: the client's name and version.
    pub updater: String,
    pub install_source: InstallSource,
    /// `<os sp=…>`: `<version>_<machine>`.
    pub os_sp: String,
    pub app: App,
    pub ping: bool,
    pub update_check: bool,
    pub events: Vec<Event>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error("not an Omaha request: the root element is <{0}>, not <request>")]
    NotARequest(String),
    #[error("the request's protocol is {0:?}; only 3.0 is spoken")]
    Protocol(String),
    #[error("the request has no <app>")]
    NoApp,
    #[error("the request's <app> has no appid")]
    NoAppId,
    #[error("<event> attribute {attr}={value:?} is not a number")]
    BadEvent { attr: &'static str, value: String },
}

impl Request {
    /// An update check for `app`: ping, updatecheck, and `events` (the 3/2 after an update).
    pub fn update_check(updater: &str, app: App, events: Vec<Event>) -> Request {
        Request {
            updater: updater.into(),
            install_source: InstallSource::Scheduler,
            os_sp: format!("{}_{}", app.version, std::env::consts::ARCH),
            app,
            ping: true,
            update_check: true,
            events,
        }
    }

    /// A request carrying only `event` (13/1, 14/1, 3/1, 3/0).
    pub fn event(updater: &str, app: App, event: Event) -> Request {
        Request {
            ping: false,
            update_check: false,
            ..Request::update_check(updater, app, vec![event])
        }
    }

    /// The body as update_engine lays it out.
    pub fn to_xml(&self) -> String {
        let a = &self.app;
        let mut out = String::with_capacity(1024);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str(&format!(
            "<request protocol=\"3.0\" version=\"{u}\" updaterversion=\"{u}\" installsource=\"{}\" ismachine=\"1\">\n",
            self.install_source.as_str(),
            u = escape(&self.updater),
        ));
        out.push_str(&format!(
            "    <os version=\"Chateau\" platform=\"CoreOS\" sp=\"{}\"></os>\n",
            escape(&self.os_sp)
        ));
        out.push_str(&format!(
            "    <app appid=\"{}\" version=\"{}\" track=\"{}\" bootid=\"{}\" oem=\"{}\" oemversion=\"{}\" alephversion=\"{}\" machineid=\"{}\" lang=\"{}\" board=\"{}\" hardware_class=\"\" delta_okay=\"false\" >\n",
            escape(&a.app_id),
            escape(&a.version),
            escape(&a.track),
            escape(&a.boot_id),
            escape(&a.oem),
            escape(&a.oem_version),
            escape(&a.aleph_version),
            escape(&a.machine_id),
            escape(&a.lang),
            escape(&a.board),
        ));
        if self.ping {
            out.push_str("        <ping active=\"1\"></ping>\n");
        }
        if self.update_check {
            out.push_str("        <updatecheck></updatecheck>\n");
        }
        for e in &self.events {
            out.push_str(&format!(
                "        <event eventtype=\"{}\" eventresult=\"{}\"",
                e.kind.code(),
                e.result.code()
            ));
            if let Some(code) = e.error_code.filter(|_| e.result != EventResult::Success) {
                out.push_str(&format!(" errorcode=\"{code}\""));
            }
            if let Some(prev) = &e.previous_version {
                out.push_str(&format!(" previousversion=\"{}\"", escape(prev)));
            }
            out.push_str("></event>\n");
        }
        out.push_str("    </app>\n</request>\n");
        out
    }

    /// Read a request as a server does: the first `<app>` only (update_engine sends one);
    /// absent attributes are empty.
    pub fn parse(doc: &str) -> Result<Request, RequestError> {
        let root = xml::parse(doc)?;
        if root.name != "request" {
            return Err(RequestError::NotARequest(root.name));
        }
        let protocol = root.attr("protocol").unwrap_or_default();
        if protocol != "3.0" {
            return Err(RequestError::Protocol(protocol.into()));
        }
        let app = root.child("app").ok_or(RequestError::NoApp)?;
        let get = |name: &str| app.attr(name).unwrap_or_default().to_string();
        let app_id = get("appid");
        if app_id.is_empty() {
            return Err(RequestError::NoAppId);
        }
        let events = app
            .children_named("event")
            .map(parse_event)
            .collect::<Result<Vec<_>, _>>()?;
        let install_source = match root.attr("installsource") {
            Some("ondemandupdate") | Some("ondemand") => InstallSource::OnDemand,
            _ => InstallSource::Scheduler,
        };
        Ok(Request {
            updater: root.attr("version").unwrap_or_default().into(),
            install_source,
            os_sp: root
                .child("os")
                .and_then(|os| os.attr("sp"))
                .unwrap_or_default()
                .into(),
            app: App {
                app_id,
                version: get("version"),
                track: get("track"),
                board: get("board"),
                boot_id: get("bootid"),
                machine_id: get("machineid"),
                oem: get("oem"),
                oem_version: get("oemversion"),
                aleph_version: get("alephversion"),
                lang: get("lang"),
            },
            ping: app.child("ping").is_some(),
            update_check: app.child("updatecheck").is_some(),
            events,
        })
    }
}

fn parse_event(e: &Element) -> Result<Event, RequestError> {
    let number = |attr: &'static str| -> Result<Option<u32>, RequestError> {
        match e.attr(attr) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| RequestError::BadEvent {
                    attr,
                    value: v.into(),
                }),
        }
    };
    Ok(Event {
        kind: EventType::from_code(number("eventtype")?.unwrap_or(0)),
        result: EventResult::from_code(number("eventresult")?.unwrap_or(0)),
        error_code: number("errorcode")?,
        previous_version: e.attr("previousversion").map(str::to_string),
    })
}

/// The appid without braces, lower-case, as Nebraska's replies carry it.
pub fn bare_app_id(app_id: &str) -> String {
    app_id
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .to_ascii_lowercase()
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
