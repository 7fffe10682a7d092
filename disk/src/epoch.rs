//! `SOURCE_DATE_EPOCH` (reproducible-builds.org): the one clock every artifact is stamped with.
//!
//! Meaning, for every binary: set to a decimal number of seconds since 1970 → that time (an
//! empty value counts as unset); set to anything else → an error naming the value (a typo
//! must not silently give a non-reproducible build); unset → now.

use std::time::{SystemTime, UNIX_EPOCH};

pub const VAR: &str = "SOURCE_DATE_EPOCH";

#[derive(Debug, thiserror::Error)]
#[error("{VAR}={0:?} is not a number of seconds since 1970")]
pub struct EpochError(String);

/// `SOURCE_DATE_EPOCH` when set, `None` when unset.
pub fn source_date_epoch() -> Result<Option<u64>, EpochError> {
    parse(std::env::var(VAR).ok().as_deref())
}

/// `SOURCE_DATE_EPOCH` when set, else now.
pub fn build_time() -> Result<u64, EpochError> {
    Ok(source_date_epoch()?.unwrap_or_else(now))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn parse(value: Option<&str>) -> Result<Option<u64>, EpochError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| EpochError(v.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_meaning() {
        assert_eq!(parse(None).unwrap(), None);
        assert_eq!(parse(Some("")).unwrap(), None);
        assert_eq!(parse(Some(" 1700000000\n")).unwrap(), Some(1_700_000_000));
        for bad in ["-1", "1.5", "yesterday", "0x10"] {
            let e = parse(Some(bad)).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains(VAR), "{e}");
        }
    }
}
