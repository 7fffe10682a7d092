//! Opening the image source (mirror URL or local file) with its signature, and running the
//! stages: source -> verifying tee -> sniff -> decompressor -> hold-back writer.

use crate::decompress::{self, Compressed, READ_BUFFER};
use crate::image::HoldBackWriter;
use crate::signature::{KeyRing, StreamVerifier};
use crate::verify::VerifyingTee;
use anyhow::{bail, Context, Result};
use fetch::progress::Ui;
use fetch::{HttpClient, ResumingReader};
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The compressed image, not yet read, with what verifies it.
pub struct ImageSource {
    /// URL or path, for messages.
    pub name: String,
    pub reader: Box<dyn Read + Send>,
    pub len: Option<u64>,
    pub verifier: Option<StreamVerifier>,
}

/// Counts bytes for the download bar (the tee is buried in the decoder by then).
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn verifier_for(
    ring: Option<&KeyRing>,
    sig: Option<Vec<u8>>,
    sig_name: &str,
    insecure: bool,
) -> Result<Option<StreamVerifier>> {
    match (sig, ring) {
        (Some(sig), Some(ring)) => Ok(Some(StreamVerifier::new(ring, &sig).with_context(|| format!("signature verification failed: {sig_name}"))?)),
        (Some(_), None) => Ok(None),
        (None, _) if insecure => {
            tracing::warn!("!!! {sig_name} is missing: installing an UNVERIFIED image because of --insecure !!!");
            Ok(None)
        }
        (None, _) => bail!("Image signature unavailable: {sig_name} (refusing an unsigned image; --insecure overrides)"),
    }
}

/// A mirror URL. `Ok(None)` when the image is absent (404), so `-o` can fall back.
pub fn open_url(
    http: &HttpClient,
    url: &str,
    ring: Option<&KeyRing>,
    insecure: bool,
) -> Result<Option<ImageSource>> {
    let sig_url = format!("{url}.sig");
    let sig = http.get_optional(&sig_url)?;
    let Some(reader) = ResumingReader::open(http, url)? else {
        return Ok(None);
    };
    let verifier = verifier_for(ring, sig, &sig_url, insecure)?;
    let len = reader.total();
    Ok(Some(ImageSource {
        name: url.to_string(),
        reader: Box::new(reader),
        len,
        verifier,
    }))
}

/// A local image; `IMAGE.sig` beside it is used when present.
pub fn open_file(path: &Path, ring: Option<&KeyRing>, insecure: bool) -> Result<ImageSource> {
    let f = std::fs::File::open(path)
        .with_context(|| format!("Could not read image file {}", path.display()))?;
    let len = f.metadata().ok().map(|m| m.len());
    let sig_path = format!("{}.sig", path.display());
    let sig = match std::fs::read(&sig_path) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {sig_path}")),
    };
    let verifier = verifier_for(ring, sig, &sig_path, insecure)?;
    Ok(ImageSource {
        name: path.display().to_string(),
        reader: Box::new(f),
        len,
        verifier,
    })
}

/// Run the stages into `writer`, then finish explicitly: the decompressor at the end of its
/// stream, no trailing data, the signature verified. The body is on the disk then, the
/// partition tables still held back: the caller stages and commits them (`HoldBackWriter`).
pub fn write_image(src: ImageSource, writer: &mut HoldBackWriter<'_>, ui: &Ui) -> Result<()> {
    let downloaded = Arc::new(AtomicU64::new(0));
    let counting: Box<dyn Read + Send> = Box::new(Counting {
        inner: src.reader,
        count: Arc::clone(&downloaded),
    });
    let name = src.name.clone();
    let compressed: Compressed =
        BufReader::with_capacity(READ_BUFFER, VerifyingTee::new(counting, src.verifier));
    let (_format, mut stream) = decompress::open(compressed, &name)?;
    let mut down = ui.bar("download", src.len);
    let mut write = ui.bar("write", None);
    while let Some(piece) = stream.next_piece()? {
        writer.put(piece)?;
        if let Some(size) = writer.image_size() {
            write.set_total_once(size);
        }
        down.set(downloaded.load(Ordering::Relaxed));
        write.set(writer.position());
    }
    let tee = decompress::end_of_stream(stream.into_source(), &name)?;
    // The body goes to disk while nothing partition-table-shaped is there yet.
    writer.flush_body()?;
    tee.finish(&name)?;
    down.set(downloaded.load(Ordering::Relaxed));
    down.finish();
    write.set(writer.position());
    write.finish();
    tracing::info!(
        "{name}: verified; {} bytes written, {} of them as zero ranges",
        writer.position(),
        writer.zeroed()
    );
    Ok(())
}
