//! OEM partition trees: `oem/<name>/` embedded in the binary, or a folder.

use super::OemSource;
use anyhow::{bail, Context};
use ext4::Override;
use include_dir::{include_dir, Dir, DirEntry};
use std::path::{Path, PathBuf};

static OEM_TREES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../oem");

/// Names of the embedded OEM trees.
pub fn builtin_names() -> Vec<&'static str> {
    OEM_TREES
        .dirs()
        .filter_map(|d| d.path().file_name()?.to_str())
        .collect()
}

impl OemSource {
    /// `NAME` of an embedded tree, or a path to a folder (anything with a `/`, or an
    /// existing folder).
    pub fn parse(s: &str) -> anyhow::Result<OemSource> {
        if builtin_names().contains(&s) {
            Ok(OemSource::Builtin(s.to_string()))
        } else if s.contains('/') || Path::new(s).is_dir() {
            let p = PathBuf::from(s);
            if !p.is_dir() {
                bail!("OEM folder {} does not exist", p.display());
            }
            Ok(OemSource::Dir(p))
        } else {
            bail!(
                "unknown OEM {s:?}: built-in OEMs are {} (or give a folder)",
                builtin_names().join(", ")
            )
        }
    }
}

/// A folder holding the OEM tree, and ownership overrides making every entry root's (the
/// partition is mounted at /usr/share/oem). An embedded tree is written out to `scratch`.
pub fn materialize(src: &OemSource, scratch: &Path) -> anyhow::Result<(PathBuf, Vec<Override>)> {
    let dir = match src {
        OemSource::Dir(p) => p.clone(),
        OemSource::Builtin(name) => {
            let tree = OEM_TREES
                .get_dir(name)
                .with_context(|| format!("unknown OEM {name:?}"))?;
            let out = scratch.join("oem");
            std::fs::create_dir_all(&out)?;
            extract(tree, Path::new(name), &out)?;
            out
        }
    };
    let mut overrides = vec![root_owned(PathBuf::new())];
    collect(&dir, Path::new(""), &mut overrides)?;
    Ok((dir, overrides))
}

fn extract(d: &Dir, base: &Path, out: &Path) -> anyhow::Result<()> {
    for e in d.entries() {
        let rel = e
            .path()
            .strip_prefix(base)
            .expect("entries lie under their folder");
        match e {
            DirEntry::Dir(sub) => {
                std::fs::create_dir_all(out.join(rel))?;
                extract(sub, base, out)?;
            }
            DirEntry::File(f) => std::fs::write(out.join(rel), f.contents())?,
        }
    }
    Ok(())
}

fn root_owned(path: PathBuf) -> Override {
    Override {
        path,
        uid: Some(0),
        gid: Some(0),
        mode: None,
    }
}

fn collect(root: &Path, rel: &Path, out: &mut Vec<Override>) -> anyhow::Result<()> {
    let full = root.join(rel);
    for e in std::fs::read_dir(&full)
        .with_context(|| format!("reading OEM folder {}", full.display()))?
    {
        let e = e?;
        let r = rel.join(e.file_name());
        out.push(root_owned(r.clone()));
        if e.file_type()?.is_dir() {
            collect(root, &r, out)?;
        }
    }
    Ok(())
}

/// A file of an embedded OEM tree.
#[cfg(test)]
pub fn builtin_file(name: &str, file: &str) -> Option<&'static [u8]> {
    OEM_TREES
        .get_file(format!("{name}/{file}"))
        .map(|f| f.contents())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_has_grub_cfg_and_release() {
        for name in ["vagrant", "virtualbox", "gce", "ec2", "metal"] {
            let g = std::str::from_utf8(builtin_file(name, "grub.cfg").unwrap()).unwrap();
            assert!(g.contains("set oem_id=\""), "{name}: {g}");
            let r = std::str::from_utf8(builtin_file(name, "oem-release").unwrap()).unwrap();
            assert!(
                r.starts_with("ID=") && r.contains("NAME=") && r.contains("HOME_URL="),
                "{name}: {r}"
            );
        }
        let v = std::str::from_utf8(builtin_file("vagrant", "cloud-config.yml").unwrap()).unwrap();
        assert!(v.contains("ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzIw+niNltGEFHzD8+v1I2YJ6oX"));
        assert!(
            std::str::from_utf8(builtin_file("ec2", "grub.cfg").unwrap())
                .unwrap()
                .contains("modprobe.blacklist=xen_fbfront net.ifnames=0")
        );
    }

    /// Every embedded tree: `oem_id` in grub.cfg, an oem-release; a cloud-config (every cloud
    /// with a metadata source has one) is YAML whose `coreos.oem.id` is the release's `ID`.
    #[test]
    fn every_oem_tree_is_consistent() {
        let text = |name: &str, file: &str| {
            builtin_file(name, file).map(|b| std::str::from_utf8(b).unwrap().to_string())
        };
        let names = builtin_names();
        assert!(names.len() >= 11, "{names:?}");
        for name in names {
            let g = text(name, "grub.cfg").unwrap_or_else(|| panic!("{name}: no grub.cfg"));
            assert!(g.contains("set oem_id=\""), "{name}: {g}");
            let r = text(name, "oem-release").unwrap_or_else(|| panic!("{name}: no oem-release"));
            let id = r.lines().find_map(|l| l.strip_prefix("ID=")).unwrap();
            let Some(cc) = text(name, "cloud-config.yml") else {
                assert!(
                    ![
                        "ec2",
                        "azure",
                        "vmware",
                        "openstack",
                        "digitalocean",
                        "packet"
                    ]
                    .contains(&name),
                    "{name} has a metadata source but no cloud-config.yml"
                );
                continue;
            };
            assert!(cc.starts_with("#cloud-config\n"), "{name}");
            let docs = yaml_rust2::YamlLoader::load_from_str(&cc)
                .unwrap_or_else(|e| panic!("{name}/cloud-config.yml: {e}"));
            assert_eq!(
                docs[0]["coreos"]["oem"]["id"].as_str(),
                Some(id),
                "{name}: coreos.oem.id against oem-release"
            );
        }
    }

    #[test]
    fn materializes_embedded_tree() {
        let d = tempfile::tempdir().unwrap();
        let (dir, ov) = materialize(&OemSource::parse("gce").unwrap(), d.path()).unwrap();
        assert!(dir.join("grub.cfg").is_file() && dir.join("oem-release").is_file());
        assert!(ov.iter().all(|o| o.uid == Some(0) && o.gid == Some(0)));
        assert_eq!(ov.len(), 3);
        assert!(OemSource::parse("nonesuch")
            .unwrap_err()
            .to_string()
            .contains("vagrant"));
    }
}
