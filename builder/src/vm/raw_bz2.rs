//! The compressed raw disk of the bare-disk platforms (CoreOS `digitalocean`, `packet`):
//! `coreos_production_<platform>_image.bin.bz2`, made by the release's parallel bzip2 (the same
//! bytes `release` publishes as that OEM's image, which `coreos-install -o <oem>` fetches).

use crate::progress::Ui;
use crate::release::compress::{compress, ChunkCache};
use std::path::{Path, PathBuf};

pub fn write(raw: &Path, dest: &Path, ui: &Ui) -> anyhow::Result<PathBuf> {
    let pb = ui.bytes("bzip2", 0);
    let c = compress(raw, dest, &ChunkCache::default(), None, &pb)?;
    pb.finish_and_clear();
    Ok(c.path)
}
