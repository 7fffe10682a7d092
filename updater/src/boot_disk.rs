//! Which disk and USR partition the running system booted from. In order: the device under
//! the `/usr` mount, the dm-verity device named `usr` (the initramfs opens it before `/usr` is
//! mounted), then the USR partition `/proc/cmdline` names (`verity.usr=` or `mount.usr=`:
//! `PARTUUID=`, `PARTLABEL=` or `/dev/…`). The first two name the exact device even when two
//! CoreOS disks carry slots of the same PARTUUID; the command line alone cannot.

use disk::slots::GptSlots;
use std::fs::File;
use std::path::{Path, PathBuf};

const SYS_BLOCK: &str = "/sys/class/block";

/// A partition of a whole disk: `/dev/vda` and 4 for `/dev/vda4`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booted {
    pub disk: PathBuf,
    pub partition: u32,
}

/// The USR partition of the running system, if it is on a disk.
pub fn find() -> Option<Booted> {
    if let Some(b) = under_usr_mount() {
        return Some(b);
    }
    if let Some(b) = dm_named("usr") {
        return Some(b);
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    let spec = usr_spec(&cmdline)?;
    tracing::debug!("looking for the USR partition {spec} named on /proc/cmdline");
    by_spec(&spec)
}

/// What the kernel command line names as USR: `verity.usr=`, else `mount.usr=` unless that is
/// the dm-verity device itself.
pub fn usr_spec(cmdline: &str) -> Option<String> {
    let last = |name: &str| {
        cmdline
            .split_whitespace()
            .filter_map(|w| w.strip_prefix(name))
            .next_back()
            .map(str::to_string)
    };
    last("verity.usr=").or_else(|| last("mount.usr=").filter(|v| !v.starts_with("/dev/mapper/")))
}

/// The partition behind a block device's sysfs folder, through device-mapper layers.
fn partition_behind(sys: &Path, depth: u32) -> Option<Booted> {
    let sys = std::fs::canonicalize(sys).ok()?;
    if let Ok(n) = std::fs::read_to_string(sys.join("partition")) {
        let disk = sys.parent()?.file_name()?.to_string_lossy().into_owned();
        return Some(Booted {
            disk: Path::new("/dev").join(disk),
            partition: n.trim().parse().ok()?,
        });
    }
    if depth > 4 {
        return None;
    }
    let mut slaves = std::fs::read_dir(sys.join("slaves")).ok()?.flatten();
    let first = slaves.next()?;
    partition_behind(&first.path(), depth + 1)
}

fn under_usr_mount() -> Option<Booted> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata("/usr").ok()?.dev();
    let sys = format!("/sys/dev/block/{}:{}", libc::major(dev), libc::minor(dev));
    partition_behind(Path::new(&sys), 0)
}

fn dm_named(name: &str) -> Option<Booted> {
    for e in std::fs::read_dir(SYS_BLOCK).ok()?.flatten() {
        let dm_name = std::fs::read_to_string(e.path().join("dm/name")).unwrap_or_default();
        if dm_name.trim() == name {
            return partition_behind(&e.path(), 0);
        }
    }
    None
}

fn uevent(sys: &Path, key: &str) -> Option<String> {
    std::fs::read_to_string(sys.join("uevent"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
}

/// The first partition matching `PARTUUID=`, `PARTLABEL=` or `/dev/…`.
fn by_spec(spec: &str) -> Option<Booted> {
    if let Some(dev) = spec.strip_prefix("/dev/") {
        let name = std::fs::canonicalize(Path::new("/dev").join(dev)).ok()?;
        return partition_behind(&Path::new(SYS_BLOCK).join(name.file_name()?), 0);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(SYS_BLOCK)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("partition").exists())
        .collect();
    entries.sort();
    for sys in entries {
        let Some(b) = partition_behind(&sys, 0) else {
            continue;
        };
        let found = if let Some(label) = spec.strip_prefix("PARTLABEL=") {
            uevent(&sys, "PARTNAME").as_deref() == Some(label)
        } else if let Some(uuid) = spec.strip_prefix("PARTUUID=") {
            partuuid(&b).is_some_and(|u| u.eq_ignore_ascii_case(uuid))
        } else {
            false
        };
        if found {
            return Some(b);
        }
    }
    None
}

/// The unique GUID of a coreos-usr partition, from its disk's GPT.
fn partuuid(b: &Booted) -> Option<String> {
    let gpt = GptSlots::read(&File::open(&b.disk).ok()?).ok()?;
    gpt.usr_partitions()
        .into_iter()
        .find(|p| p.number == b.partition)
        .map(|p| p.part_guid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usr_partition_named_on_the_command_line() {
        let c = "root=LABEL=ROOT mount.usr=/dev/mapper/usr verity.usr=PARTUUID=7130C94A-213a verity.usrhash=ab";
        assert_eq!(usr_spec(c).as_deref(), Some("PARTUUID=7130C94A-213a"));
        assert_eq!(
            usr_spec("mount.usr=PARTLABEL=USR-B ro").as_deref(),
            Some("PARTLABEL=USR-B")
        );
        assert_eq!(usr_spec("mount.usr=/dev/mapper/usr root=/dev/sda9"), None);
        assert_eq!(usr_spec("quiet"), None);
    }

    /// Say on stderr, past libtest's capture, that `test` did not run: ci/test-lanes counts
    /// the `SKIPPED:` lines as skipped, not passed.
    fn skipped(test: &str, why: &str) {
        use std::io::Write;
        let _ = std::io::stderr().write_all(format!("\nSKIPPED: {test}: {why}\n").as_bytes());
    }

    /// A loop device, detached (by name) on drop.
    struct Loop(String);

    impl Drop for Loop {
        fn drop(&mut self) {
            let _ = std::process::Command::new("losetup")
                .args(["-d", &self.0])
                .status();
        }
    }

    #[test]
    fn a_partition_is_found_by_label_and_path_and_nothing_for_one_that_does_not_exist() {
        assert_eq!(by_spec("PARTLABEL=no-such-partition-label"), None);
        assert_eq!(by_spec("/dev/no-such-device"), None);
        // /proc/self belongs to the effective user (and this crate has no unsafe for geteuid).
        use std::os::unix::fs::MetadataExt;
        if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
            return skipped(
                "boot_disk::by_spec",
                "losetup needs root (ci/test runs as root)",
            );
        }
        // A disk whose one coreos-usr partition has a label and a GUID no other disk has.
        let label = format!("by-spec-{}", std::process::id());
        let guid = uuid::Uuid::new_v4().to_string();
        let img = tempfile::NamedTempFile::new().unwrap();
        img.as_file().set_len(8 << 20).unwrap();
        let run = |cmd: &str, args: &[&str]| {
            let out = std::process::Command::new(cmd).args(args).output().unwrap();
            assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        let path = img.path().to_str().unwrap();
        let usr_type = format!("1:{}", disk::slots::USR_TYPE);
        let (name, unique) = (format!("1:{label}"), format!("1:{guid}"));
        run(
            "sgdisk",
            &[
                "-n",
                "1:2048:+2M",
                "-t",
                &usr_type,
                "-c",
                &name,
                "-u",
                &unique,
                path,
            ],
        );
        let dev = Loop(
            run("losetup", &["-f", "-P", "--show", path])
                .trim()
                .to_string(),
        );
        let node = format!("{}p1", dev.0);
        if !Path::new(&node).exists() {
            // `losetup -P` may not make the node; partx (BLKPG) does.
            run("partx", &["-a", &dev.0]);
        }
        let want = Some(Booted {
            disk: PathBuf::from(&dev.0),
            partition: 1,
        });
        assert_eq!(by_spec(&node), want);
        assert_eq!(by_spec(&format!("PARTUUID={}", guid.to_uppercase())), want);
        assert_eq!(by_spec(&format!("{}p2", dev.0)), None);
        // PARTLABEL comes from the kernel's uevent (PARTNAME), which a kernel without GPT
        // support (it sees the protective MBR's one partition) does not give.
        let sys = Path::new(SYS_BLOCK).join(Path::new(&node).file_name().unwrap());
        if uevent(&sys, "PARTNAME").is_none() {
            return skipped(
                "boot_disk::by_spec PARTLABEL",
                "this kernel gives loop partitions no PARTNAME (no GPT partition support)",
            );
        }
        assert_eq!(by_spec(&format!("PARTLABEL={label}")), want);
    }
}
