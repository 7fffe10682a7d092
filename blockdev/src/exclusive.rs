//! An `O_EXCL` open of a partition's block device: while it is open the kernel refuses to
//! mount the partition or let device-mapper claim it, so nothing starts using a slot or the
//! ESP between the check and the write. (Image files have no such claim; their users are
//! found through loop devices, see `in_use`.)

use crate::BlockDevError;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A held partition; the claim ends when dropped.
#[derive(Debug)]
pub struct PartitionHold {
    pub device: PathBuf,
    _file: File,
}

/// The device node of partition `number` of the whole-disk block device `disk`, from sysfs.
pub fn partition_node(disk: &Path, number: u32) -> Option<PathBuf> {
    let md = std::fs::metadata(disk).ok()?;
    if !md.file_type().is_block_device() {
        return None;
    }
    let sys = format!(
        "/sys/dev/block/{}:{}",
        libc::major(md.rdev()),
        libc::minor(md.rdev())
    );
    for e in std::fs::read_dir(sys).ok()?.flatten() {
        let n = std::fs::read_to_string(e.path().join("partition")).unwrap_or_default();
        if n.trim() == number.to_string() {
            return Some(Path::new("/dev").join(e.file_name()));
        }
    }
    None
}

/// Hold partition `number` of `disk` with `O_EXCL`; None for an image file (or a disk whose
/// partition node the kernel has not made).
pub fn hold_partition(disk: &Path, number: u32) -> Result<Option<PartitionHold>, BlockDevError> {
    let Some(device) = partition_node(disk, number) else {
        return Ok(None);
    };
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(&device)
    {
        Ok(f) => Ok(Some(PartitionHold { device, _file: f })),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Err(BlockDevError::Busy {
            path: device.display().to_string(),
            users: {
                let u = crate::in_use::users(disk, number, 0);
                if u.is_empty() {
                    "held by another program".into()
                } else {
                    u.join("; ")
                }
            },
        }),
        Err(source) => Err(BlockDevError::Io {
            what: "opening (O_EXCL)",
            path: device.display().to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_file_has_no_partition_to_hold() {
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(hold_partition(f.path(), 1).unwrap().is_none());
    }
}
