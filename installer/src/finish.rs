//! After the commit: the install is complete and verified, and what is left only tidies the
//! disk and tells the system about it — the backup GPT moved to the end of a larger disk, the
//! kernel's partition nodes, udev. Each step runs on its own thread with a time bound: one
//! that fails or cannot finish (a device that stops answering, a kernel or udev that never
//! settles) is a warning that says what to run instead, never a hang before "Success!" (an
//! unattended install waits for that line to power off).

use crate::target::{partitions, TargetDisk};
use anyhow::{Context, Result};
use disk::layout::Partition;
use std::fs::File;
use std::sync::mpsc;
use std::time::Duration;

/// Moving the backup GPT is a few small writes and an fsync.
const RELOCATE_LIMIT: Duration = Duration::from_secs(60);
/// BLKRRPART retries for about 12 s while the disk is busy; BLKPG is immediate.
const KERNEL_LIMIT: Duration = Duration::from_secs(60);
/// `udevadm settle --timeout=30`, and a little for udevadm itself.
const UDEV_LIMIT: Duration = Duration::from_secs(45);

/// The steps after the commit, each bounded; every problem is logged as a warning.
pub fn run(
    dev: &File,
    disk: &TargetDisk,
    parts: &[Partition],
    image_size: u64,
    disk_size: u64,
) -> Result<()> {
    if image_size < disk_size {
        let moving = dev.try_clone().context("dup of the disk's descriptor")?;
        let moved = bounded("moving the backup GPT", RELOCATE_LIMIT, move || {
            disk::gpt::relocate_backup(&moving, disk_size)
                .map_err(anyhow::Error::from)
                .and_then(|()| moving.sync_all().context("fsync"))
        });
        if let Ok(Err(e)) | Err(e) = moved {
            tracing::warn!(
                "the install is complete, but moving the backup GPT to the end of the disk \
                 failed ({e:#}); `sgdisk -e {}` moves it",
                disk.path.display()
            );
        }
    }
    let (telling, target, table) = (
        dev.try_clone().context("dup of the disk's descriptor")?,
        disk.clone(),
        parts.to_vec(),
    );
    if let Ok(problems) = bounded("telling the kernel", KERNEL_LIMIT, move || {
        partitions::tell_kernel(&telling, &target, &table)
    }) {
        for problem in problems {
            tracing::warn!("{problem}");
        }
    }
    // udev waits for the disk's flock before it probes the new partitions.
    TargetDisk::unlock(dev);
    let _ = bounded("udevadm settle", UDEV_LIMIT, partitions::udev_settle);
    Ok(())
}

/// Run `step` on its own thread and wait at most `limit` for it. Past the limit the thread is
/// left behind (it ends with the process) and the error names the step.
pub fn bounded<T: Send + 'static>(
    what: &str,
    limit: Duration,
    step: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(what.chars().take(15).collect())
        .spawn(move || {
            let _ = tx.send(step());
        })
        .with_context(|| format!("starting a thread for {what}"))?;
    match rx.recv_timeout(limit) {
        Ok(v) => Ok(v),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            tracing::warn!(
                "{what} did not finish in {:.1} s; the install is complete, so it is left behind",
                limit.as_secs_f64()
            );
            anyhow::bail!("{what}: no answer in {:.1} s", limit.as_secs_f64())
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            anyhow::bail!("{what} panicked (see above); the install is complete")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_step_that_finishes_gives_its_result() {
        assert_eq!(bounded("quick", Duration::from_secs(5), || 7).unwrap(), 7);
    }

    #[test]
    fn a_step_that_never_finishes_is_given_up_at_its_limit() {
        let start = Instant::now();
        let (_keep, stuck) = mpsc::channel::<()>();
        let e = bounded("stuck step", Duration::from_millis(200), move || {
            // Blocks for as long as the test holds the sender: a step that never answers.
            let _ = stuck.recv();
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("stuck step: no answer in 0.2 s"), "{e}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_step_that_panics_is_an_error_not_a_hang() {
        let e = bounded("panicking step", Duration::from_secs(5), || -> u8 {
            panic!("boom")
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("panicking step panicked"), "{e}");
    }
}
