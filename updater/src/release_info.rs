//! What a slot holds, read from its USR filesystem without mounting it: the release file the
//! builder stamps (`/share/coreos/release`, USR being mounted at /usr).

use disk::slots::UsrPartition;
use std::fs::File;

const RELEASE_FILE: &str = "/share/coreos/release";
/// The channel the release was built for (`GROUP=`), in USR.
const USR_UPDATE_CONF: &str = "/share/coreos/update.conf";
/// The machine's choice of channel, on ROOT (overrides USR's, as update_engine reads them).
const ROOT_UPDATE_CONF: &str = "/etc/coreos/update.conf";

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

/// `GROUP=` of an update.conf text.
fn group(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("GROUP="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .rfind(|v| !v.is_empty())
}

/// The channel this machine follows: `GROUP` of ROOT's /etc/coreos/update.conf (the running
/// system's own when `running`, else read from the disk's ROOT partition `root`), else of the
/// USR slot `usr`'s /share/coreos/update.conf. None when neither names one.
pub fn machine_channel(
    dev: &File,
    usr: &UsrPartition,
    root: Option<&disk::layout::Partition>,
    running: bool,
) -> Option<String> {
    let etc = if running {
        std::fs::read_to_string(ROOT_UPDATE_CONF).ok()
    } else {
        root.and_then(|r| {
            ext4::edit::read_file(dev, r.offset(), r.bytes(), ROOT_UPDATE_CONF)
                .ok()
                .flatten()
        })
        .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    etc.as_deref().and_then(group).or_else(|| {
        let b = ext4::edit::read_file(dev, usr.offset(), usr.bytes(), USR_UPDATE_CONF)
            .ok()
            .flatten()?;
        group(&String::from_utf8_lossy(&b))
    })
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

    #[test]
    fn the_last_group_line_wins() {
        assert_eq!(group("SERVER=x\nGROUP=beta\n").as_deref(), Some("beta"));
        assert_eq!(
            group("GROUP=beta\nGROUP=\"stable\"\n").as_deref(),
            Some("stable")
        );
        assert_eq!(group("SERVER=x\n"), None);
    }
}
