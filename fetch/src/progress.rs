//! Progress for the person at the console: indicatif bars (bytes, rate, ETA) on a terminal,
//! plain lines every few seconds otherwise (a serial console or a service log).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Progress {
    bar: Option<ProgressBar>,
    label: &'static str,
    total: Option<u64>,
    pos: u64,
    last_line: Instant,
}

pub struct Ui {
    multi: Option<MultiProgress>,
}

/// How often the plain-line mode reports.
const LINE_EVERY: Duration = Duration::from_secs(5);

impl Default for Ui {
    fn default() -> Ui {
        Ui::new()
    }
}

impl Ui {
    pub fn new() -> Ui {
        let tty = std::io::stderr().is_terminal();
        Ui {
            multi: tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    pub fn bar(&self, label: &'static str, total: Option<u64>) -> Progress {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(total.unwrap_or(0)));
            let template =
                "{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}";
            b.set_style(
                ProgressStyle::with_template(template)
                    .expect("template")
                    .progress_chars("=> "),
            );
            b.set_prefix(label);
            b
        });
        Progress {
            bar,
            label,
            total,
            pos: 0,
            last_line: Instant::now(),
        }
    }

    /// Print a line without tearing the bars.
    pub fn println(&self, msg: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(msg);
            }
            None => eprintln!("{msg}"),
        }
    }
}

impl Progress {
    /// Set the total the first time it becomes known; true when it was set now.
    pub fn set_total_once(&mut self, total: u64) -> bool {
        if self.total.is_some() {
            return false;
        }
        self.total = Some(total);
        if let Some(b) = &self.bar {
            b.set_length(total);
        }
        true
    }

    pub fn set(&mut self, pos: u64) {
        self.pos = pos;
        match &self.bar {
            Some(b) => b.set_position(pos),
            None if self.last_line.elapsed() >= LINE_EVERY => {
                self.last_line = Instant::now();
                match self.total {
                    Some(t) if t > 0 => eprintln!(
                        "{}: {} / {} MiB ({}%)",
                        self.label,
                        pos >> 20,
                        t >> 20,
                        pos * 100 / t
                    ),
                    _ => eprintln!("{}: {} MiB", self.label, pos >> 20),
                }
            }
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        } else {
            eprintln!("{}: {} MiB done", self.label, self.pos >> 20);
        }
    }
}
