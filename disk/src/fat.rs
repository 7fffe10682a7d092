//! The EFI system partition: a FAT filesystem (the `fatfs` crate) written at a byte range.
//!
//! The volume is formatted in place inside the image file through `ByteRange`, a window onto
//! the file, and filled from a list of (path, bytes). Volume id and every timestamp come from
//! the caller, so the bytes depend only on the inputs.

use fatfs::{Date, DateTime, FileSystem, FormatVolumeOptions, FsOptions, Time, TimeProvider};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

#[derive(Debug, thiserror::Error)]
pub enum FatError {
    #[error("FAT at bytes {start}..{end}: {source}")]
    Io {
        start: u64,
        end: u64,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// What decides the bytes of the filesystem besides its files.
#[derive(Debug, Clone)]
pub struct FatParams {
    /// At most 11 characters (stored upper case, space padded), e.g. `EFI-SYSTEM`.
    pub label: String,
    pub volume_id: u32,
    /// Seconds since the Unix epoch (SOURCE_DATE_EPOCH) for every directory entry.
    pub timestamp: i64,
}

/// A `Read + Write + Seek` window onto `[start, start + len)` of a file, for `fatfs`.
#[derive(Debug)]
pub struct ByteRange<'a> {
    file: &'a File,
    start: u64,
    len: u64,
    pos: u64,
}

impl<'a> ByteRange<'a> {
    pub fn new(file: &'a File, start: u64, len: u64) -> Self {
        ByteRange {
            file,
            start,
            len,
            pos: 0,
        }
    }
}

impl Read for ByteRange<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.start + self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Write for ByteRange<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pos + buf.len() as u64 > self.len {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write beyond the end of the partition",
            ));
        }
        self.file.write_all_at(buf, self.start + self.pos)?;
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for ByteRange<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(d) => self.len as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if pos < 0 || pos > self.len as i128 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek outside the partition",
            ));
        }
        self.pos = pos as u64;
        Ok(self.pos)
    }
}

/// `fatfs` asks a `TimeProvider` for "now"; ours answers SOURCE_DATE_EPOCH.
#[derive(Debug)]
struct FixedTime(DateTime);

impl TimeProvider for FixedTime {
    fn get_current_date(&self) -> Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> DateTime {
        self.0
    }
}

/// DOS date and time (UTC) of a Unix time, clamped to DOS's 1980..=2107.
pub fn dos_datetime(unix: i64) -> DateTime {
    let days = unix.div_euclid(86400);
    let secs = unix.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    if y < 1980 {
        return DateTime {
            date: Date {
                year: 1980,
                month: 1,
                day: 1,
            },
            time: Time {
                hour: 0,
                min: 0,
                sec: 0,
                millis: 0,
            },
        };
    }
    let y = y.min(2107);
    DateTime {
        date: Date {
            year: y as u16,
            month: m as u16,
            day: d as u16,
        },
        time: Time {
            hour: (secs / 3600) as u16,
            min: (secs / 60 % 60) as u16,
            sec: (secs % 60) as u16,
            millis: 0,
        },
    }
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01
/// (H. Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// Format a FAT volume over `[offset, offset + size)` of `out` and write `files` into it
/// (paths with `/`, parents created). FAT12/16/32 is chosen by size as mkfs.vfat does
/// (FAT16 for the 128 MiB ESP). The range's previous content does not matter: it is
/// punched to a hole first.
pub fn write_fat(
    out: &File,
    offset: u64,
    size: u64,
    params: &FatParams,
    files: &[(String, Vec<u8>)],
) -> Result<(), FatError> {
    let io_err = |source| FatError::Io {
        start: offset,
        end: offset + size,
        source,
    };
    if params.label.len() > 11 || !params.label.is_ascii() {
        return Err(FatError::Invalid(format!(
            "FAT label {:?} is longer than 11 ASCII characters",
            params.label
        )));
    }
    let mut label = [b' '; 11];
    label[..params.label.len()].copy_from_slice(params.label.to_ascii_uppercase().as_bytes());
    punch_hole(out, offset, size).map_err(io_err)?;

    let opts = FormatVolumeOptions::new()
        .volume_id(params.volume_id)
        .volume_label(label);
    fatfs::format_volume(ByteRange::new(out, offset, size), opts).map_err(io_err)?;

    // fatfs needs a 'static time provider; one small leak per filesystem written.
    let time: &'static FixedTime = Box::leak(Box::new(FixedTime(dos_datetime(params.timestamp))));
    let fs = FileSystem::new(
        ByteRange::new(out, offset, size),
        FsOptions::new()
            .time_provider(time)
            .update_accessed_date(false),
    )
    .map_err(io_err)?;
    let mut sorted: Vec<&(String, Vec<u8>)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, data) in sorted {
        let file_err = |source| FatError::File {
            path: path.clone(),
            source,
        };
        let path = path.trim_start_matches('/');
        let mut dir = fs.root_dir();
        let mut parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let name = parts
            .pop()
            .ok_or_else(|| FatError::Invalid(format!("empty FAT path {path:?}")))?;
        for p in parts {
            dir = dir.create_dir(p).map_err(file_err)?;
        }
        let mut f = dir.create_file(name).map_err(file_err)?;
        f.truncate().map_err(file_err)?;
        f.write_all(data).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::WriteZero | io::ErrorKind::Other => {
                FatError::Invalid(format!(
                    "{path}: the FAT filesystem of {size} bytes has no room for its {} bytes ({e})",
                    data.len()
                ))
            }
            _ => file_err(e),
        })?;
        f.flush().map_err(file_err)?;
    }
    fs.unmount().map_err(io_err)?;
    crate::fat_dots::repair_dot_entries(out, offset).map_err(io_err)?;
    Ok(())
}

/// The content of file `path` (`/`-separated, e.g. `coreos/vmlinuz-a`; a leading `/` is
/// ignored) of the FAT volume at `[offset, offset + len)`, or None when it does not exist.
/// Nothing is written (open `file` read-only to be sure).
pub fn read_file(
    file: &File,
    offset: u64,
    len: u64,
    path: &str,
) -> Result<Option<Vec<u8>>, FatError> {
    let io_err = |source| FatError::Io {
        start: offset,
        end: offset + len,
        source,
    };
    let fs = FileSystem::new(
        ByteRange::new(file, offset, len),
        FsOptions::new().update_accessed_date(false),
    )
    .map_err(io_err)?;
    let mut f = match fs.root_dir().open_file(path.trim_start_matches('/')) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(FatError::File {
                path: path.to_string(),
                source,
            })
        }
    };
    let mut data = Vec::new();
    f.read_to_end(&mut data).map_err(|source| FatError::File {
        path: path.to_string(),
        source,
    })?;
    Ok(Some(data))
}

/// What a FAT boot sector says about its volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatInfo {
    /// "FAT12", "FAT16" or "FAT32".
    pub fat_type: String,
    pub label: String,
    pub volume_id: u32,
}

/// Read the FAT boot sector at byte `offset`, or None when there is none (no 0x55AA
/// signature or no "FAT" file-system type string).
pub fn probe(file: &File, offset: u64) -> io::Result<Option<FatInfo>> {
    let mut b = [0u8; 512];
    file.read_exact_at(&mut b, offset)?;
    if b[510..512] != [0x55, 0xaa] {
        return Ok(None);
    }
    // The extended BPB sits at 36 (FAT12/16) or 64 (FAT32); its type string 18 bytes in.
    for (ebpb, fat32) in [(36usize, false), (64usize, true)] {
        if &b[ebpb + 18..ebpb + 21] == b"FAT" {
            let fat_type = String::from_utf8_lossy(&b[ebpb + 18..ebpb + 26])
                .trim()
                .to_string();
            let fat_type = if fat32 { "FAT32".to_string() } else { fat_type };
            return Ok(Some(FatInfo {
                fat_type,
                label: String::from_utf8_lossy(&b[ebpb + 7..ebpb + 18])
                    .trim_end()
                    .to_string(),
                volume_id: u32::from_le_bytes(b[ebpb + 3..ebpb + 7].try_into().unwrap()),
            }));
        }
    }
    Ok(None)
}

/// Deallocate a byte range of a regular file so it reads as zeros; a block device is left
/// as it is (the format rewrites every structure it reads).
fn punch_hole(f: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    if !f.metadata()?.file_type().is_file() {
        return Ok(());
    }
    // SAFETY: fallocate on a valid descriptor.
    let rc = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as i64,
            len as i64,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
#[path = "fat_tests.rs"]
mod tests;
