//! Disk layouts as data (`layouts/*.toml`): the partition model, sizes and offsets computed as
//! CoreOS's `disk_util` did, and validation that names the partition at fault.
//!
//! CONTRACT: `Layout`, `Partition`, `Layout::resolve` / `Layout::from_toml` / `Layout::builtin`.

#[cfg(feature = "files")]
mod files;
#[cfg(feature = "files")]
mod spec;
pub mod types;

#[cfg(feature = "files")]
pub use spec::{LayoutSpec, MetadataSpec, PartitionSpec};

use sha2::{Digest, Sha256};
use std::fmt;
use uuid::Uuid;

/// `GPT_RESERVED_SECTORS` in disk_util: MBR + header + 32 sectors of entries.
pub const GPT_RESERVED_SECTORS: u64 = 34;
/// GPT attribute bits (seismograph `cgptlib_internal.h`).
pub const ATTR_LEGACY_BIOS_BOOTABLE: u64 = 1 << 2;
pub const ATTR_PRIORITY_SHIFT: u32 = 48;
pub const ATTR_TRIES_SHIFT: u32 = 52;
pub const ATTR_SUCCESSFUL: u64 = 1 << 56;
/// The disk GUID of a never-booted CoreOS disk.
pub const PRISTINE_DISK_GUID: Uuid = uuid::uuid!("00000000-0000-0000-0000-000000000001");

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
    /// `-i` of mke2fs (CoreOS default 4096).
    pub fs_bytes_per_inode: u64,
    /// `-I` of mke2fs (CoreOS default 128).
    pub fs_inode_size: u16,
}

impl Partition {
    pub fn offset(&self) -> u64 {
        self.first_lba * crate::SECTOR
    }
    pub fn bytes(&self) -> u64 {
        self.sectors * crate::SECTOR
    }
    pub fn last_lba(&self) -> u64 {
        self.first_lba + self.sectors - 1
    }
    /// Bytes of the filesystem (`fs_blocks` × 4096).
    pub fn fs_bytes(&self) -> u64 {
        self.fs_blocks * FS_BLOCK_SIZE
    }
    pub fn priority(&self) -> u64 {
        (self.attributes >> ATTR_PRIORITY_SHIFT) & 0xf
    }
    pub fn tries(&self) -> u64 {
        (self.attributes >> ATTR_TRIES_SHIFT) & 0xf
    }
    pub fn successful(&self) -> bool {
        self.attributes & ATTR_SUCCESSFUL != 0
    }
    pub fn legacy_bios_bootable(&self) -> bool {
        self.attributes & ATTR_LEGACY_BIOS_BOOTABLE != 0
    }
}

/// `fs_block_size` of every CoreOS layout.
pub const FS_BLOCK_SIZE: u64 = 4096;

/// How a partition is named in messages: `partition 3 (USR-A)`.
#[derive(Debug, Clone)]
pub struct PartName(pub u32, pub String);

impl fmt::Display for PartName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.1.is_empty() {
            write!(f, "partition {}", self.0)
        } else {
            write!(f, "partition {} ({})", self.0, self.1)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("layout {file}: {msg}")]
    Parse { file: String, msg: String },
    #[error(
        "unknown layout {0:?}: built-in layouts are base, vm and vagrant (or give a file path)"
    )]
    UnknownLayout(String),
    #[error("{0}: unknown partition type {1:?} (known: efi, bios, coreos-rootfs, coreos-usr, coreos-resize, coreos-reserved, coreos-root-raid, data, linux-data, blank, or a GUID)")]
    UnknownType(PartName, String),
    #[error("{0}: missing key {1:?}")]
    Missing(PartName, &'static str),
    #[error("duplicate partition number {0}")]
    DuplicateNumber(u32),
    #[error("duplicate label {label:?}: {a} and {b}")]
    DuplicateLabel {
        label: String,
        a: PartName,
        b: PartName,
    },
    #[error("{0}: first sector {1} is not aligned to {2} sectors")]
    Misaligned(PartName, u64, u64),
    #[error("{a} (sectors {a_first}..={a_last}) overlaps {b} (sectors {b_first}..={b_last})")]
    Overlap {
        a: PartName,
        a_first: u64,
        a_last: u64,
        b: PartName,
        b_first: u64,
        b_last: u64,
    },
    #[error("{0}: filesystem of {1} bytes is larger than the partition's {2} bytes")]
    FsTooLarge(PartName, u64, u64),
    #[error("{0}: size is zero sectors")]
    Empty(PartName),
    #[error("{0}: unsupported filesystem type {1:?} (ext2, ext4 or vfat)")]
    UnknownFs(PartName, String),
    #[error("{0}: unknown feature {1:?} (hybrid, prioritize, verity)")]
    UnknownFeature(PartName, String),
    #[error("{0}: bad uuid {1:?}")]
    BadUuid(PartName, String),
    #[error("{0}")]
    Invalid(String),
}

impl Layout {
    pub fn by_label(&self, label: &str) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.label == label)
    }
    pub fn by_number(&self, n: u32) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.number == n)
    }
    pub fn disk_bytes(&self) -> u64 {
        self.disk_sectors * crate::SECTOR
    }
}

/// A partition GUID that depends only on the disk GUID, number and label (a name-based UUID
/// in the spirit of RFC 9562 v5, with sha256; version 8 "custom"), so builds are reproducible.
pub fn derived_part_guid(disk: &Uuid, number: u32, label: &str) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"coreos-build partition guid\0");
    h.update(disk.as_bytes());
    h.update(number.to_le_bytes());
    h.update(label.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_custom_bytes(b).into_uuid()
}

#[cfg(all(test, feature = "files"))]
mod tests;
