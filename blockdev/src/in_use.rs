//! Is a partition of the disk mounted? The ESP must not be edited under a mounted FAT driver
//! (both would cache and write its tables), nor the passive slot written while mounted.
//! Found through the partition's device numbers in /proc/self/mountinfo; for an image file,
//! through loop devices backed by it (at offset 0 with partitions, or at the partition).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// "major:minor" of every block device that is partition `number` (at byte `offset`) of `disk`.
pub fn devices_of(disk: &Path, number: u32, offset: u64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(md) = std::fs::metadata(disk) else {
        return out;
    };
    let partitions_of = |sys: &Path, out: &mut Vec<(String, String)>| {
        for e in std::fs::read_dir(sys).into_iter().flatten().flatten() {
            let p = e.path();
            let n = std::fs::read_to_string(p.join("partition")).unwrap_or_default();
            if n.trim() == number.to_string() {
                if let Ok(dev) = std::fs::read_to_string(p.join("dev")) {
                    let name = e.file_name().to_string_lossy().into_owned();
                    out.push((dev.trim().to_string(), format!("/dev/{name}")));
                }
            }
        }
    };
    if md.file_type().is_block_device() {
        let sys = format!(
            "/sys/dev/block/{}:{}",
            libc::major(md.rdev()),
            libc::minor(md.rdev())
        );
        partitions_of(Path::new(&sys), &mut out);
        return out;
    }
    // An image file: the loop devices over it.
    let Ok(real) = std::fs::canonicalize(disk) else {
        return out;
    };
    for e in std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
    {
        let lp = e.path().join("loop");
        let backing = std::fs::read_to_string(lp.join("backing_file")).unwrap_or_default();
        if Path::new(backing.trim()) != real {
            continue;
        }
        let loop_offset: u64 = std::fs::read_to_string(lp.join("offset"))
            .ok()
            .and_then(|o| o.trim().parse().ok())
            .unwrap_or(0);
        if loop_offset == 0 {
            partitions_of(&e.path(), &mut out);
        } else if loop_offset == offset {
            if let Ok(dev) = std::fs::read_to_string(e.path().join("dev")) {
                let name = e.file_name().to_string_lossy().into_owned();
                out.push((dev.trim().to_string(), format!("/dev/{name}")));
            }
        }
    }
    out
}

/// Who uses partition `number` of `disk` ("/dev/vda1 is mounted on /boot", "/dev/vda4 is
/// held by dm-0"); empty when nothing does.
pub fn users(disk: &Path, number: u32, offset: u64) -> Vec<String> {
    let devs = devices_of(disk, number, offset);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = mounts_of(&mountinfo, &devs);
    for (mm, name) in &devs {
        let holders = Path::new("/sys/dev/block").join(mm).join("holders");
        for h in std::fs::read_dir(holders).into_iter().flatten().flatten() {
            out.push(format!(
                "{name} is held by /dev/{}",
                h.file_name().to_string_lossy()
            ));
        }
    }
    out
}

/// The mounts of `devs` ("major:minor", "/dev/name") in a mountinfo text.
fn mounts_of(mountinfo: &str, devs: &[(String, String)]) -> Vec<String> {
    // "id parent major:minor root mountpoint options ..."
    mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (mm, point) = (f.get(2)?, f.get(4)?);
            let (_, name) = devs.iter().find(|(d, _)| d == mm)?;
            Some(format!(
                "{name} is mounted on {}",
                point.replace("\\040", " ")
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_found_by_device_number() {
        let mi = "22 1 8:1 / /boot/efi rw,relatime shared:5 - vfat /dev/sda1 rw\n\
                  23 1 8:4 / /mnt/usr\\040b ro - ext4 /dev/sda4 ro\n\
                  24 1 0:5 / /dev rw - devtmpfs udev rw\n";
        let devs = vec![("8:1".to_string(), "/dev/sda1".to_string())];
        assert_eq!(mounts_of(mi, &devs), ["/dev/sda1 is mounted on /boot/efi"]);
        let devs = vec![("8:4".to_string(), "/dev/sda4".to_string())];
        assert_eq!(mounts_of(mi, &devs), ["/dev/sda4 is mounted on /mnt/usr b"]);
        assert!(mounts_of(mi, &[("8:2".into(), "/dev/sda2".into())]).is_empty());
    }
}
