//! What becomes of the USR tree's owners and extended attributes. A tree unpacked by an
//! unprivileged user (`dpkg-deb -x`, `tar`, a rootless container export) is owned by that
//! user, setuid binaries included: `--all-root` and `--owners FILE` make the image say what
//! the OS means, and a build that uses neither while the tree is not all root's warns. The
//! build host's SELinux labels and `user.*` attributes describe that host, not the OS: they
//! are dropped unless `--keep-xattrs`; file capabilities and ACLs always stay.

use anyhow::{Context, Result};
use ext4::{Ext4Params, Override, WriteReport, XattrPolicy};
use std::path::PathBuf;

/// The command-line form (`image`; `release` can flatten it too).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct UsrArgs {
    /// Owners and modes for USR entries: `path uid gid mode` per line, paths inside the USR
    /// tree, octal mode, `-` keeps the tree's value (the manifest `mkfs ext4 --owners` reads).
    #[arg(long, value_name = "FILE")]
    pub owners: Option<PathBuf>,
    /// Every USR entry owned by root (uid 0, gid 0), for a tree unpacked by an unprivileged
    /// user; --owners lines apply on top. Modes (setuid bits included) stay the tree's.
    #[arg(long)]
    pub all_root: bool,
    /// Keep every extended attribute of the USR tree (by default the build host's
    /// security.selinux and user.* attributes are left out; security.capability stays).
    #[arg(long)]
    pub keep_xattrs: bool,
}

impl UsrArgs {
    /// Read the manifest and decide the policy.
    pub fn policy(&self) -> Result<UsrPolicy> {
        let overrides = match &self.owners {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading --owners {}", p.display()))?;
                ext4::manifest::parse(&text).with_context(|| p.display().to_string())?
            }
            None => Vec::new(),
        };
        Ok(UsrPolicy {
            all_root: self.all_root,
            overrides,
            xattrs: if self.keep_xattrs {
                XattrPolicy::KeepAll
            } else {
                XattrPolicy::DropHostLabels
            },
        })
    }
}

/// Owners and attributes of the USR filesystem, as decided.
#[derive(Debug, Clone)]
pub struct UsrPolicy {
    pub all_root: bool,
    pub overrides: Vec<Override>,
    pub xattrs: XattrPolicy,
}

impl Default for UsrPolicy {
    /// The tree's owners, without the build host's labels.
    fn default() -> Self {
        UsrPolicy {
            all_root: false,
            overrides: Vec::new(),
            xattrs: XattrPolicy::DropHostLabels,
        }
    }
}

impl UsrPolicy {
    pub fn apply(&self, prm: &mut Ext4Params) {
        prm.all_root = self.all_root;
        prm.overrides = self.overrides.clone();
        prm.xattrs = self.xattrs;
    }

    /// Warn about a tree that is not root's when nothing said how to own it; say what was
    /// dropped.
    pub fn check(&self, report: &WriteReport) {
        let chosen = self.all_root || !self.overrides.is_empty();
        if let (false, Some((path, uid, gid))) = (chosen, &report.not_root_example) {
            tracing::warn!(
                "{} USR entries are not owned by root, e.g. {} (uid {uid}, gid {gid}): \
                 was the tree unpacked by an unprivileged user? Pass --all-root, or \
                 --owners FILE (lines `path uid gid mode`) to say who owns what",
                report.not_root_owned,
                in_usr(path).display()
            );
        }
        if report.xattrs_dropped > 0 {
            tracing::info!(
                "left out {} security.selinux and user.* attributes of the USR tree \
                 (--keep-xattrs keeps them)",
                report.xattrs_dropped
            );
        }
    }
}

/// A path inside the USR tree as the booted OS names it (the tree's top is `/usr`).
fn in_usr(path: &std::path::Path) -> PathBuf {
    let usr = PathBuf::from("/usr");
    match path.as_os_str().is_empty() {
        true => usr,
        false => usr.join(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_drop_host_labels_and_keep_owners() {
        let p = UsrArgs::default().policy().unwrap();
        assert!(!p.all_root && p.overrides.is_empty());
        assert!(!p.xattrs.keeps(b"security.selinux") && !p.xattrs.keeps(b"user.x"));
        assert!(p.xattrs.keeps(b"security.capability"));
        let keep = UsrArgs {
            keep_xattrs: true,
            ..Default::default()
        };
        assert!(keep.policy().unwrap().xattrs.keeps(b"security.selinux"));
        let missing = UsrArgs {
            owners: Some("/nonexistent/owners".into()),
            ..Default::default()
        };
        let e = format!("{:#}", missing.policy().unwrap_err());
        assert!(e.contains("/nonexistent/owners"), "{e}");
    }

    #[test]
    fn paths_are_named_as_under_usr() {
        assert_eq!(in_usr("".as_ref()), PathBuf::from("/usr"));
        assert_eq!(in_usr("bin/su".as_ref()), PathBuf::from("/usr/bin/su"));
    }
}
