//! What goes on the EFI system partition: the kernel (`coreos/vmlinuz-a`), its initrd when
//! the tree has one, and the bootloader's files.

use crate::bootloader::BootAssets;
use anyhow::Context;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// Resolve `rel` inside `root`, following symlinks as if `root` were `/usr` on the target
/// (Debian's `boot/vmlinuz` is a symlink; an absolute target must not escape to the host).
pub fn resolve_in_tree(root: &Path, rel: &Path) -> Option<PathBuf> {
    let parts = |p: &Path| -> Vec<OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_owned()),
                Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .rev()
            .collect()
    };
    let mut cur = PathBuf::new();
    let mut todo = parts(rel);
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&c);
        let full = root.join(&next);
        if !std::fs::symlink_metadata(&full)
            .ok()?
            .file_type()
            .is_symlink()
        {
            cur = next;
            continue;
        }
        hops += 1;
        if hops > 40 {
            return None;
        }
        let target = std::fs::read_link(&full).ok()?;
        if target.is_absolute() {
            cur = PathBuf::new();
            todo.extend(parts(target.strip_prefix("/usr").ok()?));
        } else {
            todo.extend(parts(&target));
        }
    }
    Some(root.join(cur))
}

/// ESP files: `coreos/vmlinuz-a` from the tree's `boot/vmlinuz`, `coreos/initrd-a` from
/// `boot/initrd`, then the bootloader's.
pub fn esp_files(usr: &Path, boot: Option<&BootAssets>) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for (src, dst) in [
        ("boot/vmlinuz", "coreos/vmlinuz-a"),
        ("boot/initrd", "coreos/initrd-a"),
    ] {
        match resolve_in_tree(usr, Path::new(src)).filter(|p| p.is_file()) {
            Some(p) => files.push((
                dst.to_string(),
                std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?,
            )),
            None if dst.ends_with("vmlinuz-a") => {
                tracing::warn!(
                    "{} has no boot/vmlinuz: the ESP gets no kernel",
                    usr.display()
                )
            }
            None => {}
        }
    }
    if let Some(b) = boot {
        files.extend(b.esp_files.iter().cloned());
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_links_inside_the_tree() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("boot")).unwrap();
        std::fs::create_dir_all(d.path().join("lib/modules")).unwrap();
        std::fs::write(d.path().join("lib/modules/vmlinuz-6"), b"kernel").unwrap();
        std::os::unix::fs::symlink("/usr/lib/modules/vmlinuz-6", d.path().join("boot/vmlinuz"))
            .unwrap();
        std::os::unix::fs::symlink("../lib/modules/vmlinuz-6", d.path().join("boot/initrd"))
            .unwrap();
        let f = esp_files(d.path(), None).unwrap();
        assert_eq!(
            f,
            vec![
                ("coreos/vmlinuz-a".to_string(), b"kernel".to_vec()),
                ("coreos/initrd-a".to_string(), b"kernel".to_vec())
            ]
        );
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("boot/escape")).unwrap();
        assert_eq!(resolve_in_tree(d.path(), Path::new("boot/escape")), None);
    }
}
