//! bzip2 on every core: candidate streams go to a pool of workers, results come back in
//! order through a bounded window (memory stays near `WINDOW` x chunk size). A stream whose
//! compressed bytes equal a stream already seen to hold only zeros — the release's repeated
//! all-zero chunk — becomes a zero run without being decompressed.
//!
//! Any concatenation of valid streams decodes (`cat a.bz2 b.bz2`, a `bzip2` stream of the first
//! MiBs followed by one `lbzip2` stream of the rest): a stream too long to split (no stream
//! start within `MAX_SEGMENT`) is decoded on one core once the streams before it are out of the
//! window, and the bytes after its end go back to the splitter and the pool.

use super::bzip2_split::{
    decode_stream, is_stream_start_prefix, Segment, Splitter, StreamError, TooLong,
};
use super::sequential::read_piece;
use super::{all_zero, Compressed, Piece, PieceStream};
use anyhow::{anyhow, bail, Result};
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

/// Where the decoder stands.
enum Mode {
    /// Candidate streams go to the pool.
    Parallel,
    /// A stream too long to split follows the window: decode the window first.
    Draining,
    /// That long stream, on one core.
    OneCore(OneCore),
}

pub struct ParallelBzip2 {
    src: Compressed,
    what: String,
    splitter: Splitter,
    window: VecDeque<Slot>,
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    /// (compressed bytes, decompressed length) of streams known to hold only zeros.
    zero_streams: Vec<(Vec<u8>, u64)>,
    hint: usize,
    input_done: bool,
    mode: Mode,
    /// `MAX_SEGMENT`, smaller in tests.
    max_segment: usize,
}

impl ParallelBzip2 {
    pub fn new(src: Compressed, what: &str) -> Self {
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
            src,
            what: what.to_string(),
            splitter: Splitter::new(),
            window: VecDeque::new(),
            jobs: Some(tx),
            workers,
            zero_streams: Vec::new(),
            hint: 1 << 20,
            input_done: false,
            mode: Mode::Parallel,
            max_segment: MAX_SEGMENT,
        }
    }

    /// Keep the window full, until the input ends or a stream too long to split comes.
    fn fill(&mut self) -> Result<()> {
        while matches!(self.mode, Mode::Parallel) && !self.input_done && self.window.len() < WINDOW
        {
            let seg = match self.splitter.next(&mut self.src, self.max_segment) {
                Err(e) => return Err(anyhow!("{}: reading: {e:#}", self.what)),
                Ok(Err(TooLong)) => {
                    self.mode = Mode::Draining;
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

    /// The stream at `offset` (whose first bytes are `head`, and the splitter's pending bytes
    /// after them) is decoded on one core.
    fn go_one_core(&mut self, offset: u64, mut head: Vec<u8>) {
        let (_, pending) = self.splitter.take_pending();
        head.extend_from_slice(&pending);
        tracing::info!(
            "{}: a bzip2 stream at compressed byte {offset} is too long to split; decompressing it on one core",
            self.what
        );
        self.mode = Mode::OneCore(OneCore::new(offset, head));
    }

    /// One piece of the long stream; at its end, what was read past it goes back to the
    /// splitter (it must start another stream, or it is trailing data).
    fn one_core_piece(&mut self) -> Result<Option<Piece>> {
        let Mode::OneCore(state) = &mut self.mode else {
            unreachable!("called in one-core mode")
        };
        let mut r = OneCoreReader {
            state,
            src: &mut self.src,
            what: &self.what,
        };
        if let Some(piece) = read_piece(&mut r, &self.what, &mut 0)? {
            return Ok(Some(piece));
        }
        let (offset, rest) = state.rest();
        if !rest.is_empty() && !is_stream_start_prefix(&rest) {
            bail!(
                "{}: trailing data after the compressed stream at byte {offset}",
                self.what
            );
        }
        self.splitter.restore(offset, rest);
        self.mode = Mode::Parallel;
        Ok(None)
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

impl PieceStream for ParallelBzip2 {
    fn next_piece(&mut self) -> Result<Option<Piece>> {
        loop {
            match self.mode {
                Mode::OneCore(_) => match self.one_core_piece()? {
                    Some(p) => return Ok(Some(p)),
                    None => continue,
                },
                Mode::Draining if self.window.is_empty() => {
                    let (offset, pending) = self.splitter.take_pending();
                    self.go_one_core(offset, pending);
                    continue;
                }
                Mode::Draining => {}
                Mode::Parallel => self.fill()?,
            }
            let Some(slot) = self.window.pop_front() else {
                if matches!(self.mode, Mode::Parallel) {
                    return Ok(None);
                }
                continue;
            };
            return self.decoded(slot).map(Some);
        }
    }

    fn into_source(self: Box<Self>) -> Compressed {
        let mut me = self;
        me.shutdown();
        // Drop runs on `me` afterwards with nothing left to join.
        std::mem::replace(&mut me.src, empty_source())
    }
}

impl ParallelBzip2 {
    /// The next stream's output from the window.
    fn decoded(&mut self, slot: Slot) -> Result<Piece> {
        let rx = match slot {
            Slot::Zeros(n) => return Ok(Piece::Zeros(n)),
            Slot::Waiting(rx) => rx,
        };
        let Done { mut seg, mut out } = self.wait(rx)?;
        // A false split ends a segment inside a stream: join the following segments until
        // the stream decodes (a genuinely truncated file runs out of segments). When the rest
        // of the stream is too long to split, it is decoded on one core from its start.
        while let Err(StreamError::Truncated { .. }) = out {
            self.fill()?;
            let next = match self.window.pop_front() {
                None if matches!(self.mode, Mode::Draining) => {
                    self.go_one_core(seg.offset, std::mem::take(&mut seg.bytes));
                    return match self.one_core_piece()? {
                        Some(p) => Ok(p),
                        None => Ok(Piece::Data(Vec::new())),
                    };
                }
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
            return Ok(Piece::Zeros(out.len() as u64));
        }
        Ok(Piece::Data(out))
    }

    fn shutdown(&mut self) {
        self.jobs = None;
        self.window.clear();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A source with nothing in it, left behind when the real one is handed back.
fn empty_source() -> Compressed {
    std::io::BufReader::new(crate::verify::VerifyingTee::new(
        Box::new(std::io::empty()) as Box<dyn Read + Send>,
        None,
    ))
}

/// One bzip2 stream decoded on one core: the bytes the splitter already held, then the source.
struct OneCore {
    input: Vec<u8>,
    pos: usize,
    decoder: Option<bzip2::Decompress>,
    /// The stream's end was reached.
    ended: bool,
    /// Compressed bytes consumed before `input` (for messages).
    offset: u64,
}

impl OneCore {
    fn new(offset: u64, pending: Vec<u8>) -> Self {
        OneCore {
            input: pending,
            pos: 0,
            decoder: None,
            ended: false,
            offset,
        }
    }

    /// After the stream ended: the bytes read past it and their offset in the file.
    fn rest(&mut self) -> (u64, Vec<u8>) {
        let offset = self.offset + self.pos as u64;
        let rest = self.input.split_off(self.pos);
        self.input.clear();
        self.pos = 0;
        (offset, rest)
    }
}

struct OneCoreReader<'s> {
    state: &'s mut OneCore,
    src: &'s mut Compressed,
    what: &'s str,
}

impl OneCoreReader<'_> {
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

impl Read for OneCoreReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::{Error, ErrorKind};
        loop {
            if self.state.ended || buf.is_empty() {
                return Ok(0);
            }
            if self.state.decoder.is_none() {
                // The stream's header must be there: a file cut inside it is truncated.
                let avail = self.fill_to(4)?;
                let s = &mut *self.state;
                let head = &s.input[s.pos..s.pos + avail.min(4)];
                if avail < 4 || !is_stream_start_prefix(head) {
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
                s.ended = true;
            }
            if produced > 0 {
                return Ok(produced);
            }
        }
    }
}

impl Drop for ParallelBzip2 {
    fn drop(&mut self) {
        self.shutdown();
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

    /// What the one-core path read past its stream, and where that starts in the file.
    type Rest = (u64, Vec<u8>);

    /// The one-core path: the stream in `pending` (at `offset` in the file), then `rest`;
    /// returns its output and what was read past its end.
    fn one_core(offset: u64, pending: Vec<u8>, rest: Vec<u8>) -> std::io::Result<(Vec<u8>, Rest)> {
        let mut state = OneCore::new(offset, pending);
        let mut rest = src(rest);
        let mut out = Vec::new();
        OneCoreReader {
            state: &mut state,
            src: &mut rest,
            what: "image.bz2",
        }
        .read_to_end(&mut out)?;
        Ok((out, state.rest()))
    }

    /// One-core path: one stream, its header possibly straddling two reads of the source;
    /// what follows it is handed back.
    #[test]
    fn one_core_decodes_one_stream_and_hands_back_the_rest() {
        let (a, b) = (bz(b"first stream"), bz(b"second stream"));
        let (out, (at, rest)) = one_core(0, a[..2].to_vec(), [&a[2..], &b[..]].concat()).unwrap();
        assert_eq!(out, b"first stream");
        assert_eq!(at, a.len() as u64);
        assert!(b.starts_with(&rest), "the bytes after the stream come back");

        let e = one_core(100, b"BZ".to_vec(), Vec::new()).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let e = one_core(100, a[..a.len() - 3].to_vec(), Vec::new()).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    /// Pseudo-random bytes that bzip2 cannot shrink (so streams are long when compressed).
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn decode_with_max(bytes: Vec<u8>, max_segment: usize) -> Result<Vec<u8>> {
        let mut p = ParallelBzip2::new(src(bytes), "image.bz2");
        p.max_segment = max_segment;
        let mut out = Vec::new();
        while let Some(piece) = p.next_piece()? {
            match piece {
                Piece::Data(d) => out.extend(d),
                Piece::Zeros(n) => out.resize(out.len() + n as usize, 0),
            }
        }
        let src = Box::new(p).into_source();
        assert!(src.buffer().is_empty(), "every byte consumed");
        Ok(out)
    }

    /// Any concatenation of valid streams decodes, whatever their lengths around the split
    /// limit: short then long (the issue's `bzip2` head + `lbzip2` rest), long then short,
    /// long twice, empty streams between.
    #[test]
    fn concatenations_of_short_and_long_streams() {
        let max = 64 << 10;
        let short = |i: u64| noise(10_000, i);
        let long = |i: u64| noise(300_000, i);
        let cases: Vec<Vec<Vec<u8>>> = vec![
            vec![short(1), long(2)],
            vec![short(1), short(2), short(3), long(4)],
            vec![long(1), short(2)],
            vec![long(1), long(2)],
            vec![short(1), long(2), short(3), short(4), long(5), short(6)],
            vec![vec![], long(1), vec![], short(2), vec![]],
            vec![long(7)],
        ];
        for (i, parts) in cases.iter().enumerate() {
            let raw: Vec<u8> = parts.concat();
            let compressed: Vec<u8> = parts.iter().flat_map(|p| bz(p)).collect();
            let out =
                decode_with_max(compressed, max).unwrap_or_else(|e| panic!("case {i}: {e:#}"));
            assert!(out == raw, "case {i}: output differs");
        }
    }

    #[test]
    fn trailing_garbage_after_a_long_stream() {
        let mut c = bz(&noise(300_000, 5));
        let at = c.len();
        c.extend_from_slice(b"garbage!garbage!");
        let e = format!("{:#}", decode_with_max(c, 64 << 10).unwrap_err());
        assert!(
            e.contains("trailing data") && e.contains(&format!("byte {at}")),
            "{e}"
        );
    }
}
