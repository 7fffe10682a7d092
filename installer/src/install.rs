//! The install, in the order that keeps the disk safe:
//!
//! 1. every check first — the device (a whole disk, not in use, not the running system's,
//!    512-byte sectors, opened `O_EXCL` and `flock`ed, the opened descriptor being the checked
//!    device), the configs, the keys, the release, and the signature packet (issuer trusted,
//!    key valid at the signature's time, hash not broken) — before a byte is written;
//! 2. the image through the pipeline (fetch → verifying tee → decompress → hold-back writer):
//!    the body goes to the disk as it arrives, after the disk's old partition tables (first and
//!    last MiB) are zeroed; the image's own first and last MiB stay in memory;
//! 3. at the end of the stream, the decompressor's end and the signature over every compressed
//!    byte are checked; then the held-back MiBs are staged (written without the three sectors
//!    that make a table valid), the cloud-config/Ignition/OEM choice injected into the written
//!    filesystems, and only then the table committed (backup header, then MBR + primary header
//!    in one write);
//! 4. `finish`: the backup GPT moved to the end of a larger disk, the kernel told (reread,
//!    BLKPG; skipped for device-mapper) and udev settled after the flock is released, each
//!    step with a time bound. A failure or hang here is a warning: the install is complete.
//!
//! So a disk is either without a partition table (any failure or kill before the commit; the
//! message says so) or a complete, verified and configured install. A failure after the commit
//! (an I/O error moving the backup GPT to the end of a larger disk) is a warning: the primary
//! table is valid and `sgdisk -e` repairs the backup. `--preserve-on-error` keeps whatever a
//! failure before the commit left and saves the held-back MiBs for inspection.

use crate::cli::Args;
use crate::configure::{self, UserConfig};
use crate::finish;
use crate::image::HoldBackWriter;
use crate::installed_version;
use crate::pipeline::{self, ImageSource};
use crate::signature::KeyRing;
use crate::target::{in_use, TargetDisk};
use anyhow::{bail, Context, Result};
use disk::layout::Partition;
use fetch::mirror;
use fetch::progress::Ui;
use fetch::{HttpClient, HttpOptions};
use std::fs::File;
use std::time::Duration;

/// How this program identifies itself to mirrors.
const USER_AGENT: &str = concat!("coreos-install/", env!("CARGO_PKG_VERSION"));

/// The HTTP client as the flags ask for it.
pub fn http_client(args: &Args) -> Result<HttpClient> {
    Ok(HttpClient::new(
        USER_AGENT,
        HttpOptions {
            retries: args.retries,
            stall_timeout: Duration::from_secs(args.stall_timeout),
            ca_file: args.ca_file.clone(),
            ..HttpOptions::default()
        },
    )?)
}

/// The trusted keys: `-k` or the built-in ones.
pub fn key_ring(args: &Args) -> Result<Option<KeyRing>> {
    let ring = match &args.key_file {
        Some(p) => {
            let bytes = std::fs::read(p)
                .with_context(|| format!("key file {} cannot be read", p.display()))?;
            KeyRing::from_armored(&bytes)
                .with_context(|| format!("key file {} does not parse", p.display()))?
        }
        None => match KeyRing::embedded() {
            Ok(r) if !r.is_empty() => r,
            Ok(_) if args.insecure => {
                tracing::warn!("no signing keys are built in; continuing because of --insecure");
                return Ok(None);
            }
            Ok(_) => bail!(
                "no signing keys are built into this coreos-install; pass the release key with -k KEYFILE"
            ),
            Err(e) if args.insecure => {
                tracing::warn!("{e:#}; continuing because of --insecure");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        },
    };
    for line in ring.describe() {
        tracing::debug!("trusted key: {line}");
    }
    Ok(Some(ring))
}

/// What is being installed, for the messages.
struct Choice {
    source: ImageSource,
    version: String,
    /// Write `set oem_id` (OEM asked for, no OEM image published).
    oem_id: Option<String>,
    image: String,
}

fn choose(args: &Args, http: &HttpClient, ring: Option<&KeyRing>) -> Result<Choice> {
    if let Some(f) = &args.image_file {
        let source = pipeline::open_file(f, ring, args.insecure)?;
        return Ok(Choice {
            source,
            version: format!("local image {}", f.display()),
            oem_id: args.oem.clone(),
            image: f.display().to_string(),
        });
    }
    let base = args.base_url()?;
    let version = mirror::resolve_version(http, &base, &args.version)?;
    let dir = format!("{base}/{version}");
    if let Some(oem) = &args.oem {
        let url = format!("{dir}/{}", mirror::oem_image_name(oem));
        match pipeline::open_url(http, &url, ring, args.insecure)? {
            Some(source) => {
                return Ok(Choice {
                    source,
                    version,
                    oem_id: None,
                    image: url,
                })
            }
            None => tracing::info!(
                "{url}: not published (HTTP 404); installing the base image with oem_id={oem}"
            ),
        }
    }
    let url = format!("{dir}/{}", mirror::IMAGE_NAME);
    let Some(source) = pipeline::open_url(http, &url, ring, args.insecure)? else {
        bail!("Image URL unavailable: {url}: HTTP 404 Not Found");
    };
    Ok(Choice {
        source,
        version,
        oem_id: args.oem.clone(),
        image: url,
    })
}

pub fn run(args: &Args) -> Result<()> {
    let Some(given) = &args.device else {
        bail!("No target block device provided, -d is required.");
    };
    if let Some(oem) = &args.oem {
        if oem.is_empty()
            || !oem
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            bail!("OEM id {oem:?} is not valid: use lower-case letters, digits, '-' and '_'");
        }
    }
    if args.image_file.is_none() {
        args.base_url()?;
    }
    if args.insecure {
        tracing::warn!("!!! --insecure: the image signature will NOT be required !!!");
    }
    let disk = TargetDisk::resolve(given)?;
    let users = in_use::find_users(&disk);
    if !users.is_empty() {
        bail!(
            "target device {} is in use:\n    {}",
            disk.path.display(),
            users.join("\n    ")
        );
    }
    let config = UserConfig::load(
        args.cloud_config.as_deref(),
        args.ignition.as_deref(),
        args.copy_network,
    )?;
    let ring = key_ring(args)?;
    let http = http_client(args)?;

    if args.dry_run {
        let dev = disk.open_checked_readonly()?;
        let size = disk.size(&dev)?;
        let choice = choose(args, &http, ring.as_ref())?;
        print_settings(args, &disk, size, &choice);
        return Ok(());
    }

    let dev = disk.open_exclusive()?;
    let disk_size = disk.size(&dev)?;
    let choice = choose(args, &http, ring.as_ref())?;
    let ui = Ui::new();
    ui.println(&format!(
        "Installing {} ({}) to {}",
        choice.version,
        choice.image,
        disk.path.display()
    ));

    let mut writer = HoldBackWriter::new(&dev, true, disk_size, &choice.image);
    let installed = pipeline::write_image(choice.source, &mut writer, &ui)
        .and_then(|()| complete(&dev, &mut writer, &config, choice.oem_id.as_deref(), &ui));
    let (parts, installed, image_size) = match installed {
        Ok(v) => v,
        Err(e) => {
            let cleanup = if args.preserve_on_error {
                writer.preserve(&std::env::temp_dir())
            } else {
                writer.abort()
            };
            bail!(
                "{e:#}\ninstall to {} failed; {cleanup}",
                disk.path.display()
            );
        }
    };
    // The install is complete: what follows tidies the disk and tells the system about it,
    // each step bounded, so a failure or a hang there is a warning, not a lost "Success!".
    finish::run(&dev, &disk, &parts, image_size, disk_size)?;
    let version = match installed {
        Some(v) if args.image_file.is_some() => v,
        Some(v) => {
            if v != choice.version {
                tracing::warn!(
                    "the mirror announced {} but the image it served is {v}",
                    choice.version
                );
            }
            v
        }
        None => choice.version,
    };
    let oem = args.oem.as_deref().unwrap_or("none");
    println!(
        "Success! {version} ({oem}) is installed on {}",
        disk.path.display()
    );
    Ok(())
}

/// After the verified image body is on the disk: stage the held-back MiBs, configure the
/// written filesystems, commit the partition table. Returns the partitions, the version USR-A
/// holds and the image's size.
fn complete(
    dev: &File,
    writer: &mut HoldBackWriter<'_>,
    config: &UserConfig,
    oem_id: Option<&str>,
    ui: &Ui,
) -> Result<(Vec<Partition>, Option<String>, u64)> {
    let parts = writer.stage()?;
    let mtime = u32::try_from(disk::epoch::build_time()?)
        .context("SOURCE_DATE_EPOCH is past 2106, beyond a 32-bit ext4 timestamp")?;
    for line in configure::inject(dev, &parts, config, oem_id, mtime)? {
        ui.println(&line);
    }
    dev.sync_all().context("fsync")?;
    let installed = parts
        .iter()
        .find(|p| p.number == installed_version::USR_A_PARTITION)
        .and_then(|p| installed_version::read(dev, p.offset(), p.bytes()));
    // From here the install is complete and verified: the primary table is valid whatever
    // happens to the backup, which `finish` moves to the end of a larger disk.
    let image_size = writer.commit()?;
    Ok((parts, installed, image_size))
}

fn print_settings(args: &Args, disk: &TargetDisk, size: u64, c: &Choice) {
    let show = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    println!("Settings:");
    println!("  DEVICE={} ({} bytes)", disk.path.display(), size);
    println!("  VERSION={}", c.version);
    println!("  BOARD={}", args.board);
    println!("  CHANNEL={}", args.channel);
    println!("  OEM={}", args.oem.clone().unwrap_or_default());
    println!("  CLOUD={}", show(&args.cloud_config));
    println!("  IGNITION={}", show(&args.ignition));
    println!(
        "  BASEURL={}",
        args.base_url().unwrap_or_else(|_| "(none)".into())
    );
    println!("  KEYFILE={}", show(&args.key_file));
    println!("  IMAGE={}", c.image);
    println!("Dry run: nothing was written.");
}
