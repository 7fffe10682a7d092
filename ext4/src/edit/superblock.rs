//! The primary superblock: geometry, the features this editor accepts, and its checksum.

use super::device::Dev;
use super::EditError;
use crate::ondisk::superblock::{self as disk, *};

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
    /// The superblock as read: fields the codec does not model are written back unchanged.
    raw: Vec<u8>,
    pub f: disk::Superblock,
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
    pub reserved_gdt_blocks: u64,
    pub want_extra_isize: u16,
    /// Seed of every metadata_csum checksum except the superblock's own.
    pub csum_seed: u32,
}

impl Superblock {
    pub(crate) fn read(dev: &Dev) -> Result<Superblock, EditError> {
        if dev.len() < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE as u64 {
            return Err(EditError::NotExt4(dev.abs(0)));
        }
        let mut raw = vec![0u8; SUPERBLOCK_SIZE];
        dev.read(SUPERBLOCK_OFFSET, &mut raw)?;
        let f = disk::Superblock::decode(&raw).ok_or(EditError::NotExt4(dev.abs(0)))?;
        let bad = |what: String| {
            EditError::Corrupt(format!(
                "superblock at byte {}: {what}",
                dev.abs(SUPERBLOCK_OFFSET)
            ))
        };
        if f.log_block_size > 6 {
            return Err(bad(format!(
                "block size 1024<<{} is invalid",
                f.log_block_size
            )));
        }
        let block_size = f.block_size();
        let blocks_per_group = u64::from(f.blocks_per_group);
        let inodes_per_group = f.inodes_per_group;
        let first_data_block = u64::from(f.first_data_block);
        let inode_size = f.inode_bytes();
        let desc_size = f.desc_bytes();
        if blocks_per_group == 0
            || blocks_per_group > block_size * 8
            || inodes_per_group == 0
            || u64::from(inodes_per_group) > block_size * 8
            || f.blocks_count <= first_data_block
            || first_data_block > 1
        {
            return Err(bad("group geometry is invalid".into()));
        }
        if f.log_cluster_size != f.log_block_size && f.has_ro_compat(RO_COMPAT_BIGALLOC) {
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
        let groups = f.group_count();
        let sb = Superblock {
            block_size,
            blocks_count: f.blocks_count,
            first_data_block,
            blocks_per_group,
            inodes_per_group,
            inodes_count: f.inodes_count,
            first_ino: f.first_inode(),
            inode_size,
            desc_size,
            groups,
            reserved_gdt_blocks: u64::from(f.reserved_gdt_blocks),
            want_extra_isize: f.want_extra_isize,
            csum_seed: f.csum_seed(),
            raw,
            f,
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

    /// Whether the editor may write this filesystem: readable, and no read-only-compatible
    /// feature it does not know (e.g. USR's read-only marker).
    pub(crate) fn check_features(&self) -> Result<(), EditError> {
        self.check_readable()?;
        let ro_named = [
            (RO_COMPAT_QUOTA, "quota"),
            (RO_COMPAT_BIGALLOC, "bigalloc"),
            (RO_COMPAT_SNAPSHOT, "snapshot"),
            (RO_COMPAT_SHARED_BLOCKS, "shared_blocks"),
            (RO_COMPAT_READONLY, "read-only"),
        ];
        for (bit, name) in ro_named {
            if self.has_ro(bit) {
                return Err(EditError::Unsupported(format!(
                    "feature {name} is not supported by the ext4 editor"
                )));
            }
        }
        let unknown = self.f.feature_ro_compat & !RO_COMPAT_KNOWN;
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
        if self.has_incompat(INCOMPAT_RECOVER) {
            return Err(EditError::NeedsRecovery);
        }
        let state = self.f.state;
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
            if self.has_incompat(bit) {
                return Err(EditError::Unsupported(format!(
                    "feature {name} is not supported by the ext4 editor"
                )));
            }
        }
        let unknown = self.f.feature_incompat & !INCOMPAT_KNOWN;
        if unknown != 0 {
            return Err(EditError::Unsupported(format!(
                "unknown incompatible features 0x{unknown:x}"
            )));
        }
        if self.has_ro(RO_COMPAT_METADATA_CSUM) && self.f.checksum_type != EXT4_CRC32C_CHKSUM {
            return Err(EditError::Unsupported(format!(
                "checksum type {} (only crc32c is known)",
                self.f.checksum_type
            )));
        }
        Ok(())
    }

    pub(crate) fn has_incompat(&self, bit: u32) -> bool {
        self.f.has_incompat(bit)
    }

    pub(crate) fn has_ro(&self, bit: u32) -> bool {
        self.f.has_ro_compat(bit)
    }

    pub(crate) fn metadata_csum(&self) -> bool {
        self.has_ro(RO_COMPAT_METADATA_CSUM)
    }

    /// Group descriptors carry a checksum and the *_UNINIT flags mean something.
    pub(crate) fn group_csum(&self) -> bool {
        self.metadata_csum() || self.has_ro(RO_COMPAT_GDT_CSUM)
    }

    /// Does group `g` hold a superblock backup (and group descriptor copy)?
    pub(crate) fn has_super(&self, g: u32) -> bool {
        self.f.group_has_super(g)
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
            u64::from(self.f.first_meta_bg)
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
        self.f.free_blocks_count = free_blocks;
        self.f.free_inodes_count = free_inodes;
    }

    /// The superblock bytes: what was read, with the fields changed and a fresh checksum.
    pub(crate) fn finished(&self) -> Vec<u8> {
        let mut raw = self.raw.clone();
        self.f.encode_into(&mut raw);
        raw
    }
}
