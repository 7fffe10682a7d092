//! `coreos-build release`: build the production image and write the signed, compressed mirror
//! tree `MIRROR/<board>/<version>/` (see `mirror.rs` for the atomic writes).
//!
//! Without `--signing-key` the release is unsigned (no `.sig`, no `.DIGESTS.asc`) and a warning
//! says so: `coreos-install` refuses such images unless given `--insecure`, so an unsigned
//! mirror is only useful for local testing. Without `--update-key` the release has no update
//! payload (`coreos_production_update.gz`), and a warning says so.

mod artifacts;
mod bmap;
pub(crate) mod compress;
mod digests;
mod mirror;
mod sums;
mod update;

use crate::atomic_output::{self, Pending};
use crate::image::{self, ImageRequest, OemSource};
use crate::progress::Ui;
use crate::vm;
use anyhow::{bail, Context, Result};
use compress::{ChunkCache, Compressed};
use digests::FileDigests;
use std::path::{Path, PathBuf};

/// The OEMs released by default, one image each (`coreos-install -o NAME` fetches it). The bare
/// disk platforms are here (digitalocean, packet: their image is what they boot); the VM
/// platforms (azure, hyperv, vmware, openstack) ship as `--formats` artifacts instead, since
/// each image here adds its copy and compression to every release.
pub const OEMS: &[&str] = &[
    "vagrant",
    "virtualbox",
    "gce",
    "ec2",
    "metal",
    "digitalocean",
    "packet",
];
const IMAGE: &str = "coreos_production_image.bin";

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  coreos-build keygen --output key/
  coreos-build release --usr ./usr --output mirror/ --signing-key key/signing-key.asc
  coreos-build release --usr ./usr --output mirror/ --signing-key key/signing-key.asc \\
      --oem vagrant --formats vagrant,qemu --mirror-url https://mirror.example
  coreos-build release --from-image out/coreos_production_image.bin --version 3788.1.2 --output mirror/

Serve MIRROR over HTTP and point coreos-install at it: coreos-install -d /dev/sda -b URL/amd64-usr")]
pub struct Args {
    /// The USR tree (a folder holding the OS's /usr).
    #[arg(long, required_unless_present = "from_image")]
    usr: Option<PathBuf>,
    /// Mirror root; files go to MIRROR/<board>/<version>/.
    #[arg(long)]
    output: PathBuf,
    /// Armored or binary OpenPGP secret key (unprotected), e.g. from `coreos-build keygen`.
    #[arg(long)]
    signing_key: Option<PathBuf>,
    /// PEM RSA-2048 private key (PKCS#1 or PKCS#8) that signs the update payload
    /// coreos_production_update.gz, e.g. update-payload-key.pem from `coreos-build keygen`.
    #[arg(long)]
    update_key: Option<PathBuf>,
    /// X.Y.Z (default: days since 2013-07-01 of SOURCE_DATE_EPOCH or now, as N.0.0).
    #[arg(long)]
    version: Option<String>,
    /// Update channel stamped into /usr/share/coreos/update.conf.
    #[arg(long, default_value = "developer")]
    group: String,
    /// Board: the mirror folder MIRROR/<board>/ and COREOS_BOARD in the release files.
    #[arg(long, default_value = "amd64-usr")]
    board: String,
    /// Release these OEMs (repeatable; default: every built-in OEM).
    #[arg(long = "oem")]
    oems: Vec<String>,
    /// Release only the generic image, no per-OEM images.
    #[arg(long, conflicts_with = "oems")]
    no_oem: bool,
    /// Where the raw images are built (default: a temp folder beside MIRROR, removed afterwards).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Also put the raw image into the version folder (a sparse copy).
    #[arg(long)]
    include_raw: bool,
    /// Release an already-built raw image instead of building one from --usr (needs --version;
    /// the verity and contents files are copied when they lie beside it).
    #[arg(long, requires = "version")]
    from_image: Option<PathBuf>,
    /// Also release these platform artifacts (comma-separated or repeated): the formats of
    /// `coreos-build vm` (virtualbox, vagrant, gce, ami, ami_vmdk, qemu, azure, hyperv, vmware,
    /// vmware_ova, openstack, digitalocean, packet, iso, pxe).
    #[arg(long = "formats", value_name = "FORMAT[,FORMAT...]")]
    formats: Vec<String>,
    /// The URL MIRROR is served at (http://, https:// or file://); required by --formats
    /// vagrant, whose catalog names the box by an absolute URL under it.
    #[arg(long, value_name = "URL")]
    mirror_url: Option<String>,
    #[command(flatten)]
    usr_policy: image::UsrArgs,
}

pub fn run(args: Args, ui: &Ui) -> Result<()> {
    // Everything that can fail on bad input is checked before a single file is written.
    let key = match &args.signing_key {
        Some(p) => {
            let mut k = keys::SecretKey::from_file(p)
                .with_context(|| format!("signing key {}", p.display()))?;
            if let Some(t) = disk::epoch::source_date_epoch()? {
                k = k
                    .with_signing_time(u32::try_from(t).context("SOURCE_DATE_EPOCH is past 2106")?);
            }
            tracing::info!("signing with key {} ({})", k.key_id(), k.fingerprint());
            Some(k)
        }
        None => {
            tracing::warn!(
                "NO --signing-key: this release is UNSIGNED (no .sig, no .DIGESTS.asc); coreos-install refuses it without --insecure"
            );
            None
        }
    };
    let update_key = match &args.update_key {
        Some(p) => Some(crate::update_payload::load_key(p)?),
        None => {
            tracing::warn!(
                "no --update-key: this release has NO update payload ({}); {} is still written",
                update::PAYLOAD,
                update::PARTITION_BZ2
            );
            None
        }
    };
    if let Some(v) = &args.version {
        check_version(v)?;
    }
    if args.board.contains('/') || args.board.starts_with('.') {
        bail!("--board {:?} must be a plain name", args.board);
    }
    let oem_args: Vec<String> = match (args.no_oem, args.oems.is_empty()) {
        (true, _) => Vec::new(),
        (false, true) => OEMS.iter().map(|s| s.to_string()).collect(),
        (false, false) => args.oems.clone(),
    };
    let mut oems = Vec::new();
    for a in &oem_args {
        let src = OemSource::parse(a)?;
        let name = match &src {
            OemSource::Builtin(n) => n.clone(),
            OemSource::Dir(p) => digests::file_name(p),
        };
        oems.push((name, src));
    }
    let formats = artifacts::parse(&args.formats)?;
    let usr_policy = args.usr_policy.policy()?;
    artifacts::check_mirror_url(&formats, args.mirror_url.as_deref())?;
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let output = args.output.canonicalize()?;
    let (work, _work_guard) = work_dir(&args, &output)?;

    let built = match &args.from_image {
        Some(raw) => {
            Built::from_image(raw, args.version.clone().expect("clap requires --version"))?
        }
        None => {
            let req = ImageRequest {
                usr: args.usr.clone().expect("clap requires --usr"),
                layout: "base".into(),
                oem: None,
                version: args.version.clone(),
                group: args.group.clone(),
                board: args.board.clone(),
                // A release is signed: it must boot, so no GRUB is an error here.
                bootloader: true,
                // A work file: compressed at once, then deleted.
                durable: false,
            };
            let b = image::build(&req, &usr_policy, &work, ui)
                .context("building the production image")?;
            Built {
                image: b.image,
                version: b.version,
                extras: vec![b.verity_txt, b.contents_txt],
                version_txt: Some(b.version_txt),
            }
        }
    };
    check_version(&built.version)?;
    let update_source = update::source(&built.image, update_key.as_ref())?;

    let board_dir = output.join(&args.board);
    let dir = board_dir.join(&built.version);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    // The update files first: their USR-A streams are spliced into every image's `.bz2`.
    let release = payload::Release {
        board: args.board.clone(),
        version: built.version.clone(),
        channel: args.group.clone(),
    };
    let (cache, update_files) = match &update_source {
        Some(source) => {
            let (splice, files) = update::write(source, update_key.as_ref(), &release, &work, ui)
                .context("writing the update files")?;
            (ChunkCache::with_splice(splice), Some(files))
        }
        None => (ChunkCache::default(), None),
    };

    // While the image compresses: the bmap hashes the raw image (both read page cache), and
    // the update files are hashed and signed for publishing.
    let (main, bmap, published) = std::thread::scope(|s| {
        let bmap = s.spawn(|| bmap::create(&built.image));
        let published = s.spawn(|| match &update_files {
            Some(w) => w.publish(&dir, key.as_ref()),
            None => Ok(()),
        });
        let main = release_image(
            &built.image,
            &dir.join(format!("{IMAGE}.bz2")),
            key.as_ref(),
            &cache,
            ui,
            &built.extras,
        );
        (
            main,
            bmap.join().expect("bmap thread panicked"),
            published.join().expect("publishing thread panicked"),
        )
    });
    published.context("publishing the update files")?;
    let main = main?;
    atomic_output::write(
        &dir.join("coreos_production_image.bin.bmap"),
        bmap?.as_bytes(),
    )?;
    for extra in &built.extras {
        mirror::copy_atomic(extra, &dir.join(digests::file_name(extra)))?;
    }
    let version_txt = match &built.version_txt {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => version_txt(&built.version, &args.group, &args.board),
    };
    atomic_output::write(&dir.join("version.txt"), version_txt.as_bytes())?;
    if args.include_raw {
        let raw = Pending::create(&dir.join(IMAGE))?;
        mirror::sparse_copy(&built.image, raw.tmp_path())?;
        raw.commit()?;
    }
    tracing::info!(
        "{}: {} bytes in {} chunks, {} spliced from the update's USR-A",
        main.path.display(),
        main.len,
        main.chunks,
        main.spliced
    );

    for (oem, src) in &oems {
        let raw = work.join(format!("coreos_production_{oem}_image.bin"));
        mirror::sparse_copy(&built.image, &raw)?;
        image::replace_oem(&raw, src, ui)
            .with_context(|| format!("putting OEM {oem} into partition 6"))?;
        let out = dir.join(format!("coreos_production_{oem}_image.bin.bz2"));
        let c = release_image(&raw, &out, key.as_ref(), &cache, ui, &[])?;
        tracing::info!(
            "{}: {} of {} chunks reused, {} spliced from the update's USR-A",
            out.display(),
            c.reused,
            c.chunks,
            c.spliced
        );
        std::fs::remove_file(&raw).ok();
    }
    let vm_opts = vm::ArtifactOptions {
        box_url: args
            .mirror_url
            .as_deref()
            .map(|url| artifacts::box_url(url, &args.board, &built.version)),
    };
    let publish = artifacts::Publish {
        dir: &dir,
        key: key.as_ref(),
        cache: &cache,
    };
    for format in formats {
        // digitalocean and packet are the OEM image itself, released above when listed.
        if matches!(format, vm::Format::Digitalocean | vm::Format::Packet)
            && oems.iter().any(|(name, _)| name == format.name())
        {
            tracing::info!(
                "--formats {}: released above as coreos_production_{}_image.bin.bz2",
                format.name(),
                format.name()
            );
            continue;
        }
        artifacts::release(format, &built.image, &work, &vm_opts, &publish, ui)?;
    }
    let current = mirror::update_current(&board_dir)?;
    tracing::info!(
        "release {} written to {}; current -> {current}",
        built.version,
        dir.display()
    );
    Ok(())
}

/// The raw image to release and what goes beside it.
struct Built {
    image: PathBuf,
    version: String,
    extras: Vec<PathBuf>,
    version_txt: Option<PathBuf>,
}

impl Built {
    fn from_image(raw: &Path, version: String) -> Result<Built> {
        std::fs::metadata(raw).with_context(|| format!("raw image {}", raw.display()))?;
        let dir = raw.parent().unwrap_or(Path::new("."));
        let extras = [
            "coreos_production_image_verity.txt",
            "coreos_production_image_contents.txt",
        ]
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.exists())
        .collect();
        Ok(Built {
            image: raw.to_path_buf(),
            version,
            extras,
            version_txt: None,
        })
    }
}

/// `<name>.bz2`, its `.sig`, `.DIGESTS` and (signed) `.DIGESTS.asc`.
fn release_image(
    raw: &Path,
    out: &Path,
    key: Option<&keys::SecretKey>,
    cache: &ChunkCache,
    ui: &Ui,
    also_digest: &[PathBuf],
) -> Result<Compressed> {
    let name = digests::file_name(out);
    let signer = key.map(keys::DetachedSigner::new).transpose()?;
    let pb = ui.bytes(&short(&name), 0);
    let c = compress::compress(raw, out, cache, signer, &pb)?;
    pb.finish_and_clear();
    let mut files = vec![FileDigests {
        name: name.clone(),
        md5: c.md5,
        sha1: c.sha1,
        sha512: c.sha512,
    }];
    for p in also_digest {
        files.push(FileDigests::of_file(p)?);
    }
    let text = digests::render(&files);
    let with_ext = |ext: &str| out.with_file_name(format!("{name}{ext}"));
    if let (Some(sig), Some(key)) = (&c.signature, key) {
        atomic_output::write(&with_ext(".sig"), sig)?;
        atomic_output::write(
            &with_ext(".DIGESTS.asc"),
            keys::clearsign(key, &text)?.as_bytes(),
        )?;
    }
    atomic_output::write(&with_ext(".DIGESTS"), text.as_bytes())?;
    Ok(c)
}

fn short(name: &str) -> String {
    name.trim_start_matches("coreos_production_")
        .trim_end_matches(".bin.bz2")
        .to_string()
}

fn check_version(v: &str) -> Result<()> {
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        bail!("version {v:?} is not X.Y.Z");
    }
    Ok(())
}

/// The image `version.txt` (SDK `build_image`), for images not built here.
fn version_txt(version: &str, _group: &str, _board: &str) -> String {
    let p: Vec<&str> = version.split('.').collect();
    format!(
        "COREOS_BUILD={}\nCOREOS_BRANCH={}\nCOREOS_PATCH={}\nCOREOS_VERSION={version}\nCOREOS_VERSION_ID={version}\nCOREOS_BUILD_ID=\"\"\nCOREOS_SDK_VERSION={version}\n",
        p[0], p[1], p[2]
    )
}

/// The work folder and, for a default one, the guard that removes it.
fn work_dir(args: &Args, output: &Path) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    if let Some(w) = &args.work_dir {
        std::fs::create_dir_all(w).with_context(|| format!("creating {}", w.display()))?;
        return Ok((w.clone(), None));
    }
    // Beside the mirror, not in it: same filesystem (cheap sparse copies), never served.
    let parent = output.parent().unwrap_or(Path::new("/tmp"));
    let t = tempfile::Builder::new()
        .prefix(".coreos-release-")
        .tempdir_in(parent)
        .with_context(|| format!("creating a work folder in {}", parent.display()))?;
    Ok((t.path().to_path_buf(), Some(t)))
}
