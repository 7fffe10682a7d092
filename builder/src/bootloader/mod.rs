//! GRUB for BIOS and UEFI, installed into the image file directly (no loop devices, no root).
//!
//! CONTRACT (called by `image`): `prepare(&BootInputs) -> Result<Option<BootAssets>>` before the
//! ESP is written, then `install_bios(&File, &BiosBoot, bios_boot_first_lba)` after the GPT.
#![allow(dead_code)]

use std::fs::File;
use std::path::PathBuf;

/// What the boot configuration needs to know about the image being built.
#[derive(Debug, Clone)]
pub struct BootInputs {
    /// The USR tree (GRUB modules are looked up under `lib/grub/...` there first).
    pub usr: PathBuf,
    /// dm-verity root hash of USR-A, hex.
    pub verity_root_hash: String,
    /// USR-A filesystem size in 4096-byte blocks (the verity data size).
    pub usr_fs_blocks: u64,
    pub verity_salt: String,
}

/// Files for the ESP and the BIOS boot code.
#[derive(Debug, Clone, Default)]
pub struct BootAssets {
    /// (path on the ESP, contents), e.g. ("EFI/boot/bootx64.efi", ...), ("coreos/grub/grub.cfg", ...).
    pub esp_files: Vec<(String, Vec<u8>)>,
    pub bios: Option<BiosBoot>,
}

#[derive(Debug, Clone)]
pub struct BiosBoot {
    /// GRUB's boot.img (512 bytes); its first 440 go to the MBR.
    pub boot_img: Vec<u8>,
    /// GRUB's core.img for the BIOS-BOOT partition.
    pub core_img: Vec<u8>,
}

pub fn prepare(inputs: &BootInputs) -> anyhow::Result<Option<BootAssets>> {
    let _ = inputs;
    tracing::warn!("bootloader installation is not built yet: the image will not boot");
    Ok(None)
}

pub fn install_bios(image: &File, bios: &BiosBoot, bios_boot_first_lba: u64) -> anyhow::Result<()> {
    let _ = (image, bios, bios_boot_first_lba);
    Ok(())
}
