//! Reading the source tree with lstat (no privileges needed): names sorted by bytes, hard
//! links found by (dev, ino), holes found with SEEK_DATA/SEEK_HOLE, xattrs listed.
//! Nodes are numbered breadth-first, so the result is a pure function of the tree.

use super::{Ext4Error, Override, BLOCK_SIZE};
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
        }
    }

    /// Read the tree under `root`, applying `overrides` (paths relative to `root`).
    pub fn scan(root: &Path, overrides: &[Override]) -> Result<Tree, Ext4Error> {
        let by_path: HashMap<&Path, &Override> =
            overrides.iter().map(|o| (o.path.as_path(), o)).collect();
        let mut applied = 0usize;
        let meta = std::fs::symlink_metadata(root).map_err(|e| io_err(root, e))?;
        if !meta.is_dir() {
            return Err(Ext4Error::Invalid(format!(
                "{}: not a directory",
                root.display()
            )));
        }
        let mut nodes = vec![node_from(root, &meta, Kind::Dir)?];
        nodes[0].names = 1;
        if let Some(o) = by_path.get(Path::new("")) {
            apply(&mut nodes[0], o);
            applied += 1;
        }
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
                        nodes[n].names += 1;
                        nodes[dir].children.push((name, n));
                        continue;
                    }
                }
                let kind = if ft.is_dir() {
                    Kind::Dir
                } else if ft.is_file() {
                    Kind::File {
                        size: m.size(),
                        data: data_blocks(&cabs, &m)?,
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
                let mut node = node_from(&cabs, &m, kind)?;
                node.parent = dir;
                if let Some(o) = by_path.get(crel.as_path()) {
                    apply(&mut node, o);
                    applied += 1;
                }
                let idx = nodes.len();
                if node.is_dir() {
                    queue.push_back((idx, crel));
                } else if m.nlink() > 1 {
                    links.insert((m.dev(), m.ino()), idx);
                }
                nodes.push(node);
                nodes[dir].children.push((name, idx));
            }
        }
        if applied < overrides.len() {
            tracing::warn!(
                unmatched = overrides.len() - applied,
                "some owner/mode overrides name paths that are not in the tree"
            );
        }
        Ok(Tree { nodes })
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

fn node_from(path: &Path, m: &std::fs::Metadata, kind: Kind) -> Result<Node, Ext4Error> {
    Ok(Node {
        kind,
        perm: (m.mode() & 0o7777) as u16,
        uid: m.uid(),
        gid: m.gid(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec() as u32,
        xattrs: read_xattrs(path)?,
        source: path.to_path_buf(),
        in_memory: None,
        names: 1,
        children: Vec::new(),
        parent: 0,
    })
}

/// Logical block ranges of a regular file that hold data. Files that occupy as many blocks
/// as their size are dense; only the others are asked for their holes.
fn data_blocks(path: &Path, m: &std::fs::Metadata) -> Result<Vec<Range<u64>>, Ext4Error> {
    let size = m.size();
    let nblocks = size.div_ceil(BLOCK_SIZE);
    // Opening now reports an unreadable file before anything is written.
    let f = File::open(path).map_err(|e| io_err(path, e))?;
    if size == 0 {
        return Ok(Vec::new());
    }
    if m.blocks() * 512 >= size {
        return Ok(std::iter::once(0..nblocks).collect());
    }
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

/// Extended attributes of `path` (not following symlinks), sorted by name.
fn read_xattrs(path: &Path) -> Result<Xattrs, Ext4Error> {
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
