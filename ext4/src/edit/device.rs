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
        #[cfg(test)]
        crash::before_write(self.abs(pos))?;
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

/// Test hook: simulate a crash by failing every write after the first N (per thread).
#[cfg(test)]
pub(crate) mod crash {
    use std::cell::Cell;

    use super::EditError;

    thread_local! {
        static BUDGET: Cell<Option<usize>> = const { Cell::new(None) };
        static WRITES: Cell<usize> = const { Cell::new(0) };
    }

    /// Allow `n` more writes (None: unlimited) and reset the write counter.
    pub(crate) fn set_budget(n: Option<usize>) {
        BUDGET.with(|b| b.set(n));
        WRITES.with(|w| w.set(0));
    }

    pub(crate) fn writes() -> usize {
        WRITES.with(|w| w.get())
    }

    pub(super) fn before_write(at: u64) -> Result<(), EditError> {
        if BUDGET.with(|b| b.get()) == Some(0) {
            let source = std::io::Error::other("simulated crash");
            return Err(EditError::Io { offset: at, source });
        }
        BUDGET.with(|b| b.set(b.get().map(|n| n - 1)));
        WRITES.with(|w| w.set(w.get() + 1));
        Ok(())
    }
}
