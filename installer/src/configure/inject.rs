//! Writing the configuration into the installed ext4 filesystems through the disk crate's
//! editor, at the partitions' byte offsets on the whole disk: nothing is mounted.

use super::UserConfig;
use crate::image::gpt_header::Partition;
use anyhow::{anyhow, Context, Result};
use disk::ext4::edit::{add_file, NewFile};
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
        add_file(dev, root.offset(), root.len(), USER_DATA, data, secret)
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
        add_file(dev, root.offset(), root.len(), &path, data, meta)
            .with_context(|| format!("writing {path} to ROOT (partition {ROOT_PARTITION})"))?;
        done.push(format!("network unit -> ROOT:{path}"));
    }
    if let Some(data) = &cfg.ignition {
        let oem = part(parts, OEM_PARTITION)?;
        add_file(dev, oem.offset(), oem.len(), IGNITION, data, secret)
            .with_context(|| format!("writing {IGNITION} to OEM (partition {OEM_PARTITION})"))?;
        done.push(format!("Ignition config -> OEM:{IGNITION}"));
    }
    if let Some(id) = oem_id {
        let oem = part(parts, OEM_PARTITION)?;
        let text = format!("# Written by coreos-install -o {id}: no OEM-specific image was published.\nset oem_id=\"{id}\"\n");
        add_file(
            dev,
            oem.offset(),
            oem.len(),
            OEM_GRUB_CFG,
            text.as_bytes(),
            public,
        )
        .with_context(|| format!("writing {OEM_GRUB_CFG} to OEM (partition {OEM_PARTITION})"))?;
        done.push(format!("oem_id={id} -> OEM:{OEM_GRUB_CFG}"));
    }
    Ok(done)
}
