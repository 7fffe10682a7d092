//! The fleet's story, one JSON line per event a machine reports (13/1 downloading, 14/1
//! downloaded, 3/1 installed, 3/2 rebooted into it, 3/0 failed with update_engine's code),
//! and the progress table `serve --progress LOG` prints from it: each machine counted once,
//! in the state of its latest event.

use anyhow::{Context, Result};
use omaha::{EventResult, EventType, Request};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLine {
    /// Unix seconds.
    pub time: u64,
    pub machine: String,
    pub channel: String,
    pub board: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub previous_version: Option<String>,
    pub event: u32,
    pub result: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_code: Option<u32>,
}

impl EventLine {
    pub fn from_request(req: &Request, time: u64) -> Vec<EventLine> {
        req.events
            .iter()
            .map(|e| EventLine {
                time,
                machine: req.app.machine_id.clone(),
                channel: req.app.track.clone(),
                board: req.app.board.clone(),
                version: req.app.version.clone(),
                previous_version: e.previous_version.clone(),
                event: e.kind.code(),
                result: e.result.code(),
                error_code: e.error_code,
            })
            .collect()
    }

    /// The state this event leaves its machine in, for the progress table.
    fn state(&self) -> String {
        match (
            EventType::from_code(self.event),
            EventResult::from_code(self.result),
        ) {
            (EventType::UpdateDownloadStarted, EventResult::Success) => "downloading".into(),
            (EventType::UpdateDownloadFinished, EventResult::Success) => "downloaded".into(),
            (EventType::UpdateComplete, EventResult::Success)
            | (EventType::UpdateInstalled, EventResult::Success) => {
                "installed, reboot pending".into()
            }
            (EventType::UpdateComplete, EventResult::SuccessReboot) => "updated".into(),
            (_, EventResult::Error) => format!("failed (error {})", self.error_code.unwrap_or(0)),
            (t, r) => format!("event {}/{}", t.code(), r.code()),
        }
    }
}

/// Appends event lines to a file (a line per write, so a crash loses at most the one).
pub struct EventLog {
    file: Option<Mutex<std::fs::File>>,
}

impl EventLog {
    pub fn open(path: Option<&Path>) -> Result<EventLog> {
        let file = match path {
            None => None,
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("opening the event log {}", p.display()))?,
            )),
        };
        Ok(EventLog { file })
    }

    pub fn write(&self, lines: &[EventLine]) {
        for l in lines {
            let json = serde_json::to_string(l).expect("plain struct");
            tracing::info!(target: "events", "{json}");
            if let Some(f) = &self.file {
                let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = writeln!(f, "{json}") {
                    tracing::warn!("writing the event log: {e}");
                }
            }
        }
    }
}

/// `(version the machine ran, state)` → machines, from the latest event of each machine.
pub fn progress(log: &Path) -> Result<BTreeMap<(String, String), usize>> {
    let f = std::fs::File::open(log).with_context(|| format!("opening {}", log.display()))?;
    let mut latest: BTreeMap<String, EventLine> = BTreeMap::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", log.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let e: EventLine = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}: not an event line", log.display(), i + 1))?;
        latest.insert(e.machine.clone(), e);
    }
    let mut table = BTreeMap::new();
    for e in latest.values() {
        // A machine that rebooted into the update reports from the new version.
        *table.entry((e.version.clone(), e.state())).or_insert(0) += 1;
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(machine: &str, version: &str, event: u32, result: u32, code: Option<u32>) -> String {
        serde_json::to_string(&EventLine {
            time: 1,
            machine: machine.into(),
            channel: "beta".into(),
            board: "amd64-usr".into(),
            version: version.into(),
            previous_version: None,
            event,
            result,
            error_code: code,
        })
        .unwrap()
    }

    #[test]
    fn each_machine_counts_once_in_its_latest_state() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("events.jsonl");
        let lines = [
            line("m1", "1.0.0", 13, 1, None),
            line("m1", "1.0.0", 14, 1, None),
            line("m2", "1.0.0", 13, 1, None),
            line("m1", "1.0.0", 3, 1, None),
            line("m1", "2.0.0", 3, 2, None),
            line("m3", "1.0.0", 3, 0, Some(44)),
        ];
        std::fs::write(&log, lines.join("\n") + "\n").unwrap();
        let t = progress(&log).unwrap();
        let want: BTreeMap<(String, String), usize> = [
            (("1.0.0".into(), "downloading".into()), 1),
            (("1.0.0".into(), "failed (error 44)".into()), 1),
            (("2.0.0".into(), "updated".into()), 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(t, want);
        std::fs::write(&log, "not json\n").unwrap();
        let e = format!("{:#}", progress(&log).unwrap_err());
        assert!(e.contains("line 1: not an event line"), "{e}");
    }
}
