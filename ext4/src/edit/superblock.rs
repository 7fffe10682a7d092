//! The primary superblock: geometry, the features this editor accepts, and its checksum.

use super::csum::{crc32c_raw, le16, le32, put32};
use super::device::Dev;
use super::EditError;

pub(crate) const SUPERBLOCK_OFFSET: u64 = 1024;
const EXT4_SUPER_MAGIC: u16 = 0xEF53;
// s_state
const EXT2_VALID_FS: u16 = 0x1;
const EXT2_ERROR_FS: u16 = 0x2;

// s_feature_incompat
const INCOMPAT_COMPRESSION: u32 = 0x1;
pub(crate) const INCOMPAT_FILETYPE: u32 = 0x2;
const INCOMPAT_RECOVER: u32 = 0x4;
const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
pub(crate) const INCOMPAT_META_BG: u32 = 0x10;
pub(crate) const INCOMPAT_EXTENTS: u32 = 0x40;
pub(crate) const INCOMPAT_64BIT: u32 = 0x80;
const INCOMPAT_MMP: u32 = 0x100;
const INCOMPAT_FLEX_BG: u32 = 0x200;
const INCOMPAT_EA_INODE: u32 = 0x400;
const INCOMPAT_DIRDATA: u32 = 0x1000;
pub(crate) const INCOMPAT_CSUM_SEED: u32 = 0x2000;
const INCOMPAT_LARGEDIR: u32 = 0x4000;
const INCOMPAT_INLINE_DATA: u32 = 0x8000;
const INCOMPAT_ENCRYPT: u32 = 0x10000;
const INCOMPAT_CASEFOLD: u32 = 0x20000;
// s_feature_ro_compat
const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
pub(crate) const RO_COMPAT_LARGE_FILE: u32 = 0x2;
pub(crate) const RO_COMPAT_HUGE_FILE: u32 = 0x8;
pub(crate) const RO_COMPAT_GDT_CSUM: u32 = 0x10;
pub(crate) const RO_COMPAT_DIR_NLINK: u32 = 0x20;
const RO_COMPAT_EXTRA_ISIZE: u32 = 0x40;
pub(crate) const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
const RO_COMPAT_PROJECT: u32 = 0x2000;
const RO_COMPAT_VERITY: u32 = 0x8000;
const RO_COMPAT_ORPHAN_PRESENT: u32 = 0x10000;
// s_feature_compat bit for sparse_super2 (backup groups listed in s_backup_bgs).
const COMPAT_SPARSE_SUPER2: u32 = 0x200;

/// Incompat features whose on-disk effects this editor handles (or that cannot touch what it
/// edits: inline data and encryption are refused per directory when they are in use).
const INCOMPAT_KNOWN: u32 = INCOMPAT_FILETYPE
    | INCOMPAT_META_BG
    | INCOMPAT_EXTENTS
    | INCOMPAT_64BIT
    | INCOMPAT_FLEX_BG
    | INCOMPAT_EA_INODE
    | INCOMPAT_CSUM_SEED
    | INCOMPAT_LARGEDIR
    | INCOMPAT_INLINE_DATA
    | INCOMPAT_ENCRYPT;
const RO_COMPAT_KNOWN: u32 = RO_COMPAT_SPARSE_SUPER
    | RO_COMPAT_LARGE_FILE
    | RO_COMPAT_HUGE_FILE
    | RO_COMPAT_GDT_CSUM
    | RO_COMPAT_DIR_NLINK
    | RO_COMPAT_EXTRA_ISIZE
    | RO_COMPAT_METADATA_CSUM
    | RO_COMPAT_PROJECT
    | RO_COMPAT_VERITY
    | RO_COMPAT_ORPHAN_PRESENT;

pub(crate) struct Superblock {
    pub raw: Vec<u8>,
    pub block_size: u64,
    pub blocks_count: u64,
    pub first_data_block: u64,
    pub blocks_per_group: u64,
    pub inodes_per_group: u32,
    pub inodes_count: u32,
    pub first_ino: u32,
    pub inode_size: usize,
    pub desc_size: usize,
    pub groups: u32,
    pub compat: u32,
    pub incompat: u32,
    pub ro_compat: u32,
    pub reserved_gdt_blocks: u64,
    pub want_extra_isize: u16,
    /// Seed of every metadata_csum checksum except the superblock's own.
    pub csum_seed: u32,
}

impl Superblock {
    pub(crate) fn read(dev: &Dev) -> Result<Superblock, EditError> {
        if dev.len() < SUPERBLOCK_OFFSET + 1024 {
            return Err(EditError::NotExt4(dev.abs(0)));
        }
        let mut raw = vec![0u8; 1024];
        dev.read(SUPERBLOCK_OFFSET, &mut raw)?;
        if le16(&raw, 0x38) != EXT4_SUPER_MAGIC {
            return Err(EditError::NotExt4(dev.abs(0)));
        }
        let log_block = le32(&raw, 0x18);
        let log_cluster = le32(&raw, 0x1C);
        let incompat = le32(&raw, 0x60);
        let rev = le32(&raw, 0x4C);
        let bad = |what: String| {
            EditError::Corrupt(format!(
                "superblock at byte {}: {what}",
                dev.abs(SUPERBLOCK_OFFSET)
            ))
        };
        if log_block > 6 {
            return Err(bad(format!("block size 1024<<{log_block} is invalid")));
        }
        let block_size = 1024u64 << log_block;
        let blocks_count = u64::from(le32(&raw, 0x4))
            | if incompat & INCOMPAT_64BIT != 0 {
                u64::from(le32(&raw, 0x150)) << 32
            } else {
                0
            };
        let blocks_per_group = u64::from(le32(&raw, 0x20));
        let inodes_per_group = le32(&raw, 0x28);
        let first_data_block = u64::from(le32(&raw, 0x14));
        let (inode_size, first_ino) = if rev == 0 {
            (128, 11)
        } else {
            (usize::from(le16(&raw, 0x58)), le32(&raw, 0x54))
        };
        let desc_size = if incompat & INCOMPAT_64BIT != 0 {
            usize::from(le16(&raw, 0xFE))
        } else {
            32
        };
        if blocks_per_group == 0
            || blocks_per_group > block_size * 8
            || inodes_per_group == 0
            || u64::from(inodes_per_group) > block_size * 8
            || blocks_count <= first_data_block
            || first_data_block > 1
        {
            return Err(bad("group geometry is invalid".into()));
        }
        if log_cluster != log_block && le32(&raw, 0x64) & 0x200 != 0 {
            return Err(EditError::Unsupported(
                "feature bigalloc (clusters larger than blocks) is not supported".into(),
            ));
        }
        if !(128..=block_size as usize).contains(&inode_size) || !inode_size.is_power_of_two() {
            return Err(bad(format!("inode size {inode_size} is invalid")));
        }
        if !(32..=1024).contains(&desc_size) || !desc_size.is_power_of_two() {
            return Err(bad(format!("group descriptor size {desc_size} is invalid")));
        }
        let groups = (blocks_count - first_data_block).div_ceil(blocks_per_group) as u32;
        let csum_seed = if incompat & INCOMPAT_CSUM_SEED != 0 {
            le32(&raw, 0x270)
        } else {
            crc32c_raw(!0, &raw[0x68..0x78])
        };
        let sb = Superblock {
            block_size,
            blocks_count,
            first_data_block,
            blocks_per_group,
            inodes_per_group,
            inodes_count: le32(&raw, 0x0),
            first_ino,
            inode_size,
            desc_size,
            groups,
            compat: le32(&raw, 0x5C),
            incompat,
            ro_compat: le32(&raw, 0x64),
            reserved_gdt_blocks: u64::from(le16(&raw, 0xCE)),
            want_extra_isize: le16(&raw, 0x15E),
            csum_seed,
            raw,
        };
        if u64::from(sb.inodes_count) != u64::from(groups) * u64::from(inodes_per_group) {
            return Err(bad(format!(
                "{} inodes is not {groups} groups of {inodes_per_group}",
                sb.inodes_count
            )));
        }
        if sb
            .blocks_count
            .checked_mul(block_size)
            .is_none_or(|b| b > dev.len())
        {
            return Err(bad(format!(
                "the filesystem is {} bytes ({} blocks of {}) but its range is only {} bytes",
                sb.blocks_count.saturating_mul(block_size),
                sb.blocks_count,
                block_size,
                dev.len()
            )));
        }
        Ok(sb)
    }

    /// Refuse what this editor cannot change correctly, naming the feature.
    /// Whether the editor may write this filesystem: readable, and no read-only-compatible
    /// feature it does not know (e.g. USR's read-only marker).
    pub(crate) fn check_features(&self) -> Result<(), EditError> {
        self.check_readable()?;
        let ro_named = [
            (0x100u32, "quota"),
            (0x200, "bigalloc"),
            (0x80, "snapshot"),
            (0x4000, "shared_blocks"),
            (0x1000, "read-only"),
        ];
        for (bit, name) in ro_named {
            if self.ro_compat & bit != 0 {
                return Err(EditError::Unsupported(format!(
                    "feature {name} is not supported by the ext4 editor"
                )));
            }
        }
        let unknown = self.ro_compat & !RO_COMPAT_KNOWN;
        if unknown != 0 {
            return Err(EditError::Unsupported(format!(
                "unknown read-only-compatible features 0x{unknown:x} (a read-only marked filesystem?)"
            )));
        }
        Ok(())
    }

    /// Whether the reader understands this filesystem: read-only-compatible features do not
    /// matter to a reader (that is their definition), incompatible ones do.
    pub(crate) fn check_readable(&self) -> Result<(), EditError> {
        if self.incompat & INCOMPAT_RECOVER != 0 {
            return Err(EditError::NeedsRecovery);
        }
        let state = le16(&self.raw, 0x3A);
        if state & EXT2_ERROR_FS != 0 {
            return Err(EditError::Corrupt(
                "the superblock records errors (s_state)".into(),
            ));
        }
        if state & EXT2_VALID_FS == 0 {
            return Err(EditError::Unsupported(
                "the filesystem is mounted or was not cleanly unmounted (s_state); run e2fsck first".into(),
            ));
        }
        let named = [
            (INCOMPAT_COMPRESSION, "compression"),
            (INCOMPAT_JOURNAL_DEV, "journal_dev"),
            (INCOMPAT_MMP, "mmp"),
            (INCOMPAT_DIRDATA, "dirdata"),
            (INCOMPAT_CASEFOLD, "casefold"),
        ];
        for (bit, name) in named {
            if self.incompat & bit != 0 {
                return Err(EditError::Unsupported(format!(
                    "feature {name} is not supported by the ext4 editor"
                )));
            }
        }
        let unknown = self.incompat & !INCOMPAT_KNOWN;
        if unknown != 0 {
            return Err(EditError::Unsupported(format!(
                "unknown incompatible features 0x{unknown:x}"
            )));
        }
        if self.has_ro(RO_COMPAT_METADATA_CSUM) && self.raw[0x175] != 1 {
            return Err(EditError::Unsupported(format!(
                "checksum type {} (only crc32c is known)",
                self.raw[0x175]
            )));
        }
        Ok(())
    }

    pub(crate) fn has_incompat(&self, bit: u32) -> bool {
        self.incompat & bit != 0
    }

    pub(crate) fn has_ro(&self, bit: u32) -> bool {
        self.ro_compat & bit != 0
    }

    pub(crate) fn metadata_csum(&self) -> bool {
        self.has_ro(RO_COMPAT_METADATA_CSUM)
    }

    /// Group descriptors carry a checksum and the *_UNINIT flags mean something.
    pub(crate) fn group_csum(&self) -> bool {
        self.metadata_csum() || self.has_ro(RO_COMPAT_GDT_CSUM)
    }

    pub(crate) fn uuid(&self) -> &[u8] {
        &self.raw[0x68..0x78]
    }

    /// Does group `g` hold a superblock backup (and group descriptor copy)?
    pub(crate) fn has_super(&self, g: u32) -> bool {
        if g == 0 {
            return true;
        }
        if self.compat & COMPAT_SPARSE_SUPER2 != 0 {
            return g == le32(&self.raw, 0x24C) || g == le32(&self.raw, 0x250);
        }
        if !self.has_ro(RO_COMPAT_SPARSE_SUPER) || g == 1 {
            return true;
        }
        [3u32, 5, 7].iter().any(|&base| {
            let mut n = base;
            while n < g {
                n = n.saturating_mul(base);
            }
            n == g
        })
    }

    /// Blocks holding the group descriptor table.
    pub(crate) fn gdt_blocks(&self) -> u64 {
        (u64::from(self.groups) * self.desc_size as u64).div_ceil(self.block_size)
    }

    /// Group descriptors per block.
    pub(crate) fn descs_per_block(&self) -> u64 {
        self.block_size / self.desc_size as u64
    }

    /// s_first_meta_bg: descriptor blocks before it follow the superblock; with meta_bg each
    /// later one lives in the first, second and last group of the groups it describes.
    pub(crate) fn first_meta_bg(&self) -> u64 {
        if self.has_incompat(INCOMPAT_META_BG) {
            u64::from(le32(&self.raw, 0x104))
        } else {
            u64::MAX
        }
    }

    /// Blocks at the start of group `g` holding superblock and descriptor copies (the kernel's
    /// ext4_num_base_meta_clusters).
    pub(crate) fn base_meta_blocks(&self, g: u32) -> u64 {
        let sup = u64::from(self.has_super(g));
        let dpb = self.descs_per_block();
        let meta_group = u64::from(g) / dpb;
        if meta_group < self.first_meta_bg() {
            if sup == 0 {
                return 0;
            }
            let gdt = if self.has_incompat(INCOMPAT_META_BG) {
                self.first_meta_bg()
            } else {
                self.gdt_blocks()
            };
            return sup + gdt + self.reserved_gdt_blocks;
        }
        let first = meta_group * dpb;
        let g = u64::from(g);
        sup + u64::from(g == first || g == first + 1 || g == first + dpb - 1)
    }

    pub(crate) fn group_first_block(&self, g: u32) -> u64 {
        self.first_data_block + u64::from(g) * self.blocks_per_group
    }

    pub(crate) fn blocks_in_group(&self, g: u32) -> u64 {
        (self.blocks_count - self.group_first_block(g)).min(self.blocks_per_group)
    }

    pub(crate) fn set_free_counts(&mut self, free_blocks: u64, free_inodes: u32) {
        put32(&mut self.raw, 0xC, free_blocks as u32);
        if self.has_incompat(INCOMPAT_64BIT) {
            put32(&mut self.raw, 0x158, (free_blocks >> 32) as u32);
        }
        put32(&mut self.raw, 0x10, free_inodes);
    }

    /// The superblock bytes with a fresh checksum when metadata_csum is on.
    pub(crate) fn finished(&self) -> Vec<u8> {
        let mut raw = self.raw.clone();
        if self.metadata_csum() {
            let c = crc32c_raw(!0, &raw[..0x3FC]);
            put32(&mut raw, 0x3FC, c);
        }
        raw
    }
}
