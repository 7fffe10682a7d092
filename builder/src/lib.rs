//! The part of `coreos-build` other crates use: the bootloader (GRUB images, grub.cfg, BIOS
//! boot code), which the end-to-end tests also put into images they assemble with stock
//! tools, to tell a bootloader fault from an image-writer fault. The rest is the binary's.

pub mod bootloader;
