//! Every artifact is written under a temporary name in its final folder and renamed into place
//! only when complete, so a failed or interrupted run never leaves a half-written file under a
//! final name. The rename is atomic because the temporary file is in the same folder.

use anyhow::Context;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One artifact being written: `.NAME.partial` beside `NAME`, removed on drop unless committed.
pub struct Pending {
    pub file: File,
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl Pending {
    /// Create `<dir>/.<name>.partial` (replacing a stale one) for `dest` = `<dir>/<name>`.
    pub fn create(dest: &Path) -> anyhow::Result<Pending> {
        let name = dest
            .file_name()
            .with_context(|| format!("artifact path {} has no file name", dest.display()))?
            .to_string_lossy();
        let tmp = dest.with_file_name(format!(".{name}.partial"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        Ok(Pending {
            file,
            tmp,
            dest: dest.to_path_buf(),
            committed: false,
        })
    }

    /// A small text artifact, written at once and committed later with the others.
    pub fn text(dest: &Path, text: &str) -> anyhow::Result<Pending> {
        let mut p = Pending::create(dest)?;
        p.file
            .write_all(text.as_bytes())
            .with_context(|| format!("writing {}", p.tmp.display()))?;
        Ok(p)
    }

    /// Remove what an earlier run left under the final name, on a thread of its own: freeing
    /// a multi-GiB image blocks for a tenth of a second or more (its blocks are freed, and
    /// discarded on filesystems mounted with `discard`), time the build spends on its own work
    /// meanwhile. The name is then absent until `commit`, which must come after `join`.
    pub fn remove_previous(&self) -> std::thread::JoinHandle<anyhow::Result<()>> {
        let dest = self.dest.clone();
        std::thread::spawn(move || match std::fs::remove_file(&dest) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing the previous {}", dest.display()))
            }
            _ => Ok(()),
        })
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// The temporary file, for tools that take a path (it moves on commit).
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// Flush the data to disk, then give the artifact its final name: after a crash the final
    /// name holds either the old file or the whole new one.
    pub fn commit(mut self) -> anyhow::Result<PathBuf> {
        self.file
            .sync_all()
            .with_context(|| format!("syncing {}", self.tmp.display()))?;
        std::fs::rename(&self.tmp, &self.dest).with_context(|| {
            format!("renaming {} to {}", self.tmp.display(), self.dest.display())
        })?;
        self.committed = true;
        Ok(std::mem::take(&mut self.dest))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Write `bytes` as `dest` in one step.
pub fn write(dest: &Path, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let mut p = Pending::create(dest)?;
    p.file
        .write_all(bytes)
        .with_context(|| format!("writing {}", p.tmp.display()))?;
    p.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn commit_renames_the_temporary_file_to_the_final_name() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("a.bin");
        let mut p = Pending::create(&dest).unwrap();
        p.file.write_all(b"whole").unwrap();
        assert_eq!(p.tmp_path(), d.path().join(".a.bin.partial"));
        assert!(!dest.exists(), "the final name appears only on commit");
        assert_eq!(p.commit().unwrap(), dest);
        assert_eq!(std::fs::read(&dest).unwrap(), b"whole");
        assert_eq!(names(d.path()), ["a.bin"]);
    }

    #[test]
    fn remove_previous_clears_the_final_name_until_commit() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("img"), b"old").unwrap();
        let mut p = Pending::create(&d.path().join("img")).unwrap();
        p.remove_previous().join().unwrap().unwrap();
        assert!(!d.path().join("img").exists());
        p.file.write_all(b"new").unwrap();
        let dest = p.commit().unwrap();
        assert_eq!(std::fs::read(dest).unwrap(), b"new");
        // Nothing to remove is fine; a folder in the way is a named error.
        let p = Pending::create(&d.path().join("other")).unwrap();
        p.remove_previous().join().unwrap().unwrap();
        std::fs::create_dir(d.path().join("dir")).unwrap();
        let p = Pending::create(&d.path().join("dir")).unwrap();
        let e = format!("{:#}", p.remove_previous().join().unwrap().unwrap_err());
        assert!(
            e.contains("removing the previous") && e.contains("dir"),
            "{e}"
        );
    }

    #[test]
    fn drop_without_commit_removes_the_temporary_file() {
        let d = tempfile::tempdir().unwrap();
        let p = Pending::text(&d.path().join("v.txt"), "half").unwrap();
        assert!(p.tmp_path().exists());
        drop(p);
        assert!(names(d.path()).is_empty(), "{:?}", names(d.path()));
    }

    #[test]
    fn a_failed_step_leaves_no_file_under_the_final_name() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("img.bin");
        let run = || -> anyhow::Result<PathBuf> {
            let mut p = Pending::create(&dest)?;
            p.file.write_all(b"new but incomplete")?;
            anyhow::bail!("the build failed halfway");
        };
        assert!(run().is_err());
        assert!(names(d.path()).is_empty(), "{:?}", names(d.path()));

        // Over an earlier artifact: the old file stays whole.
        std::fs::write(&dest, b"old").unwrap();
        assert!(run().is_err());
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert_eq!(names(d.path()), ["img.bin"]);

        // A folder that does not exist: nothing is created anywhere.
        let missing = d.path().join("no/such/x.bin");
        assert!(write(&missing, b"x").is_err());
        assert!(!missing.exists());
    }

    #[test]
    fn write_replaces_an_existing_file_whole() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("version.txt");
        write(&dest, b"1").unwrap();
        write(&dest, b"22").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"22");
        assert_eq!(names(d.path()), ["version.txt"]);
    }
}
