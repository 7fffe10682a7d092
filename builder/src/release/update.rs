//! The release's update files, from the released image's USR-A and its kernel:
//! `coreos_production_update.gz` (the signed CrAU payload update_engine and ue-rs read, as
//! the SDK's `delta_generator` made it; despite `.gz` it is not gzip, as in CoreOS) and
//! `coreos_production_update.bin.bz2` (the raw USR-A partition). Both come from one
//! compression: the `.bin.bz2` is the payload's own 1 MiB bzip2 streams, concatenated.
//! Each is published like every release file (`.sig`, `.DIGESTS`, `.DIGESTS.asc`).
//! They are made before the images: the images' `.bz2` splice in the same streams for USR-A
//! (a [`Splice`]) rather than compress the partition again; they are published while the
//! first image compresses.

use super::artifacts;
use super::compress::Splice;
use crate::progress::Ui;
use crate::update_payload::UpdateSource;
use anyhow::{Context, Result};
use payload::{PayloadSigningKey, Release, WriteOptions};
use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const PAYLOAD: &str = "coreos_production_update.gz";
pub const PARTITION_BZ2: &str = "coreos_production_update.bin.bz2";

/// What the update files need, checked before the release writes anything: an image without
/// USR-A (or, for a payload, without the ESP's kernel) is an error with `--update-key` and
/// a warning (no update files) without.
pub fn source(
    image: &Path,
    payload_key: Option<&PayloadSigningKey>,
) -> Result<Option<UpdateSource>> {
    match UpdateSource::find(image, payload_key.is_some()) {
        Ok(s) => Ok(Some(s)),
        Err(e) if payload_key.is_none() => {
            tracing::warn!("no update files ({PARTITION_BZ2}): {e:#}");
            Ok(None)
        }
        Err(e) => Err(e).context("finding the update payload's USR-A and kernel"),
    }
}

/// The update files, written and synced in the work folder, not yet published.
pub struct Unpublished {
    files: Vec<PathBuf>,
}

impl Unpublished {
    /// Publish the files into `dir` (DIGESTS and signatures hash each file again, so the
    /// release does this while the image compresses).
    pub fn publish(&self, dir: &Path, pgp_key: Option<&keys::SecretKey>) -> Result<()> {
        for p in &self.files {
            artifacts::publish(p, dir, pgp_key)?;
        }
        tracing::debug!("update files published");
        Ok(())
    }
}

/// Write the update files of `source` into `work`. Without `payload_key` only the
/// partition's `.bz2` is made. Returns that `.bz2`'s streams, to splice into the images'
/// own, and the files to publish.
pub fn write(
    source: &UpdateSource,
    payload_key: Option<&PayloadSigningKey>,
    release: &Release,
    work: &Path,
    ui: &Ui,
) -> Result<(Splice, Unpublished)> {
    let create = |name: &str| {
        let p = work.join(name);
        // Readable too: the images read the partition's streams back from this handle.
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .with_context(|| format!("creating {}", p.display()))
            .map(|f| (p, f))
    };
    let (bz2_path, bz2_file) = create(PARTITION_BZ2)?;
    let streams_file = Arc::new(bz2_file.try_clone()?);
    let mut bz2 = BufWriter::with_capacity(1 << 20, bz2_file);
    let mut published = vec![bz2_path];
    let stream_lens;
    match payload_key {
        Some(key) => {
            let (path, file) = create(PAYLOAD)?;
            let mut out = BufWriter::with_capacity(1 << 20, file);
            let w = source.write(release, key, &mut out, Some(&mut bz2), work, ui)?;
            stream_lens = w.partition_bz2_streams;
            sync(out, &path)?;
            tracing::info!(
                "{PAYLOAD}: {} bytes, {} partition and {} kernel operations",
                w.len,
                w.partition_ops,
                w.kernel_ops
            );
            published.push(path);
        }
        None => {
            let pb = ui.bytes("update.bin", source.usr_a.end - source.usr_a.start);
            let opts = WriteOptions {
                threads: 0,
                spool_dir: None,
            };
            stream_lens = payload::write_partition_bz2(
                &source.image,
                source.usr_a.clone(),
                &mut bz2,
                &opts,
                &mut |n| pb.set_position(n),
            )?;
            pb.finish_and_clear();
        }
    }
    sync(bz2, &published[0])?;
    tracing::debug!("update files compressed");
    let splice = Splice {
        source: Arc::new(
            source
                .image
                .try_clone()
                .context("sharing the image's handle")?,
        ),
        raw: source.usr_a.clone(),
        piece: payload::CHUNK,
        file: streams_file,
        stream_lens,
    };
    Ok((splice, Unpublished { files: published }))
}

/// Flush and fsync a work file before it is published under its final name.
fn sync(w: BufWriter<File>, path: &Path) -> Result<()> {
    let f = w
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("syncing {}", path.display()))
}
