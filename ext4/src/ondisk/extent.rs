//! Extent tree nodes (ifork.rst): a 12-byte `ext4_extent_header`, then 12-byte entries —
//! `ext4_extent` in leaves (depth 0), `ext4_extent_idx` above them — and, in a tree block
//! (not the root in i_block), an `ext4_extent_tail` checksum after eh_max entries.

use super::csum::crc32c_le;
use super::le::{get16, get32, put16, put32};

pub const EXT4_EXT_MAGIC: u16 = 0xF30A;
/// Longest initialized extent; an ee_len above it marks an uninitialized one.
pub const EXT_INIT_MAX_LEN: u64 = 32768;
/// Deepest tree the kernel accepts (EXT4_MAX_EXTENT_DEPTH).
pub const EXT4_MAX_EXTENT_DEPTH: u16 = 5;
pub const HEADER_LEN: usize = 12;
pub const ENTRY_LEN: usize = 12;
/// Entries in the root (i_block's 60 bytes).
pub const ROOT_MAX: u16 = 4;

/// Entries a tree block of `block_size` bytes holds (leaving room for the tail checksum).
pub fn block_max(block_size: usize) -> u16 {
    ((block_size - HEADER_LEN) / ENTRY_LEN) as u16
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtentHeader {
    pub entries: u16,
    pub max: u16,
    pub depth: u16,
}

impl ExtentHeader {
    /// The header of `node`, or None when its magic or counts are impossible for a node of
    /// `node.len()` bytes.
    pub fn decode(node: &[u8]) -> Option<ExtentHeader> {
        if get16(node, 0) != EXT4_EXT_MAGIC {
            return None;
        }
        let h = ExtentHeader {
            entries: get16(node, 2),
            max: get16(node, 4),
            depth: get16(node, 6),
        };
        let fits = HEADER_LEN + ENTRY_LEN * h.max as usize <= node.len();
        (h.entries <= h.max && fits && h.depth <= EXT4_MAX_EXTENT_DEPTH).then_some(h)
    }

    /// eh_magic, eh_entries, eh_max, eh_depth (eh_generation, unused, is left alone).
    pub fn encode_into(&self, node: &mut [u8]) {
        put16(node, 0, EXT4_EXT_MAGIC);
        put16(node, 2, self.entries);
        put16(node, 4, self.max);
        put16(node, 6, self.depth);
    }
}

fn entry(i: usize) -> usize {
    HEADER_LEN + ENTRY_LEN * i
}

/// A leaf entry: `len` blocks from logical block `block` at physical block `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub block: u32,
    pub len: u16,
    pub start: u64,
}

impl Extent {
    /// Blocks mapped (an uninitialized extent stores its length plus 32768).
    pub fn length(&self) -> u64 {
        let l = self.len as u64;
        if l > EXT_INIT_MAX_LEN {
            l - EXT_INIT_MAX_LEN
        } else {
            l
        }
    }
    /// Preallocated, reads as zeros.
    pub fn is_uninit(&self) -> bool {
        self.len as u64 > EXT_INIT_MAX_LEN
    }
    /// Entry `i` of a leaf node.
    pub fn decode(node: &[u8], i: usize) -> Extent {
        let at = entry(i);
        Extent {
            block: get32(node, at),
            len: get16(node, at + 4),
            start: get32(node, at + 8) as u64 | (get16(node, at + 6) as u64) << 32,
        }
    }
    pub fn encode_into(&self, node: &mut [u8], i: usize) {
        let at = entry(i);
        put32(node, at, self.block);
        put16(node, at + 4, self.len);
        put16(node, at + 6, (self.start >> 32) as u16);
        put32(node, at + 8, self.start as u32);
    }
}

/// An index entry: the subtree for logical blocks from `block` on lives in block `leaf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtentIdx {
    pub block: u32,
    pub leaf: u64,
}

impl ExtentIdx {
    pub fn decode(node: &[u8], i: usize) -> ExtentIdx {
        let at = entry(i);
        ExtentIdx {
            block: get32(node, at),
            leaf: get32(node, at + 4) as u64 | (get16(node, at + 8) as u64) << 32,
        }
    }
    /// ei_block, ei_leaf_lo, ei_leaf_hi, and ei_unused = 0.
    pub fn encode_into(&self, node: &mut [u8], i: usize) {
        let at = entry(i);
        put32(node, at, self.block);
        put32(node, at + 4, self.leaf as u32);
        put16(node, at + 8, (self.leaf >> 32) as u16);
        put16(node, at + 10, 0);
    }
}

/// Set a tree block's et_checksum: crc32c(inode seed, header and eh_max entries), stored
/// right after them.
pub fn set_tail_checksum(node: &mut [u8], inode_seed: u32) {
    let end = entry(get16(node, 4) as usize);
    let c = crc32c_le(inode_seed, &node[..end]);
    put32(node, end, c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let mut node = vec![0u8; 4096];
        let h = ExtentHeader {
            entries: 2,
            max: block_max(4096),
            depth: 0,
        };
        h.encode_into(&mut node);
        let e = Extent {
            block: 7,
            len: 32768 + 5,
            start: 1 << 40 | 9,
        };
        e.encode_into(&mut node, 1);
        assert_eq!(ExtentHeader::decode(&node), Some(h));
        let back = Extent::decode(&node, 1);
        assert_eq!(back, e);
        assert!(back.is_uninit() && back.length() == 5);
        let i = ExtentIdx {
            block: 3,
            leaf: 1 << 33 | 4,
        };
        i.encode_into(&mut node, 0);
        assert_eq!(ExtentIdx::decode(&node, 0), i);
        set_tail_checksum(&mut node, 3);
        let end = 12 + 12 * 340;
        assert_eq!(get32(&node, end), crc32c_le(3, &node[..end]));
    }

    #[test]
    fn bad_headers_are_refused() {
        let mut root = [0u8; 60];
        ExtentHeader {
            entries: 5,
            max: 5,
            depth: 0,
        }
        .encode_into(&mut root);
        assert_eq!(
            ExtentHeader::decode(&root),
            None,
            "5 entries do not fit in 60 bytes"
        );
        root[0] = 0;
        assert_eq!(ExtentHeader::decode(&root), None, "bad magic");
    }
}
