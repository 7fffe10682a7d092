//! What a slot holds, read from its USR filesystem without mounting it: the release file the
//! builder stamps (`/share/coreos/release`, USR being mounted at /usr).

use disk::slots::UsrPartition;
use std::fs::File;

const RELEASE_FILE: &str = "/share/coreos/release";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlotRelease {
    pub version: Option<String>,
    pub board: Option<String>,
}

/// The release of the USR filesystem in `part`; None when it cannot be read (an empty or
/// half-written slot).
pub fn read(dev: &File, part: &UsrPartition) -> Option<SlotRelease> {
    match ext4::edit::read_file(dev, part.offset(), part.bytes(), RELEASE_FILE) {
        Ok(Some(data)) => Some(parse(&String::from_utf8_lossy(&data))),
        Ok(None) => None,
        Err(e) => {
            tracing::debug!("{}: reading {RELEASE_FILE}: {e}", part.label);
            None
        }
    }
}

fn parse(text: &str) -> SlotRelease {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_string())
            .filter(|v| !v.is_empty())
    };
    SlotRelease {
        version: field("COREOS_RELEASE_VERSION"),
        board: field("COREOS_RELEASE_BOARD"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_and_board() {
        let r = parse("COREOS_RELEASE_VERSION=1.2.3\nCOREOS_RELEASE_BOARD=\"amd64-usr\"\n");
        assert_eq!(r.version.as_deref(), Some("1.2.3"));
        assert_eq!(r.board.as_deref(), Some("amd64-usr"));
        assert_eq!(parse("COREOS_RELEASE_VERSION=\n"), SlotRelease::default());
    }
}
