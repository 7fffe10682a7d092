//! The slot files on the ESP, edited in place through the FAT filesystem (`disk::fat_edit`), never
//! through a mount: GRUB's view of the slots (`coreos/grub/grubenv`, rewritten through its own
//! sectors, which GRUB's `save_env` writes through), each slot's kernel, initrd and boot
//! config, and the fallback slot.

use crate::target::UpdateDisk;
use anyhow::{Context, Result};
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

pub struct Esp<'a> {
    fat: FatEditor<'a>,
    what: String,
    /// The `O_EXCL` hold on the ESP's block device while it is edited (none for an image).
    _hold: Option<blockdev::PartitionHold>,
}

impl<'a> Esp<'a> {
    /// Open the ESP of `disk` for editing; refused while it is mounted.
    pub fn open(disk: &'a UpdateDisk) -> Result<Esp<'a>> {
        let what = format!("the ESP (partition {} of {})", disk.esp.number, disk.name());
        let hold = disk
            .check_unused(disk.esp.number, disk.esp.offset(), "the ESP")
            .context(
                "refusing to edit a FAT filesystem the kernel has mounted; unmount it first",
            )?;
        let mut esp = Self::open_unchecked(disk, what)?;
        esp._hold = hold;
        Ok(esp)
    }

    /// Open the ESP for reading only (`status`), mounted or not.
    pub fn open_for_reading(disk: &'a UpdateDisk) -> Result<Esp<'a>> {
        let what = format!("the ESP (partition {} of {})", disk.esp.number, disk.name());
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
            fat,
            what,
            _hold: None,
        })
    }

    fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.fat
            .read(path)
            .with_context(|| format!("reading {path} on {}", self.what))
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
            Some(o) if o.len() == block.len() => self
                .fat
                .overwrite(GRUBENV_PATH, &block)
                .with_context(|| format!("rewriting {GRUBENV_PATH} on {}", self.what)),
            _ => self
                .fat
                .replace(GRUBENV_PATH, &block)
                .with_context(|| format!("writing {GRUBENV_PATH} on {}", self.what)),
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
            self.fat
                .remove(&path)
                .with_context(|| format!("removing {path} from {}", self.what))?;
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
            self.fat
                .replace(&path, data)
                .with_context(|| format!("writing {path} on {}", self.what))?;
        }
        let text = config.render()?;
        let path = esp_files::config_path(slot);
        self.fat
            .replace(&path, text.as_bytes())
            .with_context(|| format!("writing {path} on {}", self.what))
    }

    /// Rewrite a slot's config alone (its kernel and initrd stay).
    pub fn write_config(&mut self, config: &SlotConfig) -> Result<()> {
        let text = config.render()?;
        let path = esp_files::config_path(config.slot);
        self.fat
            .replace(&path, text.as_bytes())
            .with_context(|| format!("writing {path} on {}", self.what))
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
        let path = esp_files::FALLBACK_PATH;
        self.fat
            .replace(path, esp_files::fallback_cfg(slot).as_bytes())
            .with_context(|| format!("writing {path} on {}", self.what))
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
        let path = esp_files::FAILED_VERSIONS_PATH;
        self.fat
            .replace(path, esp_files::render_failed_versions(&all).as_bytes())
            .with_context(|| format!("writing {path} on {}", self.what))
    }

    /// Make the edits so far durable.
    pub fn sync(&self) -> Result<()> {
        self.fat
            .sync()
            .with_context(|| format!("syncing {}", self.what))
    }

    /// Write the FAT tables and directory entries and sync them to the disk.
    pub fn close(self) -> Result<()> {
        let what = self.what;
        self.fat
            .close()
            .with_context(|| format!("finishing the edits of {what}"))
    }
}
