//! `flock` on a whole disk (or disk image) for as long as a command works on it: udev does not
//! probe a locked disk, partitioning tools wait for it, and a second coreos-update or
//! coreos-install waits, then fails naming the lock, instead of interleaving GPT and FAT edits.

use crate::BlockDevError;
use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// Readers (`status`): many at once, none while a writer works.
    Shared,
    /// Writers: one at a time.
    Exclusive,
}

/// A held lock; released when dropped (or when its file is closed).
#[derive(Debug)]
pub struct DiskLock {
    file: File,
}

impl Drop for DiskLock {
    fn drop(&mut self) {
        // SAFETY: flock on a descriptor this struct owns.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Take `kind` on `path`, waiting up to `wait` for another holder.
pub fn lock(path: &Path, kind: LockKind, wait: Duration) -> Result<DiskLock, BlockDevError> {
    // Its own descriptor: the lock belongs to this open file description, and closing another
    // descriptor of the same disk does not release it.
    let file = File::open(path).map_err(|source| BlockDevError::Io {
        what: "opening",
        path: path.display().to_string(),
        source,
    })?;
    let op = match kind {
        LockKind::Shared => libc::LOCK_SH,
        LockKind::Exclusive => libc::LOCK_EX,
    };
    let start = Instant::now();
    loop {
        // SAFETY: flock on a valid descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(DiskLock { file });
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(BlockDevError::Io {
                what: "flock",
                path: path.display().to_string(),
                source: e,
            });
        }
        if start.elapsed() >= wait {
            return Err(BlockDevError::Locked {
                path: path.display().to_string(),
                waited_s: wait.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_waits_then_fails_naming_the_lock() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let held = lock(f.path(), LockKind::Exclusive, Duration::ZERO).unwrap();
        let t = Instant::now();
        let e = lock(f.path(), LockKind::Exclusive, Duration::from_millis(300)).unwrap_err();
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert!(
            e.to_string().contains("is locked by another program"),
            "{e}"
        );
        assert!(lock(f.path(), LockKind::Shared, Duration::ZERO).is_err());
        drop(held);
        let a = lock(f.path(), LockKind::Shared, Duration::ZERO).unwrap();
        let _b = lock(f.path(), LockKind::Shared, Duration::ZERO).unwrap();
        assert!(lock(f.path(), LockKind::Exclusive, Duration::ZERO).is_err());
        drop(a);
    }
}
