//! Putting a plan on disk: make the byte range read as zeros without writing zeros (punch a
//! hole, or BLKZEROOUT on a block device), write metadata in large sequential chunks,
//! skipping all-zero blocks, and copy file data kernel-side with copy_file_range on two
//! threads while the metadata is written (each file's map blocks go with its data). With an
//! observer (`Blocks`), data goes through user space instead (pread, observe, pwrite) so
//! that it is seen while it is in the cache, and with `DataWrites::Direct` it is read into
//! gathered `O_DIRECT` writes (`direct`).

use super::direct::DirectWriter;
use super::plan::{DataCopy, Plan};
use super::{DataWrites, Ext4Error, BLOCK_SIZE};
use std::fs::File;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Largest single metadata write.
const CHUNK: usize = 8 << 20;
/// `_IO(0x12, 127)`: zero a byte range of a block device.
const BLKZEROOUT: libc::c_ulong = 0x127F;

fn out_err(what: &str, source: std::io::Error) -> Ext4Error {
    Ext4Error::Io {
        path: PathBuf::from(format!("<output: {what}>")),
        source,
    }
}

/// Reports (bytes just copied, total bytes to copy).
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);
/// Sees (first filesystem block, bytes written from it on) for every non-zero write.
pub type Blocks<'a> = &'a (dyn Fn(u64, &[u8]) + Sync);
/// Bytes per read/observe/write step of an observed copy.
const OBSERVED_CHUNK: usize = 1 << 20;

pub fn write(
    plan: Plan,
    out: &File,
    offset: u64,
    threads: usize,
    progress: Progress,
    blocks: Option<Blocks>,
    data: DataWrites,
) -> Result<(), Ext4Error> {
    let len = plan.blocks_count * BLOCK_SIZE;
    zero_range(out, offset, len)?;
    let Plan {
        mut metadata,
        copies,
        ..
    } = plan;
    let total: u64 = copies.iter().map(|c| c.size).sum();
    progress(0, total);
    let shares = split(&copies, threads.max(1));
    std::thread::scope(|s| {
        let workers: Vec<_> = shares
            .iter()
            .map(|share| {
                s.spawn(move || copy_all(share, out, offset, &|n| progress(n, total), blocks, data))
            })
            .collect();
        let meta = write_metadata(&mut metadata, out, offset, blocks);
        let mut result = meta;
        for w in workers {
            let r = w
                .join()
                .unwrap_or_else(|_| Err(Ext4Error::Invalid("a data copy thread panicked".into())));
            if result.is_ok() {
                result = r;
            }
        }
        result
    })
}

/// Make [offset, offset+len) read as zeros without writing zero bytes.
fn zero_range(out: &File, offset: u64, len: u64) -> Result<(), Ext4Error> {
    let meta = out.metadata().map_err(|e| out_err("stat", e))?;
    let fd = out.as_raw_fd();
    if meta.file_type().is_block_device() {
        let range: [u64; 2] = [offset, len];
        // SAFETY: BLKZEROOUT reads two u64 from the pointer.
        let rc = unsafe { libc::ioctl(fd, BLKZEROOUT, range.as_ptr()) };
        if rc != 0 {
            return Err(out_err("BLKZEROOUT", std::io::Error::last_os_error()));
        }
        return Ok(());
    }
    let cur = meta.len();
    if offset < cur {
        let end = (offset + len).min(cur);
        // SAFETY: fallocate on a valid descriptor.
        let rc = unsafe {
            libc::fallocate(
                fd,
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                offset as i64,
                (end - offset) as i64,
            )
        };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EOPNOTSUPP) {
                return Err(out_err("punch hole", err));
            }
            // No hole punching here: write zeros, the only other way to be sure.
            let zeros = vec![0u8; CHUNK];
            let mut pos = offset;
            while pos < end {
                let n = (end - pos).min(CHUNK as u64) as usize;
                out.write_all_at(&zeros[..n], pos)
                    .map_err(|e| out_err("zeroing", e))?;
                pos += n as u64;
            }
        }
    }
    if offset + len > cur {
        out.set_len(offset + len)
            .map_err(|e| out_err("extend", e))?;
    }
    Ok(())
}

fn write_metadata(
    metadata: &mut [(u64, Vec<u8>)],
    out: &File,
    offset: u64,
    blocks: Option<Blocks>,
) -> Result<(), Ext4Error> {
    metadata.sort_by_key(|(b, _)| *b);
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut start = 0u64;
    let mut next = 0u64;
    let flush = |buf: &mut Vec<u8>, start: u64| -> Result<(), Ext4Error> {
        if !buf.is_empty() {
            out.write_all_at(buf, offset + start * BLOCK_SIZE)
                .map_err(|e| out_err("metadata write", e))?;
            if let Some(seen) = blocks {
                seen(start, buf);
            }
            buf.clear();
        }
        Ok(())
    };
    for (blk, data) in metadata.iter() {
        if data.iter().all(|&b| b == 0) {
            continue;
        }
        if buf.is_empty() || *blk != next || buf.len() + data.len() > CHUNK {
            flush(&mut buf, start)?;
            start = *blk;
        }
        buf.extend_from_slice(data);
        next = blk + 1;
    }
    flush(&mut buf, start)
}

/// Divide the copies into `n` contiguous shares of about equal bytes, so each thread writes
/// one ascending region of the image.
fn split(copies: &[DataCopy], n: usize) -> Vec<&[DataCopy]> {
    let total: u64 = copies
        .iter()
        .map(|c| c.maps.iter().map(|m| m.len).sum::<u64>())
        .sum();
    let mut out = Vec::new();
    let mut from = 0;
    let mut acc = 0u64;
    for (i, c) in copies.iter().enumerate() {
        acc += c.maps.iter().map(|m| m.len).sum::<u64>();
        if out.len() + 1 < n && acc * n as u64 >= total * (out.len() as u64 + 1) {
            out.push(&copies[from..=i]);
            from = i + 1;
        }
    }
    out.push(&copies[from..]);
    out
}

fn copy_all(
    copies: &[DataCopy],
    out: &File,
    offset: u64,
    copied: &dyn Fn(u64),
    blocks: Option<Blocks>,
    data: DataWrites,
) -> Result<(), Ext4Error> {
    let mut fallback: Option<Vec<u8>> = None;
    let mut observed = blocks.map(|seen| (seen, Sink::new(data, out)));
    for c in copies {
        let src = File::open(&c.source).map_err(|e| src_err(&c.source, e))?;
        for m in &c.maps {
            let from = m.logical * BLOCK_SIZE;
            let end = ((m.logical + m.len) * BLOCK_SIZE).min(c.size);
            if end <= from {
                continue;
            }
            let to = offset + m.physical * BLOCK_SIZE;
            match observed.as_mut() {
                Some((seen, sink)) => {
                    let piece = Piece {
                        read: &mut |buf, at| {
                            src.read_exact_at(buf, from + at)
                                .map_err(|e| src_err(&c.source, e))
                        },
                        len: end - from,
                        block: m.physical,
                    };
                    copy_observed(piece, out, offset, sink, *seen)?
                }
                None => copy_range(&src, &c.source, from, end - from, out, to, &mut fallback)?,
            }
        }
        // The map blocks follow the data: written here, they continue the same run.
        for (block, bytes) in &c.map_blocks {
            match observed.as_mut() {
                Some((seen, sink)) => {
                    let piece = Piece {
                        read: &mut |buf, at| {
                            let at = at as usize;
                            buf.copy_from_slice(&bytes[at..at + buf.len()]);
                            Ok(())
                        },
                        len: bytes.len() as u64,
                        block: *block,
                    };
                    copy_observed(piece, out, offset, sink, *seen)?
                }
                None => out
                    .write_all_at(bytes, offset + block * BLOCK_SIZE)
                    .map_err(|e| out_err("map block write", e))?,
            }
        }
        copied(c.size);
    }
    if let Some((_, Sink::Direct(w))) = observed {
        w.finish().map_err(|e| out_err("data write", e))?;
    }
    Ok(())
}

/// Where an observed copy puts the data it has read and shown.
enum Sink {
    /// A buffer for pread and pwrite through the page cache.
    Cached(Vec<u8>),
    /// Gathered direct writes, read straight into their buffer.
    Direct(DirectWriter),
}

impl Sink {
    fn new(data: DataWrites, out: &File) -> Sink {
        if data == DataWrites::Direct {
            match DirectWriter::new(out) {
                Ok(w) => return Sink::Direct(w),
                Err(e) => tracing::debug!("no direct writer ({e}): data goes through the cache"),
            }
        }
        Sink::Cached(vec![0u8; OBSERVED_CHUNK])
    }
}

/// Fills the buffer with a piece's bytes from the given offset in the piece on.
type ReadAt<'p> = dyn FnMut(&mut [u8], u64) -> Result<(), Ext4Error> + 'p;

/// `len` bytes bound for filesystem block `block`, from a source file or from memory.
struct Piece<'p> {
    read: &'p mut ReadAt<'p>,
    len: u64,
    block: u64,
}

fn src_err(path: &Path, source: std::io::Error) -> Ext4Error {
    Ext4Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Copy a piece through the sink, showing each part of it to `seen` as it is read.
fn copy_observed(
    piece: Piece,
    out: &File,
    offset: u64,
    sink: &mut Sink,
    seen: Blocks,
) -> Result<(), Ext4Error> {
    let Piece {
        read,
        mut len,
        mut block,
    } = piece;
    let mut from = 0u64;
    while len > 0 {
        let at = offset + block * BLOCK_SIZE;
        let n = match sink {
            Sink::Cached(buf) => {
                let n = (len as usize).min(buf.len());
                let part = &mut buf[..n];
                read(part, from)?;
                out.write_all_at(part, at)
                    .map_err(|e| out_err("data write", e))?;
                seen(block, part);
                n
            }
            Sink::Direct(w) => {
                let part = w
                    .room(at, len as usize)
                    .map_err(|e| out_err("data write", e))?;
                let n = part.len();
                read(part, from)?;
                seen(block, part);
                w.fill(n);
                n
            }
        };
        from += n as u64;
        len -= n as u64;
        block += (n as u64).div_ceil(BLOCK_SIZE);
    }
    Ok(())
}

/// Copy `len` bytes kernel-side; fall back to read/pwrite where copy_file_range cannot go.
fn copy_range(
    src: &File,
    path: &Path,
    mut from: u64,
    mut len: u64,
    out: &File,
    mut to: u64,
    fallback: &mut Option<Vec<u8>>,
) -> Result<(), Ext4Error> {
    while len > 0 && fallback.is_none() {
        let mut off_in = from as i64;
        let mut off_out = to as i64;
        // SAFETY: valid descriptors and offset pointers.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                out.as_raw_fd(),
                &mut off_out,
                len as usize,
                0,
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EXDEV | libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL) => {
                    *fallback = Some(vec![0u8; 1 << 20]);
                    break;
                }
                Some(libc::EINTR) => continue,
                _ => return Err(src_err(path, err)),
            }
        }
        if n == 0 {
            return Err(Ext4Error::Invalid(format!(
                "{}: file shrank while being copied",
                path.display()
            )));
        }
        from += n as u64;
        to += n as u64;
        len -= n as u64;
    }
    if let Some(buf) = fallback.as_mut() {
        while len > 0 {
            let n = (len as usize).min(buf.len());
            src.read_exact_at(&mut buf[..n], from)
                .map_err(|e| src_err(path, e))?;
            out.write_all_at(&buf[..n], to)
                .map_err(|e| out_err("data write", e))?;
            from += n as u64;
            to += n as u64;
            len -= n as u64;
        }
    }
    Ok(())
}
