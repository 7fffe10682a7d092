//! File contents, in inode order, each file's blocks followed by its map blocks (extent
//! leaves or indirect blocks). Contents read from the tree become copies for `write`, which
//! carry their map blocks; files given in memory become metadata blocks.

use super::numbering::Numbering;
use super::{DataCopy, Placed, Space};
use crate::alloc::{zip, Mapping};
use crate::ondisk::csum::inode_seed;
use crate::scan::{Kind, Tree};
use crate::{Ext4Error, BLOCK_SIZE};

pub(super) fn place(
    tree: &Tree,
    numbers: &Numbering,
    placed: &mut [Option<Placed>],
    space: &mut Space,
) -> Result<Vec<DataCopy>, Ext4Error> {
    let mut copies = Vec::new();
    for (i, n) in tree.nodes.iter().enumerate() {
        let Kind::File { size, data } = &n.kind else {
            continue;
        };
        let total: u64 = data.iter().map(|r| r.end - r.start).sum();
        let runs = space.alloc.alloc(total);
        let maps = zip(data, &runs);
        let iseed = space.csum_seed.map(|s| inode_seed(s, numbers.ino_of[i], 0));
        let (p, map_blocks) = space.build_map(&maps, iseed)?;
        placed[i] = Some(p);
        match &n.in_memory {
            None if total > 0 => copies.push(DataCopy {
                source: n.source.clone(),
                size: *size,
                maps,
                map_blocks,
            }),
            // Contents given in memory, and their map blocks, go with the metadata.
            in_memory => {
                if let Some(bytes) = in_memory {
                    space.metadata.extend(memory_blocks(bytes, &maps));
                }
                space.metadata.extend(map_blocks);
            }
        }
    }
    Ok(copies)
}

/// The blocks of a file held in memory, placed per `maps` (the last one zero-padded); they
/// are written with the metadata.
fn memory_blocks(bytes: &[u8], maps: &[Mapping]) -> Vec<(u64, Vec<u8>)> {
    let bs = BLOCK_SIZE as usize;
    let mut out = Vec::new();
    for m in maps {
        for k in 0..m.len {
            let from = ((m.logical + k) as usize * bs).min(bytes.len());
            let mut b = bytes[from..(from + bs).min(bytes.len())].to_vec();
            b.resize(bs, 0);
            out.push((m.physical + k, b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_file_blocks_are_padded() {
        let maps = [
            Mapping {
                logical: 0,
                physical: 100,
                len: 1,
            },
            Mapping {
                logical: 1,
                physical: 200,
                len: 1,
            },
        ];
        let bytes = vec![7u8; 4096 + 10];
        let b = memory_blocks(&bytes, &maps);
        assert_eq!((b[0].0, b[1].0), (100, 200));
        assert!(b[1].1[..10].iter().all(|&x| x == 7) && b[1].1[10..].iter().all(|&x| x == 0));
    }
}
