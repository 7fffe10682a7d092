//! Directory blocks (directory.rst): linear `ext4_dir_entry_2` records that tile the block,
//! the metadata_csum tail (`ext4_dir_entry_tail`, a fake 12-byte entry), and the fields of an
//! htree root (`dx_root`) that the editor reads to undo an index.

use super::csum::crc32c_le;
use super::le::{get16, get32, put16, put32};

// file_type values (EXT4_FT_*)
pub const EXT4_FT_UNKNOWN: u8 = 0;
pub const EXT4_FT_REG_FILE: u8 = 1;
pub const EXT4_FT_DIR: u8 = 2;
pub const EXT4_FT_CHRDEV: u8 = 3;
pub const EXT4_FT_BLKDEV: u8 = 4;
pub const EXT4_FT_FIFO: u8 = 5;
pub const EXT4_FT_SYMLINK: u8 = 7;
/// file_type of the tail entry that carries a leaf block's checksum.
pub const EXT4_FT_DIR_CSUM: u8 = 0xDE;
/// Size of the tail entry.
pub const DIR_TAIL_SIZE: usize = 12;
/// Longest name a directory entry holds.
pub const EXT4_NAME_LEN: usize = 255;
/// Bytes before the name in an entry.
pub const DIRENT_HEADER_LEN: usize = 8;

// dx_root: "." and ".." entries (12 bytes each), then dx_root_info.
/// dx_root_info.info_length (8): where the dx_entry array starts after the info.
pub const DX_ROOT_INFO_LENGTH: usize = 0x1D;
/// dx_root_info.indirect_levels: index levels below the root.
pub const DX_ROOT_INDIRECT_LEVELS: usize = 0x1E;
/// dx_root_info starts after the fake "." and ".." entries.
pub const DX_ROOT_INFO: usize = 0x18;
/// Bytes of a dx_entry (hash, block) and of the fake dirent heading a dx_node.
pub const DX_ENTRY_LEN: usize = 8;

/// The record length an entry with a `name_len`-byte name needs (EXT4_DIR_REC_LEN).
pub fn rec_len(name_len: usize) -> usize {
    (DIRENT_HEADER_LEN + name_len + 3) & !3
}

/// The fixed part of one `ext4_dir_entry_2`; the name follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntryHeader {
    /// 0: an unused record.
    pub inode: u32,
    pub rec_len: u16,
    pub name_len: u8,
    pub file_type: u8,
}

impl DirEntryHeader {
    pub fn decode(b: &[u8], at: usize) -> DirEntryHeader {
        DirEntryHeader {
            inode: get32(b, at),
            rec_len: get16(b, at + 4),
            name_len: b[at + 6],
            file_type: b[at + 7],
        }
    }
    pub fn encode_into(&self, b: &mut [u8], at: usize) {
        put32(b, at, self.inode);
        put16(b, at + 4, self.rec_len);
        b[at + 6] = self.name_len;
        b[at + 7] = self.file_type;
    }
}

/// Write a whole entry (header and name) at `at`.
pub fn put_entry(b: &mut [u8], at: usize, inode: u32, rec_len: usize, name: &[u8], ft: u8) {
    DirEntryHeader {
        inode,
        rec_len: rec_len as u16,
        name_len: name.len() as u8,
        file_type: ft,
    }
    .encode_into(b, at);
    b[at + DIRENT_HEADER_LEN..at + DIRENT_HEADER_LEN + name.len()].copy_from_slice(name);
}

/// Offset of the tail entry in a block.
pub fn tail_offset(block: &[u8]) -> usize {
    block.len() - DIR_TAIL_SIZE
}

/// Does `block` end in a checksum tail entry?
pub fn has_tail(block: &[u8]) -> bool {
    let t = tail_offset(block);
    DirEntryHeader::decode(block, t)
        == DirEntryHeader {
            inode: 0,
            rec_len: DIR_TAIL_SIZE as u16,
            name_len: 0,
            file_type: EXT4_FT_DIR_CSUM,
        }
}

/// Write an empty tail entry (its checksum is set by `set_tail_checksum`).
pub fn put_tail(block: &mut [u8]) {
    let t = tail_offset(block);
    block[t..].fill(0);
    DirEntryHeader {
        inode: 0,
        rec_len: DIR_TAIL_SIZE as u16,
        name_len: 0,
        file_type: EXT4_FT_DIR_CSUM,
    }
    .encode_into(block, t);
}

/// det_checksum: crc32c(inode seed, the block up to the tail).
pub fn set_tail_checksum(block: &mut [u8], inode_seed: u32) {
    let t = tail_offset(block);
    let c = crc32c_le(inode_seed, &block[..t]);
    put32(block, t + 8, c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_and_tail() {
        let mut b = vec![0u8; 4096];
        put_entry(&mut b, 0, 2, 12, b".", EXT4_FT_DIR);
        assert_eq!(
            DirEntryHeader::decode(&b, 0),
            DirEntryHeader {
                inode: 2,
                rec_len: 12,
                name_len: 1,
                file_type: EXT4_FT_DIR
            }
        );
        assert!(!has_tail(&b));
        put_tail(&mut b);
        set_tail_checksum(&mut b, 7);
        assert!(has_tail(&b));
        assert_eq!(get32(&b, 4096 - 4), crc32c_le(7, &b[..4096 - 12]));
        assert_eq!(rec_len(1), 12);
        assert_eq!(rec_len(255), 264);
    }
}
