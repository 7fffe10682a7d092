//! ext2 block maps for new files: 12 direct pointers in i_block, then single, double and triple indirect
//! blocks (EXT2_IND_BLOCK, EXT2_DIND_BLOCK, EXT2_TIND_BLOCK). Holes are zero pointers.

use super::alloc::Mapping;
use super::ondisk::inode::{EXT2_DIND_BLOCK, EXT2_IND_BLOCK, EXT2_TIND_BLOCK};
use super::BLOCK_SIZE;
use std::collections::BTreeMap;

const EXT2_NDIR_BLOCKS: u64 = super::ondisk::inode::EXT2_NDIR_BLOCKS as u64;
const PTRS: u64 = BLOCK_SIZE / 4;

/// The chain of (indirect block key, slot) pairs that leads to logical block `l`. Keys name
/// indirect blocks by their position in the tree: [slot in i_block, index, index...].
fn path(l: u64) -> Option<(usize, Vec<u64>)> {
    if l < EXT2_NDIR_BLOCKS {
        return None;
    }
    let mut x = l - EXT2_NDIR_BLOCKS;
    if x < PTRS {
        return Some((EXT2_IND_BLOCK, vec![x]));
    }
    x -= PTRS;
    if x < PTRS * PTRS {
        return Some((EXT2_DIND_BLOCK, vec![x / PTRS, x % PTRS]));
    }
    x -= PTRS * PTRS;
    Some((
        EXT2_TIND_BLOCK,
        vec![x / (PTRS * PTRS), (x / PTRS) % PTRS, x % PTRS],
    ))
}

/// Indirect blocks needed to map `maps`.
fn keys(maps: &[Mapping]) -> Vec<Vec<u64>> {
    let mut set = std::collections::BTreeSet::new();
    for m in maps {
        for l in m.logical..m.logical + m.len {
            if let Some((slot, idx)) = path(l) {
                for depth in 0..idx.len() {
                    let mut k = vec![slot as u64];
                    k.extend_from_slice(&idx[..depth]);
                    set.insert(k);
                }
            }
        }
    }
    set.into_iter().collect()
}

/// Number of indirect blocks `maps` needs.
pub fn blocks_needed(maps: &[Mapping]) -> u64 {
    keys(maps).len() as u64
}

/// The i_block array and the indirect blocks `(block number, bytes)`, using `blocks`
/// (`blocks_needed` of them, in order).
pub fn build(maps: &[Mapping], blocks: &[u64]) -> ([u8; 60], Vec<(u64, Vec<u8>)>) {
    let keys = keys(maps);
    let mut at: BTreeMap<Vec<u64>, (u64, Vec<u8>)> = keys
        .into_iter()
        .zip(blocks)
        .map(|(k, &b)| (k, (b, vec![0u8; BLOCK_SIZE as usize])))
        .collect();
    let mut iblock = [0u8; 60];
    let put = |buf: &mut [u8], slot: u64, v: u64| {
        let o = slot as usize * 4;
        buf[o..o + 4].copy_from_slice(&(v as u32).to_le_bytes());
    };
    // Point i_block and every indirect block at its children.
    let links: Vec<(Vec<u64>, u64)> = at.iter().map(|(k, (b, _))| (k.clone(), *b)).collect();
    for (k, b) in links {
        if k.len() == 1 {
            put(&mut iblock, k[0], b);
        } else {
            let parent = &k[..k.len() - 1];
            let slot = k[k.len() - 1];
            put(&mut at.get_mut(parent).expect("parent key").1, slot, b);
        }
    }
    for m in maps {
        for i in 0..m.len {
            let l = m.logical + i;
            let p = m.physical + i;
            match path(l) {
                None => put(&mut iblock, l, p),
                Some((slot, idx)) => {
                    let mut k = vec![slot as u64];
                    k.extend_from_slice(&idx[..idx.len() - 1]);
                    put(
                        &mut at.get_mut(&k).expect("leaf key").1,
                        idx[idx.len() - 1],
                        p,
                    );
                }
            }
        }
    }
    (iblock, at.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_indirect_blocks() {
        let small = [Mapping {
            logical: 0,
            physical: 100,
            len: 12,
        }];
        assert_eq!(blocks_needed(&small), 0);
        let ind = [Mapping {
            logical: 0,
            physical: 100,
            len: 13,
        }];
        assert_eq!(blocks_needed(&ind), 1);
        // 12 + 1024 + 1: needs IND, DIND and one block under DIND.
        let dind = [Mapping {
            logical: 0,
            physical: 100,
            len: 12 + 1024 + 1,
        }];
        assert_eq!(blocks_needed(&dind), 3);
        let (ib, blocks) = build(&dind, &[7, 8, 9]);
        assert_eq!(u32::from_le_bytes(ib[48..52].try_into().unwrap()), 7);
        assert_eq!(u32::from_le_bytes(ib[52..56].try_into().unwrap()), 8);
        // DIND's first slot points at block 9, whose first slot maps logical 1036.
        assert_eq!(u32::from_le_bytes(blocks[1].1[0..4].try_into().unwrap()), 9);
        assert_eq!(
            u32::from_le_bytes(blocks[2].1[0..4].try_into().unwrap()),
            100 + 1036
        );
    }

    #[test]
    fn sparse_far_block_uses_triple_indirect() {
        let l = 12 + 1024 + 1024 * 1024 + 5;
        let m = [Mapping {
            logical: l,
            physical: 50,
            len: 1,
        }];
        assert_eq!(blocks_needed(&m), 3);
    }
}
