//! One-core decompression for gzip, xz, zstd and raw images: read the decoder in 1 MiB pieces,
//! turning all-zero pieces into zero runs. gzip members (flate2's multi-member decoder) and zstd
//! frames and skippable frames (`zstd_frames`, as pzstd writes them) may be concatenated; xz is
//! one stream (which `xz -T` and pixz fill with many blocks), as lzma-rs reads it: it refuses
//! anything after the stream's footer.

use super::zstd_frames::ZstdFrames;
use super::{all_zero, Compressed, Format, Piece, PieceStream};
use anyhow::{anyhow, Context, Result};
use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

const PIECE: usize = 1 << 20;

// One decoder per install: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Decoder {
    Raw(Compressed),
    Gzip(flate2::bufread::MultiGzDecoder<Compressed>),
    Zstd(Box<ZstdFrames>),
    /// lzma-rs has only a push API for xz, so it runs on a thread of its own that owns the
    /// source and hands it back when done.
    Xz(XzThread),
    Bzip2(bzip2::bufread::MultiBzDecoder<Compressed>),
}

pub struct Sequential {
    decoder: Decoder,
    what: String,
    out_pos: u64,
}

impl Sequential {
    pub fn new(format: Format, src: Compressed, what: &str) -> Result<Self> {
        let decoder = match format {
            Format::Raw => Decoder::Raw(src),
            Format::Gzip => Decoder::Gzip(flate2::bufread::MultiGzDecoder::new(src)),
            Format::Zstd => Decoder::Zstd(Box::new(ZstdFrames::new(src))),
            Format::Xz => Decoder::Xz(XzThread::spawn(src)),
            Format::Bzip2 => Decoder::Bzip2(bzip2::bufread::MultiBzDecoder::new(src)),
        };
        Ok(Sequential {
            decoder,
            what: what.to_string(),
            out_pos: 0,
        })
    }
}

impl Read for Decoder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Raw(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
            Decoder::Xz(r) => r.read(buf),
            Decoder::Bzip2(r) => r.read(buf),
        }
    }
}

/// Read up to 1 MiB of decompressed image from `r`: `None` at its end, zero runs as `Zeros`.
pub fn read_piece(r: &mut impl Read, what: &str, out_pos: &mut u64) -> Result<Option<Piece>> {
    let mut buf = vec![0u8; PIECE];
    let mut n = 0;
    while n < PIECE {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "{what}: cannot decompress (after {} image bytes)",
                        *out_pos + n as u64
                    )
                })
            }
        }
    }
    if n == 0 {
        return Ok(None);
    }
    *out_pos += n as u64;
    buf.truncate(n);
    Ok(Some(if all_zero(&buf) {
        Piece::Zeros(n as u64)
    } else {
        Piece::Data(buf)
    }))
}

impl PieceStream for Sequential {
    fn next_piece(&mut self) -> Result<Option<Piece>> {
        read_piece(&mut self.decoder, &self.what, &mut self.out_pos)
    }

    fn into_source(self: Box<Self>) -> Compressed {
        match self.decoder {
            Decoder::Raw(r) => r,
            Decoder::Gzip(r) => r.into_inner(),
            Decoder::Zstd(r) => r.into_inner(),
            Decoder::Xz(r) => r.join(),
            Decoder::Bzip2(r) => r.into_inner(),
        }
    }
}

/// Runs `lzma_rs::xz_decompress` on its own thread, streaming output through a bounded channel.
struct XzThread {
    rx: Receiver<Vec<u8>>,
    cur: io::Cursor<Vec<u8>>,
    handle: Option<JoinHandle<(Compressed, Result<()>)>>,
    /// The source, once the thread ended.
    done: Option<Compressed>,
}

struct ChannelWriter(SyncSender<Vec<u8>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "reader gone"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl XzThread {
    fn spawn(mut src: Compressed) -> Self {
        let (tx, rx) = sync_channel(8);
        let handle = std::thread::spawn(move || {
            let mut w = io::BufWriter::with_capacity(PIECE, ChannelWriter(tx));
            let r = lzma_rs::xz_decompress(&mut src, &mut w).map_err(|e| anyhow!("xz: {e}"));
            let r = r.and_then(|_| w.flush().map_err(|e| anyhow!("xz: {e}")));
            (src, r)
        });
        XzThread {
            rx,
            cur: io::Cursor::new(Vec::new()),
            handle: Some(handle),
            done: None,
        }
    }

    fn join(mut self) -> Compressed {
        match self.done.take() {
            Some(src) => src,
            None => {
                self.handle
                    .take()
                    .expect("joined once")
                    .join()
                    .expect("xz thread panicked")
                    .0
            }
        }
    }
}

impl Read for XzThread {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.cur.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            match self.rx.recv() {
                Ok(v) => self.cur = io::Cursor::new(v),
                Err(_) => {
                    // Sender gone: the thread ended; keep its source, surface its error.
                    if let Some(h) = self.handle.take() {
                        let (src, r) = h
                            .join()
                            .map_err(|_| io::Error::other("xz thread panicked"))?;
                        self.done = Some(src);
                        r.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                    }
                    return Ok(0);
                }
            }
        }
    }
}

impl Drop for XzThread {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            // Unblock the writer, then wait, so no thread outlives the install.
            let (_, rx) = sync_channel::<Vec<u8>>(0);
            drop(std::mem::replace(&mut self.rx, rx));
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::decompress::{decompress_all, Piece};

    fn decode(bytes: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        decompress_all(
            std::io::Cursor::new(bytes),
            "image.gz",
            1 << 30,
            |p| match p {
                Piece::Data(d) => out.extend(d),
                Piece::Zeros(n) => out.resize(out.len() + n as usize, 0),
            },
        )?;
        Ok(out)
    }

    #[test]
    fn gzip_members() {
        use std::io::Write;
        let gz = |d: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(d).unwrap();
            e.finish().unwrap()
        };
        let (a, b) = (b"member one".repeat(100), b"member two".repeat(100));
        let out = decode([gz(&a), gz(&b)].concat()).unwrap();
        assert_eq!(out, [&a[..], &b[..]].concat());
    }
}
