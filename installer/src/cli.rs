//! Command line, compatible with coreos-install's getopts string `V:B:C:d:o:c:i:t:b:k:f:nyvh`
//! (reference §1.2), plus long forms and the flags this installer adds.

use clap::Parser;
use std::path::PathBuf;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "coreos-install",
    about = "Download, verify and write a CoreOS image to a disk, then configure it without mounting",
    disable_version_flag = true,
    after_help = "Examples:
  coreos-install -d /dev/sda -c cloud-config.yml
  coreos-install -d /dev/sda -C beta -V 3788.1.2 -o vagrant
  coreos-install -d /dev/sda -b http://mirror.example/amd64-usr -k signing-key.pub.asc
  coreos-install -d /dev/sda -f coreos_production_image.bin.bz2 -k signing-key.pub.asc
  coreos-install -D ./download -C stable"
)]
pub struct Args {
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

    /// URL of the image mirror (overrides BOARD and CHANNEL).
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
}

impl Args {
    /// The mirror base URL, without a trailing slash (coreos-install strips it too).
    pub fn base_url(&self) -> String {
        match &self.base_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!(
                "https://{}.release.core-os.net/{}",
                self.channel, self.board
            ),
        }
    }
}
