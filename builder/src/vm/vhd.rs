//! The fixed VHDs of Azure and Hyper-V (CoreOS `azure`, `hyperv`): the disk with the VHD
//! footer appended. The work copy already is the disk, so it gets the footer and is renamed into
//! place; an image taken as it is (`--as-is`) is copied in the kernel first, holes kept, with
//! write-back started as it goes so the commit's fsync does not wait for the whole copy.

use crate::atomic_output::Pending;
use anyhow::Context;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Append the footer to the work copy `out` and give it its final name.
pub fn finish(out: Pending, seed: &[u8], unix_time: u64) -> anyhow::Result<PathBuf> {
    let id = vmimage::vhd::unique_id_from_seed(seed);
    vmimage::vhd::append_fixed_footer(&out.file, id, unix_time)
        .with_context(|| format!("making {} a fixed VHD", out.dest().display()))?;
    out.commit()
}

/// Copy `image` (its data ranges) as `dest`, then append the footer.
pub fn copy_as_is(
    image: &Path,
    dest: &Path,
    seed: &[u8],
    unix_time: u64,
) -> anyhow::Result<PathBuf> {
    let src = File::open(image).with_context(|| format!("opening {}", image.display()))?;
    let out = Pending::create(dest)?;
    disk::sparse::copy(&src, &out.file, None).with_context(|| {
        format!(
            "copying {} to {}",
            image.display(),
            out.tmp_path().display()
        )
    })?;
    finish(out, seed, unix_time).with_context(|| format!("from {}", image.display()))
}
