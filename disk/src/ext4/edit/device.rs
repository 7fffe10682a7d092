//! Byte access to the filesystem's range [offset, offset+len) of an image file or device.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::EditError;

pub(crate) struct Dev<'a> {
    file: &'a File,
    offset: u64,
    len: u64,
}

impl<'a> Dev<'a> {
    pub(crate) fn new(file: &'a File, offset: u64, len: u64) -> Dev<'a> {
        Dev { file, offset, len }
    }

    /// Absolute byte offset in the file of filesystem byte `pos` (for error messages).
    pub(crate) fn abs(&self, pos: u64) -> u64 {
        self.offset + pos
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    fn check(&self, pos: u64, n: usize) -> Result<(), EditError> {
        if pos.checked_add(n as u64).is_none_or(|end| end > self.len) {
            return Err(EditError::Corrupt(format!(
                "metadata points at bytes {}..{} of the filesystem, outside its {} bytes (file offset {})",
                pos,
                pos + n as u64,
                self.len,
                self.abs(pos)
            )));
        }
        Ok(())
    }

    pub(crate) fn read(&self, pos: u64, buf: &mut [u8]) -> Result<(), EditError> {
        self.check(pos, buf.len())?;
        self.file
            .read_exact_at(buf, self.abs(pos))
            .map_err(|source| EditError::Io {
                offset: self.abs(pos),
                source,
            })
    }

    pub(crate) fn write(&self, pos: u64, buf: &[u8]) -> Result<(), EditError> {
        self.check(pos, buf.len())?;
        self.file
            .write_all_at(buf, self.abs(pos))
            .map_err(|source| EditError::Io {
                offset: self.abs(pos),
                source,
            })
    }

    pub(crate) fn sync(&self) -> Result<(), EditError> {
        self.file.sync_data().map_err(|source| EditError::Io {
            offset: self.offset,
            source,
        })
    }
}
