//! The checksums ext4 metadata carries: raw CRC32C (metadata_csum) and CRC16 (gdt_csum).

/// e2fsprogs' `ext2fs_crc32c_le`: the reflected CRC32C register update with no final
/// inversion. The `crc32c` crate finalizes (inverts) its result, so undo that on both ends.
pub(crate) fn crc32c_raw(seed: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!seed, data)
}

/// e2fsprogs' `ext2fs_crc16` (CRC-16/ARC polynomial 0x8005, reflected, no final inversion),
/// used only by the pre-metadata_csum group descriptor checksum. Written out because it is
/// eight lines and no dependency of the workspace provides this exact variant.
pub(crate) fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_raw_is_the_unfinalized_register() {
        // Standard CRC-32C of "123456789" is 0xE3069283; the raw form skips the final NOT.
        assert_eq!(!crc32c_raw(!0, b"123456789"), 0xE306_9283);
        // Chaining two halves equals one pass (the seed is the running register).
        assert_eq!(
            crc32c_raw(crc32c_raw(!0, b"1234"), b"56789"),
            crc32c_raw(!0, b"123456789")
        );
    }

    #[test]
    fn crc16_matches_arc_check_value() {
        // CRC-16/ARC check value (init 0): 0xBB3D.
        assert_eq!(crc16(0, b"123456789"), 0xBB3D);
    }
}
