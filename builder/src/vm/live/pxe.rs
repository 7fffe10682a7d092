//! `vm --format pxe`: what a PXE or iPXE server hands out, as CoreOS named it:
//! `coreos_production_pxe.vmlinuz` (the kernel), `coreos_production_pxe_image.cpio.gz` (the
//! image's initramfs, then the live USR archive as a second gzip member: the kernel unpacks
//! concatenated archives, compressed or not) and `coreos_production_pxe.txt`, the one kernel
//! command line a boot configuration needs (the live USR's root hash included).

use super::super::gzip;
use super::super::tar_stream::Piece;
use super::{kernel_args, LiveSource};
use crate::atomic_output::Pending;
use crate::progress::Ui;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const KERNEL_NAME: &str = "coreos_production_pxe.vmlinuz";
pub const INITRD_NAME: &str = "coreos_production_pxe_image.cpio.gz";
pub const CMDLINE_NAME: &str = "coreos_production_pxe.txt";
/// Deflate level of the USR member: network boots fetch it, so smaller is worth the time.
const GZIP_LEVEL: u32 = 6;

pub fn write_pxe(src: &LiveSource, outdir: &Path, ui: &Ui) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(outdir)?;
    // The archive is written into a temporary beside the artifact, then compressed into it.
    let staging = tempfile::tempfile_in(outdir)?;
    let pb = ui.step("live USR");
    let tree = src.usr.write(&src.image, &staging, 0)?;
    pb.finish_and_clear();
    let args = kernel_args(
        &tree.root_hash_hex(),
        src.usr.data_blocks(),
        &src.usr.salt_hex(),
    );

    let mut initrd = Pending::create(&outdir.join(INITRD_NAME))?;
    initrd.file.write_all(&src.initrd)?;
    let len = src.usr.len();
    let pb = ui.bytes("pxe cpio.gz", len);
    {
        let mut w = BufWriter::with_capacity(1 << 20, &initrd.file);
        // Pieces of 1 MiB, so the compressor's chunks go to every core.
        let staging = Arc::new(staging);
        let pieces = (0..len)
            .step_by(1 << 20)
            .map(|at| Piece::Read {
                file: staging.clone(),
                at,
                len: (len - at).min(1 << 20),
            })
            .collect();
        gzip::write_gzip(
            pieces,
            &mut w,
            GZIP_LEVEL,
            disk::ordered_map::default_workers(),
            &|n| pb.set_position(n),
        )?;
        w.flush()?;
    }
    pb.finish_and_clear();
    let mut kernel = Pending::create(&outdir.join(KERNEL_NAME))?;
    kernel.file.write_all(&src.kernel)?;
    let cmdline = Pending::text(&outdir.join(CMDLINE_NAME), &format!("{args}\n"))?;
    Ok(vec![kernel.commit()?, initrd.commit()?, cmdline.commit()?])
}
