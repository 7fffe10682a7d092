//! The live formats of `coreos-build vm`: `pxe` (kernel, initramfs with the live USR, command
//! line) and `iso` (one hybrid image that boots under BIOS and UEFI from a CD or a USB stick).
//!
//! Everything comes from the production image: the kernel and initramfs from its ESP (what the
//! disk boots), and the live USR from its USR-A, cut to the blocks it uses (`ext4::shrink`) and
//! given a dm-verity tree and root hash of its own (`usr`). The initramfs finds the USR image
//! at `/usr.img` when the kernel command line has no `root=`, opens it through dm-verity with
//! the root hash the command line carries, and keeps the kernel's tmpfs as its root.

mod iso;
mod pxe;
mod usr;

use super::work_image;
use anyhow::{bail, Context};
use disk::layout::Partition;
use std::fs::File;
use std::path::{Path, PathBuf};

pub use iso::write_iso;
pub use pxe::write_pxe;

/// Where the disk image keeps the kernel and initramfs the live media boot.
const ESP_KERNEL: &str = "coreos/vmlinuz-a";
const ESP_INITRD: &str = "coreos/initrd-a";
/// The serial console first, then the screen, as the disk image's grub.cfg sets them.
const CONSOLE_ARGS: &str = "console=tty0 console=ttyS0,115200n8";

/// What the live media are made of, read from a production image.
pub struct LiveSource {
    pub image: File,
    pub version: String,
    pub kernel: Vec<u8>,
    pub initrd: Vec<u8>,
    pub usr: usr::UsrArchive,
}

impl LiveSource {
    /// Read `image` (a CoreOS disk: GPT with USR-A and EFI-SYSTEM) and plan the live USR.
    pub fn open(image: &Path, version: &str) -> anyhow::Result<LiveSource> {
        let table = work_image::check_coreos(image)?;
        let part = |label: &str| -> anyhow::Result<Partition> {
            table
                .by_label(label)
                .cloned()
                .with_context(|| format!("{} has no {label} partition", image.display()))
        };
        let (usr_part, esp) = (part("USR-A")?, part("EFI-SYSTEM")?);
        let f = File::open(image).with_context(|| format!("opening {}", image.display()))?;
        let from_esp = |path: &str| -> anyhow::Result<Vec<u8>> {
            disk::fat::read_file(&f, esp.offset(), esp.bytes(), path)
                .with_context(|| {
                    format!(
                        "reading {path} from the EFI-SYSTEM partition of {}",
                        image.display()
                    )
                })?
                .with_context(|| {
                    format!(
                        "{} has no {path} on its EFI-SYSTEM partition",
                        image.display()
                    )
                })
        };
        let kernel = from_esp(ESP_KERNEL)?;
        let initrd = from_esp(ESP_INITRD)?;
        if initrd.len() < 2 || (initrd[..2] != [0x1f, 0x8b] && !initrd.starts_with(b"070701")) {
            bail!(
                "{ESP_INITRD} on {} is neither a gzip nor a newc cpio archive",
                image.display()
            );
        }
        let usr = usr::UsrArchive::plan(&f, &usr_part, version)
            .with_context(|| format!("USR-A of {}", image.display()))?;
        Ok(LiveSource {
            image: f,
            version: version.to_string(),
            kernel,
            initrd,
            usr,
        })
    }
}

/// The live kernel command line: the console and the live USR's dm-verity parameters.
pub fn kernel_args(root_hash: &str, data_blocks: u64, salt: &str) -> String {
    format!(
        "{CONSOLE_ARGS} verity.usrhash={root_hash} verity.usrdatablocks={data_blocks} verity.usrsalt={salt}"
    )
}

/// Build `iso` or `pxe` from `image` into `outdir`; returns the files written.
pub fn build(
    iso: bool,
    image: &Path,
    outdir: &Path,
    version: &str,
    ui: &crate::progress::Ui,
) -> anyhow::Result<Vec<PathBuf>> {
    let src = LiveSource::open(image, version)?;
    if iso {
        Ok(vec![write_iso(&src, outdir, ui)?])
    } else {
        write_pxe(&src, outdir, ui)
    }
}
