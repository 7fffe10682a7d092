//! Every artifact is written under a temporary name in its final folder and renamed into place
//! only when complete, so a failed or interrupted run never leaves a half-written file under a
//! final name. The rename is atomic because the temporary file is in the same folder.
//! While an artifact is written its pages go to the disk early (`disk::writeback`), so the
//! sync before the rename waits only for the last of them.

use anyhow::Context;
use disk::writeback::EarlyWriteback;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One artifact being written: `.NAME.partial` beside `NAME`, removed on drop unless committed.
pub struct Pending {
    pub file: File,
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
    writeback: Option<EarlyWriteback>,
    /// fsync before the rename (not for a work file that is read back and deleted).
    durable: bool,
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
        let writeback = Some(EarlyWriteback::start(&file));
        Ok(Pending {
            file,
            tmp,
            dest: dest.to_path_buf(),
            committed: false,
            writeback,
            durable: true,
        })
    }

    /// A small text artifact, written at once and committed later with the others.
    pub fn text(dest: &Path, text: &str) -> anyhow::Result<Pending> {
        let mut p = Pending::create(dest)?;
        p.writeback = None; // a few bytes: nothing to start early
        p.file
            .write_all(text.as_bytes())
            .with_context(|| format!("writing {}", p.tmp.display()))?;
        Ok(p)
    }

    /// Commit without the fsync: for a work file that is read back at once and deleted (the
    /// release's raw image), whose durability buys nothing. The rename still makes it appear
    /// only when complete.
    pub fn not_durable(mut self) -> Self {
        self.durable = false;
        // Nor any early write-back: nothing will wait for the disk.
        drop(self.writeback.take());
        self
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
    pub fn commit(self) -> anyhow::Result<PathBuf> {
        Ok(self.commit_replacing()?.0)
    }

    /// `commit`, for a large artifact: the file the rename replaces is freed on a thread of
    /// its own. Freeing a multi-GiB image's blocks (and discarding them on filesystems mounted
    /// with `discard`) takes a tenth of a second or more, and happens when its last reference
    /// goes: the rename would do it inline. Holding the old file open across the rename moves
    /// that to the thread that closes it, while the caller commits the rest. The previous file
    /// is whole under its name until the rename, so a failed build never loses it.
    pub fn commit_replacing(mut self) -> anyhow::Result<(PathBuf, FreePrevious)> {
        drop(self.writeback.take());
        if self.durable {
            self.file
                .sync_all()
                .with_context(|| format!("syncing {}", self.tmp.display()))?;
        }
        // A reference that outlives the rename: opening may fail (no previous file, or not
        // readable), and then the rename frees it inline as usual.
        let previous = File::open(&self.dest).ok();
        std::fs::rename(&self.tmp, &self.dest).with_context(|| {
            format!("renaming {} to {}", self.tmp.display(), self.dest.display())
        })?;
        self.committed = true;
        let freeing = previous.map(|f| std::thread::spawn(move || drop(f)));
        Ok((std::mem::take(&mut self.dest), FreePrevious(freeing)))
    }
}

/// The file a `commit_replacing` replaced, being freed in the background; `wait` for it, or
/// drop it to let the process exit do the rest.
pub struct FreePrevious(Option<std::thread::JoinHandle<()>>);

impl FreePrevious {
    pub fn wait(self) {
        if let Some(t) = self.0 {
            let _ = t.join();
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        drop(self.writeback.take());
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
    fn commit_replacing_keeps_the_previous_file_until_the_rename() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("img");
        std::fs::write(&dest, b"old").unwrap();
        let mut p = Pending::create(&dest).unwrap();
        p.file.write_all(b"new").unwrap();
        assert_eq!(
            std::fs::read(&dest).unwrap(),
            b"old",
            "old until the commit"
        );
        let (path, freeing) = p.commit_replacing().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        freeing.wait();
        assert_eq!(names(d.path()), ["img"]);
        // Nothing to replace is fine too.
        let mut p = Pending::create(&d.path().join("other")).unwrap();
        p.file.write_all(b"x").unwrap();
        p.commit_replacing().unwrap().1.wait();
        assert_eq!(names(d.path()), ["img", "other"]);
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
