//! Crash safety: stop an edit after every possible number of writes and check that what is
//! left is what the commit order promises: e2fsck may find allocated-but-unreferenced blocks
//! or inodes, stale counts or checksums, but never a reference to something marked free, and
//! `e2fsck -fy` repairs it to a clean filesystem. Needs mkfs.ext4 and e2fsck (e2fsprogs).

use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::process::Command;

use super::device::crash;
use super::{add_file, EditError, NewFile};

const META: NewFile = NewFile {
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: 1_700_000_000,
};

fn mkfs(img: &Path, tree: &Path, args: &[&str]) {
    File::create(img).unwrap().set_len(16 << 20).unwrap();
    let st = Command::new("mkfs.ext4")
        .args(["-F", "-q", "-d"])
        .arg(tree)
        .args(args)
        .arg(img)
        .status()
        .unwrap();
    assert!(st.success(), "mkfs.ext4 failed");
}

/// e2fsck's exit code (reported as 4 when it printed any problem, since some problems
/// answered "no" still exit 0) and its output.
fn e2fsck(img: &Path, mode: &str) -> (i32, String) {
    let out = Command::new("e2fsck").arg(mode).arg(img).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let quiet = text.lines().all(|l| {
        l.is_empty()
            || l.starts_with("Pass ")
            || l.starts_with("e2fsck 1.")
            || l.contains(" files (")
    });
    let code = out.status.code().unwrap_or(-1);
    (if code == 0 && !quiet { 4 } else { code }, text)
}

fn edit(img: &Path, path: &str, data: &[u8]) -> Result<(), EditError> {
    let f = OpenOptions::new().read(true).write(true).open(img).unwrap();
    let len = f.metadata().unwrap().len();
    add_file(&f, 0, len, path, data, META)
}

/// Problems that would mean a dangling reference (something in use but marked free, or an
/// entry of the reachable tree naming a free inode), which the commit order must never
/// produce. New directories are not reachable until the last step links them, and e2fsck
/// names unreachable directories `<ino>` or `???`: entries inside them (their "..", their
/// children) may name inodes whose write the crash cut off; e2fsck clears them.
fn dangling(report: &str) -> Option<&str> {
    report.lines().find(|l| {
        (l.contains("bitmap differences") && l.contains('+'))
            || (l.contains("deleted/unused inode") && !l.contains("???") && !l.contains(" in <"))
            || l.contains("illegal block")
            || l.contains("bad block")
            || l.contains("multiply-claimed")
    })
}

/// i_size of `path` as debugfs reports it.
fn size_of(img: &Path, path: &str) -> u64 {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("stat {path}"))
        .arg(img)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text
        .find("Size: ")
        .unwrap_or_else(|| panic!("no size for {path}: {text}"));
    text[at + 6..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Fill `/many` in `base` until the next entry needs a new directory block; returns that
/// entry's path.
fn name_that_grows(base: &Path) -> String {
    let trial = base.with_extension("trial");
    for k in 0.. {
        let path = format!("/many/{}{k:05}", "n".repeat(200));
        fs::copy(base, &trial).unwrap();
        edit(&trial, &path, b"y").unwrap();
        if size_of(&trial, "/many") > size_of(base, "/many") {
            return path;
        }
        fs::copy(&trial, base).unwrap();
    }
    unreachable!()
}

/// Which file an edit writes.
enum Target {
    Path(&'static str),
    /// A new entry in `/many` that needs a new directory block.
    GrowingMany,
}

fn crash_everywhere(args: &[&str], target: Target, data: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::create_dir_all(tree.join("many")).unwrap();
    for i in 0..150 {
        fs::write(
            tree.join(format!("many/an-entry-with-a-long-name-{i:04}")),
            b"x",
        )
        .unwrap();
    }
    fs::write(tree.join("etc/old"), vec![7u8; 50_000]).unwrap();
    let base = dir.path().join("base.img");
    mkfs(&base, &tree, args);
    let path = match target {
        Target::Path(p) => p.to_string(),
        Target::GrowingMany => name_that_grows(&base),
    };
    let path = path.as_str();
    let img = dir.path().join("img");
    fs::copy(&base, &img).unwrap();
    crash::set_budget(None);
    edit(&img, path, data).unwrap();
    let total = crash::writes();
    assert!(total > 3, "an edit takes several writes ({total})");
    let (rc, report) = e2fsck(&img, "-fn");
    assert_eq!(rc, 0, "complete edit of {path} not clean:\n{report}");
    for n in 0..total {
        fs::copy(&base, &img).unwrap();
        crash::set_budget(Some(n));
        let r = edit(&img, path, data);
        crash::set_budget(None);
        assert!(
            r.is_err(),
            "crash after {n} of {total} writes did not stop the edit"
        );
        let (_, report) = e2fsck(&img, "-fn");
        if let Some(line) = dangling(&report) {
            panic!("{path}: crash after {n}/{total} writes left a dangling reference: {line}\n{report}");
        }
        e2fsck(&img, "-fy");
        let (rc, report) = e2fsck(&img, "-fn");
        assert_eq!(
            rc, 0,
            "{path}: crash after {n}/{total} writes is not repairable:\n{report}"
        );
    }
}

#[test]
fn crash_while_creating_nested_dirs() {
    crash_everywhere(&[], Target::Path("/new/a/b/file"), &[1u8; 30_000]);
}

#[test]
fn crash_while_replacing() {
    crash_everywhere(
        &["-O", "^metadata_csum"],
        Target::Path("/etc/old"),
        &[2u8; 90_000],
    );
}

#[test]
fn crash_while_growing_a_directory() {
    crash_everywhere(&[], Target::GrowingMany, b"y");
}
