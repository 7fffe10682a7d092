//! The payload `apply` reads twice (verify, then write): a local file (`-f`), or
//! `URL/VERSION/coreos_production_update.gz` downloaded into a temporary folder with the
//! installer's resuming HTTP path (`fetch`), VERSION resolved through version.txt.

use crate::cli::ApplyArgs;
use anyhow::{bail, Context, Result};
use fetch::progress::Ui;
use fetch::{mirror, HttpClient, HttpOptions, ResumingReader};
use keys::PayloadPublicKey;
use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;

/// The payload's name on a mirror (the SDK's and Flatcar's).
pub const PAYLOAD_NAME: &str = "coreos_production_update.gz";

pub struct PayloadFile {
    pub path: PathBuf,
    /// The version the payload must be (`-V`, resolved).
    pub expected_version: Option<String>,
    /// Holds a downloaded payload until apply is done.
    _dir: Option<tempfile::TempDir>,
}

/// What `obtain` found: a payload to apply, or (`-V current` only) that the active slot
/// already runs the mirror's current version.
pub enum Obtained {
    Payload(PayloadFile),
    UpToDate(String),
}

/// `running`: the active slot's version. Only `-V current` compares with it ("is there an
/// update?", update_engine's question); an explicit version or `-f` is written as asked.
/// `check` refuses a version before it is downloaded (the signed version is checked again after
/// verification).
pub fn obtain(
    args: &ApplyArgs,
    running: Option<&str>,
    check: &dyn Fn(&str) -> Result<(), crate::policy::Refused>,
    ui: &Ui,
) -> Result<Obtained> {
    if let Some(path) = &args.payload {
        if !path.is_file() {
            bail!("the payload {} is not a file", path.display());
        }
        return Ok(Obtained::Payload(PayloadFile {
            path: path.clone(),
            expected_version: args.version.clone(),
            _dir: None,
        }));
    }
    let base = args
        .base_url
        .as_deref()
        .expect("clap requires -f or -b")
        .trim_end_matches('/');
    let wanted = args.version.as_deref().expect("clap requires -V with -b");
    let http = HttpClient::new(
        concat!("coreos-update/", env!("CARGO_PKG_VERSION")),
        HttpOptions {
            retries: args.retries,
            ..HttpOptions::default()
        },
    )?;
    let version = mirror::resolve_version(&http, base, wanted)?;
    if wanted == "current" && running == Some(version.as_str()) {
        return Ok(Obtained::UpToDate(version));
    }
    check(&version).with_context(|| format!("{base}: version {version} (from its version.txt)"))?;
    let url = format!("{base}/{version}/{PAYLOAD_NAME}");
    let Some(mut reader) = ResumingReader::open(&http, &url)? else {
        bail!("update payload unavailable: {url}: HTTP 404 Not Found");
    };
    let dir = tempfile::Builder::new()
        .prefix("coreos-update.")
        .tempdir()
        .context("creating a temporary folder for the download")?;
    let path = dir.path().join(PAYLOAD_NAME);
    let mut out = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut bar = ui.bar("download", reader.total());
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("downloading {url}"))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .with_context(|| format!("writing {}", path.display()))?;
        got += n as u64;
        bar.set(got);
    }
    bar.finish();
    tracing::info!("downloaded {url} ({got} bytes)");
    Ok(Obtained::Payload(PayloadFile {
        path,
        expected_version: Some(version),
        _dir: Some(dir),
    }))
}

/// Pass 1: the whole payload read and checked (header, manifest, every blob, signature).
pub fn verify(p: &PayloadFile, key: &PayloadPublicKey, ui: &Ui) -> Result<payload::Verified> {
    let f = File::open(&p.path).with_context(|| format!("opening {}", p.path.display()))?;
    let len = f.metadata()?.len();
    let mut bar = ui.bar("verify", Some(len));
    let v = payload::verify_with_progress(f, key, &mut |n| bar.set(n))
        .with_context(|| format!("{} is refused; nothing was written", p.path.display()))?;
    bar.finish();
    Ok(v)
}
