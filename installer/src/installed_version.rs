//! The version an installed disk holds, read back from its USR-A: what the success line
//! reports, so a local image (`-f`) is named by its version and a mirror whose version.txt
//! disagrees with its image is noticed.

use ext4::edit::read_file;
use std::fs::File;

/// USR-A's number in every CoreOS layout.
pub const USR_A_PARTITION: u32 = 3;
/// Written by the builder (S16 `set_lsb_release`); the USR tree is mounted at /usr.
const RELEASE_FILE: &str = "/share/coreos/release";

/// COREOS_RELEASE_VERSION from USR-A at [offset, offset+len) of `dev`; None when the image
/// has no such file (a foreign image) or it cannot be read.
pub fn read(dev: &File, offset: u64, len: u64) -> Option<String> {
    match read_file(dev, offset, len, RELEASE_FILE) {
        Ok(Some(data)) => parse(&String::from_utf8_lossy(&data)),
        Ok(None) => None,
        Err(e) => {
            tracing::debug!("USR-A: reading {RELEASE_FILE}: {e}");
            None
        }
    }
}

fn parse(release: &str) -> Option<String> {
    release
        .lines()
        .find_map(|l| l.strip_prefix("COREOS_RELEASE_VERSION="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_release_file() {
        let f = "COREOS_RELEASE_VERSION=1.2.3\nCOREOS_RELEASE_BOARD=amd64-usr\n";
        assert_eq!(parse(f).as_deref(), Some("1.2.3"));
        assert_eq!(
            parse("COREOS_RELEASE_VERSION=\"4.5.6\"\n").as_deref(),
            Some("4.5.6")
        );
        assert_eq!(parse("COREOS_RELEASE_BOARD=amd64-usr\n"), None);
        assert_eq!(parse("COREOS_RELEASE_VERSION=\n"), None);
    }
}
