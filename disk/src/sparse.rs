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
}
