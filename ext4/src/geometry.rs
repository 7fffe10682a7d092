//! Where each block group's metadata lives. Both flavours use the classic per-group layout
//! ([superblock + descriptors backup] block bitmap, inode bitmap, inode table, data), which is
//! also valid under flex_bg and keeps one layout rule for ext2 and ext4. With resize_inode,
//! every group holding a superblock copy also reserves blocks after its descriptor table
//! for the table to grow into when the filesystem is grown (as mke2fs does).

use super::ondisk::superblock::group_has_super;
use super::{Ext4Error, BLOCK_SIZE};

/// Blocks per group: one bitmap block's worth of bits.
pub const BLOCKS_PER_GROUP: u64 = BLOCK_SIZE * 8;
/// mke2fs drops a last group with fewer free blocks than this after its metadata.
const MIN_LAST_GROUP_DATA: u64 = 50;

#[derive(Debug, Clone)]
pub struct Geometry {
    pub blocks_count: u64,
    pub groups: u32,
    pub inodes_per_group: u32,
    pub inode_size: u16,
    /// Inode table blocks per group.
    pub itable_blocks: u64,
    /// Bytes per group descriptor (32, or 64 with the 64bit feature).
    pub desc_size: usize,
    /// Blocks of the group descriptor table.
    pub gdt_blocks: u64,
    /// Blocks reserved after the descriptor table (s_reserved_gdt_blocks; 0 without
    /// resize_inode).
    pub reserved_gdt_blocks: u64,
}

/// Block pointers per block (EXT2_ADDR_PER_BLOCK): the resize inode's double-indirect
/// block holds one per reserved descriptor block, so this is their limit.
const ADDR_PER_BLOCK: u64 = BLOCK_SIZE / 4;

/// s_reserved_gdt_blocks as mke2fs chooses it (e2fsprogs `calc_reserved_gdt_blocks`): room
/// for the descriptors of a filesystem 1024 times as large, or of 2^32 blocks (16 TiB)
/// if that is less, at most one block of pointers; none when the table would then take
/// more than 3/4 of a group (mke2fs switches to meta_bg there, which this writer does not).
pub fn reserved_gdt_blocks(blocks_count: u64, gdt_blocks: u64, desc_size: usize) -> u64 {
    let max_blocks = if blocks_count < u32::MAX as u64 / 1024 {
        blocks_count * 1024
    } else {
        u32::MAX as u64
    };
    let groups = max_blocks.div_ceil(BLOCKS_PER_GROUP);
    let descs_per_block = BLOCK_SIZE / desc_size as u64;
    // Past 2^32 blocks mke2fs's unsigned subtraction wraps, and the cap applies.
    let rsv = groups
        .div_ceil(descs_per_block)
        .checked_sub(gdt_blocks)
        .unwrap_or(ADDR_PER_BLOCK)
        .min(ADDR_PER_BLOCK);
    if rsv + gdt_blocks > BLOCKS_PER_GROUP * 3 / 4 {
        0
    } else {
        rsv
    }
}

impl Geometry {
    /// The layout of a filesystem of `size` bytes; `resize_inode` reserves descriptor
    /// blocks for growth.
    pub fn new(
        size: u64,
        inode_size: u16,
        bytes_per_inode: u64,
        desc_size: usize,
        resize_inode: bool,
    ) -> Result<Geometry, Ext4Error> {
        if !(128..=4096).contains(&inode_size) || !inode_size.is_power_of_two() {
            return Err(Ext4Error::Invalid(format!(
                "inode size {inode_size} is not a power of two in 128..=4096"
            )));
        }
        if bytes_per_inode < 1024 {
            return Err(Ext4Error::Invalid(format!(
                "bytes per inode {bytes_per_inode} is below 1024"
            )));
        }
        let mut blocks = size / BLOCK_SIZE;
        if blocks < 64 {
            return Err(Ext4Error::Invalid(format!(
                "a filesystem of {size} bytes is too small (at least 256 KiB)"
            )));
        }
        let inodes_per_block = BLOCK_SIZE / inode_size as u64;
        loop {
            let groups = blocks.div_ceil(BLOCKS_PER_GROUP);
            let wanted = (blocks * BLOCK_SIZE / bytes_per_inode).max(16);
            let mut ipg = wanted.div_ceil(groups).div_ceil(inodes_per_block) * inodes_per_block;
            ipg = ipg.clamp(inodes_per_block.max(16), BLOCKS_PER_GROUP);
            let gdt_blocks = (groups * desc_size as u64).div_ceil(BLOCK_SIZE);
            let reserved = if resize_inode {
                reserved_gdt_blocks(blocks, gdt_blocks, desc_size)
            } else {
                0
            };
            let g = Geometry {
                blocks_count: blocks,
                groups: groups as u32,
                inodes_per_group: ipg as u32,
                inode_size,
                itable_blocks: ipg / inodes_per_block,
                desc_size,
                gdt_blocks,
                reserved_gdt_blocks: reserved,
            };
            let last = g.groups - 1;
            let last_len = g.group_len(last);
            if last_len < g.overhead(last) + MIN_LAST_GROUP_DATA {
                if last == 0 {
                    return Err(Ext4Error::Invalid(format!(
                        "a filesystem of {size} bytes is too small for its metadata"
                    )));
                }
                blocks -= last_len;
                continue;
            }
            return Ok(g);
        }
    }

    pub fn inodes_count(&self) -> u64 {
        self.inodes_per_group as u64 * self.groups as u64
    }
    pub fn group_start(&self, g: u32) -> u64 {
        g as u64 * BLOCKS_PER_GROUP
    }
    pub fn group_len(&self, g: u32) -> u64 {
        (self.blocks_count - self.group_start(g)).min(BLOCKS_PER_GROUP)
    }
    pub fn has_super(&self, g: u32) -> bool {
        group_has_super(g, true)
    }
    pub fn block_bitmap(&self, g: u32) -> u64 {
        self.group_start(g)
            + if self.has_super(g) {
                1 + self.gdt_blocks + self.reserved_gdt_blocks
            } else {
                0
            }
    }
    pub fn inode_bitmap(&self, g: u32) -> u64 {
        self.block_bitmap(g) + 1
    }
    pub fn inode_table(&self, g: u32) -> u64 {
        self.block_bitmap(g) + 2
    }
    pub fn data_start(&self, g: u32) -> u64 {
        self.inode_table(g) + self.itable_blocks
    }
    /// Metadata blocks at the start of group `g`.
    pub fn overhead(&self, g: u32) -> u64 {
        self.data_start(g) - self.group_start(g)
    }
    /// Groups holding a superblock copy, the descriptor table and its reserved blocks.
    pub fn super_groups(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.groups).filter(|&g| self.has_super(g))
    }
    /// The group an inode number belongs to, and its index inside it.
    pub fn inode_location(&self, ino: u32) -> (u32, u32) {
        (
            (ino - 1) / self.inodes_per_group,
            (ino - 1) % self.inodes_per_group,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usr_a_geometry() {
        // CoreOS USR-A: 260094 blocks of 4 KiB, 128-byte inodes, one per 4096 bytes.
        let g = Geometry::new(260094 * 4096, 128, 4096, 32, false).unwrap();
        assert_eq!(g.blocks_count, 260094);
        assert_eq!(g.groups, 8);
        assert_eq!(g.inodes_per_group, 32512);
        assert_eq!(g.itable_blocks, 1016);
        assert_eq!(g.block_bitmap(0), 2);
        assert_eq!(g.block_bitmap(2), 65536);
    }

    #[test]
    fn tiny_last_group_is_dropped() {
        let g = Geometry::new((32768 + 40) * 4096, 256, 16384, 64, true).unwrap();
        assert_eq!(g.groups, 1);
        assert_eq!(g.blocks_count, 32768);
    }

    #[test]
    fn reserved_gdt_blocks_as_mke2fs() {
        // Values `mke2fs -t ext4 -b 4096` (64bit, 64-byte descriptors) records for these
        // sizes (dumpe2fs "Reserved GDT blocks"); tests/tests/ext4.rs compares live.
        assert_eq!(reserved_gdt_blocks(16384, 1, 64), 7); // 64 MiB
        assert_eq!(reserved_gdt_blocks(32768, 1, 64), 15); // 128 MiB
        assert_eq!(reserved_gdt_blocks(553472, 1, 64), 270); // ROOT, 2162 MiB
        assert_eq!(reserved_gdt_blocks(4194304, 2, 64), 1024); // 16 GiB: capped
        assert_eq!(reserved_gdt_blocks(2048, 1, 32), 0); // 8 MiB, 32-byte descriptors
        let g = Geometry::new(553472 * 4096, 256, 16384, 64, true).unwrap();
        assert_eq!(g.reserved_gdt_blocks, 270);
        assert_eq!(g.block_bitmap(1), 32768 + 1 + 1 + 270);
        assert_eq!(g.block_bitmap(2), 65536, "no superblock copy in group 2");
    }
}
