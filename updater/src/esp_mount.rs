//! The ESP's files through the kernel's mount of it, when the running OS keeps it mounted
//! (`/boot` on CoreOS, `/boot/efi` on Debian): editing the FAT behind a mounted driver would
//! race its cached tables, and refusing would leave every trial boot unmarked (rolled back).
//!
//! Every file but grubenv is replaced atomically: written under a temporary name in its own
//! folder, fsynced, renamed over the old one, the folder fsynced. `coreos/grub/grubenv` is
//! rewritten in place instead (same size, from offset 0, fsynced): GRUB's `save_env` writes
//! the sectors it found the file in, so the file must keep its clusters.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub struct MountedEsp {
    pub root: PathBuf,
}

/// Suffix of the temporary file a replacement is written to (a long name: vfat keeps it).
const TMP_SUFFIX: &str = ".coreos-update-new";

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl MountedEsp {
    pub fn new(root: PathBuf) -> Self {
        MountedEsp { root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    /// The file's bytes, or None when there is no such file.
    pub fn read(&self, rel: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(rel)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Rewrite an existing file of the same size through its own blocks (no truncation, no
    /// new file): one positioned write at offset 0, then fsync.
    pub fn overwrite_in_place(&self, rel: &str, data: &[u8]) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(self.path(rel))?;
        let size = f.metadata()?.len();
        if size != data.len() as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{rel} is {size} bytes; an in-place rewrite needs the same size, not {}",
                    data.len()
                ),
            ));
        }
        f.write_all_at(data, 0)?;
        f.sync_all()
    }

    /// Write `rel` anew, atomically: a temporary file in the same folder, fsynced, renamed over
    /// the old one, the folder fsynced. Missing parent folders are created (and their parents
    /// fsynced).
    pub fn replace(&self, rel: &str, data: &[u8]) -> io::Result<()> {
        let path = self.path(rel);
        let dir = path
            .parent()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no folder"))?
            .to_path_buf();
        self.make_dirs(&dir)?;
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let mut tmp_name = name.to_os_string();
        tmp_name.push(TMP_SUFFIX);
        let tmp = dir.join(tmp_name);
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &path)?;
            fsync_dir(&dir)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn make_dirs(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            if parent != self.root && parent.starts_with(&self.root) {
                self.make_dirs(parent)?;
            }
        }
        match std::fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(e),
        }
        fsync_dir(dir.parent().unwrap_or(&self.root))
    }

    /// Remove `rel` (the folder fsynced); false when there was no such file.
    pub fn remove(&self, rel: &str) -> io::Result<bool> {
        let path = self.path(rel);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
        fsync_dir(path.parent().unwrap_or(&self.root))?;
        Ok(true)
    }

    /// Every write above is fsynced already; flush the whole filesystem once more (its FAT).
    pub fn sync(&self) -> io::Result<()> {
        blockdev::syncfs(&File::open(&self.root)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn grubenv_is_rewritten_in_place_and_other_files_are_replaced() {
        let d = tempfile::tempdir().unwrap();
        let esp = MountedEsp::new(d.path().to_path_buf());
        // Missing folders are made; a file is read back.
        esp.replace("coreos/grub/grubenv", &[b'#'; 1024]).unwrap();
        esp.replace("coreos/usr-b.cfg", b"set b_version=1\n")
            .unwrap();
        assert_eq!(
            esp.read("coreos/grub/grubenv").unwrap().unwrap().len(),
            1024
        );
        assert_eq!(esp.read("coreos/nothing").unwrap(), None);

        // In place: same inode (same blocks on FAT), same size, new bytes; a reader's open
        // descriptor sees them.
        let env = d.path().join("coreos/grub/grubenv");
        let before = std::fs::metadata(&env).unwrap();
        let held = File::open(&env).unwrap();
        let mut block = vec![b'#'; 1024];
        block[..15].copy_from_slice(b"# GRUB Environ\n");
        esp.overwrite_in_place("coreos/grub/grubenv", &block)
            .unwrap();
        let after = std::fs::metadata(&env).unwrap();
        assert_eq!((after.ino(), after.len()), (before.ino(), 1024));
        let mut seen = vec![0; 1024];
        held.read_exact_at(&mut seen, 0).unwrap();
        assert_eq!(seen, block);
        // Another size is refused, the file untouched.
        assert!(esp
            .overwrite_in_place("coreos/grub/grubenv", &[0; 512])
            .is_err());
        assert_eq!(std::fs::read(&env).unwrap(), block);

        // Replaced: a new inode under the old name (a reader keeps the old bytes), nothing
        // temporary left behind.
        let cfg = d.path().join("coreos/usr-b.cfg");
        let old_ino = std::fs::metadata(&cfg).unwrap().ino();
        let held = File::open(&cfg).unwrap();
        esp.replace("coreos/usr-b.cfg", b"set b_version=2\n")
            .unwrap();
        assert_ne!(std::fs::metadata(&cfg).unwrap().ino(), old_ino);
        assert_eq!(std::fs::read(&cfg).unwrap(), b"set b_version=2\n");
        let mut old = vec![0; 16];
        held.read_exact_at(&mut old, 0).unwrap();
        assert_eq!(old, b"set b_version=1\n");
        let names: Vec<String> = std::fs::read_dir(d.path().join("coreos"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(TMP_SUFFIX)), "{names:?}");

        assert!(esp.remove("coreos/usr-b.cfg").unwrap());
        assert!(!esp.remove("coreos/usr-b.cfg").unwrap());
        esp.sync().unwrap();
    }
}
