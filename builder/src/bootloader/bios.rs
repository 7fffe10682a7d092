//! BIOS boot code written into the image file, as `grub-bios-setup` does for a GPT disk with a
//! BIOS boot partition: boot.img's code in the MBR (bytes 0–439; the disk signature and the
//! protective partition table at 440–511 stay), patched to load the core image from BIOS-BOOT,
//! and core.img at the start of BIOS-BOOT with its first sector's block list patched.

use super::BiosBoot;
use anyhow::{bail, Context};
use std::fs::File;
use std::os::unix::fs::FileExt;

const SECTOR: u64 = 512;
/// boot.img bytes copied to the MBR: the code area, before the disk signature (0x1b8).
const MBR_CODE_LEN: usize = 440;
// Offsets in boot.img (GRUB include/grub/i386/pc/boot.h).
/// `GRUB_BOOT_MACHINE_KERNEL_SECTOR`: u64 LBA of core.img's first sector.
const GRUB_BOOT_MACHINE_KERNEL_SECTOR: usize = 0x5c;
/// `GRUB_BOOT_MACHINE_BOOT_DRIVE`: 0xff = use the drive the BIOS booted from (%dl).
const GRUB_BOOT_MACHINE_BOOT_DRIVE: usize = 0x64;
/// `GRUB_BOOT_MACHINE_DRIVE_CHECK`: two NOPs skip the floppy probe, as grub-bios-setup does
/// for hard disks.
const GRUB_BOOT_MACHINE_DRIVE_CHECK: usize = 0x66;
/// diskboot.img (core.img's first sector) ends with one `grub_boot_blocklist`:
/// u64 start, u16 len, u16 segment; it lists the core sectors after the first.
const BLOCKLIST_START: usize = 512 - 12;
const BLOCKLIST_LEN: usize = 512 - 4;
/// GPT type of the BIOS boot partition, 21686148-6449-6e6f-744e-656564454649, as stored.
const BIOS_BOOT_TYPE: [u8; 16] = *b"Hah!IdontNeedEFI";

/// Install GRUB's BIOS boot code. `bios_boot_first_lba` must be the first sector of the
/// image's BIOS-BOOT partition (checked against the GPT, which must already be written).
pub fn install_bios(image: &File, bios: &BiosBoot, bios_boot_first_lba: u64) -> anyhow::Result<()> {
    if bios.boot_img.len() != SECTOR as usize || bios.boot_img[510..] != [0x55, 0xaa] {
        bail!("GRUB boot.img is {} bytes without the 0x55aa signature; expected one 512-byte boot sector", bios.boot_img.len());
    }
    if bios.core_img.len() < SECTOR as usize {
        bail!(
            "GRUB core.img is {} bytes; expected at least one sector",
            bios.core_img.len()
        );
    }
    let core_sectors = (bios.core_img.len() as u64).div_ceil(SECTOR);
    let part_sectors = bios_boot_sectors(image, bios_boot_first_lba)?;
    if core_sectors > part_sectors {
        bail!(
            "GRUB core.img needs {core_sectors} sectors but the BIOS-BOOT partition at LBA {bios_boot_first_lba} has {part_sectors}"
        );
    }

    let mut core = bios.core_img.clone();
    core.resize((core_sectors * SECTOR) as usize, 0);
    core[BLOCKLIST_START..BLOCKLIST_START + 8]
        .copy_from_slice(&(bios_boot_first_lba + 1).to_le_bytes());
    let rest = u16::try_from(core_sectors - 1)
        .context("GRUB core.img is too large for one block list entry")?;
    core[BLOCKLIST_LEN..BLOCKLIST_LEN + 2].copy_from_slice(&rest.to_le_bytes());

    let mut mbr = [0u8; SECTOR as usize];
    image
        .read_exact_at(&mut mbr, 0)
        .context("reading the image's MBR")?;
    mbr[..MBR_CODE_LEN].copy_from_slice(&bios.boot_img[..MBR_CODE_LEN]);
    mbr[GRUB_BOOT_MACHINE_KERNEL_SECTOR..GRUB_BOOT_MACHINE_KERNEL_SECTOR + 8]
        .copy_from_slice(&bios_boot_first_lba.to_le_bytes());
    mbr[GRUB_BOOT_MACHINE_BOOT_DRIVE] = 0xff;
    mbr[GRUB_BOOT_MACHINE_DRIVE_CHECK..GRUB_BOOT_MACHINE_DRIVE_CHECK + 2]
        .copy_from_slice(&[0x90, 0x90]);

    image
        .write_all_at(&core, bios_boot_first_lba * SECTOR)
        .with_context(|| format!("writing GRUB core.img at LBA {bios_boot_first_lba}"))?;
    image
        .write_all_at(&mbr, 0)
        .context("writing GRUB boot code into the MBR")?;
    Ok(())
}

/// Size in sectors of the GPT partition starting at `first_lba`, which must be a BIOS boot
/// partition. Reads only the primary header and entries (the builder wrote them just before).
fn bios_boot_sectors(image: &File, first_lba: u64) -> anyhow::Result<u64> {
    let mut mbr = [0u8; 512];
    image
        .read_exact_at(&mut mbr, 0)
        .context("reading the image's MBR")?;
    if mbr[510..] != [0x55, 0xaa] {
        bail!("the image has no protective MBR (no 0x55aa at byte 510): write the GPT before the BIOS boot code");
    }
    let mut hdr = [0u8; 92];
    image
        .read_exact_at(&mut hdr, SECTOR)
        .context("reading the GPT header")?;
    if &hdr[..8] != b"EFI PART" {
        bail!("the image has no GPT header at LBA 1: write the GPT before the BIOS boot code");
    }
    let le64 = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().unwrap());
    let le32 = |b: &[u8]| u32::from_le_bytes(b[..4].try_into().unwrap());
    let entries_lba = le64(&hdr[72..]);
    let count = le32(&hdr[80..]) as usize;
    let size = le32(&hdr[84..]) as usize;
    if !(128..=4096).contains(&size) || count > 1024 {
        bail!("GPT header lists {count} entries of {size} bytes: not a table this builder wrote");
    }
    let mut entries = vec![0u8; count * size];
    image
        .read_exact_at(&mut entries, entries_lba * SECTOR)
        .context("reading the GPT partition entries")?;
    for (i, e) in entries.chunks(size).enumerate() {
        if le64(&e[32..]) != first_lba || e[..16] == [0u8; 16] {
            continue;
        }
        if e[..16] != BIOS_BOOT_TYPE {
            bail!("GPT partition {} at LBA {first_lba} is not a BIOS boot partition (type 21686148-6449-6e6f-744e-656564454649)", i + 1);
        }
        return Ok(le64(&e[40..]) - first_lba + 1);
    }
    bail!("no GPT partition starts at LBA {first_lba}, where the BIOS-BOOT partition was expected")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A 16 MiB image with a GPT from sgdisk: partition 2 is BIOS boot at LBA 4096 (2 MiB).
    fn gpt_image(dir: &std::path::Path) -> std::path::PathBuf {
        let p = dir.join("disk.img");
        File::create(&p).unwrap().set_len(16 << 20).unwrap();
        let st = Command::new("sgdisk")
            .args([
                "-n",
                "2:4096:8191",
                "-t",
                "2:EF02",
                "-n",
                "1:8192:12287",
                "-t",
                "1:EF00",
            ])
            .arg(&p)
            .output()
            .expect("sgdisk (gdisk) is installed by ci/install-deps");
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        p
    }

    fn boot_img() -> Vec<u8> {
        let mut b: Vec<u8> = (0..512u32).map(|i| (i * 7 + 1) as u8).collect();
        b[510] = 0x55;
        b[511] = 0xaa;
        b
    }

    #[test]
    fn patches_mbr_and_core_keeping_the_partition_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = gpt_image(dir.path());
        let f = super::super::open_image(&path).unwrap();
        let mut before = [0u8; 512];
        f.read_exact_at(&mut before, 0).unwrap();
        let core: Vec<u8> = (0..3 * 512 + 100).map(|i| (i % 251) as u8).collect();
        install_bios(
            &f,
            &BiosBoot {
                boot_img: boot_img(),
                core_img: core.clone(),
            },
            4096,
        )
        .unwrap();

        let mut mbr = [0u8; 512];
        f.read_exact_at(&mut mbr, 0).unwrap();
        assert_eq!(
            &mbr[440..],
            &before[440..],
            "disk signature / partition table changed"
        );
        assert_eq!(
            u64::from_le_bytes(mbr[0x5c..0x64].try_into().unwrap()),
            4096
        );
        assert_eq!(mbr[0x64], 0xff);
        assert_eq!(&mbr[0x66..0x68], &[0x90, 0x90]);
        assert_eq!(&mbr[..0x5c], &boot_img()[..0x5c]);

        let mut written = vec![0u8; 4 * 512];
        f.read_exact_at(&mut written, 4096 * 512).unwrap();
        assert_eq!(
            u64::from_le_bytes(written[500..508].try_into().unwrap()),
            4097
        );
        assert_eq!(u16::from_le_bytes(written[508..510].try_into().unwrap()), 3);
        assert_eq!(&written[510..512], &core[510..512], "segment must stay");
        assert_eq!(&written[512..core.len()], &core[512..]);
        assert!(written[core.len()..].iter().all(|&b| b == 0), "padding");
        let v = Command::new("sgdisk")
            .arg("-v")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "sgdisk -v: {}",
            String::from_utf8_lossy(&v.stdout)
        );
    }

    #[test]
    fn refuses_a_partition_that_is_not_bios_boot_or_too_small() {
        let dir = tempfile::tempdir().unwrap();
        let path = gpt_image(dir.path());
        let f = super::super::open_image(&path).unwrap();
        let small = BiosBoot {
            boot_img: boot_img(),
            core_img: vec![1; 1024],
        };
        let e = install_bios(&f, &small, 8192).unwrap_err().to_string();
        assert!(e.contains("not a BIOS boot partition"), "{e}");
        let e = install_bios(&f, &small, 100).unwrap_err().to_string();
        assert!(e.contains("no GPT partition starts at LBA 100"), "{e}");
        let huge = BiosBoot {
            boot_img: boot_img(),
            core_img: vec![1; 5000 * 512],
        };
        let e = install_bios(&f, &huge, 4096).unwrap_err().to_string();
        assert!(e.contains("needs 5000 sectors"), "{e}");
    }
}
