//! El Torito ("Bootable CD-ROM Format Specification" 1.0, Phoenix/IBM 1995): the Boot Record
//! Volume Descriptor that points at the boot catalog, the catalog (validation entry, the
//! default entry for x86 BIOS, a section for UEFI), and the boot information table that
//! `mkisofs -boot-info-table` (and `--grub2-boot-info`) writes into a BIOS boot image.

use crate::iso9660::{IsoError, STANDARD_ID, VD_BOOT_RECORD};
use crate::ISO_BLOCK;

/// Boot System Identifier of the Boot Record (§2.0).
pub const EL_TORITO_ID: &[u8] = b"EL TORITO SPECIFICATION";
/// Platform IDs (§2.1): 80x86 BIOS, and UEFI (0xEF, from the UEFI specification §3.5.1).
pub const PLATFORM_X86: u8 = 0x00;
pub const PLATFORM_EFI: u8 = 0xEF;
/// Boot Indicator of a bootable entry (§2.2).
pub const BOOTABLE: u8 = 0x88;
/// Boot media type: no emulation (§2.2).
pub const NO_EMULATION: u8 = 0;
/// Header indicators of section headers (§2.3): more follow / this is the last.
pub const SECTION_HEADER_MORE: u8 = 0x90;
pub const SECTION_HEADER_FINAL: u8 = 0x91;
/// Offset of the boot information table in a BIOS boot image (mkisofs `-boot-info-table`).
pub const BOOT_INFO_TABLE_OFFSET: usize = 8;
/// Where `--grub2-boot-info` puts the image's 512-byte address + 5 (the block list of the
/// diskboot sector that follows GRUB's 2048-byte cdboot.img).
pub const GRUB2_BOOT_INFO_OFFSET: usize = 2548;

/// One bootable image of the catalog.
#[derive(Debug, Clone)]
pub struct BootEntry {
    pub platform: u8,
    /// Path of the image file in the volume.
    pub image: String,
    /// 512-byte sectors the firmware loads (4 for a BIOS image that loads the rest itself;
    /// 0 means "the whole file", computed when the catalog is written).
    pub load_sectors: u16,
}

/// The Boot Record Volume Descriptor (§2.0).
pub fn boot_record(catalog_lba: u32) -> Vec<u8> {
    let mut b = vec![0u8; ISO_BLOCK as usize];
    b[0] = VD_BOOT_RECORD;
    b[1..6].copy_from_slice(STANDARD_ID);
    b[6] = 1;
    b[7..7 + EL_TORITO_ID.len()].copy_from_slice(EL_TORITO_ID);
    b[0x47..0x4b].copy_from_slice(&catalog_lba.to_le_bytes());
    b
}

/// An initial/default or section entry (§2.2, §2.4).
fn entry(e: &BootEntry, lba: u32, len: u64) -> Result<[u8; 32], IsoError> {
    let sectors = match e.load_sectors {
        0 => u16::try_from(len.div_ceil(512)).map_err(|_| {
            IsoError::Invalid(format!(
                "boot image {} is {len} bytes; an El Torito entry loads at most 65535 sectors",
                e.image
            ))
        })?,
        n => n,
    };
    let mut b = [0u8; 32];
    b[0] = BOOTABLE;
    b[1] = NO_EMULATION;
    // b[2..4] load segment 0: the traditional 0x7C0; b[4] system type 0.
    b[6..8].copy_from_slice(&sectors.to_le_bytes());
    b[8..12].copy_from_slice(&lba.to_le_bytes());
    Ok(b)
}

/// The boot catalog (one block): the validation entry and the first entry as the default,
/// then one section header and entry for every other entry. `entries` are (entry, image
/// block, image bytes).
pub fn catalog(entries: &[(BootEntry, u32, u64)]) -> Result<Vec<u8>, IsoError> {
    let Some((first, rest)) = entries.split_first() else {
        return Err(IsoError::Invalid(
            "an El Torito catalog needs one boot entry".into(),
        ));
    };
    let mut c = vec![0u8; ISO_BLOCK as usize];
    // Validation entry (§2.1): header ID 1, platform, ID string, checksum, key 55 AA.
    c[0] = 1;
    c[1] = first.0.platform;
    c[4..4 + 12].copy_from_slice(b"COREOS-BUILD");
    c[30] = 0x55;
    c[31] = 0xAA;
    let sum = c[..32].chunks(2).fold(0u16, |s, w| {
        s.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
    });
    c[28..30].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
    c[32..64].copy_from_slice(&entry(&first.0, first.1, first.2)?);
    let mut at = 64;
    for (i, (e, lba, len)) in rest.iter().enumerate() {
        if at + 64 > c.len() {
            return Err(IsoError::Invalid(
                "too many El Torito entries for one block".into(),
            ));
        }
        c[at] = if i + 1 == rest.len() {
            SECTION_HEADER_FINAL
        } else {
            SECTION_HEADER_MORE
        };
        c[at + 1] = e.platform;
        c[at + 2..at + 4].copy_from_slice(&1u16.to_le_bytes());
        c[at + 32..at + 64].copy_from_slice(&entry(e, *lba, *len)?);
        at += 64;
    }
    Ok(c)
}

/// Write the boot information table into a BIOS boot image placed at `image_lba` (mkisofs
/// `-boot-info-table`): the PVD's block, the image's block and length, and the 32-bit sum
/// of the image's little-endian words from byte 64 on. With `grub2`, also the address GRUB's
/// cdboot.img continues from (`--grub2-boot-info`).
pub fn patch_boot_image(
    image: &mut [u8],
    pvd_lba: u32,
    image_lba: u32,
    grub2: bool,
) -> Result<(), IsoError> {
    if image.len() < 64 || (grub2 && image.len() < GRUB2_BOOT_INFO_OFFSET + 8) {
        return Err(IsoError::Invalid(format!(
            "a BIOS boot image of {} bytes has no room for the boot information table",
            image.len()
        )));
    }
    if grub2 {
        let at = u64::from(image_lba) * (ISO_BLOCK / 512) + 5;
        image[GRUB2_BOOT_INFO_OFFSET..GRUB2_BOOT_INFO_OFFSET + 8]
            .copy_from_slice(&at.to_le_bytes());
    }
    let mut sum = 0u32;
    for w in image[64..].chunks(4) {
        let mut b = [0u8; 4];
        b[..w.len()].copy_from_slice(w);
        sum = sum.wrapping_add(u32::from_le_bytes(b));
    }
    let t = BOOT_INFO_TABLE_OFFSET;
    let len = image.len() as u32;
    image[t..t + 4].copy_from_slice(&pvd_lba.to_le_bytes());
    image[t + 4..t + 8].copy_from_slice(&image_lba.to_le_bytes());
    image[t + 8..t + 12].copy_from_slice(&len.to_le_bytes());
    image[t + 12..t + 16].copy_from_slice(&sum.to_le_bytes());
    image[t + 16..t + 56].fill(0);
    Ok(())
}
