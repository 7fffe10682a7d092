//! One inode as the editor holds it: the record read (its full `s_inode_size` bytes, so
//! fields and in-inode attributes the codec does not model survive) and the decoded fields.

use super::superblock::Superblock;
use super::EditError;
use crate::ondisk::csum::inode_seed;
use crate::ondisk::inode::{
    self as disk, Timestamp, EXT2_GOOD_OLD_INODE_SIZE, EXT4_HUGE_FILE_FL, EXT4_INODE_EXTRA_ISIZE,
    S_IFDIR,
};
use crate::ondisk::superblock::RO_COMPAT_HUGE_FILE;

#[derive(Clone)]
pub(crate) struct Inode {
    pub ino: u32,
    raw: Vec<u8>,
    pub f: disk::Inode,
}

impl Inode {
    pub(crate) fn decode(ino: u32, raw: Vec<u8>) -> Inode {
        let f = disk::Inode::decode(&raw);
        Inode { ino, raw, f }
    }

    /// A zeroed record for a newly allocated inode, with i_extra_isize as the superblock
    /// asks (mke2fs's 32 when it says nothing).
    pub(crate) fn new(sb: &Superblock, ino: u32) -> Inode {
        let mut inode = Inode::decode(ino, vec![0u8; sb.inode_size]);
        if sb.inode_size > EXT2_GOOD_OLD_INODE_SIZE {
            let want = if sb.want_extra_isize >= 4 {
                sb.want_extra_isize
            } else {
                EXT4_INODE_EXTRA_ISIZE
            };
            inode.f.extra_isize = want.min((sb.inode_size - EXT2_GOOD_OLD_INODE_SIZE) as u16);
        }
        inode
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.f.file_type() == S_IFDIR
    }

    pub(crate) fn file_type(&self) -> u16 {
        self.f.file_type()
    }

    /// atime, ctime, mtime (and crtime where the record has it) all set to `t`, seconds
    /// since the epoch read as unsigned (to 2106): a large inode keeps times past 2038 in
    /// its epoch bits; a 128-byte one holds at most 2038-01-19.
    pub(crate) fn set_times(&mut self, t: u32) {
        // Every _extra field and crtime lie within the first 24 extra bytes.
        let large = self.raw.len() > EXT2_GOOD_OLD_INODE_SIZE && self.f.extra_isize >= 24;
        let t = Timestamp::secs((t as i64).min(Timestamp::range(large).1));
        self.f.atime = t;
        self.f.ctime = t;
        self.f.mtime = t;
        self.f.crtime = t;
    }

    /// Set i_blocks from a count of filesystem blocks (stored in 512-byte sectors; the
    /// HUGE_FILE_FL block-unit form is never produced, so that flag is cleared).
    pub(crate) fn set_fs_blocks(&mut self, sb: &Superblock, blocks: u64) -> Result<(), EditError> {
        let sectors = blocks * (sb.block_size / 512);
        let limit = if sb.has_ro(RO_COMPAT_HUGE_FILE) {
            1u64 << 48
        } else {
            1u64 << 32
        };
        if sectors >= limit {
            return Err(EditError::Unsupported(format!(
                "inode {} would need {sectors} sectors of i_blocks",
                self.ino
            )));
        }
        self.f.blocks = sectors;
        self.f.flags &= !EXT4_HUGE_FILE_FL;
        Ok(())
    }

    /// i_blocks in filesystem blocks, honoring huge_file's block-unit form.
    pub(crate) fn fs_blocks(&self, sb: &Superblock) -> u64 {
        if !sb.has_ro(RO_COMPAT_HUGE_FILE) {
            return (self.f.blocks & 0xFFFF_FFFF) / (sb.block_size / 512);
        }
        if self.f.flags & EXT4_HUGE_FILE_FL != 0 {
            return self.f.blocks;
        }
        self.f.blocks / (sb.block_size / 512)
    }

    /// Seed for the checksums of blocks this inode owns (extent blocks, directory blocks).
    pub(crate) fn csum_seed(&self, sb: &Superblock) -> u32 {
        inode_seed(sb.csum_seed, self.ino, self.f.generation)
    }

    /// The record to write: the fields over what was read, checksummed with metadata_csum.
    pub(crate) fn encoded(&self, sb: &Superblock) -> Vec<u8> {
        let mut raw = self.raw.clone();
        self.f.encode_into(&mut raw);
        if sb.metadata_csum() {
            disk::set_checksum(&mut raw, sb.csum_seed, self.ino);
        }
        raw
    }
}
