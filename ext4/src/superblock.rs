//! The ext2/3/4 superblock (kernel Documentation/filesystems/ext4/super.rst; offsets from
//! e2fsprogs `lib/ext2fs/ext2_fs.h`). Public so the in-place editor can read and update it.

use super::csum::crc32c_le;

/// Byte offset of the primary superblock inside the filesystem.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
pub const SUPERBLOCK_SIZE: usize = 1024;
pub const EXT4_SUPER_MAGIC: u16 = 0xEF53;

// s_feature_compat
pub const COMPAT_HAS_JOURNAL: u32 = 0x0004;
pub const COMPAT_EXT_ATTR: u32 = 0x0008;
pub const COMPAT_RESIZE_INODE: u32 = 0x0010;
pub const COMPAT_DIR_INDEX: u32 = 0x0020;
// s_feature_incompat
pub const INCOMPAT_FILETYPE: u32 = 0x0002;
pub const INCOMPAT_RECOVER: u32 = 0x0004;
pub const INCOMPAT_EXTENTS: u32 = 0x0040;
pub const INCOMPAT_64BIT: u32 = 0x0080;
pub const INCOMPAT_FLEX_BG: u32 = 0x0200;
pub const INCOMPAT_CSUM_SEED: u32 = 0x2000;
// s_feature_ro_compat
pub const RO_COMPAT_SPARSE_SUPER: u32 = 0x0001;
pub const RO_COMPAT_LARGE_FILE: u32 = 0x0002;
pub const RO_COMPAT_HUGE_FILE: u32 = 0x0008;
pub const RO_COMPAT_GDT_CSUM: u32 = 0x0010;
pub const RO_COMPAT_DIR_NLINK: u32 = 0x0020;
pub const RO_COMPAT_EXTRA_ISIZE: u32 = 0x0040;
pub const RO_COMPAT_METADATA_CSUM: u32 = 0x0400;

/// s_flags: directory hashes use signed chars (what x86 mke2fs records).
pub const EXT2_FLAGS_SIGNED_HASH: u32 = 0x0001;
/// s_default_mount_opts as mke2fs sets them: user_xattr, acl.
pub const EXT4_DEFM_XATTR_USER: u32 = 0x0004;
pub const EXT4_DEFM_ACL: u32 = 0x0008;
/// s_def_hash_version: half_md4.
pub const EXT2_HASH_HALF_MD4: u8 = 1;
/// s_jnl_backup_type: s_jnl_blocks holds a copy of the journal inode's i_block.
pub const EXT3_JNL_BACKUP_BLOCKS: u8 = 1;
pub const EXT4_CRC32C_CHKSUM: u8 = 1;

/// Offset of the top byte of s_feature_ro_compat in the filesystem; 0xff there is CoreOS's
/// read-only marker (unknown ro_compat bits forbid read-write mounts).
pub const READ_ONLY_MARKER_OFFSET: u64 = SUPERBLOCK_OFFSET + 0x67;
/// The marker as s_feature_ro_compat bits.
pub const READ_ONLY_MARKER: u32 = 0xFF00_0000;

/// The superblock fields this project reads or writes; everything else stays zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Superblock {
    pub inodes_count: u32,
    pub blocks_count: u64,
    pub r_blocks_count: u64,
    pub free_blocks_count: u64,
    pub free_inodes_count: u32,
    pub first_data_block: u32,
    pub log_block_size: u32,
    pub blocks_per_group: u32,
    pub inodes_per_group: u32,
    pub mtime: u32,
    pub wtime: u32,
    pub max_mnt_count: u16,
    pub state: u16,
    pub errors: u16,
    pub lastcheck: u32,
    pub first_ino: u32,
    pub inode_size: u16,
    pub block_group_nr: u16,
    pub feature_compat: u32,
    pub feature_incompat: u32,
    pub feature_ro_compat: u32,
    pub uuid: [u8; 16],
    pub volume_name: [u8; 16],
    pub journal_inum: u32,
    pub hash_seed: [u8; 16],
    pub def_hash_version: u8,
    pub jnl_backup_type: u8,
    pub desc_size: u16,
    pub default_mount_opts: u32,
    pub mkfs_time: u32,
    pub jnl_blocks: [u32; 17],
    pub min_extra_isize: u16,
    pub want_extra_isize: u16,
    pub flags: u32,
    pub log_groups_per_flex: u8,
    pub checksum_type: u8,
}

fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn get16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn get32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

impl Superblock {
    pub fn block_size(&self) -> u64 {
        1024 << self.log_block_size
    }
    pub fn has_metadata_csum(&self) -> bool {
        self.feature_ro_compat & RO_COMPAT_METADATA_CSUM != 0
    }
    pub fn is_64bit(&self) -> bool {
        self.feature_incompat & INCOMPAT_64BIT != 0
    }
    pub fn group_count(&self) -> u32 {
        let data = self.blocks_count - self.first_data_block as u64;
        data.div_ceil(self.blocks_per_group as u64) as u32
    }
    /// Descriptor size in bytes (32 without 64bit).
    pub fn desc_bytes(&self) -> usize {
        if self.is_64bit() {
            self.desc_size as usize
        } else {
            32
        }
    }

    /// The 1024 bytes of the superblock, checksummed when metadata_csum is on.
    pub fn encode(&self) -> [u8; SUPERBLOCK_SIZE] {
        let mut b = [0u8; SUPERBLOCK_SIZE];
        put32(&mut b, 0x00, self.inodes_count);
        put32(&mut b, 0x04, self.blocks_count as u32);
        put32(&mut b, 0x08, self.r_blocks_count as u32);
        put32(&mut b, 0x0C, self.free_blocks_count as u32);
        put32(&mut b, 0x10, self.free_inodes_count);
        put32(&mut b, 0x14, self.first_data_block);
        put32(&mut b, 0x18, self.log_block_size);
        put32(&mut b, 0x1C, self.log_block_size); // s_log_cluster_size: no bigalloc
        put32(&mut b, 0x20, self.blocks_per_group);
        put32(&mut b, 0x24, self.blocks_per_group); // s_clusters_per_group
        put32(&mut b, 0x28, self.inodes_per_group);
        put32(&mut b, 0x2C, self.mtime);
        put32(&mut b, 0x30, self.wtime);
        put16(&mut b, 0x36, self.max_mnt_count);
        put16(&mut b, 0x38, EXT4_SUPER_MAGIC);
        put16(&mut b, 0x3A, self.state);
        put16(&mut b, 0x3C, self.errors);
        put32(&mut b, 0x40, self.lastcheck);
        put32(&mut b, 0x4C, 1); // s_rev_level: EXT2_DYNAMIC_REV
        put32(&mut b, 0x54, self.first_ino);
        put16(&mut b, 0x58, self.inode_size);
        put16(&mut b, 0x5A, self.block_group_nr);
        put32(&mut b, 0x5C, self.feature_compat);
        put32(&mut b, 0x60, self.feature_incompat);
        put32(&mut b, 0x64, self.feature_ro_compat);
        b[0x68..0x78].copy_from_slice(&self.uuid);
        b[0x78..0x88].copy_from_slice(&self.volume_name);
        put32(&mut b, 0xE0, self.journal_inum);
        b[0xEC..0xFC].copy_from_slice(&self.hash_seed);
        b[0xFC] = self.def_hash_version;
        b[0xFD] = self.jnl_backup_type;
        put16(&mut b, 0xFE, self.desc_size);
        put32(&mut b, 0x100, self.default_mount_opts);
        put32(&mut b, 0x108, self.mkfs_time);
        for (i, v) in self.jnl_blocks.iter().enumerate() {
            put32(&mut b, 0x10C + 4 * i, *v);
        }
        if self.is_64bit() {
            put32(&mut b, 0x150, (self.blocks_count >> 32) as u32);
            put32(&mut b, 0x154, (self.r_blocks_count >> 32) as u32);
            put32(&mut b, 0x158, (self.free_blocks_count >> 32) as u32);
        }
        put16(&mut b, 0x15C, self.min_extra_isize);
        put16(&mut b, 0x15E, self.want_extra_isize);
        put32(&mut b, 0x160, self.flags);
        b[0x174] = self.log_groups_per_flex;
        b[0x175] = self.checksum_type;
        if self.has_metadata_csum() {
            let c = crc32c_le(!0, &b[..0x3FC]);
            put32(&mut b, 0x3FC, c);
        }
        b
    }

    /// Parse a superblock; `None` when the magic is wrong.
    pub fn decode(b: &[u8]) -> Option<Superblock> {
        if b.len() < SUPERBLOCK_SIZE || get16(b, 0x38) != EXT4_SUPER_MAGIC {
            return None;
        }
        let incompat = get32(b, 0x60);
        let hi = |off| {
            if incompat & INCOMPAT_64BIT != 0 {
                (get32(b, off) as u64) << 32
            } else {
                0
            }
        };
        let mut jnl_blocks = [0u32; 17];
        for (i, v) in jnl_blocks.iter_mut().enumerate() {
            *v = get32(b, 0x10C + 4 * i);
        }
        Some(Superblock {
            inodes_count: get32(b, 0x00),
            blocks_count: get32(b, 0x04) as u64 | hi(0x150),
            r_blocks_count: get32(b, 0x08) as u64 | hi(0x154),
            free_blocks_count: get32(b, 0x0C) as u64 | hi(0x158),
            free_inodes_count: get32(b, 0x10),
            first_data_block: get32(b, 0x14),
            log_block_size: get32(b, 0x18),
            blocks_per_group: get32(b, 0x20),
            inodes_per_group: get32(b, 0x28),
            mtime: get32(b, 0x2C),
            wtime: get32(b, 0x30),
            max_mnt_count: get16(b, 0x36),
            state: get16(b, 0x3A),
            errors: get16(b, 0x3C),
            lastcheck: get32(b, 0x40),
            first_ino: get32(b, 0x54),
            inode_size: get16(b, 0x58),
            block_group_nr: get16(b, 0x5A),
            feature_compat: get32(b, 0x5C),
            feature_incompat: incompat,
            feature_ro_compat: get32(b, 0x64),
            uuid: b[0x68..0x78].try_into().unwrap(),
            volume_name: b[0x78..0x88].try_into().unwrap(),
            journal_inum: get32(b, 0xE0),
            hash_seed: b[0xEC..0xFC].try_into().unwrap(),
            def_hash_version: b[0xFC],
            jnl_backup_type: b[0xFD],
            desc_size: get16(b, 0xFE),
            default_mount_opts: get32(b, 0x100),
            mkfs_time: get32(b, 0x108),
            jnl_blocks,
            min_extra_isize: get16(b, 0x15C),
            want_extra_isize: get16(b, 0x15E),
            flags: get32(b, 0x160),
            log_groups_per_flex: b[0x174],
            checksum_type: b[0x175],
        })
    }
}

/// Whether group `g` holds a superblock backup under sparse_super: 0, 1 and powers of 3, 5, 7.
pub fn group_has_super(g: u32, sparse_super: bool) -> bool {
    if !sparse_super || g <= 1 {
        return true;
    }
    [3u32, 5, 7].iter().any(|&p| {
        let mut n = p;
        while n < g {
            n = n.saturating_mul(p);
        }
        n == g
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_super_groups() {
        let with: Vec<u32> = (0..100).filter(|&g| group_has_super(g, true)).collect();
        assert_eq!(with, vec![0, 1, 3, 5, 7, 9, 25, 27, 49, 81]);
    }

    #[test]
    fn round_trip() {
        let sb = Superblock {
            inodes_count: 4096,
            blocks_count: 5 << 32 | 7,
            log_block_size: 2,
            blocks_per_group: 32768,
            feature_incompat: INCOMPAT_64BIT,
            feature_ro_compat: RO_COMPAT_METADATA_CSUM,
            desc_size: 64,
            uuid: [7; 16],
            ..Default::default()
        };
        let b = sb.encode();
        assert_eq!(Superblock::decode(&b).unwrap(), sb);
        assert_eq!(
            crc32c_le(!0, &b[..0x3FC]),
            u32::from_le_bytes(b[0x3FC..].try_into().unwrap())
        );
    }
}
