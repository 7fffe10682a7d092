//! Directories (linear blocks), symlinks too long for i_block, and lost+found (four empty
//! blocks, as mke2fs makes it, so e2fsck can reconnect files without allocating).

use super::numbering::{Numbering, LOST_FOUND_INO};
use super::{InodeFormat, Placed, Space};
use crate::dir::{self, Entry};
use crate::ondisk::csum::inode_seed;
use crate::ondisk::dir::{
    EXT4_FT_BLKDEV, EXT4_FT_CHRDEV, EXT4_FT_DIR, EXT4_FT_FIFO, EXT4_FT_REG_FILE, EXT4_FT_SYMLINK,
};
use crate::ondisk::inode::{Inode, EXT2_ROOT_INO, I_BLOCK_BYTES, S_IFDIR};
use crate::scan::{Kind, Node, Tree};
use crate::{Ext4Error, BLOCK_SIZE};

/// Blocks in lost+found (16 KiB with 4 KiB blocks).
pub const LOST_FOUND_BLOCKS: u64 = 4;

pub fn file_type(n: &Node) -> u8 {
    match n.kind {
        Kind::Dir => EXT4_FT_DIR,
        Kind::File { .. } => EXT4_FT_REG_FILE,
        Kind::Symlink(_) => EXT4_FT_SYMLINK,
        Kind::Char(_) => EXT4_FT_CHRDEV,
        Kind::Block(_) => EXT4_FT_BLKDEV,
        Kind::Fifo => EXT4_FT_FIFO,
    }
}

/// The blocks of every directory and slow symlink of the tree, in node order.
pub(super) fn place(
    tree: &Tree,
    numbers: &Numbering,
    space: &mut Space,
) -> Result<Vec<Option<Placed>>, Ext4Error> {
    let nodes = &tree.nodes;
    let ino_of = &numbers.ino_of;
    let mut placed: Vec<Option<Placed>> = (0..nodes.len()).map(|_| None).collect();
    for (i, n) in nodes.iter().enumerate() {
        let ino = ino_of[i];
        let iseed = space.csum_seed.map(|s| inode_seed(s, ino, 0));
        match &n.kind {
            Kind::Dir => {
                let mut entries = vec![
                    Entry {
                        ino,
                        file_type: EXT4_FT_DIR,
                        name: b".",
                    },
                    Entry {
                        ino: ino_of[n.parent],
                        file_type: EXT4_FT_DIR,
                        name: b"..",
                    },
                ];
                if i == 0 && numbers.lost_found.is_none() {
                    entries.push(Entry {
                        ino: LOST_FOUND_INO,
                        file_type: EXT4_FT_DIR,
                        name: b"lost+found",
                    });
                }
                entries.extend(n.children.iter().map(|(name, c)| Entry {
                    ino: ino_of[*c],
                    file_type: file_type(&nodes[*c]),
                    name,
                }));
                let mut blocks = dir::build(&entries, iseed);
                if Some(i) == numbers.lost_found {
                    while (blocks.len() as u64) < LOST_FOUND_BLOCKS {
                        blocks.push(dir::empty_block(iseed));
                    }
                }
                placed[i] = Some(space.place_blocks(blocks, iseed)?);
            }
            Kind::Symlink(t) if t.len() >= I_BLOCK_BYTES => {
                let mut b = vec![0u8; BLOCK_SIZE as usize];
                b[..t.len()].copy_from_slice(t);
                placed[i] = Some(space.place_blocks(vec![b], iseed)?);
            }
            _ => {}
        }
    }
    Ok(placed)
}

/// lost+found when the tree has none: inode 11 and its blocks.
pub(super) fn lost_found(
    numbers: &Numbering,
    fmt: &InodeFormat,
    space: &mut Space,
) -> Result<Option<(u32, Inode)>, Ext4Error> {
    if numbers.lost_found.is_some() {
        return Ok(None);
    }
    let iseed = space.csum_seed.map(|s| inode_seed(s, LOST_FOUND_INO, 0));
    let mut blocks = dir::build(
        &[
            Entry {
                ino: LOST_FOUND_INO,
                file_type: EXT4_FT_DIR,
                name: b".",
            },
            Entry {
                ino: EXT2_ROOT_INO,
                file_type: EXT4_FT_DIR,
                name: b"..",
            },
        ],
        iseed,
    );
    while (blocks.len() as u64) < LOST_FOUND_BLOCKS {
        blocks.push(dir::empty_block(iseed));
    }
    let pl = space.place_blocks(blocks, iseed)?;
    let mut inode = fmt.special(S_IFDIR | 0o700);
    inode.size = LOST_FOUND_BLOCKS * BLOCK_SIZE;
    inode.links_count = 2;
    inode.blocks = pl.blocks * (BLOCK_SIZE / 512);
    inode.flags = pl.flags;
    inode.block = pl.block;
    Ok(Some((LOST_FOUND_INO, inode)))
}
