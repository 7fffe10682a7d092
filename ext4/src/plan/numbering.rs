//! Inode numbers: the root is 2, lost+found 11 (the first non-reserved inode), the rest of
//! the tree breadth-first from 12 in scan order, so the numbering is a function of the tree.

use crate::geometry::Geometry;
use crate::ondisk::inode::{EXT2_GOOD_OLD_FIRST_INO, EXT2_ROOT_INO};
use crate::scan::Tree;
use crate::Ext4Error;

/// lost+found's inode number.
pub const LOST_FOUND_INO: u32 = EXT2_GOOD_OLD_FIRST_INO;

pub struct Numbering {
    /// Inode number of each tree node.
    pub ino_of: Vec<u32>,
    /// The tree's own /lost+found (node index), if it has one; else the writer makes it.
    pub lost_found: Option<usize>,
    /// Highest inode number in use (inodes 1..=max_ino are allocated).
    pub max_ino: u32,
}

pub fn number(tree: &Tree, geo: &Geometry) -> Result<Numbering, Ext4Error> {
    let nodes = &tree.nodes;
    let lost_found = nodes[0]
        .children
        .iter()
        .find(|(n, _)| n == b"lost+found")
        .map(|&(_, i)| i);
    if let Some(i) = lost_found {
        if !nodes[i].is_dir() {
            return Err(Ext4Error::Invalid(
                "the tree's /lost+found is not a directory".into(),
            ));
        }
    }
    let mut ino_of = vec![0u32; nodes.len()];
    let mut next = LOST_FOUND_INO + 1;
    for (i, slot) in ino_of.iter_mut().enumerate() {
        *slot = if i == 0 {
            EXT2_ROOT_INO
        } else if Some(i) == lost_found {
            LOST_FOUND_INO
        } else {
            next += 1;
            next - 1
        };
    }
    let max_ino = next - 1;
    if max_ino as u64 > geo.inodes_count() {
        return Err(Ext4Error::TooManyInodes {
            needed: max_ino as u64,
            available: geo.inodes_count(),
        });
    }
    Ok(Numbering {
        ino_of,
        lost_found,
        max_ino,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{Kind, Node};
    use std::path::PathBuf;

    fn node(kind: Kind, parent: usize, children: &[(&str, usize)]) -> Node {
        Node {
            kind,
            perm: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
            mtime_nsec: 0,
            xattrs: Vec::new(),
            source: PathBuf::new(),
            in_memory: None,
            names: 1,
            children: children
                .iter()
                .map(|(n, i)| (n.as_bytes().to_vec(), *i))
                .collect(),
            parent,
        }
    }

    #[test]
    fn root_lost_found_then_breadth_first() {
        let file = || Kind::File {
            size: 0,
            data: Vec::new(),
        };
        let tree = Tree {
            nodes: vec![
                node(Kind::Dir, 0, &[("a", 1), ("lost+found", 2), ("z", 3)]),
                node(file(), 0, &[]),
                node(Kind::Dir, 0, &[]),
                node(file(), 0, &[]),
            ],
            ..Tree::empty(0)
        };
        let geo = Geometry::new(64 << 20, 256, 16384, 64, false).unwrap();
        let n = number(&tree, &geo).unwrap();
        assert_eq!(n.ino_of, vec![2, 12, 11, 13]);
        assert_eq!((n.lost_found, n.max_ino), (Some(2), 13));
        let tiny = Geometry::new(1 << 20, 256, 1 << 20, 64, false).unwrap();
        let mut big = tree.clone();
        for i in 0..tiny.inodes_count() as usize {
            big.nodes.push(node(file(), 0, &[]));
            let idx = big.nodes.len() - 1;
            big.nodes[0]
                .children
                .push((format!("f{i}").into_bytes(), idx));
        }
        assert!(matches!(
            number(&big, &tiny),
            Err(Ext4Error::TooManyInodes { .. })
        ));
    }
}
