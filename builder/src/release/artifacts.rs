//! `release --formats`: the platform artifacts of `vm::build_artifacts`, made in the work
//! folder and moved into the version folder under their final names only when complete, each
//! with its `.DIGESTS` and, when signing, a detached `.sig` and a clearsigned `.DIGESTS.asc`.
//! The fixed VHDs (a 30 GiB disk for Azure) are published bzip2-compressed, `.vhd.bz2`, as
//! CoreOS published them: mostly holes, they compress to their data.

use super::compress::ChunkCache;
use super::digests::{self, FileDigests};
use super::mirror;
use crate::atomic_output::{self, Pending};
use crate::progress::Ui;
use crate::vm::{self, ArtifactOptions, Format};
use anyhow::{Context, Result};
use std::path::Path;

/// The `--formats` values (comma-separated or repeated), checked before any work starts;
/// a format named twice is built once.
pub fn parse(values: &[String]) -> Result<Vec<Format>> {
    let mut formats = Vec::new();
    for v in values.iter().flat_map(|v| v.split(',')) {
        let f: Format = v
            .trim()
            .parse()
            .with_context(|| format!("--formats {v:?}"))?;
        if !formats.contains(&f) {
            formats.push(f);
        }
    }
    Ok(formats)
}

/// The `--mirror-url` a Vagrant catalog needs: Vagrant fetches the catalog's box URL as it
/// is (a relative one resolves against its working directory, not the catalog), so the
/// release refuses to write a catalog without an absolute base URL.
pub fn check_mirror_url(formats: &[Format], mirror_url: Option<&str>) -> Result<()> {
    if !formats.contains(&Format::Vagrant) {
        return Ok(());
    }
    let Some(url) = mirror_url else {
        anyhow::bail!(
            "--formats vagrant needs --mirror-url URL, the address MIRROR is served at: the \
             Vagrant catalog must name its box by an absolute URL (`vagrant box add` does not \
             resolve a relative one against the catalog's)"
        );
    };
    let rest = ["http://", "https://", "file://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme));
    if rest.is_none_or(|r| r.trim_matches('/').is_empty()) {
        anyhow::bail!("--mirror-url {url:?} is not an absolute http://, https:// or file:// URL");
    }
    Ok(())
}

/// Where the Vagrant catalog points at the box: the version folder under the mirror's URL. No
/// path of this machine gets in, so two releases stay byte-identical.
pub fn box_url(mirror_url: &str, board: &str, version: &str) -> String {
    let name = "coreos_production_vagrant.box";
    format!(
        "{}/{board}/{version}/{name}",
        mirror_url.trim_end_matches('/')
    )
}

/// Where and how a release's artifacts are published.
pub struct Publish<'a> {
    /// The version folder.
    pub dir: &'a Path,
    pub key: Option<&'a keys::SecretKey>,
    /// The release's compressed chunks (and USR-A's streams), for the `.vhd.bz2`s.
    pub cache: &'a ChunkCache,
}

/// Build `format`'s artifacts from `raw` in `work` and publish them into `to.dir`.
pub fn release(
    format: Format,
    raw: &Path,
    work: &Path,
    opts: &ArtifactOptions,
    to: &Publish,
    ui: &Ui,
) -> Result<()> {
    let Publish { dir, key, cache } = *to;
    let outdir = work.join(format!("vm-{}", format.name()));
    if outdir.exists() {
        // A previous run's leftovers in a reused --work-dir.
        std::fs::remove_dir_all(&outdir)
            .with_context(|| format!("removing {}", outdir.display()))?;
    }
    let files = vm::build_artifacts(format, raw, &outdir, opts, ui)
        .with_context(|| format!("building the {} artifacts", format.name()))?;
    for f in &files {
        if f.extension().is_some_and(|e| e == "vhd") {
            let bz2 = f.with_file_name(format!("{}.bz2", digests::file_name(f)));
            let pb = ui.bytes("vhd.bz2", 0);
            // The release's cache: USR-A's streams and the image's chunks are copied where the
            // VHD holds the same bytes, not compressed again.
            let c = super::compress::compress(f, &bz2, cache, None, &pb)?;
            tracing::debug!(
                "{}: {} of {} chunks reused, {} spliced",
                bz2.display(),
                c.reused,
                c.chunks,
                c.spliced
            );
            pb.finish_and_clear();
            std::fs::remove_file(f).ok();
            publish(&bz2, dir, key)?;
        } else {
            publish(f, dir, key)?;
        }
    }
    std::fs::remove_dir_all(&outdir).ok();
    Ok(())
}

/// Sign and digest `file` in one read, write the `.sig`, `.DIGESTS.asc` and `.DIGESTS` beside
/// its final place, then move it there.
pub(super) fn publish(file: &Path, dir: &Path, key: Option<&keys::SecretKey>) -> Result<()> {
    let name = digests::file_name(file);
    let signer = key.map(keys::DetachedSigner::new).transpose()?;
    let (d, signature) = FileDigests::of_file_signed(file, signer)?;
    let text = digests::render(&[d]);
    let dest = dir.join(&name);
    let with_ext = |ext: &str| dir.join(format!("{name}{ext}"));
    if let (Some(signature), Some(key)) = (signature, key) {
        atomic_output::write(&with_ext(".sig"), &signature)?;
        atomic_output::write(
            &with_ext(".DIGESTS.asc"),
            keys::clearsign(key, &text)?.as_bytes(),
        )?;
    }
    atomic_output::write(&with_ext(".DIGESTS"), text.as_bytes())?;
    move_into_place(file, &dest)
}

/// A rename when the work folder shares the mirror's filesystem (the default), else a sparse
/// copy under a temporary name first.
fn move_into_place(from: &Path, to: &Path) -> Result<()> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    let out = Pending::create(to)?;
    mirror::sparse_copy(from, out.tmp_path())?;
    out.file
        .set_permissions(std::fs::metadata(from)?.permissions())?;
    out.commit()?;
    std::fs::remove_file(from).ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_split_deduplicated_and_checked() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse(&v(&["gce,ami_vmdk", "gce"])).unwrap(),
            [Format::Gce, Format::AmiVmdk]
        );
        let msg = format!("{:#}", parse(&v(&["qemu,floppy"])).unwrap_err());
        assert!(
            msg.contains("floppy") && msg.contains("virtualbox"),
            "{msg}"
        );
    }

    #[test]
    fn box_url_is_absolute_under_the_mirror_url() {
        assert_eq!(
            box_url("https://m.example/", "amd64-usr", "1.2.3"),
            "https://m.example/amd64-usr/1.2.3/coreos_production_vagrant.box"
        );
    }

    #[test]
    fn a_vagrant_catalog_needs_an_absolute_mirror_url() {
        let vagrant = [Format::Gce, Format::Vagrant];
        let msg = format!("{:#}", check_mirror_url(&vagrant, None).unwrap_err());
        assert!(msg.contains("--mirror-url"), "{msg}");
        for bad in ["mirror", "/srv/mirror", "http://", "ftp://m.example"] {
            let msg = format!("{:#}", check_mirror_url(&vagrant, Some(bad)).unwrap_err());
            assert!(msg.contains(bad), "{msg}");
        }
        check_mirror_url(&vagrant, Some("http://127.0.0.1:8080")).unwrap();
        check_mirror_url(&vagrant, Some("file:///srv/mirror")).unwrap();
        check_mirror_url(&[Format::Gce], None).unwrap();
    }
}
