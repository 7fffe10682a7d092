//! Shared fixtures for the end-to-end tests in `tests/tests/`: where the binaries are, the
//! cached inputs (a Debian minbase tree, the sample OS), loop devices that detach themselves,
//! and running real tools with their output kept for the failure message.
//!
//! Fixtures live in `<repo>/.cache/` (ignored by git) and are made once, under a file lock, so
//! parallel test processes share them.

pub mod httpfault;
pub mod install_fixture;
pub mod nginx;
pub mod partitions;

use std::fs::{self, File};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `<repo>/.cache`, created on demand.
pub fn cache() -> PathBuf {
    let d = repo().join(".cache");
    fs::create_dir_all(&d).unwrap();
    d
}

/// Path of a project binary: `$COREOS_BIN_DIR/<name>` when set (ci/test sets it to the release
/// build), else `target/release/<name>` or `target/debug/<name>`, whichever is newer.
pub fn bin(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("COREOS_BIN_DIR") {
        return Path::new(&dir).join(name);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target"));
    let triple = target.join("x86_64-unknown-linux-gnu");
    let candidates = [
        triple.join("release").join(name),
        triple.join("debug").join(name),
        target.join("release").join(name),
        target.join("debug").join(name),
    ];
    candidates
        .iter()
        .filter(|p| p.exists())
        .max_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
        .cloned()
        .unwrap_or_else(|| panic!("{name} is not built: run `cargo build --release` first"))
}

/// Run a command; panic with its stdout/stderr if it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Run a command that must fail; returns its combined output for checking the message.
pub fn run_fail(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "{cmd:?} should have failed but succeeded:\n{text}"
    );
    text
}

/// Panics when a tool the tests need is missing (ci/test installs them all).
pub fn require(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{tool} is not installed: run ci/test (it installs every package the tests need)"
    );
}

/// The unprivileged user the tests run builds as.
pub const NOBODY: &str = "nobody";

/// `cmd` run as nobody (setpriv: nobody's uid, nogroup, no supplementary groups), with its
/// environment.
pub fn as_nobody(cmd: &mut Command) -> Command {
    require("setpriv");
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid",
        NOBODY,
        "--regid",
        "nogroup",
        "--clear-groups",
        "--",
    ])
    .arg(cmd.get_program())
    .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

/// An exclusive lock on `<cache>/<name>.lock`, held while the guard lives.
pub struct CacheLock(#[allow(dead_code)] File);

pub fn lock(name: &str) -> CacheLock {
    flock(name, libc::LOCK_EX).unwrap_or_else(|| panic!("flock {name}"))
}

/// `lock` if no other holds it now, else None.
pub fn try_lock(name: &str) -> Option<CacheLock> {
    flock(name, libc::LOCK_EX | libc::LOCK_NB)
}

fn flock(name: &str, op: libc::c_int) -> Option<CacheLock> {
    let path = cache().join(format!("{name}.lock"));
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap();
    }
    let f = File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // SAFETY: flock on a valid descriptor.
    let rc = unsafe { libc::flock(f.as_raw_fd(), op) };
    (rc == 0).then_some(CacheLock(f))
}

/// A Debian bookworm minbase tree (debootstrap, made once). Returns the tree root; its `usr/`
/// is the realistic `/usr` input (about 560 MB in 11,700 entries).
pub fn debian_minbase() -> PathBuf {
    let _l = lock("minbase");
    let dir = cache().join("minbase");
    if !dir.join(".complete").exists() {
        let _ = fs::remove_dir_all(&dir);
        run(Command::new(repo().join("ci/minbase")).arg(&dir));
    }
    dir
}

/// The sample OS from Debian packages (ci/sample-os: the Debian part made once, the project's
/// binaries refreshed; once per test process). Returns the folder holding `usr/`.
pub fn sample_os() -> PathBuf {
    static READY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            let _l = lock("sample-os");
            let dir = cache().join("sample-os");
            let mut cmd = Command::new(repo().join("ci/sample-os"));
            if let Some(b) = bin_dir() {
                cmd.env("COREOS_BIN_DIR", b);
            }
            run(cmd.arg(&dir));
            dir
        })
        .clone()
}

/// The folder the project's binaries are taken from (see `bin`).
fn bin_dir() -> Option<PathBuf> {
    bin("coreos-install").parent().map(Path::to_path_buf)
}

/// A loop device over a file, detached (by name) when dropped.
pub struct Loop {
    pub dev: PathBuf,
}

impl Loop {
    /// Attach `file` (read-write, with partition scanning when `partscan`).
    pub fn attach(file: &Path, partscan: bool) -> Loop {
        let mut c = Command::new("losetup");
        c.arg("--find").arg("--show");
        if partscan {
            c.arg("--partscan");
        }
        let out = run(c.arg(file));
        let dev = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        if partscan {
            // Partition nodes do not always appear by themselves here; BLKPG makes them.
            let _ = Command::new("partx").arg("-a").arg(&dev).output();
        }
        Loop { dev }
    }

    /// Attach a byte range of `file` read-only (for mounting one partition).
    pub fn attach_range(file: &Path, offset: u64, size: u64) -> Loop {
        let out = run(Command::new("losetup")
            .args(["--find", "--show", "--read-only"])
            .arg(format!("--offset={offset}"))
            .arg(format!("--sizelimit={size}"))
            .arg(file));
        Loop {
            dev: PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()),
        }
    }

    /// `/dev/loopNpM`.
    pub fn part(&self, n: u32) -> PathBuf {
        PathBuf::from(format!("{}p{n}", self.dev.display()))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// A read-only mount, unmounted when dropped.
pub struct Mount {
    pub dir: tempfile::TempDir,
}

impl Mount {
    pub fn ro(dev: &Path, fstype: &str) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("mount")
            .args(["-t", fstype, "-o", "ro"])
            .arg(dev)
            .arg(dir.path()));
        Mount { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mount {
    /// `umount` can fail with EBUSY for a moment after the last file in the mount is closed:
    /// a child that another thread of this process has forked holds copies of its descriptors
    /// until it execs (seen with suites side by side: a mount and its loop device left behind).
    /// So retry, and at last detach lazily, which frees the loop device once nothing holds it.
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut c = Command::new("umount");
            if lazy {
                c.arg("--lazy");
            }
            c.arg(self.dir.path())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        for _ in 0..50 {
            if umount(false) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!(
            "{} stayed busy for 5 s: detached lazily",
            self.dir.path().display()
        );
        umount(true);
    }
}

/// Hex sha256 of a file.
pub fn sha256_file(p: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut f = File::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Byte ranges of `f` that hold data (SEEK_DATA/SEEK_HOLE); elsewhere it reads zeros.
fn data_ranges(f: &File) -> Vec<(u64, u64)> {
    let len = f.metadata().unwrap().len() as i64;
    let mut out = Vec::new();
    let mut pos = 0i64;
    while pos < len {
        // SAFETY: lseek on an open descriptor.
        let start = unsafe { libc::lseek(f.as_raw_fd(), pos, libc::SEEK_DATA) };
        if start < 0 {
            break; // ENXIO: no data after pos
        }
        // SAFETY: lseek on an open descriptor.
        let end = unsafe { libc::lseek(f.as_raw_fd(), start, libc::SEEK_HOLE) };
        assert!(end > start, "SEEK_HOLE after {start}");
        out.push((start as u64, end as u64));
        pos = end;
    }
    out
}

/// Whether two files hold the same bytes, reading only where either holds data: a sparse
/// 30 GiB disk compares in the time its data takes.
pub fn same_content(x: &Path, y: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    let (fx, fy) = (File::open(x).unwrap(), File::open(y).unwrap());
    if fx.metadata().unwrap().len() != fy.metadata().unwrap().len() {
        return false;
    }
    let (mut bx, mut by) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    for (start, end) in data_ranges(&fx).into_iter().chain(data_ranges(&fy)) {
        let mut at = start;
        while at < end {
            let n = ((end - at) as usize).min(bx.len());
            fx.read_exact_at(&mut bx[..n], at).unwrap();
            fy.read_exact_at(&mut by[..n], at).unwrap();
            if bx[..n] != by[..n] {
                return false;
            }
            at += n as u64;
        }
    }
    true
}

pub mod qemu;
