//! The slots' attributes in a disk's GPT, read and written in place as `cgpt add` does: only
//! the attribute field of the entries changes, then the entry array CRC and the header CRC, in
//! **both** the backup and the primary table (UEFI 2.10 §5.3.2, Table 5-5; §5.3.3, Table 5-6).
//!
//! Order, for a power cut at any point: the backup array and header first, synced, then the
//! primary array and header, synced. Until the primary header is written the primary is either
//! the old table (valid) or fails its CRC (and readers take the backup, already new), so a
//! reader always finds one valid table. A table that fails its checks is rebuilt from the
//! other one (`cgpt repair`) on the next write.

use super::{SlotAttrs, SlotError, USR_TYPE};
use crate::SECTOR;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use uuid::Uuid;

/// "EFI PART" (§5.3.2).
pub const GPT_SIGNATURE: &[u8; 8] = b"EFI PART";
/// Header fields, byte offsets (§5.3.2 Table 5-5).
const HDR_SIZE: usize = 12;
const HDR_CRC: usize = 16;
const HDR_MY_LBA: usize = 24;
const HDR_ALTERNATE_LBA: usize = 32;
const HDR_ENTRY_LBA: usize = 72;
const HDR_ENTRY_COUNT: usize = 80;
const HDR_ENTRY_SIZE: usize = 84;
const HDR_ENTRY_CRC: usize = 88;
/// Smallest header (§5.3.2: HeaderSize is at least 92).
const HDR_MIN_SIZE: usize = 92;
/// Entry fields (§5.3.3 Table 5-6).
const ENT_TYPE: usize = 0;
const ENT_UNIQUE: usize = 16;
const ENT_FIRST_LBA: usize = 32;
const ENT_LAST_LBA: usize = 40;
const ENT_ATTRIBUTES: usize = 48;
const ENT_NAME: usize = 56;
const ENT_NAME_BYTES: usize = 72;
/// More entries than any real table holds (a guard against a corrupt count).
const MAX_ARRAY_BYTES: u64 = 1 << 20;

/// One GPT header as it sits in its sector (the bytes kept, fields read from them).
#[derive(Debug, Clone)]
struct Header {
    sector: [u8; SECTOR as usize],
}

impl Header {
    fn u32_at(&self, o: usize) -> u32 {
        u32::from_le_bytes(self.sector[o..o + 4].try_into().unwrap())
    }
    fn u64_at(&self, o: usize) -> u64 {
        u64::from_le_bytes(self.sector[o..o + 8].try_into().unwrap())
    }
    fn set_u32(&mut self, o: usize, v: u32) {
        self.sector[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn set_u64(&mut self, o: usize, v: u64) {
        self.sector[o..o + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn size(&self) -> usize {
        self.u32_at(HDR_SIZE) as usize
    }
    fn my_lba(&self) -> u64 {
        self.u64_at(HDR_MY_LBA)
    }
    fn alternate_lba(&self) -> u64 {
        self.u64_at(HDR_ALTERNATE_LBA)
    }
    fn entry_lba(&self) -> u64 {
        self.u64_at(HDR_ENTRY_LBA)
    }
    fn entry_count(&self) -> u32 {
        self.u32_at(HDR_ENTRY_COUNT)
    }
    fn entry_size(&self) -> u32 {
        self.u32_at(HDR_ENTRY_SIZE)
    }
    fn array_bytes(&self) -> u64 {
        self.entry_count() as u64 * self.entry_size() as u64
    }

    /// HeaderCRC32: CRC32 of HeaderSize bytes with the CRC field zero.
    fn crc(&self) -> u32 {
        let mut h = self.sector[..self.size()].to_vec();
        h[HDR_CRC..HDR_CRC + 4].fill(0);
        crc32fast::hash(&h)
    }

    /// Why this header is not usable at `lba`, or None.
    fn problem(&self, lba: u64) -> Option<String> {
        if &self.sector[..8] != GPT_SIGNATURE {
            return Some("no \"EFI PART\" signature".into());
        }
        if !(HDR_MIN_SIZE..=SECTOR as usize).contains(&self.size()) {
            return Some(format!("header size {} is invalid", self.size()));
        }
        if self.crc() != self.u32_at(HDR_CRC) {
            return Some("header CRC32 mismatch".into());
        }
        if self.my_lba() != lba {
            return Some(format!("it names itself LBA {}", self.my_lba()));
        }
        if self.entry_size() < 128 || !self.entry_size().is_multiple_of(8) {
            return Some(format!("entry size {} is invalid", self.entry_size()));
        }
        if self.array_bytes() == 0 || self.array_bytes() > MAX_ARRAY_BYTES {
            return Some(format!(
                "{} entries of {} bytes",
                self.entry_count(),
                self.entry_size()
            ));
        }
        if byte_at(self.entry_lba())
            .and_then(|at| at.checked_add(self.array_bytes()))
            .is_none()
        {
            return Some(format!(
                "its entries at LBA {} lie past the last byte offset",
                self.entry_lba()
            ));
        }
        let sectors = self.array_bytes().div_ceil(SECTOR);
        if (self.entry_lba()..self.entry_lba() + sectors).contains(&lba) {
            return Some(format!(
                "its {sectors} sectors of entries at LBA {} cover the header itself",
                self.entry_lba()
            ));
        }
        None
    }

    /// This header moved to `lba` with its entries at `entry_lba` (cgpt repair's copy).
    fn relocated(&self, lba: u64, alternate: u64, entry_lba: u64) -> Header {
        let mut h = self.clone();
        h.set_u64(HDR_MY_LBA, lba);
        h.set_u64(HDR_ALTERNATE_LBA, alternate);
        h.set_u64(HDR_ENTRY_LBA, entry_lba);
        h
    }

    /// The header with its entry array CRC and its own CRC for `array`.
    fn sealed(&self, array: &[u8]) -> Header {
        let mut h = self.clone();
        h.set_u32(HDR_ENTRY_CRC, crc32fast::hash(array));
        let crc = h.crc();
        h.set_u32(HDR_CRC, crc);
        h
    }
}

/// One table as found on disk: its header and entry array, or why it is unusable.
#[derive(Debug)]
struct Table {
    header: Header,
    array: Vec<u8>,
}

/// The byte where sector `lba` starts, if a u64 can say it.
fn byte_at(lba: u64) -> Option<u64> {
    lba.checked_mul(SECTOR)
}

/// Read `buf` at `at`: Ok(false) when the disk ends first (a table that points past the
/// disk is damaged, not a failed read).
fn read_at(file: &File, buf: &mut [u8], at: u64, what: String) -> Result<bool, SlotError> {
    match file.read_exact_at(buf, at) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(SlotError::io(what)(e)),
    }
}

fn read_table(file: &File, lba: u64, which: &str) -> Result<Result<Table, String>, SlotError> {
    let mut sector = [0u8; SECTOR as usize];
    let Some(at) = byte_at(lba) else {
        return Ok(Err(format!("LBA {lba} lies past the last byte offset")));
    };
    let what = format!("reading the {which} GPT header at LBA {lba}");
    if !read_at(file, &mut sector, at, what)? {
        return Ok(Err(format!("LBA {lba} lies past the end of the disk")));
    }
    let header = Header { sector };
    if let Some(p) = header.problem(lba) {
        return Ok(Err(p));
    }
    let mut array = vec![0u8; header.array_bytes() as usize];
    // `problem` checked that the array's end is a byte offset.
    let at = header.entry_lba() * SECTOR;
    let what = format!("reading the {which} GPT entries at byte {at}");
    if !read_at(file, &mut array, at, what)? {
        return Ok(Err(format!(
            "its entries at LBA {} run past the end of the disk",
            header.entry_lba()
        )));
    }
    if crc32fast::hash(&array) != header.u32_at(HDR_ENTRY_CRC) {
        return Ok(Err("partition entry array CRC32 mismatch".into()));
    }
    Ok(Ok(Table { header, array }))
}

/// A coreos-usr partition and its slot attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsrPartition {
    pub number: u32,
    pub label: String,
    pub part_guid: Uuid,
    pub first_lba: u64,
    pub last_lba: u64,
    pub attrs: SlotAttrs,
}

impl UsrPartition {
    /// `GptSlots::read` checked `first_lba <= last_lba < ` the disk's sectors: these cannot
    /// overflow for a partition it returned.
    pub fn offset(&self) -> u64 {
        self.first_lba * SECTOR
    }
    pub fn bytes(&self) -> u64 {
        (self.last_lba + 1 - self.first_lba) * SECTOR
    }

    /// Why this entry's LBAs are not a range on a disk of `sectors` sectors, if they are not.
    fn check(&self, sectors: u64) -> Result<(), SlotError> {
        let bad = |field: &'static str, value: u64, why: String| SlotError::Entry {
            number: self.number,
            field,
            value,
            why,
        };
        if self.first_lba > self.last_lba {
            return Err(bad(
                "StartingLBA",
                self.first_lba,
                format!("is after its EndingLBA {}", self.last_lba),
            ));
        }
        if self.last_lba >= sectors {
            return Err(bad(
                "EndingLBA",
                self.last_lba,
                format!("is past the disk's last LBA {}", sectors.saturating_sub(1)),
            ));
        }
        Ok(())
    }
}

/// A disk's GPT held for editing the slot attributes: the authoritative entry array (the
/// primary's when valid, else the backup's) and where both tables go.
#[derive(Debug)]
pub struct GptSlots {
    array: Vec<u8>,
    entry_size: usize,
    primary: Header,
    backup: Header,
    /// What was wrong with a table on reading, for the log (`cgpt repair` fixes it on write).
    pub damaged: Vec<String>,
}

impl GptSlots {
    /// Read both tables of `file` (an image or a block device of 512-byte sectors).
    pub fn read(file: &File) -> Result<GptSlots, SlotError> {
        let primary = read_table(file, 1, "primary")?;
        let sectors = {
            let mut f = file;
            let len = f
                .seek(SeekFrom::End(0))
                .map_err(SlotError::io("reading the size of the disk"))?;
            len / SECTOR
        };
        let device_last = sectors.saturating_sub(1);
        let backup_lba = match &primary {
            Ok(t) => t.header.alternate_lba(),
            Err(_) => device_last,
        };
        let backup = read_table(file, backup_lba, "backup")?;
        let mut damaged = Vec::new();
        let (good, primary_hdr, backup_hdr) = match (primary, backup) {
            (Ok(p), Ok(b)) => {
                let (ph, bh) = (p.header.clone(), b.header.clone());
                if p.array != b.array {
                    damaged.push("the backup GPT's entries differ from the primary's".into());
                }
                (p, ph, bh)
            }
            (Ok(p), Err(why)) => {
                damaged.push(format!("backup GPT at LBA {backup_lba}: {why}"));
                // A backup named past the disk is rebuilt where it belongs, at the last LBA.
                let backup_lba = backup_lba.min(device_last);
                let array_sectors = p.header.array_bytes().div_ceil(SECTOR);
                let entry_lba = backup_lba.checked_sub(array_sectors).ok_or_else(|| {
                    SlotError::Invalid(format!(
                        "the backup GPT at LBA {backup_lba} leaves no room for {array_sectors} sectors of entries before it"
                    ))
                })?;
                let bh = p.header.relocated(backup_lba, 1, entry_lba);
                let ph = p.header.relocated(1, backup_lba, p.header.entry_lba());
                (p, ph, bh)
            }
            (Err(why), Ok(b)) => {
                damaged.push(format!("primary GPT at LBA 1: {why}"));
                let ph = b.header.relocated(1, backup_lba, 2);
                let bh = b.header.clone();
                (b, ph, bh)
            }
            (Err(p), Err(b)) => {
                return Err(SlotError::Invalid(format!(
                    "no valid GPT: primary at LBA 1: {p}; backup at LBA {backup_lba}: {b}"
                )))
            }
        };
        let slots = GptSlots {
            entry_size: good.header.entry_size() as usize,
            array: good.array,
            primary: primary_hdr,
            backup: backup_hdr,
            damaged,
        };
        for p in slots.usr_partitions() {
            p.check(sectors)?;
        }
        Ok(slots)
    }

    fn entry(&self, number: u32) -> Option<&[u8]> {
        let i = (number as usize).checked_sub(1)?;
        self.array
            .get(i * self.entry_size..(i + 1) * self.entry_size)
    }

    /// The coreos-usr partitions, in table order.
    pub fn usr_partitions(&self) -> Vec<UsrPartition> {
        let count = self.array.len() / self.entry_size;
        (1..=count as u32)
            .filter_map(|n| {
                let e = self.entry(n)?;
                let type_guid = Uuid::from_bytes_le(e[ENT_TYPE..ENT_TYPE + 16].try_into().ok()?);
                if type_guid != USR_TYPE {
                    return None;
                }
                let u64_at = |o: usize| u64::from_le_bytes(e[o..o + 8].try_into().unwrap());
                let name: Vec<u16> = e[ENT_NAME..ENT_NAME + ENT_NAME_BYTES]
                    .chunks(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .take_while(|&c| c != 0)
                    .collect();
                Some(UsrPartition {
                    number: n,
                    label: String::from_utf16_lossy(&name),
                    part_guid: Uuid::from_bytes_le(e[ENT_UNIQUE..ENT_UNIQUE + 16].try_into().ok()?),
                    first_lba: u64_at(ENT_FIRST_LBA),
                    last_lba: u64_at(ENT_LAST_LBA),
                    attrs: SlotAttrs::from_bits(u64_at(ENT_ATTRIBUTES)),
                })
            })
            .collect()
    }

    /// The coreos-usr partition labelled `label` (`USR-A`, `USR-B`).
    pub fn by_label(&self, label: &str) -> Result<UsrPartition, SlotError> {
        self.usr_partitions()
            .into_iter()
            .find(|p| p.label == label)
            .ok_or_else(|| {
                SlotError::Invalid(format!(
                    "the GPT has no coreos-usr partition labelled {label}"
                ))
            })
    }

    /// Set the three fields of coreos-usr partition `number` (the other attribute bits stay).
    pub fn set(&mut self, number: u32, attrs: SlotAttrs) -> Result<(), SlotError> {
        if !self.usr_partitions().iter().any(|p| p.number == number) {
            return Err(SlotError::Invalid(format!(
                "partition {number} is not a coreos-usr partition"
            )));
        }
        let i = (number as usize - 1) * self.entry_size + ENT_ATTRIBUTES;
        let bits = u64::from_le_bytes(self.array[i..i + 8].try_into().unwrap());
        self.array[i..i + 8].copy_from_slice(&attrs.to_bits(bits).to_le_bytes());
        Ok(())
    }

    /// `cgpt prioritize -i number` over every coreos-usr partition.
    pub fn prioritize(&mut self, number: u32) -> Result<(), SlotError> {
        let parts = self.usr_partitions();
        let now: Vec<(u32, u8)> = parts.iter().map(|p| (p.number, p.attrs.priority)).collect();
        let how = super::prioritize::Prioritize {
            chosen: Some(number),
            ..Default::default()
        };
        for ((n, priority), p) in super::prioritize::prioritize(&now, how)
            .into_iter()
            .zip(&parts)
        {
            self.set(
                n,
                SlotAttrs {
                    priority,
                    ..p.attrs
                },
            )?;
        }
        Ok(())
    }

    /// Write both tables: backup array and header, sync, primary array and header, sync.
    pub fn write(&self, file: &File) -> Result<(), SlotError> {
        for (header, which) in [(&self.backup, "backup"), (&self.primary, "primary")] {
            let sealed = header.sealed(&self.array);
            let at = sealed.entry_lba() * SECTOR;
            file.write_all_at(&self.array, at)
                .map_err(SlotError::io(format!(
                    "writing the {which} GPT entries at byte {at}"
                )))?;
            file.write_all_at(&sealed.sector, sealed.my_lba() * SECTOR)
                .map_err(SlotError::io(format!(
                    "writing the {which} GPT header at LBA {}",
                    sealed.my_lba()
                )))?;
            file.sync_data()
                .map_err(SlotError::io(format!("syncing the {which} GPT")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
