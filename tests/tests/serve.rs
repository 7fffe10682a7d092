//! `coreos-build serve`, the Omaha update service, as a fleet meets it: requests written as
//! update_engine writes them (the omaha crate, checked against update_engine's own cases),
//! replies read as update_engine reads them, hashes judged by `openssl`, files fetched by
//! `curl` with a range, two replicas side by side, a mirror changed under a running server.

use e2e::{bin, run};
use omaha::{App, Event, EventResult, EventType, Request, UpdateCheck};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PAYLOAD: &str = "coreos_production_update.gz";

/// A mirror of channels: `ROOT/<channel>/amd64-usr/<version>/` with a payload of `bytes`.
fn mirror(releases: &[(&str, &str, usize)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for &(channel, version, bytes) in releases {
        add_release(root.path(), channel, version, bytes);
    }
    root
}

/// One release folder, and `current` pointing at it (replaced atomically, as `release` does).
fn add_release(root: &Path, channel: &str, version: &str, bytes: usize) {
    let board = root.join(channel).join("amd64-usr");
    fs::create_dir_all(board.join(version)).unwrap();
    let data: Vec<u8> = (0..bytes).map(|i| (i * 7 + version.len()) as u8).collect();
    fs::write(board.join(version).join(PAYLOAD), data).unwrap();
    let tmp = board.join(".current.tmp");
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(version, &tmp).unwrap();
    fs::rename(&tmp, board.join("current")).unwrap();
}

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(root: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(bin("coreos-build"))
            .args(["-q", "serve", "--listen", "127.0.0.1:0", "--mirror"])
            .arg(root)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("coreos-build serve: listening on ")
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Server { child, url }
    }

    /// POST `body` to the update endpoint: the HTTP status and the body.
    fn post(&self, body: &[u8]) -> (u16, String) {
        let mut curl = Command::new("curl")
            .args(["-sS", "-X", "POST", "-H", "Content-Type: text/xml"])
            .args(["--data-binary", "@-", "-w", "\n%{http_code}"])
            .arg(format!("{}/v1/update/", self.url))
            .env_remove("http_proxy")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("curl");
        curl.stdin.take().unwrap().write_all(body).unwrap();
        let out = curl.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.parse().unwrap(), body.to_string())
    }

    /// An update check by `machine` on `channel` running `version`, read as update_engine reads it.
    fn check(
        &self,
        machine: &str,
        channel: &str,
        version: &str,
    ) -> Result<UpdateCheck, omaha::ResponseError> {
        let (status, body) = self.post(request(machine, channel, version, vec![]).as_bytes());
        assert_eq!(status, 200, "{body}");
        omaha::read_update_check(&body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request(machine: &str, channel: &str, version: &str, events: Vec<Event>) -> String {
    let app = App {
        version: version.into(),
        track: channel.into(),
        machine_id: machine.into(),
        boot_id: "{7d2b0e6c-3f3c-4c49-9c5e-0b0a1d2c3e4f}".into(),
        aleph_version: "1.0.0".into(),
        ..App::default()
    };
    Request::update_check("update_engine-0.4.10", app, events).to_xml()
}

/// base64 of a digest of `file`, computed by openssl, as the Omaha reply must carry it.
fn openssl_b64(digest: &str, file: &Path) -> String {
    let out = run(Command::new("sh").arg("-c").arg(format!(
        "openssl dgst -{digest} -binary '{}' | base64",
        file.display()
    )));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn offers_only_newer_releases_of_the_machines_channel_with_its_hashes() {
    let m = mirror(&[("beta", "2.0.0", 300_000), ("stable", "1.0.0", 5_000)]);
    let s = Server::start(m.path(), &[]);
    let UpdateCheck::Update(u) = s.check("m1", "beta", "1.0.0").unwrap() else {
        panic!("no update offered")
    };
    let file = m.path().join("beta/amd64-usr/2.0.0").join(PAYLOAD);
    assert_eq!(
        (u.version.as_str(), u.size, u.sha256.clone(), u.sha1.clone()),
        (
            "2.0.0",
            300_000,
            openssl_b64("sha256", &file),
            Some(openssl_b64("sha1", &file))
        )
    );
    assert_eq!(
        u.urls,
        vec![format!("{}/beta/amd64-usr/2.0.0/{PAYLOAD}", s.url)]
    );
    // The payload is served, ranges too (update_engine and our fetcher resume with them).
    let part = run(Command::new("curl")
        .args(["-sS", "-r", "1000-1999", "-w", "%{http_code}", "-o", "-"])
        .arg(&u.urls[0]));
    let (bytes, code) = part.stdout.split_at(part.stdout.len() - 3);
    assert_eq!(code, b"206");
    assert_eq!(bytes, &fs::read(&file).unwrap()[1000..2000]);

    // Already there, or ahead (a machine that switched from beta to an older stable): no
    // update, never a downgrade.
    for (channel, version) in [("beta", "2.0.0"), ("stable", "2.0.0"), ("stable", "1.0.0")] {
        assert_eq!(
            s.check("m1", channel, version),
            Ok(UpdateCheck::NoUpdate {
                poll_interval: None
            }),
            "{channel} at {version}"
        );
    }
    assert!(
        matches!(s.check("m1", "stable", "0.9.0"), Ok(UpdateCheck::Update(u)) if u.version == "1.0.0")
    );
}

#[test]
fn unknown_channels_apps_and_versions_are_error_statuses() {
    let m = mirror(&[("beta", "2.0.0", 1000)]);
    let s = Server::start(m.path(), &[]);
    for (channel, version, status) in [
        ("alpha", "1.0.0", "error-unknownApplication"),
        ("beta", "1.0", "error-instanceRegistrationFailed"),
        ("beta", "", "error-instanceRegistrationFailed"),
    ] {
        let e = s.check("m", channel, version).unwrap_err();
        assert_eq!(e.code, omaha::ErrorCode::ResponseInvalid, "{e}");
        assert!(e.reason.contains(status), "{channel} {version}: {e}");
    }
    let other_app = request("m", "beta", "1.0.0", vec![]).replace(
        omaha::COREOS_APP_ID,
        "{11111111-2222-3333-4444-555555555555}",
    );
    let (status, body) = s.post(other_app.as_bytes());
    assert!(
        status == 200 && body.contains("error-unknownApplication"),
        "{body}"
    );
    // Not Omaha, and too large: refused with an HTTP error, and the server goes on.
    let (status, body) = s.post(b"<html/>");
    assert_eq!(status, 400, "{body}");
    let big = request("m", "beta", "1.0.0", vec![]).replace(
        "<updatecheck>",
        &format!("<updatecheck>{}", " ".repeat(omaha::MAX_DOCUMENT)),
    );
    let (status, _) = s.post(big.as_bytes());
    assert_eq!(status, 413);
    assert!(s.check("m", "beta", "1.0.0").is_ok());
}

/// Events are acknowledged one by one and logged as JSON lines; `--progress` counts each
/// machine once, in the state of its latest event.
#[test]
fn events_are_logged_and_the_fleet_progress_is_printed() {
    let m = mirror(&[("beta", "2.0.0", 1000)]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.jsonl");
    let s = Server::start(m.path(), &["--event-log", log.to_str().unwrap()]);
    let ev = |t, r, code: Option<u32>, prev: Option<&str>| Event {
        error_code: code,
        previous_version: prev.map(str::to_string),
        ..Event::new(t, r)
    };
    let sent = [
        (
            "m1",
            "1.0.0",
            ev(
                EventType::UpdateDownloadStarted,
                EventResult::Success,
                None,
                None,
            ),
        ),
        (
            "m1",
            "1.0.0",
            ev(
                EventType::UpdateDownloadFinished,
                EventResult::Success,
                None,
                None,
            ),
        ),
        (
            "m1",
            "1.0.0",
            ev(EventType::UpdateComplete, EventResult::Success, None, None),
        ),
        (
            "m1",
            "2.0.0",
            ev(
                EventType::UpdateComplete,
                EventResult::SuccessReboot,
                None,
                Some("1.0.0"),
            ),
        ),
        (
            "m2",
            "1.0.0",
            ev(
                EventType::UpdateDownloadStarted,
                EventResult::Success,
                None,
                None,
            ),
        ),
        (
            "m3",
            "1.0.0",
            ev(
                EventType::UpdateComplete,
                EventResult::Error,
                Some(44),
                Some("2.0.0"),
            ),
        ),
    ];
    for (machine, version, e) in sent {
        let app = App {
            version: version.into(),
            track: "beta".into(),
            machine_id: machine.into(),
            ..App::default()
        };
        let (status, body) = s.post(Request::event("t", app, e).to_xml().as_bytes());
        assert_eq!(status, 200);
        assert_eq!(body.matches("<event status=\"ok\">").count(), 1, "{body}");
        assert!(!body.contains("updatecheck"), "{body}");
    }
    let lines = fs::read_to_string(&log).unwrap();
    assert_eq!(lines.lines().count(), 6, "{lines}");
    assert!(
        lines.contains(r#""machine":"m3","channel":"beta","board":"amd64-usr","version":"1.0.0","previous_version":"2.0.0","event":3,"result":0,"error_code":44"#),
        "{lines}"
    );
    let out = run(Command::new(bin("coreos-build"))
        .args(["serve", "--progress"])
        .arg(&log));
    let table = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    for want in [
        vec!["2.0.0", "updated", "1"],
        vec!["1.0.0", "downloading", "1"],
        vec!["1.0.0", "failed", "(error", "44)", "1"],
        vec!["total", "3"],
    ] {
        assert!(rows.contains(&want), "{want:?} in\n{table}");
    }
}

/// A staged rollout: about the share asked for gets the update, and two replicas decide
/// alike for every machine (the decision is a hash, not state).
#[test]
fn a_rollout_is_the_same_share_on_every_replica() {
    let m = mirror(&[("beta", "2.0.0", 1000)]);
    let (a, b) = (
        Server::start(m.path(), &["--rollout", "25"]),
        Server::start(m.path(), &["--rollout", "25"]),
    );
    let mut offered = 0;
    for i in 0..200 {
        let id = format!("{i:032x}");
        let x = matches!(a.check(&id, "beta", "1.0.0"), Ok(UpdateCheck::Update(_)));
        let y = matches!(b.check(&id, "beta", "1.0.0"), Ok(UpdateCheck::Update(_)));
        assert_eq!(x, y, "replicas disagree on {id}");
        offered += usize::from(x);
    }
    assert!((25..=75).contains(&offered), "{offered} of 200 at 25%");
    let all = Server::start(m.path(), &["--rollout", "100"]);
    let none = Server::start(m.path(), &["--rollout", "0"]);
    assert!(matches!(
        all.check("x", "beta", "1.0.0"),
        Ok(UpdateCheck::Update(_))
    ));
    assert!(matches!(
        none.check("x", "beta", "1.0.0"),
        Ok(UpdateCheck::NoUpdate { .. })
    ));
}

/// A new `current` under a running server is offered after the next rescan.
#[test]
fn a_new_release_is_offered_after_a_rescan() {
    let m = mirror(&[("beta", "2.0.0", 1000)]);
    let s = Server::start(m.path(), &["--rescan", "1"]);
    assert!(matches!(
        s.check("m", "beta", "2.0.0"),
        Ok(UpdateCheck::NoUpdate { .. })
    ));
    add_release(m.path(), "beta", "2.1.0", 2000);
    let start = Instant::now();
    loop {
        match s.check("m", "beta", "2.0.0") {
            Ok(UpdateCheck::Update(u)) => {
                assert_eq!((u.version.as_str(), u.size), ("2.1.0", 2000));
                break;
            }
            other => {
                assert!(start.elapsed() < Duration::from_secs(20), "still {other:?}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}
