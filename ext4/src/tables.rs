//! The fixed metadata of every group: inode tables, block and inode bitmaps, the group
//! descriptor table, and the superblock with its sparse_super backups.

use super::geometry::Geometry;
use super::ondisk::group::{bitmap_checksum, GroupDesc, EXT4_BG_INODE_ZEROED};
use super::ondisk::inode::{Inode, EXT2_GOOD_OLD_FIRST_INO, EXT4_JOURNAL_INO};
use super::ondisk::superblock::*;
use super::{Ext4Params, Flavor, BLOCK_SIZE};
use std::collections::HashMap;

/// The ext4 flavour's reserved-block share, as mke2fs's default (5%).
const RESERVED_PERCENT: u64 = 5;
/// s_log_groups_per_flex as mke2fs sets it (16 groups per flex group).
const LOG_GROUPS_PER_FLEX: u8 = 4;

/// Inode table blocks holding inodes 1..=max_ino (the rest of each table reads as zeros).
pub fn inode_tables(
    geo: &Geometry,
    mut inodes: HashMap<u32, (Inode, Vec<u8>)>,
    max_ino: u32,
    csum_seed: Option<u32>,
) -> Vec<(u64, Vec<u8>)> {
    let isz = geo.inode_size as usize;
    let per_block = BLOCK_SIZE as usize / isz;
    let mut out = Vec::new();
    let mut table = vec![0u8; BLOCK_SIZE as usize];
    let mut table_block = None::<u64>;
    for ino in 1..=max_ino {
        let (g, idx) = geo.inode_location(ino);
        let blk = geo.inode_table(g) + (idx as usize / per_block) as u64;
        if table_block != Some(blk) {
            if let Some(b) = table_block {
                out.push((
                    b,
                    std::mem::replace(&mut table, vec![0u8; BLOCK_SIZE as usize]),
                ));
            }
            table_block = Some(blk);
        }
        let slot = (idx as usize % per_block) * isz;
        // Reserved inodes are zero, but checksummed, as mke2fs writes them.
        let (inode, xattrs) = inodes.remove(&ino).unwrap_or_default();
        inode.encode(&mut table[slot..slot + isz], &xattrs, ino, csum_seed);
    }
    if let Some(b) = table_block {
        out.push((b, table));
    }
    out
}

pub struct GroupTables {
    pub bitmaps: Vec<(u64, Vec<u8>)>,
    /// The encoded descriptor table (whole blocks).
    pub gdt: Vec<u8>,
    pub free_blocks: u64,
    pub free_inodes: u64,
}

/// Bitmaps and descriptors. Allocation fills a prefix of each group's data area in group
/// order, and the used inodes are 1..=max_ino, so both bitmaps are ranges.
pub fn group_tables(
    geo: &Geometry,
    max_ino: u32,
    used_dirs: &[u32],
    allocated: u64,
    csum_seed: Option<u32>,
) -> GroupTables {
    let mut bitmaps = Vec::new();
    let mut gdt = vec![0u8; (geo.gdt_blocks * BLOCK_SIZE) as usize];
    let (mut free_blocks, mut free_inodes) = (0u64, 0u64);
    let mut left = allocated;
    for g in 0..geo.groups {
        let len = geo.group_len(g);
        let data = left.min(len - geo.overhead(g));
        left -= data;
        let used = geo.overhead(g) + data;
        let mut bb = vec![0u8; BLOCK_SIZE as usize];
        set_bits(&mut bb, 0..used);
        // Padding past the end of a short last group must read as in use.
        set_bits(&mut bb, len..BLOCK_SIZE * 8);
        let ipg = geo.inodes_per_group as u64;
        let used_inodes = (max_ino as u64 + 1)
            .saturating_sub(g as u64 * ipg + 1)
            .min(ipg);
        let mut ib = vec![0u8; BLOCK_SIZE as usize];
        set_bits(&mut ib, 0..used_inodes);
        set_bits(&mut ib, ipg..BLOCK_SIZE * 8);
        let mut d = GroupDesc {
            block_bitmap: geo.block_bitmap(g),
            inode_bitmap: geo.inode_bitmap(g),
            inode_table: geo.inode_table(g),
            free_blocks_count: (len - used) as u32,
            free_inodes_count: (ipg - used_inodes) as u32,
            used_dirs_count: used_dirs[g as usize],
            ..Default::default()
        };
        if let Some(seed) = csum_seed {
            d.flags = EXT4_BG_INODE_ZEROED;
            d.itable_unused = (ipg - used_inodes) as u32;
            d.block_bitmap_csum = bitmap_checksum(seed, &bb, (BLOCK_SIZE * 8) as u32);
            d.inode_bitmap_csum = bitmap_checksum(seed, &ib, geo.inodes_per_group);
        }
        let at = g as usize * geo.desc_size;
        d.encode(&mut gdt[at..at + geo.desc_size], g, csum_seed);
        free_blocks += len - used;
        free_inodes += ipg - used_inodes;
        bitmaps.push((geo.block_bitmap(g), bb));
        bitmaps.push((geo.inode_bitmap(g), ib));
    }
    GroupTables {
        bitmaps,
        gdt,
        free_blocks,
        free_inodes,
    }
}

/// The superblock for the flavour in `p`.
pub fn superblock(
    geo: &Geometry,
    p: &Ext4Params,
    free_blocks: u64,
    free_inodes: u64,
    extra_isize: u16,
    jnl_blocks: [u32; 17],
) -> Superblock {
    let ext4 = p.flavor == Flavor::Ext4;
    let mut label = [0u8; 16];
    label[..p.label.len()].copy_from_slice(p.label.as_bytes());
    let mut sb = Superblock {
        inodes_count: geo.inodes_count() as u32,
        blocks_count: geo.blocks_count,
        r_blocks_count: if ext4 {
            geo.blocks_count * RESERVED_PERCENT / 100
        } else {
            0
        },
        free_blocks_count: free_blocks,
        free_inodes_count: free_inodes as u32,
        first_data_block: 0,
        log_block_size: BLOCK_SIZE.trailing_zeros() - 10,
        // No bigalloc: a cluster is a block.
        log_cluster_size: BLOCK_SIZE.trailing_zeros() - 10,
        blocks_per_group: (BLOCK_SIZE * 8) as u32,
        clusters_per_group: (BLOCK_SIZE * 8) as u32,
        inodes_per_group: geo.inodes_per_group,
        mtime: 0,
        wtime: p.timestamp,
        max_mnt_count: 0xFFFF,
        magic: EXT4_SUPER_MAGIC,
        state: EXT2_VALID_FS,
        errors: EXT2_ERRORS_CONTINUE,
        lastcheck: p.timestamp,
        rev_level: EXT2_DYNAMIC_REV,
        first_ino: EXT2_GOOD_OLD_FIRST_INO,
        inode_size: p.inode_size,
        block_group_nr: 0,
        feature_compat: COMPAT_EXT_ATTR,
        feature_incompat: INCOMPAT_FILETYPE,
        feature_ro_compat: RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE,
        uuid: p.uuid,
        volume_name: label,
        // Deterministic, as systemd-repart does it: the hash seed is the UUID.
        hash_seed: p.uuid,
        def_hash_version: EXT2_HASH_HALF_MD4,
        default_mount_opts: EXT4_DEFM_XATTR_USER | EXT4_DEFM_ACL,
        mkfs_time: p.timestamp,
        flags: EXT2_FLAGS_SIGNED_HASH,
        ..Default::default()
    };
    if ext4 {
        sb.feature_compat |= COMPAT_DIR_INDEX;
        sb.feature_incompat |= INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG;
        sb.feature_ro_compat |= RO_COMPAT_HUGE_FILE | RO_COMPAT_DIR_NLINK | RO_COMPAT_METADATA_CSUM;
        if extra_isize > 0 {
            sb.feature_ro_compat |= RO_COMPAT_EXTRA_ISIZE;
            sb.min_extra_isize = extra_isize;
            sb.want_extra_isize = extra_isize;
        }
        sb.desc_size = geo.desc_size as u16;
        if geo.reserved_gdt_blocks > 0 {
            sb.feature_compat |= COMPAT_RESIZE_INODE;
            sb.reserved_gdt_blocks = geo.reserved_gdt_blocks as u16;
        }
        sb.log_groups_per_flex = LOG_GROUPS_PER_FLEX;
        sb.checksum_type = EXT4_CRC32C_CHKSUM;
        if jnl_blocks[16] != 0 || jnl_blocks[15] != 0 {
            sb.feature_compat |= COMPAT_HAS_JOURNAL;
            sb.journal_inum = EXT4_JOURNAL_INO;
            sb.jnl_backup_type = EXT3_JNL_BACKUP_BLOCKS;
            sb.jnl_blocks = jnl_blocks;
        }
    }
    sb
}

/// The primary superblock and descriptor table, and their copies in the sparse_super groups.
pub fn superblock_copies(
    geo: &Geometry,
    sb: &Superblock,
    gdt: &[u8],
    read_only_marker: bool,
) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    for g in (0..geo.groups).filter(|&g| geo.has_super(g)) {
        let start = geo.group_start(g);
        let mut first = vec![0u8; BLOCK_SIZE as usize];
        let mut s = sb.clone();
        s.block_group_nr = g as u16;
        if g == 0 && read_only_marker {
            // Through the struct, so a metadata_csum superblock stays correctly checksummed.
            s.feature_ro_compat |= READ_ONLY_MARKER;
        }
        // The primary sits 1024 bytes in (after the boot sector area); backups start their block.
        let at = if g == 0 {
            SUPERBLOCK_OFFSET as usize
        } else {
            0
        };
        first[at..at + SUPERBLOCK_SIZE].copy_from_slice(&s.encode());
        out.push((start, first));
        for (k, chunk) in gdt.chunks(BLOCK_SIZE as usize).enumerate() {
            out.push((start + 1 + k as u64, chunk.to_vec()));
        }
    }
    out
}

fn set_bits(b: &mut [u8], r: std::ops::Range<u64>) {
    for bit in r {
        b[(bit / 8) as usize] |= 1 << (bit % 8);
    }
}
