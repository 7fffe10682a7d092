//! Extended attributes: what fits in an inode stays there; the rest goes to one attribute
//! block per distinct set, shared by every inode with that set (h_refcount).

use super::Space;
use crate::ondisk::xattr::{self, Attr};
use crate::scan::Tree;
use crate::{Ext4Error, BLOCK_SIZE};
use std::collections::HashMap;

/// Per tree node: its in-inode attribute area (empty when none) and its attribute block.
pub struct XattrPlacement {
    pub in_inode: Vec<Vec<u8>>,
    pub block_of: Vec<Option<u64>>,
}

pub(super) fn place(
    tree: &Tree,
    room: usize,
    space: &mut Space,
) -> Result<XattrPlacement, Ext4Error> {
    let nodes = &tree.nodes;
    let mut in_inode: Vec<Vec<u8>> = vec![Vec::new(); nodes.len()];
    let mut set_of: Vec<Option<usize>> = vec![None; nodes.len()];
    // Distinct overflow sets in first-seen order, with their reference counts.
    let mut sets: Vec<(Vec<Attr>, u32)> = Vec::new();
    let mut index: HashMap<Vec<Attr>, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if n.xattrs.is_empty() {
            continue;
        }
        let attrs = n
            .xattrs
            .iter()
            .map(|(k, v)| Attr::from_full(k, v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Ext4Error::Invalid(format!("{}: {e}", n.source.display())))?;
        let (inside, rest) = xattr::place(attrs, room);
        in_inode[i] = inside;
        if rest.is_empty() {
            continue;
        }
        if !xattr::fits_block(&rest) {
            return Err(Ext4Error::Invalid(format!(
                "{}: extended attributes exceed one block",
                n.source.display()
            )));
        }
        let k = *index.entry(rest.clone()).or_insert_with(|| {
            sets.push((rest, 0));
            sets.len() - 1
        });
        sets[k].1 += 1;
        set_of[i] = Some(k);
    }
    let mut blocks = Vec::with_capacity(sets.len());
    for (attrs, refcount) in &sets {
        let blk = space.alloc.one();
        let mut b = xattr::block(attrs, *refcount);
        if let Some(s) = space.csum_seed {
            xattr::set_block_checksum(&mut b, s, blk);
        }
        debug_assert_eq!(b.len(), BLOCK_SIZE as usize);
        space.metadata.push((blk, b));
        blocks.push(blk);
    }
    Ok(XattrPlacement {
        in_inode,
        block_of: set_of.into_iter().map(|k| k.map(|k| blocks[k])).collect(),
    })
}
