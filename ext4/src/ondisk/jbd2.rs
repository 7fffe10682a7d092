//! The JBD2 journal superblock (`journal_superblock_t`, v2; journal.rst), big-endian as
//! everything in the journal. An empty, clean journal is this block followed by blocks that
//! may read as zeros.

pub const JBD2_MAGIC_NUMBER: u32 = 0xC03B_3998;
/// h_blocktype of a v2 superblock.
pub const JBD2_SUPERBLOCK_V2: u32 = 4;

/// The superblock of an empty journal of `len` blocks of `block_size` bytes, for the
/// filesystem with `uuid` (its one user).
pub fn superblock(block_size: u32, len: u32, uuid: &[u8; 16]) -> Vec<u8> {
    let mut b = vec![0u8; block_size as usize];
    let put = |b: &mut [u8], off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_be_bytes());
    put(&mut b, 0x00, JBD2_MAGIC_NUMBER);
    put(&mut b, 0x04, JBD2_SUPERBLOCK_V2);
    put(&mut b, 0x0C, block_size); // s_blocksize
    put(&mut b, 0x10, len); // s_maxlen
    put(&mut b, 0x14, 1); // s_first: the log starts after this block
    put(&mut b, 0x18, 1); // s_sequence
    b[0x30..0x40].copy_from_slice(uuid);
    put(&mut b, 0x40, 1); // s_nr_users
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_matches_mke2fs_bytes() {
        let b = superblock(4096, 8192, &[0x11; 16]);
        assert_eq!(
            &b[..0x1C],
            &[
                0xc0, 0x3b, 0x39, 0x98, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x20, 0, 0, 0,
                0, 1, 0, 0, 0, 1
            ]
        );
    }
}
