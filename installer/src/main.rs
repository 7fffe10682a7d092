//! `coreos-install`: one static binary that downloads, verifies, writes and configures a
//! CoreOS disk. `main` only parses the command line and dispatches.

#![forbid(unsafe_code)]

use clap::Parser;
use coreos_install::{cli, download, install, iso};

fn main() {
    cli_docs::generate_if_asked::<cli::Args>();
    let args = cli::Args::parse();
    let filter = if args.verbose { "debug" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COREOS_INSTALL_LOG")
                .unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .init();
    let result = if let Some(cli::Command::Iso(c)) = &args.command {
        iso::run(c)
    } else if args.download_only.is_some() {
        download::run(&args)
    } else {
        install::run(&args)
    };
    if let Err(e) = result {
        eprintln!("coreos-install: error: {e:#}");
        std::process::exit(1);
    }
}
