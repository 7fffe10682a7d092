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

    #[test]
    fn nothing_is_found_for_a_partition_that_does_not_exist() {
        assert_eq!(by_spec("PARTLABEL=no-such-partition-label"), None);
        assert_eq!(by_spec("/dev/no-such-device"), None);
    }
}
