//! gzip (RFC 1952) compressed on every core, as pigz does: the input is cut into chunks of at
//! least 1 MiB, each chunk is deflated on its own (primed with the previous chunk's last 32 KiB
//! as dictionary, so matches reach across chunks) and ended with a sync flush (a byte-aligned
//! empty stored block), and one empty final block closes the stream. The result is one ordinary
//! gzip member; the CRC-32 of the whole input is combined from the chunks' CRCs. Chunk
//! boundaries depend only on the input, and each chunk gets a fresh compressor, so the bytes
//! are the same for any thread count and any schedule.
//!
//! Why fresh: a reset compressor is not a clean one. zlib-rs (as zlib-ng) hashes 4 bytes per
//! position but loads a dictionary in steps of 3, so the dictionary's last hash entry takes one
//! byte from past its end: after `reset` that byte is whatever the worker's previous chunk left
//! in the window. The encoding (not the content) of the next chunk then depended on which chunk
//! the worker had compressed before, i.e. on thread timing: the Vagrant box (level 1) differed
//! between runs. A new compressor's window is zeroed.

use super::tar_stream::Piece;
use anyhow::Context;
use flate2::{Compress, Compression, FlushCompress, Status};
use std::io::Write;

const CHUNK: usize = 1 << 20;
/// Deflate's window: the dictionary each chunk starts with.
const WINDOW: usize = 32 << 10;
/// ID1 ID2 CM=deflate FLG=0 MTIME=0 (none: reproducible) XFL=0 OS=3 (Unix).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

struct Chunk {
    deflated: Vec<u8>,
    crc: crc32fast::Hasher,
}

/// Deflate `data` after `dictionary` with a compressor of its own (see the module comment).
fn deflate(
    level: u32,
    dictionary: &[u8],
    data: &[u8],
    flush: FlushCompress,
) -> anyhow::Result<Vec<u8>> {
    let z = &mut Compress::new(Compression::new(level), false);
    if !dictionary.is_empty() {
        z.set_dictionary(dictionary).context("deflate dictionary")?;
    }
    let mut out = Vec::with_capacity(data.len() + data.len() / 1000 + 64);
    let mut input = data;
    loop {
        let before = z.total_in();
        let status = z.compress_vec(input, &mut out, flush).context("deflate")?;
        input = &input[(z.total_in() - before) as usize..];
        let done = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            _ => input.is_empty() && out.len() < out.capacity(),
        };
        if done {
            return Ok(out);
        }
        out.reserve(out.capacity().max(4096));
    }
}

/// Gather pieces into chunks of at least `CHUNK` bytes (the last may be smaller), each with the
/// 32 KiB of input before it.
fn chunks(pieces: Vec<Piece>) -> impl Iterator<Item = anyhow::Result<(Vec<u8>, Vec<u8>)>> + Send {
    let mut it = pieces.into_iter().peekable();
    let mut tail = Vec::new();
    std::iter::from_fn(move || {
        it.peek()?;
        let mut buf = Vec::with_capacity(CHUNK + (1 << 20));
        while buf.len() < CHUNK {
            let Some(p) = it.next() else { break };
            match p.read() {
                Ok(b) => buf.extend_from_slice(&b),
                Err(e) => return Some(Err(e)),
            }
        }
        let dictionary =
            std::mem::replace(&mut tail, buf[buf.len().saturating_sub(WINDOW)..].to_vec());
        Some(Ok((dictionary, buf)))
    })
}

/// Write `pieces` gzip-compressed at `level` to `out`; returns the compressed size.
pub fn write_gzip(
    pieces: Vec<Piece>,
    out: &mut impl Write,
    level: u32,
    workers: usize,
    progress: &dyn Fn(u64),
) -> anyhow::Result<u64> {
    out.write_all(&HEADER)?;
    let mut written = HEADER.len() as u64;
    let mut crc = crc32fast::Hasher::new();
    let mut done = 0u64;
    disk::ordered_map::ordered_map(
        chunks(pieces),
        workers,
        workers * 3,
        || (),
        |_, (dictionary, data): (Vec<u8>, Vec<u8>)| {
            let mut c = crc32fast::Hasher::new();
            c.update(&data);
            Ok(Chunk {
                deflated: deflate(level, &dictionary, &data, FlushCompress::Sync)?,
                crc: c,
            })
        },
        |chunk: Chunk| {
            out.write_all(&chunk.deflated)?;
            written += chunk.deflated.len() as u64;
            done += chunk.crc.total_len();
            crc.combine(&chunk.crc);
            progress(done);
            Ok(())
        },
    )?;
    let end = deflate(level, &[], &[], FlushCompress::Finish)?;
    out.write_all(&end)?;
    let total = crc.total_len();
    out.write_all(&crc.finalize().to_le_bytes())?;
    out.write_all(&(total as u32).to_le_bytes())?;
    out.flush()?;
    Ok(written + end.len() as u64 + 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn one_member_that_gunzip_reads_back() {
        let text: Vec<u8> = (0..3_500_000u32)
            .map(|i| (i % 251) as u8 ^ (i >> 13) as u8)
            .collect();
        // 700 kB pieces: four chunks, each primed with the previous one's tail.
        let pieces = || {
            text.chunks(700_000)
                .map(|c| Piece::Bytes(c.to_vec()))
                .collect::<Vec<_>>()
        };
        let mut gz = Vec::new();
        write_gzip(pieces(), &mut gz, 6, 2, &|_| ()).unwrap();
        // A single-member decoder must see the whole input (no concatenated members).
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == text);
        let mut again = Vec::new();
        write_gzip(pieces(), &mut again, 6, 1, &|_| ()).unwrap();
        assert!(again == gz, "same bytes for any worker count");
    }

    /// A chunk's bytes depend only on its dictionary and data, not on what was compressed
    /// before it. The input provokes the zlib-rs reuse hazard (as chunk 28 of a real Vagrant
    /// VMDK did): the dictionary ends in zeros, so its last hash entry, taken with one byte
    /// past its end, decides which earlier position the chunk's run of zeros matches.
    #[test]
    fn a_chunk_does_not_depend_on_the_chunk_before() {
        let mut dictionary: Vec<u8> = (0..WINDOW as u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        dictionary[WINDOW - 8..].fill(0);
        let data = b"xyz\0\0\0\0\0\0, then some other text to compress".repeat(20);
        // What a worker did before: a chunk whose first byte is the one past the dictionary.
        let before = b"a short chunk".to_vec();

        let alone = deflate(1, &dictionary, &data, FlushCompress::Sync).unwrap();
        deflate(1, &dictionary, &before, FlushCompress::Sync).unwrap();
        let after = deflate(1, &dictionary, &data, FlushCompress::Sync).unwrap();
        assert!(
            alone == after,
            "the chunk's bytes changed with the chunk before it"
        );

        // The hazard this guards against is real: one compressor reset between the chunks
        // encodes the chunk differently (if zlib-rs stops reading past the dictionary, this
        // input no longer shows it, and this half of the test can go).
        let mut z = Compress::new(Compression::new(1), false);
        let mut reused = |data: &[u8]| {
            z.reset();
            z.set_dictionary(&dictionary).unwrap();
            let mut out = Vec::with_capacity(4096);
            z.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
            out
        };
        reused(&before);
        assert!(
            reused(&data) != alone,
            "a reset compressor no longer leaks state"
        );
    }
}

#[cfg(test)]
mod reproducible_tests {
    use super::*;

    /// Many chunks of mixed content, compressed again and again with different worker counts:
    /// which worker gets which chunk changes from run to run, the bytes must not.
    #[test]
    fn same_bytes_whatever_worker_compressed_which_chunk() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let data: Vec<u8> = (0..24u32 << 20)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if (i >> 16) % 3 == 0 {
                    x as u8
                } else {
                    (i % 97) as u8
                }
            })
            .collect();
        let pieces = || {
            data.chunks(1 << 20)
                .map(|c| Piece::Bytes(c.to_vec()))
                .collect::<Vec<_>>()
        };
        let mut first = Vec::new();
        write_gzip(pieces(), &mut first, 6, 1, &|_| ()).unwrap();
        for workers in [2, 3, 2, 4] {
            let mut again = Vec::new();
            write_gzip(pieces(), &mut again, 6, workers, &|_| ()).unwrap();
            assert!(again == first, "{workers} workers gave other bytes");
        }
    }
}
