//! `coreos-build keygen`: a new OpenPGP signing key pair for releases, as armored files gpg
//! imports: `signing-key.asc` (secret, mode 0600) and `signing-key.pub.asc`; and a new RSA-2048
//! update payload key pair (kept apart from the release key, as CoreOS did):
//! `update-payload-key.pem` (PKCS#8, mode 0600) and `update-payload-key.pub.pem` (SPKI, what
//! update_engine's `update-payload-key.pub.pem` and ue-rs read).

use crate::atomic_output::Pending;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  coreos-build keygen --output key/ --uid \"Release Team <release@example.com>\"")]
pub struct Args {
    /// Folder for signing-key.asc, signing-key.pub.asc, update-payload-key.pem and
    /// update-payload-key.pub.pem (created if missing).
    #[arg(long)]
    output: PathBuf,
    /// User id of the key.
    #[arg(long, default_value = "CoreOS Release Signing <release@localhost>")]
    uid: String,
}

pub fn run(args: Args) -> Result<()> {
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let secret_path = args.output.join("signing-key.asc");
    let public_path = args.output.join("signing-key.pub.asc");
    let payload_secret_path = args.output.join("update-payload-key.pem");
    let payload_public_path = args.output.join("update-payload-key.pub.pem");
    for p in [
        &secret_path,
        &public_path,
        &payload_secret_path,
        &payload_public_path,
    ] {
        if p.exists() {
            bail!("{} exists; refusing to overwrite a key", p.display());
        }
    }
    let (secret, public) = keys::generate(&args.uid)?;
    write_new(&public_path, public.as_bytes(), 0o644)?;
    write_new(&secret_path, secret.as_bytes(), 0o600)?;
    let key = keys::SecretKey::from_armored(secret.as_bytes())?;
    let payload_key = keys::PayloadSigningKey::generate()?;
    write_new(
        &payload_public_path,
        payload_key.public_key().to_pem()?.as_bytes(),
        0o644,
    )?;
    write_new(
        &payload_secret_path,
        payload_key.to_pkcs8_pem()?.as_bytes(),
        0o600,
    )?;
    println!("{}", key.fingerprint());
    tracing::info!(
        "wrote {}, {}, {} and {}",
        secret_path.display(),
        public_path.display(),
        payload_secret_path.display(),
        payload_public_path.display()
    );
    Ok(())
}

/// Given its final mode before the first byte is written (the secret key is never readable by
/// others, not even under its temporary name), then renamed.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut out = Pending::create(path)?;
    out.file
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", out.tmp_path().display()))?;
    out.file
        .write_all(bytes)
        .with_context(|| format!("writing {}", out.tmp_path().display()))?;
    out.commit()?;
    Ok(())
}
