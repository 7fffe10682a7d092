//! Block group descriptors (`struct ext4_group_desc`, 32 bytes, or 64 with the 64bit
//! feature; group_descr.rst) and their checksums.

use super::csum::{crc16, crc32c_le};
use super::le::{get16, get32, put16, put32};

// bg_flags
/// The inode table and bitmap are not initialized (gdt_csum/metadata_csum only).
pub const EXT4_BG_INODE_UNINIT: u16 = 0x0001;
/// The block bitmap is not initialized.
pub const EXT4_BG_BLOCK_UNINIT: u16 = 0x0002;
/// The inode table is known to read as zeros.
pub const EXT4_BG_INODE_ZEROED: u16 = 0x0004;

/// Descriptor size without the 64bit feature.
pub const EXT2_MIN_DESC_SIZE: usize = 32;
/// Descriptor size this crate writes with the 64bit feature.
pub const EXT4_MIN_DESC_SIZE_64BIT: usize = 64;
/// Offset of bg_checksum.
const BG_CHECKSUM: usize = 0x1E;

/// One descriptor. The `_hi` halves exist only in 64-byte descriptors; `encode_into` a
/// 32-byte slot drops them (as the format does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupDesc {
    pub block_bitmap: u64,
    pub inode_bitmap: u64,
    pub inode_table: u64,
    pub free_blocks_count: u32,
    pub free_inodes_count: u32,
    pub used_dirs_count: u32,
    pub flags: u16,
    pub block_bitmap_csum: u32,
    pub inode_bitmap_csum: u32,
    pub itable_unused: u32,
}

impl GroupDesc {
    /// A new descriptor in `out` (32 or 64 bytes, zeroed first). With `csum_seed` (the
    /// metadata_csum seed), bg_checksum is set for group `group`.
    pub fn encode(&self, out: &mut [u8], group: u32, csum_seed: Option<u32>) {
        out.fill(0);
        self.encode_into(out);
        if let Some(seed) = csum_seed {
            put16(out, BG_CHECKSUM, desc_checksum(seed, group, out));
        }
    }

    /// Write the fields over `out` (a 32- or 64-byte slot, or larger), leaving other bytes
    /// alone; the checksum is the caller's (`desc_checksum` or `desc_checksum_crc16`).
    pub fn encode_into(&self, out: &mut [u8]) {
        let wide = out.len() >= EXT4_MIN_DESC_SIZE_64BIT;
        put32(out, 0x00, self.block_bitmap as u32);
        put32(out, 0x04, self.inode_bitmap as u32);
        put32(out, 0x08, self.inode_table as u32);
        put16(out, 0x0C, self.free_blocks_count as u16);
        put16(out, 0x0E, self.free_inodes_count as u16);
        put16(out, 0x10, self.used_dirs_count as u16);
        put16(out, 0x12, self.flags);
        put16(out, 0x18, self.block_bitmap_csum as u16);
        put16(out, 0x1A, self.inode_bitmap_csum as u16);
        put16(out, 0x1C, self.itable_unused as u16);
        if wide {
            put32(out, 0x20, (self.block_bitmap >> 32) as u32);
            put32(out, 0x24, (self.inode_bitmap >> 32) as u32);
            put32(out, 0x28, (self.inode_table >> 32) as u32);
            put16(out, 0x2C, (self.free_blocks_count >> 16) as u16);
            put16(out, 0x2E, (self.free_inodes_count >> 16) as u16);
            put16(out, 0x30, (self.used_dirs_count >> 16) as u16);
            put16(out, 0x32, (self.itable_unused >> 16) as u16);
            put16(out, 0x38, (self.block_bitmap_csum >> 16) as u16);
            put16(out, 0x3A, (self.inode_bitmap_csum >> 16) as u16);
        }
    }

    pub fn decode(b: &[u8]) -> GroupDesc {
        let wide = b.len() >= EXT4_MIN_DESC_SIZE_64BIT;
        let hi32 = |off: usize| {
            if wide {
                (get32(b, off) as u64) << 32
            } else {
                0
            }
        };
        let hi16 = |off: usize| {
            if wide {
                (get16(b, off) as u32) << 16
            } else {
                0
            }
        };
        GroupDesc {
            block_bitmap: get32(b, 0x00) as u64 | hi32(0x20),
            inode_bitmap: get32(b, 0x04) as u64 | hi32(0x24),
            inode_table: get32(b, 0x08) as u64 | hi32(0x28),
            free_blocks_count: get16(b, 0x0C) as u32 | hi16(0x2C),
            free_inodes_count: get16(b, 0x0E) as u32 | hi16(0x2E),
            used_dirs_count: get16(b, 0x10) as u32 | hi16(0x30),
            flags: get16(b, 0x12),
            block_bitmap_csum: get16(b, 0x18) as u32 | hi16(0x38),
            inode_bitmap_csum: get16(b, 0x1A) as u32 | hi16(0x3A),
            itable_unused: get16(b, 0x1C) as u32 | hi16(0x32),
        }
    }
}

/// Store bg_checksum in an encoded descriptor: metadata_csum's crc32c when `csum_seed` is
/// given, else gdt_csum's crc16 over the filesystem UUID.
pub fn seal(desc: &mut [u8], group: u32, csum_seed: Option<u32>, uuid: &[u8; 16]) {
    let c = match csum_seed {
        Some(seed) => desc_checksum(seed, group, desc),
        None => desc_checksum_crc16(uuid, group, desc),
    };
    put16(desc, BG_CHECKSUM, c);
}

/// metadata_csum descriptor checksum: crc32c(seed, le32 group, descriptor with bg_checksum=0),
/// low 16 bits.
pub fn desc_checksum(seed: u32, group: u32, desc: &[u8]) -> u16 {
    let c = crc32c_le(seed, &group.to_le_bytes());
    let c = crc32c_le(c, &desc[..BG_CHECKSUM]);
    let c = crc32c_le(c, &[0, 0]);
    (crc32c_le(c, &desc[BG_CHECKSUM + 2..]) & 0xFFFF) as u16
}

/// gdt_csum descriptor checksum: crc16(~0, uuid, le32 group, descriptor without bg_checksum).
pub fn desc_checksum_crc16(uuid: &[u8; 16], group: u32, desc: &[u8]) -> u16 {
    let c = crc16(!0, uuid);
    let c = crc16(c, &group.to_le_bytes());
    let c = crc16(c, &desc[..BG_CHECKSUM]);
    crc16(c, &desc[BG_CHECKSUM + 2..])
}

/// metadata_csum bitmap checksum over the meaningful bytes of a bitmap (blocks- or
/// inodes-per-group bits), stored split in _lo/_hi.
pub fn bitmap_checksum(seed: u32, bitmap: &[u8], bits: u32) -> u32 {
    crc32c_le(seed, &bitmap[..(bits / 8) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_64() {
        let d = GroupDesc {
            block_bitmap: 1 << 33 | 5,
            inode_bitmap: 6,
            inode_table: 7,
            free_blocks_count: 70000,
            free_inodes_count: 8000,
            used_dirs_count: 3,
            flags: EXT4_BG_INODE_ZEROED,
            block_bitmap_csum: 0xDEADBEEF,
            inode_bitmap_csum: 0x12345678,
            itable_unused: 100,
        };
        let mut b = [0u8; 64];
        d.encode(&mut b, 3, Some(1));
        assert_eq!(GroupDesc::decode(&b), d);
        assert_eq!(
            desc_checksum(1, 3, &b),
            u16::from_le_bytes([b[0x1E], b[0x1F]])
        );
    }

    #[test]
    fn short_descriptor_keeps_only_low_halves() {
        let d = GroupDesc {
            block_bitmap: 1 << 33 | 5,
            free_blocks_count: 70000,
            ..Default::default()
        };
        let mut b = [0u8; 32];
        d.encode(&mut b, 0, None);
        let back = GroupDesc::decode(&b);
        assert_eq!(
            (back.block_bitmap, back.free_blocks_count),
            (5, 70000 & 0xFFFF)
        );
    }
}
