//! Which mounted filesystems live on a block device or one of its partitions, from
//! /proc/self/mountinfo (field 3 is the mounted device's major:minor, field 5 the mount
//! point) and sysfs (a disk's partitions are the subfolders of /sys/dev/block/M:m with a
//! `partition` file).

use anyhow::{Context, Result};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// (the device or partition that is mounted, where) for the first mount found on `dev`.
pub fn mounted(dev: &Path) -> Result<Option<(PathBuf, String)>> {
    let rdev = std::fs::metadata(dev)
        .with_context(|| format!("stat {}", dev.display()))?
        .rdev();
    let mut devices = vec![(number(rdev), dev.to_path_buf())];
    let sys = PathBuf::from(format!("/sys/dev/block/{}", number(rdev)));
    if let Ok(entries) = std::fs::read_dir(&sys) {
        for e in entries.flatten() {
            let p = e.path();
            if p.join("partition").is_file() {
                if let Ok(n) = std::fs::read_to_string(p.join("dev")) {
                    devices.push((n.trim().to_string(), Path::new("/dev").join(e.file_name())));
                }
            }
        }
    }
    let table =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(find(&table, &devices))
}

fn number(rdev: u64) -> String {
    format!("{}:{}", libc::major(rdev), libc::minor(rdev))
}

/// The first mount in `table` (mountinfo text) of one of `devices` (major:minor, name).
fn find(table: &str, devices: &[(String, PathBuf)]) -> Option<(PathBuf, String)> {
    table.lines().find_map(|line| {
        let f: Vec<&str> = line.split(' ').collect();
        let (num, at) = (f.get(2)?, f.get(4)?);
        let (_, name) = devices.iter().find(|(n, _)| n == num)?;
        Some((name.clone(), unescape(at)))
    })
}

/// Mount points escape space, tab, newline and backslash as \ooo (octal).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u16, |v, c| v * 8 + u16::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_device_or_a_partition_in_mountinfo() {
        let table = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                     40 22 7:3 / /mnt/my\\040disk rw - ext4 /dev/loop3p1 rw\n";
        let devs = |n: &str| {
            vec![
                ("7:0".to_string(), PathBuf::from("/dev/loop3")),
                (n.to_string(), PathBuf::from("/dev/loop3p1")),
            ]
        };
        assert_eq!(
            find(table, &devs("7:3")),
            Some((PathBuf::from("/dev/loop3p1"), "/mnt/my disk".to_string()))
        );
        assert_eq!(find(table, &devs("7:4")), None);
    }
}
