//! The mirror tree: copies into `MIRROR/<board>/<version>/`, and `MIRROR/<board>/current`, a
//! symlink replaced atomically.

use anyhow::{Context, Result};
use std::fs::File;
use std::path::Path;

/// Copy a small file into place atomically.
pub fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    crate::atomic_output::write(to, &bytes)?;
    Ok(())
}

/// `X.Y.Z` as numbers, for "newest"; anything else sorts first.
fn version_key(v: &str) -> Option<Vec<u64>> {
    v.split(['.', '+', '-'])
        .take(3)
        .map(|p| p.parse().ok())
        .collect()
}

/// Point `board_dir/current` at the newest version folder in `board_dir`.
pub fn update_current(board_dir: &Path) -> Result<String> {
    let mut newest: Option<(Vec<u64>, String)> = None;
    for e in
        std::fs::read_dir(board_dir).with_context(|| format!("listing {}", board_dir.display()))?
    {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !e.file_type()?.is_dir() || name.starts_with('.') {
            continue;
        }
        if let Some(k) = version_key(&name) {
            if newest.as_ref().is_none_or(|(nk, _)| k > *nk) {
                newest = Some((k, name));
            }
        }
    }
    let (_, name) =
        newest.with_context(|| format!("no version folder in {}", board_dir.display()))?;
    let link = board_dir.join("current");
    let tmp = board_dir.join(".current.tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&name, &tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    std::fs::rename(&tmp, &link).with_context(|| format!("replacing {}", link.display()))?;
    Ok(name)
}

/// A sparse copy of `from` as `to` (see `disk::sparse::copy`).
pub fn sparse_copy(from: &Path, to: &Path) -> Result<()> {
    let src = File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let dst = File::create(to).with_context(|| format!("creating {}", to.display()))?;
    disk::sparse::copy(&src, &dst, None)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_points_at_the_newest_version() {
        let d = tempfile::tempdir().unwrap();
        for v in ["9.0.0", "10.0.0", "10.0.1", ".work"] {
            std::fs::create_dir(d.path().join(v)).unwrap();
        }
        assert_eq!(update_current(d.path()).unwrap(), "10.0.1");
        assert_eq!(
            std::fs::read_link(d.path().join("current")).unwrap(),
            Path::new("10.0.1")
        );
        std::fs::create_dir(d.path().join("11.0.0")).unwrap();
        assert_eq!(update_current(d.path()).unwrap(), "11.0.0");
    }
}
