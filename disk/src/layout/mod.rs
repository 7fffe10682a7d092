//! Disk layouts as data (`layouts/*.toml`): the partition model, sizes and offsets computed as
//! CoreOS's `disk_util` did, and validation that names the partition at fault.
//!
//! CONTRACT: `Layout`, `Partition`, `Layout::resolve` / `Layout::from_toml` / `Layout::builtin`.

use uuid::Uuid;

/// A resolved layout: every partition placed, the disk size known.
#[derive(Debug, Clone)]
pub struct Layout {
    pub name: String,
    pub disk_guid: Uuid,
    /// Total disk size in 512-byte sectors.
    pub disk_sectors: u64,
    /// In partition-number order; reserved numbers have no entry.
    pub partitions: Vec<Partition>,
}

#[derive(Debug, Clone)]
pub struct Partition {
    pub number: u32,
    pub label: String,
    pub type_guid: Uuid,
    pub part_guid: Uuid,
    pub first_lba: u64,
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// "ext2", "ext4", "vfat" or None (left empty).
    pub fs_type: Option<String>,
    /// Filesystem size in 4096-byte blocks (USR-A: 260094; the rest of the partition holds verity).
    pub fs_blocks: u64,
    pub hybrid: bool,
    pub prioritize: bool,
    pub verity: bool,
    /// GPT attribute bits.
    pub attributes: u64,
}

impl Partition {
    pub fn offset(&self) -> u64 {
        self.first_lba * crate::SECTOR
    }
    pub fn bytes(&self) -> u64 {
        self.sectors * crate::SECTOR
    }
}

impl Layout {
    pub fn by_label(&self, label: &str) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.label == label)
    }
    pub fn by_number(&self, n: u32) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.number == n)
    }
}
