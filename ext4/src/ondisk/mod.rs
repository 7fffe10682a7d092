//! The ext2/3/4 on-disk format: one codec for every structure the writer makes, the editor
//! changes and `coreos-build inspect` reads (kernel Documentation/filesystems/ext4/, field
//! names and offsets as e2fsprogs' `lib/ext2fs/ext2_fs.h` gives them).
//!
//! Each structure is one struct with `decode` (bytes to fields) and `encode_into` (fields over
//! bytes). `encode_into` writes only the fields the struct models and leaves every other
//! byte as it was, so the editor can decode a record another tool wrote, change a field and
//! write it back without losing what this crate does not know; the writer encodes into
//! zeroed buffers. All integers are little-endian except the JBD2 journal's (big-endian).

pub mod csum;
pub mod dir;
pub mod extent;
pub mod group;
pub mod inode;
pub mod jbd2;
pub mod probe;
pub mod superblock;
pub mod xattr;

/// Little-endian field access at a byte offset.
pub(crate) mod le {
    pub fn get16(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([b[at], b[at + 1]])
    }
    pub fn get32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }
    pub fn put16(b: &mut [u8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
    pub fn put32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
}
