//! `coreos-build image`: the production disk image from a USR tree (not built yet).
//!
//! CONTRACT (release and vm call these): `ImageRequest`, `BuiltImage`, `OemSource`, `build`,
//! `replace_oem`.
#![allow(dead_code)]

use crate::progress::Ui;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {}

/// Where an OEM partition's tree comes from.
#[derive(Debug, Clone)]
pub enum OemSource {
    /// `oem/<name>/`, embedded in the binary.
    Builtin(String),
    /// A folder on disk.
    Dir(PathBuf),
}

/// Everything `build` needs; the CLI fills it from `Args`.
#[derive(Debug, Clone)]
pub struct ImageRequest {
    pub usr: PathBuf,
    /// "base", "vm", "vagrant" or a path to a layout file.
    pub layout: String,
    pub oem: Option<OemSource>,
    /// X.Y.Z; None = days since 2013-07-01 UTC of SOURCE_DATE_EPOCH (or now) as N.0.0.
    pub version: Option<String>,
    pub group: String,
    pub board: String,
}

/// The files `build` wrote into the output folder (all complete, under their final names).
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub image: PathBuf,
    pub verity_txt: PathBuf,
    pub contents_txt: PathBuf,
    pub version_txt: PathBuf,
    pub version: String,
    pub verity_root_hash: String,
}

pub fn build(req: &ImageRequest, outdir: &Path, ui: &Ui) -> anyhow::Result<BuiltImage> {
    let _ = (req, outdir, ui);
    anyhow::bail!("coreos-build image is not built yet")
}

/// Rewrite partition 6 (OEM) of an existing image with another OEM tree, in place.
pub fn replace_oem(image: &Path, oem: &OemSource, ui: &Ui) -> anyhow::Result<()> {
    let _ = (image, oem, ui);
    anyhow::bail!("replace_oem is not built yet")
}

pub fn run(args: Args, ui: &Ui) -> anyhow::Result<()> {
    let _ = (args, ui);
    anyhow::bail!("coreos-build image is not built yet")
}
