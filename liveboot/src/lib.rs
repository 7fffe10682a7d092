//! Formats of the live boot media, shared by `coreos-build` (which writes them) and
//! `coreos-install iso customize` (which reads an ISO's directory and patches its embed areas):
//!
//! - `iso9660`: ECMA-119 volumes (writer and a small directory reader), El Torito boot
//!   catalogs (`eltorito`) and the hybrid system area that makes the same image boot from a
//!   USB stick (`hybrid`: GRUB's MBR code, a protective MBR and a GPT naming the EFI image);
//! - `cpio`: the newc archives the Linux kernel unpacks from an initrd;
//! - `embed`: the reserved areas of a live ISO (kernel arguments, a configuration image).
//!
//! No module knows about CLIs, progress bars or GRUB itself: images are bytes and byte ranges.

#![forbid(unsafe_code)]

pub mod cpio;
pub mod eltorito;
pub mod embed;
pub mod hybrid;
pub mod iso9660;

/// Bytes in an ISO 9660 logical block (and a CD sector).
pub const ISO_BLOCK: u64 = 2048;
