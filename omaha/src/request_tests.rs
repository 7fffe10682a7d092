use super::*;

fn app() -> App {
    App {
        version: "2512.2.0".into(),
        track: "beta".into(),
        boot_id: "{965fb4c5-ad3e-4eb7-a4c2-ca0c0e31ec84}".into(),
        machine_id: "abce671d61774703ac7be60715220bfe".into(),
        oem: "ami".into(),
        oem_version: "0.1.1-r1".into(),
        aleph_version: "1688.5.3".into(),
        ..App::default()
    }
}

/// Every attribute update_engine's `GetRequestXml` writes, per element (the reference's
/// request body), is in ours, with the value update_engine would give it.
#[test]
fn an_update_check_carries_every_attribute_update_engine_sends() {
    let after_update = Event {
        previous_version: Some("2400.0.0".into()),
        ..Event::new(EventType::UpdateComplete, EventResult::SuccessReboot)
    };
    let xml = Request::update_check("coreos-update-0.1.0", app(), vec![after_update]).to_xml();
    let root = crate::xml::parse(&xml).unwrap();
    /// An element's path below `<request>`, and its attributes with their values.
    type Expected<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);
    let want: &[Expected] = &[
        (
            &[],
            &[
                ("protocol", "3.0"),
                ("version", "coreos-update-0.1.0"),
                ("updaterversion", "coreos-update-0.1.0"),
                ("installsource", "scheduler"),
                ("ismachine", "1"),
            ],
        ),
        (
            &["os"],
            &[
                ("version", "Chateau"),
                ("platform", "CoreOS"),
                ("sp", &format!("2512.2.0_{}", std::env::consts::ARCH)),
            ],
        ),
        (
            &["app"],
            &[
                ("appid", "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}"),
                ("version", "2512.2.0"),
                ("track", "beta"),
                ("bootid", "{965fb4c5-ad3e-4eb7-a4c2-ca0c0e31ec84}"),
                ("oem", "ami"),
                ("oemversion", "0.1.1-r1"),
                ("alephversion", "1688.5.3"),
                ("machineid", "abce671d61774703ac7be60715220bfe"),
                ("lang", "en-US"),
                ("board", "amd64-usr"),
                ("hardware_class", ""),
                ("delta_okay", "false"),
            ],
        ),
        (&["app", "ping"], &[("active", "1")]),
        (&["app", "updatecheck"], &[]),
        (
            &["app", "event"],
            &[
                ("eventtype", "3"),
                ("eventresult", "2"),
                ("previousversion", "2400.0.0"),
            ],
        ),
    ];
    for (path, attrs) in want {
        let el = root
            .at(path)
            .unwrap_or_else(|| panic!("no <{}> in\n{xml}", path.join("/")));
        for (k, v) in attrs.iter() {
            assert_eq!(el.attr(k), Some(*v), "<{}> {k} in\n{xml}", path.join("/"));
        }
        assert_eq!(
            el.attrs.len(),
            attrs.len(),
            "<{}>: {:?}",
            path.join("/"),
            el.attrs
        );
    }
    assert!(root
        .at(&["app", "event"])
        .unwrap()
        .attr("errorcode")
        .is_none());
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<request "));
}

#[test]
fn what_is_written_reads_back() {
    let mut failed = Event::new(EventType::UpdateComplete, EventResult::Error);
    failed.error_code = Some(crate::ErrorCode::Rollback.code() | crate::codes::FLAG_CUSTOM_SERVER);
    failed.previous_version = Some("2512.2.0".into());
    let mut r = Request::update_check("coreos-update-0.1.0", app(), vec![failed]);
    r.install_source = InstallSource::OnDemand;
    let back = Request::parse(&r.to_xml()).unwrap();
    assert_eq!(back, r);
    assert!(r.to_xml().contains("errorcode=\"268435500\""));
}

#[test]
fn an_event_request_has_no_ping_and_no_update_check() {
    let e = Event {
        error_code: Some(99), // a success carries no error code
        ..Event::new(EventType::UpdateDownloadStarted, EventResult::Success)
    };
    let xml = Request::event("coreos-update-0.1.0", app(), e).to_xml();
    let r = Request::parse(&xml).unwrap();
    assert!(!r.ping && !r.update_check, "{xml}");
    assert_eq!(r.events.len(), 1);
    assert_eq!(
        (r.events[0].kind, r.events[0].result, r.events[0].error_code),
        (EventType::UpdateDownloadStarted, EventResult::Success, None)
    );
}

/// As update_engine's XmlEncodeTest: values are escaped, never spliced in as markup.
#[test]
fn values_are_escaped() {
    let mut a = app();
    a.track = "unittest_track&lt;".into();
    a.oem = "x86 generic<id\"".into();
    let xml = Request::update_check("u", a.clone(), vec![]).to_xml();
    assert!(xml.contains("track=\"unittest_track&amp;lt;\""), "{xml}");
    assert!(!xml.contains("generic<id"), "{xml}");
    let back = Request::parse(&xml).unwrap();
    assert_eq!((back.app.track, back.app.oem), (a.track, a.oem));
}

/// ue-rs's example request (`src/testdata/omaha-request-example.xml`, as quoted in
/// reference/omaha-locksmith.md) is what update_engine sends; the server reads it.
#[test]
fn reads_update_engines_request() {
    let doc = r#"<request protocol="3.0" version="update_engine-0.4.10" updaterversion="update_engine-0.4.10" installsource="scheduler" ismachine="1">
  <os version="Chateau" platform="CoreOS" sp="2512.2.0_x86_64"></os>
  <app appid="e96281a6-d1af-4bde-9a0a-97b76e56dc57" version="1.2.3" track="alpha" bootid="{965fb4c5-ad3e-4eb7-a4c2-ca0c0e31ec84}" oem="ami" oemversion="0.1.1-r1" alephversion="1688.5.3" machineid="abce671d61774703ac7be60715220bfe" lang="en-US" board="amd64-usr" hardware_class="" delta_okay="false" >
    <ping active="1"></ping>
    <updatecheck></updatecheck>
    <event eventtype="3" eventresult="1"></event>
  </app>
</request>"#;
    let r = Request::parse(doc).unwrap();
    assert_eq!(
        (
            r.app.version.as_str(),
            r.app.track.as_str(),
            r.app.board.as_str(),
            r.app.machine_id.as_str(),
            r.os_sp.as_str(),
            r.updater.as_str()
        ),
        (
            "1.2.3",
            "alpha",
            "amd64-usr",
            "abce671d61774703ac7be60715220bfe",
            "2512.2.0_x86_64",
            "update_engine-0.4.10"
        )
    );
    assert!(r.ping && r.update_check);
    assert_eq!(
        r.events,
        vec![Event::new(EventType::UpdateComplete, EventResult::Success)]
    );
    assert_eq!(
        bare_app_id(&r.app.app_id),
        bare_app_id(COREOS_APP_ID),
        "braced or not, one app"
    );
}

#[test]
fn refuses_what_is_not_a_request() {
    let cases = [
        ("<response protocol=\"3.0\"/>", "root element is <response>"),
        ("<request protocol=\"2.0\"><app appid=\"x\"/></request>", "protocol is \"2.0\""),
        ("<request protocol=\"3.0\"></request>", "no <app>"),
        ("<request protocol=\"3.0\"><app version=\"1.0.0\"/></request>", "no appid"),
        (
            "<request protocol=\"3.0\"><app appid=\"x\"><event eventtype=\"three\"/></app></request>",
            "eventtype=\"three\" is not a number",
        ),
        ("<request", "not well-formed"),
    ];
    for (doc, want) in cases {
        let e = Request::parse(doc).unwrap_err().to_string();
        assert!(e.contains(want), "{doc}: {e}");
    }
    let big = format!(
        "<request protocol=\"3.0\"><app appid=\"x\"/>{}</request>",
        " ".repeat(crate::xml::MAX_DOCUMENT)
    );
    assert!(Request::parse(&big)
        .unwrap_err()
        .to_string()
        .contains("over the limit"));
}
