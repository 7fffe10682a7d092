//! What the mirror offers: for each `ROOT/<channel>/<board>/current`, the version it points at
//! and that version's update payload, hashed once (size, base64 SHA-1 and SHA-256, what an
//! Omaha reply carries). A rescan hashes again only a payload whose size or mtime changed.

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use omaha::{Offer, Version};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The payload update_engine downloads (CrAU, despite the name), as `release` writes it.
pub const PAYLOAD: &str = "coreos_production_update.gz";

#[derive(Debug, Clone)]
pub struct Release {
    pub version: Version,
    pub offer: Offer,
    /// What the hashes were computed from: (path, size, mtime).
    stamp: (PathBuf, u64, Option<SystemTime>),
}

/// `(channel, board)` → the channel's current release for that board.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub releases: HashMap<(String, String), Release>,
    /// Channels and boards seen with no usable current release, and why (for the log).
    pub problems: Vec<String>,
}

impl Catalog {
    pub fn get(&self, channel: &str, board: &str) -> Option<&Release> {
        self.releases.get(&(channel.to_string(), board.to_string()))
    }

    /// Scan `root`, reusing `previous`'s hashes where the payload did not change.
    pub fn scan(root: &Path, public_url: &str, previous: Option<&Catalog>) -> Result<Catalog> {
        let mut cat = Catalog::default();
        for channel in subdirs(root)? {
            for board in subdirs(&root.join(&channel))? {
                let dir = root.join(&channel).join(&board);
                if !dir.join("current").exists() {
                    continue;
                }
                let old = previous.and_then(|p| p.get(&channel, &board));
                match release(&dir, &channel, &board, public_url, old) {
                    Ok(r) => {
                        cat.releases.insert((channel.clone(), board.clone()), r);
                    }
                    Err(e) => cat.problems.push(format!("{channel}/{board}: {e:#}")),
                }
            }
        }
        Ok(cat)
    }
}

fn subdirs(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && e.path().is_dir() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

fn release(
    board_dir: &Path,
    channel: &str,
    board: &str,
    public_url: &str,
    old: Option<&Release>,
) -> Result<Release> {
    let target = std::fs::read_link(board_dir.join("current"))
        .context("current is not a symlink to a version folder")?;
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .context("current points nowhere")?
        .to_string();
    let version_dir = board_dir.join(&name);
    let version = Version::parse(&name)?;
    let payload = version_dir.join(PAYLOAD);
    let meta = std::fs::metadata(&payload).with_context(|| {
        format!(
            "{}: no update payload (release --update-key makes it)",
            payload.display()
        )
    })?;
    let stamp = (payload.clone(), meta.len(), meta.modified().ok());
    if meta.len() == 0 {
        bail!("{} is empty", payload.display());
    }
    let (sha1, sha256) = match old.filter(|o| o.stamp == stamp) {
        Some(o) => (o.offer.sha1.clone(), o.offer.sha256.clone()),
        None => hash(&payload)?,
    };
    Ok(Release {
        offer: Offer {
            codebase: format!(
                "{}/{channel}/{board}/{name}/",
                public_url.trim_end_matches('/')
            ),
            name: PAYLOAD.into(),
            version: version.to_string(),
            size: meta.len(),
            sha1,
            sha256,
        },
        version,
        stamp,
    })
}

/// Base64 of the file's SHA-1 and SHA-256, as Omaha carries them.
fn hash(path: &Path) -> Result<(String, String)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (mut s1, mut s256) = (Sha1::new(), Sha256::new());
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        s1.update(&buf[..n]);
        s256.update(&buf[..n]);
    }
    Ok((B64.encode(s1.finalize()), B64.encode(s256.finalize())))
}
