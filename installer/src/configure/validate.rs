//! Checking the cloud-config, Ignition config and network units up front, so a typo is
//! refused before the disk is touched (coreos-install ran `coreos-cloudinit -validate`).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Where networkd's generated units live on the live system (coreos-install `-n`).
pub const NETWORK_UNITS: &str = "/run/systemd/network";

#[derive(Debug, Default)]
pub struct UserConfig {
    pub cloud_config: Option<Vec<u8>>,
    pub ignition: Option<Vec<u8>>,
    /// (file name, contents, mode)
    pub network_units: Vec<(String, Vec<u8>, u32)>,
}

impl UserConfig {
    pub fn load(
        cloud: Option<&Path>,
        ignition: Option<&Path>,
        copy_network: bool,
    ) -> Result<UserConfig> {
        let mut c = UserConfig::default();
        if let Some(p) = cloud {
            let data = std::fs::read(p)
                .with_context(|| format!("cloud config file ({}) cannot be read", p.display()))?;
            check_cloud_config(&data)
                .with_context(|| format!("cloud config file ({}) is not valid", p.display()))?;
            c.cloud_config = Some(data);
        }
        if let Some(p) = ignition {
            let data = std::fs::read(p).with_context(|| {
                format!("Ignition config file ({}) cannot be read", p.display())
            })?;
            check_ignition(&data)
                .with_context(|| format!("Ignition config file ({}) is not valid", p.display()))?;
            c.ignition = Some(data);
        }
        if copy_network {
            c.network_units = network_units(Path::new(NETWORK_UNITS))?;
        }
        Ok(c)
    }
}

/// A cloud-config is YAML whose first line is `#cloud-config`; a script starts with `#!`.
pub fn check_cloud_config(data: &[u8]) -> Result<()> {
    let text = std::str::from_utf8(data).context("not UTF-8 text")?;
    if text.starts_with("#!") {
        return Ok(());
    }
    if !text.starts_with("#cloud-config") {
        bail!("it starts neither with \"#cloud-config\" nor with \"#!\"");
    }
    let docs = yaml_rust2::YamlLoader::load_from_str(text)
        .map_err(|e| anyhow::anyhow!("YAML error: {e}"))?;
    match docs.first() {
        None | Some(yaml_rust2::Yaml::Hash(_)) | Some(yaml_rust2::Yaml::Null) => Ok(()),
        Some(other) => bail!("its top level is not a mapping ({other:?})"),
    }
}

/// An Ignition config is a JSON object (the version inside it is Ignition's to judge).
pub fn check_ignition(data: &[u8]) -> Result<()> {
    let value: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| anyhow::anyhow!("not valid JSON: {e}"))?;
    if !value.is_object() {
        bail!("not a JSON object");
    }
    Ok(())
}

fn network_units(dir: &Path) -> Result<Vec<(String, Vec<u8>, u32)>> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        tracing::warn!(
            "-n: {} does not exist; no network units to copy",
            dir.display()
        );
        return Ok(out);
    };
    let mut paths: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        // Dereferenced, as `cp --dereference`.
        let md = std::fs::metadata(&p).with_context(|| format!("{}", p.display()))?;
        if !md.is_file() {
            continue;
        }
        let data = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        out.push((name, data, md.permissions().mode() & 0o7777));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_configs() {
        assert!(
            check_cloud_config(b"#cloud-config\nssh_authorized_keys:\n  - ssh-ed25519 AAAA\n")
                .is_ok()
        );
        assert!(check_cloud_config(b"#!/bin/sh\necho hi\n").is_ok());
        assert!(check_cloud_config(b"#cloud-config\n").is_ok());
        assert!(check_cloud_config(b"ssh_authorized_keys: []\n").is_err());
        assert!(check_cloud_config(b"#cloud-config\nkey: [unclosed\n").is_err());
        assert!(check_cloud_config(b"#cloud-config\n- a list\n").is_err());
    }

    #[test]
    fn ignition_configs() {
        assert!(check_ignition(b"{\"ignition\":{\"version\":\"3.0.0\"}}").is_ok());
        let e = format!("{:#}", check_ignition(b"{not json").unwrap_err());
        assert!(e.contains("JSON"), "{e}");
        assert!(check_ignition(b"[1, 2]").is_err());
    }
}
