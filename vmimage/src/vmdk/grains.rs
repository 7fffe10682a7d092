//! Reading the source image's data grains and compressing them (zlib) into framed grains:
//! the grain marker, the compressed bytes, zero padding to a sector.

use super::header::{grain_marker, GRAIN_MARKER_BYTES, GRAIN_SECTORS, SECTOR};
use super::VmdkError;
use flate2::{Compress, Compression, FlushCompress, Status};
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;

pub const GRAIN_BYTES: u64 = GRAIN_SECTORS * SECTOR as u64;
/// Grains read and compressed as one work item: 1 MiB, large enough to keep both cores busy.
const BATCH_GRAINS: u64 = 16;
/// Source bytes a batch covers (progress reporting).
pub const BATCH_BYTES: u64 = BATCH_GRAINS * GRAIN_BYTES;

/// Consecutive grains read from the source; `data` is `count * GRAIN_BYTES` long.
pub struct GrainBatch {
    pub first_grain: u64,
    pub data: Vec<u8>,
}

/// One non-zero grain, ready to append to the stream (a whole number of sectors).
pub struct FramedGrain {
    pub grain: u64,
    pub framed: Vec<u8>,
}

/// Grain runs that hold data: the source's data ranges widened to whole grains and merged.
pub fn grain_runs(ranges: &[Range<u64>], capacity_grains: u64) -> Vec<Range<u64>> {
    let mut runs: Vec<Range<u64>> = Vec::new();
    for r in ranges {
        let g = (r.start / GRAIN_BYTES)..r.end.div_ceil(GRAIN_BYTES).min(capacity_grains);
        match runs.last_mut() {
            Some(last) if g.start <= last.end => last.end = last.end.max(g.end),
            _ if g.start < g.end => runs.push(g),
            _ => {}
        }
    }
    runs
}

/// Batches over `runs`, read from `src` (bytes past its end read as zeros).
pub fn read_batches<'a>(
    src: &'a File,
    src_len: u64,
    runs: &'a [Range<u64>],
) -> impl Iterator<Item = Result<GrainBatch, VmdkError>> + Send + 'a {
    runs.iter()
        .flat_map(|run| {
            (run.start..run.end)
                .step_by(BATCH_GRAINS as usize)
                .map(move |g| g..(g + BATCH_GRAINS).min(run.end))
        })
        .map(move |grains| {
            let offset = grains.start * GRAIN_BYTES;
            let mut data = vec![0u8; ((grains.end - grains.start) * GRAIN_BYTES) as usize];
            let readable = src_len.saturating_sub(offset).min(data.len() as u64) as usize;
            src.read_exact_at(&mut data[..readable], offset)
                .map_err(|e| VmdkError::Read { offset, source: e })?;
            Ok(GrainBatch {
                first_grain: grains.start,
                data,
            })
        })
}

pub fn new_compressor(level: u32) -> Compress {
    Compress::new(Compression::new(level), true)
}

pub fn is_zero(b: &[u8]) -> bool {
    let (chunks, rest) = b.split_at(b.len() - b.len() % 16);
    chunks
        .chunks_exact(16)
        .all(|c| u128::from_ne_bytes(c.try_into().expect("16 bytes")) == 0)
        && rest.iter().all(|&x| x == 0)
}

/// Compress every non-zero grain of `batch`; all-zero grains are left out of the stream.
pub fn compress_batch(z: &mut Compress, batch: GrainBatch) -> Result<Vec<FramedGrain>, VmdkError> {
    let mut out = Vec::new();
    for (i, grain) in batch.data.chunks(GRAIN_BYTES as usize).enumerate() {
        if is_zero(grain) {
            continue;
        }
        let index = batch.first_grain + i as u64;
        z.reset();
        // zlib's worst case for incompressible input is a few bytes per 16 KiB block.
        let mut framed = Vec::with_capacity(GRAIN_MARKER_BYTES + grain.len() + 1024);
        framed.extend_from_slice(&[0u8; GRAIN_MARKER_BYTES]);
        match z.compress_vec(grain, &mut framed, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => {}
            other => return Err(VmdkError::Compress(format!("grain {index}: {other:?}"))),
        }
        let compressed = (framed.len() - GRAIN_MARKER_BYTES) as u32;
        framed[..GRAIN_MARKER_BYTES]
            .copy_from_slice(&grain_marker(index * GRAIN_SECTORS, compressed));
        framed.resize(framed.len().next_multiple_of(SECTOR), 0);
        out.push(FramedGrain {
            grain: index,
            framed,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_ranges_in_whole_grains() {
        let g = GRAIN_BYTES;
        let runs = grain_runs(
            &[
                0..4096,
                10..20,
                3 * g + 5..5 * g,
                5 * g..5 * g + 1,
                100 * g..200 * g,
            ],
            150,
        );
        assert_eq!(runs, vec![0..1, 3..6, 100..150]);
    }
}
