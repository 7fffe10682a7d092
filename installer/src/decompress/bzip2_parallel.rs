//! bzip2 on every core: candidate streams go to a pool of workers, results come back in
//! order through a bounded window (memory stays near `WINDOW` x chunk size). A stream whose
//! compressed bytes equal a stream already seen to hold only zeros — the release's repeated
//! all-zero chunk — becomes a zero run without being decompressed.

use super::bzip2_split::{decode_stream, Segment, Splitter, StreamError, TooLong};
use super::sequential::read_piece;
use super::{all_zero, Compressed, Piece, PieceStream};
use anyhow::{anyhow, Result};
use std::collections::VecDeque;
use std::io::Read;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Streams in flight (queued, decoding or decoded-but-not-yet-written).
const WINDOW: usize = 4;
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
        self.sequential = Some(OneCore::new(self.splitter.take_pending()));
    }

    fn wait(&self, rx: Receiver<Done>) -> Result<Done> {
        rx.recv()
            .map_err(|_| anyhow!("{}: a decompression worker died", self.what))
    }

    fn error(&self, seg: &Segment, e: StreamError) -> anyhow::Error {
        match e {
            StreamError::Truncated => {
                anyhow!("{}: truncated bzip2 stream starting at compressed byte {} (the file ends inside it)", self.what, seg.offset)
            }
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
        while let Err(StreamError::Truncated) = out {
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
    fn new(pending: Vec<u8>) -> Self {
        OneCore {
            input: pending,
            pos: 0,
            decoder: None,
            offset: 0,
        }
    }
}

struct OneCoreReader<'s, 'a> {
    state: &'s mut OneCore,
    src: &'s mut Compressed<'a>,
    what: &'s str,
}

impl OneCoreReader<'_, '_> {
    /// Make sure some unread input is buffered; false at the end of the source.
    fn refill(&mut self) -> std::io::Result<bool> {
        let s = &mut *self.state;
        if s.pos < s.input.len() {
            return Ok(true);
        }
        s.offset += s.input.len() as u64;
        s.input.resize(super::READ_BUFFER, 0);
        s.pos = 0;
        let n = self.src.read(&mut s.input)?;
        s.input.truncate(n);
        Ok(n > 0)
    }
}

impl Read for OneCoreReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::{Error, ErrorKind};
        loop {
            let more = self.refill()?;
            let s = &mut *self.state;
            if s.decoder.is_none() {
                if !more {
                    return Ok(0);
                }
                // Between streams: what follows must be another stream, else it is trailing data.
                if !s.input[s.pos..].starts_with(b"BZh") {
                    return Err(Error::new(
                        ErrorKind::InvalidData,
                        format!(
                            "trailing data after the compressed stream at byte {}",
                            s.offset + s.pos as u64
                        ),
                    ));
                }
                s.decoder = Some(bzip2::Decompress::new(false));
            }
            if !more {
                return Err(Error::new(
                    ErrorKind::UnexpectedEof,
                    format!(
                        "{}: truncated bzip2 stream (the file ends inside it)",
                        self.what
                    ),
                ));
            }
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
