//! Writing the configuration into the installed ext4 filesystems through the disk crate's
//! editor, at the partitions' byte offsets on the whole disk: nothing is mounted.

use super::UserConfig;
use anyhow::{anyhow, Context, Result};
use disk::layout::Partition;
use ext4::edit::{add_file, read_file, NewFile};
use std::fs::File;

/// Partition numbers fixed by the layout (tools find them by number, not label).
pub const OEM_PARTITION: u32 = 6;
pub const ROOT_PARTITION: u32 = 9;
/// coreos-install's path for the cloud-config on ROOT.
pub const USER_DATA: &str = "/var/lib/coreos-install/user_data";
/// Ignition >= 0.20 reads /usr/share/oem/config.ign, i.e. the OEM partition's root.
pub const IGNITION: &str = "/config.ign";
pub const OEM_GRUB_CFG: &str = "/grub.cfg";
pub const NETWORK_DIR: &str = "/etc/systemd/network";

fn part(parts: &[Partition], n: u32) -> Result<&Partition> {
    parts
        .iter()
        .find(|p| p.number == n)
        .ok_or_else(|| anyhow!("the installed image has no partition {n}"))
}

/// Put the user's files into ROOT and OEM. `oem_id` is set when the OEM was requested but only
/// the base image exists: GRUB then learns the OEM from the OEM partition's grub.cfg.
pub fn inject(
    dev: &File,
    parts: &[Partition],
    cfg: &UserConfig,
    oem_id: Option<&str>,
    mtime: u32,
) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let secret = NewFile {
        mode: 0o600,
        uid: 0,
        gid: 0,
        mtime,
    };
    let public = NewFile {
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime,
    };
    if let Some(data) = &cfg.cloud_config {
        let root = part(parts, ROOT_PARTITION)?;
        add_file(dev, root.offset(), root.bytes(), USER_DATA, data, secret)
            .with_context(|| format!("writing {USER_DATA} to ROOT (partition {ROOT_PARTITION})"))?;
        done.push(format!("cloud-config -> ROOT:{USER_DATA}"));
    }
    for (name, data, mode) in &cfg.network_units {
        let root = part(parts, ROOT_PARTITION)?;
        let path = format!("{NETWORK_DIR}/{name}");
        let meta = NewFile {
            mode: *mode,
            ..public
        };
        add_file(dev, root.offset(), root.bytes(), &path, data, meta)
            .with_context(|| format!("writing {path} to ROOT (partition {ROOT_PARTITION})"))?;
        done.push(format!("network unit -> ROOT:{path}"));
    }
    if let Some(data) = &cfg.ignition {
        let oem = part(parts, OEM_PARTITION)?;
        add_file(dev, oem.offset(), oem.bytes(), IGNITION, data, secret)
            .with_context(|| format!("writing {IGNITION} to OEM (partition {OEM_PARTITION})"))?;
        done.push(format!("Ignition config -> OEM:{IGNITION}"));
    }
    if let Some(id) = oem_id {
        let oem = part(parts, OEM_PARTITION)?;
        let old = read_file(dev, oem.offset(), oem.bytes(), OEM_GRUB_CFG).with_context(|| {
            format!("reading {OEM_GRUB_CFG} on OEM (partition {OEM_PARTITION})")
        })?;
        let text = with_oem_id(old.as_deref(), id);
        add_file(
            dev,
            oem.offset(),
            oem.bytes(),
            OEM_GRUB_CFG,
            text.as_bytes(),
            public,
        )
        .with_context(|| format!("writing {OEM_GRUB_CFG} to OEM (partition {OEM_PARTITION})"))?;
        done.push(format!("oem_id={id} -> OEM:{OEM_GRUB_CFG}"));
    }
    Ok(done)
}

/// The OEM grub.cfg with `set oem_id` replaced (or added); every other line is kept, so the
/// base image's settings survive (coreos/init 3eeab79: "Don't clobber OEM grub.cfg").
fn with_oem_id(old: Option<&[u8]>, id: &str) -> String {
    let old = old.map(String::from_utf8_lossy).unwrap_or_default();
    let mut out: String = old
        .lines()
        .filter(|l| !l.trim_start().starts_with("set oem_id="))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&format!("set oem_id=\"{id}\"\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::with_oem_id;

    #[test]
    fn oem_id_replaces_only_its_line() {
        let old = b"# metal\nset oem_id=\"metal\"\nset linux_append=\"x\"\n";
        assert_eq!(
            with_oem_id(Some(old), "azure"),
            "# metal\nset linux_append=\"x\"\nset oem_id=\"azure\"\n"
        );
        assert_eq!(with_oem_id(None, "gce"), "set oem_id=\"gce\"\n");
    }
}
