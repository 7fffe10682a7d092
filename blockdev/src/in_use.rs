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

/// One mount of a partition, from /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The device, "/dev/vda1".
    pub device: String,
    /// Where it is mounted in this process's namespace.
    pub point: std::path::PathBuf,
    /// The folder of the filesystem mounted there ("/" unless a bind mount of a subfolder).
    pub root: String,
    /// Read-only, as this mount or as the whole filesystem.
    pub read_only: bool,
    pub fstype: String,
}

/// Where partition `number` (at byte `offset`) of `disk` is mounted, found by its device
/// numbers in /proc/self/mountinfo; empty when it is not.
pub fn mounts(disk: &Path, number: u32, offset: u64) -> Vec<Mount> {
    let devs = devices_of(disk, number, offset);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    parse_mounts(&mountinfo, &devs)
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_mounts(mountinfo: &str, devs: &[(String, String)]) -> Vec<Mount> {
    // "id parent major:minor root mountpoint options [optional...] - fstype source superoptions"
    mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (mm, root, point, opts) = (f.get(2)?, f.get(3)?, f.get(4)?, f.get(5)?);
            let (_, name) = devs.iter().find(|(d, _)| d == mm)?;
            let sep = f.iter().position(|w| *w == "-")?;
            let fstype = f.get(sep + 1).copied().unwrap_or_default();
            let superopts = f.get(sep + 3).copied().unwrap_or_default();
            let ro = |o: &str| o.split(',').any(|x| x == "ro");
            Some(Mount {
                device: name.clone(),
                point: unescape(point).into(),
                root: unescape(root),
                read_only: ro(opts) || ro(superopts),
                fstype: fstype.to_string(),
            })
        })
        .collect()
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

    #[test]
    fn mounts_carry_their_point_root_and_read_only_state() {
        let mi = "22 1 8:1 / /boot\\040efi rw,relatime shared:5 - vfat /dev/sda1 rw,fmask=0022\n\
                  30 1 8:1 /EFI /mnt/efi rw,relatime - vfat /dev/sda1 rw\n\
                  31 1 8:1 / /mnt/ro ro,relatime - vfat /dev/sda1 rw\n\
                  32 1 8:1 / /mnt/sb rw,relatime - vfat /dev/sda1 ro\n";
        let devs = vec![("8:1".to_string(), "/dev/sda1".to_string())];
        let m = parse_mounts(mi, &devs);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].point, Path::new("/boot efi"));
        assert_eq!(
            (m[0].root.as_str(), m[0].read_only, m[0].fstype.as_str()),
            ("/", false, "vfat")
        );
        assert_eq!(m[1].root, "/EFI");
        assert!(m[2].read_only && m[3].read_only);
        assert!(parse_mounts(mi, &[("8:2".into(), "/dev/sda2".into())]).is_empty());
    }
}
