//! Artifacts written under a temporary name in the output folder and renamed only when the
//! whole build succeeded, so a failure never leaves a half-written file under a final name.

use anyhow::Context;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// One artifact being written: `.NAME.partial` beside `NAME`, removed on drop unless renamed.
pub struct Pending {
    pub file: File,
    tmp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl Pending {
    pub fn create(dir: &Path, name: &str) -> anyhow::Result<Pending> {
        let tmp = dir.join(format!(".{name}.partial"));
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
            dest: dir.join(name),
            done: false,
        })
    }

    /// A small text artifact, complete at once.
    pub fn text(dir: &Path, name: &str, text: &str) -> anyhow::Result<Pending> {
        let p = Pending::create(dir, name)?;
        std::fs::write(&p.tmp, text).with_context(|| format!("writing {}", p.tmp.display()))?;
        Ok(p)
    }

    /// Remove what an earlier build left under the final name, on a thread of its own: freeing
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

    /// Give the artifact its final name.
    pub fn commit(mut self) -> anyhow::Result<PathBuf> {
        std::fs::rename(&self.tmp, &self.dest)
            .with_context(|| format!("renaming to {}", self.dest.display()))?;
        self.done = true;
        Ok(self.dest.clone())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_previous_clears_the_final_name_until_commit() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("img"), b"old").unwrap();
        let p = Pending::create(d.path(), "img").unwrap();
        p.remove_previous().join().unwrap().unwrap();
        assert!(!d.path().join("img").exists());
        std::fs::write(&p.tmp, b"new").unwrap();
        let dest = p.commit().unwrap();
        assert_eq!(std::fs::read(dest).unwrap(), b"new");
        // Nothing to remove is fine; a folder in the way is a named error.
        let p = Pending::create(d.path(), "other").unwrap();
        p.remove_previous().join().unwrap().unwrap();
        std::fs::create_dir(d.path().join("dir")).unwrap();
        let p = Pending::create(d.path(), "dir").unwrap();
        let e = format!("{:#}", p.remove_previous().join().unwrap().unwrap_err());
        assert!(
            e.contains("removing the previous") && e.contains("dir"),
            "{e}"
        );
    }
}
