//! ext2/ext3-style block maps (12 direct pointers, then single, double and triple indirect
//! blocks), for inodes without EXT4_EXTENTS_FL.

use super::fs::{BlockKind, Fs, Phase};
use super::inode::Inode;
use super::run::Run;
use super::EditError;
use crate::ondisk::inode::{EXT2_DIND_BLOCK, EXT2_IND_BLOCK, EXT2_NDIR_BLOCKS, EXT2_TIND_BLOCK};
use crate::ondisk::le::{get32 as le32, put32};

const DIRECT: u64 = EXT2_NDIR_BLOCKS as u64;

impl Fs<'_> {
    /// Mapped runs of a block-mapped inode, and its indirect blocks.
    pub(crate) fn blockmap_map(&self, inode: &Inode) -> Result<(Vec<Run>, Vec<u64>), EditError> {
        let per = self.sb.block_size / 4;
        let mut runs: Vec<Run> = Vec::new();
        let mut meta = Vec::new();
        let ib = &inode.f.block;
        let mut push = |logical: u64, phys: u64| match runs.last_mut() {
            Some(r) if r.logical + r.len == logical && r.phys + r.len == phys => r.len += 1,
            _ => runs.push(Run {
                logical,
                phys,
                len: 1,
                uninit: false,
            }),
        };
        for i in 0..DIRECT {
            let p = u64::from(le32(ib, 4 * i as usize));
            if p != 0 {
                push(i, p);
            }
        }
        let mut base = DIRECT;
        for (level, slot) in [
            (1u32, EXT2_IND_BLOCK),
            (2, EXT2_DIND_BLOCK),
            (3, EXT2_TIND_BLOCK),
        ] {
            let p = u64::from(le32(ib, 4 * slot));
            if p != 0 {
                self.walk_indirect(p, level, base, &mut meta, &mut push)?;
            }
            base += per.pow(level);
        }
        Ok((runs, meta))
    }

    fn walk_indirect(
        &self,
        blk: u64,
        level: u32,
        base: u64,
        meta: &mut Vec<u64>,
        push: &mut dyn FnMut(u64, u64),
    ) -> Result<(), EditError> {
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
    /// indirect blocks allocated (they count in i_blocks).
    pub(crate) fn build_blockmap(
        &mut self,
        inode: &mut Inode,
        runs: &[(u64, u64)],
    ) -> Result<u64, EditError> {
        let per = self.sb.block_size / 4;
        let blocks: Vec<u64> = runs.iter().flat_map(|&(s, c)| s..s + c).collect();
        let n = blocks.len() as u64;
        if n > DIRECT + per + per * per + per * per * per {
            return Err(EditError::Unsupported(format!(
                "{n} blocks are more than a block map can address"
            )));
        }
        // Data blocks each indirection level covers, after the direct ones.
        let mut left = n.saturating_sub(DIRECT);
        let mut spans = Vec::new();
        for level in 1..=3u32 {
            let k = left.min(per.pow(level));
            spans.push(k);
            left -= k;
        }
        let meta_n: u64 = spans
            .iter()
            .enumerate()
            .map(|(i, &k)| meta_count(i as u32 + 1, k, per))
            .sum();
        let goal = blocks.last().map_or(0, |b| b + 1);
        let mut meta: Vec<u64> = self
            .alloc_blocks(goal, meta_n)?
            .into_iter()
            .flat_map(|(s, c)| s..s + c)
            .collect();
        meta.reverse();
        let ib = &mut inode.f.block;
        ib.fill(0);
        for (i, &b) in blocks.iter().take(DIRECT as usize).enumerate() {
            put32(ib, 4 * i, b as u32);
        }
        let mut data = blocks.iter().skip(DIRECT as usize).copied();
        let mut slots = [0u64; 3];
        for (i, &k) in spans.iter().enumerate() {
            if k > 0 {
                slots[i] = self.fill_indirect(i as u32 + 1, k, &mut data, &mut meta);
            }
        }
        let ib = &mut inode.f.block;
        for (i, s) in slots.iter().enumerate() {
            put32(ib, 4 * (EXT2_IND_BLOCK + i), *s as u32);
        }
        Ok(meta_n)
    }

    /// Write one indirect block of `level` covering the next `k` data blocks; returns it.
    fn fill_indirect(
        &mut self,
        level: u32,
        k: u64,
        data: &mut dyn Iterator<Item = u64>,
        meta: &mut Vec<u64>,
    ) -> u64 {
        let per = self.sb.block_size / 4;
        let blk = meta.pop().expect("counted by meta_count");
        let mut node = vec![0u8; self.bs()];
        if level == 1 {
            for (i, b) in data.take(k as usize).enumerate() {
                put32(&mut node, 4 * i, b as u32);
            }
        } else {
            let span = per.pow(level - 1);
            let mut left = k;
            let mut i = 0;
            while left > 0 {
                let c = left.min(span);
                let child = self.fill_indirect(level - 1, c, data, meta);
                put32(&mut node, 4 * i, child as u32);
                left -= c;
                i += 1;
            }
        }
        self.put_block(blk, Phase::Unreferenced, BlockKind::Plain, node);
        blk
    }

    /// Map one more directory block at logical `logical`. Returns indirect blocks added.
    pub(crate) fn append_blockmap(
        &mut self,
        inode: &mut Inode,
        logical: u64,
        phys: u64,
    ) -> Result<u64, EditError> {
        let per = self.sb.block_size / 4;
        if logical < DIRECT {
            put32(&mut inode.f.block, 4 * logical as usize, phys as u32);
            return Ok(0);
        }
        if logical >= DIRECT + per {
            return Err(EditError::Unsupported(format!(
                "inode {}: growing a block-mapped directory past {} blocks is not supported",
                inode.ino,
                DIRECT + per
            )));
        }
        let ind = u64::from(le32(&inode.f.block, 4 * EXT2_IND_BLOCK));
        let (blk, mut node, phase, added) = if ind == 0 {
            let b = self.alloc_blocks(phys + 1, 1)?[0].0;
            (b, vec![0u8; self.bs()], Phase::Unreferenced, 1)
        } else {
            (ind, self.read_block(ind)?, Phase::Link, 0)
        };
        put32(&mut node, 4 * (logical - DIRECT) as usize, phys as u32);
        self.put_block(blk, phase, BlockKind::Plain, node);
        put32(&mut inode.f.block, 4 * EXT2_IND_BLOCK, blk as u32);
        Ok(added)
    }
}

/// Indirect blocks a `level`-deep map needs for `k` data blocks.
fn meta_count(level: u32, k: u64, per: u64) -> u64 {
    if k == 0 {
        return 0;
    }
    if level == 1 {
        return 1;
    }
    let span = per.pow(level - 1);
    let full = k / span;
    1 + full * meta_count(level - 1, span, per) + meta_count(level - 1, k % span, per)
}

#[cfg(test)]
mod tests {
    use super::meta_count;

    #[test]
    fn indirect_block_counts() {
        assert_eq!(meta_count(1, 5, 256), 1);
        assert_eq!(meta_count(2, 256 * 3 + 1, 256), 1 + 4);
        assert_eq!(meta_count(3, 256 * 256 + 1, 256), 1 + (1 + 256) + (1 + 1));
    }
}
