use super::*;
use crate::xml::parse;

const HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?><response protocol="3.0"><daystart elapsed_seconds="100"/>"#;

/// update_engine's `GetUpdateResponse2` shape (omaha_request_action_unittest.cc).
fn ue_update(version: &str, codebase: &str, name: &str, sha256: &str, size: &str) -> String {
    format!(
        r#"{HEAD}<app appid="{{e96281a6-d1af-4bde-9a0a-97b76e56dc57}}" status="ok"><ping status="ok"/><updatecheck status="ok"><urls><url codebase="{codebase}"/></urls><manifest version="{version}"><packages><package hash="not-used" name="{name}" size="{size}"/></packages><actions><action event="postinstall" IsDelta="true" IsDeltaPayload="true" sha256="{sha256}" /></actions></manifest></updatecheck></app></response>"#
    )
}

/// Its `MissingFieldTest`/`ConcatUrlSlashTest` shape: no ping, no `required`.
fn ue_missing_field(codebase: &str) -> String {
    format!(
        r#"{HEAD}<app appid="xyz" status="ok"><updatecheck status="ok"><urls><url codebase="{codebase}"/></urls><manifest version="1.0.0.0"><packages><package hash="not-used" name="f" size="587"/></packages><actions><action event="postinstall" IsDelta="true" IsDeltaPayload="false" sha256="lkq34j5345" /></actions></manifest></updatecheck></app></response>"#
    )
}

fn update(doc: &str) -> Update {
    match read_update_check(doc) {
        Ok(UpdateCheck::Update(u)) => u,
        other => panic!("{other:?} for\n{doc}"),
    }
}

fn error_code(doc: &str) -> u32 {
    match read_update_check(doc) {
        Err(e) => e.code.code(),
        Ok(ok) => panic!("{ok:?} accepted:\n{doc}"),
    }
}

/// update_engine's response cases, each with update_engine's outcome.
#[test]
fn update_engines_response_cases() {
    // NoUpdateTest
    let no = format!(
        r#"{HEAD}<app appid="{{e96281a6-d1af-4bde-9a0a-97b76e56dc57}}" status="ok"><ping status="ok"/><updatecheck status="noupdate"/></app></response>"#
    );
    assert_eq!(
        read_update_check(&no),
        Ok(UpdateCheck::NoUpdate {
            poll_interval: None
        })
    );
    // ValidUpdateTest
    let u = update(&ue_update(
        "1.2.3.4",
        "http://code/base/",
        "file.signed",
        "HASH1234=",
        "123",
    ));
    assert_eq!(
        (
            u.version.as_str(),
            u.urls.clone(),
            u.sha256.as_str(),
            u.size
        ),
        (
            "1.2.3.4",
            vec!["http://code/base/file.signed".to_string()],
            "HASH1234=",
            123
        )
    );
    assert!(u.is_delta && !u.disable_backoff);
    assert_eq!(u.max_failures_per_url, 10);
    // InvalidXmlTest, EmptyResponseTest
    assert_eq!(error_code("invalid xml>"), 31);
    assert_eq!(error_code(""), 30);
    // MissingStatusTest, InvalidStatusTest, MissingNodesetTest
    let app = |inner: &str| {
        format!(r#"{HEAD}<app appid="foo" status="ok"><ping status="ok"/>{inner}</app></response>"#)
    };
    assert_eq!(error_code(&app("<updatecheck/>")), 34);
    assert_eq!(
        error_code(&app(r#"<updatecheck status="InvalidStatusTest"/>"#)),
        34
    );
    assert_eq!(error_code(&app("")), 34);
    // MissingFieldTest: no ping, no `required`, a hash that is not one: still an update.
    let u = update(&ue_missing_field("http://missing/field/test/"));
    assert_eq!(
        (
            u.version.as_str(),
            u.urls[0].as_str(),
            u.sha256.as_str(),
            u.size
        ),
        ("1.0.0.0", "http://missing/field/test/f", "lkq34j5345", 587)
    );
    assert!(!u.is_delta);
    // ConcatUrlSlashTest (Flatcar): the slash is inserted.
    let u = update(&ue_missing_field("http://concat/url/slash/test"));
    assert_eq!(u.urls[0], "http://concat/url/slash/test/f");
}

/// What else update_engine refuses with 34: no codebase, no package name, a size that is not
/// positive, no postinstall sha256; and go-omaha's malformed no-update capture is a 31.
#[test]
fn incomplete_updates_are_invalid() {
    let good = ue_update("1.0.0", "http://a/", "p", "SHA=", "5");
    for (from, to, why) in [
        (
            r#"codebase="http://a/""#,
            r#"codebase="""#,
            "no url with a codebase",
        ),
        (r#"name="p""#, r#"name="""#, "no name"),
        (r#"size="5""#, r#"size="0""#, "not a positive number"),
        (r#"size="5""#, r#"size="-5""#, "not a positive number"),
        (r#"sha256="SHA=""#, r#"sha256="""#, "no sha256"),
        (
            r#"event="postinstall""#,
            r#"event="update""#,
            "no postinstall action",
        ),
        ("manifest", "notmanifest", "no manifest"),
    ] {
        let doc = good.replace(from, to);
        assert_ne!(doc, good);
        let e = read_update_check(&doc).unwrap_err();
        assert_eq!(e.code, ErrorCode::ResponseInvalid, "{doc}");
        assert!(e.to_string().contains(why), "{e}");
    }
    assert_eq!(error_code(r#"<response" protocol="3.0"><app>"#), 31);
    assert_eq!(error_code(r#"<request protocol="3.0"/>"#), 34);
}

/// A Nebraska reply (ue-rs's `omaha-response-example.xml`, as quoted in
/// reference/omaha-locksmith.md, one of its two packages) reads as update_engine reads it:
/// the first package is the payload.
#[test]
fn reads_a_nebraska_reply() {
    let doc = r#"<response protocol="3.0" server="nebraska">
  <daystart elapsed_seconds="0"></daystart>
  <app appid="e96281a6-d1af-4bde-9a0a-97b76e56dc57" status="ok">
    <ping status="ok"></ping>
    <updatecheck status="ok">
      <urls>
        <url codebase="https://update.release.flatcar-linux.net/amd64-usr/3732.0.0/"></url>
      </urls>
      <manifest version="3732.0.0">
        <packages>
          <package name="flatcar_production_update.gz" hash="I6DGNAOrJRUxPbCuLw+AITfiVMo=" size="382137917" required="true">
          </package>
          <package name="oem-azure.gz" hash="wepxwEV9L2SS1l/ycEZSqWM3dDc=" hash_sha256="3aed3129de50b959a97e4913ba485bd60e72d2bb6aa377d5ed404103f0680043" size="40897503" required="false"></package>
        </packages>
        <actions>
          <action event="postinstall" sha256="stLG3U/o4Ar8TMHFwT/RWB0iNkaWOO6QtLrq6+AHBbA=" DisablePayloadBackoff="true"></action>
        </actions>
      </manifest>
    </updatecheck>
    <event status="ok"></event>
  </app>
</response>"#;
    let u = update(doc);
    assert_eq!(
        u,
        Update {
            version: "3732.0.0".into(),
            urls: vec![
                "https://update.release.flatcar-linux.net/amd64-usr/3732.0.0/flatcar_production_update.gz"
                    .into()
            ],
            name: "flatcar_production_update.gz".into(),
            size: 382137917,
            sha256: "stLG3U/o4Ar8TMHFwT/RWB0iNkaWOO6QtLrq6+AHBbA=".into(),
            sha1: Some("I6DGNAOrJRUxPbCuLw+AITfiVMo=".into()),
            poll_interval: None,
            disable_backoff: true,
            max_failures_per_url: 10,
            is_delta: false,
        }
    );
}

#[test]
fn poll_interval_is_honoured_and_checked() {
    let doc = format!(
        r#"{HEAD}<app appid="x" status="ok"><updatecheck status="noupdate" PollInterval="3600"/></app></response>"#
    );
    assert_eq!(
        read_update_check(&doc),
        Ok(UpdateCheck::NoUpdate {
            poll_interval: Some(3600)
        })
    );
    assert_eq!(error_code(&doc.replace("3600", "soon")), 34);
}

fn offer() -> Offer {
    Offer {
        codebase: "http://10.0.2.100/stable/amd64-usr/3732.0.0".into(),
        name: "coreos_production_update.gz".into(),
        version: "3732.0.0".into(),
        size: 382137917,
        sha1: "I6DGNAOrJRUxPbCuLw+AITfiVMo=".into(),
        sha256: "stLG3U/o4Ar8TMHFwT/RWB0iNkaWOO6QtLrq6+AHBbA=".into(),
    }
}

/// Our server's `ok` reply: update_engine reads the update from it, and it has every
/// attribute ue-rs's `omaha` parser requires (response@protocol, a UUID appid, app@status,
/// updatecheck@status with urls and manifest@version, package name/size/required with a base64
/// SHA-1 `hash`, a postinstall action with a base64 `sha256`).
#[test]
fn our_ok_reply_has_what_update_engine_and_ue_rs_read() {
    let o = offer();
    let reply = Reply {
        app_id: crate::request::COREOS_APP_ID,
        answer: Some(Answer::Update(&o)),
        ping: true,
        events: 1,
    };
    let xml = reply.to_xml();
    let u = update(&xml);
    assert_eq!(
        (
            u.urls,
            u.size,
            u.sha256,
            u.sha1,
            u.version,
            u.disable_backoff
        ),
        (
            vec![
                "http://10.0.2.100/stable/amd64-usr/3732.0.0/coreos_production_update.gz"
                    .to_string()
            ],
            o.size,
            o.sha256.clone(),
            Some(o.sha1.clone()),
            o.version.clone(),
            true
        )
    );
    let root = parse(&xml).unwrap();
    assert_eq!(root.attr("protocol"), Some("3.0"));
    let app = root.child("app").unwrap();
    assert_eq!(
        app.attr("appid"),
        Some("e96281a6-d1af-4bde-9a0a-97b76e56dc57")
    );
    assert_eq!(app.attr("status"), Some("ok"));
    let check = app.child("updatecheck").unwrap();
    assert_eq!(
        check.at(&["urls", "url"]).unwrap().attr("codebase"),
        Some("http://10.0.2.100/stable/amd64-usr/3732.0.0/"),
        "the codebase ends with / for CoreOS's update_engine, which concatenates"
    );
    let pkg = check.at(&["manifest", "packages", "package"]).unwrap();
    for k in ["name", "size", "required", "hash"] {
        assert!(pkg.attr(k).is_some_and(|v| !v.is_empty()), "package {k}");
    }
    let action = check.at(&["manifest", "actions", "action"]).unwrap();
    assert_eq!(action.attr("event"), Some("postinstall"));
    assert_eq!(app.children_named("event").count(), 1);
    assert_eq!(app.child("ping").and_then(|p| p.attr("status")), Some("ok"));
}

#[test]
fn our_noupdate_and_error_replies_read_as_such() {
    let no = Reply {
        app_id: "x",
        answer: Some(Answer::NoUpdate),
        ping: true,
        events: 0,
    };
    assert_eq!(
        read_update_check(&no.to_xml()),
        Ok(UpdateCheck::NoUpdate {
            poll_interval: None
        })
    );
    let err = Reply {
        app_id: "x",
        answer: Some(Answer::Error("error-unknownApplication")),
        ping: false,
        events: 0,
    };
    let e = read_update_check(&err.to_xml()).unwrap_err();
    assert_eq!(e.code, ErrorCode::ResponseInvalid);
    assert!(e.reason.contains("error-unknownApplication"), "{e}");
    // An event-only reply: one ack per event, no updatecheck.
    let acks = Reply {
        app_id: "x",
        answer: None,
        ping: false,
        events: 2,
    }
    .to_xml();
    let root = parse(&acks).unwrap();
    assert_eq!(
        root.child("app").unwrap().children_named("event").count(),
        2
    );
    assert!(root.at(&["app", "updatecheck"]).is_none());
}
