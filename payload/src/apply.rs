//! Pass 2: write a verified payload's partition into a destination (a block device or an image
//! file) and return its kernel. The payload is read again, so every blob is checked once more
//! against the verified manifest (the file may have changed since pass 1); REPLACE_BZ blobs
//! are decoded on every core, written in partition order with large positioned writes, and the
//! written bytes are hashed in order and compared with `new_partition_info`.
//!
//! Runs of all-zero chunks are not written byte by byte: on an image file they stay or become
//! a hole (a range that is already a hole is left alone, one that holds data is punched), on a
//! block device they go through `BLKZEROOUT` (a loop device turns it into a hole punch); if the
//! kernel refuses either, zeros are written. Either way the range reads as zeros afterwards:
//! nothing of the slot's old content survives.

use crate::plan::{OpKind, PlannedOp};
use crate::stream::PayloadStream;
use crate::verify::Verified;
use crate::zeros::{hash_zeros, is_zero, ZEROS};
use crate::{PayloadError, Target};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::os::unix::io::AsRawFd;
use std::sync::Mutex;

/// What apply returns besides the written partition.
#[derive(Debug)]
pub struct Applied {
    /// The kernel, checked against the KERNEL procedure's `new_info`.
    pub kernel: Vec<u8>,
}

/// Operations between reading and writing, per worker: bounds memory to about this many ×
/// (blob + output) per worker.
const IN_FLIGHT_PER_WORKER: usize = 4;

enum Decoded {
    Data(Vec<u8>),
    Zeros(u64),
}

/// Pass 2 (see the module documentation): write the partition into `dst[dst_offset..]`,
/// calling `progress` with the partition bytes written so far. The data is on stable storage
/// (`fdatasync`) when this returns Ok.
pub fn apply<R: Read + Send>(
    reader: R,
    verified: &Verified,
    dst: &File,
    dst_offset: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<Applied, PayloadError> {
    apply_with_threads(
        reader,
        verified,
        dst,
        dst_offset,
        disk::ordered_map::default_workers(),
        progress,
    )
}

/// [`apply`] with `threads` decoding threads.
pub fn apply_with_threads<R: Read + Send>(
    reader: R,
    verified: &Verified,
    dst: &File,
    dst_offset: u64,
    threads: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<Applied, PayloadError> {
    let plan = verified.plan();
    let mut out = Destination::open(dst, dst_offset, plan.partition.size)?;

    let mut stream = PayloadStream::new(reader);
    let mut head_hash = Sha256::new();
    let changed =
        || PayloadError::Changed("its header or manifest differs from the verified one".into());
    // Compared as bytes: the verified manifest is the one that counts.
    let (header, _) = stream
        .read_head_bytes(&mut head_hash)
        .map_err(|e| match e {
            PayloadError::Truncated { .. } | PayloadError::Read { .. } => e,
            _ => changed(),
        })?;
    if <[u8; 32]>::from(head_hash.finalize()) != verified.head_sha256 {
        return Err(changed());
    }
    let blobs_start = header.blobs_start();

    let items = plan.ops.iter().map(|op| {
        let mut data = vec![0u8; (op.data.end - op.data.start) as usize];
        stream.read_exact(&mut data, &format!("the data of {}", op.name))?;
        Ok((op, data))
    });
    let zero_blobs = Mutex::new(HashSet::new());
    let mut partition_hash = Sha256::new();
    let mut kernel = vec![0u8; plan.kernel.size as usize];
    disk::ordered_map::ordered_map(
        items,
        threads.max(1),
        threads.max(1) * IN_FLIGHT_PER_WORKER,
        || (),
        |_, (op, data)| decode(op, data, blobs_start, &zero_blobs).map(|d| (op, d)),
        |(op, decoded)| {
            match op.name.target {
                Target::Partition => {
                    match &decoded {
                        Decoded::Data(d) => {
                            partition_hash.update(d);
                            out.write(op.dst.start, d)?;
                        }
                        Decoded::Zeros(n) => {
                            hash_zeros(&mut partition_hash, *n);
                            out.zeros(op.dst.start..op.dst.start + n)?;
                        }
                    }
                    progress(op.dst.end);
                }
                Target::Kernel => {
                    let range = op.dst.start as usize..op.dst.end as usize;
                    match decoded {
                        Decoded::Data(d) => kernel[range].copy_from_slice(&d),
                        Decoded::Zeros(_) => kernel[range].fill(0),
                    }
                }
            }
            Ok(())
        },
    )?;
    out.finish()?;

    let got: [u8; 32] = partition_hash.finalize().into();
    check_hash("partition", got, plan.partition.sha256)?;
    check_hash("kernel", Sha256::digest(&kernel).into(), plan.kernel.sha256)?;
    Ok(Applied { kernel })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn check_hash(what: &'static str, got: [u8; 32], want: [u8; 32]) -> Result<(), PayloadError> {
    if got != want {
        return Err(PayloadError::ResultHash {
            what,
            got: hex(&got),
            want: hex(&want),
        });
    }
    Ok(())
}

/// Check a blob against the verified manifest and decode it. A blob that once decoded to
/// zeros is remembered by its hash, so the many identical zero chunks are decoded once.
fn decode(
    op: &PlannedOp,
    data: Vec<u8>,
    blobs_start: u64,
    zero_blobs: &Mutex<HashSet<[u8; 32]>>,
) -> Result<Decoded, PayloadError> {
    let at = blobs_start + op.data.start..blobs_start + op.data.end;
    if <[u8; 32]>::from(Sha256::digest(&data)) != op.sha256 {
        return Err(PayloadError::Changed(format!(
            "the data of {} (bytes {}..{}) differs from the verified payload",
            op.name, at.start, at.end
        )));
    }
    let len = op.dst.end - op.dst.start;
    let out = match op.kind {
        OpKind::Replace => data,
        OpKind::ReplaceBz => {
            if zero_blobs
                .lock()
                .expect("zero blob set")
                .contains(&op.sha256)
            {
                return Ok(Decoded::Zeros(len));
            }
            let mut out = Vec::with_capacity(len as usize);
            bzip2::read::BzDecoder::new(&data[..])
                .take(len + 1)
                .read_to_end(&mut out)
                .map_err(|e| PayloadError::Decode {
                    op: op.name,
                    at: at.clone(),
                    why: format!("is not a valid bzip2 stream: {e}"),
                })?;
            if out.len() as u64 != len {
                return Err(PayloadError::Decode {
                    op: op.name,
                    at,
                    why: format!(
                        "decodes to {}{} bytes; its extents hold {len}",
                        out.len(),
                        if out.len() as u64 > len { "+" } else { "" }
                    ),
                });
            }
            if is_zero(&out) {
                zero_blobs.lock().expect("zero blob set").insert(op.sha256);
                return Ok(Decoded::Zeros(len));
            }
            out
        }
    };
    if is_zero(&out) {
        return Ok(Decoded::Zeros(len));
    }
    Ok(Decoded::Data(out))
}

/// The partition's place in the destination, and how zeros get there.
struct Destination<'a> {
    file: &'a File,
    offset: u64,
    block_device: bool,
    /// Data ranges of an image file at the start (a hole there already reads as zeros).
    data: Vec<Range<u64>>,
    /// A run of zero chunks not yet written (partition offsets).
    zeros: Option<Range<u64>>,
    /// Hands written pages to the device as the decoders go, so the final `fdatasync` waits
    /// for the last of them only.
    writeback: Option<disk::writeback::EarlyWriteback>,
}

impl<'a> Destination<'a> {
    fn open(file: &'a File, offset: u64, size: u64) -> Result<Destination<'a>, PayloadError> {
        let io = |what: &str, source| PayloadError::Io {
            what: what.to_string(),
            source,
        };
        let meta = file
            .metadata()
            .map_err(|e| io("reading the destination's metadata", e))?;
        let block_device = meta.file_type().is_block_device();
        let have = if block_device {
            block_device_size(file).map_err(|e| io("reading the block device's size", e))?
        } else {
            meta.len()
        };
        let end = offset.saturating_add(size);
        if end > have {
            return Err(PayloadError::DestinationTooSmall { have, offset, end });
        }
        let data = if meta.is_file() {
            disk::sparse::data_ranges(file).map_err(|e| io("finding the destination's holes", e))?
        } else {
            Vec::new()
        };
        Ok(Destination {
            file,
            offset,
            block_device,
            data,
            zeros: None,
            writeback: Some(disk::writeback::EarlyWriteback::start(file)),
        })
    }

    fn write(&mut self, at: u64, data: &[u8]) -> Result<(), PayloadError> {
        self.flush_zeros()?;
        self.file
            .write_all_at(data, self.offset + at)
            .map_err(|source| PayloadError::Write {
                what: "the partition",
                at: self.offset + at,
                source,
            })
    }

    fn zeros(&mut self, r: Range<u64>) -> Result<(), PayloadError> {
        match &mut self.zeros {
            Some(run) if run.end == r.start => run.end = r.end,
            _ => {
                self.flush_zeros()?;
                self.zeros = Some(r);
            }
        }
        Ok(())
    }

    fn flush_zeros(&mut self) -> Result<(), PayloadError> {
        let Some(r) = self.zeros.take() else {
            return Ok(());
        };
        let abs = self.offset + r.start..self.offset + r.end;
        if self.block_device {
            if zero_out(self.file, &abs).is_ok() {
                return Ok(());
            }
        } else {
            let holds_data = self
                .data
                .iter()
                .any(|d| d.start < abs.end && abs.start < d.end);
            if !holds_data || punch_hole(self.file, &abs).is_ok() {
                return Ok(());
            }
        }
        let mut at = abs.start;
        while at < abs.end {
            let n = (abs.end - at).min(ZEROS.len() as u64) as usize;
            self.file
                .write_all_at(&ZEROS[..n], at)
                .map_err(|source| PayloadError::Write {
                    what: "zeros into the partition",
                    at,
                    source,
                })?;
            at += n as u64;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), PayloadError> {
        self.flush_zeros()?;
        drop(self.writeback.take());
        self.file.sync_data().map_err(|source| PayloadError::Write {
            what: "(fdatasync) the partition",
            at: self.offset,
            source,
        })
    }
}

fn block_device_size(file: &File) -> std::io::Result<u64> {
    let mut size = 0u64;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which lives for the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64, &mut size) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(size)
}

/// `_IOR(0x12, 114, size_t)` and `_IO(0x12, 127)` from linux/fs.h.
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
const BLKZEROOUT: libc::c_ulong = 0x127f;

fn zero_out(file: &File, r: &Range<u64>) -> std::io::Result<()> {
    let range = [r.start, r.end - r.start];
    // SAFETY: BLKZEROOUT reads two u64 (start, length) through the pointer.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKZEROOUT, range.as_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn punch_hole(file: &File, r: &Range<u64>) -> std::io::Result<()> {
    // SAFETY: fallocate on a valid descriptor has no memory-safety requirements.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            r.start as libc::off_t,
            (r.end - r.start) as libc::off_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
