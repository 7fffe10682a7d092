//! What `apply` refuses before a byte is written, each with its own exit status so a script
//! (or an update agent) can tell "not now" from "broken" without reading English:
//! - the running slot is on trial (not marked good yet): writing the other slot would destroy
//!   the only slot known to work (`--force`);
//! - a version lower than the running one (`--allow-downgrade`): `version.txt` is unsigned, so
//!   a mirror could point `current` at an older, signed release with known holes;
//! - a payload signed for another channel or board;
//! - a version that already failed its trial boot on this disk (`--retry-failed`).

use std::cmp::Ordering;
use std::fmt;

/// Exit statuses of `coreos-update` (also in `--help`).
pub const EXIT_TRIAL: i32 = 3;
pub const EXIT_DOWNGRADE: i32 = 4;
pub const EXIT_OTHER_RELEASE: i32 = 5;
pub const EXIT_FAILED_BEFORE: i32 = 6;

/// A refusal; nothing was written when one is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The running slot is not marked good; the passive one (the only proven slot) would go.
    UnprovenTrial {
        running: String,
        passive: String,
        passive_version: Option<String>,
        passive_good: bool,
    },
    Downgrade {
        running: String,
        offered: String,
    },
    OtherChannel {
        machine: String,
        payload: String,
    },
    OtherBoard {
        machine: String,
        payload: String,
    },
    FailedBefore {
        version: String,
    },
}

impl Refused {
    pub fn exit_code(&self) -> i32 {
        match self {
            Refused::UnprovenTrial { .. } => EXIT_TRIAL,
            Refused::Downgrade { .. } => EXIT_DOWNGRADE,
            Refused::OtherChannel { .. } | Refused::OtherBoard { .. } => EXIT_OTHER_RELEASE,
            Refused::FailedBefore { .. } => EXIT_FAILED_BEFORE,
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::UnprovenTrial {
                running,
                passive,
                passive_version,
                passive_good,
            } => write!(
                f,
                "refusing to write {passive}: the running {running} is on trial (not marked good), \
                 and {passive}{} is {} slot known to boot; mark {running} good first, or pass \
                 --force to overwrite it; nothing was written",
                passive_version
                    .as_deref()
                    .map(|v| format!(" (version {v})"))
                    .unwrap_or_default(),
                if *passive_good { "the only" } else { "the last" }
            ),
            Refused::Downgrade { running, offered } => write!(
                f,
                "refusing version {offered}: it is older than the running {running} (a downgrade; \
                 --allow-downgrade writes it); nothing was written"
            ),
            Refused::OtherChannel { machine, payload } => write!(
                f,
                "refusing a payload signed for channel {payload}: this machine follows {machine} \
                 (GROUP in /etc/coreos/update.conf or /usr/share/coreos/update.conf); nothing was written"
            ),
            Refused::OtherBoard { machine, payload } => write!(
                f,
                "refusing a payload for board {payload}: this machine runs {machine}; nothing was written"
            ),
            Refused::FailedBefore { version } => write!(
                f,
                "not writing {version}: it failed its trial boot on this disk before (never marked \
                 good); waiting for a newer version (--retry-failed writes it again); nothing was written"
            ),
        }
    }
}

impl std::error::Error for Refused {}

/// Release versions compared as CoreOS numbers them (`MAJOR.MINOR.PATCH`, each a number;
/// a `+build` or `-pre` suffix compared as text after the numbers). Versions whose numbers
/// cannot be read compare as text.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (Option<Vec<u64>>, &str) {
        let end = v.find(['+', '-']).unwrap_or(v.len());
        let nums: Option<Vec<u64>> = v[..end].split('.').map(|p| p.parse().ok()).collect();
        (nums, &v[end..])
    }
    match (split(a), split(b)) {
        ((Some(x), sx), (Some(y), sy)) => {
            let n = x.len().max(y.len());
            let pad = |v: &[u64]| (0..n).map(|i| v.get(i).copied().unwrap_or(0)).collect();
            let (x, y): (Vec<u64>, Vec<u64>) = (pad(&x), pad(&y));
            x.cmp(&y).then_with(|| sx.cmp(sy))
        }
        _ => a.cmp(b),
    }
}

/// Refuse `offered` when it is lower than `running` (unless allowed).
pub fn check_not_downgrade(
    running: Option<&str>,
    offered: &str,
    allow: bool,
) -> Result<(), Refused> {
    match running {
        Some(r) if !allow && compare_versions(offered, r) == Ordering::Less => {
            Err(Refused::Downgrade {
                running: r.to_string(),
                offered: offered.to_string(),
            })
        }
        _ => Ok(()),
    }
}

/// Refuse a payload signed for another channel. A payload or machine that names no channel
/// cannot be compared (payloads made by other tools carry none).
pub fn check_channel(machine: Option<&str>, payload: Option<&str>) -> Result<(), Refused> {
    match (machine, payload) {
        (Some(m), Some(p)) if !p.is_empty() && m != p => Err(Refused::OtherChannel {
            machine: m.to_string(),
            payload: p.to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_number_not_text() {
        assert_eq!(compare_versions("1000.0.0", "999.9.9"), Ordering::Greater);
        assert_eq!(compare_versions("1001.0.0", "1001.0.0"), Ordering::Equal);
        assert_eq!(compare_versions("1001.0.0", "1001.0.10"), Ordering::Less);
        assert_eq!(compare_versions("1001.1", "1001.0.9"), Ordering::Greater);
        assert_eq!(
            compare_versions("1001.0.0+b", "1001.0.0"),
            Ordering::Greater
        );
    }

    #[test]
    fn a_downgrade_is_refused_unless_allowed() {
        assert_eq!(
            check_not_downgrade(Some("1001.0.0"), "1000.0.0", false),
            Err(Refused::Downgrade {
                running: "1001.0.0".into(),
                offered: "1000.0.0".into()
            })
        );
        assert!(check_not_downgrade(Some("1001.0.0"), "1000.0.0", true).is_ok());
        assert!(check_not_downgrade(Some("1001.0.0"), "1001.0.0", false).is_ok());
        assert!(check_not_downgrade(Some("999.0.0"), "1000.0.0", false).is_ok());
        assert!(check_not_downgrade(None, "1.0.0", false).is_ok());
    }

    #[test]
    fn another_channel_is_refused() {
        assert!(check_channel(Some("stable"), Some("beta")).is_err());
        assert!(check_channel(Some("stable"), Some("stable")).is_ok());
        assert!(check_channel(None, Some("beta")).is_ok());
        assert!(check_channel(Some("stable"), None).is_ok());
        let e = check_channel(Some("stable"), Some("beta")).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_OTHER_RELEASE);
    }
}
