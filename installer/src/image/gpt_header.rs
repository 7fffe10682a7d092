//! The GPT facts the installer reads from the held-back first MiB (UEFI 2.10 §5.3): the image
//! size from the primary header's AlternateLBA (known before anything is written, so a too
//! small disk is refused untouched), and the partition entries. Moving the backup header is
//! `disk::gpt::relocate_backup`.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Logical block size of every image this project makes.
pub const LBA: u64 = 512;
/// §5.3.2: "EFI PART".
const SIGNATURE: &[u8; 8] = b"EFI PART";
/// Byte offsets in the GPT header (§5.3.2, table 5.5).
const HEADER_SIZE: usize = 12;
const HEADER_CRC32: usize = 16;
const MY_LBA: usize = 24;
const ALTERNATE_LBA: usize = 32;
const PARTITION_ENTRY_LBA: usize = 72;
const NUMBER_OF_PARTITION_ENTRIES: usize = 80;
const SIZE_OF_PARTITION_ENTRY: usize = 84;
const PARTITION_ENTRY_ARRAY_CRC32: usize = 88;

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// A validated primary GPT header.
#[derive(Debug, Clone)]
pub struct Header {
    raw: Vec<u8>,
}

/// One used partition entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub number: u32,
    pub first_lba: u64,
    pub last_lba: u64,
    pub name: String,
}

impl Partition {
    pub fn offset(&self) -> u64 {
        self.first_lba * LBA
    }
    pub fn len(&self) -> u64 {
        (self.last_lba + 1 - self.first_lba) * LBA
    }
}

impl Header {
    /// Parse the header at LBA 1 of `disk_start` (at least 1024 bytes).
    pub fn parse(disk_start: &[u8]) -> Result<Header> {
        if disk_start.len() < 2 * LBA as usize || &disk_start[512..520] != SIGNATURE {
            bail!("no GPT header (\"EFI PART\") at LBA 1");
        }
        let s = &disk_start[512..1024];
        let size = u32_at(s, HEADER_SIZE) as usize;
        if !(92..=512).contains(&size) {
            bail!("GPT header size {size} is invalid");
        }
        let mut raw = s[..size].to_vec();
        raw[HEADER_CRC32..HEADER_CRC32 + 4].fill(0);
        if crc32fast::hash(&raw) != u32_at(s, HEADER_CRC32) {
            bail!("GPT header CRC32 mismatch at LBA 1");
        }
        raw.copy_from_slice(&s[..size]);
        let h = Header { raw };
        if u64_at(&h.raw, MY_LBA) != 1 || h.alternate_lba() < 3 {
            bail!(
                "GPT header at LBA 1 names itself LBA {}, backup LBA {}",
                u64_at(&h.raw, MY_LBA),
                h.alternate_lba()
            );
        }
        Ok(h)
    }

    pub fn alternate_lba(&self) -> u64 {
        u64_at(&self.raw, ALTERNATE_LBA)
    }

    /// Bytes the image spans: everything up to and including the backup header.
    pub fn image_size(&self) -> u64 {
        (self.alternate_lba() + 1) * LBA
    }

    fn entries_range(&self) -> (u64, usize, usize) {
        (
            u64_at(&self.raw, PARTITION_ENTRY_LBA) * LBA,
            u32_at(&self.raw, NUMBER_OF_PARTITION_ENTRIES) as usize,
            u32_at(&self.raw, SIZE_OF_PARTITION_ENTRY) as usize,
        )
    }

    /// Used partition entries, read from `disk_start` (the first MiB of the image or disk).
    pub fn partitions(&self, disk_start: &[u8]) -> Result<Vec<Partition>> {
        let (at, n, size) = self.entries_range();
        let end = at as usize + n * size;
        if size < 128 || end > disk_start.len() {
            bail!(
                "GPT partition entries ({n} x {size} bytes at byte {at}) are outside the first MiB"
            );
        }
        let array = &disk_start[at as usize..end];
        if crc32fast::hash(array) != u32_at(&self.raw, PARTITION_ENTRY_ARRAY_CRC32) {
            bail!("GPT partition entry array CRC32 mismatch");
        }
        let mut out = Vec::new();
        for (i, e) in array.chunks(size).enumerate() {
            if e[..16].iter().all(|&b| b == 0) {
                continue;
            }
            let name: Vec<u16> = e[56..128]
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|&c| c != 0)
                .collect();
            out.push(Partition {
                number: i as u32 + 1,
                first_lba: u64_at(e, 32),
                last_lba: u64_at(e, 40),
                name: String::from_utf16_lossy(&name),
            });
        }
        Ok(out)
    }
}

/// Read the partition table of the written disk (primary header and entries in its first MiB).
pub fn read_partitions(dev: &File) -> Result<Vec<Partition>> {
    let mut head = vec![0u8; 1 << 20];
    dev.read_exact_at(&mut head, 0)
        .context("reading the first MiB")?;
    Header::parse(&head)?.partitions(&head)
}
