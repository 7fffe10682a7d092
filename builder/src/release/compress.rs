//! Parallel bzip2 of a sparse raw image: fixed-size chunks, each an independent standard
//! bzip2 stream at level 9 (`bzip2enc`), concatenated in order. Any bunzip2 or lbzip2 reads the result,
//! and the installer can split it at chunk boundaries to decompress in parallel.
//!
//! Holes are never read (SEEK_DATA), every all-zero chunk is the same cached encoding, and a
//! `ChunkCache` lets later images (the per-OEM copies) reuse the compressed bytes of chunks they
//! share with an earlier one instead of compressing them again. A [`Splice`] goes further: a
//! range already compressed elsewhere (USR-A, by the update payload, in 1 MiB streams) is
//! copied into the output instead of being compressed a second time. Release time is bzip2
//! time, and USR-A is nearly all of the image's data.

use super::sums::Sums;
use crate::atomic_output::Pending;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};

/// Bytes of raw image per bzip2 stream. 8 MiB is a whole number of 4 KiB blocks, spans about
/// nine 900 kB bzip2 blocks so the per-stream overhead (header, end marker, one short last
/// block) stays near 0.1%, and gives a 4.5 GB image ~540 streams: enough to keep two (or many)
/// decompressing cores busy, few enough that the zero-chunk cache covers large holes.
pub const CHUNK: u64 = 8 << 20;

/// Chunks read but not yet written; bounds memory to about this many × 2 × CHUNK.
const IN_FLIGHT_PER_WORKER: usize = 3;

/// Where an already-compressed chunk's bytes live (an earlier output file, still open).
#[derive(Clone)]
struct Stored {
    file: Arc<File>,
    offset: u64,
    len: u64,
}

/// Standard bzip2 streams, made elsewhere, of `raw` of the image `source`: stream `i` is bytes
/// `raw.start + i * piece ..` (the last may be short). An image other than `source` gets a
/// stream only for a piece that holds the same bytes as `source` there (compared, not assumed:
/// an OEM copy or a VM image differs elsewhere, and a piece that differs is compressed afresh).
pub struct Splice {
    pub source: Arc<File>,
    pub raw: Range<u64>,
    pub piece: u64,
    /// The file holding the streams back to back, from offset 0.
    pub file: Arc<File>,
    pub stream_lens: Vec<u64>,
}

impl Splice {
    /// Each stream's place in `file` and the raw bytes it decodes to, or why they don't
    /// tile `raw`.
    fn pieces(&self) -> Result<Vec<(Range<u64>, Stored)>> {
        let len = self.raw.end - self.raw.start;
        anyhow::ensure!(
            self.piece > 0 && self.stream_lens.len() as u64 == len.div_ceil(self.piece),
            "{} compressed streams cannot cover bytes {}..{} in {}-byte pieces",
            self.stream_lens.len(),
            self.raw.start,
            self.raw.end,
            self.piece
        );
        let mut offset = 0;
        let mut out = Vec::with_capacity(self.stream_lens.len());
        for (i, &n) in self.stream_lens.iter().enumerate() {
            let start = self.raw.start + i as u64 * self.piece;
            let raw = start..(start + self.piece).min(self.raw.end);
            out.push((
                raw,
                Stored {
                    file: Arc::clone(&self.file),
                    offset,
                    len: n,
                },
            ));
            offset += n;
        }
        Ok(out)
    }
}

/// Compressed chunks by the SHA-256 of their raw content, shared across images of one release.
#[derive(Default)]
pub struct ChunkCache {
    chunks: Mutex<HashMap<[u8; 32], Stored>>,
    zero: OnceLock<Vec<u8>>,
    splice: Option<Splice>,
}

impl ChunkCache {
    /// A cache that copies `splice`'s streams wherever an image holds the bytes they decode to.
    pub fn with_splice(splice: Splice) -> ChunkCache {
        ChunkCache {
            splice: Some(splice),
            ..ChunkCache::default()
        }
    }

    fn zero_stream(&self) -> &[u8] {
        self.zero
            .get_or_init(|| bzip2enc::compress(&vec![0u8; CHUNK as usize]))
    }
}

/// The finished `.bz2` (renamed to its final name) and the digests of its bytes.
pub struct Compressed {
    pub path: PathBuf,
    pub len: u64,
    pub md5: [u8; 16],
    pub sha1: [u8; 20],
    pub sha512: [u8; 64],
    /// Binary detached signature over the compressed bytes, when a key was given.
    pub signature: Option<Vec<u8>>,
    pub chunks: u64,
    pub reused: u64,
    /// Chunks copied from the cache's [`Splice`].
    pub spliced: u64,
}

/// One stream of the output: the raw bytes it decodes to and, when spliced, where it is.
struct Planned {
    raw: Range<u64>,
    spliced: Option<Stored>,
}

/// The output's streams: `CHUNK`-sized pieces up to the splice, its streams, then `CHUNK`-sized
/// pieces again from its end (so OEM copies of one image cut the same chunks and share them).
fn plan(size: u64, splice: Option<&Splice>) -> Result<Vec<Planned>> {
    let mut out = Vec::new();
    let cut = |out: &mut Vec<Planned>, from: u64, to: u64| {
        let mut pos = from;
        while pos < to {
            let end = (pos + CHUNK).min(to);
            out.push(Planned {
                raw: pos..end,
                spliced: None,
            });
            pos = end;
        }
    };
    match splice {
        Some(s) if s.raw.end <= size && s.raw.start < s.raw.end => {
            cut(&mut out, 0, s.raw.start);
            for (raw, stored) in s.pieces()? {
                out.push(Planned {
                    raw,
                    spliced: Some(stored),
                });
            }
            cut(&mut out, s.raw.end, size);
        }
        _ => cut(&mut out, 0, size),
    }
    Ok(out)
}

enum Work {
    /// Wholly in a hole: nothing to read or compress.
    Hole,
    Data(Vec<u8>),
    Spliced(Stored),
    /// A spliced piece of an image other than the splice's source, read to be compared.
    Compare {
        ours: Vec<u8>,
        at: u64,
        stored: Stored,
    },
}

enum Done {
    Zero,
    Cached(Stored),
    Spliced(Stored),
    Fresh {
        hash: Option<[u8; 32]>,
        bytes: Vec<u8>,
    },
}

/// Compress `image` into `out` (under a temporary name until complete), signing as it writes.
pub fn compress(
    image: &Path,
    out: &Path,
    cache: &ChunkCache,
    signer: Option<keys::DetachedSigner>,
    progress: &indicatif::ProgressBar,
) -> Result<Compressed> {
    let src =
        File::open(image).with_context(|| format!("opening raw image {}", image.display()))?;
    let size = src.metadata()?.len();
    let ranges = disk::sparse::data_ranges(&src)
        .with_context(|| format!("finding data in {}", image.display()))?;
    let plan = plan(size, cache.splice.as_ref())?;
    // The image the streams were made from needs no comparison with itself.
    let compare = cache
        .splice
        .as_ref()
        .is_some_and(|sp| !same_file(&src, &sp.source));
    progress.set_length(size);

    let pending = Pending::create(out)?;
    // Shared with the chunk cache, which reads reused streams back from this file later.
    let dst = Arc::new(pending.file.try_clone()?);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);

    let result = std::thread::scope(|s| -> Result<Compressed> {
        let (work_tx, work_rx) = sync_channel::<(u64, Work)>(workers);
        let work_rx = Arc::new(Mutex::new(work_rx));
        let (done_tx, done_rx) =
            sync_channel::<(u64, Result<Done>)>(workers * IN_FLIGHT_PER_WORKER);
        // Tokens bound the chunks between reading and writing, whatever order workers finish in.
        let (token_tx, token_rx) = sync_channel::<()>(workers * IN_FLIGHT_PER_WORKER);
        for _ in 0..workers * IN_FLIGHT_PER_WORKER {
            token_tx.send(()).expect("fresh channel");
        }
        for _ in 0..workers {
            let rx = Arc::clone(&work_rx);
            let tx = done_tx.clone();
            s.spawn(move || worker(&rx, &tx, cache));
        }
        drop(done_tx);
        let writer = {
            let dst = Arc::clone(&dst);
            let plan = &plan;
            s.spawn(move || write_in_order(&dst, done_rx, token_tx, plan, cache, signer, progress))
        };
        let read = read_chunks(&src, &plan, &ranges, compare, &work_tx, &token_rx, image);
        drop(work_tx);
        let written = writer.join().expect("writer thread panicked");
        read?;
        written
    });
    // On error `pending` drops and takes the half-written stream with it.
    let result = result?;
    Ok(Compressed {
        path: pending.commit()?,
        ..result
    })
}

fn same_file(a: &File, b: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (a.metadata(), b.metadata()) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Reads each chunk's data ranges (holes stay zero in the buffer and are never read). A
/// spliced chunk is not read when the image is the splice's source; otherwise it is read and
/// compared with the source, and compressed afresh where it differs.
fn read_chunks(
    src: &File,
    plan: &[Planned],
    ranges: &[Range<u64>],
    compare: bool,
    tx: &SyncSender<(u64, Work)>,
    tokens: &Receiver<()>,
    image: &Path,
) -> Result<()> {
    let mut r = 0;
    for (index, chunk) in plan.iter().enumerate() {
        let index = index as u64;
        if tokens.recv().is_err() {
            return Ok(()); // the writer stopped early; it reports why
        }
        let (start, end) = (chunk.raw.start, chunk.raw.end);
        if let (Some(stored), false) = (&chunk.spliced, compare) {
            if tx.send((index, Work::Spliced(stored.clone()))).is_err() {
                return Ok(());
            }
            continue;
        }
        while r < ranges.len() && ranges[r].end <= start {
            r += 1;
        }
        let overlapping: Vec<Range<u64>> = ranges[r..]
            .iter()
            .take_while(|x| x.start < end)
            .map(|x| x.start.max(start)..x.end.min(end))
            .collect();
        let mut work = if overlapping.is_empty() && end - start == CHUNK {
            Work::Hole
        } else {
            let mut buf = vec![0u8; (end - start) as usize];
            for x in overlapping {
                src.read_exact_at(
                    &mut buf[(x.start - start) as usize..(x.end - start) as usize],
                    x.start,
                )
                .with_context(|| {
                    format!(
                        "reading bytes {}..{} of {}",
                        x.start,
                        x.end,
                        image.display()
                    )
                })?;
            }
            Work::Data(buf)
        };
        // The workers compare (on every core) and compress afresh a piece that differs.
        if let (Some(stored), Work::Data(ours)) = (&chunk.spliced, &mut work) {
            work = Work::Compare {
                ours: std::mem::take(ours),
                at: start,
                stored: stored.clone(),
            };
        }
        if tx.send((index, work)).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

fn worker(
    rx: &Mutex<Receiver<(u64, Work)>>,
    tx: &SyncSender<(u64, Result<Done>)>,
    cache: &ChunkCache,
) {
    let mut theirs = Vec::new();
    loop {
        let next = rx.lock().expect("work queue lock").recv();
        let Ok((index, work)) = next else { return };
        let done = match work {
            Work::Hole => Ok(Done::Zero),
            Work::Spliced(stored) => Ok(Done::Spliced(stored)),
            Work::Compare { ours, at, stored } => same_as_source(cache, &ours, at, &mut theirs)
                .map(|same| {
                    if same {
                        Done::Spliced(stored)
                    } else {
                        fresh_or_cached(ours, cache)
                    }
                }),
            Work::Data(buf) => Ok(fresh_or_cached(buf, cache)),
        };
        if tx.send((index, done)).is_err() {
            return;
        }
    }
}

/// Whether `ours`, at byte `at` of an image, holds what the splice's source holds there.
fn same_as_source(cache: &ChunkCache, ours: &[u8], at: u64, theirs: &mut Vec<u8>) -> Result<bool> {
    let source = &cache
        .splice
        .as_ref()
        .expect("compared only with a splice")
        .source;
    theirs.resize(ours.len(), 0);
    source.read_exact_at(theirs, at).with_context(|| {
        format!(
            "reading bytes {at}..{} of the spliced image",
            at + ours.len() as u64
        )
    })?;
    Ok(ours == &theirs[..])
}

/// A chunk that must be compressed, unless it is all zeros or an earlier image had it.
fn fresh_or_cached(buf: Vec<u8>, cache: &ChunkCache) -> Done {
    if buf.len() as u64 == CHUNK && buf.iter().all(|&b| b == 0) {
        return Done::Zero;
    }
    let hash: [u8; 32] = Sha256::digest(&buf).into();
    let hit = cache.chunks.lock().expect("cache lock").get(&hash).cloned();
    match hit {
        Some(stored) => Done::Cached(stored),
        None => Done::Fresh {
            hash: Some(hash),
            bytes: bzip2enc::compress(&buf),
        },
    }
}

fn write_in_order(
    dst: &Arc<File>,
    rx: Receiver<(u64, Result<Done>)>,
    tokens: SyncSender<()>,
    plan: &[Planned],
    cache: &ChunkCache,
    signer: Option<keys::DetachedSigner>,
    progress: &indicatif::ProgressBar,
) -> Result<Compressed> {
    let mut sums = Sums::new(signer);
    let mut pending = BTreeMap::new();
    let nchunks = plan.len() as u64;
    let mut next = 0u64;
    let mut offset = 0u64;
    let (mut reused, mut spliced) = (0u64, 0u64);
    let mut copy_buf = Vec::new();
    let read_stored = |stored: &Stored, buf: &mut Vec<u8>| -> Result<()> {
        buf.resize(stored.len as usize, 0);
        stored
            .file
            .read_exact_at(buf, stored.offset)
            .with_context(|| {
                format!(
                    "reading compressed bytes {}..{} back",
                    stored.offset,
                    stored.offset + stored.len
                )
            })
    };
    while next < nchunks {
        let Ok((index, done)) = rx.recv() else {
            anyhow::bail!("compression stopped after {next} of {nchunks} chunks");
        };
        pending.insert(index, done?);
        while let Some(done) = pending.remove(&next) {
            let (bytes, hash): (&[u8], _) = match &done {
                Done::Zero => (cache.zero_stream(), None),
                Done::Cached(stored) => {
                    reused += 1;
                    read_stored(stored, &mut copy_buf)?;
                    (&copy_buf[..], None)
                }
                Done::Spliced(stored) => {
                    spliced += 1;
                    read_stored(stored, &mut copy_buf)?;
                    (&copy_buf[..], None)
                }
                Done::Fresh { hash, bytes } => (&bytes[..], *hash),
            };
            dst.write_all_at(bytes, offset)
                .context("writing the compressed image")?;
            sums.update(bytes);
            if let Some(hash) = hash {
                let stored = Stored {
                    file: Arc::clone(dst),
                    offset,
                    len: bytes.len() as u64,
                };
                cache
                    .chunks
                    .lock()
                    .expect("cache lock")
                    .entry(hash)
                    .or_insert(stored);
            }
            offset += bytes.len() as u64;
            let raw = &plan[next as usize].raw;
            progress.inc(raw.end - raw.start);
            next += 1;
            let _ = tokens.send(());
        }
    }
    let sums = sums.finish()?;
    Ok(Compressed {
        path: PathBuf::new(),
        len: offset,
        md5: sums.md5,
        sha1: sums.sha1,
        sha512: sums.sha512,
        signature: sums.signature,
        chunks: nchunks,
        reused,
        spliced,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bzip2::read::MultiBzDecoder;
    use sha2::Sha512;
    use std::io::Read;

    fn image(dir: &Path, name: &str, size: u64, writes: &[(u64, Vec<u8>)]) -> PathBuf {
        let p = dir.join(name);
        let f = File::create(&p).unwrap();
        f.set_len(size).unwrap();
        for (off, data) in writes {
            f.write_all_at(data, *off).unwrap();
        }
        p
    }

    fn text(n: usize, seed: u32) -> Vec<u8> {
        (0..n as u32)
            .map(|i| b"the quick brown fox "[((i / 7 + seed) % 20) as usize] ^ (i % 3) as u8)
            .collect()
    }

    #[test]
    fn round_trips_and_reuses_zero_and_cached_chunks() {
        let d = tempfile::tempdir().unwrap();
        let size = 5 * CHUNK + 12345;
        let writes = vec![
            (100, text(300_000, 1)),
            (3 * CHUNK - 10, text(20, 2)),
            (5 * CHUNK + 1, text(10_000, 3)),
        ];
        let a = image(d.path(), "a.bin", size, &writes);
        let cache = ChunkCache::default();
        let pb = indicatif::ProgressBar::hidden();
        let ca = compress(&a, &d.path().join("a.bin.bz2"), &cache, None, &pb).unwrap();
        let mut out = Vec::new();
        MultiBzDecoder::new(File::open(&ca.path).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, std::fs::read(&a).unwrap());
        assert_eq!(ca.chunks, 6);
        assert_eq!(ca.len, std::fs::metadata(&ca.path).unwrap().len());
        assert_eq!(
            <[u8; 64]>::from(Sha512::digest(std::fs::read(&ca.path).unwrap())),
            ca.sha512
        );

        // Same image but the last chunk changed: all other data chunks come from the cache.
        let mut writes_b = writes.clone();
        writes_b[2].1[0] ^= 0xff;
        let b = image(d.path(), "b.bin", size, &writes_b);
        let cb = compress(&b, &d.path().join("b.bin.bz2"), &cache, None, &pb).unwrap();
        assert_eq!(cb.reused, 3, "chunks 0, 2 and 3 reused; 5 changed");
        let mut out = Vec::new();
        MultiBzDecoder::new(File::open(&cb.path).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, std::fs::read(&b).unwrap());
        assert!(!d.path().join(".b.bin.bz2.partial").exists());
    }

    /// Streams for `raw` of `image` in `piece`-sized bzip2 streams, as the payload makes them.
    fn splice_of(dir: &Path, image: &Path, raw: Range<u64>, piece: u64) -> Splice {
        let data = std::fs::read(image).unwrap();
        let path = dir.join("streams.bz2");
        let mut all = Vec::new();
        let mut stream_lens = Vec::new();
        let mut pos = raw.start;
        while pos < raw.end {
            let end = (pos + piece).min(raw.end);
            let z = bzip2enc::compress(&data[pos as usize..end as usize]);
            stream_lens.push(z.len() as u64);
            all.extend_from_slice(&z);
            pos = end;
        }
        std::fs::write(&path, &all).unwrap();
        Splice {
            source: Arc::new(File::open(image).unwrap()),
            raw,
            piece,
            file: Arc::new(File::open(&path).unwrap()),
            stream_lens,
        }
    }

    #[test]
    fn a_spliced_range_is_copied_not_compressed_and_the_whole_still_decodes() {
        let d = tempfile::tempdir().unwrap();
        let mib = 1 << 20;
        // The range starts mid-chunk (at 9 MiB) and ends with a short stream, as USR-A need not
        // sit on an 8 MiB boundary; data lies before, inside, across both ends and after it.
        let size = 3 * CHUNK + 4096;
        let raw = 9 * mib..9 * mib + 5 * mib + 8192;
        let writes = vec![
            (100, text(50_000, 1)),
            (raw.start - 10, text(30, 2)),
            (raw.start + 3 * mib, text(200_000, 3)),
            (raw.end - 5, text(40, 4)),
            (size - 4000, text(4000, 5)),
        ];
        let a = image(d.path(), "a.bin", size, &writes);
        let splice = splice_of(d.path(), &a, raw.clone(), mib);
        let spliced_bytes: u64 = splice.stream_lens.iter().sum();
        let cache = ChunkCache::with_splice(splice);
        let pb = indicatif::ProgressBar::hidden();
        let c = compress(&a, &d.path().join("a.bin.bz2"), &cache, None, &pb).unwrap();
        assert_eq!(c.spliced, 6, "five whole MiB and one short stream");
        assert_eq!(
            c.chunks,
            2 + 6 + 2,
            "0..8, 8..9 MiB; the splice; then from its end"
        );
        assert_eq!(
            pb.position(),
            size,
            "progress counts raw bytes, spliced ones included"
        );
        let bytes = std::fs::read(&c.path).unwrap();
        let mut out = Vec::new();
        MultiBzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .unwrap();
        assert!(out == std::fs::read(&a).unwrap());
        let streams = std::fs::read(d.path().join("streams.bz2")).unwrap();
        assert_eq!(spliced_bytes, streams.len() as u64);
        assert!(
            bytes.windows(streams.len()).any(|w| w == &streams[..]),
            "the spliced streams appear verbatim"
        );

        // Another image (an OEM copy) with one byte changed inside the range: that piece is
        // compressed afresh, the other five are spliced, and it decodes to itself.
        let mut writes_b = writes.clone();
        writes_b[2].1[5] ^= 0xff;
        let b = image(d.path(), "b.bin", size, &writes_b);
        let cb = compress(&b, &d.path().join("b.bin.bz2"), &cache, None, &pb).unwrap();
        assert_eq!(cb.spliced, 5);
        let mut out = Vec::new();
        MultiBzDecoder::new(File::open(&cb.path).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        assert!(out == std::fs::read(&b).unwrap());
    }

    #[test]
    fn streams_that_do_not_tile_their_range_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let a = image(d.path(), "a.bin", CHUNK, &[(0, text(10, 1))]);
        let mut splice = splice_of(d.path(), &a, 0..3 << 20, 1 << 20);
        splice.stream_lens.pop();
        let cache = ChunkCache::with_splice(splice);
        let pb = indicatif::ProgressBar::hidden();
        let Err(e) = compress(&a, &d.path().join("a.bin.bz2"), &cache, None, &pb) else {
            panic!("a splice with a stream missing was accepted");
        };
        assert!(format!("{e:#}").contains("2 compressed streams cannot cover bytes 0..3145728"));
        assert!(!d.path().join("a.bin.bz2").exists());
    }
}
