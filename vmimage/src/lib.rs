//! Virtual-machine disk containers, each written in one pass from a sparse raw disk image
//! (only the source's data ranges are read) and byte-identical for the same input.
//!
//! Each module owns one container format; none knows about CLIs, layouts or progress bars.

#![forbid(unsafe_code)]

pub mod ova;
pub mod qcow2;
pub mod vhd;
pub mod vmdk;
