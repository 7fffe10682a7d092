//! Block group descriptors (ext4 `struct ext4_group_desc`, 32 or 64 bytes) and their
//! metadata_csum checksums. Public so the in-place editor can read and update them.

use super::csum::crc32c_le;

/// bg_flags: the inode table is known to read as zeros.
pub const EXT4_BG_INODE_ZEROED: u16 = 0x0004;

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

fn put16(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 2].copy_from_slice(&(v as u16).to_le_bytes());
}
fn put32(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 4].copy_from_slice(&(v as u32).to_le_bytes());
}
fn get16(b: &[u8], off: usize) -> u32 {
    u16::from_le_bytes([b[off], b[off + 1]]) as u32
}
fn get32(b: &[u8], off: usize) -> u64 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap()) as u64
}

impl GroupDesc {
    /// Encode into `out` (32 or 64 bytes). With `csum_seed`, the metadata_csum fields are set
    /// (bitmap checksums as given, descriptor checksum computed for group `group`).
    pub fn encode(&self, out: &mut [u8], group: u32, csum_seed: Option<u32>) {
        out.fill(0);
        let wide = out.len() >= 64;
        put32(out, 0x00, self.block_bitmap);
        put32(out, 0x04, self.inode_bitmap);
        put32(out, 0x08, self.inode_table);
        put16(out, 0x0C, self.free_blocks_count);
        put16(out, 0x0E, self.free_inodes_count);
        put16(out, 0x10, self.used_dirs_count);
        put16(out, 0x12, self.flags as u32);
        put16(out, 0x18, self.block_bitmap_csum);
        put16(out, 0x1A, self.inode_bitmap_csum);
        put16(out, 0x1C, self.itable_unused);
        if wide {
            put32(out, 0x20, self.block_bitmap >> 32);
            put32(out, 0x24, self.inode_bitmap >> 32);
            put32(out, 0x28, self.inode_table >> 32);
            put16(out, 0x2C, self.free_blocks_count >> 16);
            put16(out, 0x2E, self.free_inodes_count >> 16);
            put16(out, 0x30, self.used_dirs_count >> 16);
            put16(out, 0x32, self.itable_unused >> 16);
            put16(out, 0x38, self.block_bitmap_csum >> 16);
            put16(out, 0x3A, self.inode_bitmap_csum >> 16);
        }
        if let Some(seed) = csum_seed {
            put16(out, 0x1E, desc_checksum(seed, group, out) as u32);
        }
    }

    pub fn decode(b: &[u8]) -> GroupDesc {
        let wide = b.len() >= 64;
        let hi = |off: usize, shift: u32| if wide { get32(b, off) << shift } else { 0 };
        let hi16 = |off: usize| if wide { get16(b, off) << 16 } else { 0 };
        GroupDesc {
            block_bitmap: get32(b, 0x00) | hi(0x20, 32),
            inode_bitmap: get32(b, 0x04) | hi(0x24, 32),
            inode_table: get32(b, 0x08) | hi(0x28, 32),
            free_blocks_count: get16(b, 0x0C) | hi16(0x2C),
            free_inodes_count: get16(b, 0x0E) | hi16(0x2E),
            used_dirs_count: get16(b, 0x10) | hi16(0x30),
            flags: get16(b, 0x12) as u16,
            block_bitmap_csum: get16(b, 0x18) | hi16(0x38),
            inode_bitmap_csum: get16(b, 0x1A) | hi16(0x3A),
            itable_unused: get16(b, 0x1C) | hi16(0x32),
        }
    }
}

/// metadata_csum descriptor checksum: crc32c(seed, le32 group, descriptor with bg_checksum=0),
/// low 16 bits.
pub fn desc_checksum(seed: u32, group: u32, desc: &[u8]) -> u16 {
    let mut d = desc.to_vec();
    d[0x1E] = 0;
    d[0x1F] = 0;
    let c = crc32c_le(seed, &group.to_le_bytes());
    (crc32c_le(c, &d) & 0xFFFF) as u16
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
}
