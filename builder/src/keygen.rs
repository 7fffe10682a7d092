//! `coreos-build keygen`: a new OpenPGP signing key pair for releases, as armored files gpg
//! imports: `signing-key.asc` (secret, mode 0600) and `signing-key.pub.asc`.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder for signing-key.asc and signing-key.pub.asc (created if missing).
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
    for p in [&secret_path, &public_path] {
        if p.exists() {
            bail!("{} exists; refusing to overwrite a key", p.display());
        }
    }
    let (secret, public) = keys::generate(&args.uid)?;
    write_new(&public_path, public.as_bytes(), 0o644)?;
    write_new(&secret_path, secret.as_bytes(), 0o600)?;
    let key = keys::SecretKey::from_armored(secret.as_bytes())?;
    println!("{}", key.fingerprint());
    tracing::info!(
        "wrote {} and {}",
        secret_path.display(),
        public_path.display()
    );
    Ok(())
}

/// Written to a temp name with its final mode from the start, then renamed.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}
