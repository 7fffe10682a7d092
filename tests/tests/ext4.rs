//! `coreos-build mkfs ext4` judged by real tools: e2fsck, the kernel (loop mount), and a
//! walker that compares every entry of the mounted image with the source tree.

use e2e::{bin, require, run, run_fail, Loop, Mount};
use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const EPOCH: &str = "1700000000";

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn setxattr(p: &Path, name: &str, value: &[u8]) {
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings and a valid value buffer.
    let rc = unsafe {
        libc::lsetxattr(
            c(p).as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "setxattr {name} on {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn mknod(p: &Path, mode: u32, major: u32, minor: u32) {
    // SAFETY: valid C string.
    let rc = unsafe { libc::mknod(c(p).as_ptr(), mode, libc::makedev(major, minor)) };
    assert_eq!(
        rc,
        0,
        "mknod {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn chown(p: &Path, uid: u32, gid: u32) {
    // SAFETY: valid C string.
    let rc = unsafe { libc::lchown(c(p).as_ptr(), uid, gid) };
    assert_eq!(rc, 0, "lchown {}", p.display());
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A tree with every kind of entry the writer supports (and a socket it must skip).
fn every_kind(root: &Path) {
    let w = |name: &str, data: &[u8]| fs::write(root.join(name), data).unwrap();
    w("empty", b"");
    w("small", b"x");
    w("oneblock", &[7u8; 4096]);
    let multi: Vec<u8> = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    w("multi", &multi);
    // 3 GiB with two islands of data: holes must stay holes.
    let f = fs::File::create(root.join("sparse")).unwrap();
    f.set_len(3 << 30).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"middle", 1 << 30).unwrap();
    f.write_all_at(b"end", (3 << 30) - 3).unwrap();
    fs::create_dir_all(root.join("deep/a/b/c/d/e/f/g/h")).unwrap();
    w("deep/a/b/c/d/e/f/g/h/leaf", b"leaf");
    fs::create_dir(root.join("many")).unwrap();
    for i in 0..5000 {
        fs::write(root.join(format!("many/entry-{i:05}")), i.to_string()).unwrap();
    }
    w(&"n".repeat(255), b"long name");
    let odd = std::ffi::OsStr::from_bytes(b"odd\x01\xff \n\tname\\*?");
    fs::write(root.join(odd), b"odd").unwrap();
    symlink("small", root.join("fast")).unwrap();
    symlink("y".repeat(300), root.join("slow")).unwrap();
    symlink("z".repeat(59), root.join("fast59")).unwrap();
    symlink("z".repeat(60), root.join("slow60")).unwrap();
    fs::hard_link(root.join("small"), root.join("hard1")).unwrap();
    fs::create_dir(root.join("sub")).unwrap();
    fs::hard_link(root.join("small"), root.join("sub/hard2")).unwrap();
    fs::hard_link(root.join("oneblock"), root.join("sub/hard3")).unwrap();
    mknod(&root.join("null"), libc::S_IFCHR | 0o666, 1, 3);
    mknod(&root.join("bigdev"), libc::S_IFBLK | 0o660, 259, 300000);
    mknod(&root.join("fifo"), libc::S_IFIFO | 0o644, 0, 0);
    let _sock = std::os::unix::net::UnixListener::bind(root.join("socket")).unwrap();
    chmod(&root.join("small"), 0o4755);
    chmod(&root.join("sub"), 0o2775);
    chmod(&root.join("many"), 0o1777);
    chown(&root.join("oneblock"), 1234, 5678);
    chown(&root.join("multi"), 100000, 200000);
    chown(&root.join("fast"), 42, 43);
    setxattr(&root.join("small"), "user.mime", b"text/plain");
    setxattr(&root.join("small"), "trusted.note", b"1");
    setxattr(
        &root.join("oneblock"),
        "security.capability",
        &[
            1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    );
    setxattr(
        &root.join("oneblock"),
        "security.selinux",
        b"system_u:object_r:bin_t:s0\0",
    );
    // Too big for the inode: goes to an xattr block (shared by the two files).
    for f in ["multi", "empty"] {
        setxattr(&root.join(f), "user.big", &[b'v'; 1500]);
        setxattr(&root.join(f), "user.big2", &[b'w'; 1000]);
    }
    setxattr(&root.join("sub"), "user.dir", b"yes");
    // A POSIX ACL (VFS form; ext4 stores it in its own shorter form).
    w("acl", b"acl");
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, 1000),
        (0x04, 4, u32::MAX),
        (0x08, 6, 2000),
        (0x10, 6, u32::MAX),
        (0x20, 4, u32::MAX),
    ] {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&perm.to_le_bytes());
        acl.extend_from_slice(&id.to_le_bytes());
    }
    setxattr(&root.join("acl"), "system.posix_acl_access", &acl);
}

fn mkfs(source: Option<&Path>, out: &Path, size: &str, extra: &[&str]) -> std::process::Output {
    mkfs_at(EPOCH, source, out, size, extra)
}

fn mkfs_at(
    epoch: &str,
    source: Option<&Path>,
    out: &Path,
    size: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut cmd = Command::new(bin("coreos-build"));
    cmd.env("SOURCE_DATE_EPOCH", epoch)
        .args(["-q", "mkfs", "ext4", "--size", size, "--output"])
        .arg(out);
    if let Some(s) = source {
        cmd.arg("--source").arg(s);
    }
    cmd.args(extra);
    run(&mut cmd)
}

/// `e2fsck -fn` exits 0 and proposes no fix.
fn fsck_clean(img: &Path) {
    require("e2fsck");
    let out = Command::new("e2fsck").arg("-fn").arg(img).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("Fix?") && !text.contains("Fix<y>?"),
        "e2fsck -fn {}:\n{text}",
        img.display()
    );
}

/// A copy of an image with the read-only marker cleared (e2fsck refuses the marked one).
fn without_marker(img: &Path) -> tempfile::NamedTempFile {
    let copy = tempfile::NamedTempFile::new_in(img.parent().unwrap()).unwrap();
    run(Command::new("cp")
        .arg("--sparse=always")
        .arg(img)
        .arg(copy.path()));
    let f = fs::OpenOptions::new()
        .write(true)
        .open(copy.path())
        .unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&[0], 0x467).unwrap();
    copy
}

fn xattrs(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let cp = c(p);
    let mut list = vec![0u8; 65536];
    // SAFETY: valid buffers.
    let n = unsafe { libc::llistxattr(cp.as_ptr(), list.as_mut_ptr().cast(), list.len()) };
    assert!(n >= 0, "llistxattr {}", p.display());
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = list[..n as usize]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|name| {
            let cn = CString::new(name).unwrap();
            let mut v = vec![0u8; 65536];
            // SAFETY: valid buffers.
            let r = unsafe {
                libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len())
            };
            assert!(r >= 0);
            v.truncate(r as usize);
            (name.to_vec(), v)
        })
        .collect();
    out.sort();
    out
}

/// How many names each non-directory inode of `root` has inside `root` (a source file may
/// also be linked from outside the tree; the image holds only the names inside).
fn names_inside(root: &Path) -> HashMap<u64, u64> {
    let mut count = HashMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                *count.entry(m.ino()).or_insert(0) += 1;
            }
        }
    }
    count
}

/// Walk `src` and the mounted image side by side: names, types, modes, owners, sizes,
/// content, link targets, device numbers, xattrs and hard-link groups must agree.
fn compare(src: &Path, img: &Path) {
    let names = names_inside(src);
    let mut links: HashMap<u64, u64> = HashMap::new();
    let mut back: HashMap<u64, u64> = HashMap::new();
    let mut checked = 0usize;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let (s, i) = (src.join(&rel), img.join(&rel));
        let mut sn: Vec<_> = fs::read_dir(&s)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let mut inames: Vec<_> = fs::read_dir(&i)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        sn.retain(|n| {
            !fs::symlink_metadata(s.join(n))
                .unwrap()
                .file_type()
                .is_socket_like()
        });
        if rel.as_os_str().is_empty() {
            inames.retain(|n| n != "lost+found" || sn.iter().any(|x| x == "lost+found"));
        }
        sn.sort();
        inames.sort();
        assert_eq!(sn, inames, "names in {}", rel.display());
        for n in sn {
            let r = rel.join(&n);
            let (sp, ip) = (src.join(&r), img.join(&r));
            let (sm, im) = (
                fs::symlink_metadata(&sp).unwrap(),
                fs::symlink_metadata(&ip).unwrap(),
            );
            let what = r.display().to_string();
            assert_eq!(sm.mode(), im.mode(), "mode of {what}");
            assert_eq!(
                (sm.uid(), sm.gid()),
                (im.uid(), im.gid()),
                "owner of {what}"
            );
            assert_eq!(xattrs(&sp), xattrs(&ip), "xattrs of {what}");
            let ft = sm.file_type();
            if ft.is_dir() {
                stack.push(r);
            } else {
                assert_eq!(names[&sm.ino()], im.nlink(), "link count of {what}");
                let a = *links.entry(sm.ino()).or_insert(im.ino());
                let b = *back.entry(im.ino()).or_insert(sm.ino());
                assert!(
                    a == im.ino() && b == sm.ino(),
                    "hard-link groups differ at {what}"
                );
                if ft.is_file() {
                    assert_eq!(sm.size(), im.size(), "size of {what}");
                    if sm.size() < 64 << 20 {
                        let (hs, hi) = (e2e::sha256_file(&sp), e2e::sha256_file(&ip));
                        assert_eq!(hs, hi, "content of {what}");
                    } else {
                        // Multi-GiB (mostly sparse) files: a byte comparison is as strict and
                        // much faster than hashing gigabytes of zeros twice.
                        assert!(e2e::same_content(&sp, &ip), "content of {what}");
                    }
                    // Holes stay holes: the image copy uses no more blocks than the source.
                    assert!(
                        im.blocks() <= sm.blocks() + 8 * 4,
                        "{what} lost its holes: {} > {}",
                        im.blocks(),
                        sm.blocks()
                    );
                } else if ft.is_symlink() {
                    assert_eq!(
                        fs::read_link(&sp).unwrap(),
                        fs::read_link(&ip).unwrap(),
                        "target of {what}"
                    );
                } else {
                    assert_eq!(sm.rdev(), im.rdev(), "device number of {what}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "nothing was compared");
}

trait SocketLike {
    fn is_socket_like(&self) -> bool;
}
impl SocketLike for fs::FileType {
    fn is_socket_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_socket()
    }
}

fn mount_and_compare(src: &Path, img: &Path) {
    let lo = Loop::attach(img, false);
    let m = Mount::ro(&lo.dev, "ext4");
    compare(src, m.path());
}

#[test]
fn every_kind_ext4() {
    let src = tempfile::tempdir().unwrap();
    every_kind(src.path());
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("fs.img");
    mkfs(Some(src.path()), &img, "256MiB", &["--label", "TEST"]);
    fsck_clean(&img);
    mount_and_compare(src.path(), &img);
}

#[test]
fn every_kind_ext2compat() {
    let src = tempfile::tempdir().unwrap();
    every_kind(src.path());
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("fs.img");
    mkfs(Some(src.path()), &img, "256MiB", &["--ext2"]);
    fsck_clean(&img);
    mount_and_compare(src.path(), &img);
}

#[test]
fn minbase_usr_ext4() {
    let usr = e2e::debian_minbase().join("usr");
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("usr.img");
    mkfs(Some(&usr), &img, "1GiB", &[]);
    fsck_clean(&img);
    mount_and_compare(&usr, &img);
}

#[test]
fn minbase_usr_ext2compat_read_only() {
    let usr = e2e::debian_minbase().join("usr");
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("usr.img");
    let size = (260094u64 * 4096).to_string();
    mkfs(
        Some(&usr),
        &img,
        &size,
        &["--ext2", "--read-only", "--label", "USR-A"],
    );
    assert_eq!(fs::read(&img).unwrap()[0x467], 0xff, "read-only marker");
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "e2fsck should refuse the marked filesystem"
    );
    fsck_clean(without_marker(&img).path());
    let lo = Loop::attach(&img, false);
    {
        let m = Mount::ro(&lo.dev, "ext4");
        compare(&usr, m.path());
    }
    let dir = tempfile::tempdir().unwrap();
    let rw = Command::new("mount")
        .args(["-t", "ext4", "-o", "rw"])
        .arg(&lo.dev)
        .arg(dir.path())
        .output()
        .unwrap();
    if rw.status.success() {
        let _ = Command::new("umount").arg(dir.path()).status();
        panic!("the kernel mounted a read-only-marked filesystem read-write");
    }
}

#[test]
fn builds_are_byte_identical() {
    let src = tempfile::tempdir().unwrap();
    every_kind(src.path());
    let work = tempfile::tempdir().unwrap();
    // The second epoch lies in the future, so no time is clamped to it.
    for (epoch, extra) in [
        (EPOCH, &[][..]),
        (EPOCH, &["--ext2"][..]),
        ("4000000000", &[][..]),
    ] {
        let (a, b) = (work.path().join("a.img"), work.path().join("b.img"));
        mkfs_at(epoch, Some(src.path()), &a, "128MiB", extra);
        // Between builds the tree is read (atimes move) and re-chmodded to the same modes
        // (ctimes move): neither may change the image.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        fs::read(src.path().join("multi")).unwrap();
        chmod(&src.path().join("small"), 0o4755);
        mkfs_at(epoch, Some(src.path()), &b, "128MiB", extra);
        assert_eq!(
            e2e::sha256_file(&a),
            e2e::sha256_file(&b),
            "two builds differ ({extra:?})"
        );
        fs::remove_file(&a).unwrap();
        fs::remove_file(&b).unwrap();
    }
}

/// mtime with its nanoseconds, as the kernel reports it.
fn mtime_of(p: &Path) -> (i64, i64) {
    let m = fs::symlink_metadata(p).unwrap();
    (m.mtime(), m.mtime_nsec())
}

fn set_mtime(p: &Path, secs: i64, nanos: i64) {
    let times = [
        libc::timespec {
            tv_sec: secs,
            tv_nsec: nanos,
        },
        libc::timespec {
            tv_sec: secs,
            tv_nsec: nanos,
        },
    ];
    // SAFETY: valid C string and two timespecs.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c(p).as_ptr(), times.as_ptr(), 0) };
    assert_eq!(rc, 0, "utimensat {}", p.display());
}

/// 256-byte inodes keep nanoseconds and times past 2038 (the epoch bits of i_*_extra);
/// 128-byte inodes (the ext2 form) keep whole seconds up to 2038-01-19. Times later than
/// SOURCE_DATE_EPOCH become it, in both.
#[test]
fn times_past_2038_and_nanoseconds() {
    let src = tempfile::tempdir().unwrap();
    let cases: [(&str, i64, i64); 4] = [
        ("y1999", 946_684_799, 999_999_999),
        ("y2040", 2_208_988_800, 123_456_789),
        ("y1960", -315_619_200, 5),
        ("after-epoch", 4_100_000_000, 7),
    ];
    for (name, secs, nanos) in cases {
        fs::write(src.path().join(name), name).unwrap();
        set_mtime(&src.path().join(name), secs, nanos);
    }
    let work = tempfile::tempdir().unwrap();
    let epoch = 4_000_000_000i64; // 2096
    for (extra, large) in [(&[][..], true), (&["--ext2"][..], false)] {
        let img = work.path().join("t.img");
        let _ = fs::remove_file(&img);
        mkfs_at(&epoch.to_string(), Some(src.path()), &img, "64MiB", extra);
        // The superblock was written in 2096: tell e2fsck not to trust this machine's clock.
        let conf = work.path().join("e2fsck.conf");
        fs::write(&conf, "[options]\nbroken_system_clock = 1\n").unwrap();
        let out = Command::new("e2fsck")
            .arg("-fn")
            .arg(&img)
            .env("E2FSCK_CONFIG", &conf)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !text.contains("Fix"), "{text}");
        let lo = Loop::attach(&img, false);
        let m = Mount::ro(&lo.dev, "ext4");
        for (name, secs, nanos) in cases {
            let want = match (large, secs) {
                (_, s) if s > epoch => (epoch.min(if large { s } else { i32::MAX as i64 }), 0),
                (false, s) if s > i32::MAX as i64 => (i32::MAX as i64, 0),
                (false, s) => (s, 0),
                (true, s) => (s, nanos),
            };
            assert_eq!(mtime_of(&m.path().join(name)), want, "{name} ({extra:?})");
        }
    }
}

#[test]
fn too_large_tree_fails_with_numbers_and_no_output() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("big"), vec![1u8; 20 << 20]).unwrap();
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("small.img");
    let msg = run_fail(
        Command::new(bin("coreos-build"))
            .args(["mkfs", "ext4", "--size", "8MiB", "--source"])
            .arg(src.path())
            .arg("--output")
            .arg(&img),
    );
    assert!(
        msg.contains("does not fit") && msg.contains("short by"),
        "{msg}"
    );
    assert!(!img.exists(), "a failed build left {}", img.display());
    assert_eq!(
        fs::read_dir(work.path()).unwrap().count(),
        0,
        "a failed build left a temporary file"
    );
}

#[test]
fn empty_filesystem_and_owner_manifest() {
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("empty.img");
    mkfs(None, &img, "64MiB", &["--label", "OEM"]);
    fsck_clean(&img);

    let src = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("bin")).unwrap();
    fs::write(src.path().join("bin/su"), b"#!/bin/sh\n").unwrap();
    let manifest = work.path().join("owners");
    fs::write(
        &manifest,
        "# path uid gid mode\n/ 0 0 755\nbin 0 0 755\nbin/su 0 0 4755\n",
    )
    .unwrap();
    // Owned by an ordinary user in the source; root-owned setuid in the image.
    chown(&src.path().join("bin/su"), 1000, 1000);
    let img2 = work.path().join("owned.img");
    mkfs(
        Some(src.path()),
        &img2,
        "64MiB",
        &["--owners", manifest.to_str().unwrap()],
    );
    fsck_clean(&img2);
    let lo = Loop::attach(&img2, false);
    let m = Mount::ro(&lo.dev, "ext4");
    let md = fs::symlink_metadata(m.path().join("bin/su")).unwrap();
    assert_eq!((md.uid(), md.gid(), md.mode() & 0o7777), (0, 0, 0o4755));
}

#[test]
fn block_device_output_ignores_old_content() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("hello"), b"hello").unwrap();
    fs::create_dir(src.path().join("dir")).unwrap();
    fs::write(src.path().join("dir/data"), vec![9u8; 300_000]).unwrap();
    let work = tempfile::tempdir().unwrap();
    let backing = work.path().join("disk.img");
    // Old content everywhere: BLKZEROOUT must make the range read as zeros first.
    fs::write(&backing, vec![0xA5u8; 64 << 20]).unwrap();
    {
        let lo = Loop::attach(&backing, false);
        mkfs(Some(src.path()), &lo.dev, "64MiB", &["--label", "DEV"]);
    }
    fsck_clean(&backing);
    mount_and_compare(src.path(), &backing);
}

/// GRUB reads the OEM partition's grub.cfg: its own ext2/4 driver (grub-fstest) must read
/// both flavours, including files mapped through indirect blocks and extent leaves.
#[test]
fn grub_reads_both_flavours() {
    require("grub-fstest");
    let src = tempfile::tempdir().unwrap();
    fs::write(
        src.path().join("grub.cfg"),
        b"set oem_id=test\nset linux_append=\"\"\n",
    )
    .unwrap();
    fs::create_dir(src.path().join("sub")).unwrap();
    let big: Vec<u8> = (0..6_000_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(src.path().join("sub/big"), &big).unwrap();
    let work = tempfile::tempdir().unwrap();
    for extra in [&[][..], &["--ext2"][..]] {
        let img = work.path().join("oem.img");
        let _ = fs::remove_file(&img);
        mkfs(Some(src.path()), &img, "128MiB", extra);
        let out = run(Command::new("grub-fstest")
            .arg(&img)
            .args(["cat", "(loop0)/grub.cfg"]));
        assert_eq!(
            out.stdout,
            fs::read(src.path().join("grub.cfg")).unwrap(),
            "grub.cfg via GRUB ({extra:?})"
        );
        let copy = work.path().join("big.out");
        run(Command::new("grub-fstest")
            .arg(&img)
            .args(["cp", "(loop0)/sub/big"])
            .arg(&copy));
        assert!(
            fs::read(&copy).unwrap() == big,
            "sub/big via GRUB differs ({extra:?})"
        );
    }
}

/// ROOT and OEM are mounted read-write: after the kernel writes to our filesystem (journal
/// in use, a directory grown past one block into an htree, files removed), e2fsck is clean.
#[test]
fn kernel_writes_keep_it_consistent() {
    let src = tempfile::tempdir().unwrap();
    every_kind(src.path());
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("root.img");
    mkfs(Some(src.path()), &img, "256MiB", &["--label", "ROOT"]);
    {
        let lo = Loop::attach(&img, false);
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("mount")
            .args(["-t", "ext4", "-o", "rw"])
            .arg(&lo.dev)
            .arg(dir.path()));
        let m = dir.path();
        let result = std::panic::catch_unwind(|| {
            fs::create_dir_all(m.join("var/lib/coreos")).unwrap();
            fs::write(m.join("var/lib/coreos/user_data"), b"#cloud-config\n").unwrap();
            for i in 0..3000 {
                fs::write(m.join(format!("sub/new-{i}")), i.to_string()).unwrap();
            }
            fs::remove_file(m.join("multi")).unwrap();
            fs::remove_dir_all(m.join("many")).unwrap();
            fs::write(m.join("sparse"), b"truncated").unwrap();
        });
        run(Command::new("umount").arg(m));
        result.unwrap();
    }
    fsck_clean(&img);
}
