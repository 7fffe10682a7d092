//! Block group descriptors: where each group's bitmaps and inode table are, its free counts,
//! its *_UNINIT flags, and the descriptor checksum.

use super::csum::{crc16, crc32c_raw, le16, le32, put16};
use super::device::Dev;
use super::superblock::Superblock;
use super::EditError;

pub(crate) const BG_INODE_UNINIT: u16 = 0x1;
pub(crate) const BG_BLOCK_UNINIT: u16 = 0x2;
/// Offset of bg_checksum in the descriptor.
const BG_CHECKSUM: usize = 0x1E;

pub(crate) struct Desc {
    pub raw: Vec<u8>,
}

/// Read a 32-bit-split field: `lo` always, `hi` only in 64-byte descriptors.
fn split32(raw: &[u8], lo: usize, hi: usize) -> u64 {
    u64::from(le32(raw, lo))
        | if raw.len() >= 64 {
            u64::from(le32(raw, hi)) << 32
        } else {
            0
        }
}

fn split16(raw: &[u8], lo: usize, hi: usize) -> u32 {
    u32::from(le16(raw, lo))
        | if raw.len() >= 64 {
            u32::from(le16(raw, hi)) << 16
        } else {
            0
        }
}

fn put_split16(raw: &mut [u8], lo: usize, hi: usize, v: u32) {
    put16(raw, lo, v as u16);
    if raw.len() >= 64 {
        put16(raw, hi, (v >> 16) as u16);
    }
}

impl Desc {
    pub(crate) fn block_bitmap(&self) -> u64 {
        split32(&self.raw, 0x0, 0x20)
    }
    pub(crate) fn inode_bitmap(&self) -> u64 {
        split32(&self.raw, 0x4, 0x24)
    }
    pub(crate) fn inode_table(&self) -> u64 {
        split32(&self.raw, 0x8, 0x28)
    }
    pub(crate) fn free_blocks(&self) -> u32 {
        split16(&self.raw, 0xC, 0x2C)
    }
    pub(crate) fn set_free_blocks(&mut self, v: u32) {
        put_split16(&mut self.raw, 0xC, 0x2C, v)
    }
    pub(crate) fn free_inodes(&self) -> u32 {
        split16(&self.raw, 0xE, 0x2E)
    }
    pub(crate) fn set_free_inodes(&mut self, v: u32) {
        put_split16(&mut self.raw, 0xE, 0x2E, v)
    }
    pub(crate) fn used_dirs(&self) -> u32 {
        split16(&self.raw, 0x10, 0x30)
    }
    pub(crate) fn set_used_dirs(&mut self, v: u32) {
        put_split16(&mut self.raw, 0x10, 0x30, v)
    }
    pub(crate) fn flags(&self) -> u16 {
        le16(&self.raw, 0x12)
    }
    pub(crate) fn set_flags(&mut self, v: u16) {
        put16(&mut self.raw, 0x12, v)
    }
    pub(crate) fn itable_unused(&self) -> u32 {
        split16(&self.raw, 0x1C, 0x32)
    }
    pub(crate) fn set_itable_unused(&mut self, v: u32) {
        put_split16(&mut self.raw, 0x1C, 0x32, v)
    }
    pub(crate) fn set_block_bitmap_csum(&mut self, c: u32) {
        put_split16(&mut self.raw, 0x18, 0x38, c)
    }
    pub(crate) fn set_inode_bitmap_csum(&mut self, c: u32) {
        put_split16(&mut self.raw, 0x1A, 0x3A, c)
    }

    /// Recompute bg_checksum (metadata_csum: crc32c low 16 bits; gdt_csum: crc16).
    pub(crate) fn seal(&mut self, sb: &Superblock, g: u32) {
        if !sb.group_csum() {
            return;
        }
        put16(&mut self.raw, BG_CHECKSUM, 0);
        let c = if sb.metadata_csum() {
            let c = crc32c_raw(sb.csum_seed, &g.to_le_bytes());
            (crc32c_raw(c, &self.raw) & 0xFFFF) as u16
        } else {
            let c = crc16(!0, sb.uuid());
            let c = crc16(c, &g.to_le_bytes());
            let c = crc16(c, &self.raw[..BG_CHECKSUM]);
            crc16(c, &self.raw[BG_CHECKSUM + 2..])
        };
        put16(&mut self.raw, BG_CHECKSUM, c);
    }
}

/// Byte position of group `g`'s descriptor in the primary table (or, with meta_bg, in the
/// primary copy of its meta group's descriptor block).
pub(crate) fn desc_pos(sb: &Superblock, g: u32) -> u64 {
    let dpb = sb.descs_per_block();
    let index = u64::from(g) / dpb;
    let within = (u64::from(g) % dpb) * sb.desc_size as u64;
    let block = if index < sb.first_meta_bg() {
        sb.first_data_block + 1 + index
    } else {
        let first = (index * dpb) as u32;
        sb.group_first_block(first) + u64::from(sb.has_super(first))
    };
    block * sb.block_size + within
}

pub(crate) fn read_descs(dev: &Dev, sb: &Superblock) -> Result<Vec<Desc>, EditError> {
    let mut descs = Vec::with_capacity(sb.groups as usize);
    let dpb = sb.descs_per_block() as u32;
    for first in (0..sb.groups).step_by(dpb as usize) {
        // One descriptor block at a time (they are scattered with meta_bg).
        let n = dpb.min(sb.groups - first) as usize;
        let mut table = vec![0u8; n * sb.desc_size];
        dev.read(desc_pos(sb, first), &mut table)?;
        descs.extend(table.chunks(sb.desc_size).map(|c| Desc { raw: c.to_vec() }));
    }
    for (g, d) in descs.iter().enumerate() {
        let end = sb.blocks_count;
        let it_blocks =
            (u64::from(sb.inodes_per_group) * sb.inode_size as u64).div_ceil(sb.block_size);
        if d.block_bitmap() >= end
            || d.inode_bitmap() >= end
            || d.inode_table().saturating_add(it_blocks) > end
        {
            return Err(EditError::Corrupt(format!(
                "group descriptor {g} (file offset {}) points outside the filesystem",
                dev.abs(desc_pos(sb, g as u32))
            )));
        }
    }
    Ok(descs)
}
