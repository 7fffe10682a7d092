//! Reading the source tree with lstat (no privileges needed): names sorted by bytes, hard
//! links found by (dev, ino), holes found with SEEK_DATA/SEEK_HOLE, xattrs listed.
//! Nodes are numbered breadth-first, so the result is a pure function of the tree.

use super::{Ext4Error, Override, XattrPolicy, BLOCK_SIZE};
use std::collections::{HashMap, VecDeque};
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Longest name a directory entry holds (EXT4_NAME_LEN).
pub const EXT4_NAME_LEN: usize = 255;

/// (full name, value) pairs, sorted by name.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// `data`: logical block ranges that hold data (holes are left out).
    File {
        size: u64,
        data: Vec<Range<u64>>,
    },
    Symlink(Vec<u8>),
    Char(u64),
    Block(u64),
    Fifo,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (07777).
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub xattrs: Xattrs,
    /// Where to read the content from.
    pub source: PathBuf,
    /// The content itself, for files added from memory (`extra`); `source` is then only a name.
    pub in_memory: Option<Vec<u8>>,
    /// Names this node has inside the tree.
    pub names: u32,
    /// For directories: (name, node index), sorted by name bytes.
    pub children: Vec<(Vec<u8>, usize)>,
    /// For directories: the parent node (the root is its own parent).
    pub parent: usize,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }
}

/// The whole tree; node 0 is the root.
#[derive(Debug, Clone)]
pub struct Tree {
    pub nodes: Vec<Node>,
    /// Nodes whose owner is not uid 0 after the rules, and the first of them in scan order:
    /// (path inside the tree, uid, gid). Groups are not counted: a distribution's /usr has
    /// root-owned files of system groups (shadow, tty) by design, while a tree unpacked by an
    /// unprivileged user has that user's uid everywhere.
    pub not_root_owned: u64,
    pub not_root_example: Option<(PathBuf, u32, u32)>,
    /// Extended attributes the rules left out.
    pub xattrs_dropped: u64,
}

/// What the scan changes about the tree: owners first (`all_root`, then `overrides` by
/// path), and which extended attributes it keeps.
#[derive(Default)]
pub struct Rules<'a> {
    pub all_root: bool,
    pub overrides: &'a [Override],
    pub xattrs: XattrPolicy,
}

fn io_err(path: &Path, source: std::io::Error) -> Ext4Error {
    Ext4Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Tree {
    /// An empty root directory (mode 0755, root-owned).
    pub fn empty(timestamp: u32) -> Tree {
        Tree {
            nodes: vec![Node {
                kind: Kind::Dir,
                perm: 0o755,
                uid: 0,
                gid: 0,
                mtime: timestamp as i64,
                mtime_nsec: 0,
                xattrs: Vec::new(),
                source: PathBuf::new(),
                in_memory: None,
                names: 1,
                children: Vec::new(),
                parent: 0,
            }],
            not_root_owned: 0,
            not_root_example: None,
            xattrs_dropped: 0,
        }
    }

    /// Read the tree under `root`, applying `rules` (override paths are relative to `root`).
    pub fn scan(root: &Path, rules: &Rules) -> Result<Tree, Ext4Error> {
        let by_path: HashMap<&Path, &Override> = rules
            .overrides
            .iter()
            .map(|o| (o.path.as_path(), o))
            .collect();
        let mut applied = 0usize;
        let mut tree = Tree {
            nodes: Vec::new(),
            not_root_owned: 0,
            not_root_example: None,
            xattrs_dropped: 0,
        };
        // Owners as written: all-root first, then the manifest line for this path.
        let mut own = |tree: &mut Tree, node: &mut Node, rel: &Path| {
            if rules.all_root {
                (node.uid, node.gid) = (0, 0);
            }
            if let Some(o) = by_path.get(rel) {
                apply(node, o);
                applied += 1;
            }
            if node.uid != 0 {
                tree.not_root_owned += 1;
                tree.not_root_example
                    .get_or_insert_with(|| (rel.to_path_buf(), node.uid, node.gid));
            }
        };
        let reader = Reader::current();
        let meta = std::fs::symlink_metadata(root).map_err(|e| io_err(root, e))?;
        if !meta.is_dir() {
            return Err(Ext4Error::Invalid(format!(
                "{}: not a directory",
                root.display()
            )));
        }
        let mut top = node_from(root, &meta, Kind::Dir, rules.xattrs, &mut tree)?;
        own(&mut tree, &mut top, Path::new(""));
        tree.nodes.push(top);
        let mut links: HashMap<(u64, u64), usize> = HashMap::new();
        let mut queue: VecDeque<(usize, PathBuf)> = VecDeque::from([(0usize, PathBuf::new())]);
        while let Some((dir, rel)) = queue.pop_front() {
            let abs = root.join(&rel);
            // lstat through the directory's descriptor (DirEntry::metadata): no path walk.
            let mut entries = Vec::new();
            for entry in std::fs::read_dir(&abs).map_err(|e| io_err(&abs, e))? {
                let entry = entry.map_err(|e| io_err(&abs, e))?;
                let m = entry.metadata().map_err(|e| io_err(&entry.path(), e))?;
                entries.push((entry.file_name().as_bytes().to_vec(), m));
            }
            entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for (name, m) in entries {
                let crel = rel.join(OsStr::from_bytes(&name));
                let cabs = root.join(&crel);
                if name.len() > EXT4_NAME_LEN {
                    return Err(Ext4Error::NameTooLong {
                        path: cabs,
                        len: name.len(),
                    });
                }
                let ft = m.file_type();
                if ft.is_socket() {
                    tracing::warn!(path = %cabs.display(), "skipping a socket: ext4 images cannot hold live sockets");
                    continue;
                }
                if !ft.is_dir() && m.nlink() > 1 {
                    if let Some(&n) = links.get(&(m.dev(), m.ino())) {
                        tree.nodes[n].names += 1;
                        tree.nodes[dir].children.push((name, n));
                        continue;
                    }
                }
                let kind = if ft.is_dir() {
                    Kind::Dir
                } else if ft.is_file() {
                    Kind::File {
                        size: m.size(),
                        data: data_blocks(&cabs, &m, &reader)?,
                    }
                } else if ft.is_symlink() {
                    let t = std::fs::read_link(&cabs).map_err(|e| io_err(&cabs, e))?;
                    Kind::Symlink(t.as_os_str().as_bytes().to_vec())
                } else if ft.is_char_device() {
                    Kind::Char(m.rdev())
                } else if ft.is_block_device() {
                    Kind::Block(m.rdev())
                } else {
                    Kind::Fifo
                };
                let mut node = node_from(&cabs, &m, kind, rules.xattrs, &mut tree)?;
                node.parent = dir;
                own(&mut tree, &mut node, &crel);
                let idx = tree.nodes.len();
                if node.is_dir() {
                    queue.push_back((idx, crel));
                } else if m.nlink() > 1 {
                    links.insert((m.dev(), m.ino()), idx);
                }
                tree.nodes.push(node);
                tree.nodes[dir].children.push((name, idx));
            }
        }
        if applied < rules.overrides.len() {
            tracing::warn!(
                unmatched = rules.overrides.len() - applied,
                "some owner/mode overrides name paths that are not in the tree"
            );
        }
        Ok(tree)
    }
}

fn apply(node: &mut Node, o: &Override) {
    if let Some(u) = o.uid {
        node.uid = u;
    }
    if let Some(g) = o.gid {
        node.gid = g;
    }
    if let Some(m) = o.mode {
        node.perm = (m & 0o7777) as u16;
    }
}

fn node_from(
    path: &Path,
    m: &std::fs::Metadata,
    kind: Kind,
    xattrs: XattrPolicy,
    tree: &mut Tree,
) -> Result<Node, Ext4Error> {
    Ok(Node {
        kind,
        perm: (m.mode() & 0o7777) as u16,
        uid: m.uid(),
        gid: m.gid(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec() as u32,
        xattrs: read_xattrs(path, xattrs, &mut tree.xattrs_dropped)?,
        source: path.to_path_buf(),
        in_memory: None,
        names: 1,
        children: Vec::new(),
        parent: 0,
    })
}

/// Who the scan runs as, to tell from a file's mode whether it may read the file.
struct Reader {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

impl Reader {
    fn current() -> Reader {
        // SAFETY: no arguments; these calls cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        // SAFETY: a zero-length call only counts; the second fills at most `n` entries.
        let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) }.max(0) as usize;
        let mut groups = vec![0 as libc::gid_t; n];
        // SAFETY: `groups` has room for `n` entries.
        let got = unsafe { libc::getgroups(n as libc::c_int, groups.as_mut_ptr()) };
        groups.truncate(got.max(0) as usize);
        Reader { uid, gid, groups }
    }

    /// Whether the mode grants read, as the kernel decides it before ACLs and capabilities:
    /// the owner gets the owner's bits only, a group member the group's, anyone else the
    /// others'.
    fn mode_grants_read(&self, mode: u32, owner: u32, group: u32) -> bool {
        let bit = if owner == self.uid {
            0o400
        } else if group == self.gid || self.groups.contains(&group) {
            0o040
        } else {
            0o004
        };
        mode & bit != 0
    }
}

/// Logical block ranges of a regular file that hold data. Files that occupy as many blocks
/// as their size are dense; only the others are asked for their holes.
fn data_blocks(
    path: &Path,
    m: &std::fs::Metadata,
    reader: &Reader,
) -> Result<Vec<Range<u64>>, Ext4Error> {
    let size = m.size();
    let nblocks = size.div_ceil(BLOCK_SIZE);
    // An unreadable file is reported now, before anything is written. The mode answers for
    // nearly every file without a system call (an open and a close of each of a /usr's 9,000
    // files were a quarter of the scan); where it refuses, an open decides, since an ACL or a
    // capability (root's) may still grant read.
    if !reader.mode_grants_read(m.mode(), m.uid(), m.gid()) {
        File::open(path).map_err(|e| io_err(path, e))?;
    }
    if size == 0 {
        return Ok(Vec::new());
    }
    if m.blocks() * 512 >= size {
        return Ok(std::iter::once(0..nblocks).collect());
    }
    let f = File::open(path).map_err(|e| io_err(path, e))?;
    let bytes = disk::sparse::data_ranges(&f).map_err(|e| io_err(path, e))?;
    let mut out: Vec<Range<u64>> = Vec::new();
    for r in bytes {
        let s = r.start / BLOCK_SIZE;
        let e = r.end.div_ceil(BLOCK_SIZE).min(nblocks);
        if s >= e {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.end >= s => last.end = last.end.max(e),
            _ => out.push(s..e),
        }
    }
    Ok(out)
}

/// Extended attributes of `path` (not following symlinks) that `policy` keeps, sorted by
/// name; the others are counted in `dropped` (and not read).
fn read_xattrs(path: &Path, policy: XattrPolicy, dropped: &mut u64) -> Result<Xattrs, Ext4Error> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Ext4Error::Invalid(format!("{}: NUL in path", path.display())))?;
    let mut list = vec![0u8; 1024];
    let n = loop {
        // SAFETY: buffer pointer and length describe a valid, writable allocation.
        let n = unsafe { libc::llistxattr(c.as_ptr(), list.as_mut_ptr().cast(), list.len()) };
        if n >= 0 {
            break n as usize;
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ERANGE) => list.resize(list.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            _ => return Err(io_err(path, err)),
        }
    };
    let mut out = Vec::new();
    for name in list[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        if !policy.keeps(name) {
            *dropped += 1;
            continue;
        }
        let cname = CString::new(name).expect("split at NUL");
        let mut val = vec![0u8; 256];
        loop {
            // SAFETY: as above.
            let r = unsafe {
                libc::lgetxattr(
                    c.as_ptr(),
                    cname.as_ptr(),
                    val.as_mut_ptr().cast(),
                    val.len(),
                )
            };
            if r >= 0 {
                val.truncate(r as usize);
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ERANGE) {
                val.resize(val.len() * 4, 0);
                continue;
            }
            return Err(io_err(path, err));
        }
        out.push((name.to_vec(), val));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chown(p: &Path, uid: u32, gid: u32) {
        std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
    }

    fn setxattr(p: &Path, name: &str, value: &[u8]) {
        let (c, n) = (
            CString::new(p.as_os_str().as_bytes()).unwrap(),
            CString::new(name).unwrap(),
        );
        // SAFETY: valid C strings and value buffer.
        let rc = unsafe {
            libc::lsetxattr(
                c.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        assert_eq!(rc, 0, "{name}: {}", std::io::Error::last_os_error());
    }

    #[test]
    fn the_mode_grants_read_as_the_kernel_decides() {
        let me = Reader {
            uid: 1000,
            gid: 100,
            groups: vec![100, 27],
        };
        // The owner gets the owner's bits only, even where the others' would grant more.
        assert!(me.mode_grants_read(0o100400, 1000, 0));
        assert!(!me.mode_grants_read(0o100044, 1000, 100));
        // A member (by the primary group or a supplementary one) gets the group's bits only.
        assert!(me.mode_grants_read(0o100640, 0, 27));
        assert!(me.mode_grants_read(0o100040, 0, 100));
        assert!(!me.mode_grants_read(0o100604, 0, 27));
        // Anyone else gets the others' bits.
        assert!(me.mode_grants_read(0o100004, 0, 0));
        assert!(!me.mode_grants_read(0o100640, 0, 0));
        // Root is not special here: where its bits refuse, the scan opens the file to be sure.
        let root = Reader {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
        };
        assert!(!root.mode_grants_read(0o100000, 0, 0));
    }

    #[test]
    fn a_file_the_mode_refuses_is_opened_to_decide() {
        // Mode 000: for root the open succeeds (it reads through permissions) and the file is
        // scanned; for anyone else the scan fails naming it.
        let dir = tempfile::tempdir().unwrap();
        let locked = dir.path().join("locked");
        std::fs::write(&locked, b"data").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        let r = Tree::scan(dir.path(), &Rules::default());
        // SAFETY: geteuid takes nothing and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            let tree = r.unwrap();
            assert!(tree
                .nodes
                .iter()
                .any(|n| matches!(n.kind, Kind::File { size: 4, .. })));
        } else {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("locked"), "{e}");
        }
    }

    #[test]
    fn owners_all_root_then_overrides_and_the_count_of_the_rest() {
        // SAFETY: no arguments, no memory.
        if unsafe { libc::geteuid() } != 0 {
            // Said past libtest's capture: ci/test-lanes counts `SKIPPED:` lines as skipped.
            use std::io::Write;
            let why = "\nSKIPPED: scan::owners_all_root: chown to other users needs root\n";
            let _ = std::io::stderr().write_all(why.as_bytes());
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        chown(root, 0, 0);
        std::fs::write(root.join("a"), b"a").unwrap();
        std::fs::write(root.join("b"), b"b").unwrap();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/c"), b"c").unwrap();
        chown(&root.join("a"), 1000, 1000);
        chown(&root.join("d"), 5, 0);
        chown(&root.join("d/c"), 0, 7);
        let scan = |rules: &Rules| Tree::scan(root, rules).unwrap();
        let t = scan(&Rules::default());
        assert_eq!(
            t.not_root_owned, 2,
            "d/c (uid 0, a system group) is not counted"
        );
        assert_eq!(t.not_root_example, Some((PathBuf::from("a"), 1000, 1000)));
        let all = scan(&Rules {
            all_root: true,
            ..Default::default()
        });
        assert_eq!((all.not_root_owned, all.not_root_example), (0, None));
        assert!(all.nodes.iter().all(|n| (n.uid, n.gid) == (0, 0)));
        let over = [Override {
            path: "d".into(),
            uid: Some(5),
            gid: None,
            mode: Some(0o700),
        }];
        let t = scan(&Rules {
            all_root: true,
            overrides: &over,
            ..Default::default()
        });
        assert_eq!(t.not_root_example, Some((PathBuf::from("d"), 5, 0)));
        let d_node = t.nodes.iter().find(|n| n.source.ends_with("d")).unwrap();
        assert_eq!(d_node.perm, 0o700);
    }

    #[test]
    fn host_labels_are_dropped_capabilities_kept() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("ping");
        std::fs::write(&f, b"x").unwrap();
        setxattr(&f, "user.origin", b"host");
        let cap = [
            1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        // SAFETY: geteuid takes nothing and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            setxattr(&f, "security.capability", &cap);
            setxattr(&f, "security.selinux", b"system_u:object_r:bin_t:s0\0");
        }
        let names = |policy: XattrPolicy| {
            let t = Tree::scan(
                d.path(),
                &Rules {
                    xattrs: policy,
                    ..Default::default()
                },
            )
            .unwrap();
            let n: Vec<String> = t.nodes[1]
                .xattrs
                .iter()
                .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                .collect();
            (n, t.xattrs_dropped)
        };
        let (kept, dropped) = names(XattrPolicy::DropHostLabels);
        if root {
            assert_eq!(
                (kept, dropped),
                (vec!["security.capability".to_string()], 2)
            );
        } else {
            assert_eq!((kept.len(), dropped), (0, 1));
        }
        let (all, dropped) = names(XattrPolicy::KeepAll);
        assert_eq!((all.len(), dropped), (if root { 3 } else { 1 }, 0));
    }
}
