//! `coreos_production_image_contents.txt`: what USR-A holds, one line per entry in the format
//! of S16 `write_contents`:
//! `find -printf '%M %2n %-7u %-7g %7s %TY-%Tm-%Td %TH:%TM ./%P -> %l\n' | sed -e 's/ -> $//'`
//! run at the image root, so paths read `./usr/...`.
//!
//! It is made from the inodes the ext4 writer wrote (`ext4::inventory`), not from the input
//! tree: owners after `--all-root`/`--owners`, times as clamped to SOURCE_DATE_EPOCH, link
//! counts and directory sizes as the filesystem has them, the stamped release files and
//! lost+found included. Entries come sorted by path (find's order is readdir order, which is
//! not reproducible). Owners print as `root` for 0 and as numbers otherwise (a USR tree
//! carries no passwd of its own).

use ext4::inventory::Entry;
use ext4::ondisk::inode::{S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT};
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;

/// The listing of USR-A (mounted at `/usr`) from the writer's inventory of it.
pub fn listing(entries: &[Entry]) -> String {
    let mut out = String::with_capacity(entries.len() * 96);
    for e in entries {
        let (y, mo, d) = disk::fat::civil_from_days(e.mtime.div_euclid(86400));
        let secs = e.mtime.rem_euclid(86400);
        let _ = write!(
            out,
            "{} {:>2} {:<7} {:<7} {:>7} {y:04}-{mo:02}-{d:02} {:02}:{:02} ./usr",
            mode_string(e.mode),
            e.links,
            owner(e.uid),
            owner(e.gid),
            e.size,
            secs / 3600,
            secs / 60 % 60
        );
        if !e.path.as_os_str().is_empty() {
            out.push('/');
            out.push_str(&String::from_utf8_lossy(e.path.as_os_str().as_bytes()));
        }
        if let Some(t) = &e.target {
            let _ = write!(out, " -> {}", String::from_utf8_lossy(t));
        }
        out.push('\n');
    }
    out
}

fn owner(id: u32) -> String {
    if id == 0 {
        "root".into()
    } else {
        id.to_string()
    }
}

/// `ls -l`-style mode, as find's `%M`.
fn mode_string(mode: u16) -> String {
    let t = match mode & S_IFMT {
        S_IFDIR => 'd',
        S_IFLNK => 'l',
        S_IFCHR => 'c',
        S_IFBLK => 'b',
        S_IFIFO => 'p',
        _ => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(t);
    let bit = |b: u16, c: char| if mode & b != 0 { c } else { '-' };
    let special =
        |x: u16, special: u16, on: char, off: char| match (mode & x != 0, mode & special != 0) {
            (true, true) => on,
            (false, true) => off,
            (true, false) => 'x',
            (false, false) => '-',
        };
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(special(0o100, 0o4000, 's', 'S'));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(special(0o010, 0o2000, 's', 'S'));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(special(0o001, 0o1000, 't', 'T'));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn modes() {
        assert_eq!(mode_string(0o040755), "drwxr-xr-x");
        assert_eq!(mode_string(0o104755), "-rwsr-xr-x");
        assert_eq!(mode_string(0o041777), "drwxrwxrwt");
        assert_eq!(mode_string(0o120777), "lrwxrwxrwx");
    }

    fn entry(path: &str, mode: u16, links: u16, uid: u32, size: u64) -> Entry {
        Entry {
            path: PathBuf::from(path),
            mode,
            links,
            uid,
            gid: uid,
            size,
            mtime: 1_700_000_000,
            target: None,
        }
    }

    #[test]
    fn lines_read_as_find_prints_them() {
        let link = Entry {
            target: Some(b"busybox".to_vec()),
            ..entry("bin/sh", 0o120777, 1, 0, 7)
        };
        let l = listing(&[
            entry("", 0o040755, 4, 0, 4096),
            entry("bin", 0o040755, 2, 0, 12288),
            entry("bin/su", 0o104755, 2, 0, 18),
            link,
            entry("lib/x", 0o100644, 1, 4242, 5),
        ]);
        assert_eq!(
            l,
            "drwxr-xr-x  4 root    root       4096 2023-11-14 22:13 ./usr\n\
             drwxr-xr-x  2 root    root      12288 2023-11-14 22:13 ./usr/bin\n\
             -rwsr-xr-x  2 root    root         18 2023-11-14 22:13 ./usr/bin/su\n\
             lrwxrwxrwx  1 root    root          7 2023-11-14 22:13 ./usr/bin/sh -> busybox\n\
             -rw-r--r--  1 4242    4242          5 2023-11-14 22:13 ./usr/lib/x\n"
        );
    }
}
