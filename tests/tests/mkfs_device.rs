//! `coreos-build mkfs ext4 --output /dev/X` refuses a device that is mounted (itself or a
//! partition of it) or held open exclusively by another program, naming it, exits non-zero
//! and leaves the device as it was; a free device gets its filesystem. A source file the
//! build cannot read fails it before the device is written.

use e2e::{as_nobody, bin, require, run, run_fail, Loop, NOBODY};
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn mkfs(dev: &Path) -> Command {
    let mut c = Command::new(bin("coreos-build"));
    c.env("SOURCE_DATE_EPOCH", "1700000000")
        .args([
            "-q", "mkfs", "ext4", "--size", "32MiB", "--label", "NEW", "--output",
        ])
        .arg(dev);
    c
}

/// A 64 MiB file holding an ext4 filesystem labelled OLD (made by mke2fs, not by us).
fn old_filesystem(dir: &Path) -> std::path::PathBuf {
    require("mke2fs");
    let f = dir.join("disk.img");
    fs::File::create(&f).unwrap().set_len(64 << 20).unwrap();
    run(Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-L", "OLD"])
        .arg(&f));
    f
}

fn label(dev: &Path) -> String {
    let o = run(Command::new("e2label").arg(dev));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn a_mounted_device_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let lo = Loop::attach(&old_filesystem(dir.path()), false);
    let mnt = tempfile::tempdir().unwrap();
    run(Command::new("mount").arg(&lo.dev).arg(mnt.path()));
    let msg = run_fail(&mut mkfs(&lo.dev));
    let _ = Command::new("umount").arg(mnt.path()).status();
    assert!(
        msg.contains(&format!(
            "{} is mounted on {}",
            lo.dev.display(),
            mnt.path().display()
        )),
        "{msg}"
    );
    assert_eq!(label(&lo.dev), "OLD", "the filesystem was touched");
}

#[test]
fn a_device_with_a_mounted_partition_is_refused_by_name() {
    require("sgdisk");
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    fs::File::create(&disk).unwrap().set_len(64 << 20).unwrap();
    run(Command::new("sgdisk").args(["-n", "1:2048:0"]).arg(&disk));
    let lo = Loop::attach(&disk, true);
    let part = lo.part(1);
    run(Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-L", "OLD"])
        .arg(&part));
    let mnt = tempfile::tempdir().unwrap();
    run(Command::new("mount").arg(&part).arg(mnt.path()));
    let msg = run_fail(&mut mkfs(&lo.dev));
    let _ = Command::new("umount").arg(mnt.path()).status();
    assert!(
        msg.contains(&format!(
            "{} is mounted on {} (as {})",
            lo.dev.display(),
            mnt.path().display(),
            part.display()
        )),
        "{msg}"
    );
    assert_eq!(
        label(&part),
        "OLD",
        "the partition's filesystem was touched"
    );
}

#[test]
fn a_device_held_open_exclusively_is_refused_then_written_once_free() {
    let dir = tempfile::tempdir().unwrap();
    let lo = Loop::attach(&old_filesystem(dir.path()), false);
    let path = CString::new(lo.dev.as_os_str().as_bytes()).unwrap();
    // O_CLOEXEC: the other tests of this binary spawn programs from their threads, and a
    // child that inherited this descriptor would keep the claim after the close below.
    // SAFETY: a valid C string; the descriptor is closed below.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_EXCL | libc::O_CLOEXEC,
        )
    };
    assert!(fd >= 0, "O_EXCL open: {}", std::io::Error::last_os_error());
    let msg = run_fail(&mut mkfs(&lo.dev));
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    assert!(
        msg.contains(&format!("{} is in use", lo.dev.display())),
        "{msg}"
    );
    assert_eq!(label(&lo.dev), "OLD", "the filesystem was touched");
    run(&mut mkfs(&lo.dev));
    assert_eq!(label(&lo.dev), "NEW");
    let fsck = Command::new("e2fsck")
        .arg("-fn")
        .arg(&lo.dev)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
}

/// As nobody, onto a device nobody may write: a file whose mode refuses nobody but whose ACL
/// grants read is built; a file nobody cannot read fails the build, named, before the first
/// write to the device. (The scan reads each file's mode and opens only the files the mode
/// refuses; were it to miss one, the copy would fail on it after writing the files before it.)
#[test]
fn an_unreadable_file_fails_before_the_device_is_written_and_an_acl_grant_is_honoured() {
    require("setfacl");
    require("debugfs");
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let lo = Loop::attach(&old_filesystem(dir.path()), false);
    let _lent = LentTo::nobody(&lo.dev);
    let tree = dir.path().join("tree");
    fs::create_dir(&tree).unwrap();
    // Files that sort before the unreadable one, with data a late failure would have written.
    for name in ["a", "b"] {
        let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8 + 1).collect();
        fs::write(tree.join(name), data).unwrap();
    }
    let granted = tree.join("granted");
    fs::write(&granted, b"read through the ACL").unwrap();
    fs::set_permissions(&granted, fs::Permissions::from_mode(0o600)).unwrap();
    run(Command::new("setfacl")
        .args(["-m", &format!("u:{NOBODY}:r")])
        .arg(&granted));
    let secret = tree.join("secret");
    fs::write(&secret, b"root's").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();

    let mut build = mkfs(&lo.dev);
    build.arg("--source").arg(&tree);
    let before = fs::read(&lo.dev).unwrap();
    let msg = run_fail(&mut as_nobody(&mut build));
    assert!(
        msg.contains(&format!("{}: Permission denied", secret.display())),
        "the error does not name the file and the reason: {msg}"
    );
    assert!(
        fs::read(&lo.dev).unwrap() == before,
        "the device was written before the unreadable file was found"
    );

    fs::remove_file(&secret).unwrap();
    run(&mut as_nobody(&mut build));
    assert_eq!(label(&lo.dev), "NEW");
    let o = run(Command::new("debugfs")
        .args(["-R", "cat /granted"])
        .arg(&lo.dev));
    assert_eq!(o.stdout, b"read through the ACL");
}

/// A device node owned by nobody until dropped, then by its owner before (the node outlives
/// the loop device's detach, and the next test to attach it must not find it lent out).
struct LentTo(std::path::PathBuf, u32);

impl LentTo {
    fn nobody(dev: &Path) -> LentTo {
        use std::os::unix::fs::MetadataExt;
        let owner = fs::metadata(dev).unwrap().uid();
        run(Command::new("chown").arg(NOBODY).arg(dev));
        LentTo(dev.to_path_buf(), owner)
    }
}

impl Drop for LentTo {
    fn drop(&mut self) {
        let _ = std::os::unix::fs::chown(&self.0, Some(self.1), None);
    }
}
