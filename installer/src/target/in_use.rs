//! Is anything using the target? Mounts (/proc/self/mountinfo), swap (/proc/swaps), holders
//! (/sys/block/<disk>[/<part>]/holders), and whether it is the disk the running system booted
//! from (holding / or /boot). All of it is checked, and reported together, before writing.

use super::TargetDisk;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// "major:minor" of the disk and each of its partitions, with their /dev names.
fn devices(disk: &TargetDisk) -> Vec<(String, String)> {
    let mut out = vec![(format!("{}:{}", disk.major, disk.minor), disk.name.clone())];
    for p in disk.partition_names() {
        if let Ok(d) = std::fs::read_to_string(disk.sys().join(&p).join("dev")) {
            out.push((d.trim().to_string(), p));
        }
    }
    out
}

/// Every reason the disk is in use; empty when it is free.
pub fn find_users(disk: &TargetDisk) -> Vec<String> {
    let devs = devices(disk);
    let names: BTreeSet<&str> = devs.iter().map(|(_, n)| n.as_str()).collect();
    let mut users = Vec::new();

    // mountinfo: "id parent major:minor root mountpoint opts ... - fstype source superopts".
    if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in mi.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 5 {
                continue;
            }
            let source = line
                .split(" - ")
                .nth(1)
                .and_then(|r| r.split_whitespace().nth(1))
                .unwrap_or("");
            let by_num = devs
                .iter()
                .find(|(mm, _)| mm == f[2])
                .map(|(_, n)| n.clone());
            let by_src = source
                .strip_prefix("/dev/")
                .filter(|s| names.contains(s))
                .map(str::to_string);
            if let Some(n) = by_num.or(by_src) {
                users.push(format!("/dev/{n} is mounted on {}", unescape(f[4])));
            }
        }
    }
    if let Ok(sw) = std::fs::read_to_string("/proc/swaps") {
        for line in sw.lines().skip(1) {
            if let Some(p) = line.split_whitespace().next() {
                let real = std::fs::canonicalize(p).unwrap_or_else(|_| PathBuf::from(p));
                if let Some(n) = real
                    .file_name()
                    .and_then(|n| n.to_str())
                    .filter(|n| names.contains(n))
                {
                    users.push(format!("/dev/{n} is a swap device"));
                }
            }
        }
    }
    for (_, n) in &devs {
        let holders = if n == &disk.name {
            disk.sys().join("holders")
        } else {
            disk.sys().join(n).join("holders")
        };
        if let Ok(rd) = std::fs::read_dir(holders) {
            for h in rd.flatten() {
                users.push(format!(
                    "/dev/{n} is in use by /dev/{}",
                    h.file_name().to_string_lossy()
                ));
            }
        }
    }
    if boot_disks().contains(&disk.name) {
        users.push(format!(
            "/dev/{} holds the running system's / or /boot",
            disk.name
        ));
    }
    users.sort();
    users.dedup();
    users
}

/// Disks under / and /boot: the filesystem's device, its whole disk, and (through dm/md
/// "slaves") the disks beneath it.
fn boot_disks() -> BTreeSet<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeSet::new();
    for p in ["/", "/boot", "/usr"] {
        let Ok(md) = std::fs::metadata(p) else {
            continue;
        };
        let dev = md.dev();
        let sys = PathBuf::from(format!(
            "/sys/dev/block/{}:{}",
            libc::major(dev),
            libc::minor(dev)
        ));
        if let Ok(real) = std::fs::canonicalize(&sys) {
            collect_disks(&real, &mut out, 0);
        }
    }
    out
}

fn collect_disks(sys: &Path, out: &mut BTreeSet<String>, depth: u32) {
    if depth > 8 {
        return;
    }
    let disk = if sys.join("partition").exists() {
        sys.parent().unwrap_or(sys)
    } else {
        sys
    };
    if let Some(n) = disk.file_name() {
        out.insert(n.to_string_lossy().into_owned());
    }
    if let Ok(rd) = std::fs::read_dir(disk.join("slaves")) {
        for s in rd.flatten() {
            if let Ok(real) = std::fs::canonicalize(s.path()) {
                collect_disks(&real, out, depth + 1);
            }
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}
