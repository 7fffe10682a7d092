//! `coreos-build`: a USR tree in, CoreOS disk images, release files and VM artifacts out.
//! This file is only the dispatch table; each subcommand lives in its own module.

#![forbid(unsafe_code)]

mod atomic_output;
mod image;
mod inspect;
mod keygen;
mod mkfs;
mod mounts;
mod progress;
mod release;
mod serve;
mod update_payload;
mod vm;

use clap::{Parser, Subcommand};
use coreos_build::bootloader;

#[derive(Parser)]
#[command(
    name = "coreos-build",
    version,
    about = "Build CoreOS disk images offline, without root, reproducibly",
    after_help = "Examples:
  coreos-build image --usr ./usr --output out/
  coreos-build release --usr ./usr --output mirror/ --signing-key key/signing-key.asc
  coreos-build vm --format vagrant --image out/coreos_production_image.bin --output vm/

Timestamps come from SOURCE_DATE_EPOCH when it is set: the same inputs then give the same bytes."
)]
struct Cli {
    /// No progress bars; only warnings and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the production disk image from a USR tree.
    Image(image::Args),
    /// Show the partitions, filesystems, version and verity hash of an image.
    Inspect(inspect::Args),
    /// Make a filesystem image from a directory tree (a rootless, reproducible `mkfs.ext4 -d`).
    #[command(subcommand)]
    Mkfs(mkfs::Command),
    /// Generate an OpenPGP signing key pair.
    Keygen(keygen::Args),
    /// Build the image and the signed, compressed release tree (the mirror).
    Release(release::Args),
    /// Make the signed update payload (CrAU) of an image's USR-A and kernel.
    Payload(update_payload::Args),
    /// Convert a production image into a platform artifact (VirtualBox, Vagrant, GCE, EC2, qemu,
    /// Azure, Hyper-V, VMware, OpenStack, DigitalOcean, Packet, live ISO, PXE).
    Vm(vm::Args),
    /// Serve the Omaha update protocol (and the mirror's files) from a mirror of channels.
    Serve(serve::Args),
}

fn main() -> anyhow::Result<()> {
    cli_docs::generate_if_asked::<Cli>();
    let cli = Cli::parse();
    progress::init_logging(cli.quiet, cli.verbose);
    let ui = progress::Ui::new(cli.quiet);
    match cli.command {
        Command::Image(a) => image::run(a, &ui),
        Command::Inspect(a) => inspect::run(a),
        Command::Mkfs(c) => mkfs::run(c, &ui),
        Command::Keygen(a) => keygen::run(a),
        Command::Release(a) => release::run(a, &ui),
        Command::Payload(a) => update_payload::run(a, &ui),
        Command::Vm(a) => vm::run(a, &ui),
        Command::Serve(a) => serve::run(a),
    }
}
