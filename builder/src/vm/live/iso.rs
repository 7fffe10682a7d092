//! `vm --format iso`: `coreos_production_iso_image.iso`, one hybrid image that boots under BIOS
//! and UEFI, from a CD (El Torito: GRUB's eltorito.img for BIOS, a FAT image holding GRUB's
//! `EFI/boot/bootx64.efi` for UEFI) and from a USB stick it is copied to (GRUB's
//! boot_hybrid.img in the MBR, a GPT naming the FAT image as an EFI system partition).
//!
//! Volume (ISO 9660 names; GRUB and Linux read them in lower case):
//!   COREOS/USR.IMG     the live USR archive (first, so it is written while GRUB is made)
//!   BOOT/ELTORITO.IMG  BIOS boot image (boot information table patched in)
//!   BOOT/EFIBOOT.IMG   UEFI boot image (FAT, label EFIBOOT)
//!   BOOT/BOOT.CAT      El Torito catalog
//!   COREOS/GRUB.CFG    the live entry; its `linux` line ends with the kernel-argument area
//!   COREOS/EMBED.TXT   the index of the embed areas (`liveboot::embed`)
//!   COREOS/VMLINUZ, COREOS/INITRD.IMG   kernel and initramfs from the image's ESP
//!   COREOS/CONFIG.IMG  the configuration area: zeros, loaded as the last initrd

use super::{kernel_args, LiveSource};
use crate::atomic_output::Pending;
use crate::bootloader::live::{live_cfg, live_images, LiveBoot};
use crate::progress::Ui;
use anyhow::{ensure, Context};
use liveboot::eltorito::{self, BootEntry, PLATFORM_EFI, PLATFORM_X86};
use liveboot::embed::{self, Area, AreaKind, CONFIG_AREA_LEN, KARGS_AREA_LEN};
use liveboot::hybrid::{self, HybridSpec};
use liveboot::iso9660::{FileSpec, IsoLayout, VolumeSpec, SYSTEM_AREA_BLOCKS};
use liveboot::ISO_BLOCK;
use sha2::{Digest, Sha256};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub const ISO_NAME: &str = "coreos_production_iso_image.iso";
const USR: &str = "COREOS/USR.IMG";
const BIOS_IMAGE: &str = "BOOT/ELTORITO.IMG";
const EFI_IMAGE: &str = "BOOT/EFIBOOT.IMG";
const CATALOG: &str = "BOOT/BOOT.CAT";
const GRUB_CFG: &str = "COREOS/GRUB.CFG";
const KERNEL: &str = "COREOS/VMLINUZ";
const INITRD: &str = "COREOS/INITRD.IMG";
const CONFIG: &str = "COREOS/CONFIG.IMG";
/// 512-byte sectors the BIOS loads of the El Torito image: cdboot.img, which loads the rest.
const BIOS_LOAD_SECTORS: u16 = 4;
/// Blocks after the last file: room for the backup GPT of the hybrid layout.
const TAIL_BLOCKS: u64 = (hybrid::BACKUP_GPT_SECTORS * disk::SECTOR).div_ceil(ISO_BLOCK) + 1;

/// The ISO's files other than the USR archive, once the GRUB images exist.
struct Files {
    grub_cfg: Vec<u8>,
    area_at: usize,
    embed_index: Vec<u8>,
    efi_fat_bytes: u64,
}

fn volume(src: &LiveSource, sizes: &[(&str, u64)]) -> anyhow::Result<VolumeSpec> {
    let d_chars: String = src
        .version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut files = vec![FileSpec {
        path: USR.into(),
        len: src.usr.len(),
        // The archive's data then sits at the same offset in every 4 KiB page as in the file.
        align_blocks: 2,
    }];
    files.extend(sizes.iter().map(|(p, len)| FileSpec {
        path: p.to_string(),
        len: *len,
        align_blocks: 1,
    }));
    Ok(VolumeSpec {
        volume_id: format!("COREOS_{d_chars}").chars().take(32).collect(),
        timestamp: i64::try_from(disk::epoch::build_time()?).unwrap_or(i64::MAX),
        files,
        boot: Some((
            CATALOG.into(),
            vec![
                BootEntry {
                    platform: PLATFORM_X86,
                    image: BIOS_IMAGE.into(),
                    load_sectors: BIOS_LOAD_SECTORS,
                },
                BootEntry {
                    platform: PLATFORM_EFI,
                    image: EFI_IMAGE.into(),
                    load_sectors: 0,
                },
            ],
        )),
        tail_blocks: TAIL_BLOCKS,
    })
}

fn files(src: &LiveSource, boot: &LiveBoot, root_hash: &str) -> Files {
    let args = kernel_args(root_hash, src.usr.data_blocks(), &src.usr.salt_hex());
    let (cfg, area_at) = live_cfg(
        &format!("CoreOS live {}", src.version),
        &args,
        KARGS_AREA_LEN,
    );
    let index = embed::render_index(&[
        Area {
            kind: AreaKind::Kargs,
            path: GRUB_CFG.into(),
            offset: area_at as u64,
            len: KARGS_AREA_LEN as u64,
        },
        Area {
            kind: AreaKind::Config,
            path: CONFIG.into(),
            offset: 0,
            len: CONFIG_AREA_LEN as u64,
        },
    ]);
    // GRUB's EFI image plus room for the FAT's own structures, in whole MiB.
    let efi_fat_bytes = (boot.efi.len() as u64 + (512 << 10)).next_multiple_of(1 << 20);
    Files {
        grub_cfg: cfg.into_bytes(),
        area_at,
        embed_index: index.into_bytes(),
        efi_fat_bytes,
    }
}

fn sizes(src: &LiveSource, boot: &LiveBoot, f: &Files) -> Vec<(&'static str, u64)> {
    vec![
        (BIOS_IMAGE, boot.eltorito.len() as u64),
        (EFI_IMAGE, f.efi_fat_bytes),
        (GRUB_CFG, f.grub_cfg.len() as u64),
        (embed::INDEX_PATH, f.embed_index.len() as u64),
        (KERNEL, src.kernel.len() as u64),
        (INITRD, src.initrd.len() as u64),
        (CONFIG, CONFIG_AREA_LEN as u64),
    ]
}

pub fn write_iso(src: &LiveSource, outdir: &Path, ui: &Ui) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(outdir)?;
    let out = Pending::create(&outdir.join(ISO_NAME))?;
    let iso = &out.file;
    // The USR archive is the first file: its place depends on the directory tree only, so it
    // is written while the GRUB images are made.
    let usr_at = IsoLayout::plan(&volume(
        src,
        &[
            (BIOS_IMAGE, 0),
            (EFI_IMAGE, 0),
            (GRUB_CFG, 0),
            (embed::INDEX_PATH, 0),
            (KERNEL, 0),
            (INITRD, 0),
            (CONFIG, 0),
        ],
    )?)?
    .offset(USR)
    .expect("the USR archive is a file of the volume");
    let pb = ui.step("live ISO");
    let (tree, boot) = std::thread::scope(|s| {
        let boot = s.spawn(|| live_images(None));
        let tree = src.usr.write(&src.image, iso, usr_at);
        (tree, boot.join().expect("GRUB thread panicked"))
    });
    let (tree, boot) = (tree.context("writing the live USR")?, boot?);
    let f = files(src, &boot, &tree.root_hash_hex());
    let layout = IsoLayout::plan(&volume(src, &sizes(src, &boot, &f))?)?;
    ensure!(
        layout.offset(USR) == Some(usr_at),
        "the USR archive moved in the final layout"
    );
    iso.set_len(layout.bytes())?;
    for (at, b) in layout.metadata() {
        iso.write_all_at(b, *at)?;
    }
    let at = |p: &str| layout.offset(p).expect("every file is placed");
    let mut bios = boot.eltorito.clone();
    let (bios_lba, _) = layout.extent(BIOS_IMAGE).expect("placed");
    eltorito::patch_boot_image(&mut bios, SYSTEM_AREA_BLOCKS as u32, bios_lba, true)?;
    iso.write_all_at(&bios, at(BIOS_IMAGE))?;
    let timestamp = i64::try_from(disk::epoch::build_time()?).unwrap_or(i64::MAX);
    let volume_id = u32::from_le_bytes(
        Sha256::digest(format!("coreos-build live EFI {}", src.version).as_bytes())[..4]
            .try_into()
            .expect("four bytes"),
    );
    disk::fat::write_fat(
        iso,
        at(EFI_IMAGE),
        f.efi_fat_bytes,
        &disk::fat::FatParams {
            label: "EFIBOOT".into(),
            volume_id,
            timestamp,
        },
        &[(
            crate::bootloader::EFI_BOOT_PATH.to_string(),
            boot.efi.clone(),
        )],
    )
    .context("writing the EFI boot image")?;
    iso.write_all_at(&f.grub_cfg, at(GRUB_CFG))?;
    iso.write_all_at(&f.embed_index, at(embed::INDEX_PATH))?;
    iso.write_all_at(&src.kernel, at(KERNEL))?;
    iso.write_all_at(&src.initrd, at(INITRD))?;
    // CONFIG.IMG stays zeros: the file was extended, not written.
    let guid = Sha256::digest(
        format!(
            "coreos-build live ISO {} {}",
            src.version,
            tree.root_hash_hex()
        )
        .as_bytes(),
    );
    hybrid::write_system_area(
        iso,
        &HybridSpec {
            mbr_code: boot.hybrid_mbr.clone(),
            bios_image_lba: bios_lba,
            esp_offset: at(EFI_IMAGE),
            esp_bytes: f.efi_fat_bytes,
            disk_guid: uuid::Builder::from_random_bytes(guid[..16].try_into().expect("16 bytes"))
                .into_uuid(),
        },
    )?;
    pb.finish_and_clear();
    tracing::info!(
        "live ISO: {} bytes; live USR {} blocks, root hash {}; kernel-argument area at byte {} of /{GRUB_CFG}",
        layout.bytes(),
        src.usr.data_blocks(),
        tree.root_hash_hex(),
        f.area_at
    );
    out.commit()
}
