//! The checksums ext4 metadata carries: raw CRC32C (metadata_csum, as e2fsprogs'
//! `ext2fs_crc32c_le` and the kernel's `ext4_chksum` compute it) and CRC16 (the older
//! gdt_csum group descriptor checksum).

/// `crc32c_le(seed, data)`: continue a raw CRC32C (reflected, no final inversion) from `seed`.
pub fn crc32c_le(seed: u32, data: &[u8]) -> u32 {
    // The crate finalizes (inverts) on entry and exit; undo both to get the raw form.
    !crc32c::crc32c_append(!seed, data)
}

/// The filesystem checksum seed without `metadata_csum_seed`: `crc32c_le(~0, s_uuid)`.
pub fn fs_seed(uuid: &[u8; 16]) -> u32 {
    crc32c_le(!0, uuid)
}

/// Per-inode seed used by inode, extent-block and directory-block checksums.
pub fn inode_seed(fs_seed: u32, ino: u32, generation: u32) -> u32 {
    let c = crc32c_le(fs_seed, &ino.to_le_bytes());
    crc32c_le(c, &generation.to_le_bytes())
}

/// e2fsprogs' `ext2fs_crc16` (CRC-16/ARC: polynomial 0x8005 reflected, no final inversion),
/// used only by the gdt_csum group descriptor checksum. Eight lines; no dependency of the
/// workspace provides this exact variant.
pub fn crc16(mut crc: u16, data: &[u8]) -> u16 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_form_is_the_inverted_standard_crc() {
        // Standard CRC-32C("123456789") = 0xE3069283; the raw form with seed ~0 is its inverse.
        assert_eq!(crc32c_le(!0, b"123456789"), !0xE306_9283);
    }

    #[test]
    fn chaining_equals_one_pass() {
        let a = crc32c_le(crc32c_le(!0, b"hello "), b"world");
        assert_eq!(a, crc32c_le(!0, b"hello world"));
    }

    #[test]
    fn crc16_matches_arc_check_value() {
        // CRC-16/ARC check value (init 0): 0xBB3D.
        assert_eq!(crc16(0, b"123456789"), 0xBB3D);
    }
}
