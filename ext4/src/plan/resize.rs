//! The resize inode (inode 7, resize_inode feature; e2fsprogs `lib/ext2fs/res_gdt.c`): the
//! blocks reserved after each descriptor table, reachable from one double-indirect block,
//! so that a mounted filesystem can be grown (the kernel's online resize adds descriptor
//! blocks there). Its layout: i_block[EXT2_DIND_BLOCK] points at a block whose slot
//! (descriptor blocks + k) mod 1024 holds the k-th reserved block of group 0; that block
//! lists the same reserved block's copies in every backup group, in group order. Only the
//! double-indirect pointer is set; the size is what a double-indirect map spans.

use super::{InodeFormat, Space};
use crate::geometry::Geometry;
use crate::ondisk::inode::{Inode, EXT2_DIND_BLOCK, EXT2_NDIR_BLOCKS, EXT2_RESIZE_INO, S_IFREG};
use crate::BLOCK_SIZE;

/// Block pointers per block (EXT2_ADDR_PER_BLOCK).
const APB: u64 = BLOCK_SIZE / 4;

/// Inode 7 and its blocks: the double-indirect block (allocated here) and the content of
/// group 0's reserved descriptor blocks (which are part of the group's metadata area).
pub(super) fn resize_inode(geo: &Geometry, fmt: &InodeFormat, space: &mut Space) -> (u32, Inode) {
    let dind = space.alloc.one();
    let mut dind_block = vec![0u8; BLOCK_SIZE as usize];
    let backups: Vec<u64> = geo
        .super_groups()
        .filter(|&g| g > 0)
        .map(u64::from)
        .collect();
    for k in 0..geo.reserved_gdt_blocks {
        // Group 0 starts at block 0 with 4 KiB blocks: superblock, descriptors, reserved.
        let primary = 1 + geo.gdt_blocks + k;
        let slot = ((geo.gdt_blocks + k) % APB) as usize * 4;
        dind_block[slot..slot + 4].copy_from_slice(&(primary as u32).to_le_bytes());
        let mut list = vec![0u8; BLOCK_SIZE as usize];
        for (i, g) in backups.iter().enumerate() {
            let copy = primary + g * geo.group_start(1);
            list[i * 4..i * 4 + 4].copy_from_slice(&(copy as u32).to_le_bytes());
        }
        space.metadata.push((primary, list));
    }
    space.metadata.push((dind, dind_block));
    let mut inode = fmt.special(S_IFREG | 0o600);
    inode.size = (APB * APB + APB + EXT2_NDIR_BLOCKS as u64) * BLOCK_SIZE;
    let blocks = 1 + geo.reserved_gdt_blocks * (1 + backups.len() as u64);
    inode.blocks = blocks * (BLOCK_SIZE / 512);
    inode.block[EXT2_DIND_BLOCK * 4..EXT2_DIND_BLOCK * 4 + 4]
        .copy_from_slice(&(dind as u32).to_le_bytes());
    (EXT2_RESIZE_INO, inode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::Allocator;

    #[test]
    fn reserved_blocks_list_their_backups() {
        // 5 groups: backups in groups 1 and 3.
        let geo = Geometry::new(5 * 32768 * 4096, 256, 16384, 64, true).unwrap();
        assert_eq!(geo.reserved_gdt_blocks, 79);
        let mut space = Space {
            alloc: Allocator::new(&geo),
            metadata: Vec::new(),
            extents: true,
            csum_seed: None,
        };
        let fmt = InodeFormat::new(256, 1_700_000_000, true);
        let (ino, inode) = resize_inode(&geo, &fmt, &mut space);
        assert_eq!(ino, 7);
        let dind = u32::from_le_bytes(inode.block[52..56].try_into().unwrap()) as u64;
        assert_eq!(dind, geo.data_start(0), "first allocation");
        let block = |n: u64| &space.metadata.iter().find(|(b, _)| *b == n).unwrap().1;
        let word = |b: &[u8], i: usize| u32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
        // Descriptor table: block 1; reserved blocks 2..=80, in dind slots 1..=79.
        assert_eq!(word(block(dind), 1), 2);
        assert_eq!(word(block(dind), 79), 80);
        assert_eq!(word(block(dind), 0), 0);
        assert_eq!(
            (word(block(2), 0), word(block(2), 1), word(block(2), 2)),
            (32768 + 2, 3 * 32768 + 2, 0)
        );
        assert_eq!(inode.blocks, (1 + 79 * 3) * 8);
        assert_eq!(inode.size, (1024 * 1024 + 1024 + 12) * 4096);
    }
}
