//! Command line, compatible with coreos-install's getopts string `V:B:C:d:o:c:i:t:b:k:f:nyvh`
//! (reference §1.2), plus long forms and the flags this installer adds.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "coreos-install",
    about = "Download, verify and write a CoreOS image to a disk, then configure it without mounting",
    disable_version_flag = true,
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  coreos-install -d /dev/sda -b http://mirror.example/amd64-usr -k signing-key.pub.asc -c cloud-config.yml
  coreos-install -d /dev/sda -b http://mirror.example/amd64-usr -k signing-key.pub.asc -V 3788.1.2 -o vagrant
  coreos-install -d /dev/sda -f coreos_production_image.bin.bz2 -k signing-key.pub.asc
  coreos-install -D ./download -b http://mirror.example/amd64-usr -k signing-key.pub.asc
  coreos-install iso customize -c cloud-config.yml coreos_production_iso_image.iso"
)]
pub struct Args {
    /// Subcommands beside the install flags (which take none).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Install to the given whole-disk block device (symlinks such as /dev/disk/by-id/... work).
    #[arg(short = 'd', long = "device", value_name = "DEVICE")]
    pub device: Option<PathBuf>,

    /// Version to install, or `current` (resolved through <base>/<version>/version.txt).
    #[arg(
        short = 'V',
        long = "version",
        value_name = "VERSION",
        default_value = "current"
    )]
    pub version: String,

    /// Board to use.
    #[arg(
        short = 'B',
        long = "board",
        value_name = "BOARD",
        default_value = "amd64-usr"
    )]
    pub board: String,

    /// Release channel to use.
    #[arg(
        short = 'C',
        long = "channel",
        value_name = "CHANNEL",
        default_value = "stable"
    )]
    pub channel: String,

    /// OEM type to install (downloads coreos_production_<OEM>_image.bin.bz2; on a base image
    /// when none exists, writes `set oem_id` to the OEM grub.cfg).
    #[arg(short = 'o', long = "oem", value_name = "OEM")]
    pub oem: Option<String>,

    /// Insert a cloud-config (or `#!` script) to be executed on boot.
    #[arg(short = 'c', long = "cloud-config", value_name = "CLOUD")]
    pub cloud_config: Option<PathBuf>,

    /// Insert an Ignition config to be executed on boot.
    #[arg(short = 'i', long = "ignition", value_name = "IGNITION")]
    pub ignition: Option<PathBuf>,

    /// URL of the image mirror: the folder holding <VERSION>/version.txt (overrides BOARD and
    /// CHANNEL). Required unless this binary was built with a default mirror.
    #[arg(short = 'b', long = "base-url", value_name = "BASEURL")]
    pub base_url: Option<String>,

    /// Trusted OpenPGP public key file (default: the keys built into this binary).
    #[arg(short = 'k', long = "key", value_name = "KEYFILE")]
    pub key_file: Option<PathBuf>,

    /// Install a local image file (verified against IMAGE.sig; refused without one unless --insecure).
    #[arg(short = 'f', long = "image-file", value_name = "IMAGE")]
    pub image_file: Option<PathBuf>,

    /// Copy the network units in /run/systemd/network to the installed ROOT.
    #[arg(short = 'n', long = "copy-network")]
    pub copy_network: bool,

    /// Dry run: run every check, print the settings, write nothing.
    #[arg(short = 'y', long = "dry-run")]
    pub dry_run: bool,

    /// Verbose logging.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,

    /// Accepted for compatibility (previously set TMPDIR); ignored.
    #[arg(short = 't', value_name = "TMPDIR", hide = true)]
    pub tmpdir: Option<String>,

    /// Skip signature verification (loudly). An existing but invalid signature is still an error.
    #[arg(long = "insecure")]
    pub insecure: bool,

    /// Download and verify the image into DIR instead of installing it.
    #[arg(short = 'D', long = "download-only", value_name = "DIR")]
    pub download_only: Option<PathBuf>,

    /// How many times to retry a failed or interrupted HTTP request.
    #[arg(long = "retries", value_name = "N", default_value_t = 5)]
    pub retries: u32,

    /// Drop and resume a download that sends nothing for this many seconds, or less than
    /// 1 KiB/s over them.
    #[arg(long = "stall-timeout", value_name = "SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stall_timeout: u64,

    /// Trust the CA certificates in FILE (PEM) for HTTPS mirrors behind a private CA (the
    /// built-in and the system's roots stay trusted).
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// On failure, keep what was written instead of zeroing the partition tables, and save
    /// the image's held-back first and last MiB to $TMPDIR, for debugging.
    #[arg(long = "preserve-on-error")]
    pub preserve_on_error: bool,
}

/// The mirror used without `-b`, set when the binary is built (`{channel}` and `{board}` are
/// replaced), e.g. COREOS_INSTALL_BASE_URL='https://{channel}.release.example.com/{board}'.
/// None by default: CoreOS's own mirror is gone.
pub const DEFAULT_BASE_URL: Option<&str> = option_env!("COREOS_INSTALL_BASE_URL");

impl Args {
    /// The mirror base URL, without a trailing slash (coreos-install strips it too): `-b`, else
    /// the built-in default; without either, an error that says what to pass.
    pub fn base_url(&self) -> anyhow::Result<String> {
        match (&self.base_url, DEFAULT_BASE_URL) {
            (Some(u), _) => Ok(u.trim_end_matches('/').to_string()),
            (None, Some(d)) if !d.is_empty() => Ok(d
                .replace("{channel}", &self.channel)
                .replace("{board}", &self.board)
                .trim_end_matches('/')
                .to_string()),
            _ => anyhow::bail!(
                "no image mirror: pass -b URL (the folder holding <version>/version.txt, e.g. -b https://mirror.example.com/{}) or -f IMAGE for a local image; this coreos-install was built without a default mirror (COREOS_INSTALL_BASE_URL)",
                self.board
            ),
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Work with a live ISO made by `coreos-build vm --format iso`.
    #[command(subcommand)]
    Iso(IsoCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum IsoCommand {
    /// Write a copy of a live ISO that, booted, installs to a disk unattended and powers off.
    Customize(CustomizeArgs),
    /// Show what a live ISO's embed areas hold (kernel arguments, configuration files).
    Show {
        /// The live ISO.
        iso: PathBuf,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct CustomizeArgs {
    /// The live ISO to start from (not modified).
    pub iso: PathBuf,
    /// The customized ISO to write.
    #[arg(short = 'o', long = "output", value_name = "NEW.iso")]
    pub output: PathBuf,
    /// The disk the live system installs to (as the live system names it, e.g. /dev/sda).
    #[arg(long = "dest-device", value_name = "DEVICE")]
    pub dest_device: String,
    /// A cloud-config (or `#!` script) for the installed system.
    #[arg(long = "dest-config", value_name = "CLOUD")]
    pub dest_config: Option<PathBuf>,
    /// URL of the image mirror (coreos-install -b).
    #[arg(short = 'b', long = "base-url", value_name = "BASEURL")]
    pub base_url: Option<String>,
    /// Version to install (coreos-install -V).
    #[arg(short = 'V', long = "version", value_name = "VERSION")]
    pub version: Option<String>,
    /// Release channel (coreos-install -C).
    #[arg(short = 'C', long = "channel", value_name = "CHANNEL")]
    pub channel: Option<String>,
    /// Trusted OpenPGP public key for the image's signature (coreos-install -k).
    #[arg(short = 'k', long = "key", value_name = "KEYFILE")]
    pub key: Option<PathBuf>,
    /// Replace OUTPUT if it exists.
    #[arg(long = "force")]
    pub force: bool,
}
