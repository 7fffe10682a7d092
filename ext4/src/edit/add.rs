//! Planning `add_file`: resolve the path, create missing directories, allocate and map the
//! data, link everything. All of it happens in memory; `Fs::commit` writes it.

use super::fs::{BlockKind, DataRun, Fs, Phase};
use super::inode::Inode;
use super::path::components;
use super::{EditError, NewFile};
use crate::ondisk::dir::{EXT4_FT_DIR, EXT4_FT_REG_FILE};
use crate::ondisk::inode::{
    EXT2_ROOT_INO, EXT4_EXTENTS_FL, EXT4_HUGE_FILE_FL, EXT4_INDEX_FL, EXT4_INLINE_DATA_FL, S_IFDIR,
    S_IFLNK, S_IFREG,
};
use crate::ondisk::superblock::{INCOMPAT_EXTENTS, RO_COMPAT_DIR_NLINK, RO_COMPAT_LARGE_FILE};

/// Link count above which dir_nlink directories store 1 ("many").
const EXT4_LINK_MAX: u16 = 65000;
/// Mode of directories the editor creates.
const NEW_DIR_MODE: u16 = 0o755;

impl Fs<'_> {
    pub(crate) fn plan_add(
        &mut self,
        path: &str,
        data: &[u8],
        meta: NewFile,
    ) -> Result<(), EditError> {
        let names = components(path)?;
        let (last, parents) = names.split_last().expect("at least one component");
        if data.len() as u64 >= 1 << 31 && !self.sb.has_ro(RO_COMPAT_LARGE_FILE) {
            return Err(EditError::Unsupported(format!(
                "{path}: {} bytes need the large_file feature",
                data.len()
            )));
        }
        // Walk the existing part of the path.
        let mut cur = self.read_inode(EXT2_ROOT_INO)?;
        let mut walked = String::new();
        let mut depth = 0;
        for name in parents {
            self.check_dir(&cur, if walked.is_empty() { "/" } else { &walked }, false)?;
            let Some(ino) = self.lookup(&cur, name)? else {
                break;
            };
            walked.push('/');
            walked.push_str(&String::from_utf8_lossy(name));
            cur = self.read_inode(ino)?;
            if cur.file_type() == S_IFLNK {
                return Err(EditError::Unsupported(format!(
                    "{walked} is a symbolic link; the editor does not follow links"
                )));
            }
            depth += 1;
        }
        self.check_dir(&cur, if walked.is_empty() { "/" } else { &walked }, true)?;
        let missing = &parents[depth..];
        let existing = if missing.is_empty() {
            self.lookup(&cur, last)?
        } else {
            None
        };
        let old = match existing {
            Some(ino) => {
                let i = self.read_inode(ino)?;
                if i.file_type() != S_IFREG {
                    return Err(EditError::BadPath(format!(
                        "{path}: exists and is not a regular file"
                    )));
                }
                if i.f.links_count > 1 {
                    return Err(EditError::Unsupported(format!(
                        "{path}: has {} hard links; replacing it would change them too",
                        i.f.links_count
                    )));
                }
                if i.f.flags & EXT4_INLINE_DATA_FL != 0 {
                    return Err(EditError::Unsupported(format!(
                        "{path}: keeps its data inline"
                    )));
                }
                Some(i)
            }
            None => None,
        };
        // Enough room overall? (Exact allocation below may still need a tree block or two.)
        let bs = self.sb.block_size;
        let data_blocks = (data.len() as u64).div_ceil(bs);
        let need = data_blocks + missing.len() as u64;
        let free = self.free_blocks_total();
        if need > free {
            return Err(EditError::NoSpace(format!(
                "{path}: needs at least {need} blocks of {bs} bytes ({} bytes) but {free} are free ({} bytes)",
                need * bs,
                free * bs
            )));
        }
        let need_inodes = missing.len() as u32 + u32::from(old.is_none());
        let free_inodes: u32 = self.descs.iter().map(|d| d.f.free_inodes_count).sum();
        if need_inodes > free_inodes {
            return Err(EditError::NoSpace(format!(
                "{path}: needs {need_inodes} inodes but {free_inodes} are free"
            )));
        }

        // Missing directories, outermost first; chain[0] is the existing parent.
        let mut chain: Vec<(Inode, Phase)> = vec![(cur, Phase::Link)];
        for name in missing {
            let parent = &chain.last().expect("non-empty").0;
            let pino = parent.ino;
            let ino = self.alloc_inode(self.group_of_inode(pino), true)?;
            let blk =
                self.alloc_blocks(self.sb.group_first_block(self.group_of_inode(ino)), 1)?[0].0;
            let mut d = Inode::new(&self.sb, ino);
            d.f.mode = S_IFDIR | NEW_DIR_MODE;
            (d.f.uid, d.f.gid) = (0, 0);
            d.set_times(meta.mtime);
            d.f.links_count = 2;
            d.f.size = bs;
            let tree = self.map_new(&mut d, &[(blk, 1)])?;
            d.set_fs_blocks(&self.sb, 1 + tree)?;
            let seed = d.csum_seed(&self.sb);
            let b = self.new_dir_block(ino, pino);
            self.put_block(blk, Phase::Unreferenced, BlockKind::DirLeaf { seed }, b);
            let parent = &mut chain.last_mut().expect("non-empty").0;
            let mut p = parent.clone();
            self.insert_entry(&mut p, name, ino, EXT4_FT_DIR)?;
            self.add_subdir_link(&mut p)?;
            *parent = p;
            chain.push((d, Phase::NewInode));
        }

        // The file itself.
        let (mut file, phase) = match old {
            Some(mut i) => {
                let (runs, tree) = self.map_inode(&i)?;
                for r in &runs {
                    self.check_in_use(r.phys, r.len)?;
                }
                for &b in &tree {
                    self.check_in_use(b, 1)?;
                }
                self.to_free.extend(runs.iter().map(|r| (r.phys, r.len)));
                self.to_free.extend(tree.iter().map(|&b| (b, 1)));
                i.f.flags &= !(EXT4_EXTENTS_FL | EXT4_HUGE_FILE_FL | EXT4_INDEX_FL);
                (i, Phase::Link)
            }
            None => {
                let parent = chain.last().expect("non-empty").0.ino;
                let ino = self.alloc_inode(self.group_of_inode(parent), false)?;
                let mut i = Inode::new(&self.sb, ino);
                i.f.links_count = 1;
                (i, Phase::NewInode)
            }
        };
        file.f.mode = S_IFREG | (meta.mode & 0o7777) as u16;
        (file.f.uid, file.f.gid) = (meta.uid, meta.gid);
        file.set_times(meta.mtime);
        file.f.size = data.len() as u64;
        let runs = self.alloc_blocks(
            self.sb.group_first_block(self.group_of_inode(file.ino)),
            data_blocks,
        )?;
        let mut at = 0usize;
        for &(start, count) in &runs {
            let end = (at + (count * bs) as usize).min(data.len());
            self.data_runs.push(DataRun {
                block: start,
                start: at,
                end,
            });
            at = end;
        }
        let tree = self.map_new(&mut file, &runs)?;
        let xattr_block = u64::from(file.f.file_acl != 0);
        file.set_fs_blocks(&self.sb, data_blocks + tree + xattr_block)?;
        if phase == Phase::NewInode {
            let parent = &mut chain.last_mut().expect("non-empty").0;
            let mut p = parent.clone();
            self.insert_entry(&mut p, last, file.ino, EXT4_FT_REG_FILE)?;
            *parent = p;
        }
        self.put_inode(file, phase);
        // Deepest first: a directory is written only after everything it names.
        for (inode, phase) in chain.into_iter().rev() {
            if phase == Phase::NewInode || self.read_inode(inode.ino)?.f != inode.f {
                self.put_inode(inode, phase);
            }
        }
        Ok(())
    }

    /// Map a new (or emptied) inode's blocks with extents or a block map, per the features.
    fn map_new(&mut self, inode: &mut Inode, runs: &[(u64, u64)]) -> Result<u64, EditError> {
        if self.sb.has_incompat(INCOMPAT_EXTENTS) {
            inode.f.flags |= EXT4_EXTENTS_FL;
            self.build_extents(inode, runs)
        } else {
            self.build_blockmap(inode, runs)
        }
    }

    /// One more subdirectory: one more link to the parent ("..") within the limits.
    fn add_subdir_link(&self, parent: &mut Inode) -> Result<(), EditError> {
        let n = parent.f.links_count;
        if n == 1 && self.sb.has_ro(RO_COMPAT_DIR_NLINK) {
            return Ok(()); // already "many"
        }
        if n + 1 >= EXT4_LINK_MAX {
            if self.sb.has_ro(RO_COMPAT_DIR_NLINK) {
                parent.f.links_count = 1;
                return Ok(());
            }
            return Err(EditError::NoSpace(format!(
                "directory inode {} has {n} links, the most without dir_nlink",
                parent.ino
            )));
        }
        parent.f.links_count = n + 1;
        Ok(())
    }
}
