//! Block and inode allocation against the group bitmaps (held in memory until commit),
//! including groups whose bitmaps were never initialized (BLOCK_UNINIT / INODE_UNINIT).

use super::fs::Fs;
use super::EditError;
use crate::ondisk::group::{
    EXT4_BG_BLOCK_UNINIT as BG_BLOCK_UNINIT, EXT4_BG_INODE_UNINIT as BG_INODE_UNINIT,
};

fn bit(bm: &[u8], i: u64) -> bool {
    bm[(i / 8) as usize] & (1 << (i % 8)) != 0
}

fn set_bit(bm: &mut [u8], i: u64, on: bool) {
    let m = 1u8 << (i % 8);
    if on {
        bm[(i / 8) as usize] |= m
    } else {
        bm[(i / 8) as usize] &= !m
    }
}

impl Fs<'_> {
    fn uninit(&self, g: u32, flag: u16) -> bool {
        self.sb.group_csum() && self.descs[g as usize].f.flags & flag != 0
    }

    /// The block bitmap of group `g`, or None when it cannot be trusted for allocation (an
    /// uninitialized group whose computed bitmap disagrees with its free count).
    fn block_bitmap(&mut self, g: u32) -> Result<Option<&mut Vec<u8>>, EditError> {
        if !self.block_bitmaps.contains_key(&g) {
            let bm = if self.uninit(g, BG_BLOCK_UNINIT) {
                match self.uninit_block_bitmap(g) {
                    Some(bm) => bm,
                    None => return Ok(None),
                }
            } else {
                let b = self.descs[g as usize].f.block_bitmap;
                self.read_block(b)?
            };
            self.block_bitmaps.insert(g, bm);
        }
        Ok(self.block_bitmaps.get_mut(&g))
    }

    /// What the kernel's ext4_init_block_bitmap computes for a BLOCK_UNINIT group: the
    /// superblock/descriptor backup area, any group metadata placed in this group, and the
    /// padding past the group's last block.
    fn uninit_block_bitmap(&self, g: u32) -> Option<Vec<u8>> {
        let sb = &self.sb;
        let mut bm = vec![0u8; self.bs()];
        let first = sb.group_first_block(g);
        let n = sb.blocks_in_group(g);
        for i in 0..sb.base_meta_blocks(g).min(n) {
            set_bit(&mut bm, i, true);
        }
        let it_blocks =
            (u64::from(sb.inodes_per_group) * sb.inode_size as u64).div_ceil(sb.block_size);
        for d in &self.descs {
            let mut mark = |start: u64, count: u64| {
                for b in start..start + count {
                    if b >= first && b < first + n {
                        set_bit(&mut bm, b - first, true);
                    }
                }
            };
            mark(d.f.block_bitmap, 1);
            mark(d.f.inode_bitmap, 1);
            mark(d.f.inode_table, it_blocks);
        }
        let free = (0..n).filter(|&i| !bit(&bm, i)).count() as u64;
        for i in n..(self.bs() as u64 * 8) {
            set_bit(&mut bm, i, true);
        }
        (free == u64::from(self.descs[g as usize].f.free_blocks_count)).then_some(bm)
    }

    fn inode_bitmap(&mut self, g: u32) -> Result<&mut Vec<u8>, EditError> {
        if !self.inode_bitmaps.contains_key(&g) {
            let bm = if self.uninit(g, BG_INODE_UNINIT) {
                let mut bm = vec![0u8; self.bs()];
                for i in u64::from(self.sb.inodes_per_group)..(self.bs() as u64 * 8) {
                    set_bit(&mut bm, i, true);
                }
                bm
            } else {
                let b = self.descs[g as usize].f.inode_bitmap;
                self.read_block(b)?
            };
            self.inode_bitmaps.insert(g, bm);
        }
        Ok(self.inode_bitmaps.get_mut(&g).expect("just inserted"))
    }

    pub(crate) fn group_of_block(&self, b: u64) -> u32 {
        ((b - self.sb.first_data_block) / self.sb.blocks_per_group) as u32
    }

    pub(crate) fn group_of_inode(&self, ino: u32) -> u32 {
        (ino - 1) / self.sb.inodes_per_group
    }

    pub(crate) fn free_blocks_total(&self) -> u64 {
        self.descs
            .iter()
            .map(|d| u64::from(d.f.free_blocks_count))
            .sum()
    }

    /// Allocate an inode, preferring group `goal`.
    pub(crate) fn alloc_inode(&mut self, goal: u32, dir: bool) -> Result<u32, EditError> {
        let groups = self.sb.groups;
        let ipg = self.sb.inodes_per_group;
        for k in 0..groups {
            let g = (goal + k) % groups;
            if self.descs[g as usize].f.free_inodes_count == 0 {
                continue;
            }
            let first_ino = self.sb.first_ino;
            let bm = self.inode_bitmap(g)?;
            let Some(i) =
                (0..ipg).find(|&i| g * ipg + i + 1 >= first_ino && !bit(bm, u64::from(i)))
            else {
                continue;
            };
            set_bit(bm, u64::from(i), true);
            let group_csum = self.sb.group_csum();
            let d = &mut self.descs[g as usize].f;
            d.free_inodes_count -= 1;
            if dir {
                d.used_dirs_count += 1;
            }
            if group_csum {
                d.flags &= !BG_INODE_UNINIT;
                if i >= ipg - d.itable_unused.min(ipg) {
                    d.itable_unused = ipg - i - 1;
                }
            }
            self.dirty_groups.insert(g);
            return Ok(g * ipg + i + 1);
        }
        Err(EditError::NoSpace(format!(
            "no free inode: all {} inodes are in use",
            self.sb.inodes_count
        )))
    }

    fn mark_blocks(&mut self, start: u64, count: u64) -> Result<(), EditError> {
        let g = self.group_of_block(start);
        let first = self.sb.group_first_block(g);
        let bm = self
            .block_bitmap(g)?
            .expect("allocated from a usable bitmap");
        for b in start..start + count {
            set_bit(bm, b - first, true);
        }
        let d = &mut self.descs[g as usize].f;
        let free = d
            .free_blocks_count
            .checked_sub(count as u32)
            .ok_or_else(|| {
                EditError::Corrupt(format!(
                    "group {g} counts fewer free blocks than its bitmap shows"
                ))
            })?;
        d.free_blocks_count = free;
        d.flags &= !BG_BLOCK_UNINIT;
        self.dirty_groups.insert(g);
        Ok(())
    }

    /// Allocate `n` blocks as (start, count) runs, contiguous when any group has room for
    /// them in one piece, searching from the group of block `goal` (and from `goal` itself
    /// in that group).
    pub(crate) fn alloc_blocks(&mut self, goal: u64, n: u64) -> Result<Vec<(u64, u64)>, EditError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let free = self.free_blocks_total();
        if free < n {
            return Err(EditError::NoSpace(format!(
                "{n} blocks of {} bytes needed ({} bytes), {free} free ({} bytes)",
                self.sb.block_size,
                n * self.sb.block_size,
                free * self.sb.block_size
            )));
        }
        let goal = goal.clamp(self.sb.first_data_block, self.sb.blocks_count - 1);
        let goal_group = self.group_of_block(goal);
        let groups = self.sb.groups;
        // One contiguous run.
        for k in 0..groups {
            let g = (goal_group + k) % groups;
            if u64::from(self.descs[g as usize].f.free_blocks_count) < n {
                continue;
            }
            let first = self.sb.group_first_block(g);
            let len = self.sb.blocks_in_group(g);
            let from = if k == 0 { goal - first } else { 0 };
            let Some(bm) = self.block_bitmap(g)? else {
                continue;
            };
            let found = find_run(bm, from, len, n).or_else(|| find_run(bm, 0, len, n));
            if let Some(i) = found {
                self.mark_blocks(first + i, n)?;
                return Ok(vec![(first + i, n)]);
            }
        }
        // Otherwise gather free blocks in order, coalescing neighbours.
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut left = n;
        for k in 0..groups {
            let g = (goal_group + k) % groups;
            if self.descs[g as usize].f.free_blocks_count == 0 {
                continue;
            }
            let first = self.sb.group_first_block(g);
            let len = self.sb.blocks_in_group(g);
            let Some(bm) = self.block_bitmap(g)? else {
                continue;
            };
            let mut picked = Vec::new();
            let mut i = 0;
            while i < len && left > 0 {
                if !bit(bm, i) {
                    let start = i;
                    while i < len && !bit(bm, i) && i - start < left {
                        i += 1;
                    }
                    picked.push((first + start, i - start));
                    left -= i - start;
                } else {
                    i += 1;
                }
            }
            for (s, c) in picked {
                self.mark_blocks(s, c)?;
                match runs.last_mut() {
                    Some(last) if last.0 + last.1 == s => last.1 += c,
                    _ => runs.push((s, c)),
                }
            }
            if left == 0 {
                return Ok(runs);
            }
        }
        Err(EditError::NoSpace(format!(
            "{n} blocks needed but only {} could be allocated (the rest of the free count is in groups that cannot be used)",
            n - left
        )))
    }

    /// Fail unless every block of the run is marked in use (checked before planning a free,
    /// so the frees at the end of a commit cannot fail half-way).
    pub(crate) fn check_in_use(&mut self, start: u64, count: u64) -> Result<(), EditError> {
        for b in start..start + count {
            self.check_block(b)?;
            let g = self.group_of_block(b);
            let first = self.sb.group_first_block(g);
            let used = match self.block_bitmap(g)? {
                Some(bm) => bit(bm, b - first),
                None => false,
            };
            if !used {
                return Err(EditError::Corrupt(format!(
                    "block {b}, mapped by the file being replaced, is marked free"
                )));
            }
        }
        Ok(())
    }

    /// Release a run of blocks (used after the new content is written).
    pub(crate) fn free_blocks(&mut self, start: u64, count: u64) -> Result<(), EditError> {
        for b in start..start + count {
            let g = self.group_of_block(b);
            let first = self.sb.group_first_block(g);
            let bm = self.block_bitmap(g)?.ok_or_else(|| {
                EditError::Corrupt(format!("block {b} to free lies in uninitialized group {g} whose bitmap disagrees with its free count"))
            })?;
            if !bit(bm, b - first) {
                return Err(EditError::Corrupt(format!(
                    "block {b} to free is already free"
                )));
            }
            set_bit(bm, b - first, false);
            self.descs[g as usize].f.free_blocks_count += 1;
            self.dirty_groups.insert(g);
        }
        Ok(())
    }
}

/// First index >= `from` where `n` clear bits in a row start, below `len`.
fn find_run(bm: &[u8], from: u64, len: u64, n: u64) -> Option<u64> {
    let mut i = from;
    let mut start = from;
    while i < len {
        if i & 7 == 0 && i + 8 <= len && bm[(i / 8) as usize] == 0xFF {
            i += 8;
            start = i;
            continue;
        }
        if bit(bm, i) {
            start = i + 1;
        } else if i + 1 - start == n {
            return Some(start);
        }
        i += 1;
    }
    None
}
