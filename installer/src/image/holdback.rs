//! The hold-back writer: writes the image body in large chunks as it arrives, but keeps the
//! image's first MiB (MBR + primary GPT) and last MiB (backup GPT) in memory until `commit`,
//! which the caller reaches only after the signature verified and the decompressor ended
//! cleanly. Until then the disk carries no partition table at all, so an interrupted or
//! unverified install can never boot or be mistaken for a good one.

use super::zero::{write_zeros, zero_range};
use crate::decompress::Piece;
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Bytes held back at each end of the image.
pub const HOLD: u64 = 1 << 20;
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
    /// True once anything of the partition-table areas reached the disk.
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

    /// The image is verified and complete: write its last MiB, then its first MiB.
    pub fn commit(&mut self) -> Result<u64> {
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
        self.flush_body()?;
        self.table_written = true;
        let tail_start = size - HOLD;
        self.dev
            .write_all_at(&self.tail, tail_start)
            .context("writing the image's last MiB")?;
        self.dev.sync_data().context("fsync")?;
        self.dev
            .write_all_at(&self.head, 0)
            .context("writing the image's first MiB")?;
        self.dev.sync_data().context("fsync")?;
        Ok(size)
    }

    /// After any failure: zero the partition-table areas if they were written. Returns what
    /// was done, for the error message.
    pub fn abort(&mut self) -> String {
        if !self.touched {
            return "nothing was written to the disk".into();
        }
        if !self.table_written {
            return "the disk holds no partition table: its first and last MiB were zeroed before writing and the image's were never written".into();
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
        let disk = tempfile::tempfile().unwrap();
        disk.set_len(8 << 20).unwrap();
        disk.write_all_at(&[0x77; 4096], 0).unwrap();
        let mut w = HoldBackWriter::new(&disk, false, 8 << 20, "test");
        feed(&mut w, &img);
        w.flush_body().unwrap();
        let mut head = vec![0u8; 4096];
        disk.read_exact_at(&mut head, 0).unwrap();
        assert!(
            head.iter().all(|&b| b == 0),
            "old table wiped, image's head held back"
        );
        let mut tail = vec![0u8; 16];
        disk.read_exact_at(&mut tail, img.len() as u64 - 16)
            .unwrap();
        assert!(tail.iter().all(|&b| b == 0), "tail held back");
        assert_eq!(w.commit().unwrap(), img.len() as u64);
        let mut back = vec![0u8; img.len()];
        disk.read_exact_at(&mut back, 0).unwrap();
        assert!(back == img);
    }

    #[test]
    fn whole_chunks_are_written_directly() {
        let img = image_of(40 << 20);
        let disk = tempfile::tempfile().unwrap();
        disk.set_len(64 << 20).unwrap();
        let mut w = HoldBackWriter::new(&disk, false, 64 << 20, "test");
        feed_in(&mut w, &img, 8 << 20);
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
        w.commit().unwrap();
        let msg = w.abort();
        assert!(msg.contains("zeroed"), "{msg}");
        let mut head = vec![0u8; 1024];
        disk.read_exact_at(&mut head, 0).unwrap();
        assert!(head.iter().all(|&b| b == 0));
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
        let e = w.commit().unwrap_err().to_string();
        assert!(e.contains("ended at byte"), "{e}");
    }
}
