//! VMDK (VMware Virtual Disk Format 5.0) written from a sparse raw image: the hosted
//! monolithicSparse extent (`hosted.rs`), and here the streamOptimized one ("Stream-Optimized
//! Compressed Sparse Extents"), written in one pass:
//! header → descriptor → {grain marker + zlib grain}… with a GT marker + GT after each 512
//! grains' worth of disk → GD marker + GD → footer marker + footer → end-of-stream marker.
//! Only the source's data ranges are read; all-zero grains are left out; grains are compressed
//! on every core and written in disk order, so the output is the same for any thread count.

mod descriptor;
mod grains;
mod header;
mod hosted;

pub use descriptor::{AdapterType, ContentId, CreateType};
pub use header::GRAIN_SECTORS;
pub use hosted::{write_monolithic_sparse, HostedOptions, HostedReport};

use disk::ordered_map::ordered_map;
use grains::{FramedGrain, GRAIN_BYTES};
use header::*;
use std::fs::File;
use std::io::{self, Write};

#[derive(Debug, thiserror::Error)]
pub enum VmdkError {
    #[error("reading the source image at byte {offset}: {source}")]
    Read { offset: u64, source: io::Error },
    #[error("writing the VMDK: {0}")]
    Write(#[source] io::Error),
    #[error("compressing {0}")]
    Compress(String),
    #[error("the VMDK would pass 2 TiB, beyond a grain table entry's 32-bit sector offset")]
    TooLarge,
    #[error("the descriptor is {0} bytes, more than its {DESCRIPTOR_SECTORS} sectors")]
    DescriptorTooLong(usize),
}

/// How to write the stream.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub adapter: AdapterType,
    pub content_id: ContentId,
    /// The file name the descriptor's extent line names (the VMDK's own base name).
    pub extent_file: String,
    /// zlib level 0–9.
    pub level: u32,
    pub workers: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamReport {
    /// Virtual disk size in bytes (the source size rounded up to a whole grain).
    pub capacity_bytes: u64,
    pub grains: u64,
    pub bytes_written: u64,
}

/// Grains before the first grain: header, descriptor, padding to a whole grain.
const OVER_HEAD: u64 = GRAIN_SECTORS;

/// Write `src` (a raw disk image) as a stream-optimized VMDK to `out`. `progress` gets the
/// source bytes done so far.
pub fn write_stream_optimized<W: Write>(
    src: &File,
    out: W,
    opts: &StreamOptions,
    progress: &dyn Fn(u64),
) -> Result<StreamReport, VmdkError> {
    let src_len = src
        .metadata()
        .map_err(|e| VmdkError::Read {
            offset: 0,
            source: e,
        })?
        .len();
    let capacity_grains = src_len.div_ceil(GRAIN_BYTES);
    let capacity = capacity_grains * GRAIN_SECTORS;
    let ranges = disk::sparse::data_ranges(src).map_err(|e| VmdkError::Read {
        offset: 0,
        source: e,
    })?;
    let runs = grains::grain_runs(&ranges, capacity_grains);

    let mut stream = Stream::new(out, capacity);
    stream.begin(opts)?;
    let mut done = 0u64;
    ordered_map(
        grains::read_batches(src, src_len, &runs),
        opts.workers,
        opts.workers * 4,
        || grains::new_compressor(opts.level),
        grains::compress_batch,
        |batch: Vec<FramedGrain>| {
            for g in batch {
                stream.grain(g)?;
            }
            done += grains::BATCH_BYTES;
            progress(done.min(src_len));
            Ok(())
        },
    )?;
    stream.finish()
}

/// The sequential writer: tracks the sector position and the grain tables.
struct Stream<W: Write> {
    out: W,
    capacity: u64,
    sector: u64,
    grains: u64,
    /// Entries of the grain table being filled (`next_table`).
    table: Vec<u32>,
    next_table: u64,
    /// Sector of each grain table's data.
    directory: Vec<u32>,
}

impl<W: Write> Stream<W> {
    fn new(out: W, capacity: u64) -> Self {
        let tables = capacity.div_ceil(GRAIN_SECTORS * NUM_GTES_PER_GT as u64);
        Stream {
            out,
            capacity,
            sector: 0,
            grains: 0,
            table: vec![0; NUM_GTES_PER_GT as usize],
            next_table: 0,
            directory: Vec::with_capacity(tables as usize),
        }
    }

    fn tables(&self) -> u64 {
        self.capacity
            .div_ceil(GRAIN_SECTORS * NUM_GTES_PER_GT as u64)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), VmdkError> {
        debug_assert_eq!(bytes.len() % SECTOR, 0);
        self.out.write_all(bytes).map_err(VmdkError::Write)?;
        self.sector += (bytes.len() / SECTOR) as u64;
        Ok(())
    }

    fn sector_u32(&self) -> Result<u32, VmdkError> {
        u32::try_from(self.sector).map_err(|_| VmdkError::TooLarge)
    }

    fn begin(&mut self, opts: &StreamOptions) -> Result<(), VmdkError> {
        let header = SparseExtentHeader::stream_optimized(self.capacity, GD_AT_END, OVER_HEAD);
        self.put(&header.to_bytes())?;
        let text = descriptor::render(
            CreateType::StreamOptimized,
            self.capacity,
            &opts.extent_file,
            opts.adapter,
            &opts.content_id,
        );
        let room = (DESCRIPTOR_SECTORS as usize) * SECTOR;
        if text.len() > room {
            return Err(VmdkError::DescriptorTooLong(text.len()));
        }
        // The descriptor, zero-padded, then zeros up to the first grain.
        let mut pad = text.into_bytes();
        pad.resize(((OVER_HEAD - DESCRIPTOR_OFFSET) as usize) * SECTOR, 0);
        self.put(&pad)
    }

    fn grain(&mut self, g: FramedGrain) -> Result<(), VmdkError> {
        let table = g.grain / NUM_GTES_PER_GT as u64;
        while self.next_table < table {
            self.flush_table()?;
        }
        self.table[(g.grain % NUM_GTES_PER_GT as u64) as usize] = self.sector_u32()?;
        self.grains += 1;
        self.put(&g.framed)
    }

    /// GT marker + the grain table (every table is written, even an empty one, so any reader
    /// finds a table behind each directory entry).
    fn flush_table(&mut self) -> Result<(), VmdkError> {
        let gt_sectors = (NUM_GTES_PER_GT as u64 * 4).div_ceil(SECTOR as u64);
        self.put(&metadata_marker(gt_sectors, MARKER_GT))?;
        self.directory.push(self.sector_u32()?);
        let mut bytes: Vec<u8> = self.table.iter().flat_map(|e| e.to_le_bytes()).collect();
        bytes.resize(gt_sectors as usize * SECTOR, 0);
        self.put(&bytes)?;
        self.table.iter_mut().for_each(|e| *e = 0);
        self.next_table += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<StreamReport, VmdkError> {
        while self.next_table < self.tables() {
            self.flush_table()?;
        }
        let gd_sectors = (self.directory.len() as u64 * 4).div_ceil(SECTOR as u64);
        self.put(&metadata_marker(gd_sectors, MARKER_GD))?;
        let gd_offset = self.sector;
        let mut bytes: Vec<u8> = self
            .directory
            .iter()
            .flat_map(|e| e.to_le_bytes())
            .collect();
        bytes.resize(gd_sectors as usize * SECTOR, 0);
        self.put(&bytes)?;
        // Footer + end-of-stream: the last two sectors, where qemu and VirtualBox look for them.
        self.put(&metadata_marker(1, MARKER_FOOTER))?;
        let footer = SparseExtentHeader::stream_optimized(self.capacity, gd_offset, OVER_HEAD);
        self.put(&footer.to_bytes())?;
        self.put(&metadata_marker(0, MARKER_EOS))?;
        self.out.flush().map_err(VmdkError::Write)?;
        Ok(StreamReport {
            capacity_bytes: self.capacity * SECTOR as u64,
            grains: self.grains,
            bytes_written: self.sector * SECTOR as u64,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
