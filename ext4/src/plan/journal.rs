//! The internal journal (inode 8): one contiguous run allocated before the tree's blocks,
//! its first block the JBD2 superblock of an empty journal, the rest left reading as zeros.

use super::{InodeFormat, Space};
use crate::alloc::zip;
use crate::geometry::Geometry;
use crate::ondisk::csum::inode_seed;
use crate::ondisk::inode::{Inode, EXT4_JOURNAL_INO, S_IFREG};
use crate::ondisk::jbd2;
use crate::{Ext4Error, BLOCK_SIZE};

/// The journal inode and s_jnl_blocks (its i_block, then i_size high and low), or None when
/// the filesystem is too small for one.
pub(super) fn journal(
    geo: &Geometry,
    fmt: &InodeFormat,
    uuid: &[u8; 16],
    space: &mut Space,
) -> Result<Option<(u32, Inode, [u32; 17])>, Ext4Error> {
    let len = default_blocks(geo.blocks_count);
    if len == 0 {
        return Ok(None);
    }
    let runs = space.alloc.alloc(len);
    let sb = jbd2::superblock(BLOCK_SIZE as u32, len as u32, uuid);
    space.metadata.push((runs[0].start, sb));
    let maps = zip(std::slice::from_ref(&(0..len)), &runs);
    let iseed = space.csum_seed.map(|s| inode_seed(s, EXT4_JOURNAL_INO, 0));
    let placed = space.map_blocks(&maps, iseed)?;
    let mut backup = [0u32; 17];
    for (i, w) in placed.block.chunks(4).enumerate() {
        backup[i] = u32::from_le_bytes(w.try_into().unwrap());
    }
    let bytes = len * BLOCK_SIZE;
    backup[15] = (bytes >> 32) as u32;
    backup[16] = bytes as u32;
    let mut inode = fmt.special(S_IFREG | 0o600);
    inode.size = bytes;
    inode.blocks = placed.blocks * (BLOCK_SIZE / 512);
    inode.flags = placed.flags;
    inode.block = placed.block;
    Ok(Some((EXT4_JOURNAL_INO, inode, backup)))
}

/// Journal length in blocks for a filesystem of `blocks` 4 KiB blocks, as e2fsprogs'
/// `ext2fs_default_journal_size` chooses it (none below 2048 blocks).
pub fn default_blocks(blocks: u64) -> u64 {
    match blocks {
        0..2048 => 0,
        2048..32768 => 1024,
        32768..262144 => 4096,
        262144..524288 => 8192,
        524288..4194304 => 16384,
        4194304..8388608 => 32768,
        8388608..16777216 => 65536,
        16777216..33554432 => 131072,
        _ => 262144,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_mke2fs() {
        assert_eq!(default_blocks(1000), 0);
        assert_eq!(default_blocks(32768), 4096);
        assert_eq!(default_blocks(262144), 8192); // 1 GiB: 32 MiB, as mke2fs made above
        assert_eq!(default_blocks(553472), 16384);
    }
}
