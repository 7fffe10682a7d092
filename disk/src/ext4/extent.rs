//! Extent trees (ext4 `ext4_extent_header`, `ext4_extent`, `ext4_extent_idx`): the root in
//! i_block holds up to 4 entries; larger maps get one level of leaf blocks (340 extents
//! each), enough for 1360 extents of up to 128 MiB.

use super::alloc::Mapping;
use super::csum::crc32c_le;
use super::{Ext4Error, BLOCK_SIZE};

pub const EXT4_EXT_MAGIC: u16 = 0xF30A;
/// Longest initialized extent.
pub const EXT_INIT_MAX_LEN: u64 = 32768;
const ROOT_MAX: usize = 4;
const LEAF_MAX: usize = (BLOCK_SIZE as usize - 12) / 12;

/// Split mappings into extents of at most EXT_INIT_MAX_LEN blocks.
pub fn extents(maps: &[Mapping]) -> Vec<Mapping> {
    let mut out = Vec::new();
    for m in maps {
        let mut done = 0;
        while done < m.len {
            let len = (m.len - done).min(EXT_INIT_MAX_LEN);
            out.push(Mapping {
                logical: m.logical + done,
                physical: m.physical + done,
                len,
            });
            done += len;
        }
    }
    out
}

/// Leaf blocks needed for `n` extents.
pub fn leaves_needed(n: usize) -> Result<u64, Ext4Error> {
    if n <= ROOT_MAX {
        Ok(0)
    } else if n <= ROOT_MAX * LEAF_MAX {
        Ok(n.div_ceil(LEAF_MAX) as u64)
    } else {
        Err(Ext4Error::Invalid(format!(
            "a file needs {n} extents; at most {} are supported",
            ROOT_MAX * LEAF_MAX
        )))
    }
}

fn header(b: &mut [u8], entries: usize, max: usize, depth: u16) {
    b[0..2].copy_from_slice(&EXT4_EXT_MAGIC.to_le_bytes());
    b[2..4].copy_from_slice(&(entries as u16).to_le_bytes());
    b[4..6].copy_from_slice(&(max as u16).to_le_bytes());
    b[6..8].copy_from_slice(&depth.to_le_bytes());
}

fn leaf_entry(b: &mut [u8], e: &Mapping) {
    b[0..4].copy_from_slice(&(e.logical as u32).to_le_bytes());
    b[4..6].copy_from_slice(&(e.len as u16).to_le_bytes());
    b[6..8].copy_from_slice(&((e.physical >> 32) as u16).to_le_bytes());
    b[8..12].copy_from_slice(&(e.physical as u32).to_le_bytes());
}

/// The i_block root and the leaf blocks `(block number, bytes)`. `leaves` are the blocks
/// allocated for leaves (`leaves_needed` of them); `csum` is the inode's checksum seed.
pub fn build(
    exts: &[Mapping],
    leaves: &[u64],
    csum: Option<u32>,
) -> ([u8; 60], Vec<(u64, Vec<u8>)>) {
    let mut root = [0u8; 60];
    if leaves.is_empty() {
        header(&mut root, exts.len(), ROOT_MAX, 0);
        for (i, e) in exts.iter().enumerate() {
            leaf_entry(&mut root[12 + 12 * i..24 + 12 * i], e);
        }
        return (root, Vec::new());
    }
    header(&mut root, leaves.len(), ROOT_MAX, 1);
    let mut blocks = Vec::new();
    for (i, (chunk, &blk)) in exts.chunks(LEAF_MAX).zip(leaves).enumerate() {
        let idx = &mut root[12 + 12 * i..24 + 12 * i];
        idx[0..4].copy_from_slice(&(chunk[0].logical as u32).to_le_bytes());
        idx[4..8].copy_from_slice(&(blk as u32).to_le_bytes());
        idx[8..10].copy_from_slice(&((blk >> 32) as u16).to_le_bytes());
        let mut b = vec![0u8; BLOCK_SIZE as usize];
        header(&mut b, chunk.len(), LEAF_MAX, 0);
        for (j, e) in chunk.iter().enumerate() {
            leaf_entry(&mut b[12 + 12 * j..24 + 12 * j], e);
        }
        if let Some(seed) = csum {
            let t = 12 + 12 * LEAF_MAX;
            let c = crc32c_le(seed, &b[..t]);
            b[t..t + 4].copy_from_slice(&c.to_le_bytes());
        }
        blocks.push((blk, b));
    }
    (root, blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_runs_split_at_max_len() {
        let e = extents(&[Mapping {
            logical: 0,
            physical: 1000,
            len: 70000,
        }]);
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[1],
            Mapping {
                logical: 32768,
                physical: 33768,
                len: 32768
            }
        );
        assert_eq!(e[2].len, 70000 - 65536);
    }

    #[test]
    fn depth_one_tree() {
        let exts: Vec<Mapping> = (0..400)
            .map(|i| Mapping {
                logical: i * 2,
                physical: 5000 + i * 2,
                len: 1,
            })
            .collect();
        assert_eq!(leaves_needed(exts.len()).unwrap(), 2);
        let (root, leaves) = build(&exts, &[10, 11], Some(3));
        assert_eq!(u16::from_le_bytes([root[6], root[7]]), 1);
        assert_eq!(leaves.len(), 2);
        assert_eq!(u16::from_le_bytes([leaves[1].1[2], leaves[1].1[3]]), 60);
    }
}
