//! Release metadata stamped into USR-A, as S16 `build_library/set_lsb_release` wrote it.

use super::version::Version;
use std::path::PathBuf;

/// Omaha application id of CoreOS on amd64 (S16 `set_lsb_release`).
pub const COREOS_APPID: &str = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}";
pub const UPDATE_SERVER: &str = "https://public.update.core-os.net/v1/update/";
const NAME: &str = "Container Linux by CoreOS";
const CODENAME: &str = "Ladybug";

/// (path inside USR, contents) of every stamped file.
pub fn release_files(v: &Version, group: &str, board: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let os_release = format!(
        "NAME=\"{NAME}\"\nID=coreos\nVERSION={v}\nVERSION_ID={v}\nBUILD_ID=\"\"\nPRETTY_NAME=\"{NAME} {v} ({CODENAME})\"\n\
         ANSI_COLOR=\"38;5;75\"\nHOME_URL=\"https://coreos.com/\"\nBUG_REPORT_URL=\"https://github.com/coreos/bugs/issues\"\n"
    );
    let lsb = format!(
        "DISTRIB_ID=\"{NAME}\"\nDISTRIB_RELEASE={v}\nDISTRIB_CODENAME=\"{CODENAME}\"\nDISTRIB_DESCRIPTION=\"{NAME} {v} ({CODENAME})\"\n"
    );
    let release = format!("COREOS_RELEASE_VERSION={v}\nCOREOS_RELEASE_BOARD={board}\nCOREOS_RELEASE_APPID={COREOS_APPID}\n");
    let update = format!("SERVER={UPDATE_SERVER}\nGROUP={group}\n");
    vec![
        (PathBuf::from("lib/os-release"), os_release.into_bytes()),
        (PathBuf::from("share/coreos/lsb-release"), lsb.into_bytes()),
        (PathBuf::from("share/coreos/release"), release.into_bytes()),
        (
            PathBuf::from("share/coreos/update.conf"),
            update.into_bytes(),
        ),
    ]
}

/// A channel name that is safe in `GROUP=` (letters, digits, `-`, `_`, `.`).
pub fn check_group(group: &str) -> anyhow::Result<()> {
    if group.is_empty()
        || !group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        anyhow::bail!(
            "group {group:?} must be a channel name such as stable, beta, alpha or developer"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_version_group_board() {
        let files = release_files(&Version::parse("1.2.3").unwrap(), "beta", "amd64-usr");
        let get = |p: &str| {
            String::from_utf8(
                files
                    .iter()
                    .find(|f| f.0 == PathBuf::from(p))
                    .unwrap()
                    .1
                    .clone(),
            )
            .unwrap()
        };
        assert!(get("lib/os-release").contains("\nID=coreos\nVERSION=1.2.3\nVERSION_ID=1.2.3\n"));
        assert_eq!(
            get("share/coreos/update.conf"),
            format!("SERVER={UPDATE_SERVER}\nGROUP=beta\n")
        );
        assert!(get("share/coreos/release").contains("COREOS_RELEASE_BOARD=amd64-usr\n"));
        assert!(
            check_group("stable").is_ok()
                && check_group("a b").is_err()
                && check_group("").is_err()
        );
    }
}
