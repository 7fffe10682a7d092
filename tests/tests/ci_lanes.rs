//! `ci/test-lanes`, the runner CI's tests go through: a failing job and a hung one each fail
//! the run by name, a hung one is killed with what it started, and the others still run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn alive(pid: i32) -> bool {
    // A zombie still has /proc/PID; its state letter says it is gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[test]
fn a_hung_job_is_killed_with_its_children_and_fails_the_run() {
    let d = tempfile::tempdir().unwrap();
    let cargo_json = d.path().join("cargo.json"); // no test executables: only the jobs below
    std::fs::write(&cargo_json, "").unwrap();
    let pidfile = d.path().join("straggler.pid");
    // The straggler ignores SIGTERM, like a qemu stuck in a device: only the group kill ends it.
    let hang = format!(
        "(trap '' TERM; exec sleep 600) & echo $! > {}; echo started; wait",
        pidfile.display()
    );
    let start = Instant::now();
    let out = Command::new(repo().join("ci/test-lanes"))
        .arg(&cargo_json)
        .args(["--job", "passes=echo fine"])
        .args(["--job", &format!("hangs={hang}")])
        .args(["--job", "fails=exit 3"])
        // A job that exits 0 when told to stop has still not finished its work.
        .args([
            "--job",
            "quits=trap 'exit 0' TERM; while :; do sleep 0.1; done",
        ])
        .env("TEST_JOB_TIMEOUT", "3")
        .current_dir(d.path())
        .output()
        .unwrap();
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        took < Duration::from_secs(60),
        "the run took {took:?}: {stdout}"
    );
    for line in [
        "==> passes: ok",
        "==> fails: FAILED (exit 3)",
        "==> hangs: FAILED (timed out after 3 s; killed)",
        "==> quits: FAILED (timed out after 3 s; killed)",
        "tests: 0 passed, 3 failed, 0 skipped",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
    // What the hung job printed before it was killed is shown.
    let hung = stdout.split("==> hangs:").nth(1).unwrap();
    assert!(hung.contains("started"), "{stdout}");
    let failed = stdout
        .lines()
        .find(|l| l.starts_with("ci/test-lanes: failed:"))
        .unwrap_or_else(|| panic!("no list of failed jobs in:\n{stdout}"));
    for job in ["hangs", "fails", "quits"] {
        assert!(failed.contains(job), "{failed}");
    }
    assert!(!failed.contains("passes"), "{failed}");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        // SAFETY: a plain kill of the process this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        panic!("the hung job's child {pid} outlived the job");
    }
}

/// A test that returns early because it cannot run here prints `SKIPPED: …`: libtest counts
/// it passed, the run's closing line counts it skipped.
#[test]
fn a_skipped_line_counts_as_skipped_not_passed() {
    let d = tempfile::tempdir().unwrap();
    let cargo_json = d.path().join("cargo.json");
    std::fs::write(&cargo_json, "").unwrap();
    let job = "printf 'running 3 tests\\n\\nSKIPPED: a: needs root\\ntest result: ok. 3 passed; 0 failed; 1 ignored; 0 measured\\n'";
    let out = Command::new(repo().join("ci/test-lanes"))
        .arg(&cargo_json)
        .args(["--job", &format!("unit={job}")])
        .current_dir(d.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("tests: 2 passed, 0 failed, 2 skipped"),
        "{stdout}"
    );
}
