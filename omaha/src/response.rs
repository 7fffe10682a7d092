//! The reply: read as update_engine reads it (`omaha_request_action.cc` `ParseResponse`:
//! `/response/app/updatecheck` and its `status`, every `url@codebase`, the first package's
//! `name` and `size`, the postinstall action's `sha256`; every failure a numbered error), and
//! written as Nebraska writes it, with everything update_engine and ue-rs's parser require.

use crate::codes::ErrorCode;
use crate::request::bare_app_id;
use crate::xml::{self, escape, XmlError};

/// The outcome of an update check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateCheck {
    NoUpdate {
        /// `updatecheck@PollInterval`, seconds until the next check.
        poll_interval: Option<u64>,
    },
    Update(Update),
}

/// What update_engine takes from an `ok` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// `manifest@version` (update_engine shows it; the payload's own version is what counts).
    pub version: String,
    /// Codebase + package name, one per `<url>`, tried in order.
    pub urls: Vec<String>,
    pub name: String,
    pub size: u64,
    /// The postinstall action's `sha256`: base64 of the payload's SHA-256.
    pub sha256: String,
    /// The package's `hash`: base64 of its SHA-1 (ue-rs checks it; update_engine does not).
    pub sha1: Option<String>,
    pub poll_interval: Option<u64>,
    pub disable_backoff: bool,
    pub max_failures_per_url: u32,
    pub is_delta: bool,
}

/// A reply update_engine would refuse, with the code it would report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the update server's reply is not usable (error {}): {reason}", code.code())]
pub struct ResponseError {
    pub code: ErrorCode,
    pub reason: String,
}

fn invalid(reason: impl Into<String>) -> ResponseError {
    ResponseError {
        code: ErrorCode::ResponseInvalid,
        reason: reason.into(),
    }
}

/// update_engine's default for `MaxFailureCountPerUrl`.
const DEFAULT_MAX_FAILURES_PER_URL: u32 = 10;

/// Read an update-check reply.
pub fn read_update_check(doc: &str) -> Result<UpdateCheck, ResponseError> {
    let root = xml::parse(doc).map_err(|e| match e {
        XmlError::Empty => ResponseError {
            code: ErrorCode::EmptyResponse,
            reason: "the body is empty".into(),
        },
        e => ResponseError {
            code: ErrorCode::XmlParseError,
            reason: e.to_string(),
        },
    })?;
    if root.name != "response" {
        return Err(invalid(format!(
            "the root element is <{}>, not <response>",
            root.name
        )));
    }
    let check = root
        .at(&["app", "updatecheck"])
        .ok_or_else(|| invalid("no /response/app/updatecheck"))?;
    let poll_interval = match check.attr("PollInterval") {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse()
                .map_err(|_| invalid(format!("updatecheck PollInterval={v:?} is not a number")))?,
        ),
    };
    match check.attr("status") {
        None => return Err(invalid("updatecheck has no status")),
        Some("noupdate") => return Ok(UpdateCheck::NoUpdate { poll_interval }),
        Some("ok") => {}
        Some(other) => {
            let app_status = root
                .child("app")
                .and_then(|a| a.attr("status"))
                .unwrap_or_default();
            return Err(invalid(format!(
                "updatecheck status {other:?} (app status {app_status:?})"
            )));
        }
    }
    let codebases: Vec<&str> = check
        .at(&["urls"])
        .into_iter()
        .flat_map(|u| u.children_named("url"))
        .filter_map(|u| u.attr("codebase"))
        .filter(|c| !c.is_empty())
        .collect();
    if codebases.is_empty() {
        return Err(invalid("no url with a codebase"));
    }
    let manifest = check
        .child("manifest")
        .ok_or_else(|| invalid("no manifest"))?;
    let package = manifest
        .at(&["packages", "package"])
        .ok_or_else(|| invalid("no package"))?;
    let name = package.attr("name").unwrap_or_default();
    if name.is_empty() {
        return Err(invalid("the package has no name"));
    }
    let size_attr = package.attr("size").unwrap_or_default();
    let size: u64 = size_attr
        .trim()
        .parse()
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| {
            invalid(format!(
                "the package size {size_attr:?} is not a positive number"
            ))
        })?;
    let action = manifest
        .at(&["actions"])
        .into_iter()
        .flat_map(|a| a.children_named("action"))
        .find(|a| a.attr("event") == Some("postinstall"))
        .ok_or_else(|| invalid("no postinstall action"))?;
    let sha256 = action.attr("sha256").unwrap_or_default();
    if sha256.is_empty() {
        return Err(invalid("the postinstall action has no sha256"));
    }
    let max_failures_per_url = match action.attr("MaxFailureCountPerUrl") {
        None => DEFAULT_MAX_FAILURES_PER_URL,
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| invalid(format!("MaxFailureCountPerUrl={v:?} is not a number")))?,
    };
    Ok(UpdateCheck::Update(Update {
        version: manifest.attr("version").unwrap_or_default().into(),
        // Flatcar's rule: a codebase without a trailing slash gets one (CoreOS concatenated).
        urls: codebases
            .iter()
            .map(|c| {
                if c.ends_with('/') {
                    format!("{c}{name}")
                } else {
                    format!("{c}/{name}")
                }
            })
            .collect(),
        name: name.into(),
        size,
        sha256: sha256.into(),
        sha1: package.attr("hash").map(str::to_string),
        poll_interval,
        disable_backoff: action.attr("DisablePayloadBackoff") == Some("true"),
        max_failures_per_url,
        is_delta: action.attr("IsDeltaPayload") == Some("true"),
    }))
}

/// An update the server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Where the package is, ending with `/` (update_engine concatenates blindly).
    pub codebase: String,
    pub name: String,
    pub version: String,
    pub size: u64,
    /// Base64 of the payload's SHA-1 and SHA-256.
    pub sha1: String,
    pub sha256: String,
}

/// What the server answers an update check with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<'a> {
    NoUpdate,
    Update(&'a Offer),
    /// An `error-…` status (`error-unknownApplication`, `error-instanceRegistrationFailed`).
    Error(&'a str),
}

/// A reply to one request: the update check's answer (when it asked), `ping` acknowledged,
/// one `<event status="ok"/>` per event it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<'a> {
    pub app_id: &'a str,
    pub answer: Option<Answer<'a>>,
    pub ping: bool,
    pub events: usize,
}

impl Reply<'_> {
    pub fn to_xml(&self) -> String {
        let app_status = match self.answer {
            Some(Answer::Error(s)) => s,
            _ => "ok",
        };
        let mut out = String::with_capacity(1024);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str("<response protocol=\"3.0\" server=\"coreos-build\">\n");
        out.push_str("  <daystart elapsed_seconds=\"0\"></daystart>\n");
        out.push_str(&format!(
            "  <app appid=\"{}\" status=\"{}\">\n",
            escape(&bare_app_id(self.app_id)),
            escape(app_status)
        ));
        if self.ping {
            out.push_str("    <ping status=\"ok\"></ping>\n");
        }
        match self.answer {
            None => {}
            Some(Answer::NoUpdate) => {
                out.push_str("    <updatecheck status=\"noupdate\"></updatecheck>\n")
            }
            Some(Answer::Error(_)) => {
                out.push_str("    <updatecheck status=\"error-internal\"></updatecheck>\n")
            }
            Some(Answer::Update(o)) => {
                let codebase = if o.codebase.ends_with('/') {
                    o.codebase.clone()
                } else {
                    format!("{}/", o.codebase)
                };
                out.push_str("    <updatecheck status=\"ok\">\n");
                out.push_str(&format!(
                    "      <urls>\n        <url codebase=\"{}\"></url>\n      </urls>\n",
                    escape(&codebase)
                ));
                out.push_str(&format!(
                    "      <manifest version=\"{}\">\n",
                    escape(&o.version)
                ));
                out.push_str(&format!(
                    "        <packages>\n          <package name=\"{}\" hash=\"{}\" size=\"{}\" required=\"true\"></package>\n        </packages>\n",
                    escape(&o.name),
                    escape(&o.sha1),
                    o.size
                ));
                out.push_str(&format!(
                    "        <actions>\n          <action event=\"postinstall\" sha256=\"{}\" DisablePayloadBackoff=\"true\"></action>\n        </actions>\n",
                    escape(&o.sha256)
                ));
                out.push_str("      </manifest>\n    </updatecheck>\n");
            }
        }
        for _ in 0..self.events {
            out.push_str("    <event status=\"ok\"></event>\n");
        }
        out.push_str("  </app>\n</response>\n");
        out
    }
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
