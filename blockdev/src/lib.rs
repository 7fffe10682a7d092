//! Block-device safety both binaries need before they write a disk, in one place, split by
//! concern: `lock` (the BSD `flock` udev and partitioning tools honour, held for a whole
//! command), `exclusive` (an `O_EXCL` hold on a partition, so the kernel refuses to mount it
//! meanwhile), `in_use` (who mounts or holds a partition, for a message that names them).
//! The installer still has its own copies (installer/src/target/); moving it here is the next
//! step.

pub mod exclusive;
pub mod in_use;
pub mod lock;

pub use exclusive::{hold_partition, PartitionHold};
pub use in_use::{mounts, users, Mount};
pub use lock::{lock, DiskLock, LockKind};

/// `syncfs(2)`: flush the whole filesystem `file` is on (a mounted ESP's FAT and directories
/// after its files were written and fsynced one by one).
pub fn syncfs(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: syncfs takes a descriptor, which `file` keeps open for the call.
    if unsafe { libc::syncfs(file.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum BlockDevError {
    #[error(
        "{path} is locked by another program (a BSD flock held for {waited_s}s: another \
         coreos-update or coreos-install, a partitioning tool, or udev); try again when it is done"
    )]
    Locked { path: String, waited_s: u64 },
    #[error("{path} is in use (the kernel refuses an exclusive open: mounted or held): {users}")]
    Busy { path: String, users: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}
