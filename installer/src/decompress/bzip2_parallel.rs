//! bzip2 on every core: candidate streams go to a pool of workers, results come back in
//! order through a bounded window (memory stays near `WINDOW` x chunk size). A stream whose
//! compressed bytes equal a stream already seen to hold only zeros — the release's repeated
//! all-zero chunk — becomes a zero run without being decompressed.

use super::bzip2_split::{
    decode_stream, is_stream_start_prefix, Segment, Splitter, StreamError, TooLong,
};
use super::sequential::read_piece;
use super::{all_zero, Compressed, Piece, PieceStream};
use anyhow::{anyhow, Result};
use std::collections::VecDeque;
use std::io::Read;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Streams in flight (queued, decoding, or decoded and waiting for the writer). With the
/// release's 8 MiB chunks this bounds memory to about WINDOW x (8 MiB out + compressed in).
/// (3 measured 70 MiB peak RSS in ci/bench install; 2 still keeps both cores decoding while
/// the main thread writes the stream it just took.)
const WINDOW: usize = 2;
/// A "stream" longer than this (compressed) means the file is not chunked: go sequential.
const MAX_SEGMENT: usize = 16 << 20;
/// Only small streams can be the repeated zero chunk (1 MiB of zeros is ~45 bytes).
const MAX_ZERO_STREAM: usize = 64 << 10;

struct Job {
    seg: Segment,
    hint: usize,
    reply: SyncSender<Done>,
}

struct Done {
    seg: Segment,
    out: Result<Vec<u8>, StreamError>,
}

enum Slot {
    Waiting(Receiver<Done>),
    Zeros(u64),
}

pub struct ParallelBzip2<'a> {
    src: Option<Compressed<'a>>,
    what: String,
    splitter: Splitter,
    window: VecDeque<Slot>,
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    /// (compressed bytes, decompressed length) of streams known to hold only zeros.
    zero_streams: Vec<(Vec<u8>, u64)>,
    hint: usize,
    input_done: bool,
    /// Set when the input turned out not to be chunked.
    sequential: Option<OneCore>,
}

impl<'a> ParallelBzip2<'a> {
    pub fn new(src: Compressed<'a>, what: &str) -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 8);
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..cores)
            .map(|_| {
                let rx = Arc::clone(&rx);
                std::thread::spawn(move || loop {
                    let job = { rx.lock().expect("job queue").recv() };
                    let Ok(job) = job else { return };
                    let out = decode_stream(&job.seg.bytes, job.hint);
                    let _ = job.reply.send(Done { seg: job.seg, out });
                })
            })
            .collect();
        ParallelBzip2 {
            src: Some(src),
            what: what.to_string(),
            splitter: Splitter::new(),
            window: VecDeque::new(),
            jobs: Some(tx),
            workers,
            zero_streams: Vec::new(),
            hint: 1 << 20,
            input_done: false,
            sequential: None,
        }
    }

    /// Keep the window full; returns false once the input is exhausted.
    fn fill(&mut self) -> Result<()> {
        while !self.input_done && self.window.len() < WINDOW {
            let src = self.src.as_mut().expect("source present until sequential");
            let seg = match self.splitter.next(src, MAX_SEGMENT) {
                Err(e) => return Err(anyhow!("{}: reading: {e}", self.what)),
                Ok(Err(TooLong)) => {
                    if self.window.is_empty() {
                        self.go_sequential();
                    }
                    self.input_done = true;
                    return Ok(());
                }
                Ok(Ok(None)) => {
                    self.input_done = true;
                    return Ok(());
                }
                Ok(Ok(Some(seg))) => seg,
            };
            if let Some(&(_, len)) = self.zero_streams.iter().find(|(z, _)| *z == seg.bytes) {
                self.window.push_back(Slot::Zeros(len));
                continue;
            }
            let (reply, rx) = sync_channel(1);
            let job = Job {
                seg,
                hint: self.hint,
                reply,
            };
            self.jobs
                .as_ref()
                .expect("pool alive")
                .send(job)
                .map_err(|_| anyhow!("decompression workers died"))?;
            self.window.push_back(Slot::Waiting(rx));
        }
        Ok(())
    }

    /// The file is one long stream: decode it on one core from where the splitter stands.
    fn go_sequential(&mut self) {
        tracing::info!(
            "{}: not a chunked bzip2 file; decompressing on one core",
            self.what
        );
        let (offset, pending) = self.splitter.take_pending();
        self.sequential = Some(OneCore::new(offset, pending));
    }

    fn wait(&self, rx: Receiver<Done>) -> Result<Done> {
        rx.recv()
            .map_err(|_| anyhow!("{}: a decompression worker died", self.what))
    }

    fn error(&self, seg: &Segment, e: StreamError) -> anyhow::Error {
        match e {
            StreamError::Truncated { from } => anyhow!(
                "{}: truncated bzip2 stream starting at compressed byte {} (the file ends inside it)",
                self.what,
                seg.offset + from as u64
            ),
            StreamError::Trailing { at } => anyhow!(
                "{}: trailing data after the compressed stream at byte {}",
                self.what,
                seg.offset + at as u64
            ),
            StreamError::Corrupt(m) => {
                anyhow!(
                    "{}: corrupt bzip2 stream starting at compressed byte {}: {m}",
                    self.what,
                    seg.offset
                )
            }
        }
    }
}

impl<'a> PieceStream<'a> for ParallelBzip2<'a> {
    fn next_piece(&mut self) -> Result<Option<Piece>> {
        if self.sequential.is_none() {
            self.fill()?;
        }
        if let Some(state) = self.sequential.as_mut() {
            let src = self.src.as_mut().expect("source present");
            let mut r = OneCoreReader {
                state,
                src,
                what: &self.what,
            };
            let what = self.what.clone();
            return read_piece(&mut r, &what, &mut 0);
        }
        let Some(slot) = self.window.pop_front() else {
            return Ok(None);
        };
        let rx = match slot {
            Slot::Zeros(n) => return Ok(Some(Piece::Zeros(n))),
            Slot::Waiting(rx) => rx,
        };
        let Done { mut seg, mut out } = self.wait(rx)?;
        // A false split ends a segment inside a stream: join the following segments until
        // the stream decodes (a genuinely truncated file runs out of segments).
        while let Err(StreamError::Truncated { .. }) = out {
            self.fill()?;
            let next = match self.window.pop_front() {
                None => break,
                Some(Slot::Zeros(_)) => break,
                Some(Slot::Waiting(rx)) => self.wait(rx)?.seg,
            };
            tracing::debug!(
                "{}: joining candidate streams at {} and {}",
                self.what,
                seg.offset,
                next.offset
            );
            seg.bytes.extend_from_slice(&next.bytes);
            out = decode_stream(&seg.bytes, self.hint);
        }
        let out = out.map_err(|e| self.error(&seg, e))?;
        self.hint = self.hint.max(out.len());
        if all_zero(&out) {
            if seg.bytes.len() <= MAX_ZERO_STREAM
                && !self.zero_streams.iter().any(|(z, _)| *z == seg.bytes)
            {
                self.zero_streams.push((seg.bytes, out.len() as u64));
            }
            return Ok(Some(Piece::Zeros(out.len() as u64)));
        }
        Ok(Some(Piece::Data(out)))
    }

    fn into_source(mut self: Box<Self>) -> Compressed<'a> {
        self.src.take().expect("source present")
    }
}

/// Sequential multi-stream bzip2 over the bytes the splitter already holds, then the source.
struct OneCore {
    input: Vec<u8>,
    pos: usize,
    decoder: Option<bzip2::Decompress>,
    /// Compressed bytes consumed before `input` (for messages).
    offset: u64,
}

impl OneCore {
    fn new(offset: u64, pending: Vec<u8>) -> Self {
        OneCore {
            input: pending,
            pos: 0,
            decoder: None,
            offset,
        }
    }
}

struct OneCoreReader<'s, 'a> {
    state: &'s mut OneCore,
    src: &'s mut Compressed<'a>,
    what: &'s str,
}

impl OneCoreReader<'_, '_> {
    /// Make at least `want` unread bytes available (fewer only at the end of the source) and
    /// return how many are. Unread bytes are kept, so a look-ahead can span two reads.
    fn fill_to(&mut self, want: usize) -> std::io::Result<usize> {
        let s = &mut *self.state;
        while s.input.len() - s.pos < want {
            s.offset += s.pos as u64;
            s.input.drain(..s.pos);
            s.pos = 0;
            let old = s.input.len();
            s.input.resize(old + super::READ_BUFFER, 0);
            let n = loop {
                match self.src.read(&mut s.input[old..]) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            };
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    s.input.truncate(old);
                    return Err(e);
                }
            };
            s.input.truncate(old + n);
            if n == 0 {
                break;
            }
        }
        Ok(s.input.len() - s.pos)
    }

    fn truncated(&self) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "{}: truncated bzip2 stream (the file ends inside it)",
                self.what
            ),
        )
    }
}

impl Read for OneCoreReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::{Error, ErrorKind};
        loop {
            if self.state.decoder.is_none() {
                // Between streams: what follows must be another stream ("BZh" + level), else
                // it is trailing data; a file cut inside that header is truncated.
                let avail = self.fill_to(4)?;
                if avail == 0 {
                    return Ok(0);
                }
                let s = &mut *self.state;
                let head = &s.input[s.pos..s.pos + avail.min(4)];
                if !is_stream_start_prefix(head) {
                    return Err(Error::new(
                        ErrorKind::InvalidData,
                        format!(
                            "trailing data after the compressed stream at byte {}",
                            s.offset + s.pos as u64
                        ),
                    ));
                }
                if avail < 4 {
                    return Err(self.truncated());
                }
                s.decoder = Some(bzip2::Decompress::new(false));
            }
            if self.fill_to(1)? == 0 {
                return Err(self.truncated());
            }
            let s = &mut *self.state;
            let d = s.decoder.as_mut().expect("set above");
            let (in0, out0) = (d.total_in(), d.total_out());
            let status = d.decompress(&s.input[s.pos..], buf).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidData,
                    format!(
                        "corrupt bzip2 data near compressed byte {}: {e}",
                        s.offset + s.pos as u64
                    ),
                )
            })?;
            s.pos += (d.total_in() - in0) as usize;
            let produced = (d.total_out() - out0) as usize;
            if let bzip2::Status::StreamEnd = status {
                s.decoder = None;
            }
            if produced > 0 {
                return Ok(produced);
            }
        }
    }
}

impl Drop for ParallelBzip2<'_> {
    fn drop(&mut self) {
        self.jobs = None;
        self.window.clear();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decompress::test_input::{bz, src};

    /// A release-shaped file: one stream per chunk, zero chunks repeated, data at the end.
    fn chunked() -> (Vec<u8>, Vec<u8>) {
        let chunk = 64 << 10;
        let mut raw = Vec::new();
        for i in 0..6u32 {
            if i % 2 == 0 {
                raw.extend(vec![0u8; chunk]);
            } else {
                raw.extend((0..chunk as u32).map(|j| (j * 7 + i) as u8 ^ (j >> 9) as u8));
            }
        }
        raw.extend(b"backup GPT at the very end".repeat(100));
        let compressed = raw.chunks(chunk).flat_map(bz).collect();
        (raw, compressed)
    }

    /// Where each stream of `chunked()` ends.
    fn stream_ends() -> Vec<usize> {
        let (raw, _) = chunked();
        raw.chunks(64 << 10)
            .scan(0, |end, c| {
                *end += bz(c).len();
                Some(*end)
            })
            .collect()
    }

    fn decode(bytes: Vec<u8>) -> Result<Vec<u8>> {
        let mut p = ParallelBzip2::new(src(bytes), "image.bz2");
        let mut out = Vec::new();
        while let Some(piece) = p.next_piece()? {
            match piece {
                Piece::Data(d) => out.extend(d),
                Piece::Zeros(n) => out.resize(out.len() + n as usize, 0),
            }
        }
        Ok(out)
    }

    #[test]
    fn whole_file_decodes() {
        let (raw, compressed) = chunked();
        assert_eq!(decode(compressed).unwrap(), raw);
    }

    /// Wherever the file is cut (inside a stream or inside a header), the error says
    /// truncated, never trailing data. (A cut between two streams leaves a valid, shorter
    /// file: the image size from the GPT and the signature catch that, not the decoder.)
    #[test]
    fn every_cut_near_the_end_is_called_truncated() {
        let (_, compressed) = chunked();
        let n = compressed.len();
        let ends = stream_ends();
        assert_eq!(ends.last(), Some(&n));
        let near_a_boundary = ends.iter().rev().nth(1).map_or(0, |e| e + 5);
        for cut in (n - 400..n)
            .chain([n / 2, n / 3 + 1, near_a_boundary, 11, 3])
            .filter(|c| !ends.contains(c))
        {
            let e = format!("{:#}", decode(compressed[..cut].to_vec()).unwrap_err());
            assert!(e.contains("truncated"), "cut at {cut} of {n}: {e}");
        }
    }

    #[test]
    fn trailing_garbage_is_named_with_its_offset() {
        let (_, mut compressed) = chunked();
        let at = compressed.len();
        compressed.extend(b"garbage");
        let e = format!("{:#}", decode(compressed).unwrap_err());
        assert!(
            e.contains("trailing data") && e.contains(&format!("byte {at}")),
            "{e}"
        );
    }

    /// Everything the one-core fallback reads from `pending` (at `offset` in the file), then
    /// from `rest`.
    fn one_core(offset: u64, pending: Vec<u8>, rest: Vec<u8>) -> std::io::Result<Vec<u8>> {
        let mut state = OneCore::new(offset, pending);
        let mut rest = src(rest);
        let mut out = Vec::new();
        OneCoreReader {
            state: &mut state,
            src: &mut rest,
            what: "image.bz2",
        }
        .read_to_end(&mut out)?;
        Ok(out)
    }

    /// One-core fallback: the next stream's header may straddle two reads of the source.
    #[test]
    fn one_core_reads_a_header_split_across_reads() {
        let (a, b) = (bz(b"first stream"), bz(b"second stream"));
        let out = one_core(0, [&a[..], &b[..2]].concat(), b[2..].to_vec()).unwrap();
        assert_eq!(out, b"first streamsecond stream");

        let e = one_core(100, [&a[..], b"BZ"].concat(), Vec::new()).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");

        let e = one_core(100, [&a[..], b"junk"].concat(), Vec::new()).unwrap_err();
        let at = format!(
            "trailing data after the compressed stream at byte {}",
            100 + a.len()
        );
        assert!(e.to_string().contains(&at), "{e}");
    }
}
