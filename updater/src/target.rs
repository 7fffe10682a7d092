//! The disk an update works on: `-d DISK` (an image file or a block device) or the disk the
//! running system booted from; its ESP; and which slot, if any, is running from it.

use crate::boot_disk::{self, Booted};
use anyhow::{anyhow, bail, Context, Result};
use disk::layout::Partition;
use disk::slots::{GptSlots, Slot, UsrPartition};
use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The EFI system partition's type (UEFI 2.10 §5.3.3).
const ESP_TYPE: uuid::Uuid = uuid::uuid!("c12a7328-f81f-11d2-ba4b-00a0c93ec93b");

pub struct UpdateDisk {
    pub path: PathBuf,
    pub file: File,
    pub esp: Partition,
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
        let mut d = UpdateDisk {
            path,
            file,
            esp,
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

    /// Refuse when anything uses partition `number` (mounted, held by device-mapper).
    pub fn check_unused(&self, number: u32, offset: u64, what: &str) -> Result<()> {
        let users = crate::in_use::users(&self.path, number, offset);
        if !users.is_empty() {
            bail!(
                "{what} (partition {number} of {}) is in use: {}",
                self.name(),
                users.join("; ")
            );
        }
        Ok(())
    }
}
