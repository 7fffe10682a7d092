//! `-D DIR`: fetch the image and its signature into a folder, verified while downloading;
//! written under `.partial` names and renamed only when complete and verified.

use crate::cli::Args;
use crate::install::{http_client, key_ring};
use crate::signature::StreamVerifier;
use anyhow::{bail, Context, Result};
use fetch::mirror;
use fetch::ResumingReader;
use std::io::{Read, Write};

pub fn run(args: &Args) -> Result<()> {
    let dir = args.download_only.as_ref().expect("-D given");
    let base = args.base_url()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ring = key_ring(args)?;
    let http = http_client(args)?;
    let version = mirror::resolve_version(&http, &base, &args.version)?;
    let name = match &args.oem {
        Some(oem) => mirror::oem_image_name(oem),
        None => mirror::IMAGE_NAME.to_string(),
    };
    let url = format!("{base}/{version}/{name}");
    let sig_url = format!("{url}.sig");
    let sig = http.get_optional(&sig_url)?;
    let mut verifier = match (&sig, &ring) {
        (Some(s), Some(r)) => Some(
            StreamVerifier::new(r, s)
                .with_context(|| format!("signature verification failed: {sig_url}"))?,
        ),
        (None, _) if !args.insecure => {
            bail!("Image signature unavailable: {sig_url}: HTTP 404 Not Found")
        }
        _ => None,
    };
    let Some(mut reader) = ResumingReader::open(&http, &url)? else {
        bail!("Image URL unavailable: {url}: HTTP 404 Not Found");
    };
    let final_path = dir.join(&name);
    let partial = dir.join(format!("{name}.partial"));
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?,
    );
    let mut buf = vec![0u8; 1 << 20];
    let result = (|| -> Result<()> {
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            if let Some(v) = verifier.as_mut() {
                v.update(&buf[..n]);
            }
            out.write_all(&buf[..n])?;
        }
        out.flush()?;
        out.get_ref().sync_all()?;
        if let Some(v) = verifier.take() {
            v.finish()
                .with_context(|| format!("signature verification failed for {url}"))?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    if let Some(s) = &sig {
        std::fs::write(dir.join(format!("{name}.sig")), s)?;
    }
    std::fs::rename(&partial, &final_path)?;
    println!(
        "Success! {version} has been downloaded to {}",
        final_path.display()
    );
    Ok(())
}
