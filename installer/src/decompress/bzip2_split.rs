//! Splitting a concatenation of bzip2 streams at stream starts, and decoding one stream.
//!
//! A stream starts (byte-aligned) with "BZh" + level digit, then either a block header magic
//! (0x314159265359, pi) or, for an empty stream, the end-of-stream magic (0x177245385090,
//! sqrt(pi)). Such 10 bytes can occur inside compressed data by chance, so a split is only a
//! candidate: decoding confirms it, and a segment that ends mid-stream is joined to the next.

use super::{Compressed, READ_BUFFER};
use std::io::{self, Read};

/// bzip2 block header magic (BCD pi).
const BLOCK_MAGIC: [u8; 6] = [0x31, 0x41, 0x59, 0x26, 0x53, 0x59];
/// bzip2 end-of-stream magic (BCD sqrt(pi)).
const EOS_MAGIC: [u8; 6] = [0x17, 0x72, 0x45, 0x38, 0x50, 0x90];
/// "BZh" + level + 6 magic bytes.
const START_LEN: usize = 10;

fn is_stream_start(w: &[u8]) -> bool {
    w.len() >= START_LEN && is_stream_start_prefix(&w[..START_LEN])
}

/// True when `w` (at most a stream start's length) agrees with a stream start as far as it
/// goes: bytes that a file cut short inside a stream's header ends with.
pub fn is_stream_start_prefix(w: &[u8]) -> bool {
    let w = &w[..w.len().min(START_LEN)];
    let magic = |m: &[u8; 6]| w.len() <= 4 || w[4..] == m[..w.len() - 4];
    w.iter().zip(b"BZh").all(|(a, b)| a == b)
        && w.get(3).is_none_or(|d| (b'1'..=b'9').contains(d))
        && (magic(&BLOCK_MAGIC) || magic(&EOS_MAGIC))
}

/// One candidate stream and where it starts in the compressed file.
pub struct Segment {
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// Cuts the compressed input into candidate streams.
pub struct Splitter {
    pending: Vec<u8>,
    pending_offset: u64,
    /// Positions before this in `pending` were already searched.
    scanned: usize,
    eof: bool,
}

/// The splitter gave up finding a boundary: the file is one big stream (or close to it).
pub struct TooLong;

impl Splitter {
    pub fn new() -> Self {
        Splitter {
            pending: Vec::new(),
            pending_offset: 0,
            scanned: 1,
            eof: false,
        }
    }

    /// The bytes read but not yet handed out, and their offset in the compressed file (for
    /// falling back to sequential decoding).
    pub fn take_pending(&mut self) -> (u64, Vec<u8>) {
        (self.pending_offset, std::mem::take(&mut self.pending))
    }

    /// Hand back bytes read past a stream decoded elsewhere (at `offset` in the file): they
    /// come before anything still unread, and position 0 of them starts a stream.
    pub fn restore(&mut self, offset: u64, mut bytes: Vec<u8>) {
        bytes.append(&mut self.pending);
        self.pending = bytes;
        self.pending_offset = offset;
        self.scanned = 1;
    }

    /// Next candidate stream, `Ok(None)` at the end of input; `Err(TooLong)` when no stream
    /// start appeared within `max` bytes.
    pub fn next(
        &mut self,
        src: &mut Compressed,
        max: usize,
    ) -> io::Result<Result<Option<Segment>, TooLong>> {
        loop {
            if let Some(p) = self.find_start() {
                let rest = self.pending.split_off(p);
                let bytes = std::mem::replace(&mut self.pending, rest);
                let seg = Segment {
                    offset: self.pending_offset,
                    bytes,
                };
                self.pending_offset += p as u64;
                self.scanned = 1;
                return Ok(Ok(Some(seg)));
            }
            if self.eof {
                if self.pending.is_empty() {
                    return Ok(Ok(None));
                }
                let bytes = std::mem::take(&mut self.pending);
                let seg = Segment {
                    offset: self.pending_offset,
                    bytes,
                };
                self.pending_offset += seg.bytes.len() as u64;
                return Ok(Ok(Some(seg)));
            }
            if self.pending.len() > max {
                return Ok(Err(TooLong));
            }
            let old = self.pending.len();
            self.pending.resize(old + READ_BUFFER, 0);
            let n = loop {
                match src.read(&mut self.pending[old..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            };
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    self.pending.truncate(old);
                    return Err(e);
                }
            };
            self.pending.truncate(old + n);
            if n == 0 {
                self.eof = true;
            }
        }
    }

    /// A stream start after position 0 of `pending`.
    fn find_start(&mut self) -> Option<usize> {
        let buf = &self.pending;
        let mut i = self.scanned;
        while i + START_LEN <= buf.len() {
            match buf[i..buf.len() - START_LEN + 1]
                .iter()
                .position(|&b| b == b'B')
            {
                None => break,
                Some(k) => {
                    i += k;
                    if is_stream_start(&buf[i..]) {
                        return Some(i);
                    }
                    i += 1;
                }
            }
        }
        self.scanned = buf.len().saturating_sub(START_LEN - 1).max(1);
        None
    }
}

/// How decoding one candidate stream went wrong.
#[derive(Debug)]
pub enum StreamError {
    /// The input ended inside the stream that starts `from` bytes into the segment: a false
    /// split (join with the next segment) or a truncated file.
    Truncated {
        from: usize,
    },
    /// The stream ended `at` bytes into the segment, followed by bytes that start no stream.
    Trailing {
        at: usize,
    },
    Corrupt(String),
}

/// Decode exactly one bzip2 stream that must fill `seg`. `hint` sizes the output buffer.
pub fn decode_stream(seg: &[u8], hint: usize) -> Result<Vec<u8>, StreamError> {
    let mut d = bzip2::Decompress::new(false);
    let mut out = Vec::with_capacity(hint.max(1 << 16));
    loop {
        if out.capacity() - out.len() < (1 << 16) {
            out.reserve(out.capacity().max(1 << 20));
        }
        let consumed = d.total_in() as usize;
        let produced = out.len();
        let status = d
            .decompress_vec(&seg[consumed..], &mut out)
            .map_err(|e| StreamError::Corrupt(e.to_string()))?;
        if let bzip2::Status::StreamEnd = status {
            let at = d.total_in() as usize;
            if at != seg.len() {
                // The splitter only cuts before a whole stream header, so a file that ends a
                // few bytes into the next stream leaves that header's start here.
                if is_stream_start_prefix(&seg[at..]) && seg.len() - at < START_LEN {
                    return Err(StreamError::Truncated { from: at });
                }
                return Err(StreamError::Trailing { at });
            }
            return Ok(out);
        }
        if d.total_in() as usize == seg.len() && out.len() == produced && out.capacity() > out.len()
        {
            return Err(StreamError::Truncated { from: 0 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decompress::test_input::{bz, src};

    #[test]
    fn splits_concatenated_streams_and_decodes_each() {
        let a = bz(&vec![7u8; 300_000]);
        let b = bz(&[]);
        let c = bz(b"tail");
        let all = [a.clone(), b.clone(), c.clone()].concat();
        let mut s = Splitter::new();
        let mut r = src(all);
        let mut got = Vec::new();
        while let Ok(Some(seg)) = s.next(&mut r, 1 << 30).unwrap() {
            got.push((seg.offset, decode_stream(&seg.bytes, 0).unwrap()));
        }
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (0, vec![7u8; 300_000]));
        assert_eq!(got[1], (a.len() as u64, vec![]));
        assert_eq!(got[2], ((a.len() + b.len()) as u64, b"tail".to_vec()));
    }

    #[test]
    fn truncated_and_trailing_are_told_apart() {
        let a = bz(b"hello hello hello");
        assert!(matches!(
            decode_stream(&a[..a.len() - 3], 0),
            Err(StreamError::Truncated { from: 0 })
        ));
        let mut t = a.clone();
        t.extend_from_slice(b"junk");
        assert!(matches!(decode_stream(&t, 0), Err(StreamError::Trailing { at }) if at == a.len()));
        // A whole stream, then the first bytes of another: the file was cut in that header.
        let b = bz(b"next");
        for cut in 1..START_LEN {
            let t = [&a[..], &b[..cut]].concat();
            assert!(
                matches!(decode_stream(&t, 0), Err(StreamError::Truncated { from }) if from == a.len()),
                "cut {cut}"
            );
        }
        let t = [&a[..], b"BZh0"].concat();
        assert!(matches!(
            decode_stream(&t, 0),
            Err(StreamError::Trailing { .. })
        ));
    }

    #[test]
    fn too_long_without_a_boundary() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let a = bz(&noise);
        let mut s = Splitter::new();
        let mut r = src(a);
        assert!(matches!(s.next(&mut r, 64 << 10).unwrap(), Err(TooLong)));
    }
}
