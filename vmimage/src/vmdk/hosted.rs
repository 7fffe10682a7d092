//! The hosted sparse extent with an embedded descriptor, `createType="monolithicSparse"`
//! (VMware Virtual Disk Format 5.0, "Hosted Sparse Extents"): the disk VMware Workstation,
//! Fusion and Player open from a `.vmx`, and qemu-img's default VMDK.
//!
//! Sector layout, as qemu and VMware write it:
//! header | descriptor (20 sectors) | redundant grain directory | its grain tables |
//! grain directory | its grain tables | padding to a whole grain (`overHead`) | grains…
//! Every grain table is allocated; only grains holding non-zero data are stored, uncompressed,
//! in disk order. The grains are written first (the source read and checked for zeros on every
//! core), the metadata last, when the grains' places are known.

use super::descriptor::{self, AdapterType, ContentId, CreateType};
use super::grains::{self, is_zero, GrainBatch, GRAIN_BYTES};
use super::header::*;
use super::VmdkError;
use disk::ordered_map::ordered_map;
use std::fs::File;
use std::os::unix::fs::FileExt;

#[derive(Debug, Clone)]
pub struct HostedOptions {
    pub adapter: AdapterType,
    pub content_id: ContentId,
    /// The file name the descriptor's extent line names (the VMDK's own base name).
    pub extent_file: String,
    pub workers: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedReport {
    /// Virtual disk size in bytes (the source size rounded up to a whole grain).
    pub capacity_bytes: u64,
    pub grains: u64,
    pub file_size: u64,
}

/// Where the metadata goes, in sectors.
struct Plan {
    capacity: u64,
    tables: u64,
    gd_sectors: u64,
    gt_sectors: u64,
    rgd_offset: u64,
    gd_offset: u64,
    over_head: u64,
}

impl Plan {
    fn new(capacity_grains: u64) -> Plan {
        let tables = capacity_grains.div_ceil(NUM_GTES_PER_GT as u64);
        let gd_sectors = (tables * 4).div_ceil(SECTOR as u64);
        let gt_sectors = (NUM_GTES_PER_GT as u64 * 4).div_ceil(SECTOR as u64);
        let rgd_offset = DESCRIPTOR_OFFSET + DESCRIPTOR_SECTORS;
        let gd_offset = rgd_offset + gd_sectors + tables * gt_sectors;
        let over_head =
            (gd_offset + gd_sectors + tables * gt_sectors).next_multiple_of(GRAIN_SECTORS);
        Plan {
            capacity: capacity_grains * GRAIN_SECTORS,
            tables,
            gd_sectors,
            gt_sectors,
            rgd_offset,
            gd_offset,
            over_head,
        }
    }

    /// A grain directory at `at` and the tables after it, as bytes.
    fn directory_and_tables(&self, at: u64, entries: &[u32]) -> Result<Vec<u8>, VmdkError> {
        let first_table = at + self.gd_sectors;
        let mut b = Vec::with_capacity(
            ((self.gd_sectors + self.tables * self.gt_sectors) as usize) * SECTOR,
        );
        for t in 0..self.tables {
            let sector = u32::try_from(first_table + t * self.gt_sectors)
                .map_err(|_| VmdkError::TooLarge)?;
            b.extend_from_slice(&sector.to_le_bytes());
        }
        b.resize(self.gd_sectors as usize * SECTOR, 0);
        for e in entries {
            b.extend_from_slice(&e.to_le_bytes());
        }
        b.resize(
            ((self.gd_sectors + self.tables * self.gt_sectors) as usize) * SECTOR,
            0,
        );
        Ok(b)
    }
}

/// The grains of one batch that hold data (indices within the batch).
struct CheckedBatch {
    batch: GrainBatch,
    data_grains: Vec<usize>,
}

/// Write `src` (a raw disk image) as a monolithicSparse VMDK into `out` (truncated first).
/// `progress` gets the source bytes done so far.
pub fn write_monolithic_sparse(
    src: &File,
    out: &File,
    opts: &HostedOptions,
    progress: &dyn Fn(u64),
) -> Result<HostedReport, VmdkError> {
    let read_err = |source| VmdkError::Read { offset: 0, source };
    let src_len = src.metadata().map_err(read_err)?.len();
    let capacity_grains = src_len.div_ceil(GRAIN_BYTES);
    let plan = Plan::new(capacity_grains);
    let ranges = disk::sparse::data_ranges(src).map_err(read_err)?;
    let runs = grains::grain_runs(&ranges, capacity_grains);
    out.set_len(0).map_err(VmdkError::Write)?;

    let mut entries = vec![0u32; (plan.tables * NUM_GTES_PER_GT as u64) as usize];
    let mut next_sector = plan.over_head;
    let mut stored = 0u64;
    let mut done = 0u64;
    ordered_map(
        grains::read_batches(src, src_len, &runs),
        opts.workers,
        opts.workers * 4,
        || (),
        |_, batch: GrainBatch| {
            let data_grains = batch
                .data
                .chunks(GRAIN_BYTES as usize)
                .enumerate()
                .filter(|(_, g)| !is_zero(g))
                .map(|(i, _)| i)
                .collect();
            Ok(CheckedBatch { batch, data_grains })
        },
        |c: CheckedBatch| {
            // Consecutive data grains go out in one write.
            let mut i = 0;
            while i < c.data_grains.len() {
                let mut j = i + 1;
                while j < c.data_grains.len() && c.data_grains[j] == c.data_grains[j - 1] + 1 {
                    j += 1;
                }
                let (first, count) = (c.data_grains[i], j - i);
                let bytes = &c.batch.data
                    [first * GRAIN_BYTES as usize..(first + count) * GRAIN_BYTES as usize];
                out.write_all_at(bytes, next_sector * SECTOR as u64)
                    .map_err(VmdkError::Write)?;
                for k in 0..count {
                    let grain = c.batch.first_grain + (first + k) as u64;
                    let sector = next_sector + k as u64 * GRAIN_SECTORS;
                    entries[grain as usize] =
                        u32::try_from(sector).map_err(|_| VmdkError::TooLarge)?;
                }
                next_sector += count as u64 * GRAIN_SECTORS;
                stored += count as u64;
                i = j;
            }
            done += c.batch.data.len() as u64;
            progress(done.min(src_len));
            Ok(())
        },
    )?;

    let header = SparseExtentHeader::hosted(
        plan.capacity,
        plan.rgd_offset,
        plan.gd_offset,
        plan.over_head,
    );
    let text = descriptor::render(
        CreateType::MonolithicSparse,
        plan.capacity,
        &opts.extent_file,
        opts.adapter,
        &opts.content_id,
    );
    let room = DESCRIPTOR_SECTORS as usize * SECTOR;
    if text.len() > room {
        return Err(VmdkError::DescriptorTooLong(text.len()));
    }
    let mut head = header.to_bytes().to_vec();
    head.extend_from_slice(text.as_bytes());
    head.resize(plan.rgd_offset as usize * SECTOR, 0);
    head.extend(plan.directory_and_tables(plan.rgd_offset, &entries)?);
    head.extend(plan.directory_and_tables(plan.gd_offset, &entries)?);
    head.resize(plan.over_head as usize * SECTOR, 0);
    out.write_all_at(&head, 0).map_err(VmdkError::Write)?;
    let file_size = next_sector * SECTOR as u64;
    out.set_len(file_size).map_err(VmdkError::Write)?;
    Ok(HostedReport {
        capacity_bytes: plan.capacity * SECTOR as u64,
        grains: stored,
        file_size,
    })
}
