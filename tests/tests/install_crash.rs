//! `kill -9` at random points of an install, with a cloud-config so the configuration step is
//! among them: each disk is either without a partition table (no protective MBR, no GPT header
//! at either end) or a complete, verified and configured install. A few trials here (ci/test);
//! `ci/soak` runs many (COREOS_KILL_TRIALS) and reports the count.

use e2e::install_fixture::*;
use e2e::run;
use std::fs;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::process::Stdio;
use std::time::Instant;

/// What a killed install left.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    NoTable,
    Complete,
}

/// No MBR signature, no "EFI PART" at LBA 1 nor at the last LBA: nothing takes the disk for
/// partitioned. Otherwise the install must be whole.
fn judge(d: &Disk, raw: &std::path::Path, context: &str) -> Outcome {
    let mut f = fs::File::open(&d.lo.dev).unwrap();
    let size = f.seek(SeekFrom::End(0)).unwrap();
    let mut head = [0u8; 1024];
    f.read_exact_at(&mut head, 0).unwrap();
    let mut last = [0u8; 512];
    f.read_exact_at(&mut last, size - 512).unwrap();
    let mbr = head[510..512] == [0x55, 0xaa];
    let primary = &head[512..520] == b"EFI PART";
    let backup = &last[..8] == b"EFI PART";
    if !mbr && !primary && !backup {
        assert_no_usr_a(d, context);
        return Outcome::NoTable;
    }
    assert!(
        mbr && primary,
        "{context}: a partial table (MBR {mbr}, primary {primary}, backup {backup})"
    );
    // Committed: the whole image is there, configured, and every judge agrees — but the
    // backup header may still be on its way to the end of the disk.
    for &(n, label, _, _, _) in PARTS {
        if n == 9 {
            continue;
        }
        let (off, len) = part_range(n);
        assert_eq!(
            sha_range(&d.lo.dev, off, len),
            sha_range(raw, off, len),
            "{context}: partition {n} ({label}) differs from the image"
        );
    }
    assert_eq!(
        debugfs_cat(d, 9, "/var/lib/coreos-install/user_data"),
        CLOUD.as_bytes(),
        "{context}: committed without its cloud-config"
    );
    for n in [6, 9] {
        let (off, len) = part_range(n);
        let l = e2e::Loop::attach_range(&d.file, off, len);
        run(std::process::Command::new("e2fsck").arg("-fn").arg(&l.dev));
    }
    Outcome::Complete
}

#[test]
fn kill_9_at_random_points_leaves_no_table_or_a_complete_install() {
    let trials: u32 = std::env::var("COREOS_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let m = mirror();
    let web = Nginx::start(&m.dir);
    let (_t, cloud) = write_tmp("cloud.yml", CLOUD);
    let args = |d: &Disk| {
        install(&[
            "-d",
            &dev(d),
            "-b",
            &web.base(),
            "-k",
            m.key.to_str().unwrap(),
            "-c",
            cloud.to_str().unwrap(),
        ])
    };
    // How long a whole install takes here, to spread the kills over all of it.
    let d = disk(300);
    let t = Instant::now();
    run(&mut args(&d));
    let whole = t.elapsed();
    drop(d);
    let mut seed = std::process::id() as u64 ^ 0x9E37_79B9_7F4A_7C15;
    let (mut none, mut complete, mut finished) = (0, 0, 0);
    for trial in 0..trials {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Half of the kills anywhere, half in the last fifth (verification, configuration,
        // commit, moving the backup GPT) where the window is short.
        let frac = (seed % 10_000) as f64 / 10_000.0;
        let at = if trial % 2 == 0 {
            whole.mul_f64(frac)
        } else {
            whole.mul_f64(0.8 + 0.25 * frac)
        };
        let d = disk(300);
        let mut child = args(&d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let done = child.try_wait().unwrap().is_some();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        if done {
            finished += 1;
        }
        let context = format!("trial {trial}, killed after {at:?} of {whole:?}");
        match judge(&d, &m.raw, &context) {
            Outcome::NoTable => none += 1,
            Outcome::Complete => complete += 1,
        }
    }
    println!(
        "kill -9 trials: {trials}; no partition table: {none}; complete install: {complete} ({finished} had already finished); install time {whole:?}"
    );
    assert_eq!(none + complete, trials);
}
