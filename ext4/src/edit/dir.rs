//! Linear directories: lookup, inserting an entry (growing the directory by a block when
//! every block is full), new directory blocks, and turning an htree-indexed directory back
//! into a linear one.
//!
//! Htree parents are not updated as an index: the editor clears EXT4_INDEX_FL and rewrites the
//! index blocks as empty linear blocks, which is a valid unindexed directory for the kernel
//! and e2fsck (the kernel or `e2fsck -D` may index it again later).

use super::fs::{BlockKind, Fs, Phase};
use super::inode::Inode;
use super::EditError;
use crate::ondisk::dir::{
    self as disk, rec_len as rec_len_needed, DirEntryHeader, DIRENT_HEADER_LEN, DX_ENTRY_LEN,
    DX_ROOT_INDIRECT_LEVELS, DX_ROOT_INFO, DX_ROOT_INFO_LENGTH, EXT4_FT_DIR, EXT4_FT_UNKNOWN,
};
use crate::ondisk::inode::{
    EXT4_CASEFOLD_FL, EXT4_ENCRYPT_FL, EXT4_EXTENTS_FL, EXT4_INDEX_FL, EXT4_INLINE_DATA_FL,
};
use crate::ondisk::superblock::INCOMPAT_FILETYPE;

/// One directory entry: where it is in its block, the inode it names (0: unused), its
/// record length and its name.
struct Dirent {
    pos: usize,
    ino: u32,
    rec: usize,
    name: Vec<u8>,
}

impl Fs<'_> {
    /// Refuse directory forms the editor cannot read, or (`writing`) cannot change.
    pub(crate) fn check_dir(
        &self,
        dir: &Inode,
        path: &str,
        writing: bool,
    ) -> Result<(), EditError> {
        if !dir.is_dir() {
            return Err(EditError::BadPath(format!("{path}: not a directory")));
        }
        let f = dir.f.flags;
        if writing && f & EXT4_INLINE_DATA_FL != 0 {
            return Err(EditError::Unsupported(format!(
                "directory {path} uses inline data, which the editor does not change"
            )));
        }
        for (flag, what) in [
            (EXT4_ENCRYPT_FL, "encryption"),
            (EXT4_CASEFOLD_FL, "casefolding"),
        ] {
            if f & flag != 0 {
                return Err(EditError::Unsupported(format!(
                    "directory {path} uses {what}, which the editor does not change"
                )));
            }
        }
        Ok(())
    }

    /// (logical, physical) of each block of a directory, in logical order.
    fn dir_blocks(&self, dir: &Inode) -> Result<Vec<(u64, u64)>, EditError> {
        let (runs, _) = self.map_inode(dir)?;
        let n = dir.f.size.div_ceil(self.sb.block_size);
        let mut out = Vec::new();
        for r in runs {
            for k in 0..r.len {
                if r.logical + k < n {
                    out.push((r.logical + k, r.phys + k));
                }
            }
        }
        Ok(out)
    }

    /// End of the dirent area of a block: before the checksum tail when one is present.
    fn dirent_limit(&self, b: &[u8], strict: bool, blk: u64) -> Result<usize, EditError> {
        if disk::has_tail(b) {
            Ok(disk::tail_offset(b))
        } else if strict && self.sb.metadata_csum() {
            Err(EditError::Corrupt(format!(
                "directory block {blk} has no checksum tail although metadata_csum is on"
            )))
        } else {
            Ok(b.len())
        }
    }

    /// The entries of one directory block, checked for sane lengths.
    fn entries(&self, b: &[u8], limit: usize, blk: u64) -> Result<Vec<Dirent>, EditError> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < limit {
            if pos + DIRENT_HEADER_LEN > limit {
                return Err(EditError::Corrupt(format!(
                    "directory block {blk}: entry at {pos} runs past the block"
                )));
            }
            let h = DirEntryHeader::decode(b, pos);
            let (ino, rec, nl) = (h.inode, usize::from(h.rec_len), usize::from(h.name_len));
            if rec < DIRENT_HEADER_LEN
                || rec % 4 != 0
                || pos + rec > limit
                || (ino != 0 && DIRENT_HEADER_LEN + nl > rec)
            {
                return Err(EditError::Corrupt(format!(
                    "directory block {blk}: bad entry at byte {pos} (rec_len {rec}), file offset {}",
                    self.dev.abs(blk * self.sb.block_size + pos as u64)
                )));
            }
            let name = b[pos + DIRENT_HEADER_LEN
                ..pos + DIRENT_HEADER_LEN + nl.min(rec - DIRENT_HEADER_LEN)]
                .to_vec();
            out.push(Dirent {
                pos,
                ino,
                rec,
                name,
            });
            pos += rec;
        }
        Ok(out)
    }

    /// The inode a directory entry `name` points at, if any.
    pub(crate) fn lookup(&self, dir: &Inode, name: &[u8]) -> Result<Option<u32>, EditError> {
        if dir.f.flags & EXT4_INLINE_DATA_FL != 0 {
            return self.lookup_inline(dir, name);
        }
        for (_, phys) in self.dir_blocks(dir)? {
            let b = self.read_block(phys)?;
            let limit = self.dirent_limit(&b, false, phys)?;
            for Dirent { ino, name: n, .. } in self.entries(&b, limit, phys)? {
                if ino != 0 && n == name {
                    return Ok(Some(ino));
                }
            }
        }
        Ok(None)
    }

    /// Lookup in an inline directory: i_block holds the parent inode number, then entries.
    /// Entries continued in the `system.data` xattr (directories over 60 bytes) are not read.
    fn lookup_inline(&self, dir: &Inode, name: &[u8]) -> Result<Option<u32>, EditError> {
        if dir.f.size > 60 {
            return Err(EditError::Unsupported(format!(
                "inline directory inode {} continues in an extended attribute",
                dir.ino
            )));
        }
        let area = &dir.f.block[4..];
        for Dirent { ino, name: n, .. } in self.entries(area, area.len(), 0)? {
            if ino != 0 && n == name {
                return Ok(Some(ino));
            }
        }
        Ok(None)
    }

    fn write_entry(&self, b: &mut [u8], pos: usize, ino: u32, rec: usize, name: &[u8], ft: u8) {
        let ft = if self.sb.has_incompat(INCOMPAT_FILETYPE) {
            ft
        } else {
            EXT4_FT_UNKNOWN
        };
        disk::put_entry(b, pos, ino, rec, name, ft);
    }

    fn put_tail(&self, b: &mut [u8]) {
        if self.sb.metadata_csum() {
            disk::put_tail(b);
        }
    }

    fn limit_for_new(&self) -> usize {
        if self.sb.metadata_csum() {
            self.bs() - disk::DIR_TAIL_SIZE
        } else {
            self.bs()
        }
    }

    /// The first block of a new directory: "." and "..".
    pub(crate) fn new_dir_block(&self, me: u32, parent: u32) -> Vec<u8> {
        let mut b = vec![0u8; self.bs()];
        self.write_entry(&mut b, 0, me, rec_len_needed(1), b".", EXT4_FT_DIR);
        let at = rec_len_needed(1);
        self.write_entry(
            &mut b,
            at,
            parent,
            self.limit_for_new() - at,
            b"..",
            EXT4_FT_DIR,
        );
        self.put_tail(&mut b);
        b
    }

    /// Add the entry `name` -> `child` to `dir` (changed in memory; the caller stores it).
    pub(crate) fn insert_entry(
        &mut self,
        dir: &mut Inode,
        name: &[u8],
        child: u32,
        ft: u8,
    ) -> Result<(), EditError> {
        if dir.f.flags & EXT4_INDEX_FL != 0 {
            self.flatten_htree(dir)?;
        }
        let need = rec_len_needed(name.len());
        let seed = dir.csum_seed(&self.sb);
        let blocks = self.dir_blocks(dir)?;
        for &(_, phys) in &blocks {
            let mut b = self.read_block(phys)?;
            let limit = self.dirent_limit(&b, true, phys)?;
            for Dirent {
                pos,
                ino,
                rec,
                name: n,
            } in self.entries(&b, limit, phys)?
            {
                if ino == 0 && rec >= need {
                    self.write_entry(&mut b, pos, child, rec, name, ft);
                } else if ino != 0 && rec - rec_len_needed(n.len()) >= need {
                    let used = rec_len_needed(n.len());
                    let mut h = DirEntryHeader::decode(&b, pos);
                    h.rec_len = used as u16;
                    h.encode_into(&mut b, pos);
                    self.write_entry(&mut b, pos + used, child, rec - used, name, ft);
                } else {
                    continue;
                }
                self.put_block(phys, Phase::Link, BlockKind::DirLeaf { seed }, b);
                return Ok(());
            }
        }
        // Every block is full: add one.
        let logical = dir.f.size.div_ceil(self.sb.block_size);
        if logical != blocks.len() as u64 {
            return Err(EditError::Corrupt(format!(
                "directory inode {} has holes",
                dir.ino
            )));
        }
        let goal = blocks.last().map_or(
            self.sb.group_first_block(self.group_of_inode(dir.ino)),
            |&(_, p)| p + 1,
        );
        let phys = self.alloc_blocks(goal, 1)?[0].0;
        let mut b = vec![0u8; self.bs()];
        self.write_entry(&mut b, 0, child, self.limit_for_new(), name, ft);
        self.put_tail(&mut b);
        self.put_block(phys, Phase::Unreferenced, BlockKind::DirLeaf { seed }, b);
        let added = if dir.f.flags & EXT4_EXTENTS_FL != 0 {
            self.append_extent(dir, logical, phys)?
        } else {
            self.append_blockmap(dir, logical, phys)?
        };
        dir.f.size += self.sb.block_size;
        let blocks_now = dir.fs_blocks(&self.sb) + 1 + added;
        dir.set_fs_blocks(&self.sb, blocks_now)?;
        Ok(())
    }

    /// Drop a directory's htree index: with metadata_csum the root and interior index blocks
    /// become ordinary (empty) leaf blocks with checksum tails; without it they already read
    /// as valid linear blocks, so only the flag changes.
    fn flatten_htree(&mut self, dir: &mut Inode) -> Result<(), EditError> {
        if self.sb.metadata_csum() {
            let blocks = self.dir_blocks(dir)?;
            let phys_of = |l: u64| blocks.iter().find(|b| b.0 == l).map(|b| b.1);
            let root_phys = phys_of(0).ok_or_else(|| {
                EditError::Corrupt(format!("htree directory {} has no block 0", dir.ino))
            })?;
            let root = self.read_block(root_phys)?;
            let levels = root[DX_ROOT_INDIRECT_LEVELS];
            let entries_at = DX_ROOT_INFO + usize::from(root[DX_ROOT_INFO_LENGTH]);
            let mut frontier = vec![(root, entries_at)];
            let mut interior = Vec::new();
            for _ in 0..levels {
                let mut next = Vec::new();
                for (node, at) in &frontier {
                    // dx_countlimit (limit, count) takes the place of entry 0's hash.
                    let count = usize::from(u16::from_le_bytes([node[at + 2], node[at + 3]]));
                    for i in 0..count.min((node.len() - at) / DX_ENTRY_LEN) {
                        let e = at + DX_ENTRY_LEN * i + 4;
                        let block = u32::from_le_bytes(node[e..e + 4].try_into().unwrap());
                        let l = u64::from(block) & 0x0FFF_FFFF;
                        let p = phys_of(l).ok_or_else(|| {
                            EditError::Corrupt(format!(
                                "htree directory {}: index names block {l}",
                                dir.ino
                            ))
                        })?;
                        interior.push(p);
                        next.push((self.read_block(p)?, DX_ENTRY_LEN));
                    }
                }
                frontier = next;
            }
            let seed = dir.csum_seed(&self.sb);
            // The root keeps "." and ".."; ".." now spans the rest of the block.
            let mut b = self.read_block(root_phys)?;
            let dotdot = rec_len_needed(1);
            b[DX_ROOT_INFO..].fill(0);
            let mut h = DirEntryHeader::decode(&b, dotdot);
            h.rec_len = (self.limit_for_new() - dotdot) as u16;
            h.encode_into(&mut b, dotdot);
            self.put_tail(&mut b);
            self.put_block(root_phys, Phase::Link, BlockKind::DirLeaf { seed }, b);
            for p in interior {
                let mut b = vec![0u8; self.bs()];
                let mut h = DirEntryHeader::decode(&b, 0);
                h.rec_len = self.limit_for_new() as u16;
                h.encode_into(&mut b, 0);
                self.put_tail(&mut b);
                self.put_block(p, Phase::Link, BlockKind::DirLeaf { seed }, b);
            }
        }
        dir.f.flags &= !EXT4_INDEX_FL;
        Ok(())
    }
}
