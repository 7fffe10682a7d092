//! Progress bars (indicatif) and logging (tracing), shared by every subcommand.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

pub fn init_logging(quiet: bool, verbose: u8) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .init();
}

/// How a command shows progress: bars on a terminal, nothing when quiet or piped.
#[derive(Clone, Debug)]
pub struct Ui {
    quiet: bool,
}

impl Ui {
    pub fn new(quiet: bool) -> Self {
        Ui { quiet }
    }

    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// A byte-counting bar for one step, e.g. `ui.bytes("USR-A", total)`.
    pub fn bytes(&self, step: &str, total: u64) -> ProgressBar {
        let pb = ProgressBar::with_draw_target(Some(total), self.target());
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        pb.set_prefix(step.to_string());
        pb
    }

    /// A spinner for a step whose size is unknown.
    pub fn step(&self, step: &str) -> ProgressBar {
        let pb = ProgressBar::with_draw_target(None, self.target());
        pb.set_style(
            ProgressStyle::with_template("{prefix:>12} {spinner} {msg} {elapsed}")
                .expect("static template"),
        );
        pb.set_prefix(step.to_string());
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        pb
    }

    fn target(&self) -> ProgressDrawTarget {
        if self.quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        }
    }
}
