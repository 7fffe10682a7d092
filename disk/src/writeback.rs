//! Early writeback: while a large file is being written, a thread asks the kernel every few
//! milliseconds to start writing its dirty pages (`sync_file_range(SYNC_FILE_RANGE_WRITE)`,
//! which does not wait for them). The final `fsync`/`fdatasync` then waits for the last
//! stretch only, instead of for every byte the writers produced: on an image whose write
//! takes a second, that `fsync` was 40% of the run. Durability is unchanged; the caller still
//! syncs before it relies on the data.
//!
//! The kick runs on its own thread because `sync_file_range` may block while the device's
//! queue is full, and the writers must not.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the dirty pages are handed to the device. Short enough that little is left for
/// the final sync, long enough that a page the writers touch twice (metadata) is rarely
/// written twice.
const PERIOD: Duration = Duration::from_millis(50);

/// Starts writeback of `file`'s dirty pages every [`PERIOD`] until dropped.
pub struct EarlyWriteback {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EarlyWriteback {
    /// Start on a clone of `file` (a regular file or a block device). A file on which the
    /// kernel refuses `sync_file_range` is left to the final sync, as before.
    pub fn start(file: &File) -> EarlyWriteback {
        let Ok(file) = file.try_clone() else {
            return EarlyWriteback {
                stop: None,
                thread: None,
            };
        };
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("writeback".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(PERIOD) {
                    if start_writeback(&file).is_err() {
                        tracing::debug!("sync_file_range refused; the final sync does it all");
                        return;
                    }
                }
            })
            .ok();
        EarlyWriteback {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for EarlyWriteback {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Start writing every dirty page of `file` to its device; returns without waiting for it.
pub fn start_writeback(file: &File) -> std::io::Result<()> {
    // SAFETY: sync_file_range takes a descriptor and integers; no memory is passed.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_data_written_under_writeback_is_the_data_read_back() {
        let mut f = tempfile::tempfile().unwrap();
        let wb = EarlyWriteback::start(&f);
        let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        for _ in 0..8 {
            f.write_all(&chunk).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(wb);
        f.sync_all().unwrap();
        let mut back = Vec::new();
        use std::io::{Read, Seek};
        f.rewind().unwrap();
        f.read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), 8 << 20);
        assert!(back.chunks(1 << 20).all(|c| c == chunk));
    }

    #[test]
    fn start_writeback_is_refused_on_a_pipe() {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two descriptors into the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the descriptors were just created and are owned here.
        let (r, w) = unsafe {
            use std::os::unix::io::FromRawFd;
            (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1]))
        };
        assert!(
            start_writeback(&w).is_err(),
            "a pipe has no pages to write back"
        );
        drop((r, w));
    }
}
