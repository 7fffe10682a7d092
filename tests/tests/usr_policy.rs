//! What `coreos-build image` makes of a USR tree's owners and extended attributes, judged by
//! debugfs and, on the kernel-mounted USR-A, getfattr and getcap:
//! - a tree unpacked by an unprivileged user and built by that user (`setpriv` to nobody):
//!   `--all-root` gives root ownership with the setuid bits intact; without it the build
//!   warns with the count and an example; `--owners FILE` sets what it names;
//! - the build host's security.selinux and user.* attributes are left out by default,
//!   security.capability stays; `--keep-xattrs` keeps them all.

use e2e::{as_nobody, bin, require, run, Loop, Mount};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const USR_A_OFFSET: u64 = 270336 * 512;
const USR_A_FS_BYTES: u64 = 260094 * 4096;

/// A folder every user may write (tests run as root; the builds as nobody).
fn shared_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o777)).unwrap();
    d
}

/// A root-owned tree with a setuid binary, packed by root and unpacked by nobody with
/// `tar -xp` (as `dpkg-deb -x` does): every entry is nobody's, the modes are the archive's.
fn unpacked_by_nobody(work: &Path) -> PathBuf {
    let src = work.join("src");
    fs::create_dir_all(src.join("bin")).unwrap();
    fs::create_dir_all(src.join("boot")).unwrap();
    fs::create_dir_all(src.join("share/doc")).unwrap();
    fs::write(src.join("bin/su"), b"#!/bin/sh\necho su\n").unwrap();
    fs::set_permissions(src.join("bin/su"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(src.join("bin/wall"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(src.join("bin/wall"), fs::Permissions::from_mode(0o2755)).unwrap();
    fs::write(src.join("boot/vmlinuz"), b"not a kernel").unwrap();
    fs::write(src.join("share/doc/README"), b"docs").unwrap();
    let tar = work.join("usr.tar");
    run(Command::new("tar")
        .args(["--owner=0", "--group=0", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(&src)
        .arg("."));
    fs::set_permissions(&tar, fs::Permissions::from_mode(0o644)).unwrap();
    let usr = work.join("usr");
    run(&mut as_nobody(Command::new("mkdir").arg(&usr)));
    run(&mut as_nobody(
        Command::new("tar")
            .arg("-xpf")
            .arg(&tar)
            .arg("-C")
            .arg(&usr),
    ));
    usr
}

fn image(usr: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(bin("coreos-build"));
    c.env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["-q", "image", "--usr"])
        .arg(usr)
        .arg("--output")
        .arg(out)
        .args(extra);
    c
}

/// USR-A of an image as debugfs names it.
fn usr_a(out: &Path) -> String {
    format!(
        "{}?offset={USR_A_OFFSET}",
        out.join("coreos_production_image.bin").display()
    )
}

/// (mode, uid, gid) of `path` in USR-A, read by debugfs.
fn stat(out: &Path, path: &str) -> (String, u32, u32) {
    require("debugfs");
    let o = run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("stat {path}"))
        .arg(usr_a(out)));
    let text = String::from_utf8_lossy(&o.stdout);
    let word_after = |key: &str| -> String {
        text.split(key)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {key} in debugfs stat {path}:\n{text}"))
            .to_string()
    };
    (
        word_after("Mode:"),
        word_after("User:").parse().unwrap(),
        word_after("Group:").parse().unwrap(),
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn unprivileged_build_with_all_root_keeps_setuid_bits() {
    let work = shared_dir();
    let usr = unpacked_by_nobody(work.path());
    let out = work.path().join("out");
    let o = run(&mut as_nobody(&mut image(&usr, &out, &["--all-root"])));
    assert!(!stderr(&o).contains("not owned by root"), "{}", stderr(&o));
    assert_eq!(stat(&out, "/bin/su"), ("04755".into(), 0, 0));
    assert_eq!(stat(&out, "/bin/wall"), ("02755".into(), 0, 0));
    assert_eq!(stat(&out, "/share/doc/README"), ("0644".into(), 0, 0));
    assert_eq!(stat(&out, "/"), ("0755".into(), 0, 0));
    // The published listing says what the image holds, not who unpacked the tree.
    assert_eq!(listed(&out, "./usr/bin/su"), "-rwsr-xr-x 1 root root");
}

/// Mode, links and owners of `path` in the image's `_contents.txt`.
fn listed(out: &Path, path: &str) -> String {
    let text = fs::read_to_string(out.join("coreos_production_image_contents.txt")).unwrap();
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(7) == Some(path))
        .unwrap_or_else(|| panic!("{path} is not listed:\n{text}"));
    line.split_whitespace()
        .take(4)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn unprivileged_build_without_an_option_warns_and_owners_file_sets_owners() {
    let work = shared_dir();
    let usr = unpacked_by_nobody(work.path());
    let out = work.path().join("out");
    let o = run(&mut as_nobody(&mut image(&usr, &out, &[])));
    // Root folder, bin, bin/su, bin/wall, boot, boot/vmlinuz, share, share/doc, its README.
    let warn = stderr(&o);
    assert!(
        warn.contains("9 USR entries are not owned by root, e.g. /usr (uid 65534, gid 65534)"),
        "{warn}"
    );
    assert_eq!(stat(&out, "/bin/su"), ("04755".into(), 65534, 65534));
    assert_eq!(listed(&out, "./usr/bin/su"), "-rwsr-xr-x 1 65534 65534");

    let owners = work.path().join("owners");
    fs::write(
        &owners,
        "# path uid gid mode\n/ 0 0 -\nbin 0 0 -\nbin/su 0 0 4755\nbin/wall 0 5 2755\n",
    )
    .unwrap();
    let o = run(&mut as_nobody(&mut image(
        &usr,
        &out,
        &["--owners", owners.to_str().unwrap()],
    )));
    assert!(!stderr(&o).contains("not owned by root"), "{}", stderr(&o));
    assert_eq!(stat(&out, "/bin/su"), ("04755".into(), 0, 0));
    assert_eq!(stat(&out, "/bin/wall"), ("02755".into(), 0, 5));
    assert_eq!(stat(&out, "/boot/vmlinuz").1, 65534, "not in the manifest");
    assert_eq!(listed(&out, "./usr/bin/wall"), "-rwxr-sr-x 1 root 5");
}

/// `release` builds its image with the same options: unprivileged, `--all-root` and
/// `--owners` publish an image whose USR is root's (read in the raw image `--include-raw` adds),
/// and neither warns.
#[test]
fn unprivileged_release_takes_all_root_and_owners() {
    let work = shared_dir();
    let usr = unpacked_by_nobody(work.path());
    let owners = work.path().join("owners");
    fs::write(&owners, "/ 0 0 -\nbin/su 0 0 4755\nbin/wall 0 5 2755\n").unwrap();
    let release = |name: &str, extra: &[&str]| -> (PathBuf, String) {
        let mirror = work.path().join(name);
        let mut c = Command::new(bin("coreos-build"));
        c.env("SOURCE_DATE_EPOCH", "1700000000")
            .args([
                "-q",
                "release",
                "--version",
                "1.0.0",
                "--no-oem",
                "--include-raw",
            ])
            .arg("--usr")
            .arg(&usr)
            .arg("--output")
            .arg(&mirror)
            .args(extra);
        let o = run(&mut as_nobody(&mut c));
        (mirror.join("amd64-usr/1.0.0"), stderr(&o))
    };
    let (out, warn) = release("all-root", &["--all-root"]);
    assert!(!warn.contains("not owned by root"), "{warn}");
    assert_eq!(stat(&out, "/bin/su"), ("04755".into(), 0, 0));
    assert_eq!(stat(&out, "/share/doc/README"), ("0644".into(), 0, 0));

    let (out, warn) = release("with-owners", &["--owners", owners.to_str().unwrap()]);
    assert!(!warn.contains("not owned by root"), "{warn}");
    assert_eq!(stat(&out, "/bin/wall"), ("02755".into(), 0, 5));
    assert_eq!(
        stat(&out, "/share/doc/README").1,
        65534,
        "not in the manifest"
    );

    let (out, warn) = release("neither", &[]);
    assert!(
        warn.contains("9 USR entries are not owned by root, e.g. /usr (uid 65534, gid 65534)"),
        "{warn}"
    );
    assert_eq!(stat(&out, "/bin/su"), ("04755".into(), 65534, 65534));
}

/// The attribute names of `path` (getfattr -m -, not following links).
fn xattr_names(path: &Path) -> Vec<String> {
    require("getfattr");
    let o = run(Command::new("getfattr")
        .args(["--absolute-names", "-h", "-m", "-"])
        .arg(path));
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn host_labels_are_left_out_capabilities_kept() {
    require("setfattr");
    require("setcap");
    require("getcap");
    let work = tempfile::tempdir().unwrap();
    let usr = work.path().join("usr");
    fs::create_dir_all(usr.join("bin")).unwrap();
    fs::create_dir_all(usr.join("boot")).unwrap();
    fs::write(usr.join("boot/vmlinuz"), b"not a kernel").unwrap();
    let ping = usr.join("bin/ping");
    fs::write(&ping, b"#!/bin/sh\n").unwrap();
    run(Command::new("setcap").arg("cap_net_raw+ep").arg(&ping));
    run(Command::new("setfattr")
        .args(["-n", "user.origin", "-v", "build-host"])
        .arg(&ping));
    run(Command::new("setfattr")
        .args(["-n", "security.selinux", "-v", "system_u:object_r:bin_t:s0"])
        .arg(&ping));
    run(Command::new("setfattr")
        .args(["-n", "user.dir", "-v", "1"])
        .arg(usr.join("bin")));
    for (extra, want) in [
        (&[][..], vec!["security.capability"]),
        (
            &["--keep-xattrs"][..],
            vec!["security.capability", "security.selinux", "user.origin"],
        ),
    ] {
        let out = work.path().join("out");
        run(&mut image(&usr, &out, extra));
        let lo = Loop::attach_range(
            &out.join("coreos_production_image.bin"),
            USR_A_OFFSET,
            USR_A_FS_BYTES,
        );
        let m = Mount::ro(&lo.dev, "ext4");
        assert_eq!(xattr_names(&m.path().join("bin/ping")), want, "{extra:?}");
        let caps = run(Command::new("getcap").arg(m.path().join("bin/ping")));
        assert!(
            String::from_utf8_lossy(&caps.stdout).contains("cap_net_raw=ep"),
            "{extra:?}: {}",
            String::from_utf8_lossy(&caps.stdout)
        );
        let dir = xattr_names(&m.path().join("bin"));
        assert_eq!(
            dir.is_empty(),
            extra.is_empty(),
            "{extra:?}: bin has {dir:?}"
        );
    }
}
