//! Extent trees: mapping a file's logical blocks to physical runs, building a tree for new
//! data (in the inode, or depth 1 with leaf blocks when more than four extents are needed),
//! and appending one block to a directory.

use super::csum::{le16, le32, put16, put32};
use super::fs::{BlockKind, Fs, Phase};
use super::inode::Inode;
use super::EditError;

const EXT4_EXT_MAGIC: u16 = 0xF30A;
/// Longest initialized extent (ee_len above this marks an uninitialized extent).
const EXT_INIT_MAX_LEN: u64 = 32768;
const ROOT_MAX: u16 = 4;

/// A mapped piece of a file: `len` blocks from logical block `logical` at physical `phys`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub logical: u64,
    pub phys: u64,
    pub len: u64,
    /// Uninitialized (preallocated) extent: reads as zeros.
    pub uninit: bool,
}

struct Header {
    entries: u16,
    max: u16,
    depth: u16,
}

fn header(node: &[u8], what: &dyn Fn() -> String) -> Result<Header, EditError> {
    if le16(node, 0) != EXT4_EXT_MAGIC {
        return Err(EditError::Corrupt(format!(
            "{}: bad extent header magic",
            what()
        )));
    }
    let h = Header {
        entries: le16(node, 2),
        max: le16(node, 4),
        depth: le16(node, 6),
    };
    if h.entries > h.max || 12 + 12 * h.max as usize > node.len() || h.depth > 5 {
        return Err(EditError::Corrupt(format!(
            "{}: extent header out of range",
            what()
        )));
    }
    Ok(h)
}

fn index_child(node: &[u8], i: usize) -> u64 {
    let at = 12 + 12 * i;
    u64::from(le32(node, at + 4)) | u64::from(le16(node, at + 8)) << 32
}

fn leaf_extent(node: &[u8], i: usize) -> Run {
    let at = 12 + 12 * i;
    let raw_len = u64::from(le16(node, at + 4));
    let (len, uninit) = if raw_len > EXT_INIT_MAX_LEN {
        (raw_len - EXT_INIT_MAX_LEN, true)
    } else {
        (raw_len, false)
    };
    Run {
        logical: u64::from(le32(node, at)),
        phys: u64::from(le32(node, at + 8)) | u64::from(le16(node, at + 6)) << 32,
        len,
        uninit,
    }
}

fn put_extent(node: &mut [u8], i: usize, logical: u64, phys: u64, len: u64) {
    let at = 12 + 12 * i;
    put32(node, at, logical as u32);
    put16(node, at + 4, len as u16);
    put16(node, at + 6, (phys >> 32) as u16);
    put32(node, at + 8, phys as u32);
}

fn put_index(node: &mut [u8], i: usize, logical: u64, child: u64) {
    let at = 12 + 12 * i;
    put32(node, at, logical as u32);
    put32(node, at + 4, child as u32);
    put16(node, at + 8, (child >> 32) as u16);
    put16(node, at + 10, 0);
}

fn put_header(node: &mut [u8], entries: u16, max: u16, depth: u16) {
    put16(node, 0, EXT4_EXT_MAGIC);
    put16(node, 2, entries);
    put16(node, 4, max);
    put16(node, 6, depth);
    put32(node, 8, 0);
}

/// Entries that fit in an extent tree block (the 4 bytes left over hold the checksum tail).
fn block_max(bs: usize) -> u16 {
    ((bs - 12) / 12) as u16
}

impl Fs<'_> {
    /// All mapped runs of an extent-mapped inode, and the tree blocks (index and leaf nodes).
    pub(crate) fn extent_map(&self, inode: &Inode) -> Result<(Vec<Run>, Vec<u64>), EditError> {
        let mut runs = Vec::new();
        let mut nodes = Vec::new();
        let ino = inode.ino;
        self.walk(inode.i_block(), &mut runs, &mut nodes, &|| {
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
                let child = index_child(node, i);
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
        let root = inode.i_block_mut();
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
        let root = inode.i_block_mut();
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
        let h = header(inode.i_block(), &what)?;
        let seed = inode.csum_seed(&self.sb);
        if h.depth == 0 {
            if try_append(inode.i_block_mut(), &h, logical, phys) {
                return Ok(0);
            }
            // Root full: move its extents into a new leaf block, the root becomes an index.
            let leaf_blk = self.alloc_blocks(phys + 1, 1)?[0].0;
            let max = block_max(self.bs());
            let mut node = vec![0u8; self.bs()];
            put_header(&mut node, h.entries, max, 0);
            node[12..12 + 12 * h.entries as usize]
                .copy_from_slice(&inode.i_block()[12..12 + 12 * h.entries as usize]);
            let lh = Header {
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
            let first_logical = u64::from(le32(inode.i_block(), 12));
            let root = inode.i_block_mut();
            root.fill(0);
            put_header(root, 1, ROOT_MAX, 1);
            put_index(root, 0, first_logical.min(logical), leaf_blk);
            return Ok(1);
        }
        // Descend along the last index entries to the rightmost leaf.
        let mut node = inode.i_block().to_vec();
        let mut nh = h;
        let mut blk = 0;
        while nh.depth > 0 {
            blk = index_child(&node, nh.entries as usize - 1);
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
fn try_append(node: &mut [u8], h: &Header, logical: u64, phys: u64) -> bool {
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
        put16(node, 2, h.entries + 1);
        return true;
    }
    false
}
