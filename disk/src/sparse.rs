//! Where a sparse file holds data: `SEEK_DATA`/`SEEK_HOLE`, so that compressors, bmap and
//! VM writers never read (or spend CPU on) the holes of a multi-GiB raw image.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::io::AsRawFd;

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
        let end = unsafe { libc::lseek(fd, start, libc::SEEK_HOLE) };
        if end < 0 {
            return Err(io::Error::last_os_error());
        }
        ranges.push(start as u64..end as u64);
        pos = end;
    }
    Ok(ranges)
}

/// Bytes per `copy_file_range` call, so a caller can follow (and start write-back of) the copy.
const COPY_CHUNK: usize = 32 << 20;

/// Copy the data ranges of `src` into `dst` at the same offsets, in the kernel
/// (`copy_file_range`: a reflink where the filesystem shares blocks), making `dst` as long as
/// `src`; its holes stay holes. `copied` gets the byte count of each piece done.
pub fn copy_data_ranges(src: &File, dst: &File, copied: &mut dyn FnMut(u64)) -> io::Result<()> {
    let len = src.metadata()?.len();
    dst.set_len(len)?;
    for r in data_ranges(src)? {
        let (mut off_in, mut off_out) = (r.start as i64, r.start as i64);
        let mut left = (r.end - r.start) as usize;
        while left > 0 {
            // SAFETY: both descriptors are open files; the offsets are ours.
            let n = unsafe {
                libc::copy_file_range(
                    src.as_raw_fd(),
                    &mut off_in,
                    dst.as_raw_fd(),
                    &mut off_out,
                    left.min(COPY_CHUNK),
                    0,
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the source ended at byte {off_in}, inside a data range"),
                ));
            }
            left -= n as usize;
            copied(n as u64);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

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

    #[test]
    fn copies_data_and_keeps_holes() {
        let (src, dst) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
        src.set_len(32 << 20).unwrap();
        src.write_all_at(&[3u8; 8192], 4 << 20).unwrap();
        src.write_all_at(&[4u8; 100], (32 << 20) - 100).unwrap();
        let mut total = 0;
        copy_data_ranges(&src, &dst, &mut |n| total += n).unwrap();
        assert!((8192..=8 << 20).contains(&total), "{total}");
        assert_eq!(dst.metadata().unwrap().len(), 32 << 20);
        let mut a = vec![0u8; 32 << 20];
        let mut b = vec![0u8; 32 << 20];
        src.read_exact_at(&mut a, 0).unwrap();
        dst.read_exact_at(&mut b, 0).unwrap();
        assert!(a == b);
        let data: u64 = data_ranges(&dst)
            .unwrap()
            .iter()
            .map(|r| r.end - r.start)
            .sum();
        assert!(
            data < 8 << 20,
            "the copy is not sparse: {data} bytes of data"
        );
    }
}
