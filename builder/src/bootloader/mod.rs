//! GRUB for BIOS and UEFI, installed into the image file directly (no loop devices, no root).
//!
//! CONTRACT (called by `image`): `images(usr) -> Result<BootAssets>` (the GRUB images, made
//! while the filesystems are written), `config_files(&BootInputs)` once USR-A's verity root
//! hash is known, then `install_bios(&File, &BiosBoot, bios_boot_first_lba)` after the GPT;
//! `prepare` does the first two at once. No GRUB modules, or a GRUB image that fails to build,
//! is an error: an image that cannot boot is only made when the caller asks for none
//! (`image --no-bootloader`).
//!
//! One static `grub.cfg` (see `grub_cfg`) on the ESP at `coreos/grub/grub.cfg`, loaded by a
//! fixed config in both GRUB images' memdisk, so BIOS and UEFI boot the same way: the slot
//! GRUB's view of the GPT attributes picks (`coreos/grub/grubenv`), its kernel and initramfs
//! from the ESP, its `/usr` through dm-verity with the root hash from its `coreos/usr-X.cfg`,
//! the OEM partition's `grub.cfg` sourced first. Neither the GRUB images nor grub.cfg depend on
//! USR, as CoreOS's images did not (its GRUB read the hash from the kernel).

mod bios;
mod grub_cfg;
mod grub_image;
pub mod live;

use anyhow::Context;
use disk::slots::esp_files::{self, SlotConfig};
use disk::slots::{grub_view, Slot, SlotAttrs};
use std::fs::File;
use std::path::Path;

use grub_image::{GrubTarget, ModuleDirs};

/// What the boot configuration needs to know about the image being built: USR-A, and the
/// slot attributes its GPT starts with.
#[derive(Debug, Clone)]
pub struct BootInputs {
    /// dm-verity root hash of USR-A, hex.
    pub verity_root_hash: String,
    /// USR-A filesystem size in 4096-byte blocks (the verity data size).
    pub usr_fs_blocks: u64,
    /// dm-verity salt, hex (empty when none). Passed on the command line so the initramfs can
    /// open the tree even without a veritysetup superblock.
    pub verity_salt: String,
    /// USR-A's partition GUID (`verity.usr=PARTUUID=…`).
    pub usr_partuuid: uuid::Uuid,
    /// The OS version in USR-A (shown in the boot menu).
    pub version: String,
    /// The GPT attributes of the slots as the image has them (GRUB's view is rendered from them).
    pub slots: Vec<(Slot, SlotAttrs)>,
}

/// Files for the ESP and the BIOS boot code.
#[derive(Debug, Clone, Default)]
pub struct BootAssets {
    /// (path on the ESP, contents): `EFI/boot/bootx64.efi` (`images`), then the configuration
    /// (`config_files`). The kernel and initramfs (`coreos/vmlinuz-a`, `coreos/initrd-a`, from
    /// the tree's `boot/`) are the image builder's.
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

/// ESP path of the UEFI removable-media boot loader (what firmware runs with no boot entries).
pub const EFI_BOOT_PATH: &str = "EFI/boot/bootx64.efi";

/// ESP path of the main grub.cfg (where CoreOS kept it before the memdisk, S14b).
pub const GRUB_CFG_PATH: &str = "coreos/grub/grub.cfg";

/// Build the GRUB images (modules from `usr`'s `lib/grub`, else the host's) and the ESP
/// files; an error when neither the USR tree nor the host has GRUB modules.
pub fn prepare(usr: &Path, inputs: &BootInputs) -> anyhow::Result<BootAssets> {
    let mut assets = images(usr)?;
    assets.esp_files.extend(config_files(inputs)?);
    Ok(assets)
}

/// The configuration on the ESP, (path, contents): the static grub.cfg, USR-A's slot config,
/// GRUB's view of the slot attributes (grubenv) and the fallback naming USR-A.
pub fn config_files(inputs: &BootInputs) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let usr_a = SlotConfig {
        slot: Slot::A,
        partuuid: inputs.usr_partuuid,
        root_hash: inputs.verity_root_hash.trim().to_ascii_lowercase(),
        data_blocks: inputs.usr_fs_blocks,
        salt: inputs.verity_salt.trim().to_ascii_lowercase(),
        version: inputs.version.clone(),
    };
    let grubenv =
        grub_view::render(&inputs.slots, 0).context("rendering GRUB's view of the slots")?;
    Ok(vec![
        (GRUB_CFG_PATH.to_string(), grub_cfg::main_cfg().into_bytes()),
        (
            esp_files::config_path(Slot::A),
            usr_a
                .render()
                .context("USR-A's boot configuration")?
                .into_bytes(),
        ),
        (esp_files::GRUBENV_PATH.to_string(), grubenv),
        (
            esp_files::FALLBACK_PATH.to_string(),
            esp_files::fallback_cfg(Slot::A).into_bytes(),
        ),
    ])
}

/// The GRUB images (EFI image for the ESP, BIOS boot code), which depend only on the GRUB
/// modules found for `usr`; `config_file` completes the ESP files. An error when there are
/// no modules for either firmware (one is enough, with a warning).
pub fn images(usr: &Path) -> anyhow::Result<BootAssets> {
    images_from(&ModuleDirs::find(usr), &ModuleDirs::candidates(usr))
}

fn images_from(dirs: &ModuleDirs, looked: &[std::path::PathBuf]) -> anyhow::Result<BootAssets> {
    if dirs.efi.is_none() && dirs.pc.is_none() {
        let looked: Vec<String> = looked.iter().map(|d| d.display().to_string()).collect();
        anyhow::bail!(
            "no GRUB modules (a folder with moddep.lst and kernel.img) in {}: the image could not \
             boot. Ship GRUB's modules in the tree's lib/grub, install grub-pc-bin and \
             grub-efi-amd64-bin on this host, or pass --no-bootloader for an image without one",
            looked.join(", ")
        );
    }
    let cfg = grub_cfg::memdisk_cfg();
    // The two grub-mkimage runs are independent: one per core.
    let (efi, pc) = std::thread::scope(|s| {
        let efi = s.spawn(|| {
            dirs.efi
                .as_deref()
                .map(|d| grub_image::make(GrubTarget::Efi, d, &cfg))
                .transpose()
        });
        let pc = s.spawn(|| {
            dirs.pc
                .as_deref()
                .map(|d| grub_image::make(GrubTarget::Pc, d, &cfg))
                .transpose()
        });
        (
            efi.join().expect("grub-mkimage thread panicked"),
            pc.join().expect("grub-mkimage thread panicked"),
        )
    });
    let mut assets = BootAssets::default();
    match (efi?, &dirs.efi) {
        (Some(image), Some(dir)) => {
            tracing::info!("GRUB for UEFI from {}", dir.display());
            assets.esp_files.push((EFI_BOOT_PATH.to_string(), image));
        }
        _ => tracing::warn!("no x86_64-efi GRUB modules: the image will not boot under UEFI"),
    }
    match (pc?, &dirs.pc) {
        (Some(core_img), Some(dir)) => {
            tracing::info!("GRUB for BIOS from {}", dir.display());
            let boot_path = dir.join("boot.img");
            let boot_img = std::fs::read(&boot_path)
                .with_context(|| format!("reading {}", boot_path.display()))?;
            assets.bios = Some(BiosBoot { boot_img, core_img });
        }
        _ => tracing::warn!("no i386-pc GRUB modules: the image will not boot under BIOS"),
    }
    Ok(assets)
}

/// Install GRUB's BIOS boot code into an image whose GPT is written: boot.img's code into the
/// MBR, core.img into the BIOS-BOOT partition starting at `bios_boot_first_lba`.
pub fn install_bios(image: &File, bios: &BiosBoot, bios_boot_first_lba: u64) -> anyhow::Result<()> {
    bios::install_bios(image, bios, bios_boot_first_lba)
}

/// Open an image read-write for `install_bios` (a convenience for callers holding a path).
pub fn open_image(path: &Path) -> anyhow::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(hash: &str) -> BootInputs {
        BootInputs {
            verity_root_hash: hash.into(),
            usr_fs_blocks: 260094,
            verity_salt: "00ff".into(),
            usr_partuuid: "7130c94a-213a-4e5a-8e26-6cce9662f132".parse().unwrap(),
            version: "1.2.3".into(),
            slots: vec![
                (
                    Slot::A,
                    SlotAttrs {
                        priority: 1,
                        tries: 0,
                        successful: true,
                    },
                ),
                (Slot::B, SlotAttrs::default()),
            ],
        }
    }

    #[test]
    fn no_modules_is_an_error_naming_where_it_looked() {
        let looked = ModuleDirs::candidates(Path::new("/tree/usr"));
        let e = format!(
            "{:#}",
            images_from(&ModuleDirs::default(), &looked).unwrap_err()
        );
        for d in [
            "/tree/usr/lib/grub/i386-pc",
            "/tree/usr/lib/grub/x86_64-efi",
            "/usr/lib/grub/i386-pc",
            "/usr/lib/grub/x86_64-efi",
            "--no-bootloader",
        ] {
            assert!(e.contains(d), "{d} missing from: {e}");
        }
    }

    #[test]
    fn prepare_puts_the_hash_in_usr_a_cfg_only() {
        // The host's GRUB modules (grub-pc-bin, grub-efi-amd64-bin: ci/install-deps).
        let t = tempfile::tempdir().unwrap();
        let a = prepare(t.path(), &inputs(&"ab".repeat(32))).unwrap();
        let b = prepare(t.path(), &inputs(&"cd".repeat(32))).unwrap();
        let file = |x: &BootAssets, path: &str| {
            x.esp_files
                .iter()
                .find(|f| f.0 == path)
                .unwrap_or_else(|| panic!("no {path}"))
                .1
                .clone()
        };
        let cfg = String::from_utf8(file(&a, "coreos/usr-a.cfg")).unwrap();
        assert!(
            cfg.contains(&format!("set a_hash=\"{}\"", "ab".repeat(32))),
            "{cfg}"
        );
        assert!(
            cfg.contains("set a_uuid=\"7130c94a-213a-4e5a-8e26-6cce9662f132\""),
            "{cfg}"
        );
        for same in [
            EFI_BOOT_PATH,
            GRUB_CFG_PATH,
            "coreos/grub/grubenv",
            "coreos/grub/fallback.cfg",
        ] {
            assert!(file(&a, same) == file(&b, same), "{same} depends on USR-A");
        }
        let (pa, pb) = (a.bios.clone().unwrap(), b.bios.clone().unwrap());
        assert!(pa.core_img == pb.core_img && pa.boot_img == pb.boot_img);
        let env = grub_view::parse(&file(&a, "coreos/grub/grubenv")).unwrap();
        assert_eq!(env[&Slot::A], inputs("").slots[0].1);
        assert_eq!(env[&Slot::B], SlotAttrs::default());
        assert!(!a.esp_files.iter().any(|f| f.0.ends_with("usr-b.cfg")));
    }

    #[test]
    fn a_bad_hash_is_named() {
        let e = format!("{:#}", config_files(&inputs("xyz")).unwrap_err());
        assert!(e.contains("USR-A") && e.contains("root hash"), "{e}");
    }
}
