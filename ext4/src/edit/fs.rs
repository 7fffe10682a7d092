//! An opened filesystem and the changes planned against it. Nothing is written until
//! `commit`, which writes in an order that keeps every crash point e2fsck-repairable: new
//! data and new metadata blocks first, then the allocation bitmaps and counts, then new
//! inodes, then the links from existing directories, and only then the frees.

use std::collections::{BTreeMap, BTreeSet};

use super::device::Dev;
use super::groups::{desc_pos, read_descs, Desc};
use super::inode::Inode;
use super::run::Run;
use super::superblock::Superblock;
use super::EditError;
use crate::ondisk::group::bitmap_checksum;
use crate::ondisk::inode::{EXT4_EXTENTS_FL, EXT4_INLINE_DATA_FL};
use crate::ondisk::superblock::SUPERBLOCK_OFFSET;
use crate::ondisk::{dir, extent};

/// When a pending write happens, relative to the allocation bitmaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// A block nothing references yet (new data, new directory or extent blocks).
    Unreferenced,
    /// A newly allocated inode (referenced only once a directory entry names it).
    NewInode,
    /// A change to something already reachable (directory entries, existing inodes).
    Link,
}

/// How to checksum a pending block at commit time (metadata_csum).
#[derive(Debug, Clone, Copy)]
pub(crate) enum BlockKind {
    Plain,
    /// Directory leaf block with a 12-byte tail dirent holding crc32c(inode seed, block).
    DirLeaf {
        seed: u32,
    },
    /// Extent tree node: crc32c(inode seed, header+entries up to eh_max) after the entries.
    ExtentNode {
        seed: u32,
    },
}

struct PendingBlock {
    phase: Phase,
    kind: BlockKind,
    data: Vec<u8>,
}

/// File data to place at `block`: `data[range]`, zero-padded to whole blocks.
pub(crate) struct DataRun {
    pub block: u64,
    pub start: usize,
    pub end: usize,
}

pub(crate) struct Fs<'a> {
    pub dev: Dev<'a>,
    pub sb: Superblock,
    pub descs: Vec<Desc>,
    pub block_bitmaps: BTreeMap<u32, Vec<u8>>,
    pub inode_bitmaps: BTreeMap<u32, Vec<u8>>,
    pub dirty_groups: BTreeSet<u32>,
    blocks: BTreeMap<u64, PendingBlock>,
    inodes: BTreeMap<u32, (Phase, Inode)>,
    /// Inode numbers in the order they were first planned, which is the order they are
    /// written within a phase (callers plan children before the directories naming them).
    inode_order: Vec<u32>,
    pub data_runs: Vec<DataRun>,
    /// Block runs (start, count) to release after everything else is written.
    pub to_free: Vec<(u64, u64)>,
}

impl<'a> Fs<'a> {
    pub(crate) fn open(dev: Dev<'a>) -> Result<Fs<'a>, EditError> {
        let fs = Fs::open_for_reading(dev)?;
        fs.sb.check_features()?;
        Ok(fs)
    }

    /// For reads only: a filesystem with read-only-compatible features the editor cannot
    /// keep (USR's read-only marker) still reads.
    pub(crate) fn open_for_reading(dev: Dev<'a>) -> Result<Fs<'a>, EditError> {
        let sb = Superblock::read(&dev)?;
        sb.check_readable()?;
        let descs = read_descs(&dev, &sb)?;
        Ok(Fs {
            dev,
            sb,
            descs,
            block_bitmaps: BTreeMap::new(),
            inode_bitmaps: BTreeMap::new(),
            dirty_groups: BTreeSet::new(),
            blocks: BTreeMap::new(),
            inodes: BTreeMap::new(),
            inode_order: Vec::new(),
            data_runs: Vec::new(),
            to_free: Vec::new(),
        })
    }

    pub(crate) fn bs(&self) -> usize {
        self.sb.block_size as usize
    }

    /// A block's current content: the planned one if any, else what is on disk.
    pub(crate) fn read_block(&self, blk: u64) -> Result<Vec<u8>, EditError> {
        if let Some(p) = self.blocks.get(&blk) {
            return Ok(p.data.clone());
        }
        self.check_block(blk)?;
        let mut b = vec![0u8; self.bs()];
        self.dev.read(blk * self.sb.block_size, &mut b)?;
        Ok(b)
    }

    pub(crate) fn check_block(&self, blk: u64) -> Result<(), EditError> {
        if blk < self.sb.first_data_block || blk >= self.sb.blocks_count {
            return Err(EditError::Corrupt(format!(
                "block number {blk} is outside the filesystem ({} blocks)",
                self.sb.blocks_count
            )));
        }
        Ok(())
    }

    /// Plan a block write; a block keeps the phase of its first planned write.
    pub(crate) fn put_block(&mut self, blk: u64, phase: Phase, kind: BlockKind, data: Vec<u8>) {
        debug_assert_eq!(data.len(), self.bs());
        let phase = self.blocks.get(&blk).map_or(phase, |p| p.phase);
        self.blocks.insert(blk, PendingBlock { phase, kind, data });
    }

    fn inode_pos(&self, ino: u32) -> Result<u64, EditError> {
        if ino == 0 || ino > self.sb.inodes_count {
            return Err(EditError::Corrupt(format!(
                "inode number {ino} is out of range (1..={})",
                self.sb.inodes_count
            )));
        }
        let g = (ino - 1) / self.sb.inodes_per_group;
        let idx = u64::from((ino - 1) % self.sb.inodes_per_group);
        Ok(self.descs[g as usize].f.inode_table * self.sb.block_size
            + idx * self.sb.inode_size as u64)
    }

    pub(crate) fn read_inode(&self, ino: u32) -> Result<Inode, EditError> {
        if let Some((_, i)) = self.inodes.get(&ino) {
            return Ok(i.clone());
        }
        let mut raw = vec![0u8; self.sb.inode_size];
        self.dev.read(self.inode_pos(ino)?, &mut raw)?;
        Ok(Inode::decode(ino, raw))
    }

    /// Mapped runs and tree/indirect blocks of an inode, whichever way it maps its blocks.
    pub(crate) fn map_inode(&self, inode: &Inode) -> Result<(Vec<Run>, Vec<u64>), EditError> {
        if inode.f.flags & EXT4_INLINE_DATA_FL != 0 {
            return Err(EditError::Unsupported(format!(
                "inode {} keeps its data inline",
                inode.ino
            )));
        }
        if inode.f.flags & EXT4_EXTENTS_FL != 0 {
            self.extent_map(inode)
        } else {
            self.blockmap_map(inode)
        }
    }

    pub(crate) fn put_inode(&mut self, inode: Inode, phase: Phase) {
        let phase = match self.inodes.get(&inode.ino) {
            Some(p) => p.0,
            None => {
                self.inode_order.push(inode.ino);
                phase
            }
        };
        self.inodes.insert(inode.ino, (phase, inode));
    }

    /// Write everything planned, in crash-safe order, then sync.
    pub(crate) fn commit(mut self, data: &[u8]) -> Result<(), EditError> {
        let bs = self.bs();
        for run in &self.data_runs {
            let chunk = &data[run.start..run.end];
            self.dev.write(run.block * self.sb.block_size, chunk)?;
            let tail = chunk.len() % bs;
            if tail != 0 {
                let pad = vec![0u8; bs - tail];
                self.dev
                    .write(run.block * self.sb.block_size + chunk.len() as u64, &pad)?;
            }
        }
        // Each step reaches the disk before the next starts (fdatasync as a barrier), so the
        // crash states are the ones listed above whatever order the page cache writes back.
        self.write_blocks(Phase::Unreferenced)?;
        self.dev.sync()?;
        self.write_allocation()?;
        self.dev.sync()?;
        self.write_inodes(Phase::NewInode)?;
        self.dev.sync()?;
        self.write_inodes(Phase::Link)?;
        self.write_blocks(Phase::Link)?;
        if !self.to_free.is_empty() {
            self.dev.sync()?;
            for (start, count) in std::mem::take(&mut self.to_free) {
                self.free_blocks(start, count)?;
            }
            self.write_allocation()?;
        }
        self.dev.sync()
    }

    fn write_blocks(&self, phase: Phase) -> Result<(), EditError> {
        for (&blk, p) in self.blocks.iter().filter(|(_, p)| p.phase == phase) {
            let mut data = p.data.clone();
            if self.sb.metadata_csum() {
                seal_block(&mut data, p.kind);
            }
            self.dev.write(blk * self.sb.block_size, &data)?;
        }
        Ok(())
    }

    fn write_inodes(&self, phase: Phase) -> Result<(), EditError> {
        for ino in &self.inode_order {
            let (p, inode) = &self.inodes[ino];
            if *p == phase {
                self.dev
                    .write(self.inode_pos(*ino)?, &inode.encoded(&self.sb))?;
            }
        }
        Ok(())
    }

    /// Bitmaps of changed groups, their descriptors, and the superblock totals.
    fn write_allocation(&mut self) -> Result<(), EditError> {
        let dirty: Vec<u32> = self.dirty_groups.iter().copied().collect();
        for g in dirty {
            let gi = g as usize;
            if let Some(bm) = self.block_bitmaps.get(&g) {
                if self.sb.metadata_csum() {
                    let bits = self.sb.blocks_per_group as u32;
                    self.descs[gi].f.block_bitmap_csum =
                        bitmap_checksum(self.sb.csum_seed, bm, bits);
                }
                self.dev
                    .write(self.descs[gi].f.block_bitmap * self.sb.block_size, bm)?;
            }
            if let Some(bm) = self.inode_bitmaps.get(&g) {
                if self.sb.metadata_csum() {
                    let bits = self.sb.inodes_per_group;
                    self.descs[gi].f.inode_bitmap_csum =
                        bitmap_checksum(self.sb.csum_seed, bm, bits);
                }
                self.dev
                    .write(self.descs[gi].f.inode_bitmap * self.sb.block_size, bm)?;
            }
            let raw = self.descs[gi].encoded(&self.sb, g);
            self.dev.write(desc_pos(&self.sb, g), &raw)?;
        }
        self.dirty_groups.clear();
        let free_blocks: u64 = self
            .descs
            .iter()
            .map(|d| u64::from(d.f.free_blocks_count))
            .sum();
        let free_inodes: u32 = self.descs.iter().map(|d| d.f.free_inodes_count).sum();
        self.sb.set_free_counts(free_blocks, free_inodes);
        self.dev.write(SUPERBLOCK_OFFSET, &self.sb.finished())
    }
}

/// Store the metadata_csum checksum a block kind carries.
fn seal_block(data: &mut [u8], kind: BlockKind) {
    match kind {
        BlockKind::Plain => {}
        BlockKind::DirLeaf { seed } => dir::set_tail_checksum(data, seed),
        BlockKind::ExtentNode { seed } => extent::set_tail_checksum(data, seed),
    }
}
