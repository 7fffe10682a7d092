//! The internal JBD2 journal (inode 8): an empty journal is its superblock (big-endian,
//! `journal_superblock_t`, v2) in the first block; every other block may read as zeros.

use super::BLOCK_SIZE;

pub const JBD2_MAGIC_NUMBER: u32 = 0xC03B_3998;
pub const JBD2_SUPERBLOCK_V2: u32 = 4;

/// Journal length in blocks for a filesystem of `blocks` blocks, as e2fsprogs'
/// `ext2fs_default_journal_size` chooses it (none below 2048 blocks).
pub fn default_blocks(blocks: u64) -> u64 {
    match blocks {
        0..2048 => 0,
        2048..32768 => 1024,
        32768..262144 => 4096,
        262144..524288 => 8192,
        524288..4194304 => 16384,
        4194304..8388608 => 32768,
        8388608..16777216 => 65536,
        16777216..33554432 => 131072,
        _ => 262144,
    }
}

/// The journal superblock block for an empty, clean journal of `len` blocks.
pub fn superblock(len: u64, uuid: &[u8; 16]) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK_SIZE as usize];
    let put = |b: &mut [u8], off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_be_bytes());
    put(&mut b, 0x00, JBD2_MAGIC_NUMBER);
    put(&mut b, 0x04, JBD2_SUPERBLOCK_V2);
    put(&mut b, 0x0C, BLOCK_SIZE as u32); // s_blocksize
    put(&mut b, 0x10, len as u32); // s_maxlen
    put(&mut b, 0x14, 1); // s_first: log starts after this block
    put(&mut b, 0x18, 1); // s_sequence
    b[0x30..0x40].copy_from_slice(uuid);
    put(&mut b, 0x40, 1); // s_nr_users
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_mke2fs() {
        assert_eq!(default_blocks(1000), 0);
        assert_eq!(default_blocks(32768), 4096);
        assert_eq!(default_blocks(262144), 8192); // 1 GiB: 32 MiB, as mke2fs made above
        assert_eq!(default_blocks(553472), 16384);
    }

    #[test]
    fn header_matches_mke2fs_bytes() {
        let b = superblock(8192, &[0x11; 16]);
        assert_eq!(
            &b[..0x1C],
            &[
                0xc0, 0x3b, 0x39, 0x98, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x20, 0, 0, 0,
                0, 1, 0, 0, 0, 1
            ]
        );
    }
}
