//! The tree's inodes: type and permission bits, owner, size, link count, times, and where
//! their blocks and attributes went.

use super::numbering::Numbering;
use super::xattrs::XattrPlacement;
use super::{InodeFormat, Inodes, Placed};
use crate::geometry::Geometry;
use crate::ondisk::inode::{
    encode_dev, Inode, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG,
};
use crate::scan::{Kind, Tree};
use crate::{Ext4Error, BLOCK_SIZE};

/// Highest link count an inode records; directories past it record 1 (dir_nlink).
const EXT4_LINK_MAX: u32 = 65000;

/// Add the tree's inodes to `inodes`; returns the directories per group (bg_used_dirs_count).
pub(super) fn tree_inodes(
    tree: &Tree,
    numbers: &Numbering,
    mut placed: Vec<Option<Placed>>,
    mut xattrs: XattrPlacement,
    fmt: &InodeFormat,
    geo: &Geometry,
    inodes: &mut Inodes,
) -> Result<Vec<u32>, Ext4Error> {
    let nodes = &tree.nodes;
    let mut used_dirs = vec![0u32; geo.groups as usize];
    for (i, n) in nodes.iter().enumerate() {
        let ino = numbers.ino_of[i];
        let pl = placed[i].take();
        let (type_bits, size, links) = match &n.kind {
            Kind::Dir => {
                let subdirs = n
                    .children
                    .iter()
                    .filter(|(_, c)| nodes[*c].is_dir())
                    .count() as u32
                    + u32::from(i == 0 && numbers.lost_found.is_none());
                let mut links = 2 + subdirs;
                if links > EXT4_LINK_MAX {
                    if !fmt.dir_nlink {
                        return Err(Ext4Error::Invalid(format!(
                            "{}: too many subdirectories for ext2",
                            n.source.display()
                        )));
                    }
                    links = 1;
                }
                used_dirs[geo.inode_location(ino).0 as usize] += 1;
                let blocks = pl.as_ref().map_or(0, |p| p.len);
                (S_IFDIR, blocks * BLOCK_SIZE, links)
            }
            Kind::File { size, .. } => (S_IFREG, *size, n.names),
            Kind::Symlink(t) => (S_IFLNK, t.len() as u64, n.names),
            Kind::Char(_) => (S_IFCHR, 0, n.names),
            Kind::Block(_) => (S_IFBLK, 0, n.names),
            Kind::Fifo => (S_IFIFO, 0, n.names),
        };
        if links > EXT4_LINK_MAX {
            return Err(Ext4Error::Invalid(format!(
                "{}: {links} hard links exceed {EXT4_LINK_MAX}",
                n.source.display()
            )));
        }
        // Only mtime is the tree's content: the source's atime moves as we read it and its
        // ctime as it was unpacked, so both would make builds differ.
        let t = fmt.time(n.mtime, n.mtime_nsec);
        let mut inode = Inode {
            mode: type_bits | n.perm,
            uid: n.uid,
            gid: n.gid,
            size,
            atime: t,
            ctime: t,
            mtime: t,
            crtime: t,
            links_count: links as u16,
            extra_isize: fmt.extra_isize,
            ..Default::default()
        };
        match (&n.kind, pl) {
            (_, Some(pl)) => {
                inode.block = pl.block;
                inode.blocks = pl.blocks * (BLOCK_SIZE / 512);
                inode.flags = pl.flags;
            }
            (Kind::Symlink(t), None) => inode.block[..t.len()].copy_from_slice(t),
            (Kind::Char(r) | Kind::Block(r), None) => {
                encode_dev(&mut inode.block, libc::major(*r), libc::minor(*r))
            }
            _ => {}
        }
        if let Some(blk) = xattrs.block_of[i] {
            inode.file_acl = blk;
            inode.blocks += BLOCK_SIZE / 512;
        }
        inodes.insert(ino, (inode, std::mem::take(&mut xattrs.in_inode[i])));
    }
    Ok(used_dirs)
}
