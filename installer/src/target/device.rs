//! Resolving `-d` (symlinks such as /dev/disk/by-id/... included) to a whole-disk block device
//! and opening it exclusively.

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// linux/fs.h: `#define BLKGETSIZE64 _IOR(0x12,114,size_t)`.
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;

#[derive(Debug, Clone)]
pub struct TargetDisk {
    /// The resolved device node, e.g. /dev/loop3.
    pub path: PathBuf,
    /// Kernel name, e.g. loop3 (the /sys/class/block entry).
    pub name: String,
    pub major: u32,
    pub minor: u32,
}

impl TargetDisk {
    /// Resolve and check that `given` is a whole-disk block device.
    pub fn resolve(given: &Path) -> Result<TargetDisk> {
        let path = std::fs::canonicalize(given)
            .with_context(|| format!("target device {}: does not exist", given.display()))?;
        let md = std::fs::metadata(&path)
            .with_context(|| format!("target device {}", path.display()))?;
        if !md.file_type().is_block_device() {
            bail!(
                "target device {} is not a block device",
                display(given, &path)
            );
        }
        let rdev = md.rdev();
        let (major, minor) = (libc::major(rdev), libc::minor(rdev));
        let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
        let sys = std::fs::canonicalize(&sys)
            .with_context(|| format!("{}: no {}", path.display(), sys.display()))?;
        let name = sys.file_name().unwrap().to_string_lossy().into_owned();
        if sys.join("partition").exists() {
            let parent = sys
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            bail!(
                "target device {} is a partition (of /dev/{parent}), not a whole disk; give the whole disk",
                display(given, &path)
            );
        }
        Ok(TargetDisk {
            path,
            name,
            major,
            minor,
        })
    }

    pub fn sys(&self) -> PathBuf {
        PathBuf::from(format!("/sys/class/block/{}", self.name))
    }

    /// Open read-write with O_EXCL: the kernel refuses when the disk or any partition of it is
    /// mounted, used by device-mapper/md, or open exclusively by anyone else.
    pub fn open_exclusive(&self) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_EXCL | libc::O_CLOEXEC)
            .open(&self.path)
            .with_context(|| match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EBUSY) => format!(
                    "target device {} is in use (mounted, swap, or held by another device)",
                    self.path.display()
                ),
                Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => {
                    format!(
                        "target device {} is not writable (are you root?)",
                        self.path.display()
                    )
                }
                _ => format!("cannot open target device {}", self.path.display()),
            })
    }

    /// Size in bytes.
    pub fn size(&self, f: &File) -> Result<u64> {
        let mut size: u64 = 0;
        // SAFETY: BLKGETSIZE64 writes a u64; fd is valid.
        let rc = unsafe { libc::ioctl(f.as_raw_fd(), BLKGETSIZE64 as _, &mut size) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("BLKGETSIZE64 on {}", self.path.display()));
        }
        Ok(size)
    }

    /// Kernel names of the disk's partitions (from sysfs).
    pub fn partition_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.sys()) {
            for e in rd.flatten() {
                if e.path().join("partition").exists() {
                    out.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }
}

fn display(given: &Path, path: &Path) -> String {
    if given == path {
        given.display().to_string()
    } else {
        format!("{} (-> {})", given.display(), path.display())
    }
}
