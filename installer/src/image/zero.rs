//! Zeroing a byte range of the target without writing the zeros: BLKZEROOUT on a block
//! device (the kernel guarantees zeros, unlike discard), a punched hole in a regular file.
//! Falls back to writing zeros when the device supports neither.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

/// linux/fs.h: `#define BLKZEROOUT _IO(0x12,127)`.
const BLKZEROOUT: libc::c_ulong = 0x127f;
/// The kernel wants 512-byte aligned ranges for BLKZEROOUT.
const ALIGN: u64 = 512;

/// Zero [start, start+len) of `target`.
pub fn zero_range(target: &File, is_block: bool, start: u64, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let a = start.div_ceil(ALIGN) * ALIGN;
    let b = ((start + len) / ALIGN) * ALIGN;
    if a >= b {
        return write_zeros(target, start, len);
    }
    write_zeros(target, start, a - start)?;
    let fast = if is_block {
        blkzeroout(target, a, b - a)
    } else {
        punch_hole(target, a, b - a)
    };
    if let Err(e) = fast {
        tracing::debug!("fast zeroing unavailable ({e}); writing zeros");
        write_zeros(target, a, b - a)?;
    }
    write_zeros(target, b, start + len - b)
}

fn blkzeroout(f: &File, start: u64, len: u64) -> io::Result<()> {
    let range: [u64; 2] = [start, len];
    // SAFETY: BLKZEROOUT reads a u64[2] from the pointer; fd is valid.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), BLKZEROOUT as _, range.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn punch_hole(f: &File, start: u64, len: u64) -> io::Result<()> {
    // SAFETY: plain syscall on a valid descriptor.
    let rc = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            start as libc::off_t,
            len as libc::off_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn write_zeros(f: &File, mut start: u64, mut len: u64) -> io::Result<()> {
    let zeros = vec![0u8; len.min(1 << 20) as usize];
    while len > 0 {
        let n = len.min(zeros.len() as u64) as usize;
        f.write_all_at(&zeros[..n], start)?;
        start += n as u64;
        len -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn zeroes_unaligned_ranges_in_files() {
        let f = tempfile::tempfile().unwrap();
        f.write_all_at(&vec![0xAAu8; 100_000], 0).unwrap();
        zero_range(&f, false, 1000, 50_000).unwrap();
        let mut back = vec![0u8; 100_000];
        f.read_exact_at(&mut back, 0).unwrap();
        assert!(back[..1000].iter().all(|&b| b == 0xAA));
        assert!(back[1000..51_000].iter().all(|&b| b == 0));
        assert!(back[51_000..].iter().all(|&b| b == 0xAA));
        assert_eq!(f.metadata().unwrap().len(), 100_000);
    }
}
