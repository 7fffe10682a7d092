//! The disk an update works on: `-d DISK` (an image file or a block device) or the disk the
//! running system booted from; its ESP; and which slot, if any, is running from it.

use crate::boot_disk::{self, Booted};
use anyhow::{anyhow, bail, Context, Result};
use disk::layout::Partition;
use disk::slots::{GptSlots, Slot, UsrPartition};
use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// For tests: `COREOS_UPDATE_PRETEND_BOOTED=a|b` makes a disk **image file** behave as the
/// disk the running system booted from that slot, so the rules for a running system (the
/// trial boot, the slot never to write) can be tested without a VM. Ignored for block
/// devices: a real disk's booted slot is only ever the one the kernel reports.
pub const PRETEND_BOOTED_ENV: &str = "COREOS_UPDATE_PRETEND_BOOTED";

fn pretend_booted(file: &File) -> Result<Option<Slot>> {
    let Ok(v) = std::env::var(PRETEND_BOOTED_ENV) else {
        return Ok(None);
    };
    if v.is_empty() || !file.metadata()?.file_type().is_file() {
        return Ok(None);
    }
    Slot::parse(&v)
        .map(Some)
        .ok_or_else(|| anyhow!("{PRETEND_BOOTED_ENV}={v:?} is not a slot: a or b"))
}

static LOCK_WAIT: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();

/// How long `open` waits for another holder of the disk's lock (`--wait`).
pub fn set_lock_wait(wait: std::time::Duration) {
    let _ = LOCK_WAIT.set(wait);
}

fn lock_wait() -> std::time::Duration {
    LOCK_WAIT
        .get()
        .copied()
        .unwrap_or(std::time::Duration::from_secs(300))
}

/// The EFI system partition's type (UEFI 2.10 §5.3.3).
const ESP_TYPE: uuid::Uuid = uuid::uuid!("c12a7328-f81f-11d2-ba4b-00a0c93ec93b");

pub struct UpdateDisk {
    /// The disk's flock, held for the whole command (see `blockdev::lock`).
    _lock: blockdev::DiskLock,
    pub path: PathBuf,
    pub file: File,
    pub esp: Partition,
    /// The ROOT partition (label ROOT), when the disk has one.
    pub root: Option<Partition>,
    /// The slot the running system booted from, when it is on this disk.
    pub booted: Option<Slot>,
}

impl UpdateDisk {
    /// `disk`, or the running system's boot disk; read-write when `writable`.
    pub fn open(disk: Option<&Path>, writable: bool) -> Result<UpdateDisk> {
        let running = boot_disk::find();
        let path = match (disk, &running) {
            (Some(d), _) => d.to_path_buf(),
            (None, Some(b)) => b.disk.clone(),
            (None, None) => bail!(
                "the running system did not boot from a CoreOS USR partition (no dm-verity device \
                 \"usr\", nothing on /proc/cmdline): give the disk with -d DISK"
            ),
        };
        let kind = if writable {
            blockdev::LockKind::Exclusive
        } else {
            blockdev::LockKind::Shared
        };
        let lock = blockdev::lock(&path, kind, lock_wait())
            .with_context(|| format!("locking {}", path.display()))?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(writable)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let table = disk::gpt::read_table(&file)
            .with_context(|| format!("reading the partition table of {}", path.display()))?;
        let esp = table
            .partitions
            .iter()
            .find(|p| p.type_guid == ESP_TYPE)
            .cloned()
            .ok_or_else(|| anyhow!("{} has no EFI system partition", path.display()))?;
        let root = table.partitions.iter().find(|p| p.label == "ROOT").cloned();
        let mut d = UpdateDisk {
            _lock: lock,
            path,
            file,
            esp,
            root,
            booted: None,
        };
        if let Some(b) = running.filter(|b| d.is_device(b)) {
            let gpt = d.slots()?;
            d.booted = gpt
                .usr_partitions()
                .into_iter()
                .find(|p| p.number == b.partition)
                .and_then(|p| Slot::from_label(&p.label));
            if d.booted.is_none() {
                bail!(
                    "{}: the running system's /usr is partition {}, which is not USR-A or USR-B",
                    d.path.display(),
                    b.partition
                );
            }
        }
        d.booted = d.booted.or(pretend_booted(&d.file)?);
        Ok(d)
    }

    /// Is `b` on this disk (the same block device)?
    fn is_device(&self, b: &Booted) -> bool {
        let (Ok(ours), Ok(theirs)) = (self.file.metadata(), std::fs::metadata(&b.disk)) else {
            return false;
        };
        ours.file_type().is_block_device() && ours.rdev() == theirs.rdev()
    }

    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    pub fn slots(&self) -> Result<GptSlots> {
        GptSlots::read(&self.file).with_context(|| format!("reading the GPT of {}", self.name()))
    }

    /// The coreos-usr partition of `slot`.
    pub fn usr(&self, gpt: &GptSlots, slot: Slot) -> Result<UsrPartition> {
        gpt.by_label(slot.label())
            .with_context(|| format!("{} is not a CoreOS disk", self.name()))
    }

    /// Refuse when anything uses partition `number` (mounted, held by device-mapper); on a
    /// block device, hold it with `O_EXCL` so nothing mounts or claims it until the hold is
    /// dropped.
    pub fn check_unused(
        &self,
        number: u32,
        offset: u64,
        what: &str,
    ) -> Result<Option<blockdev::PartitionHold>> {
        let users = blockdev::users(&self.path, number, offset);
        if !users.is_empty() {
            bail!(
                "{what} (partition {number} of {}) is in use: {}",
                self.name(),
                users.join("; ")
            );
        }
        blockdev::hold_partition(&self.path, number)
            .with_context(|| format!("{what} (partition {number} of {})", self.name()))
    }
}
