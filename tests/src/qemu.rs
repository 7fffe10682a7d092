//! Boot a disk image in qemu (TCG, no network, the disk as a virtio drive with `snapshot=on` so
//! the image is never modified) under UEFI (OVMF) or BIOS (SeaBIOS), and read the one
//! `COREOS-BOOT-REPORT` line the sample OS's initramfs prints on the serial console.
//!
//! A boot is bounded by a timeout. The whole console log is kept in `<repo>/.cache/boot-logs/`
//! (its path is in the report, and in the error on failure, so a failed test shows why).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The marker that starts the report line.
pub const REPORT_MARKER: &str = "COREOS-BOOT-REPORT ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    Uefi,
    Bios,
}

impl Firmware {
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Uefi => "uefi",
            Firmware::Bios => "bios",
        }
    }
}

/// The fields of a `COREOS-BOOT-REPORT` line, plus how long the boot took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootReport {
    /// PARTLABEL of the partition under /usr (e.g. `USR-A`).
    pub usr: String,
    /// `ok`, `fail` or `off`.
    pub verity: String,
    /// Filesystem label of the root filesystem.
    pub root: String,
    /// `coreos.oem.id` from the kernel command line, or `none`.
    pub oem_id: String,
    /// sha256 of ROOT:/var/lib/coreos-install/user_data, or `none`.
    pub user_data_sha256: String,
    /// VERSION_ID from /usr/lib/os-release.
    pub version: String,
    /// `uefi` or `bios`, as the kernel saw it.
    pub firmware: String,
    /// From starting qemu to the report line.
    pub elapsed: Duration,
    /// The whole console output, kept under `<repo>/.cache/boot-logs/`.
    pub log: PathBuf,
}

impl BootReport {
    /// Parse the text after `COREOS-BOOT-REPORT `; every field must be present.
    pub fn parse(fields: &str, elapsed: Duration, log: PathBuf) -> Result<BootReport, String> {
        let map: BTreeMap<&str, &str> = fields
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let get = |k: &str| {
            map.get(k)
                .map(|v| v.to_string())
                .ok_or_else(|| format!("report has no {k}=: {fields:?}"))
        };
        Ok(BootReport {
            usr: get("usr")?,
            verity: get("verity")?,
            root: get("root")?,
            oem_id: get("oem_id")?,
            user_data_sha256: get("user_data_sha256")?,
            version: get("version")?,
            firmware: get("firmware")?,
            elapsed,
            log,
        })
    }
}

/// Why a boot produced no report; `log` is the kept console log.
#[derive(Debug)]
pub struct BootError {
    pub reason: String,
    pub log: PathBuf,
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(25).collect();
        write!(
            f,
            "{} (console log: {})\n--- last lines:\n",
            self.reason,
            self.log.display()
        )?;
        for l in tail.iter().rev() {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}

impl std::error::Error for BootError {}

/// Boot `disk` (`format`: "raw", "vmdk", "qcow2", ...) and wait up to `timeout` for the report.
pub fn boot(
    disk: &Path,
    firmware: Firmware,
    format: &str,
    timeout: Duration,
) -> Result<BootReport, BootError> {
    crate::require("qemu-system-x86_64");
    let work = tempfile::tempdir().expect("temporary folder for the firmware variables");
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-accel",
        "tcg",
        "-m",
        "1024",
        "-nographic",
        "-nic",
        "none",
        "-no-reboot",
    ]);
    match firmware {
        Firmware::Uefi => {
            let (code, vars) = ovmf();
            if let Some(vars) = vars {
                // A private copy: OVMF writes its variables, and parallel boots must not share them.
                let copy = work.path().join("OVMF_VARS.fd");
                std::fs::copy(&vars, &copy)
                    .unwrap_or_else(|e| panic!("copying {}: {e}", vars.display()));
                cmd.arg("-drive").arg(format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={}",
                    code.display()
                ));
                cmd.arg("-drive").arg(format!(
                    "if=pflash,format=raw,unit=1,file={}",
                    copy.display()
                ));
            } else {
                cmd.arg("-bios").arg(&code);
            }
        }
        Firmware::Bios => {} // qemu's default firmware is SeaBIOS
    }
    cmd.arg("-drive").arg(format!(
        "file={},format={format},if=virtio,snapshot=on",
        disk.display()
    ));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let name = format!(
        "{}-{}",
        disk.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        firmware.name()
    );
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let (tx, rx) = mpsc::channel::<(Vec<u8>, Instant)>();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send((buf[..n].to_vec(), Instant::now())).is_err() {
                break;
            }
        }
    });

    let mut console = Vec::new();
    let mut reported: Option<(String, Duration)> = None;
    let deadline = start + timeout;
    let mut exited = None;
    loop {
        let now = Instant::now();
        // After the report, the guest powers off; allow it a few seconds to do so.
        let limit = match &reported {
            Some(_) => deadline.min(now + Duration::from_secs(5)),
            None => deadline,
        };
        if now >= limit {
            break;
        }
        match rx.recv_timeout((limit - now).min(Duration::from_millis(200))) {
            Ok((chunk, at)) => {
                console.extend_from_slice(&chunk);
                if reported.is_none() {
                    if let Some(fields) = report_fields(&console) {
                        reported = Some((fields, at - start));
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                exited = child.wait().ok();
                break;
            }
        }
    }
    if exited.is_none() {
        let _ = child.kill();
        exited = child.wait().ok();
    }
    let _ = reader.join();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }

    let count = String::from_utf8_lossy(&console)
        .matches(REPORT_MARKER)
        .count();
    let log = keep_log(&name, &console, &stderr);
    let fail = |reason: String| {
        Err(BootError {
            reason,
            log: log.clone(),
        })
    };
    match reported {
        None if Instant::now() >= deadline => fail(format!(
            "no {} line within {:?} ({} under {})",
            REPORT_MARKER.trim(),
            timeout,
            disk.display(),
            firmware.name()
        )),
        None => fail(format!(
            "qemu exited ({exited:?}) without a {} line",
            REPORT_MARKER.trim()
        )),
        Some(_) if count != 1 => fail(format!("{count} report lines; exactly one expected")),
        Some((fields, elapsed)) => {
            record_time(&name, elapsed);
            BootReport::parse(&fields, elapsed, log.clone()).or_else(fail)
        }
    }
}

/// The text after the marker, once the report line is complete.
fn report_fields(console: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(console);
    let at = text.find(REPORT_MARKER)?;
    let rest = &text[at + REPORT_MARKER.len()..];
    let end = rest.find('\n')?;
    Some(rest[..end].trim_end_matches('\r').to_string())
}

/// OVMF code, and the variables template when the split build is installed (`ovmf` package).
fn ovmf() -> (PathBuf, Option<PathBuf>) {
    let code = Path::new("/usr/share/OVMF/OVMF_CODE.fd");
    let vars = Path::new("/usr/share/OVMF/OVMF_VARS.fd");
    if code.is_file() && vars.is_file() {
        return (code.to_path_buf(), Some(vars.to_path_buf()));
    }
    let whole = Path::new("/usr/share/ovmf/OVMF.fd");
    assert!(
        whole.is_file(),
        "OVMF is not installed (package ovmf): run ci/install-deps"
    );
    (whole.to_path_buf(), None)
}

/// One line per successful boot in `<repo>/.cache/boot-logs/times.txt`: the measured boot
/// times, kept for the record (tests make no timing assertions).
fn record_time(name: &str, elapsed: Duration) {
    use std::io::Write;
    let path = crate::cache().join("boot-logs").join("times.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{name} {:.1}", elapsed.as_secs_f64());
    }
}

fn keep_log(name: &str, console: &[u8], stderr: &str) -> PathBuf {
    let dir = crate::cache().join("boot-logs");
    std::fs::create_dir_all(&dir).unwrap();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let path = dir.join(format!("{name}-{stamp}.log"));
    let mut text = console.to_vec();
    text.extend_from_slice(b"\n--- qemu stderr\n");
    text.extend_from_slice(stderr.as_bytes());
    std::fs::write(&path, text).unwrap();
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_report_line_and_rejects_a_partial_one() {
        let console = b"[ 1.0] x\r\nCOREOS-BOOT-REPORT usr=USR-A verity=ok root=ROOT oem_id=none user_data_sha256=none version=1.2.3 firmware=bios\r\n";
        let f = report_fields(console).unwrap();
        let r = BootReport::parse(&f, Duration::from_secs(1), PathBuf::new()).unwrap();
        assert_eq!(
            (r.usr.as_str(), r.verity.as_str(), r.root.as_str()),
            ("USR-A", "ok", "ROOT")
        );
        assert_eq!(
            (r.oem_id.as_str(), r.version.as_str(), r.firmware.as_str()),
            ("none", "1.2.3", "bios")
        );
        assert!(
            report_fields(b"COREOS-BOOT-REPORT usr=USR-A verity=o").is_none(),
            "incomplete line"
        );
        assert!(
            BootReport::parse("usr=USR-A verity=ok", Duration::ZERO, PathBuf::new())
                .unwrap_err()
                .contains("root")
        );
    }
}
