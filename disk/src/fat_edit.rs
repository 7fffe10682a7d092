//! Editing files of an existing FAT volume in place (the ESP of an installed disk), through
//! `fatfs` on the partition's byte range: no mount, no loop device.
//!
//! `overwrite` keeps a file's clusters: GRUB's `save_env` writes the environment block
//! through the sectors it read the file from, so the block must never move. `replace` frees
//! the old clusters and allocates new ones; the caller makes sure nothing boots from a file
//! while it is being replaced (see `disk::slots::esp_files`).

use crate::fat::{dos_datetime, ByteRange, FatError};
use fatfs::{DateTime, FileSystem, FsOptions, TimeProvider};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// "Now" for the directory entries the edits touch.
#[derive(Debug)]
struct EditTime(DateTime);

impl TimeProvider for EditTime {
    fn get_current_date(&self) -> fatfs::Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> DateTime {
        self.0
    }
}

/// An open FAT volume at `[start, start + len)` of a file or block device.
pub struct FatEditor<'a> {
    fs: FileSystem<ByteRange<'a>>,
    file: &'a File,
    start: u64,
    len: u64,
    made_dirs: bool,
}

impl<'a> FatEditor<'a> {
    /// Open the volume; `timestamp` (Unix seconds) dates the entries written.
    pub fn open(file: &'a File, start: u64, len: u64, timestamp: i64) -> Result<Self, FatError> {
        // fatfs wants a 'static time provider: one small leak per volume opened.
        let time: &'static EditTime = Box::leak(Box::new(EditTime(dos_datetime(timestamp))));
        let fs = FileSystem::new(
            ByteRange::new(file, start, len),
            FsOptions::new()
                .time_provider(time)
                .update_accessed_date(false),
        )
        .map_err(|source| FatError::Io {
            start,
            end: start + len,
            source,
        })?;
        Ok(FatEditor {
            fs,
            file,
            start,
            len,
            made_dirs: false,
        })
    }

    fn file_err(path: &str) -> impl FnOnce(io::Error) -> FatError + '_ {
        move |source| FatError::File {
            path: path.to_string(),
            source,
        }
    }

    /// The file's bytes, or None when there is no such file.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, FatError> {
        let mut f = match self.fs.root_dir().open_file(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Self::file_err(path)(e)),
        };
        let mut data = Vec::new();
        f.read_to_end(&mut data).map_err(Self::file_err(path))?;
        Ok(Some(data))
    }

    /// Rewrite an existing file of the same size through its own clusters.
    pub fn overwrite(&self, path: &str, data: &[u8]) -> Result<(), FatError> {
        let mut f = self
            .fs
            .root_dir()
            .open_file(path)
            .map_err(Self::file_err(path))?;
        let size = f.seek(SeekFrom::End(0)).map_err(Self::file_err(path))?;
        if size != data.len() as u64 {
            return Err(FatError::Invalid(format!(
                "{path} is {size} bytes; an in-place rewrite needs the same size, not {}",
                data.len()
            )));
        }
        f.seek(SeekFrom::Start(0)).map_err(Self::file_err(path))?;
        f.write_all(data).map_err(Self::file_err(path))?;
        f.flush().map_err(Self::file_err(path))
    }

    /// Write `path` anew (the old file, if any, removed first); parents are created.
    pub fn replace(&mut self, path: &str, data: &[u8]) -> Result<(), FatError> {
        self.remove(path)?;
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let (name, parents) = parts
            .split_last()
            .ok_or_else(|| FatError::Invalid(format!("empty FAT path {path:?}")))?;
        let mut dir = self.fs.root_dir();
        for p in parents {
            dir = match dir.open_dir(p) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.made_dirs = true;
                    dir.create_dir(p).map_err(Self::file_err(path))?
                }
                Err(e) => return Err(Self::file_err(path)(e)),
            };
        }
        let mut f = dir.create_file(name).map_err(Self::file_err(path))?;
        f.truncate().map_err(Self::file_err(path))?;
        f.write_all(data).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::WriteZero | io::ErrorKind::Other => {
                FatError::Invalid(format!(
                    "{path}: the FAT filesystem has no room for its {} bytes ({e})",
                    data.len()
                ))
            }
            _ => Self::file_err(path)(e),
        })?;
        f.flush().map_err(Self::file_err(path))
    }

    /// Remove `path`; false when there was no such file.
    pub fn remove(&self, path: &str) -> Result<bool, FatError> {
        match self.fs.root_dir().remove(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Self::file_err(path)(e)),
        }
    }

    /// Make the edits so far durable (fatfs keeps nothing of a FAT12/16 volume in memory
    /// between calls; every file handle is flushed by the methods above).
    pub fn sync(&self) -> Result<(), FatError> {
        self.file.sync_data().map_err(|source| FatError::Io {
            start: self.start,
            end: self.start + self.len,
            source,
        })
    }

    /// Finish the edits (FAT and directory entries written) and sync them to the disk.
    pub fn close(self) -> Result<(), FatError> {
        let (file, start, len) = (self.file, self.start, self.len);
        let io_err = |source| FatError::Io {
            start,
            end: start + len,
            source,
        };
        self.fs.unmount().map_err(io_err)?;
        if self.made_dirs {
            crate::fat_dots::repair_dot_entries(file, start).map_err(io_err)?;
        }
        file.sync_data().map_err(io_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fat::{write_fat, FatParams};
    use std::os::unix::fs::FileExt;
    use std::process::Command;

    const START: u64 = 2048 * 512;
    const LEN: u64 = 64 << 20;

    fn volume(files: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(START + LEN).unwrap();
        let files: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|(p, d)| (p.to_string(), d.to_vec()))
            .collect();
        let params = FatParams {
            label: "EFI-SYSTEM".into(),
            volume_id: 1,
            timestamp: 1_700_000_000,
        };
        write_fat(f.as_file(), START, LEN, &params, &files).unwrap();
        f
    }

    fn fsck(f: &tempfile::NamedTempFile) -> tempfile::NamedTempFile {
        let part = tempfile::NamedTempFile::new().unwrap();
        let mut buf = vec![0u8; LEN as usize];
        f.as_file().read_exact_at(&mut buf, START).unwrap();
        std::fs::write(part.path(), buf).unwrap();
        let out = Command::new("fsck.vfat")
            .arg("-n")
            .arg(part.path())
            .output()
            .expect("fsck.vfat (dosfstools)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "fsck.vfat -n: {text}");
        part
    }

    fn find(f: &File, needle: &[u8]) -> Option<u64> {
        let mut buf = vec![0u8; LEN as usize];
        f.read_exact_at(&mut buf, START).unwrap();
        buf.windows(needle.len())
            .position(|w| w == needle)
            .map(|i| i as u64)
    }

    #[test]
    fn overwrite_keeps_the_sectors_and_replace_and_remove_work() {
        let env_old = [b'#'; 1024];
        let kernel = vec![7u8; 3 << 20];
        let v = volume(&[
            ("coreos/grub/grubenv", &env_old),
            ("coreos/vmlinuz-a", &kernel),
            ("coreos/usr-b.cfg", b"old"),
        ]);
        let f = v.as_file();
        let before = find(f, &env_old).unwrap();
        let mut e = FatEditor::open(f, START, LEN, 1_800_000_000).unwrap();
        let mut env_new = [b'#'; 1024];
        env_new[..10].copy_from_slice(b"# new env\n");
        e.overwrite("coreos/grub/grubenv", &env_new).unwrap();
        let err = e.overwrite("coreos/grub/grubenv", b"short").unwrap_err();
        assert!(err.to_string().contains("same size"), "{err}");
        assert!(e.remove("coreos/usr-b.cfg").unwrap());
        assert!(!e.remove("coreos/usr-b.cfg").unwrap());
        e.replace("coreos/vmlinuz-b", &vec![9u8; 5 << 20]).unwrap();
        e.replace("coreos/vmlinuz-a", b"smaller kernel").unwrap();
        e.replace("new/dir/file.txt", b"made with its parents")
            .unwrap();
        assert_eq!(e.read("coreos/usr-b.cfg").unwrap(), None);
        e.close().unwrap();
        assert_eq!(find(f, &env_new), Some(before), "grubenv moved");
        let part = fsck(&v);
        let mtype = |p: &str| {
            Command::new("mtype")
                .args(["-i", part.path().to_str().unwrap(), &format!("::{p}")])
                .output()
                .unwrap()
                .stdout
        };
        assert!(mtype("coreos/grub/grubenv") == env_new);
        assert!(mtype("coreos/vmlinuz-b") == vec![9u8; 5 << 20]);
        assert_eq!(mtype("coreos/vmlinuz-a"), b"smaller kernel");
        assert_eq!(mtype("new/dir/file.txt"), b"made with its parents");
        let e = FatEditor::open(f, START, LEN, 0).unwrap();
        assert_eq!(
            e.read("coreos/vmlinuz-a").unwrap().unwrap(),
            b"smaller kernel"
        );
    }

    #[test]
    fn no_room_is_named() {
        let v = volume(&[]);
        let mut e = FatEditor::open(v.as_file(), START, LEN, 0).unwrap();
        let err = e
            .replace("coreos/huge", &vec![1u8; 80 << 20])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("coreos/huge") && err.contains("no room"),
            "{err}"
        );
    }
}
