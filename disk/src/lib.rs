//! Disk formats shared by `coreos-build` and `coreos-install`.
//!
//! Each module owns one on-disk format or one step; none knows about CLIs, progress bars
//! or HTTP. Everything works on plain files (or block devices) at byte offsets, so the
//! builder can write straight into a partition of a sparse disk image without loop devices.

pub mod ext4;
pub mod fat;
mod fat_dots;
pub mod gpt;
pub mod layout;
pub mod ordered_map;
pub mod qcow2;
pub mod sparse;
pub mod verity;
pub mod vmdk;

/// Bytes in a logical sector of every disk this project makes.
pub const SECTOR: u64 = 512;
