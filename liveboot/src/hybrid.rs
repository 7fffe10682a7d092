//! The System Area (the first 32 KiB) of a hybrid ISO, so that the image copied to a USB
//! stick boots too: GRUB's `boot_hybrid.img` code in the MBR, set to load the El Torito BIOS
//! image's GRUB core from the stick (as `xorriso --grub2-mbr` does), and a GPT behind a
//! protective MBR whose one partition is the El Torito EFI image, a FAT filesystem inside the
//! ISO, which UEFI firmware boots like any EFI system partition (grub-mkrescue's layout (c) in
//! Thomas Schmitt's terms). The ISO 9660 directory tree stays readable on the whole device.

use disk::layout::{Layout, Partition};
use std::fs::File;
use std::os::unix::fs::FileExt;
use uuid::Uuid;

/// Bytes of `boot_hybrid.img` copied into the MBR: the code area before the disk signature.
pub const MBR_CODE_LEN: usize = 440;
/// Where `boot_hybrid.img` reads the 512-byte sector its core starts at: the El Torito BIOS
/// image's address plus 4, past GRUB's 2048-byte cdboot.img (xorriso `--grub2-mbr`).
pub const GRUB2_MBR_CORE_SECTOR: usize = 0x1b0;
/// GPT type of an EFI system partition.
pub const ESP_TYPE: Uuid = uuid::uuid!("c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
/// 512-byte sectors the backup GPT needs at the end of the image (entries and header).
pub const BACKUP_GPT_SECTORS: u64 = 33;

#[derive(Debug, thiserror::Error)]
pub enum HybridError {
    #[error("{0}")]
    Invalid(String),
    #[error("writing the GPT: {0}")]
    Gpt(#[from] disk::gpt::GptError),
    #[error("writing the MBR boot code: {0}")]
    Io(#[from] std::io::Error),
}

/// What the System Area points at.
#[derive(Debug, Clone)]
pub struct HybridSpec {
    /// GRUB's `boot_hybrid.img` (512 bytes).
    pub mbr_code: Vec<u8>,
    /// ISO block of the El Torito BIOS image (GRUB's eltorito.img).
    pub bios_image_lba: u32,
    /// Byte range of the El Torito EFI image (a FAT filesystem) in the ISO.
    pub esp_offset: u64,
    pub esp_bytes: u64,
    /// GPT disk GUID; the partition's GUID is derived from it.
    pub disk_guid: Uuid,
}

/// Write the System Area of the complete ISO `iso` (its final size: the backup GPT goes at the
/// end, which must be zeros the volume reserves).
pub fn write_system_area(iso: &File, spec: &HybridSpec) -> Result<(), HybridError> {
    if spec.mbr_code.len() != 512 || spec.mbr_code[510..] != [0x55, 0xaa] {
        return Err(HybridError::Invalid(format!(
            "boot_hybrid.img is {} bytes without the 0x55aa signature; expected one boot sector",
            spec.mbr_code.len()
        )));
    }
    let bytes = iso.metadata()?.len();
    if !bytes.is_multiple_of(disk::SECTOR)
        || !spec.esp_offset.is_multiple_of(disk::SECTOR)
        || spec.esp_bytes == 0
    {
        return Err(HybridError::Invalid(format!(
            "the ISO ({bytes} bytes) and its EFI image (at byte {}, {} bytes) must be whole sectors",
            spec.esp_offset, spec.esp_bytes
        )));
    }
    let mut code = [0u8; MBR_CODE_LEN];
    code.copy_from_slice(&spec.mbr_code[..MBR_CODE_LEN]);
    let core = u64::from(spec.bios_image_lba) * (crate::ISO_BLOCK / disk::SECTOR) + 4;
    code[GRUB2_MBR_CORE_SECTOR..GRUB2_MBR_CORE_SECTOR + 8].copy_from_slice(&core.to_le_bytes());
    iso.write_all_at(&code, 0)?;

    let esp = Partition {
        number: 1,
        label: "ISO-EFI".into(),
        type_guid: ESP_TYPE,
        part_guid: disk::layout::derived_part_guid(&spec.disk_guid, 1, "ISO-EFI"),
        first_lba: spec.esp_offset / disk::SECTOR,
        sectors: spec.esp_bytes.div_ceil(disk::SECTOR),
        fs_type: None,
        fs_blocks: 0,
        hybrid: false,
        prioritize: false,
        verity: false,
        attributes: 0,
        fs_bytes_per_inode: 0,
        fs_inode_size: 0,
    };
    let layout = Layout {
        name: "hybrid ISO".into(),
        disk_guid: spec.disk_guid,
        disk_sectors: bytes / disk::SECTOR,
        partitions: vec![esp],
    };
    disk::gpt::write_table(iso, &layout)?;
    Ok(())
}
