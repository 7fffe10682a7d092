//! Command line: four verbs, each on one disk (`-d`, or the disk the running system booted
//! from).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "coreos-update",
    version,
    about = "Update the passive USR slot from a signed payload; keep the A/B boot state",
    after_help = "Examples:\n  coreos-update apply -b https://mirror.example/amd64-usr -V current -k update-payload-key.pub.pem\n  coreos-update apply -d disk.img -f coreos_production_update.gz -k update-payload-key.pub.pem\n  coreos-update status\n  coreos-update mark-good -d disk.img --slot b\n\n\
Exit status:\n  0  done (for apply: written, or nothing to apply: the running version is the mirror's current)\n  \
1  error (nothing of the current step is left half-done; see the message)\n  \
2  the command line is wrong\n  \
3  apply refused: the running slot is on trial, not marked good yet (--force)\n  \
4  apply refused: the version is older than the running one (--allow-downgrade)\n  \
5  apply refused: the payload is for another channel or board\n  \
6  apply skipped: the version failed its trial boot on this disk before (--retry-failed)\n\
Nothing is written to the disk when apply refuses (3-6)."
)]
pub struct Args {
    /// Verbose logging.
    #[arg(short = 'v', long, global = true)]
    pub verbose: bool,
    /// How long to wait for another program's lock on the disk (a BSD flock: another
    /// coreos-update or coreos-install, a partitioning tool) before failing.
    #[arg(
        long = "wait",
        value_name = "SECONDS",
        global = true,
        default_value_t = 300
    )]
    pub wait: u64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify a payload, write it into the passive slot and make that slot boot next, once.
    Apply(ApplyArgs),
    /// Mark a slot good (successful, no tries, highest priority), as coreos-setgoodroot did.
    MarkGood(MarkGoodArgs),
    /// Make a slot boot next, as `cgpt prioritize` of its partition did (manual rollback), and
    /// render GRUB's view at once.
    Prioritize(PrioritizeArgs),
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
    /// Write the passive slot even though the running slot is on trial (not marked good):
    /// this destroys the passive slot, which may be the only one known to boot.
    #[arg(long = "force")]
    pub force: bool,
    /// Write a version older than the running one.
    #[arg(long = "allow-downgrade")]
    pub allow_downgrade: bool,
    /// Write a version that failed its trial boot on this disk before.
    #[arg(long = "retry-failed")]
    pub retry_failed: bool,
}

#[derive(Debug, clap::Args)]
pub struct MarkGoodArgs {
    #[command(flatten)]
    pub disk: DiskArgs,
    /// The slot to mark (default: the one the running system booted).
    #[arg(long = "slot", value_name = "a|b", value_parser = parse_slot)]
    pub slot: Option<disk::slots::Slot>,
}

#[derive(Debug, clap::Args)]
pub struct PrioritizeArgs {
    #[command(flatten)]
    pub disk: DiskArgs,
    /// The slot to boot next.
    #[arg(long = "slot", value_name = "a|b", value_parser = parse_slot, required = true)]
    pub slot: disk::slots::Slot,
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
