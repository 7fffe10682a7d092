//! Decompression as a stream of `Piece`s in image order: bytes, or a run of zeros that the
//! writer can turn into BLKZEROOUT instead of writing. The format is sniffed by magic bytes,
//! never trusted from the file name.

mod bzip2_parallel;
mod bzip2_split;
mod sequential;
mod sniff;
#[cfg(test)]
mod test_input;

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

/// The compressed side: the verifying tee over the source, buffered.
pub type Compressed<'a> = BufReader<VerifyingTee<Box<dyn Read + Send + 'a>>>;

/// Read size on the compressed side (large reads keep syscalls and hashing calls few).
pub const READ_BUFFER: usize = 1 << 20;

/// A decompressor producing pieces, which hands back its source when the stream has ended.
pub trait PieceStream<'a> {
    fn next_piece(&mut self) -> Result<Option<Piece>>;
    /// The source, after `next_piece` returned `None` (every compressed byte consumed).
    fn into_source(self: Box<Self>) -> Compressed<'a>;
}

/// Sniff the format and build the decompressor for it.
pub fn open<'a>(
    mut src: Compressed<'a>,
    what: &str,
) -> Result<(Format, Box<dyn PieceStream<'a> + 'a>)> {
    let format = Format::sniff(src.fill_buf()?);
    tracing::info!("{what}: {format:?} compression");
    let stream: Box<dyn PieceStream<'a> + 'a> = match format {
        Format::Bzip2 => Box::new(bzip2_parallel::ParallelBzip2::new(src, what)),
        other => Box::new(sequential::Sequential::new(other, src, what)?),
    };
    Ok((format, stream))
}

/// True when every byte is zero (word-at-a-time: this runs over every decompressed byte).
pub fn all_zero(buf: &[u8]) -> bool {
    let (pre, words, post) = unsafe { buf.align_to::<u64>() };
    pre.iter().all(|&b| b == 0) && words.iter().all(|&w| w == 0) && post.iter().all(|&b| b == 0)
}
