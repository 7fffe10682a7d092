//! `coreos_production_image_contents.txt`: what USR-A holds, one line per entry in the format
//! of S16 `write_contents`:
//! `find -printf '%M %2n %-7u %-7g %7s %TY-%Tm-%Td %TH:%TM ./%P -> %l\n' | sed -e 's/ -> $//'`
//! run at the image root, so paths read `./usr/...`.
//!
//! It describes the filesystem as written: input tree plus stamped files, times clamped to
//! SOURCE_DATE_EPOCH as the ext4 writer clamps them, entries sorted by path (find's order is
//! readdir order, which is not reproducible). Owners print as `root` for 0 and as numbers
//! otherwise (a USR tree carries no passwd of its own); a directory's size is one 4096-byte
//! block, as for every directory that fits in one.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
struct Entry {
    mode: u32,
    nlink: u64,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: i64,
    link: Option<String>,
    /// (device, inode) on the host, to recount hard links; None for entries not from the tree.
    id: Option<(u64, u64)>,
}

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFLNK: u32 = 0o120000;
const DIR_SIZE: u64 = 4096;

/// The listing of `usr` (mounted at `/usr`) with `stamped` files (paths relative to `usr`).
pub fn listing(usr: &Path, stamped: &[(PathBuf, Vec<u8>)], epoch: i64) -> io::Result<String> {
    let mut tree: BTreeMap<PathBuf, Entry> = BTreeMap::new();
    walk(usr, Path::new(""), &mut tree)?;
    fix_hardlinks(&mut tree);
    for (path, data) in stamped {
        let mut parent = path.parent();
        while let Some(p) = parent {
            tree.entry(p.to_path_buf()).or_insert(Entry {
                mode: S_IFDIR | 0o755,
                nlink: 2,
                uid: 0,
                gid: 0,
                size: DIR_SIZE,
                mtime: epoch,
                link: None,
                id: None,
            });
            parent = p.parent().filter(|q| !q.as_os_str().is_empty());
        }
        tree.insert(
            path.clone(),
            Entry {
                mode: 0o100644,
                nlink: 1,
                uid: 0,
                gid: 0,
                size: data.len() as u64,
                mtime: epoch,
                link: None,
                id: None,
            },
        );
    }
    // Directory link counts: 2 + subdirectories, as ext4 keeps them.
    let mut subdirs: HashMap<PathBuf, u64> = HashMap::new();
    for (p, e) in &tree {
        if e.mode & S_IFMT == S_IFDIR && !p.as_os_str().is_empty() {
            *subdirs
                .entry(p.parent().unwrap_or(Path::new("")).to_path_buf())
                .or_default() += 1;
        }
    }
    let mut out = String::new();
    for (p, e) in &tree {
        let nlink = if e.mode & S_IFMT == S_IFDIR {
            2 + subdirs.get(p).copied().unwrap_or(0)
        } else {
            e.nlink
        };
        let name = if p.as_os_str().is_empty() {
            "./usr".to_string()
        } else {
            format!("./usr/{}", p.display())
        };
        let (y, mo, d) = disk::fat::civil_from_days(e.mtime.min(epoch).div_euclid(86400));
        let secs = e.mtime.min(epoch).rem_euclid(86400);
        let _ = write!(
            out,
            "{} {:>2} {:<7} {:<7} {:>7} {y:04}-{mo:02}-{d:02} {:02}:{:02} {name}",
            mode_string(e.mode),
            nlink,
            owner(e.uid),
            owner(e.gid),
            e.size,
            secs / 3600,
            secs / 60 % 60
        );
        if let Some(l) = &e.link {
            let _ = write!(out, " -> {l}");
        }
        out.push('\n');
    }
    Ok(out)
}

fn owner(id: u32) -> String {
    if id == 0 {
        "root".into()
    } else {
        id.to_string()
    }
}

fn walk(root: &Path, rel: &Path, tree: &mut BTreeMap<PathBuf, Entry>) -> io::Result<()> {
    let full = root.join(rel);
    let m = fs::symlink_metadata(&full)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", full.display())))?;
    visit(root, rel, &m, tree)
}

/// Enter `rel` (whose lstat is `m`) and, for a folder, everything under it. Entries are
/// stat'ed through their folder's descriptor (DirEntry::metadata), without a path walk.
fn visit(
    root: &Path,
    rel: &Path,
    m: &fs::Metadata,
    tree: &mut BTreeMap<PathBuf, Entry>,
) -> io::Result<()> {
    let full = root.join(rel);
    let ft = m.file_type();
    let link = if ft.is_symlink() {
        Some(fs::read_link(&full)?.to_string_lossy().into_owned())
    } else {
        None
    };
    let size = if ft.is_dir() { DIR_SIZE } else { m.size() };
    tree.insert(
        rel.to_path_buf(),
        Entry {
            mode: m.mode(),
            nlink: m.nlink(),
            uid: m.uid(),
            gid: m.gid(),
            size,
            mtime: m.mtime(),
            link,
            id: Some((m.dev(), m.ino())),
        },
    );
    if ft.is_dir() {
        let mut children = Vec::new();
        for e in fs::read_dir(&full)? {
            let e = e?;
            let cm = e.metadata().map_err(|err| {
                io::Error::new(err.kind(), format!("{}: {err}", e.path().display()))
            })?;
            children.push((e.file_name(), cm));
        }
        children.sort_by(|a, b| a.0.cmp(&b.0));
        for (n, cm) in children {
            visit(root, &rel.join(n), &cm, tree)?;
        }
    }
    Ok(())
}

/// A file's link count in the image is the number of its names inside the tree, not on the
/// host; recount by (device, inode).
fn fix_hardlinks(tree: &mut BTreeMap<PathBuf, Entry>) {
    let mut count: HashMap<(u64, u64), u64> = HashMap::new();
    for e in tree.values() {
        if e.mode & S_IFMT != S_IFDIR && e.mode & S_IFMT != S_IFLNK && e.nlink > 1 {
            if let Some(id) = e.id {
                *count.entry(id).or_default() += 1;
            }
        }
    }
    for e in tree.values_mut() {
        if e.mode & S_IFMT != S_IFDIR {
            e.nlink = match (e.mode & S_IFMT != S_IFLNK && e.nlink > 1, e.id) {
                (true, Some(id)) => count[&id],
                _ => 1,
            };
        }
    }
}

/// `ls -l`-style mode, as find's `%M`.
fn mode_string(mode: u32) -> String {
    let t = match mode & S_IFMT {
        S_IFDIR => 'd',
        S_IFLNK => 'l',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(t);
    let bit = |b: u32, c: char| if mode & b != 0 { c } else { '-' };
    let special =
        |x: u32, special: u32, on: char, off: char| match (mode & x != 0, mode & special != 0) {
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

    #[test]
    fn modes() {
        assert_eq!(mode_string(0o040755), "drwxr-xr-x");
        assert_eq!(mode_string(0o104755), "-rwsr-xr-x");
        assert_eq!(mode_string(0o041777), "drwxrwxrwt");
        assert_eq!(mode_string(0o120777), "lrwxrwxrwx");
    }

    #[test]
    fn lists_tree_and_stamps() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("bin")).unwrap();
        fs::write(d.path().join("bin/sh"), b"#!").unwrap();
        fs::hard_link(d.path().join("bin/sh"), d.path().join("bin/ash")).unwrap();
        std::os::unix::fs::symlink("sh", d.path().join("bin/bash")).unwrap();
        let stamped = vec![(PathBuf::from("share/coreos/release"), b"X=1\n".to_vec())];
        let l = listing(d.path(), &stamped, 1_700_000_000).unwrap();
        let lines: Vec<&str> = l.lines().collect();
        assert!(
            lines[0].starts_with("drwx") && lines[0].ends_with(" ./usr"),
            "{l}"
        );
        assert!(
            l.contains("2023-11-14 22:13 ./usr/share/coreos/release\n"),
            "{l}"
        );
        assert!(
            l.contains(
                "-rw-r--r--  1 root    root          4 2023-11-14 22:13 ./usr/share/coreos/release"
            ),
            "{l}"
        );
        assert!(l.contains(" ./usr/bin/bash -> sh\n"), "{l}");
        let ash = lines.iter().find(|x| x.ends_with("./usr/bin/ash")).unwrap();
        assert_eq!(ash.split_whitespace().nth(1), Some("2"), "{ash}");
        let usr = lines[0];
        assert_eq!(
            usr.split_whitespace().nth(1),
            Some("4"),
            "bin + share: {usr}"
        );
    }
}
