//! ext2/ext3-style block maps (12 direct pointers, then single, double and triple indirect
//! blocks), for inodes without EXT4_EXTENTS_FL.

use super::csum::{le32, put32};
use super::extents::Run;
use super::fs::{BlockKind, Fs, Phase};
use super::inode::Inode;
use super::EditError;

const DIRECT: u64 = 12;

impl Fs<'_> {
    /// Mapped runs of a block-mapped inode, and its indirect blocks.
    pub(crate) fn blockmap_map(&self, inode: &Inode) -> Result<(Vec<Run>, Vec<u64>), EditError> {
        let per = self.sb.block_size / 4;
        let mut runs: Vec<Run> = Vec::new();
        let mut meta = Vec::new();
        let ib = inode.i_block();
        let mut push = |logical: u64, phys: u64| match runs.last_mut() {
            Some(r) if r.logical + r.len == logical && r.phys + r.len == phys => r.len += 1,
            _ => runs.push(Run { logical, phys, len: 1, uninit: false }),
        };
        for i in 0..DIRECT {
            let p = u64::from(le32(ib, 4 * i as usize));
            if p != 0 {
                push(i, p);
            }
        }
        let mut base = DIRECT;
        for (level, slot) in [(1u32, 12usize), (2, 13), (3, 14)] {
            let p = u64::from(le32(ib, 4 * slot));
            if p != 0 {
                self.walk_indirect(p, level, base, &mut meta, &mut push)?;
            }
            base += per.pow(level);
        }
        Ok((runs, meta))
    }

    fn walk_indirect(&self, blk: u64, level: u32, base: u64, meta: &mut Vec<u64>, push: &mut dyn FnMut(u64, u64)) -> Result<(), EditError> {
        let per = self.sb.block_size / 4;
        meta.push(blk);
        let b = self.read_block(blk)?;
        let span = per.pow(level - 1);
        for i in 0..per {
            let p = u64::from(le32(&b, 4 * i as usize));
            if p == 0 {
                continue;
            }
            if level == 1 {
                push(base + i, p);
            } else {
                self.walk_indirect(p, level - 1, base + i * span, meta, push)?;
            }
        }
        Ok(())
    }

    /// Point a fresh inode's block map at `runs` (logical blocks 0..). Returns the count of
    /// indirect blocks allocated (they count in i_blocks). Up to double indirection.
    pub(crate) fn build_blockmap(&mut self, inode: &mut Inode, runs: &[(u64, u64)]) -> Result<u64, EditError> {
        let per = self.sb.block_size / 4;
        let blocks: Vec<u64> = runs.iter().flat_map(|&(s, c)| s..s + c).collect();
        let n = blocks.len() as u64;
        if n > DIRECT + per + per * per {
            return Err(EditError::Unsupported(format!(
                "{n} blocks need triple-indirect mapping, which the editor does not write"
            )));
        }
        let single = u64::from(n > DIRECT);
        let double_leaves = n.saturating_sub(DIRECT + per).div_ceil(per);
        let double = if double_leaves > 0 { 1 + double_leaves } else { 0 };
        let meta_n = single + double;
        let goal = blocks.last().map_or(0, |b| b + 1);
        let mut meta: Vec<u64> = self.alloc_blocks(goal, meta_n)?.into_iter().flat_map(|(s, c)| s..s + c).collect();
        meta.reverse();
        let bs = self.bs();
        let ib = inode.i_block_mut();
        ib.fill(0);
        for (i, &b) in blocks.iter().take(DIRECT as usize).enumerate() {
            put32(ib, 4 * i, b as u32);
        }
        let mut rest = blocks.iter().skip(DIRECT as usize).copied();
        let mut take_leaf = |fs: &mut Fs, meta: &mut Vec<u64>| -> u64 {
            let blk = meta.pop().expect("counted");
            let mut node = vec![0u8; bs];
            for i in 0..per as usize {
                match rest.next() {
                    Some(b) => put32(&mut node, 4 * i, b as u32),
                    None => break,
                }
            }
            fs.put_block(blk, Phase::Unreferenced, BlockKind::Plain, node);
            blk
        };
        let mut slots = [0u64; 2];
        if single == 1 {
            slots[0] = take_leaf(self, &mut meta);
        }
        if double > 0 {
            let dblk = meta.pop().expect("counted");
            let mut dnode = vec![0u8; bs];
            for i in 0..double_leaves as usize {
                let leaf = take_leaf(self, &mut meta);
                put32(&mut dnode, 4 * i, leaf as u32);
            }
            self.put_block(dblk, Phase::Unreferenced, BlockKind::Plain, dnode);
            slots[1] = dblk;
        }
        let ib = inode.i_block_mut();
        put32(ib, 48, slots[0] as u32);
        put32(ib, 52, slots[1] as u32);
        Ok(meta_n)
    }

    /// Map one more directory block at logical `logical`. Returns indirect blocks added.
    pub(crate) fn append_blockmap(&mut self, inode: &mut Inode, logical: u64, phys: u64) -> Result<u64, EditError> {
        let per = self.sb.block_size / 4;
        if logical < DIRECT {
            put32(inode.i_block_mut(), 4 * logical as usize, phys as u32);
            return Ok(0);
        }
        if logical >= DIRECT + per {
            return Err(EditError::Unsupported(format!(
                "inode {}: growing a block-mapped directory past {} blocks is not supported",
                inode.ino,
                DIRECT + per
            )));
        }
        let ind = u64::from(le32(inode.i_block(), 48));
        let (blk, mut node, phase, added) = if ind == 0 {
            let b = self.alloc_blocks(phys + 1, 1)?[0].0;
            (b, vec![0u8; self.bs()], Phase::Unreferenced, 1)
        } else {
            (ind, self.read_block(ind)?, Phase::Link, 0)
        };
        put32(&mut node, 4 * (logical - DIRECT) as usize, phys as u32);
        self.put_block(blk, phase, BlockKind::Plain, node);
        put32(inode.i_block_mut(), 48, blk as u32);
        Ok(added)
    }
}
