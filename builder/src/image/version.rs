//! Image version numbers (`major.minor.patch`, CoreOS's BUILD.BRANCH.PATCH) and `version.txt`.

use anyhow::{bail, Context};
use std::fmt;

/// `COREOS_EPOCH`: Mon Jul  1 00:00:00 UTC 2013 (S16 `common.sh`).
pub const COREOS_EPOCH: i64 = 1372636800;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub build: u32,
    pub branch: u32,
    pub patch: u32,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.build, self.branch, self.patch)
    }
}

impl Version {
    pub fn parse(s: &str) -> anyhow::Result<Version> {
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() != 3
            || parts
                .iter()
                .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            bail!("version {s:?} is not of the form X.Y.Z (three numbers)");
        }
        let n = |p: &str| {
            p.parse::<u32>()
                .with_context(|| format!("version {s:?}: {p} is too large"))
        };
        Ok(Version {
            build: n(parts[0])?,
            branch: n(parts[1])?,
            patch: n(parts[2])?,
        })
    }

    /// `TODAYS_VERSION`: whole days since `COREOS_EPOCH`, as N.0.0.
    pub fn for_time(unix: i64) -> Version {
        let days = (unix - COREOS_EPOCH).div_euclid(86400).max(0);
        Version {
            build: days as u32,
            branch: 0,
            patch: 0,
        }
    }
}

/// The image's `version.txt` (S16 `build_image`).
pub fn version_txt(v: &Version) -> String {
    format!(
        "COREOS_BUILD={}\nCOREOS_BRANCH={}\nCOREOS_PATCH={}\nCOREOS_VERSION={v}\nCOREOS_VERSION_ID={v}\nCOREOS_BUILD_ID=\"\"\nCOREOS_SDK_VERSION={v}\n",
        v.build, v.branch, v.patch
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_version_counts_days() {
        assert_eq!(Version::for_time(COREOS_EPOCH).to_string(), "0.0.0");
        // 2023-11-14 22:13:20 UTC is day 3788 after 2013-07-01.
        assert_eq!(Version::for_time(1_700_000_000).to_string(), "3788.0.0");
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            Version::parse("1235.4.0").unwrap(),
            Version {
                build: 1235,
                branch: 4,
                patch: 0
            }
        );
        for bad in ["1.2", "1.2.3.4", "a.b.c", "1..3", "99999999999.0.0"] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn version_txt_lines() {
        let t = version_txt(&Version::parse("3788.1.2").unwrap());
        assert!(
            t.starts_with(
                "COREOS_BUILD=3788\nCOREOS_BRANCH=1\nCOREOS_PATCH=2\nCOREOS_VERSION=3788.1.2\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("COREOS_BUILD_ID=\"\"\n") && t.contains("COREOS_SDK_VERSION=3788.1.2\n")
        );
    }
}
