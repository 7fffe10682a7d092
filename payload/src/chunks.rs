//! The writer's compression stage, as `delta_generator`'s full update generator does it: the
//! input cut into 1 MiB chunks (`kFullUpdateChunkSize`), each bzip2'd at level 9 (`bzip2enc`) and kept
//! compressed (REPLACE_BZ) when that is smaller, else raw (REPLACE). Chunks are compressed on
//! every core and handed on in input order, so the output does not depend on the thread count.
//! Holes of a sparse image are never read, and every all-zero chunk reuses one encoding.

use crate::plan::OpKind;
use crate::PayloadError;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

/// `kFullUpdateChunkSize`.
pub const CHUNK: u64 = 1 << 20;
const IN_FLIGHT_PER_WORKER: usize = 4;

/// One chunk, compressed or not, ready to become an operation.
pub struct Blob {
    pub kind: OpKind,
    pub bytes: Vec<u8>,
    /// `data_sha256_hash`.
    pub sha256: [u8; 32],
    /// The bzip2 stream of a REPLACE chunk (larger than the chunk; a REPLACE_BZ chunk's
    /// stream is `bytes`), for the partition's `.bz2`.
    larger_bzip2: Option<Vec<u8>>,
}

impl Blob {
    /// The chunk as one bzip2 stream.
    pub fn bzip2_stream(&self) -> &[u8] {
        self.larger_bzip2.as_deref().unwrap_or(&self.bytes)
    }
}

/// A chunk of input as the reader hands it to a worker.
enum Raw {
    /// All zeros (a hole of the image, or read and found zero), of this length.
    Zeros(u64),
    Data(Vec<u8>),
}

/// The chunk's input bytes as the sink sees them (to hash the whole target in order).
pub enum Input {
    Zeros(u64),
    Data(Vec<u8>),
}

/// Where the chunks come from: a byte range of a file (with its data ranges) or memory.
pub enum Source<'a> {
    File {
        file: &'a File,
        range: Range<u64>,
        /// Ranges of `file` that hold data; the rest are holes.
        data: Vec<Range<u64>>,
    },
    Memory(&'a [u8]),
}

impl Source<'_> {
    fn len(&self) -> u64 {
        match self {
            Source::File { range, .. } => range.end - range.start,
            Source::Memory(m) => m.len() as u64,
        }
    }

    /// Chunk `index` (offsets relative to the source).
    fn read(&self, index: u64) -> Result<Raw, PayloadError> {
        let start = index * CHUNK;
        let end = (start + CHUNK).min(self.len());
        match self {
            Source::Memory(m) => Ok(Raw::Data(m[start as usize..end as usize].to_vec())),
            Source::File { file, range, data } => {
                let abs = range.start + start..range.start + end;
                let overlapping: Vec<Range<u64>> = data
                    .iter()
                    .filter(|d| d.start < abs.end && abs.start < d.end)
                    .map(|d| d.start.max(abs.start)..d.end.min(abs.end))
                    .collect();
                if overlapping.is_empty() {
                    return Ok(Raw::Zeros(end - start));
                }
                let mut buf = vec![0u8; (end - start) as usize];
                for d in overlapping {
                    let into = (d.start - abs.start) as usize..(d.end - abs.start) as usize;
                    file.read_exact_at(&mut buf[into], d.start)
                        .map_err(|source| PayloadError::Io {
                            what: format!("reading bytes {}..{} of the image", d.start, d.end),
                            source,
                        })?;
                }
                Ok(Raw::Data(buf))
            }
        }
    }
}

/// The blob of `data`: bzip2 when smaller, else the data itself.
fn blob_of(data: &[u8]) -> Blob {
    let z = bzip2enc::compress(data);
    let (kind, bytes, larger_bzip2) = if z.len() < data.len() {
        (OpKind::ReplaceBz, z, None)
    } else {
        (OpKind::Replace, data.to_vec(), Some(z))
    };
    Blob {
        kind,
        sha256: Sha256::digest(&bytes).into(),
        bytes,
        larger_bzip2,
    }
}

/// The one encoding of a whole chunk of zeros, shared by every such chunk.
fn zero_chunk_blob() -> &'static Blob {
    static ZERO: OnceLock<Blob> = OnceLock::new();
    ZERO.get_or_init(|| blob_of(&vec![0u8; CHUNK as usize]))
}

/// Compress every chunk of `source` on `threads` threads and give `sink` each chunk's input
/// and blob, in order.
pub fn compress(
    source: &Source,
    threads: usize,
    mut sink: impl FnMut(Input, &Blob) -> Result<(), PayloadError>,
) -> Result<(), PayloadError> {
    let n = source.len().div_ceil(CHUNK);
    let items = (0..n).map(|i| source.read(i));
    disk::ordered_map::ordered_map(
        items,
        threads.max(1),
        threads.max(1) * IN_FLIGHT_PER_WORKER,
        || (),
        |_, raw| {
            Ok(match raw {
                Raw::Data(d) if !crate::zeros::is_zero(&d) => {
                    let blob = blob_of(&d);
                    (Input::Data(d), Some(blob))
                }
                Raw::Data(d) => (Input::Zeros(d.len() as u64), None),
                Raw::Zeros(len) => (Input::Zeros(len), None),
            })
        },
        |(input, blob)| match (blob, &input) {
            (Some(b), _) => sink(input, &b),
            (None, Input::Zeros(len)) if *len == CHUNK => sink(input, zero_chunk_blob()),
            (None, Input::Zeros(len)) => {
                let b = blob_of(&vec![0u8; *len as usize]);
                sink(input, &b)
            }
            (None, Input::Data(_)) => unreachable!("data chunks always get a blob"),
        },
    )
}
