//! The GPT facts the installer reads from the image (UEFI 2.10 §5.3): the image size from the
//! primary header's AlternateLBA, the partition entries, and moving the backup header and
//! entries to the end of a larger disk (as `sgdisk -e`).
//!
//! STOPGAP for `disk::gpt::relocate_backup`, still a stub on this branch: remove
//! `relocate_backup` here in favour of it once the builder-core part lands.

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
const LAST_USABLE_LBA: usize = 48;
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

/// Move the backup GPT (header and entries) to the last sectors of a disk of `disk_bytes`,
/// extend LastUsableLBA to match (as `sgdisk -e`), fix the protective MBR's size, and zero the
/// old backup header so no stale table remains inside the disk.
pub fn relocate_backup(dev: &File, disk_bytes: u64) -> Result<()> {
    let mut head = vec![0u8; 1 << 20];
    dev.read_exact_at(&mut head, 0)
        .context("reading the first MiB")?;
    let h = Header::parse(&head)?;
    let old_alt = h.alternate_lba();
    let disk_lbas = disk_bytes / LBA;
    let new_alt = disk_lbas - 1;
    if new_alt == old_alt {
        return Ok(());
    }
    if new_alt < old_alt {
        bail!(
            "the disk ({disk_bytes} bytes) is smaller than the image's GPT ({} bytes)",
            h.image_size()
        );
    }
    let (at, n, size) = h.entries_range();
    let array = head[at as usize..at as usize + n * size].to_vec();
    let array_lbas = (array.len() as u64).div_ceil(LBA);

    let mut primary = h.raw.clone();
    primary[ALTERNATE_LBA..ALTERNATE_LBA + 8].copy_from_slice(&new_alt.to_le_bytes());
    let last_usable = new_alt - array_lbas - 1;
    primary[LAST_USABLE_LBA..LAST_USABLE_LBA + 8].copy_from_slice(&last_usable.to_le_bytes());
    let mut backup = primary.clone();
    backup[MY_LBA..MY_LBA + 8].copy_from_slice(&new_alt.to_le_bytes());
    backup[ALTERNATE_LBA..ALTERNATE_LBA + 8].copy_from_slice(&1u64.to_le_bytes());
    let backup_entries = new_alt - array_lbas;
    backup[PARTITION_ENTRY_LBA..PARTITION_ENTRY_LBA + 8]
        .copy_from_slice(&backup_entries.to_le_bytes());
    for hdr in [&mut primary, &mut backup] {
        hdr[HEADER_CRC32..HEADER_CRC32 + 4].fill(0);
        let crc = crc32fast::hash(hdr);
        hdr[HEADER_CRC32..HEADER_CRC32 + 4].copy_from_slice(&crc.to_le_bytes());
    }
    let sector = |h: &[u8]| {
        let mut s = vec![0u8; LBA as usize];
        s[..h.len()].copy_from_slice(h);
        s
    };
    dev.write_all_at(&array, backup_entries * LBA)?;
    dev.write_all_at(&sector(&backup), new_alt * LBA)?;
    dev.write_all_at(&vec![0u8; LBA as usize], old_alt * LBA)?;
    dev.write_all_at(&sector(&primary), LBA)?;
    fix_protective_mbr(dev, &head[..512], disk_lbas)?;
    Ok(())
}

/// A protective MBR's single 0xEE entry spans the whole disk (or 0xFFFFFFFF sectors).
fn fix_protective_mbr(dev: &File, mbr: &[u8], disk_lbas: u64) -> Result<()> {
    if mbr[510..512] != [0x55, 0xAA] {
        return Ok(());
    }
    let entries: Vec<&[u8]> = (0..4).map(|i| &mbr[446 + 16 * i..462 + 16 * i]).collect();
    let used: Vec<usize> = (0..4).filter(|&i| entries[i][4] != 0).collect();
    if used.len() != 1 || entries[used[0]][4] != 0xEE {
        return Ok(()); // hybrid MBR: leave it as the image made it
    }
    let size = (disk_lbas - 1).min(u32::MAX as u64) as u32;
    dev.write_all_at(&size.to_le_bytes(), 446 + 16 * used[0] as u64 + 12)?;
    Ok(())
}
