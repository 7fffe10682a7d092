//! The entries of a written filesystem as its inodes record them: what `find` or `ls -l`
//! shows on the mounted filesystem, known without mounting it. Owners, modes and times are
//! the ones written (after `all_root`, overrides and the time clamp), not the source tree's,
//! so a listing made from them describes the image, not the build host.

use crate::ondisk::inode::Inode;
use crate::ondisk::inode::EXT2_GOOD_OLD_FIRST_INO as LOST_FOUND_INO;
use crate::scan::{Kind, Tree};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// One inode under one of its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the filesystem, without a leading slash ("" is the root).
    pub path: PathBuf,
    /// Type and permission bits (st_mode).
    pub mode: u16,
    pub links: u16,
    pub uid: u32,
    pub gid: u32,
    /// i_size: a file's length, a directory's blocks in bytes, a symlink's target length.
    pub size: u64,
    /// Seconds since the epoch, as stored.
    pub mtime: i64,
    /// A symlink's target.
    pub target: Option<Vec<u8>>,
}

/// Every name of the filesystem, depth first with names sorted by bytes (so paths come in
/// the order of their components), lost+found included. `made_lost_found`: the writer made
/// lost+found (inode 11) because the tree had none.
pub(crate) fn list<'a>(
    tree: &Tree,
    ino_of: &[u32],
    made_lost_found: bool,
    inode: impl Fn(u32) -> &'a Inode,
) -> Vec<Entry> {
    let entry = |path: PathBuf, ino: u32, target: Option<Vec<u8>>| {
        let i = inode(ino);
        Entry {
            path,
            mode: i.mode,
            links: i.links_count,
            uid: i.uid,
            gid: i.gid,
            size: i.size,
            mtime: i.mtime.secs,
            target,
        }
    };
    let mut out = Vec::with_capacity(tree.nodes.len() + 1);
    // (path, node); None stands for a lost+found the writer made.
    let mut stack: Vec<(PathBuf, Option<usize>)> = vec![(PathBuf::new(), Some(0))];
    while let Some((path, node)) = stack.pop() {
        let Some(i) = node else {
            out.push(entry(path, LOST_FOUND_INO, None));
            continue;
        };
        let n = &tree.nodes[i];
        let target = match &n.kind {
            Kind::Symlink(t) => Some(t.clone()),
            _ => None,
        };
        out.push(entry(path.clone(), ino_of[i], target));
        if n.kind != Kind::Dir {
            continue;
        }
        let mut children: Vec<(&[u8], Option<usize>)> = n
            .children
            .iter()
            .map(|(name, c)| (name.as_slice(), Some(*c)))
            .collect();
        if i == 0 && made_lost_found {
            let at = children.partition_point(|(name, _)| *name < b"lost+found".as_slice());
            children.insert(at, (b"lost+found", None));
        }
        // Pushed last first, so they come off the stack in name order.
        for (name, c) in children.into_iter().rev() {
            stack.push((path.join(OsStr::from_bytes(name)), c));
        }
    }
    out
}
