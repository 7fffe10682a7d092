//! Release versions and their order. CoreOS versions are semver (`2512.2.0`, `3732.0.0-rc1`);
//! Nebraska offers an update only when the channel's version is greater than the machine's
//! under semver, and refuses a machine whose version is not semver. Both sides use this one
//! order, so a client's "never downgrade" and the server's cannot disagree.

use std::cmp::Ordering;
use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("version {given:?} is not MAJOR.MINOR.PATCH[-PRE][+BUILD] (semver): {why}")]
pub struct VersionError {
    pub given: String,
    why: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(semver::Version);

impl Version {
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        semver::Version::parse(s.trim())
            .map(Version)
            .map_err(|e| VersionError {
                given: s.to_string(),
                why: e.to_string(),
            })
    }
}

impl Ord for Version {
    /// Semver precedence, with build metadata as the last tie-break (so the order is total
    /// and agrees with `Eq`): `1.0.0-rc1 < 1.0.0 < 1.0.1 < 1.1.0`.
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn orders_as_semver() {
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-rc1",
            "1.0.0",
            "1.0.1",
            "1.2.0",
            "9.9.9",
            "1688.5.3",
            "2512.2.0",
            "3732.0.0",
        ];
        for w in ordered.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(v("3732.0.0").cmp(&v(" 3732.0.0\n")), Ordering::Equal);
        assert_eq!(v("2512.2.0").to_string(), "2512.2.0");
    }

    #[test]
    fn refuses_what_is_not_semver() {
        for bad in [
            "", "1.2", "1.2.3.4", "0.0.0.0", "v1.2.3", "current", "01.2.3",
        ] {
            let e = Version::parse(bad).unwrap_err().to_string();
            assert!(e.contains("is not MAJOR.MINOR.PATCH"), "{bad:?}: {e}");
        }
    }
}
