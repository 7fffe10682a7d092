//! An artifact written under a temporary name in its final folder and renamed into place only
//! when complete, so a failed or interrupted run never leaves a half-written file behind.

use anyhow::Context;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

pub struct OutputFile {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl OutputFile {
    /// Create `<dir>/.<name>.partial` (replacing a stale one) for `<dir>/<name>`.
    pub fn create(dest: &Path) -> anyhow::Result<(OutputFile, File)> {
        let name = dest
            .file_name()
            .context("artifact path has no file name")?
            .to_string_lossy();
        let tmp = dest.with_file_name(format!(".{name}.partial"));
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        Ok((
            OutputFile {
                tmp,
                dest: dest.to_path_buf(),
                committed: false,
            },
            f,
        ))
    }

    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// Flush to disk and rename to the final name.
    pub fn commit(mut self, file: File) -> anyhow::Result<PathBuf> {
        file.sync_all()
            .with_context(|| format!("syncing {}", self.tmp.display()))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.dest).with_context(|| {
            format!("renaming {} to {}", self.tmp.display(), self.dest.display())
        })?;
        self.committed = true;
        Ok(self.dest.clone())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
