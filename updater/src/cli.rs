//! Command line: four verbs, each on one disk (`-d`, or the disk the running system booted
//! from).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "coreos-update",
    version,
    about = "Update the passive USR slot from a signed payload; keep the A/B boot state",
    after_help = "Examples:\n  coreos-update apply -b https://mirror.example/amd64-usr -V current -k update-payload-key.pub.pem\n  coreos-update apply -d disk.img -f coreos_production_update.gz -k update-payload-key.pub.pem\n  coreos-update status\n  coreos-update mark-good -d disk.img --slot b"
)]
pub struct Args {
    /// Verbose logging.
    #[arg(short = 'v', long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify a payload, write it into the passive slot and make that slot boot next, once.
    Apply(ApplyArgs),
    /// Mark a slot good (successful, no tries, highest priority), as coreos-setgoodroot did.
    MarkGood(MarkGoodArgs),
    /// Take the try GRUB spent into the GPT, then render GRUB's view from the GPT.
    Sync(DiskArgs),
    /// Both slots: version, priority, tries, successful, and which one boots next.
    Status(DiskArgs),
}

#[derive(Debug, clap::Args)]
pub struct DiskArgs {
    /// A disk image or block device (default: the disk the running system booted from).
    #[arg(short = 'd', long = "disk", value_name = "DISK")]
    pub disk: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["payload", "base_url"])))]
pub struct ApplyArgs {
    #[command(flatten)]
    pub disk: DiskArgs,
    /// A local update payload (coreos_production_update.gz).
    #[arg(short = 'f', long = "payload", value_name = "PAYLOAD")]
    pub payload: Option<PathBuf>,
    /// Mirror to download BASEURL/VERSION/coreos_production_update.gz from.
    #[arg(
        short = 'b',
        long = "base-url",
        value_name = "URL",
        requires = "version"
    )]
    pub base_url: Option<String>,
    /// The version to install (`current`: resolved through version.txt, and nothing is
    /// applied when the active slot already runs it); with -f, the payload must be this version.
    #[arg(short = 'V', long = "version", value_name = "VERSION")]
    pub version: Option<String>,
    /// The payload signing key (PEM RSA public key, update-payload-key.pub.pem).
    #[arg(short = 'k', long = "key", value_name = "PUBKEY.pem")]
    pub key: PathBuf,
    /// How many times to retry a failed or interrupted download.
    #[arg(long = "retries", value_name = "N", default_value_t = 5)]
    pub retries: u32,
}

#[derive(Debug, clap::Args)]
pub struct MarkGoodArgs {
    #[command(flatten)]
    pub disk: DiskArgs,
    /// The slot to mark (default: the one the running system booted).
    #[arg(long = "slot", value_name = "a|b", value_parser = parse_slot)]
    pub slot: Option<disk::slots::Slot>,
}

fn parse_slot(s: &str) -> Result<disk::slots::Slot, String> {
    disk::slots::Slot::parse(s).ok_or_else(|| format!("{s:?} is not a slot: a or b"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn apply_needs_exactly_one_source_and_a_version_with_a_mirror() {
        let parse = |a: &[&str]| Args::try_parse_from([&["coreos-update", "apply"], a].concat());
        assert!(parse(&["-f", "p.gz", "-k", "k.pem"]).is_ok());
        assert!(parse(&["-b", "http://m", "-V", "current", "-k", "k.pem"]).is_ok());
        assert!(parse(&["-k", "k.pem"]).is_err(), "no source");
        assert!(parse(&["-f", "p", "-b", "http://m", "-V", "1", "-k", "k"]).is_err());
        assert!(
            parse(&["-b", "http://m", "-k", "k.pem"]).is_err(),
            "-b without -V"
        );
        assert!(parse(&["-f", "p.gz"]).is_err(), "no key");
        let m = Args::try_parse_from(["coreos-update", "mark-good", "--slot", "B"]).unwrap();
        match m.command {
            Command::MarkGood(m) => assert_eq!(m.slot, Some(disk::slots::Slot::B)),
            c => panic!("{c:?}"),
        }
        assert!(Args::try_parse_from(["coreos-update", "mark-good", "--slot", "c"]).is_err());
    }
}
