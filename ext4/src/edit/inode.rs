//! One on-disk inode (the full `s_inode_size` record): fields this editor reads or sets, and
//! its metadata_csum checksum.

use super::csum::{crc32c_raw, le16, le32, put16, put32};
use super::superblock::{Superblock, RO_COMPAT_HUGE_FILE};
use super::EditError;

pub(crate) const S_IFMT: u16 = 0o170000;
pub(crate) const S_IFREG: u16 = 0o100000;
pub(crate) const S_IFDIR: u16 = 0o040000;
pub(crate) const S_IFLNK: u16 = 0o120000;

pub(crate) const EXT4_INDEX_FL: u32 = 0x1000;
pub(crate) const EXT4_ENCRYPT_FL: u32 = 0x800;
pub(crate) const EXT4_HUGE_FILE_FL: u32 = 0x40000;
pub(crate) const EXT4_EXTENTS_FL: u32 = 0x80000;
pub(crate) const EXT4_INLINE_DATA_FL: u32 = 0x1000_0000;
pub(crate) const EXT4_CASEFOLD_FL: u32 = 0x4000_0000;

/// i_extra_isize must cover i_checksum_hi for the high checksum half to be stored.
const EXT4_INODE_CSUM_HI_EXTRA_END: u16 = 4;

#[derive(Clone)]
pub(crate) struct Inode {
    pub ino: u32,
    pub raw: Vec<u8>,
}

impl Inode {
    /// A zeroed record for a newly allocated inode, with i_extra_isize set as mke2fs asks.
    pub(crate) fn new(sb: &Superblock, ino: u32) -> Inode {
        let mut raw = vec![0u8; sb.inode_size];
        if sb.inode_size > 128 {
            let want = if sb.want_extra_isize >= 4 {
                sb.want_extra_isize
            } else {
                32
            };
            put16(&mut raw, 0x80, want.min((sb.inode_size - 128) as u16));
        }
        Inode { ino, raw }
    }

    pub(crate) fn mode(&self) -> u16 {
        le16(&self.raw, 0x0)
    }
    pub(crate) fn set_mode(&mut self, m: u16) {
        put16(&mut self.raw, 0x0, m)
    }
    pub(crate) fn is_dir(&self) -> bool {
        self.mode() & S_IFMT == S_IFDIR
    }
    pub(crate) fn file_type(&self) -> u16 {
        self.mode() & S_IFMT
    }
    pub(crate) fn set_owner(&mut self, uid: u32, gid: u32) {
        put16(&mut self.raw, 0x2, uid as u16);
        put16(&mut self.raw, 0x78, (uid >> 16) as u16);
        put16(&mut self.raw, 0x18, gid as u16);
        put16(&mut self.raw, 0x7A, (gid >> 16) as u16);
    }
    pub(crate) fn size(&self) -> u64 {
        u64::from(le32(&self.raw, 0x4)) | u64::from(le32(&self.raw, 0x6C)) << 32
    }
    pub(crate) fn set_size(&mut self, s: u64) {
        put32(&mut self.raw, 0x4, s as u32);
        put32(&mut self.raw, 0x6C, (s >> 32) as u32);
    }
    /// atime, ctime, mtime (and crtime when the record has room) all set to `t`.
    pub(crate) fn set_times(&mut self, t: u32) {
        for at in [0x8, 0xC, 0x10] {
            put32(&mut self.raw, at, t);
        }
        if self.extra_isize() >= 0x18 {
            // i_crtime at 0x90; the *_extra fields (nanoseconds, epoch bits) stay zero.
            put32(&mut self.raw, 0x90, t);
        }
    }
    pub(crate) fn links(&self) -> u16 {
        le16(&self.raw, 0x1A)
    }
    pub(crate) fn set_links(&mut self, n: u16) {
        put16(&mut self.raw, 0x1A, n)
    }
    pub(crate) fn flags(&self) -> u32 {
        le32(&self.raw, 0x20)
    }
    pub(crate) fn set_flags(&mut self, f: u32) {
        put32(&mut self.raw, 0x20, f)
    }
    pub(crate) fn i_block(&self) -> &[u8] {
        &self.raw[0x28..0x64]
    }
    pub(crate) fn i_block_mut(&mut self) -> &mut [u8] {
        &mut self.raw[0x28..0x64]
    }
    pub(crate) fn generation(&self) -> u32 {
        le32(&self.raw, 0x64)
    }
    pub(crate) fn file_acl(&self) -> u64 {
        u64::from(le32(&self.raw, 0x68)) | u64::from(le16(&self.raw, 0x76)) << 32
    }
    fn extra_isize(&self) -> u16 {
        if self.raw.len() > 128 {
            le16(&self.raw, 0x80)
        } else {
            0
        }
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
        put32(&mut self.raw, 0x1C, sectors as u32);
        put16(&mut self.raw, 0x74, (sectors >> 32) as u16);
        self.set_flags(self.flags() & !EXT4_HUGE_FILE_FL);
        Ok(())
    }

    /// i_blocks in filesystem blocks, honoring huge_file's block-unit form.
    pub(crate) fn fs_blocks(&self, sb: &Superblock) -> u64 {
        let mut n = u64::from(le32(&self.raw, 0x1C));
        if sb.has_ro(RO_COMPAT_HUGE_FILE) {
            n |= u64::from(le16(&self.raw, 0x74)) << 32;
            if self.flags() & EXT4_HUGE_FILE_FL != 0 {
                return n;
            }
        }
        n / (sb.block_size / 512)
    }

    /// Seed for the checksums of blocks this inode owns (extent blocks, directory blocks).
    pub(crate) fn csum_seed(&self, sb: &Superblock) -> u32 {
        let c = crc32c_raw(sb.csum_seed, &self.ino.to_le_bytes());
        crc32c_raw(c, &self.generation().to_le_bytes())
    }

    /// Store the inode checksum (metadata_csum): over the whole record with both halves zeroed.
    pub(crate) fn seal(&mut self, sb: &Superblock) {
        if !sb.metadata_csum() {
            return;
        }
        let has_hi = self.raw.len() > 128 && self.extra_isize() >= EXT4_INODE_CSUM_HI_EXTRA_END;
        put16(&mut self.raw, 0x7C, 0);
        if has_hi {
            put16(&mut self.raw, 0x82, 0);
        }
        let c = crc32c_raw(self.csum_seed(sb), &self.raw);
        put16(&mut self.raw, 0x7C, c as u16);
        if has_hi {
            put16(&mut self.raw, 0x82, (c >> 16) as u16);
        }
    }
}
