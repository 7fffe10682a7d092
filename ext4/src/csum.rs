//! ext4's CRC32C (metadata_csum): the raw reflected CRC with no final inversion, as
//! e2fsprogs' `ext2fs_crc32c_le` and the kernel's `ext4_chksum` compute it.

/// `crc32c_le(seed, data)`: continue a raw CRC32C from `seed` over `data`.
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
}
