//! The install, in the order that keeps the disk safe: every check first (device, users,
//! configs, keys, release, signature), then the image through the pipeline with its partition
//! tables held back, then the backup GPT moved, the configuration injected, the kernel told.
//! Any failure after the disk was touched zeroes the partition tables and says so.

use crate::cli::Args;
use crate::configure::{self, UserConfig};
use crate::image::holdback::HOLD;
use crate::image::HoldBackWriter;
use crate::installed_version;
use crate::pipeline::{self, ImageSource};
use crate::signature::KeyRing;
use crate::target::{in_use, partitions, TargetDisk};
use anyhow::{bail, Context, Result};
use disk::layout::Partition;
use fetch::mirror;
use fetch::progress::Ui;
use fetch::HttpClient;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// The trusted keys: `-k` or the built-in ones.
pub fn key_ring(args: &Args) -> Result<Option<KeyRing>> {
    match &args.key_file {
        Some(p) => {
            let bytes = std::fs::read(p)
                .with_context(|| format!("key file {} cannot be read", p.display()))?;
            Ok(Some(KeyRing::from_armored(&bytes).with_context(|| {
                format!("key file {} does not parse", p.display())
            })?))
        }
        None => match KeyRing::embedded() {
            Ok(r) if !r.is_empty() => Ok(Some(r)),
            Ok(_) if args.insecure => {
                tracing::warn!("no signing keys are built in; continuing because of --insecure");
                Ok(None)
            }
            Ok(_) => bail!(
                "no signing keys are built into this coreos-install; pass the release key with -k KEYFILE"
            ),
            Err(e) if args.insecure => {
                tracing::warn!("{e:#}; continuing because of --insecure");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        },
    }
}

/// What is being installed, for the messages.
struct Choice<'a> {
    source: Option<ImageSource<'a>>,
    version: String,
    /// Write `set oem_id` (OEM asked for, no OEM image published).
    oem_id: Option<String>,
    image: String,
}

fn choose<'a>(
    args: &Args,
    http: &'a HttpClient,
    ring: Option<&KeyRing>,
    open: bool,
) -> Result<Choice<'a>> {
    if let Some(f) = &args.image_file {
        let source = if open {
            Some(pipeline::open_file(f, ring, args.insecure)?)
        } else {
            None
        };
        if !open && !f.exists() {
            bail!(
                "Could not read image file {}: it does not exist",
                f.display()
            );
        }
        return Ok(Choice {
            source,
            version: format!("local image {}", f.display()),
            oem_id: args.oem.clone(),
            image: f.display().to_string(),
        });
    }
    let base = args.base_url();
    let version = mirror::resolve_version(http, &base, &args.version)?;
    let dir = format!("{base}/{version}");
    if let Some(oem) = &args.oem {
        let url = format!("{dir}/{}", mirror::oem_image_name(oem));
        match pipeline::open_url(http, &url, ring, args.insecure)? {
            Some(s) => {
                return Ok(Choice {
                    source: open.then_some(s),
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
    let Some(s) = pipeline::open_url(http, &url, ring, args.insecure)? else {
        bail!("Image URL unavailable: {url}: HTTP 404 Not Found");
    };
    Ok(Choice {
        source: open.then_some(s),
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
    let http = HttpClient::new(args.retries)?;

    if args.dry_run {
        let dev = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags_excl()
            .open(&disk.path)
            .with_context(|| {
                format!(
                    "target device {} is in use or not accessible",
                    disk.path.display()
                )
            })?;
        let size = disk.size(&dev)?;
        let choice = choose(args, &http, ring.as_ref(), true)?;
        print_settings(args, &disk, size, &choice);
        return Ok(());
    }

    let dev = disk.open_exclusive()?;
    let disk_size = disk.size(&dev)?;
    let choice = choose(args, &http, ring.as_ref(), true)?;
    let source = choice.source.expect("opened");
    let ui = Ui::new();
    ui.println(&format!(
        "Installing {} ({}) to {}",
        choice.version,
        choice.image,
        disk.path.display()
    ));

    let mut writer = HoldBackWriter::new(&dev, true, disk_size, &choice.image);
    let installed = pipeline::write_image(source, &mut writer, &ui).and_then(|size| {
        finish(
            &dev,
            &disk,
            disk_size,
            size,
            &config,
            choice.oem_id.as_deref(),
            &ui,
        )
    });
    let installed = match installed {
        Ok(v) => v,
        Err(e) => {
            let cleanup = writer.abort();
            bail!(
                "{e:#}\ninstall to {} failed; {cleanup}",
                disk.path.display()
            );
        }
    };
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

/// The partitions of the written disk, from the primary GPT in its first MiB.
fn written_partitions(dev: &File) -> Result<Vec<Partition>> {
    let mut head = vec![0u8; HOLD as usize];
    dev.read_exact_at(&mut head, 0)
        .context("reading the first MiB")?;
    Ok(disk::gpt::read_primary(&head)?.partitions)
}

/// After the verified image is on the disk; returns the version its USR-A holds.
fn finish(
    dev: &File,
    disk: &TargetDisk,
    disk_size: u64,
    image_size: u64,
    config: &UserConfig,
    oem_id: Option<&str>,
    ui: &Ui,
) -> Result<Option<String>> {
    if image_size < disk_size {
        disk::gpt::relocate_backup(dev, disk_size)
            .context("moving the backup GPT to the end of the disk")?;
    }
    let parts = written_partitions(dev).context("reading the written partition table")?;
    let mtime = u32::try_from(disk::epoch::build_time()?)
        .context("SOURCE_DATE_EPOCH is past 2106, beyond a 32-bit ext4 timestamp")?;
    for line in configure::inject(dev, &parts, config, oem_id, mtime)? {
        ui.println(&line);
    }
    dev.sync_all().context("fsync")?;
    match partitions::reread(dev, &disk.name) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            tracing::warn!("/dev/{}: the kernel cannot reread its partitions ({e}); adding them with BLKPG", disk.name)
        }
        Err(e) => bail!("Failed to reread partitions on {}: {e} (the disk is written and verified; reboot to use it)", disk.path.display()),
    }
    partitions::remove_stale(dev, &disk.name, &parts);
    let added = partitions::add_missing(dev, &disk.name, &parts);
    if added > 0 {
        tracing::info!("added {added} partition node(s) with BLKPG");
    }
    partitions::udev_settle();
    Ok(parts
        .iter()
        .find(|p| p.number == installed_version::USR_A_PARTITION)
        .and_then(|p| installed_version::read(dev, p.offset(), p.bytes())))
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
    println!("  BASEURL={}", args.base_url());
    println!("  KEYFILE={}", show(&args.key_file));
    println!("  IMAGE={}", c.image);
    println!("Dry run: nothing was written.");
}

trait ExclusiveOpen {
    fn custom_flags_excl(&mut self) -> &mut Self;
}

impl ExclusiveOpen for std::fs::OpenOptions {
    fn custom_flags_excl(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_EXCL | libc::O_CLOEXEC)
    }
}
