//! `coreos-build image`: the production disk image from a USR tree.
//!
//! CONTRACT (release and vm call these): `ImageRequest`, `BuiltImage`, `OemSource`, `build`,
//! `replace_oem`; `UsrArgs`/`UsrPolicy` for USR owners and attributes (an argument of `build`).
//!
//! One sparse file, written in place: USR-A (ext4 writer + dm-verity, and the contents
//! listing from what it wrote) in one thread while OEM and ROOT go in another and the GRUB
//! images are made in a third; then the ESP (whose USR-A slot config needs the verity root
//! hash), the GPT, and the BIOS boot code. The new image gets the final name only when
//! complete, replacing an earlier build's in one rename: a failed build (a tree too large, a
//! broken GRUB) leaves the previous image and its companion files as they were. The replaced
//! image is freed in the background.

mod contents;
mod esp;
mod oem;
mod partitions;
mod stamp;
mod usr_policy;
pub mod version;

pub use usr_policy::{UsrArgs, UsrPolicy};

use crate::atomic_output::Pending;
use crate::bootloader::{self, BootInputs};
use crate::progress::Ui;
use anyhow::{bail, Context};
use disk::layout::{Layout, Partition};
use disk::slots::{Slot, SlotAttrs};
use std::path::{Path, PathBuf};
use version::Version;

pub const IMAGE_NAME: &str = "coreos_production_image.bin";
pub const VERITY_NAME: &str = "coreos_production_image_verity.txt";
pub const CONTENTS_NAME: &str = "coreos_production_image_contents.txt";
pub const VERSION_NAME: &str = "version.txt";
/// Partition labels the builder fills (data, not code, decides where they are).
const USR_LABEL: &str = "USR-A";
const OEM_LABEL: &str = "OEM";
const BIOS_LABEL: &str = "BIOS-BOOT";

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  coreos-build image --usr ./usr --output out/
  coreos-build image --usr ./usr --output out/ --layout vagrant --oem vagrant --version 3788.1.2 --group beta
  SOURCE_DATE_EPOCH=1700000000 coreos-build image --usr ./usr --output out/   (byte-identical each time)

Writes coreos_production_image.bin, _verity.txt, _contents.txt and version.txt into OUTDIR;
a failed build leaves an earlier build's files there as they were.")]
pub struct Args {
    /// The OS's /usr tree (read only; never modified).
    #[arg(long)]
    usr: PathBuf,
    /// Folder for the image and its companion files.
    #[arg(long)]
    output: PathBuf,
    /// base, vm, vagrant, azure, or a layout file.
    #[arg(long, default_value = "base")]
    layout: String,
    /// OEM partition: an embedded tree (vagrant, virtualbox, gce, ec2, metal) or a folder.
    #[arg(long)]
    oem: Option<String>,
    /// X.Y.Z (default: days since 2013-07-01 UTC of SOURCE_DATE_EPOCH or now, as N.0.0).
    #[arg(long)]
    version: Option<String>,
    /// Update channel stamped into /usr/share/coreos/update.conf.
    #[arg(long, default_value = "developer")]
    group: String,
    /// Board name stamped into the release files (COREOS_BOARD).
    #[arg(long, default_value = "amd64-usr")]
    board: String,
    /// Build without GRUB (the image cannot boot): otherwise, no GRUB modules in the tree's
    /// lib/grub nor the host's /usr/lib/grub is an error.
    #[arg(long)]
    no_bootloader: bool,
    #[command(flatten)]
    usr_policy: UsrArgs,
}

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
    /// Make GRUB for BIOS and UEFI (an error when it cannot be made); false only for an image
    /// that is not meant to boot.
    pub bootloader: bool,
    /// fsync the image before it takes its name; false for a work image that is compressed
    /// at once and deleted (release).
    pub durable: bool,
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

/// The A/B attributes the layout gives the USR slots (GRUB's first view of them).
fn slot_attributes(layout: &Layout) -> Vec<(Slot, SlotAttrs)> {
    layout
        .partitions
        .iter()
        .filter(|p| p.type_guid == disk::slots::USR_TYPE)
        .filter_map(|p| {
            Some((
                Slot::from_label(&p.label)?,
                SlotAttrs::from_bits(p.attributes),
            ))
        })
        .collect()
}

fn required<'a>(layout: &'a Layout, label: &str) -> anyhow::Result<&'a Partition> {
    layout
        .by_label(label)
        .with_context(|| format!("layout {} has no partition labeled {label}", layout.name))
}

pub fn build(
    req: &ImageRequest,
    usr_policy: &UsrPolicy,
    outdir: &Path,
    ui: &Ui,
) -> anyhow::Result<BuiltImage> {
    let t0 = std::time::Instant::now();
    let epoch = disk::epoch::build_time()? as i64;
    let layout = Layout::by_name_or_path(&req.layout)?;
    let version = match &req.version {
        Some(v) => Version::parse(v)?,
        None => Version::for_time(epoch),
    };
    stamp::check_group(&req.group)?;
    if !req.usr.is_dir() {
        bail!("the USR tree {} is not a folder", req.usr.display());
    }
    let usr_part = required(&layout, USR_LABEL)?;
    std::fs::create_dir_all(outdir).with_context(|| format!("creating {}", outdir.display()))?;
    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    let oem_tree = match &req.oem {
        Some(src) => Some(oem::materialize(src, scratch.path())?),
        None => None,
    };

    let mut image = Pending::create(&outdir.join(IMAGE_NAME))?;
    if !req.durable {
        image = image.not_durable();
    }
    image
        .file
        .set_len(layout.disk_bytes())
        .with_context(|| format!("sizing {}", image.dest().display()))?;
    let stamped = stamp::release_files(&version, &req.group, &req.board);
    let salt = disk::verity::salt_for(&version.to_string());

    let step = ui.step("filesystems");
    step.set_message("USR-A, OEM, ROOT");
    let (usr_result, rest_result, boot_result) = std::thread::scope(|s| {
        // The GRUB images depend on no filesystem: make them while the filesystems are written.
        let boot = s.spawn(|| {
            if !req.bootloader {
                tracing::warn!("--no-bootloader: the image has no GRUB and cannot boot");
                return Ok(None);
            }
            let images = bootloader::images(&req.usr).context("making the GRUB images");
            tracing::debug!(at = ?t0.elapsed(), "GRUB images made");
            images.map(Some)
        });
        let usr = s.spawn(|| {
            partitions::write_usr(
                &image.file,
                usr_part,
                partitions::UsrSource {
                    tree: &req.usr,
                    stamped: &stamped,
                    policy: usr_policy,
                },
                epoch,
                salt.clone(),
                // An image that is synced before it takes its name gets USR-A's data around
                // the page cache (the sync then has little left to wait for); a work image
                // is compressed at once, from the cache.
                if req.durable {
                    ext4::DataWrites::Direct
                } else {
                    ext4::DataWrites::Cached
                },
            )
        });
        let rest = s.spawn(|| -> anyhow::Result<()> {
            for p in &layout.partitions {
                let ext = matches!(p.fs_type.as_deref(), Some("ext2" | "ext4"));
                if p.label == USR_LABEL || !ext {
                    continue;
                }
                match (&oem_tree, p.label == OEM_LABEL) {
                    (Some((dir, overrides)), true) => partitions::write_tree_fs(
                        &image.file,
                        p,
                        Some(dir),
                        overrides.clone(),
                        epoch,
                    )?,
                    _ => partitions::write_tree_fs(&image.file, p, None, Vec::new(), epoch)?,
                }
            }
            tracing::debug!(at = ?t0.elapsed(), "OEM and ROOT written");
            Ok(())
        });
        (
            usr.join().expect("USR-A thread panicked"),
            rest.join().expect("filesystem thread panicked"),
            boot.join().expect("GRUB thread panicked"),
        )
    });
    let usr = usr_result?;
    rest_result?;
    let verity = usr.verity;
    let listing = contents::listing(&usr.entries);
    let mut boot = boot_result?;
    step.finish_with_message("done");
    tracing::debug!(at = ?t0.elapsed(), "filesystems and GRUB images done");
    let root_hash = verity
        .as_ref()
        .map(|t| t.root_hash_hex())
        .unwrap_or_default();

    let step = ui.step("ESP");
    if let Some(assets) = boot.as_mut() {
        assets
            .esp_files
            .extend(bootloader::config_files(&BootInputs {
                verity_root_hash: root_hash.clone(),
                usr_fs_blocks: usr_part.fs_blocks,
                verity_salt: verity.as_ref().map(|t| t.salt_hex()).unwrap_or_default(),
                usr_partuuid: usr_part.part_guid,
                version: version.to_string(),
                slots: slot_attributes(&layout),
            })?);
    }
    let files = esp::esp_files(&req.usr, boot.as_ref())?;
    for p in layout
        .partitions
        .iter()
        .filter(|p| p.fs_type.as_deref() == Some("vfat"))
    {
        partitions::write_esp(&image.file, p, &files, epoch)?;
    }
    step.finish_with_message("done");
    tracing::debug!(at = ?t0.elapsed(), "ESP written");

    let step = ui.step("GPT");
    disk::gpt::write_table(&image.file, &layout).context("writing the partition table")?;
    if let Some(bios) = boot.as_ref().and_then(|b| b.bios.as_ref()) {
        let p = required(&layout, BIOS_LABEL)?;
        bootloader::install_bios(&image.file, bios, p.first_lba)?;
    }
    step.finish_with_message("done");

    tracing::debug!(at = ?t0.elapsed(), "GPT and BIOS boot code written");
    let verity_txt = Pending::text(
        &outdir.join(VERITY_NAME),
        &if root_hash.is_empty() {
            String::new()
        } else {
            format!("{root_hash}\n")
        },
    )?;
    let contents_txt = Pending::text(&outdir.join(CONTENTS_NAME), &listing)?;
    let version_txt = Pending::text(&outdir.join(VERSION_NAME), &version::version_txt(&version))?;
    // Everything is written: only now does anything replace the previous build's files.
    let (image, freeing) = image.commit_replacing()?;
    let built = BuiltImage {
        verity_txt: verity_txt.commit()?,
        contents_txt: contents_txt.commit()?,
        version_txt: version_txt.commit()?,
        image,
        version: version.to_string(),
        verity_root_hash: root_hash,
    };
    freeing.wait();
    tracing::debug!(at = ?t0.elapsed(), "committed; the previous image freed");
    Ok(built)
}

/// Rewrite partition 6 (OEM) of an existing image with another OEM tree, in place.
pub fn replace_oem(image: &Path, oem: &OemSource, ui: &Ui) -> anyhow::Result<()> {
    let step = ui.step("OEM");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .with_context(|| format!("opening {}", image.display()))?;
    let table = disk::gpt::read_table(&file)
        .with_context(|| format!("reading the partition table of {}", image.display()))?;
    let mut p = table
        .by_label(OEM_LABEL)
        .or_else(|| table.by_number(6))
        .cloned()
        .with_context(|| {
            format!(
                "{} has no OEM partition (label OEM or number 6)",
                image.display()
            )
        })?;
    // The partition table says where OEM is, not how it was formatted: use the layout's
    // filesystem parameters (a GPT-derived partition would default to 128-byte inodes).
    let spec = Layout::builtin("base")?;
    let spec = required(&spec, OEM_LABEL)?;
    p.fs_type = Some("ext4".into());
    p.fs_inode_size = spec.fs_inode_size;
    p.fs_bytes_per_inode = spec.fs_bytes_per_inode;
    let scratch = tempfile::tempdir()?;
    let (dir, overrides) = oem::materialize(oem, scratch.path())?;
    partitions::write_tree_fs(
        &file,
        &p,
        Some(&dir),
        overrides,
        disk::epoch::build_time()? as i64,
    )?;
    step.finish_with_message("done");
    Ok(())
}

pub fn run(args: Args, ui: &Ui) -> anyhow::Result<()> {
    let req = ImageRequest {
        usr: args.usr,
        layout: args.layout,
        oem: args.oem.as_deref().map(OemSource::parse).transpose()?,
        version: args.version,
        group: args.group,
        board: args.board,
        bootloader: !args.no_bootloader,
        durable: true,
    };
    let built = build(&req, &args.usr_policy.policy()?, &args.output, ui)?;
    println!("{}", built.image.display());
    println!("version {}", built.version);
    if !built.verity_root_hash.is_empty() {
        println!("verity root hash {}", built.verity_root_hash);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_usr(dir: &Path) -> PathBuf {
        let usr = dir.join("usr");
        std::fs::create_dir_all(usr.join("boot")).unwrap();
        std::fs::write(usr.join("boot/vmlinuz"), b"kernel").unwrap();
        usr
    }

    #[test]
    fn replace_oem_rewrites_partition_6_in_place() {
        let d = tempfile::tempdir().unwrap();
        let req = ImageRequest {
            usr: small_usr(d.path()),
            layout: "base".into(),
            oem: Some(OemSource::parse("vagrant").unwrap()),
            version: Some("1.2.3".into()),
            group: "stable".into(),
            board: "amd64-usr".into(),
            bootloader: true,
            durable: true,
        };
        let ui = Ui::new(true);
        let built = build(&req, &UsrPolicy::default(), &d.path().join("out"), &ui).unwrap();
        let oem_grub = |img: &Path| {
            let f = std::fs::File::open(img).unwrap();
            let p = Layout::builtin("base")
                .unwrap()
                .by_number(6)
                .unwrap()
                .clone();
            let data = ext4::edit::read_file(&f, p.offset(), p.bytes(), "/grub.cfg")
                .unwrap()
                .unwrap();
            String::from_utf8(data).unwrap()
        };
        assert!(oem_grub(&built.image).contains("oem_id=\"vagrant\""));
        let before = std::fs::read(&built.verity_txt).unwrap();
        replace_oem(&built.image, &OemSource::parse("ec2").unwrap(), &ui).unwrap();
        let grub = oem_grub(&built.image);
        assert!(
            grub.contains("oem_id=\"ec2\"") && !grub.contains("vagrant"),
            "{grub}"
        );
        // USR-A and its published hash are untouched.
        let report = crate::inspect::report(&built.image).unwrap();
        assert!(
            report.contains("(matches the published _verity.txt)"),
            "{report}"
        );
        assert_eq!(before, std::fs::read(&built.verity_txt).unwrap());
    }

    #[test]
    fn failure_leaves_no_final_named_file() {
        let d = tempfile::tempdir().unwrap();
        let usr = small_usr(d.path());
        std::fs::write(usr.join("big"), vec![7u8; 3 << 20]).unwrap();
        let layout = d.path().join("tiny.toml");
        std::fs::write(
            &layout,
            "inherits = \"base\"\n[[partition]]\nnumber = 3\nblocks = 8192\nfs_blocks = 256\n",
        )
        .unwrap();
        let req = ImageRequest {
            usr,
            layout: layout.display().to_string(),
            oem: None,
            version: None,
            group: "stable".into(),
            board: "amd64-usr".into(),
            bootloader: true,
            durable: true,
        };
        let out = d.path().join("out");
        let e = format!(
            "{:#}",
            build(&req, &UsrPolicy::default(), &out, &Ui::new(true)).unwrap_err()
        );
        assert!(e.contains("partition 3 (USR-A)"), "{e}");
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
    }
}
