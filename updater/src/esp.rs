//! The slot files on the ESP: GRUB's view of the slots (`coreos/grub/grubenv`, rewritten
//! through its own sectors, which GRUB's `save_env` writes through), each slot's kernel, initrd
//! and boot config, and the fallback slot.
//!
//! An unmounted ESP is edited in place through the FAT filesystem (`disk::fat_edit`), under an
//! `O_EXCL` hold of the partition. A mounted one (an OS that keeps `/boot` or `/boot/efi`
//! mounted) is edited through its mount point with file I/O (`esp_mount`): the kernel's FAT
//! driver caches the tables, so nothing may write them behind it. A read-only mount is refused.

use crate::esp_mount::MountedEsp;
use crate::target::UpdateDisk;
use anyhow::{bail, Context, Result};
use disk::fat_edit::FatEditor;
use disk::slots::esp_files::{self, SlotConfig, GRUBENV_PATH};
use disk::slots::{grub_view, Slot, SlotAttrs};
use std::collections::BTreeMap;

/// What the ESP's grubenv says about the slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrubView {
    Missing,
    /// Why it cannot be used.
    Malformed(String),
    Slots(BTreeMap<Slot, SlotAttrs>),
}

/// How the ESP's files are reached.
enum Files<'a> {
    /// The FAT filesystem on the device, edited directly (not mounted).
    Fat(Box<FatEditor<'a>>),
    /// Through the kernel's mount.
    Mounted(MountedEsp),
}

pub struct Esp<'a> {
    files: Files<'a>,
    what: String,
    /// The `O_EXCL` hold on the ESP's block device while it is edited (none for an image).
    _hold: Option<blockdev::PartitionHold>,
}

impl<'a> Esp<'a> {
    /// Open the ESP of `disk` for editing: through its mount point when it is mounted
    /// read-write (refused when mounted read-only only), else on the device.
    pub fn open(disk: &'a UpdateDisk) -> Result<Esp<'a>> {
        let what = format!("the ESP (partition {} of {})", disk.esp.number, disk.name());
        let mounts = blockdev::mounts(&disk.path, disk.esp.number, disk.esp.offset());
        if !mounts.is_empty() {
            let whole: Vec<_> = mounts.iter().filter(|m| m.root == "/").collect();
            let Some(m) = whole.iter().find(|m| !m.read_only) else {
                let list = mounts
                    .iter()
                    .map(|m| {
                        format!(
                            "{} on {}{}",
                            m.device,
                            m.point.display(),
                            if m.read_only { " (read-only)" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                bail!(
                    "{what} is mounted, but not read-write as a whole filesystem ({list}): \
                     remount it read-write (mount -o remount,rw <point>) or unmount it"
                );
            };
            tracing::debug!(
                "{what} is mounted on {}: editing it there",
                m.point.display()
            );
            return Ok(Esp {
                files: Files::Mounted(MountedEsp::new(m.point.clone())),
                what: format!("{what}, mounted on {}", m.point.display()),
                _hold: None,
            });
        }
        let hold = disk
            .check_unused(disk.esp.number, disk.esp.offset(), "the ESP")
            .context(
                "refusing to edit a FAT filesystem the kernel has mounted; unmount it first",
            )?;
        let mut esp = Self::open_unchecked(disk, what)?;
        esp._hold = hold;
        Ok(esp)
    }

    /// Open the ESP for reading only (`status`), mounted or not (through the mount when
    /// there is one: the kernel's cache is what the files are).
    pub fn open_for_reading(disk: &'a UpdateDisk) -> Result<Esp<'a>> {
        let what = format!("the ESP (partition {} of {})", disk.esp.number, disk.name());
        let mounts = blockdev::mounts(&disk.path, disk.esp.number, disk.esp.offset());
        if let Some(m) = mounts.iter().find(|m| m.root == "/") {
            return Ok(Esp {
                files: Files::Mounted(MountedEsp::new(m.point.clone())),
                what: format!("{what}, mounted on {}", m.point.display()),
                _hold: None,
            });
        }
        Self::open_unchecked(disk, what)
    }

    fn open_unchecked(disk: &'a UpdateDisk, what: String) -> Result<Esp<'a>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let fat = FatEditor::open(&disk.file, disk.esp.offset(), disk.esp.bytes(), now)
            .with_context(|| format!("opening the FAT filesystem of {what}"))?;
        Ok(Esp {
            files: Files::Fat(Box::new(fat)),
            what,
            _hold: None,
        })
    }

    fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match &self.files {
            Files::Fat(fat) => fat.read(path).map_err(anyhow::Error::from),
            Files::Mounted(m) => m.read(path).map_err(anyhow::Error::from),
        }
        .with_context(|| format!("reading {path} on {}", self.what))
    }

    /// Write `path` anew (atomically through a mount).
    fn replace(&mut self, path: &str, data: &[u8]) -> Result<()> {
        match &mut self.files {
            Files::Fat(fat) => fat.replace(path, data).map_err(anyhow::Error::from),
            Files::Mounted(m) => m.replace(path, data).map_err(anyhow::Error::from),
        }
        .with_context(|| format!("writing {path} on {}", self.what))
    }

    /// Rewrite a file of the same size through its own sectors.
    fn overwrite(&mut self, path: &str, data: &[u8]) -> Result<()> {
        match &mut self.files {
            Files::Fat(fat) => fat.overwrite(path, data).map_err(anyhow::Error::from),
            Files::Mounted(m) => m
                .overwrite_in_place(path, data)
                .map_err(anyhow::Error::from),
        }
        .with_context(|| format!("rewriting {path} on {}", self.what))
    }

    fn remove(&mut self, path: &str) -> Result<()> {
        match &mut self.files {
            Files::Fat(fat) => fat.remove(path).map_err(anyhow::Error::from),
            Files::Mounted(m) => m.remove(path).map_err(anyhow::Error::from),
        }
        .map(|_| ())
        .with_context(|| format!("removing {path} from {}", self.what))
    }

    pub fn grub_view(&self) -> Result<GrubView> {
        Ok(match self.read(GRUBENV_PATH)? {
            None => GrubView::Missing,
            Some(b) => match grub_view::parse(&b) {
                Ok(v) => GrubView::Slots(v),
                Err(e) => GrubView::Malformed(e.to_string()),
            },
        })
    }

    /// The tries userland last wrote into GRUB's view, per slot (see `grub_view`).
    pub fn written_tries(&self) -> Result<BTreeMap<Slot, u8>> {
        Ok(self
            .read(GRUBENV_PATH)?
            .map(|b| grub_view::parse_written_tries(&b))
            .unwrap_or_default())
    }

    /// Render GRUB's view of `slots`. The file keeps its size and sectors when it has a usable
    /// size; a missing or unusable one is created anew. Nothing is written when it already
    /// says exactly this.
    pub fn write_grub_view(&mut self, slots: &[(Slot, SlotAttrs)]) -> Result<()> {
        let old = self.read(GRUBENV_PATH)?;
        let size = old.as_ref().map_or(0, |o| o.len());
        let block = grub_view::render(slots, size)?;
        match old {
            Some(o) if o == block => Ok(()),
            Some(o) if o.len() == block.len() => self.overwrite(GRUBENV_PATH, &block),
            _ => self.replace(GRUBENV_PATH, &block),
        }
    }

    pub fn slot_config(&self, slot: Slot) -> Result<Option<SlotConfig>> {
        let path = esp_files::config_path(slot);
        Ok(match self.read(&path)? {
            None => None,
            Some(b) => SlotConfig::parse(slot, &String::from_utf8_lossy(&b)).ok(),
        })
    }

    pub fn has_kernel(&self, slot: Slot) -> Result<bool> {
        Ok(self.read(&esp_files::kernel_path(slot))?.is_some())
    }

    /// Remove a slot's config, kernel and initrd (config first: without it GRUB never boots
    /// the slot).
    pub fn remove_slot(&mut self, slot: Slot) -> Result<()> {
        for path in [
            esp_files::config_path(slot),
            esp_files::kernel_path(slot),
            esp_files::initrd_path(slot),
        ] {
            self.remove(&path)?;
        }
        Ok(())
    }

    /// Write a slot's kernel and initrd (none: no initrd file), then its config.
    pub fn write_slot(
        &mut self,
        config: &SlotConfig,
        kernel: &[u8],
        initrd: Option<&[u8]>,
    ) -> Result<()> {
        let slot = config.slot;
        let mut files = vec![(esp_files::kernel_path(slot), kernel)];
        files.extend(initrd.map(|i| (esp_files::initrd_path(slot), i)));
        for (path, data) in files {
            self.replace(&path, data)?;
        }
        let text = config.render()?;
        self.replace(&esp_files::config_path(slot), text.as_bytes())
    }

    /// Rewrite a slot's config alone (its kernel and initrd stay).
    pub fn write_config(&mut self, config: &SlotConfig) -> Result<()> {
        let text = config.render()?;
        self.replace(&esp_files::config_path(config.slot), text.as_bytes())
    }

    pub fn fallback(&self) -> Result<Option<Slot>> {
        Ok(self
            .read(esp_files::FALLBACK_PATH)?
            .and_then(|b| esp_files::parse_fallback(&String::from_utf8_lossy(&b))))
    }

    pub fn write_fallback(&mut self, slot: Slot) -> Result<()> {
        if self.fallback()? == Some(slot) {
            return Ok(());
        }
        self.replace(
            esp_files::FALLBACK_PATH,
            esp_files::fallback_cfg(slot).as_bytes(),
        )
    }

    /// Versions that failed their trial boot on this disk (see `FAILED_VERSIONS_PATH`).
    pub fn failed_versions(&self) -> Result<Vec<String>> {
        Ok(self
            .read(esp_files::FAILED_VERSIONS_PATH)?
            .map(|b| esp_files::parse_failed_versions(&String::from_utf8_lossy(&b)))
            .unwrap_or_default())
    }

    /// Add `version` to the failed versions (nothing is written when it is listed already).
    pub fn remember_failed(&mut self, version: &str) -> Result<()> {
        let mut all = self.failed_versions()?;
        if all.iter().any(|v| v == version) {
            return Ok(());
        }
        all.push(version.to_string());
        self.replace(
            esp_files::FAILED_VERSIONS_PATH,
            esp_files::render_failed_versions(&all).as_bytes(),
        )
    }

    /// Make the edits so far durable.
    pub fn sync(&self) -> Result<()> {
        match &self.files {
            Files::Fat(fat) => fat.sync().map_err(anyhow::Error::from),
            Files::Mounted(m) => m.sync().map_err(anyhow::Error::from),
        }
        .with_context(|| format!("syncing {}", self.what))
    }

    /// Write the FAT tables and directory entries and sync them to the disk.
    pub fn close(self) -> Result<()> {
        let what = self.what;
        match self.files {
            Files::Fat(fat) => fat.close().map_err(anyhow::Error::from),
            Files::Mounted(m) => m.sync().map_err(anyhow::Error::from),
        }
        .with_context(|| format!("finishing the edits of {what}"))
    }
}
