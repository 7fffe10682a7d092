//! The superblock (`struct ext2_super_block`, 1024 bytes at byte 1024 of the filesystem;
//! super.rst), its feature bits and its checksum.

use super::csum::{crc32c_le, fs_seed};
use super::le::{get16, get32, put16, put32};

/// Byte offset of the primary superblock inside the filesystem.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
pub const SUPERBLOCK_SIZE: usize = 1024;
pub const EXT4_SUPER_MAGIC: u16 = 0xEF53;
/// Offset of s_checksum, the last field.
const S_CHECKSUM: usize = 0x3FC;

// s_state
pub const EXT2_VALID_FS: u16 = 0x0001;
pub const EXT2_ERROR_FS: u16 = 0x0002;
// s_errors
pub const EXT2_ERRORS_CONTINUE: u16 = 1;
// s_rev_level
pub const EXT2_GOOD_OLD_REV: u32 = 0;
pub const EXT2_DYNAMIC_REV: u32 = 1;
/// Inode size and first inode of revision 0 filesystems (fixed, not recorded).
pub const EXT2_GOOD_OLD_INODE_SIZE: u16 = 128;
pub const EXT2_GOOD_OLD_FIRST_INO: u32 = 11;

// s_feature_compat
pub const COMPAT_HAS_JOURNAL: u32 = 0x0004;
pub const COMPAT_EXT_ATTR: u32 = 0x0008;
pub const COMPAT_RESIZE_INODE: u32 = 0x0010;
pub const COMPAT_DIR_INDEX: u32 = 0x0020;
pub const COMPAT_SPARSE_SUPER2: u32 = 0x0200;
// s_feature_incompat
pub const INCOMPAT_COMPRESSION: u32 = 0x0001;
pub const INCOMPAT_FILETYPE: u32 = 0x0002;
pub const INCOMPAT_RECOVER: u32 = 0x0004;
pub const INCOMPAT_JOURNAL_DEV: u32 = 0x0008;
pub const INCOMPAT_META_BG: u32 = 0x0010;
pub const INCOMPAT_EXTENTS: u32 = 0x0040;
pub const INCOMPAT_64BIT: u32 = 0x0080;
pub const INCOMPAT_MMP: u32 = 0x0100;
pub const INCOMPAT_FLEX_BG: u32 = 0x0200;
pub const INCOMPAT_EA_INODE: u32 = 0x0400;
pub const INCOMPAT_DIRDATA: u32 = 0x1000;
pub const INCOMPAT_CSUM_SEED: u32 = 0x2000;
pub const INCOMPAT_LARGEDIR: u32 = 0x4000;
pub const INCOMPAT_INLINE_DATA: u32 = 0x8000;
pub const INCOMPAT_ENCRYPT: u32 = 0x10000;
pub const INCOMPAT_CASEFOLD: u32 = 0x20000;
// s_feature_ro_compat
pub const RO_COMPAT_SPARSE_SUPER: u32 = 0x0001;
pub const RO_COMPAT_LARGE_FILE: u32 = 0x0002;
pub const RO_COMPAT_HUGE_FILE: u32 = 0x0008;
pub const RO_COMPAT_GDT_CSUM: u32 = 0x0010;
pub const RO_COMPAT_DIR_NLINK: u32 = 0x0020;
pub const RO_COMPAT_EXTRA_ISIZE: u32 = 0x0040;
pub const RO_COMPAT_SNAPSHOT: u32 = 0x0080;
pub const RO_COMPAT_QUOTA: u32 = 0x0100;
pub const RO_COMPAT_BIGALLOC: u32 = 0x0200;
pub const RO_COMPAT_METADATA_CSUM: u32 = 0x0400;
pub const RO_COMPAT_READONLY: u32 = 0x1000;
pub const RO_COMPAT_PROJECT: u32 = 0x2000;
pub const RO_COMPAT_SHARED_BLOCKS: u32 = 0x4000;
pub const RO_COMPAT_VERITY: u32 = 0x8000;
pub const RO_COMPAT_ORPHAN_PRESENT: u32 = 0x10000;

/// s_flags: directory hashes use signed chars (what x86 mke2fs records).
pub const EXT2_FLAGS_SIGNED_HASH: u32 = 0x0001;
/// s_default_mount_opts as mke2fs sets them: user_xattr, acl.
pub const EXT4_DEFM_XATTR_USER: u32 = 0x0004;
pub const EXT4_DEFM_ACL: u32 = 0x0008;
/// s_def_hash_version: half_md4.
pub const EXT2_HASH_HALF_MD4: u8 = 1;
/// s_jnl_backup_type: s_jnl_blocks holds a copy of the journal inode's i_block.
pub const EXT3_JNL_BACKUP_BLOCKS: u8 = 1;
/// s_checksum_type: crc32c, the only one defined.
pub const EXT4_CRC32C_CHKSUM: u8 = 1;

/// Offset of the top byte of s_feature_ro_compat in the filesystem; 0xff there is CoreOS's
/// read-only marker (unknown ro_compat bits forbid read-write mounts).
pub const READ_ONLY_MARKER_OFFSET: u64 = SUPERBLOCK_OFFSET + 0x67;
/// The marker as s_feature_ro_compat bits.
pub const READ_ONLY_MARKER: u32 = 0xFF00_0000;

/// The superblock fields this crate reads or writes. `encode_into` leaves the others alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Superblock {
    pub inodes_count: u32,
    /// s_blocks_count_lo, and _hi with 64bit.
    pub blocks_count: u64,
    pub r_blocks_count: u64,
    pub free_blocks_count: u64,
    pub free_inodes_count: u32,
    pub first_data_block: u32,
    pub log_block_size: u32,
    pub log_cluster_size: u32,
    pub blocks_per_group: u32,
    pub clusters_per_group: u32,
    pub inodes_per_group: u32,
    pub mtime: u32,
    pub wtime: u32,
    pub max_mnt_count: u16,
    pub magic: u16,
    pub state: u16,
    pub errors: u16,
    pub lastcheck: u32,
    pub rev_level: u32,
    /// Only meaningful from revision 1 on; see `first_inode` and `inode_bytes`.
    pub first_ino: u32,
    pub inode_size: u16,
    pub block_group_nr: u16,
    pub feature_compat: u32,
    pub feature_incompat: u32,
    pub feature_ro_compat: u32,
    pub uuid: [u8; 16],
    pub volume_name: [u8; 16],
    pub reserved_gdt_blocks: u16,
    pub journal_inum: u32,
    pub hash_seed: [u8; 16],
    pub def_hash_version: u8,
    pub jnl_backup_type: u8,
    pub desc_size: u16,
    pub default_mount_opts: u32,
    pub first_meta_bg: u32,
    pub mkfs_time: u32,
    pub jnl_blocks: [u32; 17],
    pub min_extra_isize: u16,
    pub want_extra_isize: u16,
    pub flags: u32,
    pub log_groups_per_flex: u8,
    pub checksum_type: u8,
    /// sparse_super2: the two groups holding backups (0: none).
    pub backup_bgs: [u32; 2],
    /// metadata_csum_seed: the seed of every checksum but the superblock's.
    pub checksum_seed: u32,
}

impl Superblock {
    pub fn block_size(&self) -> u64 {
        1024 << self.log_block_size
    }
    pub fn has_compat(&self, bit: u32) -> bool {
        self.feature_compat & bit != 0
    }
    pub fn has_incompat(&self, bit: u32) -> bool {
        self.feature_incompat & bit != 0
    }
    pub fn has_ro_compat(&self, bit: u32) -> bool {
        self.feature_ro_compat & bit != 0
    }
    pub fn has_metadata_csum(&self) -> bool {
        self.has_ro_compat(RO_COMPAT_METADATA_CSUM)
    }
    pub fn is_64bit(&self) -> bool {
        self.has_incompat(INCOMPAT_64BIT)
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
    /// Inode record size (128 in revision 0).
    pub fn inode_bytes(&self) -> usize {
        if self.rev_level == EXT2_GOOD_OLD_REV {
            EXT2_GOOD_OLD_INODE_SIZE as usize
        } else {
            self.inode_size as usize
        }
    }
    /// First non-reserved inode (11 in revision 0).
    pub fn first_inode(&self) -> u32 {
        if self.rev_level == EXT2_GOOD_OLD_REV {
            EXT2_GOOD_OLD_FIRST_INO
        } else {
            self.first_ino
        }
    }
    /// Seed of every metadata_csum checksum except the superblock's own.
    pub fn csum_seed(&self) -> u32 {
        if self.has_incompat(INCOMPAT_CSUM_SEED) {
            self.checksum_seed
        } else {
            fs_seed(&self.uuid)
        }
    }
    /// Does group `g` hold a superblock backup and a descriptor table copy?
    pub fn group_has_super(&self, g: u32) -> bool {
        if g == 0 {
            return true;
        }
        if self.has_compat(COMPAT_SPARSE_SUPER2) {
            return g == self.backup_bgs[0] || g == self.backup_bgs[1];
        }
        group_has_super(g, self.has_ro_compat(RO_COMPAT_SPARSE_SUPER))
    }

    /// The 1024 bytes of a new superblock (everything not modeled is zero), checksummed
    /// when metadata_csum is on.
    pub fn encode(&self) -> [u8; SUPERBLOCK_SIZE] {
        let mut b = [0u8; SUPERBLOCK_SIZE];
        self.encode_into(&mut b);
        b
    }

    /// Write the modeled fields over `b` (1024 bytes) and refresh the checksum.
    pub fn encode_into(&self, b: &mut [u8]) {
        put32(b, 0x00, self.inodes_count);
        put32(b, 0x04, self.blocks_count as u32);
        put32(b, 0x08, self.r_blocks_count as u32);
        put32(b, 0x0C, self.free_blocks_count as u32);
        put32(b, 0x10, self.free_inodes_count);
        put32(b, 0x14, self.first_data_block);
        put32(b, 0x18, self.log_block_size);
        put32(b, 0x1C, self.log_cluster_size);
        put32(b, 0x20, self.blocks_per_group);
        put32(b, 0x24, self.clusters_per_group);
        put32(b, 0x28, self.inodes_per_group);
        put32(b, 0x2C, self.mtime);
        put32(b, 0x30, self.wtime);
        put16(b, 0x36, self.max_mnt_count);
        put16(b, 0x38, self.magic);
        put16(b, 0x3A, self.state);
        put16(b, 0x3C, self.errors);
        put32(b, 0x40, self.lastcheck);
        put32(b, 0x4C, self.rev_level);
        put32(b, 0x54, self.first_ino);
        put16(b, 0x58, self.inode_size);
        put16(b, 0x5A, self.block_group_nr);
        put32(b, 0x5C, self.feature_compat);
        put32(b, 0x60, self.feature_incompat);
        put32(b, 0x64, self.feature_ro_compat);
        b[0x68..0x78].copy_from_slice(&self.uuid);
        b[0x78..0x88].copy_from_slice(&self.volume_name);
        put16(b, 0xCE, self.reserved_gdt_blocks);
        put32(b, 0xE0, self.journal_inum);
        b[0xEC..0xFC].copy_from_slice(&self.hash_seed);
        b[0xFC] = self.def_hash_version;
        b[0xFD] = self.jnl_backup_type;
        put16(b, 0xFE, self.desc_size);
        put32(b, 0x100, self.default_mount_opts);
        put32(b, 0x104, self.first_meta_bg);
        put32(b, 0x108, self.mkfs_time);
        for (i, v) in self.jnl_blocks.iter().enumerate() {
            put32(b, 0x10C + 4 * i, *v);
        }
        if self.is_64bit() {
            put32(b, 0x150, (self.blocks_count >> 32) as u32);
            put32(b, 0x154, (self.r_blocks_count >> 32) as u32);
            put32(b, 0x158, (self.free_blocks_count >> 32) as u32);
        }
        put16(b, 0x15C, self.min_extra_isize);
        put16(b, 0x15E, self.want_extra_isize);
        put32(b, 0x160, self.flags);
        b[0x174] = self.log_groups_per_flex;
        b[0x175] = self.checksum_type;
        put32(b, 0x24C, self.backup_bgs[0]);
        put32(b, 0x250, self.backup_bgs[1]);
        put32(b, 0x270, self.checksum_seed);
        seal(b);
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
            log_cluster_size: get32(b, 0x1C),
            blocks_per_group: get32(b, 0x20),
            clusters_per_group: get32(b, 0x24),
            inodes_per_group: get32(b, 0x28),
            mtime: get32(b, 0x2C),
            wtime: get32(b, 0x30),
            max_mnt_count: get16(b, 0x36),
            magic: get16(b, 0x38),
            state: get16(b, 0x3A),
            errors: get16(b, 0x3C),
            lastcheck: get32(b, 0x40),
            rev_level: get32(b, 0x4C),
            first_ino: get32(b, 0x54),
            inode_size: get16(b, 0x58),
            block_group_nr: get16(b, 0x5A),
            feature_compat: get32(b, 0x5C),
            feature_incompat: incompat,
            feature_ro_compat: get32(b, 0x64),
            uuid: b[0x68..0x78].try_into().unwrap(),
            volume_name: b[0x78..0x88].try_into().unwrap(),
            reserved_gdt_blocks: get16(b, 0xCE),
            journal_inum: get32(b, 0xE0),
            hash_seed: b[0xEC..0xFC].try_into().unwrap(),
            def_hash_version: b[0xFC],
            jnl_backup_type: b[0xFD],
            desc_size: get16(b, 0xFE),
            default_mount_opts: get32(b, 0x100),
            first_meta_bg: get32(b, 0x104),
            mkfs_time: get32(b, 0x108),
            jnl_blocks,
            min_extra_isize: get16(b, 0x15C),
            want_extra_isize: get16(b, 0x15E),
            flags: get32(b, 0x160),
            log_groups_per_flex: b[0x174],
            checksum_type: b[0x175],
            backup_bgs: [get32(b, 0x24C), get32(b, 0x250)],
            checksum_seed: get32(b, 0x270),
        })
    }

    /// The label (s_volume_name up to its first NUL).
    pub fn label(&self) -> String {
        let end = self.volume_name.iter().position(|&b| b == 0).unwrap_or(16);
        String::from_utf8_lossy(&self.volume_name[..end]).into_owned()
    }
}

/// Set s_checksum of a metadata_csum superblock: crc32c(~0, the bytes before it).
pub fn seal(b: &mut [u8]) {
    if get32(b, 0x64) & RO_COMPAT_METADATA_CSUM != 0 {
        let c = crc32c_le(!0, &b[..S_CHECKSUM]);
        put32(b, S_CHECKSUM, c);
    }
}

/// Whether group `g` holds a superblock backup: every group, or with sparse_super only
/// 0, 1 and the powers of 3, 5 and 7.
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
            magic: EXT4_SUPER_MAGIC,
            feature_incompat: INCOMPAT_64BIT,
            feature_ro_compat: RO_COMPAT_METADATA_CSUM,
            desc_size: 64,
            reserved_gdt_blocks: 1024,
            uuid: [7; 16],
            backup_bgs: [1, 9],
            ..Default::default()
        };
        let b = sb.encode();
        assert_eq!(Superblock::decode(&b).unwrap(), sb);
        assert_eq!(
            crc32c_le(!0, &b[..0x3FC]),
            u32::from_le_bytes(b[0x3FC..].try_into().unwrap())
        );
    }

    #[test]
    fn encode_into_keeps_fields_it_does_not_model() {
        let mut b = Superblock {
            magic: EXT4_SUPER_MAGIC,
            ..Default::default()
        }
        .encode();
        b[0x88] = b'/'; // s_last_mounted
        let mut sb = Superblock::decode(&b).unwrap();
        sb.free_inodes_count = 9;
        sb.encode_into(&mut b);
        assert_eq!((b[0x88], get32(&b, 0x10)), (b'/', 9));
    }
}
