//! Reading a regular file's bytes by path.

use super::fs::Fs;
use super::inode::Inode;
use super::path::components;
use super::EditError;
use crate::ondisk::inode::{EXT2_ROOT_INO, EXT4_INLINE_DATA_FL, S_IFLNK, S_IFREG};

impl Fs<'_> {
    /// The inode at `path`, or None when some component does not exist.
    pub(crate) fn resolve(&self, path: &str) -> Result<Option<Inode>, EditError> {
        let mut cur = self.read_inode(EXT2_ROOT_INO)?;
        let mut walked = String::new();
        for name in components(path)? {
            self.check_dir(&cur, if walked.is_empty() { "/" } else { &walked }, false)?;
            let Some(ino) = self.lookup(&cur, name)? else {
                return Ok(None);
            };
            walked.push('/');
            walked.push_str(&String::from_utf8_lossy(name));
            cur = self.read_inode(ino)?;
            if cur.file_type() == S_IFLNK {
                return Err(EditError::Unsupported(format!(
                    "{walked} is a symbolic link; the editor does not follow links"
                )));
            }
        }
        Ok(Some(cur))
    }

    pub(crate) fn read_regular(&self, inode: &Inode, path: &str) -> Result<Vec<u8>, EditError> {
        if inode.file_type() != S_IFREG {
            return Err(EditError::BadPath(format!("{path}: not a regular file")));
        }
        let size = inode.f.size;
        if size > isize::MAX as u64 {
            return Err(EditError::Unsupported(format!(
                "{path}: {size} bytes do not fit in memory"
            )));
        }
        if inode.f.flags & EXT4_INLINE_DATA_FL != 0 {
            if size <= 60 {
                return Ok(inode.f.block[..size as usize].to_vec());
            }
            return Err(EditError::Unsupported(format!(
                "{path}: inline data beyond the inode's 60 bytes"
            )));
        }
        let mut out = vec![0u8; size as usize];
        let bs = self.sb.block_size;
        let (runs, _) = self.map_inode(inode)?;
        for r in runs.iter().filter(|r| !r.uninit) {
            for k in 0..r.len {
                let at = (r.logical + k) * bs;
                if at >= size {
                    break;
                }
                let n = (size - at).min(bs) as usize;
                let b = self.read_block(r.phys + k)?;
                out[at as usize..at as usize + n].copy_from_slice(&b[..n]);
            }
        }
        Ok(out)
    }
}
