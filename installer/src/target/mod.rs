//! The target disk: finding it, refusing it when it is not safe to overwrite, and telling the
//! kernel about the new partition table afterwards.

pub mod device;
pub mod in_use;
pub mod partitions;

pub use device::TargetDisk;
