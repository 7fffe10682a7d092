//! `coreos-build mkfs ext4`: a rootless, reproducible `mkfs.ext4 -d`. Onto a block device
//! it refuses, as mkfs.ext4 does, one that is mounted or in use.

use crate::atomic_output::Pending;
use anyhow::{bail, Context, Result};
use ext4::{Ext4Params, Flavor, XattrPolicy};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// ext4 (or the ext2-compatible USR form) from a directory tree.
    Ext4(Ext4Args),
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  coreos-build mkfs ext4 --source ./tree --size 128MiB --output oem.img --label OEM"
)]
pub struct Ext4Args {
    /// Directory tree to copy in (an empty filesystem when left out).
    #[arg(long)]
    pub source: Option<PathBuf>,
    /// Filesystem size: bytes, or with a KiB/MiB/GiB/TiB suffix.
    #[arg(long, value_parser = parse_size)]
    pub size: u64,
    /// Image file to write (made under a temporary name and renamed when complete), or a
    /// block device to write in place.
    #[arg(long)]
    pub output: PathBuf,
    /// Volume label (up to 16 bytes).
    #[arg(long, default_value = "")]
    pub label: String,
    /// Filesystem UUID (default: derived from the label, so builds are reproducible).
    #[arg(long)]
    pub uuid: Option<uuid::Uuid>,
    /// Set CoreOS's read-only marker (byte 0xff at 0x467): no kernel mounts it read-write.
    #[arg(long)]
    pub read_only: bool,
    /// The checksum-free, journal-free ext2-compatible form CoreOS used for USR.
    #[arg(long)]
    pub ext2: bool,
    /// Inode size in bytes (default 256, or 128 with --ext2).
    #[arg(long)]
    pub inode_size: Option<u16>,
    /// One inode per this many bytes (default 16384, or 4096 with --ext2).
    #[arg(long)]
    pub bytes_per_inode: Option<u64>,
    /// Owner/mode manifest: `path uid gid mode` per line (octal mode, `-` keeps the source's).
    #[arg(long)]
    pub owners: Option<PathBuf>,
    /// Every entry owned by root (uid 0, gid 0), for a tree unpacked by an unprivileged
    /// user; --owners lines apply on top.
    #[arg(long)]
    pub all_root: bool,
}

pub fn run(cmd: Command, ui: &crate::progress::Ui) -> Result<()> {
    match cmd {
        Command::Ext4(a) => run_ext4(a, ui),
    }
}

/// `1234`, `512KiB`, `64MiB`, `1GiB`, `2TiB` (also K/M/G/T and KB/MB/GB as binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 1073741824 or 1GiB)"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" | "KiB" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        "G" | "GB" | "GiB" => 1 << 30,
        "T" | "TB" | "TiB" => 1 << 40,
        u => {
            return Err(format!(
                "unknown size unit {u:?} (use KiB, MiB, GiB or TiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A UUID that depends only on the label (name-based, v5), so two builds agree.
pub fn uuid_from_label(label: &str) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("coreos-build ext4 {label}").as_bytes());
    let mut u = [0u8; 16];
    u.copy_from_slice(&h[..16]);
    u[6] = (u[6] & 0x0f) | 0x50; // version 5-style (name-based)
    u[8] = (u[8] & 0x3f) | 0x80; // RFC 4122 variant
    u
}

fn run_ext4(a: Ext4Args, ui: &crate::progress::Ui) -> Result<()> {
    let flavor = if a.ext2 {
        Flavor::Ext2Compat
    } else {
        Flavor::Ext4
    };
    let overrides = match &a.owners {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            ext4::manifest::parse(&text).with_context(|| p.display().to_string())?
        }
        None => Vec::new(),
    };
    let params = Ext4Params {
        size: a.size,
        uuid: a
            .uuid
            .map(|u| *u.as_bytes())
            .unwrap_or_else(|| uuid_from_label(&a.label)),
        label: a.label,
        timestamp: u32::try_from(disk::epoch::build_time()?)
            .context("SOURCE_DATE_EPOCH is past 2106, beyond a 32-bit ext4 timestamp")?,
        flavor,
        read_only_marker: a.read_only,
        inode_size: a.inode_size.unwrap_or(if a.ext2 { 128 } else { 256 }),
        bytes_per_inode: a
            .bytes_per_inode
            .unwrap_or(if a.ext2 { 4096 } else { 16384 }),
        all_root: a.all_root,
        overrides,
        xattrs: XattrPolicy::KeepAll,
        extra_files: Vec::new(),
    };
    if let Some(src) = &a.source {
        if !src.is_dir() {
            bail!("--source {}: not a directory", src.display());
        }
    }
    if is_block_device(&a.output) {
        return write_device(&a.output, a.source.as_deref(), &params, ui);
    }
    let out = Pending::create(&a.output)?;
    let report = write_with_progress(&out.file, a.source.as_deref(), &params, ui)?;
    out.commit()?;
    log_report(&a.output, &report);
    Ok(())
}

fn is_block_device(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p)
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false)
}

/// Straight onto a block device (like `mkfs.ext4 /dev/sdX`): there is no temporary name to
/// rename, so the device is checked first: not mounted (nor any of its partitions), not
/// claimed by anyone (opened with O_EXCL, which a mount, device-mapper or RAID member, or
/// another mkfs also holds), and large enough.
fn write_device(
    dev: &Path,
    source: Option<&Path>,
    params: &Ext4Params,
    ui: &crate::progress::Ui,
) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut f = open_exclusive(dev)?;
    let len = f
        .seek(SeekFrom::End(0))
        .with_context(|| format!("sizing {}", dev.display()))?;
    if params.size > len {
        bail!(
            "{}: the device has {len} bytes, fewer than --size {}",
            dev.display(),
            params.size
        );
    }
    // Pending files start their own writeback; a device is written in place.
    let writeback = disk::writeback::EarlyWriteback::start(&f);
    let report = write_with_progress(&f, source, params, ui)?;
    drop(writeback);
    f.sync_all()
        .with_context(|| format!("syncing {}", dev.display()))?;
    log_report(dev, &report);
    Ok(())
}

/// The device opened read-write and exclusively, or an error that says why not.
fn open_exclusive(dev: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some((what, at)) = crate::mounts::mounted(dev)? {
        bail!(
            "{} is mounted on {at}{}; will not make a filesystem here",
            dev.display(),
            if what == dev {
                String::new()
            } else {
                format!(" (as {})", what.display())
            }
        );
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_EXCL)
        .open(dev)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EBUSY) => anyhow::anyhow!(
                "{} is in use: another program holds it (a mounted filesystem, device-mapper, \
                 a RAID array, another mkfs); will not make a filesystem here",
                dev.display()
            ),
            _ => anyhow::Error::new(e).context(format!("opening {}", dev.display())),
        })
}

fn write_with_progress(
    f: &std::fs::File,
    source: Option<&Path>,
    params: &Ext4Params,
    ui: &crate::progress::Ui,
) -> Result<ext4::WriteReport> {
    let bar = (!ui.quiet()).then(|| ui.bytes("mkfs ext4", 0));
    let progress = |n: u64, total: u64| {
        if let Some(bar) = &bar {
            if n == 0 {
                bar.set_length(total);
            }
            bar.inc(n);
        }
    };
    let report = ext4::write_tree_with_progress(source, f, 0, params, &progress)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(report)
}

fn log_report(out: &Path, report: &ext4::WriteReport) {
    tracing::info!(
        output = %out.display(),
        blocks = report.blocks_total,
        used = report.blocks_used,
        inodes = report.inodes_total,
        inodes_used = report.inodes_used,
        "filesystem written"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("1XB").is_err());
        assert!(parse_size("GiB").is_err());
    }

    #[test]
    fn label_uuid_is_stable_and_rfc4122() {
        let a = uuid_from_label("ROOT");
        assert_eq!(a, uuid_from_label("ROOT"));
        assert_ne!(a, uuid_from_label("OEM"));
        assert_eq!(a[6] >> 4, 5);
    }
}
