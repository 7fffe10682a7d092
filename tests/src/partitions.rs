//! Looking into a built disk image with real tools: one partition copied out to a sparse file
//! (so `e2fsck`, `fsck.vfat`, `veritysetup` can judge it without loop devices), `sgdisk -i`
//! fields, and a manifest of a folder tree for comparing what was written with what was read.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::process::Command;

/// Copy bytes `[offset, offset+len)` of `image` into a new sparse temporary file.
pub fn extract(image: &Path, offset: u64, len: u64) -> tempfile::NamedTempFile {
    let src = File::open(image).unwrap();
    let out = tempfile::NamedTempFile::new_in(crate::cache()).unwrap();
    out.as_file().set_len(len).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0;
    while pos < len {
        let n = buf.len().min((len - pos) as usize);
        src.read_exact_at(&mut buf[..n], offset + pos).unwrap();
        if buf[..n].iter().any(|&b| b != 0) {
            out.as_file().write_all_at(&buf[..n], pos).unwrap();
        }
        pos += n as u64;
    }
    out
}

/// `sgdisk -i N IMAGE` as field → value ("First sector" → "4096 (at 2.0 MiB)").
pub fn sgdisk_info(image: &Path, n: u32) -> BTreeMap<String, String> {
    let out = crate::run(
        Command::new("sgdisk")
            .arg("-i")
            .arg(n.to_string())
            .arg(image),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_once(": ")
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// One line per entry of a tree: type, mode, owner, size and content hash or link target.
pub fn manifest(root: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    walk(root, root, &mut m);
    m
}

fn walk(root: &Path, dir: &Path, m: &mut BTreeMap<String, String>) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if rel == "lost+found" {
            continue;
        }
        let md = fs::symlink_metadata(&p).unwrap();
        let what = if md.file_type().is_symlink() {
            format!("link {}", fs::read_link(&p).unwrap().display())
        } else if md.is_dir() {
            "dir".to_string()
        } else if md.is_file() {
            format!("file {} {}", md.len(), crate::sha256_file(&p))
        } else {
            format!("special {:x}", md.rdev())
        };
        m.insert(
            rel,
            format!("{:o} {}:{} {what}", md.mode(), md.uid(), md.gid()),
        );
        if md.is_dir() {
            walk(root, &p, m);
        }
    }
}
