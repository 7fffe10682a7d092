//! Boot a disk image in qemu (TCG, no network, the disk as a virtio drive with `snapshot=on` so
//! the image is never modified) under UEFI (OVMF) or BIOS (SeaBIOS), and read the one
//! `COREOS-BOOT-REPORT` line the sample OS's initramfs prints on the serial console. Tests that
//! need another machine (a kernel booted directly, more disks, writable disks) build a
//! `Machine` and `run` it.
//!
//! A run is bounded by a timeout, and ends a few seconds after the guest kernel panics (it
//! never recovers, and waiting out the timeout only hides the reason). The whole console log
//! is kept in `<repo>/.cache/boot-logs/` (its path is in the report, and in the error on
//! failure, so a failed test shows why).
//!
//! One panic is the emulator's, not the image's: early in boot Linux checks that the timer
//! interrupt ticks while it spins for a few of its periods, and under TCG on a loaded host
//! qemu's timer thread can miss them all ("IO-APIC + timer doesn't work!", a known failure on
//! overcommitted virtual machines). A machine whose kernel panics there is booted once more,
//! and the retry is logged. A writable disk keeps what firmware and boot loader wrote before
//! the panic (a spent boot try), as a real machine that lost power there would.
//!
//! At most `E2E_VMS` machines (default 2) run at once on the whole machine, whichever test
//! binary starts them: `ci/test` runs two test binaries side by side, each on two threads, and
//! a TCG guest keeps one core busy, so more boots than cores only slow every boot down.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The marker that starts the report line.
pub const REPORT_MARKER: &str = "COREOS-BOOT-REPORT ";

/// What the kernel prints when it panics; the reason follows on the same line.
const PANIC_MARKER: &str = "Kernel panic - not syncing: ";

/// The panic of the timer check that TCG on a loaded host can fail (see the module comment).
const TCG_TIMER_PANIC: &str = "IO-APIC + timer doesn't work!";

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
    /// ROOT's filesystem size in bytes after it grew to fill a larger disk; `no` when the
    /// disk had no room to grow into, `fail` when growing failed.
    pub root_grown: String,
    /// What the boot's update check did: `none` (no update server configured), `applied`
    /// (the mirror's current version written to the other slot), `current` (already running
    /// it), `fail`.
    pub update: String,
    /// Where the initramfs mounted the ESP before coreos-update ran (ROOT's
    /// `/etc/coreos/esp-mount`): the folder, `none` (not asked; also a report without the
    /// field, as the live mode's), or `fail`.
    pub esp: String,
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
            root_grown: get("root_grown")?,
            update: get("update")?,
            esp: map.get("esp").map_or("none", |v| v).to_string(),
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

/// A qemu machine as every test runs one: TCG, 1 GiB, the serial console on stdout, no
/// network, no reboot. The command line is built in `command` only.
pub struct Machine {
    firmware: Firmware,
    direct_boot: Option<DirectBoot>,
    disks: Vec<Disk>,
    /// Boot media attached as a CD or a USB stick (`cdrom`, `usb_disk`).
    boot_media: Vec<String>,
    /// `-nic` argument; `none` unless `nic` sets one.
    nic: Option<String>,
    /// Boot from the network first (qemu's iPXE ROM).
    network_boot: bool,
    /// Another program in qemu's place (the harness's own tests); None runs qemu.
    emulator: Option<PathBuf>,
}

struct DirectBoot {
    kernel: PathBuf,
    initrd: PathBuf,
    append: String,
}

struct Disk {
    path: PathBuf,
    format: String,
    snapshot: bool,
    read_only: bool,
    boot: bool,
}

/// What one run of a machine left behind.
pub struct Run {
    /// Everything the guest printed on the serial console.
    pub console: Vec<u8>,
    /// qemu's exit status; None when it was still running at the timeout or after the grace
    /// period that follows `done`, and was killed.
    pub exited: Option<ExitStatus>,
    /// From starting qemu to the console output on which `done` first held.
    pub done_after: Option<Duration>,
    /// The timeout passed with qemu still running.
    pub timed_out: bool,
    /// The reason of the kernel's panic (the rest of its `Kernel panic - not syncing:` line),
    /// when it panicked; the run then ended a few seconds later.
    pub panic: Option<String>,
    /// The log of a try that was given up for the emulator's timer panic and booted again.
    pub retried: Option<PathBuf>,
    /// From starting qemu to its end.
    pub elapsed: Duration,
    /// The console and qemu's stderr, kept under `<repo>/.cache/boot-logs/`.
    pub log: PathBuf,
}

impl Machine {
    pub fn new(firmware: Firmware) -> Machine {
        Machine {
            firmware,
            direct_boot: None,
            disks: Vec::new(),
            boot_media: Vec::new(),
            nic: None,
            network_boot: false,
            emulator: None,
        }
    }

    /// An ISO image as a read-only IDE CD-ROM, first in the boot order.
    pub fn cdrom(mut self, iso: &Path) -> Machine {
        self.boot_media.extend([
            "-drive".into(),
            format!(
                "if=none,id=cd0,media=cdrom,readonly=on,format=raw,file={}",
                iso.display()
            ),
            "-device".into(),
            "ide-cd,drive=cd0,bootindex=0".into(),
        ]);
        self
    }

    /// A raw image as a USB stick (xHCI, `snapshot=on`: the file is never modified), first in
    /// the boot order.
    pub fn usb_disk(mut self, image: &Path) -> Machine {
        self.boot_media.extend([
            "-device".into(),
            "qemu-xhci,id=xhci".into(),
            "-drive".into(),
            format!(
                "if=none,id=usb0,format=raw,snapshot=on,file={}",
                image.display()
            ),
            "-device".into(),
            "usb-storage,bus=xhci.0,drive=usb0,bootindex=0".into(),
        ]);
        self
    }

    /// A network card: `spec` is qemu's `-nic` argument (e.g. `user,restrict=on,model=...`).
    pub fn nic(mut self, spec: &str) -> Machine {
        self.nic = Some(spec.to_string());
        self
    }

    /// Boot from the network card first (its iPXE option ROM).
    pub fn network_boot(mut self) -> Machine {
        self.network_boot = true;
        self
    }

    /// Start this kernel and initrd directly (qemu's `-kernel`), not a boot loader on a disk.
    pub fn direct_boot(mut self, kernel: &Path, initrd: &Path, append: &str) -> Machine {
        self.direct_boot = Some(DirectBoot {
            kernel: kernel.to_path_buf(),
            initrd: initrd.to_path_buf(),
            append: append.to_string(),
        });
        self
    }

    /// The next virtio disk (`/dev/vda`, `/dev/vdb`, ...). With `snapshot` the file is never
    /// modified (writes go to a temporary overlay); without, the guest writes the file.
    pub fn disk(mut self, path: &Path, format: &str, snapshot: bool) -> Machine {
        self.disks.push(Disk {
            path: path.to_path_buf(),
            format: format.to_string(),
            snapshot,
            read_only: false,
            boot: false,
        });
        self
    }

    /// The last disk added is write-protected: the guest's (and firmware's) writes fail.
    pub fn read_only(mut self) -> Machine {
        self.disks.last_mut().expect("a disk").read_only = true;
        self
    }

    /// The firmware boots from the last disk added (its boot order), not from the first.
    pub fn boot_from_this(mut self) -> Machine {
        self.disks.last_mut().expect("a disk").boot = true;
        self
    }

    /// Run `program` with qemu's arguments instead of qemu (the harness's own tests).
    #[cfg(test)]
    fn emulator(mut self, program: &Path) -> Machine {
        self.emulator = Some(program.to_path_buf());
        self
    }

    /// The command line; `work` holds the private copy of the firmware variables.
    fn command(&self, work: &Path) -> Command {
        let mut cmd = match &self.emulator {
            Some(program) => Command::new(program),
            None => Command::new("qemu-system-x86_64"),
        };
        cmd.args(["-accel", "tcg", "-m", "1024", "-nographic", "-no-reboot"]);
        cmd.arg("-nic").arg(self.nic.as_deref().unwrap_or("none"));
        if self.network_boot {
            cmd.args(["-boot", "order=n"]);
        }
        cmd.args(&self.boot_media);
        match self.firmware {
            Firmware::Uefi => {
                let (code, vars) = ovmf();
                if let Some(vars) = vars {
                    // A private copy: OVMF writes its variables, and parallel boots must not
                    // share them.
                    let copy = work.join("OVMF_VARS.fd");
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
        if let Some(b) = &self.direct_boot {
            cmd.arg("-kernel").arg(&b.kernel);
            cmd.arg("-initrd").arg(&b.initrd);
            cmd.arg("-append").arg(&b.append);
        }
        let boot_order = self.disks.iter().any(|d| d.boot);
        for (i, d) in self.disks.iter().enumerate() {
            let snapshot = if d.snapshot { ",snapshot=on" } else { "" };
            let read_only = if d.read_only { ",readonly=on" } else { "" };
            // A file the guest writes stays sparse where the guest writes zeros (an updater's
            // zero chunks, say): test disks are gigabytes, and CI's disk is not.
            let sparse = if d.snapshot || d.read_only {
                ""
            } else {
                ",discard=unmap,detect-zeroes=unmap"
            };
            let drive = format!(
                "file={},format={}{snapshot}{read_only}{sparse}",
                d.path.display(),
                d.format
            );
            if boot_order {
                // A boot order needs the drive and its device apart (bootindex).
                cmd.arg("-drive").arg(format!("{drive},if=none,id=disk{i}"));
                let index = if d.boot { ",bootindex=0" } else { "" };
                cmd.arg("-device")
                    .arg(format!("virtio-blk-pci,drive=disk{i}{index}"));
            } else {
                cmd.arg("-drive").arg(format!("{drive},if=virtio"));
            }
        }
        cmd
    }

    /// Run until qemu exits or `timeout` passes (then it is killed). Once `done(console)` holds,
    /// or the kernel panics, the guest has a few seconds to power off (or print its trace).
    /// `name` names the kept log. A try that ends in the emulator's timer panic is booted once
    /// more, in the time left (see the module comment).
    pub fn run(&self, name: &str, timeout: Duration, done: impl Fn(&[u8]) -> bool) -> Run {
        let first = self.run_once(name, timeout, &done);
        let emulator_panic = first.panic.as_deref().is_some_and(is_tcg_timer_panic);
        if !emulator_panic || first.done_after.is_some() {
            return first;
        }
        eprintln!(
            "{name}: the guest kernel failed its timer check after {:.1} s, which qemu's TCG \
             does on a loaded host ({}); booting it again (log of that try: {})",
            first.elapsed.as_secs_f64(),
            first.panic.as_deref().unwrap_or_default(),
            first.log.display()
        );
        let left = timeout.saturating_sub(first.elapsed);
        let mut again = self.run_once(&format!("{name}-retry"), left, &done);
        again.retried = Some(first.log);
        again
    }

    fn run_once(&self, name: &str, timeout: Duration, done: &dyn Fn(&[u8]) -> bool) -> Run {
        // The VM slots are for qemu: a stand-in in the harness's tests takes none.
        let _slot = match self.emulator {
            Some(_) => None,
            None => {
                crate::require("qemu-system-x86_64");
                Some(VmSlot::take())
            }
        };
        let work = tempfile::tempdir().expect("temporary folder for the firmware variables");
        let mut cmd = self.command(work.path());
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
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
        let mut done_after: Option<Duration> = None;
        let mut panic: Option<(String, Duration)> = None;
        let deadline = start + timeout;
        let mut exited = None;
        let mut timed_out = false;
        loop {
            let now = Instant::now();
            // After `done`, the guest powers off; allow it a few seconds to do so (counted from
            // `done`, so a guest that stays up, like a live system's shell, ends there too).
            // A panicked kernel gets as long to print its trace.
            let end = done_after.or(panic.as_ref().map(|p| p.1));
            let limit = match end {
                Some(d) => deadline.min(start + d + Duration::from_secs(5)),
                None => deadline,
            };
            if now >= limit {
                timed_out = now >= deadline;
                break;
            }
            match rx.recv_timeout((limit - now).min(Duration::from_millis(200))) {
                Ok((chunk, at)) => {
                    console.extend_from_slice(&chunk);
                    if done_after.is_none() && done(&console) {
                        done_after = Some(at - start);
                    }
                    if panic.is_none() {
                        panic = line_after(&console, PANIC_MARKER).map(|p| (p, at - start));
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
            let _ = child.wait();
        }
        let elapsed = start.elapsed();
        let _ = reader.join();
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        let log = keep_log(name, &console, &stderr);
        Run {
            console,
            exited,
            done_after,
            timed_out,
            panic: panic.map(|p| p.0),
            retried: None,
            elapsed,
            log,
        }
    }
}

/// The panic reason `reason` is the timer check that TCG on a loaded host fails.
fn is_tcg_timer_panic(reason: &str) -> bool {
    reason.starts_with(TCG_TIMER_PANIC)
}

/// One of the machine-wide VM slots: the lock `<cache>/vm-slots/N.lock`, held while the guard
/// lives (the kernel drops it if the test process dies).
struct VmSlot(#[allow(dead_code)] crate::CacheLock);

impl VmSlot {
    fn take() -> VmSlot {
        let slots: usize = std::env::var("E2E_VMS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2)
            .max(1);
        loop {
            if let Some(l) = (0..slots).find_map(|i| crate::try_lock(&format!("vm-slots/{i}"))) {
                return VmSlot(l);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Boot `disk` (`format`: "raw", "vmdk", "qcow2", ...) and wait up to `timeout` for the report.
pub fn boot(
    disk: &Path,
    firmware: Firmware,
    format: &str,
    timeout: Duration,
) -> Result<BootReport, BootError> {
    Machine::new(firmware)
        .disk(disk, format, true)
        .boot_report(&run_name(disk, firmware), timeout)
}

/// `boot` a raw disk without a snapshot: what the guest writes (a grown partition and
/// filesystem) stays in the file for the test to check.
pub fn boot_writable(
    disk: &Path,
    firmware: Firmware,
    timeout: Duration,
) -> Result<BootReport, BootError> {
    Machine::new(firmware)
        .disk(disk, "raw", false)
        .boot_report(&run_name(disk, firmware), timeout)
}

/// A blank qcow2 disk of `bytes` at `path`, for an installer to write. Not raw: the installer
/// zeroes ranges with BLKZEROOUT, which qemu turns into allocated (if unwritten) extents of a
/// raw file, gigabytes per install; qcow2 records them as zero clusters.
pub fn blank_qcow2(path: &Path, bytes: u64) -> PathBuf {
    crate::run(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(path)
            .arg(bytes.to_string()),
    );
    path.to_path_buf()
}

/// `<disk file name>-<firmware>`: the name a boot's log and time are kept under.
fn run_name(disk: &Path, firmware: Firmware) -> String {
    format!(
        "{}-{}",
        disk.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        firmware.name()
    )
}

impl Machine {
    /// Run until the one report line (see `run`; `name` names the log) and parse it.
    pub fn boot_report(&self, name: &str, timeout: Duration) -> Result<BootReport, BootError> {
        let run = self.run(name, timeout, |console| {
            line_after(console, REPORT_MARKER).is_some()
        });
        report(
            &run,
            name,
            &format!("{name} under {}", self.firmware.name()),
            timeout,
        )
    }
}

/// The one report line of a run whose `done` waited for it (as `boot_report` runs a machine);
/// `what` names the machine in errors, `name` the recorded boot time.
pub fn report(
    run: &Run,
    name: &str,
    what: &str,
    timeout: Duration,
) -> Result<BootReport, BootError> {
    let count = String::from_utf8_lossy(&run.console)
        .matches(REPORT_MARKER)
        .count();
    let fail = |reason: String| {
        Err(BootError {
            reason,
            log: run.log.clone(),
        })
    };
    match (line_after(&run.console, REPORT_MARKER), run.done_after) {
        (Some(fields), Some(elapsed)) if count == 1 => {
            record_time(name, elapsed);
            BootReport::parse(&fields, elapsed, run.log.clone()).or_else(fail)
        }
        (Some(_), _) => fail(format!("{count} report lines; exactly one expected")),
        (None, _) if run.panic.is_some() => fail(format!(
            "the kernel panicked ({what}): {}",
            run.panic.as_deref().unwrap_or_default()
        )),
        (None, _) if run.timed_out => fail(format!(
            "no {} line within {:?} ({what})",
            REPORT_MARKER.trim(),
            timeout,
        )),
        (None, _) => fail(format!(
            "qemu exited ({:?}) without a {} line",
            run.exited,
            REPORT_MARKER.trim()
        )),
    }
}

/// The rest of the first console line that contains `marker`, once that line is complete.
pub fn line_after(console: &[u8], marker: &str) -> Option<String> {
    let text = String::from_utf8_lossy(console);
    let at = text.find(marker)?;
    let rest = &text[at + marker.len()..];
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
        let console = b"[ 1.0] x\r\nCOREOS-BOOT-REPORT usr=USR-A verity=ok root=ROOT oem_id=none user_data_sha256=none version=1.2.3 firmware=bios root_grown=no update=none\r\n";
        let f = line_after(console, REPORT_MARKER).unwrap();
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
            line_after(b"COREOS-BOOT-REPORT usr=USR-A verity=o", REPORT_MARKER).is_none(),
            "incomplete line"
        );
        assert!(
            BootReport::parse("usr=USR-A verity=ok", Duration::ZERO, PathBuf::new())
                .unwrap_err()
                .contains("root")
        );
    }

    const REPORT: &str = "COREOS-BOOT-REPORT usr=USR-A verity=ok root=ROOT oem_id=none \
        user_data_sha256=none version=1.2.3 firmware=bios root_grown=no update=none";

    /// A stand-in for qemu in `dir`: its Nth start prints `consoles[N-1]` and then hangs (as a
    /// panicked kernel does) or exits (when the text ends in `EXIT`); `starts` counts them.
    fn stand_in(dir: &Path, consoles: &[&str]) -> (PathBuf, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let starts = dir.join("starts");
        let mut script = format!("#!/bin/sh\necho x >> '{}'\n", starts.display());
        script += &format!("case $(wc -l < '{}') in\n", starts.display());
        for (i, c) in consoles.iter().enumerate() {
            let (text, exit) = match c.strip_suffix("EXIT") {
                Some(t) => (t, "exit 0"),
                None => (*c, "exec sleep 600"),
            };
            let file = dir.join(format!("console-{}", i + 1));
            std::fs::write(&file, format!("{text}\n")).unwrap();
            script += &format!("{}) cat '{}'; {exit};;\n", i + 1, file.display());
        }
        script += "esac\nexit 9\n";
        let program = dir.join("qemu");
        std::fs::write(&program, script).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        (program, starts)
    }

    fn starts(counter: &Path) -> usize {
        std::fs::read_to_string(counter).unwrap().lines().count()
    }

    #[test]
    fn the_emulators_timer_panic_is_booted_again_once() {
        let dir = tempfile::tempdir().unwrap();
        let panic = "[    0.032000] Kernel panic - not syncing: IO-APIC + timer doesn't work!  \
                     Boot with apic=debug and send a report.";
        let (program, counter) = stand_in(dir.path(), &[panic, &format!("{REPORT}EXIT")]);
        let m = Machine::new(Firmware::Bios).emulator(&program);
        // The first try hangs after its panic: only the early end lets the retry finish in time.
        let timeout = Duration::from_secs(60);
        let r = m.boot_report("harness-timer-panic", timeout).unwrap();
        assert_eq!((r.usr.as_str(), r.verity.as_str()), ("USR-A", "ok"));
        assert_eq!(starts(&counter), 2);

        // Twice in a row is not the emulator's bad luck: the second panic is the error.
        let dir = tempfile::tempdir().unwrap();
        let (program, counter) = stand_in(dir.path(), &[panic, panic, &format!("{REPORT}EXIT")]);
        let m = Machine::new(Firmware::Bios).emulator(&program);
        let run = m.run("harness-timer-panic-twice", timeout, |c| {
            line_after(c, REPORT_MARKER).is_some()
        });
        assert_eq!(starts(&counter), 2);
        assert!(!run.timed_out && run.retried.is_some());
        let e = report(&run, "harness-timer-panic-twice", "stand-in", timeout).unwrap_err();
        assert!(
            e.reason.contains("kernel panicked") && e.reason.contains("IO-APIC + timer"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn any_other_panic_ends_the_run_early_and_is_not_retried() {
        let dir = tempfile::tempdir().unwrap();
        let panic = "[    2.100000] Kernel panic - not syncing: Attempted to kill init! \
                     exitcode=0x00000100";
        let (program, counter) = stand_in(dir.path(), &[panic, &format!("{REPORT}EXIT")]);
        let m = Machine::new(Firmware::Uefi).emulator(&program);
        let timeout = Duration::from_secs(60);
        let e = m.boot_report("harness-init-panic", timeout).unwrap_err();
        assert_eq!(starts(&counter), 1);
        assert!(
            e.reason.contains("the kernel panicked") && e.reason.contains("Attempted to kill init"),
            "{}",
            e.reason
        );
        assert!(!e.reason.contains("within"), "not a timeout: {}", e.reason);
    }

    #[test]
    fn vm_slots_are_held_until_dropped() {
        // Two slots (the default). Holding both leaves none for anyone (another descriptor
        // conflicts even in this process), and dropping one frees it.
        if std::env::var_os("E2E_VMS").is_some() {
            eprintln!("E2E_VMS is set: the default's test does not apply");
            return;
        }
        let a = VmSlot::take();
        let b = VmSlot::take();
        assert!((0..2).all(|i| crate::try_lock(&format!("vm-slots/{i}")).is_none()));
        drop(a);
        // A process another test starts at that instant holds a copy of the descriptor until
        // it execs, and the lock with it: allow it a moment.
        let freed = (0..50).any(|_| {
            let free = (0..2).any(|i| crate::try_lock(&format!("vm-slots/{i}")).is_some());
            if !free {
                std::thread::sleep(Duration::from_millis(100));
            }
            free
        });
        assert!(freed, "no slot was free after one was dropped");
        drop(b);
    }
}
