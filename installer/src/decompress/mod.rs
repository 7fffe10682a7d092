//! Decompression as a stream of `Piece`s in image order: bytes, or a run of zeros that the
//! writer can turn into BLKZEROOUT instead of writing. The format is sniffed by magic bytes,
//! never trusted from the file name.

mod bzip2_parallel;
mod bzip2_split;
mod sequential;
mod sniff;
#[cfg(test)]
mod test_input;
mod zstd_frames;

pub use sniff::Format;

use crate::verify::VerifyingTee;
use anyhow::Result;
use std::io::{BufRead, BufReader, Read};

/// What one step of decompression yields.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    Data(Vec<u8>),
    Zeros(u64),
}

/// The compressed side: the verifying tee over the source, buffered. Sources own what they
/// read from (a file, a `ResumingReader` with its clone of the HTTP client), so a decoder may
/// move it to a thread of its own.
pub type Compressed = BufReader<VerifyingTee<Box<dyn Read + Send>>>;

/// Read size on the compressed side (large reads keep syscalls and hashing calls few).
pub const READ_BUFFER: usize = 1 << 20;

/// A decompressor producing pieces, which hands back its source when the stream has ended.
pub trait PieceStream {
    fn next_piece(&mut self) -> Result<Option<Piece>>;
    /// The source, after `next_piece` returned `None` (every compressed byte consumed).
    fn into_source(self: Box<Self>) -> Compressed;
}

/// Sniff the format and build the decompressor for it.
pub fn open(mut src: Compressed, what: &str) -> Result<(Format, Box<dyn PieceStream>)> {
    let format = Format::sniff(src.fill_buf()?);
    tracing::info!("{what}: {format:?} compression");
    let stream: Box<dyn PieceStream> = match format {
        Format::Bzip2 => Box::new(bzip2_parallel::ParallelBzip2::new(src, what)),
        other => Box::new(sequential::Sequential::new(other, src, what)?),
    };
    Ok((format, stream))
}

/// After the decompressor's end: bytes still buffered are trailing data (an error naming their
/// offset); otherwise the verifying tee, whose `finish` reads to EOF and gives the verdict.
pub fn end_of_stream(src: Compressed, what: &str) -> Result<VerifyingTee<Box<dyn Read + Send>>> {
    if !src.buffer().is_empty() {
        let at = src.get_ref().bytes() - src.buffer().len() as u64;
        anyhow::bail!("{what}: trailing data after the compressed stream at byte {at}");
    }
    Ok(src.into_inner())
}

/// Decompress `input` whole as an install does (format sniffed, every stream and frame, no
/// trailing data), handing each piece to `sink`; returns the decompressed length, or an error
/// past `max_len`. Tests and the
/// fuzz targets use it; the install runs the same stages with a signature check and a disk.
pub fn decompress_all(
    input: impl Read + Send + 'static,
    what: &str,
    max_len: u64,
    mut sink: impl FnMut(Piece),
) -> Result<u64> {
    let src = BufReader::with_capacity(
        READ_BUFFER,
        VerifyingTee::new(Box::new(input) as Box<dyn Read + Send>, None),
    );
    let (_, mut stream) = open(src, what)?;
    let mut len = 0;
    while let Some(piece) = stream.next_piece()? {
        len += match &piece {
            Piece::Data(d) => d.len() as u64,
            Piece::Zeros(n) => *n,
        };
        if len > max_len {
            anyhow::bail!("{what}: decompresses to more than {max_len} bytes");
        }
        sink(piece);
    }
    end_of_stream(stream.into_source(), what)?.finish_unverified(what)?;
    Ok(len)
}

/// True when every byte is zero (word-at-a-time: this runs over every decompressed byte).
pub fn all_zero(buf: &[u8]) -> bool {
    // SAFETY: any 8 bytes are a valid u64; align_to reinterprets only the aligned middle.
    let (pre, words, post) = unsafe { buf.align_to::<u64>() };
    pre.iter().all(|&b| b == 0) && words.iter().all(|&w| w == 0) && post.iter().all(|&b| b == 0)
}
