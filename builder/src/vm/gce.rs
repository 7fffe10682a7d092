//! `coreos_production_gce.tar.gz` for GCE image import: one member named `disk.raw` whose size
//! is a whole number of GiB, stored as an old-GNU sparse member (GNU `tar --format=oldgnu -S`),
//! gzip-compressed.

use super::gzip::write_gzip;
use super::tar_stream::{pieces, Member, Source};
use crate::atomic_output::Pending;
use crate::progress::Ui;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

pub const GIB: u64 = 1 << 30;
/// gzip level 3: on the Debian-minbase image it compresses within 1% of level 6 (zlib-rs) for
/// about two thirds of the CPU time.
pub const LEVEL: u32 = 3;

/// Archive `disk_raw` (already padded to whole GiB) as `dest`.
pub fn write_archive(
    disk_raw: &Path,
    dest: &Path,
    mtime: u64,
    workers: usize,
    ui: &Ui,
) -> anyhow::Result<PathBuf> {
    let members = vec![Member {
        name: "disk.raw".into(),
        mode: 0o644,
        source: Source::SparseFile(disk_raw.to_path_buf()),
    }];
    let pieces = pieces(members, mtime)?;
    let total: u64 = pieces.iter().map(|p| p.len()).sum();
    let pb = ui.bytes("gce tar.gz", total);
    let out = Pending::create(dest)?;
    let mut w = BufWriter::with_capacity(1 << 20, &out.file);
    write_gzip(pieces, &mut w, LEVEL, workers, &|n| pb.set_position(n))?;
    drop(w);
    pb.finish_and_clear();
    out.commit()
}
