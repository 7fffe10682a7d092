//! The hold-back writer: writes the image body in large chunks as it arrives, but keeps the
//! image's first MiB (MBR + primary GPT) and last MiB (backup GPT) in memory until the caller
//! has verified the signature and seen the decompressor end cleanly. Then, in two steps:
//!
//! 1. `stage` writes both held-back MiBs except the three sectors that make a partition table
//!    valid — the protective MBR (LBA 0), the primary GPT header (LBA 1) and the backup GPT
//!    header (the image's last sector) — so the filesystems are complete on the disk and the
//!    caller can configure them in place;
//! 2. `commit` writes those three sectors, the backup header first, then LBA 0-1 in one
//!    1024-byte write.
//!
//! Until `commit` the disk carries no MBR and no GPT header at all (its first and last MiB were
//! zeroed before the first body write), so an install interrupted at any point — including a
//! `kill -9` — leaves a disk that neither firmware, kernel nor `sgdisk` takes for partitioned,
//! and one that got past `commit` is complete.

use super::zero::{write_zeros, zero_range};
use crate::decompress::Piece;
use anyhow::{bail, Context, Result};
use disk::layout::Partition;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Bytes held back at each end of the image.
pub const HOLD: u64 = 1 << 20;
/// The image's sector size (its GPT is read as 512-byte sectors; other disks are refused).
const SECTOR: u64 = 512;
/// LBA 0 (protective MBR) and LBA 1 (primary GPT header): written last, in one write.
const TABLE_HEAD: u64 = 2 * SECTOR;
/// Body writes are gathered into chunks of this size (aligned to it in the image).
const WRITE_CHUNK: usize = 4 << 20;
/// The disk's tail that is zeroed before writing: stale ZFS labels live in the last 512 KiB
/// (coreos/bugs#1398); a whole MiB also covers an old backup GPT.
const TAIL_WIPE: u64 = 1 << 20;

pub struct HoldBackWriter<'f> {
    dev: &'f File,
    is_block: bool,
    disk_size: u64,
    what: String,
    pos: u64,
    head: Vec<u8>,
    image_size: Option<u64>,
    tail: Vec<u8>,
    /// Gathered body bytes starting at image offset `buf_start`.
    buf: Vec<u8>,
    buf_start: u64,
    /// A pending zero run in the body.
    zeros: Option<(u64, u64)>,
    /// True once the held-back MiBs, but for the table's three sectors, are on the disk.
    staged: bool,
    /// True once anything of the partition table's three sectors reached the disk.
    table_written: bool,
    /// True once anything at all reached the disk.
    touched: bool,
    body_bytes_zeroed: u64,
}

impl<'f> HoldBackWriter<'f> {
    pub fn new(dev: &'f File, is_block: bool, disk_size: u64, what: &str) -> Self {
        HoldBackWriter {
            dev,
            is_block,
            disk_size,
            what: what.to_string(),
            pos: 0,
            head: Vec::with_capacity(HOLD as usize),
            image_size: None,
            tail: Vec::new(),
            buf: Vec::with_capacity(WRITE_CHUNK),
            buf_start: HOLD,
            zeros: None,
            staged: false,
            table_written: false,
            touched: false,
            body_bytes_zeroed: 0,
        }
    }

    /// Image size, known once the first MiB arrived (from the primary GPT's AlternateLBA).
    pub fn image_size(&self) -> Option<u64> {
        self.image_size
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    #[cfg(test)]
    pub fn touched(&self) -> bool {
        self.touched
    }

    /// Bytes of the body turned into zero ranges instead of writes.
    pub fn zeroed(&self) -> u64 {
        self.body_bytes_zeroed
    }

    pub fn put(&mut self, piece: Piece) -> Result<()> {
        match piece {
            Piece::Data(d) => self.put_data(&d),
            Piece::Zeros(n) => self.put_zeros(n),
        }
    }

    fn put_data(&mut self, mut d: &[u8]) -> Result<()> {
        while !d.is_empty() {
            let n = self.room(d.len() as u64)? as usize;
            let (now, rest) = d.split_at(n);
            self.place(Some(now), n as u64)?;
            d = rest;
        }
        Ok(())
    }

    fn put_zeros(&mut self, mut n: u64) -> Result<()> {
        while n > 0 {
            let k = self.room(n)?;
            self.place(None, k)?;
            n -= k;
        }
        Ok(())
    }

    /// How much of `want` fits before the next region boundary (head end, tail start, image end).
    fn room(&self, want: u64) -> Result<u64> {
        if self.pos < HOLD {
            return Ok(want.min(HOLD - self.pos));
        }
        let size = self.image_size.expect("known after the head");
        if self.pos >= size {
            bail!(
                "{}: the image is larger than its GPT says ({size} bytes)",
                self.what
            );
        }
        let tail_start = size - HOLD;
        if self.pos < tail_start {
            Ok(want.min(tail_start - self.pos))
        } else {
            Ok(want.min(size - self.pos))
        }
    }

    /// Put `len` bytes (`data`, or zeros) at `pos`, all within one region.
    fn place(&mut self, data: Option<&[u8]>, len: u64) -> Result<()> {
        if self.pos < HOLD {
            match data {
                Some(d) => self.head.extend_from_slice(d),
                None => self.head.resize(self.head.len() + len as usize, 0),
            }
            self.pos += len;
            if self.pos == HOLD {
                self.head_complete()?;
            }
            return Ok(());
        }
        let size = self.image_size.expect("known after the head");
        if self.pos >= size - HOLD {
            match data {
                Some(d) => self.tail.extend_from_slice(d),
                None => self.tail.resize(self.tail.len() + len as usize, 0),
            }
            self.pos += len;
            return Ok(());
        }
        match data {
            Some(d) if self.buf.is_empty() && d.len() >= WRITE_CHUNK => {
                // A whole decompressed chunk: write it as it is, no copy.
                self.flush_zeros()?;
                self.dev.write_all_at(d, self.pos).with_context(|| {
                    format!("writing {} bytes at byte {} of the disk", d.len(), self.pos)
                })?;
            }
            Some(d) => {
                self.flush_zeros()?;
                if self.buf.is_empty() {
                    self.buf_start = self.pos;
                }
                self.buf.extend_from_slice(d);
                if self.buf.len() >= WRITE_CHUNK {
                    self.flush_buf()?;
                }
            }
            None => {
                self.flush_buf()?;
                self.zeros = match self.zeros {
                    Some((s, n)) if s + n == self.pos => Some((s, n + len)),
                    Some(_) => {
                        self.flush_zeros()?;
                        Some((self.pos, len))
                    }
                    None => Some((self.pos, len)),
                };
            }
        }
        self.pos += len;
        Ok(())
    }

    /// The first MiB is in: learn the image size, refuse a disk that is too small, and only
    /// then touch the disk: wipe its old partition tables (head) and its last MiB.
    fn head_complete(&mut self) -> Result<()> {
        // The primary header's AlternateLBA: everything up to and including the backup header.
        let size = disk::gpt::read_primary(&self.head)
            .with_context(|| format!("{}: the image's first MiB holds no valid GPT", self.what))?
            .disk_bytes();
        if size < 2 * HOLD {
            bail!(
                "{}: the image's GPT says it is {size} bytes, less than 2 MiB",
                self.what
            );
        }
        if size > self.disk_size {
            bail!(
                "the target disk is too small: the image needs {size} bytes ({} MiB), the disk has {} bytes ({} MiB)",
                size >> 20,
                self.disk_size,
                self.disk_size >> 20
            );
        }
        self.image_size = Some(size);
        self.tail.reserve(HOLD as usize);
        tracing::info!(
            "image size {size} bytes (from its GPT); disk {} bytes",
            self.disk_size
        );
        self.touched = true;
        write_zeros(self.dev, 0, HOLD).context("zeroing the disk's first MiB")?;
        let wipe = TAIL_WIPE.min(self.disk_size);
        zero_range(self.dev, self.is_block, self.disk_size - wipe, wipe)
            .context("zeroing the disk's last MiB")?;
        self.dev.sync_data().context("fsync")?;
        Ok(())
    }

    fn flush_buf(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.dev
            .write_all_at(&self.buf, self.buf_start)
            .with_context(|| {
                format!(
                    "writing {} bytes at byte {} of the disk",
                    self.buf.len(),
                    self.buf_start
                )
            })?;
        self.buf.clear();
        Ok(())
    }

    fn flush_zeros(&mut self) -> Result<()> {
        if let Some((s, n)) = self.zeros.take() {
            zero_range(self.dev, self.is_block, s, n)
                .with_context(|| format!("zeroing bytes {s}..{} of the disk", s + n))?;
            self.body_bytes_zeroed += n;
        }
        Ok(())
    }

    /// Write everything but the held-back ends (call before verifying, so the body is on the
    /// disk while the verdict is computed).
    pub fn flush_body(&mut self) -> Result<()> {
        self.flush_buf()?;
        self.flush_zeros()?;
        self.dev.sync_data().context("fsync")
    }

    /// The image is verified and complete: put the held-back MiBs on the disk except the
    /// sectors that make the partition table valid, and return the image's partitions (from
    /// its primary GPT) so the caller can configure them before `commit`.
    pub fn stage(&mut self) -> Result<Vec<Partition>> {
        let Some(size) = self.image_size else {
            bail!(
                "{}: the image ended after {} bytes, before its first MiB was complete",
                self.what,
                self.pos
            );
        };
        if self.pos != size {
            bail!(
                "{}: the image ended at byte {} but its GPT says it is {size} bytes",
                self.what,
                self.pos
            );
        }
        let parts = disk::gpt::read_primary(&self.head)
            .with_context(|| format!("{}: reading the image's GPT", self.what))?
            .partitions;
        self.flush_body()?;
        self.dev
            .write_all_at(&self.head[TABLE_HEAD as usize..], TABLE_HEAD)
            .context("writing the image's first MiB")?;
        let backup_header = self.tail.len() - SECTOR as usize;
        self.dev
            .write_all_at(&self.tail[..backup_header], size - HOLD)
            .context("writing the image's last MiB")?;
        self.dev.sync_data().context("fsync")?;
        self.staged = true;
        Ok(parts)
    }

    /// Make the partition table valid: the backup GPT header, then the protective MBR and the
    /// primary GPT header in one write. Call after `stage` and the configuration.
    pub fn commit(&mut self) -> Result<u64> {
        if !self.staged {
            bail!("{}: commit before stage", self.what);
        }
        let size = self.image_size.expect("staged");
        let backup_header = self.tail.len() - SECTOR as usize;
        self.table_written = true;
        self.dev
            .write_all_at(&self.tail[backup_header..], size - SECTOR)
            .context("writing the backup GPT header")?;
        self.dev.sync_data().context("fsync")?;
        self.dev
            .write_all_at(&self.head[..TABLE_HEAD as usize], 0)
            .context("writing the protective MBR and the primary GPT header")?;
        self.dev.sync_data().context("fsync")?;
        Ok(size)
    }

    /// After any failure: zero the partition-table areas if anything of the table was
    /// written. Returns what was done, for the error message.
    pub fn abort(&mut self) -> String {
        if !self.touched {
            return "nothing was written to the disk".into();
        }
        if !self.table_written {
            let what = if self.staged {
                "the verified image is on it, but its partition table headers were never written"
            } else {
                "its first and last MiB were zeroed before writing and the image's were never written"
            };
            return format!("the disk holds no partition table: {what}");
        }
        let mut done = vec![];
        if write_zeros(self.dev, 0, HOLD).is_ok() {
            done.push("the first MiB".to_string());
        }
        if let Some(size) = self.image_size {
            if write_zeros(self.dev, size - HOLD, HOLD).is_ok() {
                done.push(format!("bytes {}..{size}", size - HOLD));
            }
            let wipe = TAIL_WIPE.min(self.disk_size);
            if write_zeros(self.dev, self.disk_size - wipe, wipe).is_ok() {
                done.push("the last MiB".to_string());
            }
        }
        let _ = self.dev.sync_data();
        format!(
            "zeroed the partition tables on the disk ({})",
            done.join(", ")
        )
    }

    /// `--preserve-on-error`: leave the disk as it is and put the held-back MiBs into files
    /// in `dir`, so the image can be inspected; returns what was kept, for the message.
    pub fn preserve(&self, dir: &std::path::Path) -> String {
        if !self.touched {
            return "nothing was written to the disk".into();
        }
        let table = if self.table_written {
            "with its partition table"
        } else {
            "without a partition table"
        };
        let Some(size) = self.image_size else {
            return format!("kept the disk as it is ({table})");
        };
        let stamp = std::process::id();
        let head = dir.join(format!("coreos-install-{stamp}-first-mib.bin"));
        let tail = dir.join(format!("coreos-install-{stamp}-last-mib.bin"));
        let saved =
            std::fs::write(&head, &self.head).and_then(|_| std::fs::write(&tail, &self.tail));
        match saved {
            Ok(()) => format!(
                "kept the disk as it is ({table}); the image's held-back first MiB ({} bytes, disk bytes 0..) is in {} and its last MiB ({} bytes, disk bytes {}..) in {}",
                self.head.len(),
                head.display(),
                self.tail.len(),
                size - HOLD,
                tail.display()
            ),
            Err(e) => format!(
                "kept the disk as it is ({table}); saving the held-back MiBs to {} failed: {e}",
                dir.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4 MiB "image": a valid GPT header at LBA 1 naming the backup at the last LBA, with an
    /// empty partition entry array at LBA 2.
    fn image() -> Vec<u8> {
        image_of(4 << 20)
    }

    fn image_of(size: u64) -> Vec<u8> {
        let mut img = vec![0u8; size as usize];
        for (i, b) in img
            .iter_mut()
            .enumerate()
            .skip(2 << 20)
            .take(size as usize / 2)
        {
            *b = i as u8;
        }
        let h = &mut img[512..1024];
        h[..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&[0, 0, 1, 0]);
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&1u64.to_le_bytes());
        h[32..40].copy_from_slice(&(size / 512 - 1).to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&(size / 512 - 34).to_le_bytes());
        h[72..80].copy_from_slice(&2u64.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&crc32fast::hash(&[0u8; 128 * 128]).to_le_bytes());
        let crc = crc32fast::hash(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        let last = img.len() - 10;
        img[last] = 0x42;
        img
    }

    fn feed(w: &mut HoldBackWriter, img: &[u8]) {
        feed_in(w, img, 300_000)
    }

    fn feed_in(w: &mut HoldBackWriter, img: &[u8], chunk: usize) {
        for c in img.chunks(chunk) {
            if c.iter().all(|&b| b == 0) {
                w.put(Piece::Zeros(c.len() as u64)).unwrap();
            } else {
                w.put(Piece::Data(c.to_vec())).unwrap();
            }
        }
    }

    #[test]
    fn ends_are_held_back_until_commit() {
        let img = image();
        let size = img.len() as u64;
        let disk = tempfile::tempfile().unwrap();
        disk.set_len(8 << 20).unwrap();
        disk.write_all_at(&[0x77; 4096], 0).unwrap();
        let mut w = HoldBackWriter::new(&disk, false, 8 << 20, "test");
        feed(&mut w, &img);
        w.flush_body().unwrap();
        let read = |off: u64, len: usize| {
            let mut b = vec![0u8; len];
            disk.read_exact_at(&mut b, off).unwrap();
            b
        };
        assert!(
            read(0, 4096).iter().all(|&b| b == 0),
            "old table wiped, image's head held back"
        );
        assert!(
            read(size - 16, 16).iter().all(|&b| b == 0),
            "tail held back"
        );
        // Staged: everything but LBA 0, LBA 1 and the backup header.
        w.stage().unwrap();
        assert!(read(0, 1024).iter().all(|&b| b == 0), "LBA 0-1 held back");
        assert_eq!(read(1024, HOLD as usize - 1024), img[1024..HOLD as usize]);
        assert!(
            read(size - 512, 512).iter().all(|&b| b == 0),
            "backup header held back"
        );
        let tail_start = (size - HOLD) as usize;
        assert_eq!(
            read(size - HOLD, HOLD as usize - 512),
            img[tail_start..img.len() - 512]
        );
        assert_eq!(w.commit().unwrap(), size);
        assert!(read(0, img.len()) == img);
    }

    #[test]
    fn whole_chunks_are_written_directly() {
        let img = image_of(40 << 20);
        let disk = tempfile::tempfile().unwrap();
        disk.set_len(64 << 20).unwrap();
        let mut w = HoldBackWriter::new(&disk, false, 64 << 20, "test");
        feed_in(&mut w, &img, 8 << 20);
        w.stage().unwrap();
        assert_eq!(w.commit().unwrap(), img.len() as u64);
        let mut back = vec![0u8; img.len()];
        disk.read_exact_at(&mut back, 0).unwrap();
        assert!(back == img);
    }

    #[test]
    fn abort_after_commit_zeroes_tables() {
        let img = image();
        let disk = tempfile::tempfile().unwrap();
        disk.set_len(8 << 20).unwrap();
        let mut w = HoldBackWriter::new(&disk, false, 8 << 20, "test");
        feed(&mut w, &img);
        w.stage().unwrap();
        w.commit().unwrap();
        let msg = w.abort();
        assert!(msg.contains("zeroed"), "{msg}");
        let mut head = vec![0u8; 1024];
        disk.read_exact_at(&mut head, 0).unwrap();
        assert!(head.iter().all(|&b| b == 0));
    }

    #[test]
    fn abort_after_stage_has_nothing_to_undo() {
        let img = image();
        let disk = tempfile::tempfile().unwrap();
        disk.set_len(8 << 20).unwrap();
        let mut w = HoldBackWriter::new(&disk, false, 8 << 20, "test");
        feed(&mut w, &img);
        w.stage().unwrap();
        let msg = w.abort();
        assert!(msg.contains("no partition table"), "{msg}");
        let mut head = vec![0u8; 1024];
        disk.read_exact_at(&mut head, 0).unwrap();
        assert!(head.iter().all(|&b| b == 0));
    }

    #[test]
    fn preserve_keeps_the_held_back_ends_in_files() {
        let img = image();
        let disk = tempfile::tempfile().unwrap();
        disk.set_len(8 << 20).unwrap();
        let mut w = HoldBackWriter::new(&disk, false, 8 << 20, "test");
        feed(&mut w, &img);
        let dir = tempfile::tempdir().unwrap();
        let msg = w.preserve(dir.path());
        assert!(msg.contains("without a partition table"), "{msg}");
        let pid = std::process::id();
        let head = std::fs::read(
            dir.path()
                .join(format!("coreos-install-{pid}-first-mib.bin")),
        );
        assert_eq!(head.unwrap(), img[..HOLD as usize]);
        let tail = std::fs::read(
            dir.path()
                .join(format!("coreos-install-{pid}-last-mib.bin")),
        );
        assert_eq!(tail.unwrap(), img[img.len() - HOLD as usize..]);
    }

    #[test]
    fn too_small_disk_is_refused_before_writing() {
        let img = image();
        let disk = tempfile::tempfile().unwrap();
        disk.set_len(2 << 20).unwrap();
        disk.write_all_at(&[0x77; 16], 0).unwrap();
        let mut w = HoldBackWriter::new(&disk, false, 2 << 20, "test");
        let e = w
            .put(Piece::Data(img[..HOLD as usize].to_vec()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("too small"), "{e}");
        let mut head = [0u8; 16];
        disk.read_exact_at(&mut head, 0).unwrap();
        assert_eq!(head, [0x77; 16]);
        assert!(!w.touched());
    }

    #[test]
    fn short_image_cannot_commit() {
        let img = image();
        let disk = tempfile::tempfile().unwrap();
        disk.set_len(8 << 20).unwrap();
        let mut w = HoldBackWriter::new(&disk, false, 8 << 20, "test");
        feed(&mut w, &img[..3 << 20]);
        let e = w.stage().unwrap_err().to_string();
        assert!(e.contains("ended at byte"), "{e}");
    }
}
