//! Extent trees: mapping a file's logical blocks to physical runs, building a tree for new
//! data (in the inode, or depth 1 with leaf blocks when more than four extents are needed),
//! and appending one block to a directory.

use super::fs::{BlockKind, Fs, Phase};
use super::inode::Inode;
use super::run::Run;
use super::EditError;
use crate::ondisk::extent::{
    block_max, Extent, ExtentHeader, ExtentIdx, EXT_INIT_MAX_LEN, ROOT_MAX,
};

fn header(node: &[u8], what: &dyn Fn() -> String) -> Result<ExtentHeader, EditError> {
    ExtentHeader::decode(node).ok_or_else(|| {
        EditError::Corrupt(format!(
            "{}: bad extent header (magic or counts out of range)",
            what()
        ))
    })
}

fn leaf_extent(node: &[u8], i: usize) -> Run {
    let e = Extent::decode(node, i);
    Run {
        logical: u64::from(e.block),
        phys: e.start,
        len: e.length(),
        uninit: e.is_uninit(),
    }
}

fn put_extent(node: &mut [u8], i: usize, logical: u64, phys: u64, len: u64) {
    Extent {
        block: logical as u32,
        len: len as u16,
        start: phys,
    }
    .encode_into(node, i);
}

fn put_index(node: &mut [u8], i: usize, logical: u64, child: u64) {
    ExtentIdx {
        block: logical as u32,
        leaf: child,
    }
    .encode_into(node, i);
}

fn put_header(node: &mut [u8], entries: u16, max: u16, depth: u16) {
    ExtentHeader {
        entries,
        max,
        depth,
    }
    .encode_into(node);
}

impl Fs<'_> {
    /// All mapped runs of an extent-mapped inode, and the tree blocks (index and leaf nodes).
    pub(crate) fn extent_map(&self, inode: &Inode) -> Result<(Vec<Run>, Vec<u64>), EditError> {
        let mut runs = Vec::new();
        let mut nodes = Vec::new();
        let ino = inode.ino;
        self.walk(&inode.f.block, &mut runs, &mut nodes, &|| {
            format!("inode {ino} extent root")
        })?;
        Ok((runs, nodes))
    }

    fn walk(
        &self,
        node: &[u8],
        runs: &mut Vec<Run>,
        nodes: &mut Vec<u64>,
        what: &dyn Fn() -> String,
    ) -> Result<(), EditError> {
        let h = header(node, what)?;
        for i in 0..h.entries as usize {
            if h.depth == 0 {
                runs.push(leaf_extent(node, i));
            } else {
                let child = ExtentIdx::decode(node, i).leaf;
                nodes.push(child);
                if nodes.len() > 1 << 20 {
                    return Err(EditError::Corrupt(format!("{}: extent tree loops", what())));
                }
                let block = self.read_block(child)?;
                self.walk(&block, runs, nodes, &|| format!("extent block {child}"))?;
            }
        }
        Ok(())
    }

    /// Make `inode`'s extent tree map `runs` (physical start, count) to logical blocks 0...
    /// Returns how many tree blocks it allocated (they count in i_blocks).
    pub(crate) fn build_extents(
        &mut self,
        inode: &mut Inode,
        runs: &[(u64, u64)],
    ) -> Result<u64, EditError> {
        let mut extents = Vec::new();
        let mut logical = 0u64;
        for &(mut phys, mut count) in runs {
            while count > 0 {
                let n = count.min(EXT_INIT_MAX_LEN);
                extents.push((logical, phys, n));
                logical += n;
                phys += n;
                count -= n;
            }
        }
        if logical > u64::from(u32::MAX) {
            return Err(EditError::Unsupported(
                "file larger than 2^32 blocks".into(),
            ));
        }
        let root = &mut inode.f.block;
        root.fill(0);
        if extents.len() <= ROOT_MAX as usize {
            put_header(root, extents.len() as u16, ROOT_MAX, 0);
            for (i, &(l, p, n)) in extents.iter().enumerate() {
                put_extent(root, i, l, p, n);
            }
            return Ok(0);
        }
        let per_leaf = block_max(self.bs()) as usize;
        let leaves = extents.len().div_ceil(per_leaf);
        if leaves > ROOT_MAX as usize {
            return Err(EditError::Unsupported(format!(
                "the data is too fragmented: {} extents need more than one level of index",
                extents.len()
            )));
        }
        let goal = extents[0].1;
        let mut leaf_blocks = Vec::new();
        for (start, count) in self.alloc_blocks(goal, leaves as u64)? {
            leaf_blocks.extend(start..start + count);
        }
        let seed = inode.csum_seed(&self.sb);
        let mut root_entries = Vec::new();
        for (chunk, &blk) in extents.chunks(per_leaf).zip(&leaf_blocks) {
            let mut node = vec![0u8; self.bs()];
            put_header(&mut node, chunk.len() as u16, per_leaf as u16, 0);
            for (i, &(l, p, n)) in chunk.iter().enumerate() {
                put_extent(&mut node, i, l, p, n);
            }
            self.put_block(
                blk,
                Phase::Unreferenced,
                BlockKind::ExtentNode { seed },
                node,
            );
            root_entries.push((chunk[0].0, blk));
        }
        let root = &mut inode.f.block;
        put_header(root, root_entries.len() as u16, ROOT_MAX, 1);
        for (i, &(l, b)) in root_entries.iter().enumerate() {
            put_index(root, i, l, b);
        }
        Ok(leaves as u64)
    }

    /// Map one more block (`logical` = the current end) at `phys` into a directory's extent
    /// tree, extending the last extent when contiguous. Returns tree blocks added (0 or 1).
    pub(crate) fn append_extent(
        &mut self,
        inode: &mut Inode,
        logical: u64,
        phys: u64,
    ) -> Result<u64, EditError> {
        let ino = inode.ino;
        let what = || format!("inode {ino} extent root");
        let h = header(&inode.f.block, &what)?;
        let seed = inode.csum_seed(&self.sb);
        if h.depth == 0 {
            if try_append(&mut inode.f.block, &h, logical, phys) {
                return Ok(0);
            }
            // Root full: move its extents into a new leaf block, the root becomes an index.
            let leaf_blk = self.alloc_blocks(phys + 1, 1)?[0].0;
            let max = block_max(self.bs());
            let mut node = vec![0u8; self.bs()];
            put_header(&mut node, h.entries, max, 0);
            node[12..12 + 12 * h.entries as usize]
                .copy_from_slice(&inode.f.block[12..12 + 12 * h.entries as usize]);
            let lh = ExtentHeader {
                entries: h.entries,
                max,
                depth: 0,
            };
            if !try_append(&mut node, &lh, logical, phys) {
                return Err(EditError::Unsupported(format!(
                    "inode {ino}: cannot append to its extent tree"
                )));
            }
            self.put_block(
                leaf_blk,
                Phase::Unreferenced,
                BlockKind::ExtentNode { seed },
                node,
            );
            let first_logical = u64::from(Extent::decode(&inode.f.block, 0).block);
            let root = &mut inode.f.block;
            root.fill(0);
            put_header(root, 1, ROOT_MAX, 1);
            put_index(root, 0, first_logical.min(logical), leaf_blk);
            return Ok(1);
        }
        // Descend along the last index entries to the rightmost leaf.
        let mut node = inode.f.block.to_vec();
        let mut nh = h;
        let mut blk = 0;
        while nh.depth > 0 {
            blk = ExtentIdx::decode(&node, nh.entries as usize - 1).leaf;
            node = self.read_block(blk)?;
            nh = header(&node, &|| format!("extent block {blk}"))?;
        }
        if !try_append(&mut node, &nh, logical, phys) {
            return Err(EditError::Unsupported(format!(
                "inode {ino}: its last extent leaf (block {blk}) is full; growing deeper trees is not supported"
            )));
        }
        self.put_block(blk, Phase::Link, BlockKind::ExtentNode { seed }, node);
        Ok(0)
    }
}

/// Extend the last extent of a leaf node, or add an extent when there is room.
fn try_append(node: &mut [u8], h: &ExtentHeader, logical: u64, phys: u64) -> bool {
    if h.entries > 0 {
        let last = leaf_extent(node, h.entries as usize - 1);
        if !last.uninit
            && last.logical + last.len == logical
            && last.phys + last.len == phys
            && last.len < EXT_INIT_MAX_LEN
        {
            put_extent(
                node,
                h.entries as usize - 1,
                last.logical,
                last.phys,
                last.len + 1,
            );
            return true;
        }
    }
    if h.entries < h.max {
        put_extent(node, h.entries as usize, logical, phys, 1);
        ExtentHeader {
            entries: h.entries + 1,
            ..*h
        }
        .encode_into(node);
        return true;
    }
    false
}
