//! Where a sparse file holds data (`SEEK_DATA`/`SEEK_HOLE`), so that compressors, bmap and
//! VM writers never read (or spend CPU on) the holes of a multi-GiB raw image; and `copy`,
//! the one sparse copy every caller uses.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

/// A failed `copy`: which byte range of the source, and why.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("mapping the source's data: {0}")]
    Map(#[source] io::Error),
    #[error("sizing the destination to {len} bytes: {source}")]
    Size { len: u64, source: io::Error },
    #[error("copying bytes {start}..{end}: {source}")]
    Copy {
        start: u64,
        end: u64,
        source: io::Error,
    },
}

/// Byte ranges of `file` that hold data, in order. A filesystem that does not support
/// `SEEK_DATA` reports the whole file as one range, which is always correct, only slower.
pub fn data_ranges(file: &File) -> io::Result<Vec<Range<u64>>> {
    let len = file.metadata()?.len();
    let fd = file.as_raw_fd();
    let mut ranges = Vec::new();
    let mut pos: i64 = 0;
    while (pos as u64) < len {
        // SAFETY: lseek on a valid descriptor has no memory-safety requirements.
        let start = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if start < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ENXIO) => break, // no data after pos
                Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => {
                    return Ok(std::iter::once(0..len).collect())
                }
                _ => return Err(err),
            }
        }
        // SAFETY: lseek on the descriptor `file` owns and keeps open; no memory is passed.
        let end = unsafe { libc::lseek(fd, start, libc::SEEK_HOLE) };
        if end < 0 {
            return Err(io::Error::last_os_error());
        }
        ranges.push(start as u64..end as u64);
        pos = end;
    }
    Ok(ranges)
}

/// Fallback copy granularity: all-zero blocks of this size stay holes in the destination.
const ZERO_BLOCK: usize = 64 << 10;
/// Fallback copy buffer.
const COPY_BUFFER: usize = 16 * ZERO_BLOCK;
/// Bytes per `copy_file_range` call, so `progress` follows the copy (callers start write-back
/// from it).
const KERNEL_CHUNK: u64 = 32 << 20;

/// Copy `src` into `dst` (truncated and sized to `src`'s length) so that the destination's
/// holes are where the source's are: only the data ranges are copied. In the kernel
/// (`copy_file_range`, a reflink where the filesystem can) when it can; else (across
/// filesystems: `EXDEV`; or a filesystem or kernel that does not offer it) by reading and
/// writing, leaving all-zero 64 KiB blocks as holes. `progress` gets the source offset
/// reached, ending at the length.
pub fn copy(src: &File, dst: &File, progress: Option<&dyn Fn(u64)>) -> Result<(), CopyError> {
    copy_with(src, dst, progress, true)
}

fn copy_with(
    src: &File,
    dst: &File,
    progress: Option<&dyn Fn(u64)>,
    mut in_kernel: bool,
) -> Result<(), CopyError> {
    let len = src.metadata().map_err(CopyError::Map)?.len();
    dst.set_len(0)
        .and_then(|_| dst.set_len(len))
        .map_err(|source| CopyError::Size { len, source })?;
    let mut buf = Vec::new();
    for r in data_ranges(src).map_err(CopyError::Map)? {
        let mut at = r.start;
        if in_kernel {
            match copy_range_in_kernel(src, dst, r.clone(), r.start, progress) {
                Ok(done) => at = done,
                Err(source) => {
                    return Err(CopyError::Copy {
                        start: r.start,
                        end: r.end,
                        source,
                    })
                }
            }
            if at < r.end {
                tracing::debug!(at, "copy_file_range unavailable here: reading and writing");
                in_kernel = false;
            }
        }
        if at < r.end {
            if buf.is_empty() {
                buf = vec![0u8; COPY_BUFFER];
            }
            copy_range_by_reading(src, dst, at..r.end, at, &mut buf, progress).map_err(
                |source| CopyError::Copy {
                    start: at,
                    end: r.end,
                    source,
                },
            )?;
        }
    }
    if let Some(p) = progress {
        p(len);
    }
    Ok(())
}

/// Copy the first `len` bytes of `src` into `dst` at byte `at` (an archive's member): in the
/// kernel when it can, else (across filesystems: `EXDEV`, or where the kernel cannot) by
/// reading and writing. The fallback leaves all-zero blocks unwritten, so that region of `dst`
/// must read as zeros (past its end, or a hole) and the caller sizes `dst`.
pub fn copy_at(src: &File, len: u64, dst: &File, at: u64) -> io::Result<()> {
    copy_at_with(src, len, dst, at, true)
}

fn copy_at_with(src: &File, len: u64, dst: &File, at: u64, in_kernel: bool) -> io::Result<()> {
    let reached = if in_kernel {
        copy_range_in_kernel(src, dst, 0..len, at, None)?
    } else {
        0
    };
    if reached < len {
        let mut buf = vec![0u8; COPY_BUFFER.min(len as usize)];
        copy_range_by_reading(src, dst, reached..len, at + reached, &mut buf, None)?;
    }
    Ok(())
}

/// `copy_file_range` of `src`'s range `r` to `dst` from byte `to`; returns the source offset
/// reached, short of `r.end` when the kernel says the copy cannot be done this way (the
/// caller reads and writes the rest).
fn copy_range_in_kernel(
    src: &File,
    dst: &File,
    r: Range<u64>,
    to: u64,
    progress: Option<&dyn Fn(u64)>,
) -> io::Result<u64> {
    let (mut off_in, mut off_out) = (r.start as i64, to as i64);
    while (off_in as u64) < r.end {
        let left = (r.end - off_in as u64).min(KERNEL_CHUNK) as usize;
        // SAFETY: both descriptors are open files; the offsets are ours.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                &mut off_out,
                left,
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                // Across filesystems; not offered by this filesystem, kernel or seccomp
                // policy; a file type it does not handle.
                Some(
                    libc::EXDEV | libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL | libc::EPERM,
                ) => Ok(off_in as u64),
                Some(libc::EINTR) => continue,
                _ => Err(e),
            };
        }
        if n == 0 {
            // Some filesystems report nothing copied instead of an error.
            return Ok(off_in as u64);
        }
        if let Some(p) = progress {
            p(off_in as u64);
        }
    }
    Ok(r.end)
}

/// Read `src`'s range `r` and write it to `dst` from byte `to`, all-zero blocks left unwritten.
fn copy_range_by_reading(
    src: &File,
    dst: &File,
    r: Range<u64>,
    to: u64,
    buf: &mut [u8],
    progress: Option<&dyn Fn(u64)>,
) -> io::Result<()> {
    let mut at = r.start;
    while at < r.end {
        let n = ((r.end - at) as usize).min(buf.len());
        src.read_exact_at(&mut buf[..n], at)?;
        let out = to + (at - r.start);
        for (i, block) in buf[..n].chunks(ZERO_BLOCK).enumerate() {
            if block.iter().any(|&b| b != 0) {
                dst.write_all_at(block, out + (i * ZERO_BLOCK) as u64)?;
            }
        }
        at += n as u64;
        if let Some(p) = progress {
            p(at);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 40 MiB sparse file: data at the start, in the middle (with a zero run inside) and
    /// at the very end.
    fn sparse_source() -> File {
        let f = tempfile::tempfile().unwrap();
        f.set_len(40 << 20).unwrap();
        f.write_all_at(&[7u8; 5000], 100_000).unwrap();
        let mut middle = vec![3u8; 3 << 20];
        middle[1 << 20..2 << 20].fill(0);
        f.write_all_at(&middle, 16 << 20).unwrap();
        f.write_all_at(&[9u8; 10], (40 << 20) - 10).unwrap();
        f
    }

    fn contents(f: &File) -> Vec<u8> {
        let mut b = vec![0u8; f.metadata().unwrap().len() as usize];
        f.read_exact_at(&mut b, 0).unwrap();
        b
    }

    fn data_bytes(f: &File) -> u64 {
        data_ranges(f)
            .unwrap()
            .iter()
            .map(|r| r.end - r.start)
            .sum()
    }

    #[test]
    fn copy_at_places_the_file_at_an_offset_both_ways() {
        let src = sparse_source();
        let len = src.metadata().unwrap().len();
        let whole = contents(&src);
        for in_kernel in [true, false] {
            let dst = tempfile::tempfile().unwrap();
            dst.write_all_at(b"header", 0).unwrap();
            copy_at_with(&src, len, &dst, 512, in_kernel).unwrap();
            dst.set_len(512 + len + 1024).unwrap();
            let got = contents(&dst);
            assert_eq!(&got[..6], b"header");
            assert!(
                got[512..512 + len as usize] == whole[..],
                "in_kernel {in_kernel}"
            );
            assert!(got[512 + len as usize..].iter().all(|&b| b == 0));
            // A source shorter than asked for is an error, not a short member.
            let e = copy_at_with(&src, len + 1, &dst, 512, in_kernel).unwrap_err();
            assert_eq!(
                e.kind(),
                io::ErrorKind::UnexpectedEof,
                "in_kernel {in_kernel}"
            );
        }
    }

    #[test]
    fn copy_keeps_data_and_holes_both_ways() {
        let src = sparse_source();
        for in_kernel in [true, false] {
            // A longer destination with old data: it is truncated to the source first.
            let dst = tempfile::tempfile().unwrap();
            dst.write_all_at(&[1u8; 4096], 60 << 20).unwrap();
            let reached = std::cell::Cell::new(0);
            copy_with(&src, &dst, Some(&|n| reached.set(n)), in_kernel).unwrap();
            assert!(contents(&src) == contents(&dst), "in_kernel {in_kernel}");
            assert_eq!(reached.get(), 40 << 20);
            // The holes stay holes (within the filesystem's block granularity).
            assert!(
                data_bytes(&dst) <= data_bytes(&src),
                "in_kernel {in_kernel}"
            );
            assert!(data_bytes(&dst) < 8 << 20, "in_kernel {in_kernel}");
        }
    }

    #[test]
    fn copy_reads_and_writes_where_the_kernel_cannot_copy() {
        // A source on another filesystem (tmpfs) than the destination: EXDEV, then the
        // fallback; where both are one filesystem this still checks the result.
        let shm = tempfile::tempfile_in("/dev/shm").expect("a tmpfs at /dev/shm");
        let src = sparse_source();
        copy(&src, &shm, None).unwrap();
        let dst = tempfile::tempfile().unwrap();
        copy(&shm, &dst, None).unwrap();
        assert!(contents(&src) == contents(&dst));
    }

    #[test]
    fn a_destination_that_cannot_be_sized_is_a_named_error() {
        let dev_null = File::open("/dev/null").unwrap();
        let e = copy(&sparse_source(), &dev_null, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sizing the destination to 41943040 bytes"),
            "{e}"
        );
    }

    #[test]
    fn finds_data_between_holes() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(&[1u8; 4096], 8 << 20).unwrap();
        f.write_all_at(&[2u8; 4096], 40 << 20).unwrap();
        let r = data_ranges(&f).unwrap();
        // tmpfs and ext4 report block-granular extents; each write must be covered.
        let covers = |off: u64| r.iter().any(|x| x.start <= off && off + 4096 <= x.end);
        assert!(covers(8 << 20) && covers(40 << 20), "{r:?}");
        let total: u64 = r.iter().map(|x| x.end - x.start).sum();
        assert!(total < 16 << 20, "holes were reported as data: {r:?}");
    }
}
