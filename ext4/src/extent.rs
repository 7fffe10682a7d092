//! Extent trees for new files: the root in i_block holds up to 4 entries; larger maps get
//! leaf blocks of 340 extents, and index blocks of 340 entries above them as needed.

use super::alloc::Mapping;
use super::ondisk::extent::{
    block_max, set_tail_checksum, Extent, ExtentHeader, ExtentIdx, EXT4_MAX_EXTENT_DEPTH,
    EXT_INIT_MAX_LEN, ROOT_MAX,
};
use super::{Ext4Error, BLOCK_SIZE};

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

/// Tree blocks (leaves and index blocks) needed for `n` extents.
pub fn leaves_needed(n: usize) -> Result<u64, Ext4Error> {
    let (mut total, mut level, mut depth) = (0usize, n, 0u16);
    while level > ROOT_MAX as usize {
        level = level.div_ceil(LEAF_MAX);
        total += level;
        depth += 1;
    }
    if depth > EXT4_MAX_EXTENT_DEPTH {
        return Err(Ext4Error::Invalid(format!(
            "a file needs {n} extents, more than an extent tree holds"
        )));
    }
    Ok(total as u64)
}

fn header(node: &mut [u8], entries: usize, max: u16, depth: u16) {
    ExtentHeader {
        entries: entries as u16,
        max,
        depth,
    }
    .encode_into(node);
}

fn leaf_entry(node: &mut [u8], i: usize, e: &Mapping) {
    Extent {
        block: e.logical as u32,
        len: e.len as u16,
        start: e.physical,
    }
    .encode_into(node, i);
}

fn index_entry(node: &mut [u8], i: usize, first: u64, blk: u64) {
    ExtentIdx {
        block: first as u32,
        leaf: blk,
    }
    .encode_into(node, i);
}

/// The i_block root and the tree blocks `(block number, bytes)`. `blocks` are the blocks
/// allocated for the tree (`leaves_needed` of them: leaves first, then each index level);
/// `csum` is the inode's checksum seed.
pub fn build(
    exts: &[Mapping],
    blocks: &[u64],
    csum: Option<u32>,
) -> ([u8; 60], Vec<(u64, Vec<u8>)>) {
    let mut root = [0u8; 60];
    if blocks.is_empty() {
        header(&mut root, exts.len(), ROOT_MAX, 0);
        for (i, e) in exts.iter().enumerate() {
            leaf_entry(&mut root, i, e);
        }
        return (root, Vec::new());
    }
    let max = block_max(BLOCK_SIZE as usize);
    let seal = |b: &mut [u8]| {
        if let Some(seed) = csum {
            set_tail_checksum(b, seed);
        }
    };
    let mut free = blocks.iter().copied();
    let mut out = Vec::new();
    // Leaves, then index levels until the root's four slots suffice.
    let mut level: Vec<(u64, u64)> = Vec::new();
    for chunk in exts.chunks(LEAF_MAX) {
        let blk = free.next().expect("enough tree blocks");
        let mut b = vec![0u8; BLOCK_SIZE as usize];
        header(&mut b, chunk.len(), max, 0);
        for (j, e) in chunk.iter().enumerate() {
            leaf_entry(&mut b, j, e);
        }
        seal(&mut b);
        out.push((blk, b));
        level.push((chunk[0].logical, blk));
    }
    let mut depth = 1u16;
    while level.len() > ROOT_MAX as usize {
        let mut up = Vec::new();
        for chunk in level.chunks(LEAF_MAX) {
            let blk = free.next().expect("enough tree blocks");
            let mut b = vec![0u8; BLOCK_SIZE as usize];
            header(&mut b, chunk.len(), max, depth);
            for (j, &(first, child)) in chunk.iter().enumerate() {
                index_entry(&mut b, j, first, child);
            }
            seal(&mut b);
            out.push((blk, b));
            up.push((chunk[0].0, blk));
        }
        level = up;
        depth += 1;
    }
    header(&mut root, level.len(), ROOT_MAX, depth);
    for (i, &(first, blk)) in level.iter().enumerate() {
        index_entry(&mut root, i, first, blk);
    }
    (root, out)
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
    fn depth_two_tree() {
        // 2000 extents: 6 leaves, which need one index block under the root.
        let exts: Vec<Mapping> = (0..2000)
            .map(|i| Mapping {
                logical: i * 2,
                physical: 9000 + i * 2,
                len: 1,
            })
            .collect();
        let n = leaves_needed(exts.len()).unwrap();
        assert_eq!(n, 7);
        let blocks: Vec<u64> = (100..100 + n).collect();
        let (root, tree) = build(&exts, &blocks, None);
        assert_eq!(u16::from_le_bytes([root[6], root[7]]), 2);
        assert_eq!(u16::from_le_bytes([root[2], root[3]]), 1);
        let index = &tree[6].1;
        assert_eq!(
            (
                u16::from_le_bytes([index[2], index[3]]),
                u16::from_le_bytes([index[6], index[7]])
            ),
            (6, 1)
        );
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
