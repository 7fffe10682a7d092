//! Disk formats shared by `coreos-build`, `coreos-install` and `coreos-update`: the layout
//! model, GPT/MBR, FAT, dm-verity, sparse files. ext4 and the VM containers have crates of
//! their own (`ext4`, `vmimage`), so each binary links only what it uses.
//!
//! Each module owns one on-disk format or one step; none knows about CLIs, progress bars
//! or HTTP. Everything works on plain files (or block devices) at byte offsets, so the
//! builder can write straight into a partition of a sparse disk image without loop devices.

pub mod epoch;
#[cfg(feature = "fat")]
pub mod fat;
#[cfg(feature = "fat")]
mod fat_dots;
#[cfg(feature = "fat")]
pub mod fat_edit;
pub mod gpt;
pub mod grubenv;
pub mod layout;
pub mod ordered_map;
pub mod slots;
pub mod sparse;
pub mod verity;
pub mod writeback;

/// Bytes in a logical sector of every disk this project makes.
pub const SECTOR: u64 = 512;
