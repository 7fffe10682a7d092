//! `coreos-update`: writes a signed update payload into the passive USR slot and keeps the A/B
//! state — the GPT attributes (the truth `cgpt` reads) and GRUB's view of them on the ESP.
//! `main` only parses the command line and dispatches.

#![forbid(unsafe_code)]

mod apply;
mod boot_disk;
mod cli;
mod esp;
mod esp_mount;
mod mark_good;
mod policy;
mod prioritize;
mod release_info;
mod slot_state;
mod status;
mod sync;
mod target;

use clap::Parser;
use cli::Command;

fn main() {
    cli_docs::generate_if_asked::<cli::Args>();
    let args = cli::Args::parse();
    let filter = if args.verbose { "debug" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COREOS_UPDATE_LOG")
                .unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .init();
    target::set_lock_wait(std::time::Duration::from_secs(args.wait));
    let result = match &args.command {
        Command::Apply(a) => apply::run(a),
        Command::MarkGood(a) => mark_good::run(a),
        Command::Prioritize(a) => prioritize::run(a),
        Command::Sync(a) => sync::run(a),
        Command::Status(a) => status::run(a),
    };
    if let Err(e) = result {
        let code = e
            .downcast_ref::<policy::Refused>()
            .map_or(1, policy::Refused::exit_code);
        eprintln!("coreos-update: error: {e:#}");
        std::process::exit(code);
    }
}
