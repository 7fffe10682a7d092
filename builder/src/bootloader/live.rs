//! GRUB for the live ISO, from the same stock modules as the disk image, the way
//! `grub-mkrescue` builds a GRUB-only ISO: an `i386-pc-eltorito` image (cdboot.img + core) for
//! the El Torito BIOS entry, an `x86_64-efi` image for the EFI entry's FAT filesystem, and
//! `boot_hybrid.img` for the MBR of a USB stick. Both images carry `iso9660` and find the
//! ISO's `/coreos/grub.cfg` on whatever device they booted from (CD, or the stick's whole disk).
//!
//! The live `grub.cfg` boots the kernel with the initramfs, the live USR archive and the
//! configuration image as three initrds, and ends the `linux` line with the kernel-argument
//! embed area (`liveboot::embed`): pristine it is all `#`, which GRUB reads as a comment.

use super::grub_image::{make_image, ModuleDirs};
use anyhow::Context;
use std::path::Path;

/// The memdisk's grub.cfg: load the ISO's grub.cfg from the device that holds it.
pub const LIVE_MEMDISK_CFG: &str = r#"# coreos-build: load the live ISO's grub.cfg.
search --no-floppy --set root --file /coreos/grub.cfg
configfile ($root)/coreos/grub.cfg
"#;

/// Modules both live images embed (grub-mkimage adds their dependencies from moddep.lst).
const LIVE_MODULES: &[&str] = &[
    "iso9660",
    "part_gpt",
    "part_msdos",
    "fat",
    "search",
    "search_fs_file",
    "search_label",
    "normal",
    "linux",
    "configfile",
    "memdisk",
    "tar",
    "serial",
    "terminal",
    "echo",
    "test",
    "boot",
];

/// The three images of a live ISO.
#[derive(Debug, Clone)]
pub struct LiveBoot {
    /// The El Torito BIOS image: GRUB's cdboot.img, diskboot sector and core.
    pub eltorito: Vec<u8>,
    /// `EFI/boot/bootx64.efi` of the El Torito EFI image.
    pub efi: Vec<u8>,
    /// GRUB's `boot_hybrid.img`: the MBR of the ISO copied to a USB stick.
    pub hybrid_mbr: Vec<u8>,
}

/// Make the live images from the GRUB modules of the USR tree `usr` (else the host's), or of
/// the host (`None`: an image's USR-A is not unpacked for its modules); both targets are needed.
pub fn live_images(usr: Option<&Path>) -> anyhow::Result<LiveBoot> {
    let dirs = match usr {
        Some(u) => ModuleDirs::find(u),
        None => ModuleDirs::host(),
    };
    let (Some(pc), Some(efi_dir)) = (dirs.pc, dirs.efi) else {
        anyhow::bail!(
            "a live ISO needs GRUB's i386-pc and x86_64-efi modules (packages grub-pc-bin and grub-efi-amd64-bin){}",
            usr.map(|u| format!(", found in neither {}/lib/grub nor /usr/lib/grub", u.display())).unwrap_or_default()
        );
    };
    let pc_modules: Vec<&str> = ["biosdisk"].iter().chain(LIVE_MODULES).copied().collect();
    let efi_modules: Vec<&str> = LIVE_MODULES
        .iter()
        .chain(&["efi_gop", "all_video"])
        .copied()
        .collect();
    // The two grub-mkimage runs are independent: one per core.
    let (eltorito, efi) = std::thread::scope(|s| {
        let bios = s.spawn(|| make_image("i386-pc-eltorito", &pc, LIVE_MEMDISK_CFG, &pc_modules));
        let efi = make_image("x86_64-efi", &efi_dir, LIVE_MEMDISK_CFG, &efi_modules);
        (bios.join().expect("grub-mkimage thread panicked"), efi)
    });
    let mbr_path = pc.join("boot_hybrid.img");
    Ok(LiveBoot {
        eltorito: eltorito?,
        efi: efi?,
        hybrid_mbr: std::fs::read(&mbr_path)
            .with_context(|| format!("reading {}", mbr_path.display()))?,
    })
}

/// The live grub.cfg and the byte offset of its kernel-argument area (`area_len` bytes of `#`
/// that end the `linux` line). `kargs` are the live system's fixed arguments.
pub fn live_cfg(title: &str, kargs: &str, area_len: usize) -> (String, usize) {
    let head = format!(
        r#"# coreos-build: the live ISO's GRUB configuration (BIOS and UEFI, CD or USB stick).
set default="live"
set timeout=1
serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1
terminal_input serial console
terminal_output serial console

menuentry "{title}" --id=live {{
    linux /coreos/vmlinuz {kargs} "#
    );
    let area = "#".repeat(area_len);
    let tail = "\n    initrd /coreos/initrd.img /coreos/usr.img /coreos/config.img\n}\n";
    (format!("{head}{area}{tail}"), head.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_area_ends_the_linux_line() {
        let (cfg, at) = live_cfg("CoreOS live 1.2.3", "console=ttyS0 verity.usrhash=ab", 64);
        assert_eq!(&cfg[at..at + 64], "#".repeat(64));
        let line = cfg
            .lines()
            .find(|l| l.trim_start().starts_with("linux "))
            .unwrap();
        assert!(line.ends_with(&"#".repeat(64)), "{line}");
        assert!(line.contains("verity.usrhash=ab "), "{line}");
        assert_eq!(cfg.as_bytes()[at + 64], b'\n');
    }

    #[test]
    fn live_images_boot_from_iso9660() {
        // The host's modules (grub-pc-bin, grub-efi-amd64-bin: ci/install-deps).
        let t = tempfile::tempdir().unwrap();
        let a = live_images(Some(t.path())).unwrap();
        let cdboot = std::fs::read("/usr/lib/grub/i386-pc/cdboot.img").unwrap();
        assert!(
            a.eltorito.starts_with(&cdboot),
            "the BIOS image starts with cdboot.img"
        );
        assert!(a.eltorito.len() > 2548 + 8, "room for the grub2 boot info");
        assert_eq!(&a.efi[..2], b"MZ");
        assert_eq!(a.hybrid_mbr.len(), 512);
        let b = live_images(None).unwrap();
        assert!(a.eltorito == b.eltorito && a.efi == b.efi, "reproducible");
    }
}
