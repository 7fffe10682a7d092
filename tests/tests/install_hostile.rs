//! coreos-install against servers that misbehave (the fault server in `e2e::httpfault`): each
//! case ends in a correct install or a clear error, within a bounded time, and never with a
//! spliced image on the disk. Short stall timeouts and few retries keep the cases short.

use e2e::httpfault::{Fault, FaultServer};
use e2e::install_fixture::*;
use e2e::{run, run_fail};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// A copy of the mirror whose image has a replacement (`<image>.changed`, a different image
/// also signed by the release key), for the "file changed on the server" cases.
fn mirror_with_replacement(m: &Mirror) -> tempfile::TempDir {
    let good = fs::read(m.image()).unwrap();
    let t = variant(m, &good, None);
    let rel = t.path().join(BOARD).join(VERSION);
    // The OEM image: same layout, other bytes; a splice of the two is neither.
    fs::copy(
        m.release_dir().join(OEM_IMAGE),
        rel.join(format!("{IMAGE}.changed")),
    )
    .unwrap();
    t
}

fn install_from(base: &str, key: &Path, d: &Disk, extra: &[&str]) -> std::process::Command {
    let target = dev(d);
    let mut args = vec!["-d", &target, "-b", base, "-k", key.to_str().unwrap()];
    args.extend_from_slice(extra);
    install(&args)
}

#[test]
fn a_stall_is_resumed_after_the_stall_timeout() {
    let m = mirror();
    let srv = FaultServer::start(
        m.dir.clone(),
        IMAGE,
        Fault::Stall {
            after: 5 * MIB,
            times: 1,
        },
    );
    let d = disk(300);
    let t = Instant::now();
    let out = run(&mut install_from(
        &format!("{}/{BOARD}", srv.url()),
        &m.key,
        &d,
        &["--stall-timeout", "2"],
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no data for 2s"), "{stderr}");
    assert_installed(&d, &m.raw, &[]);
    let log = srv.requests();
    assert!(
        log.iter()
            .any(|l| l.ends_with(&format!("Some({})", 5 * MIB))),
        "no resume at the stalled byte: {log:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(120), "{:?}", t.elapsed());
}

#[test]
fn a_server_that_always_stalls_is_an_error_in_bounded_time() {
    let m = mirror();
    let srv = FaultServer::start(
        m.dir.clone(),
        IMAGE,
        Fault::Stall {
            after: MIB,
            times: 1000,
        },
    );
    let d = disk(300);
    let t = Instant::now();
    let msg = run_fail(&mut install_from(
        &format!("{}/{BOARD}", srv.url()),
        &m.key,
        &d,
        &["--stall-timeout", "2", "--retries", "1"],
    ));
    assert!(
        msg.contains(IMAGE) && msg.contains("no data for 2s") && msg.contains("gave up"),
        "{msg}"
    );
    assert_no_usr_a(&d, &msg);
    // 2 connections x 2 s stall + 1 s backoff, and the install around it.
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
}

#[test]
fn a_drip_of_one_byte_a_second_is_an_error_in_bounded_time() {
    let m = mirror();
    let srv = FaultServer::start(m.dir.clone(), IMAGE, Fault::Drip { interval_ms: 1000 });
    let d = disk(300);
    let t = Instant::now();
    let msg = run_fail(&mut install_from(
        &format!("{}/{BOARD}", srv.url()),
        &m.key,
        &d,
        &["--stall-timeout", "3", "--retries", "1"],
    ));
    assert!(
        msg.contains(IMAGE) && msg.contains("too slow") && msg.contains("gave up"),
        "{msg}"
    );
    assert_no_usr_a(&d, &msg);
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
}

#[test]
fn a_200_answer_to_a_range_request_is_skipped_to_the_byte_needed() {
    let m = mirror();
    let after = 7 * MIB + 5;
    let srv = FaultServer::start(m.dir.clone(), IMAGE, Fault::IgnoreRange { after });
    let d = disk(300);
    let out = run(&mut install_from(
        &format!("{}/{BOARD}", srv.url()),
        &m.key,
        &d,
        &[],
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ignored the Range request"), "{stderr}");
    assert_installed(&d, &m.raw, &[]);
    let log = srv.requests();
    assert!(
        log.iter().any(|l| l.ends_with(&format!("Some({after})"))),
        "{log:?}"
    );
}

/// A new file behind the same URL, told by If-Range: the server answers 200 with the new file,
/// whose ETag differs; the install stops with a clear error and no table.
#[test]
fn a_file_changed_between_requests_is_never_spliced() {
    let m = mirror();
    let t = mirror_with_replacement(&m);
    let cases = [
        (true, true, "ETag"),  // RFC server: If-Range fails, 200 with the new file
        (false, true, "ETag"), // a splicing server: 206 of the new file, new ETag
        // No validators at all: the resumed answer's total length differs from the first one's.
        // (A same-length replacement without validators is left to the signature.)
        (false, false, "length"),
    ];
    for (if_range, validators, expect) in cases {
        let srv = FaultServer::start(
            t.path().to_path_buf(),
            IMAGE,
            Fault::Changed {
                after: 9 * MIB,
                if_range,
                validators,
            },
        );
        let d = disk(300);
        let msg = run_fail(&mut install_from(
            &format!("{}/{BOARD}", srv.url()),
            &m.key,
            &d,
            &["--retries", "1"],
        ));
        assert!(
            msg.contains(expect) && msg.contains(IMAGE),
            "if_range {if_range}, validators {validators}: {msg}"
        );
        assert!(msg.contains("changed on the server"), "{msg}");
        assert_no_usr_a(&d, &msg);
    }
}
