//! GPT (via the `gpt` crate) and the protective or hybrid MBR CoreOS used (cgpt's layout:
//! 128 entries at LBA 2, backup entries at N-33, backup header at N-1).
//!
//! CONTRACT: `write_table(&File, &Layout)`, `read_table(&File) -> Layout`,
//! `read_primary(&[u8]) -> Layout` (from an image's first bytes, for a streaming reader),
//! `relocate_backup(&File, new_disk_bytes)`, `resize_partition(&File, number, sectors)`.
//!
//! `gpt::GptDisk::write_inplace` packs used entries into the first slots of the array, which
//! would renumber OEM (6) and ROOT (9) to 5 and 7; CoreOS's numbering has gaps on purpose. So
//! the table is assembled from the crate's parts instead: `HeaderBuilder` for both headers,
//! `Partition::write_to_device` at slot `number - 1`, `Header::write_primary/backup` (which
//! checksum the entry array as written), and `ProtectiveMBR`/`PartRecord` for the MBR.

use crate::layout::{
    Layout, Partition, ATTR_LEGACY_BIOS_BOOTABLE, ATTR_PRIORITY_SHIFT, ATTR_SUCCESSFUL,
};
use gpt::disk::LogicalBlockSize;
use gpt::header::{Header, HeaderBuilder, HeaderError};
use gpt::mbr::{PartRecord, ProtectiveMBR};
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;

/// Entries in the partition array (cgpt `create`).
pub const GPT_ENTRIES: u32 = 128;
/// Bytes per partition entry.
pub const GPT_ENTRY_SIZE: u32 = 128;
const LB: LogicalBlockSize = LogicalBlockSize::Lb512;
/// MBR partition type of the ESP in CoreOS's hybrid MBR: "FAT32 LBA", not 0xEF, because
/// "pvgrub and grub-0.97 will not recognize it" (seismograph `UpdatePMBR`).
pub const MBR_TYPE_FAT32_LBA: u8 = 0x0c;
pub const MBR_TYPE_GPT_PROTECTIVE: u8 = 0xee;
/// CHS geometry used for hybrid MBR entries.
const CHS_HEADS: u64 = 255;
const CHS_SECTORS: u64 = 63;

#[derive(Debug, thiserror::Error)]
pub enum GptError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

fn gpt_err(what: &str, e: impl std::fmt::Debug) -> GptError {
    GptError::Invalid(format!("{what}: {e:?}"))
}

fn device_bytes(file: &File) -> Result<u64, GptError> {
    let mut f = file;
    Ok(f.seek(SeekFrom::End(0))?)
}

/// Write the protective (or hybrid) MBR, primary and backup GPT for `layout` into `file`.
/// The backup goes at the end of the file or device, which must hold the whole layout.
/// Bytes 0..446 of the MBR (boot code, disk signature) are left as they are.
pub fn write_table(file: &File, layout: &Layout) -> Result<(), GptError> {
    let bytes = device_bytes(file)?;
    if bytes < layout.disk_bytes() {
        return Err(GptError::Invalid(format!(
            "the disk is {bytes} bytes but layout {} needs {} bytes",
            layout.name,
            layout.disk_bytes()
        )));
    }
    let sectors = bytes / crate::SECTOR;
    let primary = header_builder(layout.disk_guid, GPT_ENTRIES, GPT_ENTRY_SIZE, sectors - 1)
        .build(LB)
        .map_err(|e| gpt_err("GPT header", e))?;
    for p in &layout.partitions {
        if p.first_lba < primary.first_usable || p.last_lba() > primary.last_usable {
            return Err(GptError::Invalid(format!(
                "partition {} ({}) at sectors {}..={} is outside the usable sectors {}..={}",
                p.number,
                p.label,
                p.first_lba,
                p.last_lba(),
                primary.first_usable,
                primary.last_usable
            )));
        }
    }
    let entries: Vec<(u32, gpt::partition::Partition)> = layout
        .partitions
        .iter()
        .map(|p| (p.number, entry(p)))
        .collect();
    write_headers_and_entries(file, primary, &entries)?;
    write_mbr(file, layout.partitions.iter().find(|p| p.hybrid), sectors)
}

/// A builder for a primary header of `disk_guid` with its backup at `backup_lba`, the usable
/// range computed from them. Never `HeaderBuilder::new()`: it draws a random disk GUID (uuid v4)
/// that would only be overwritten, and in our statically linked binaries that draw waits on
/// `/dev/random`, which in an entropy-starved live system (a VM without an RNG device, an
/// early-boot PXE install) never becomes readable: the unattended install hung forever moving
/// the backup GPT to the end of a larger disk (issue 30). Nothing here needs randomness.
fn header_builder(
    disk_guid: uuid::Uuid,
    num_parts: u32,
    part_size: u32,
    backup_lba: u64,
) -> HeaderBuilder {
    let seed = Header {
        signature: "EFI PART".into(),
        revision: (1, 0),
        header_size_le: 92,
        crc32: 0,
        reserved: 0,
        current_lba: 1,
        backup_lba,
        // 0: computed by `build` from the entry array and the backup's position.
        first_usable: 0,
        last_usable: 0,
        disk_guid,
        part_start: 2,
        num_parts,
        part_size,
        crc32_parts: 0,
    };
    let mut b = HeaderBuilder::from_header(&seed);
    b.primary(true);
    b
}

fn entry(p: &Partition) -> gpt::partition::Partition {
    gpt::partition::Partition {
        part_type_guid: p.type_guid.into(),
        part_guid: p.part_guid,
        first_lba: p.first_lba,
        last_lba: p.last_lba(),
        flags: p.attributes,
        name: p.label.clone(),
    }
}

/// Both entry arrays (each entry at slot `number - 1`), then both headers, whose CRCs the
/// crate computes over the array just written.
fn write_headers_and_entries(
    file: &File,
    mut primary: Header,
    entries: &[(u32, gpt::partition::Partition)],
) -> Result<(), GptError> {
    let mut backup = HeaderBuilder::from_header(&primary)
        .primary(false)
        .build(LB)
        .map_err(|e| gpt_err("GPT backup header", e))?;
    let mut dev = file;
    for start in [primary.part_start, backup.part_start] {
        gpt::partition::Partition::write_zero_entries_to_device(
            &mut dev,
            0,
            GPT_ENTRIES as u64,
            start,
            LB,
            GPT_ENTRY_SIZE,
        )?;
        for (number, e) in entries {
            if *number == 0 || *number > GPT_ENTRIES {
                return Err(GptError::Invalid(format!(
                    "partition number {number} is outside 1..={GPT_ENTRIES}"
                )));
            }
            e.write_to_device(&mut dev, (*number - 1) as u64, start, LB, GPT_ENTRY_SIZE)?;
        }
    }
    backup
        .write_backup(&mut dev, LB)
        .map_err(|e| gpt_err("writing the backup GPT header", e))?;
    primary
        .write_primary(&mut dev, LB)
        .map_err(|e| gpt_err("writing the primary GPT header", e))?;
    Ok(())
}

/// CHS address of `lba` with 255 heads and 63 sectors, clamped as MBR tools do.
fn chs(lba: u64) -> (u8, u8, u8) {
    let cyl = lba / (CHS_HEADS * CHS_SECTORS);
    if cyl > 1023 {
        return (254, 0xff, 0xff);
    }
    let head = (lba / CHS_SECTORS) % CHS_HEADS;
    let sector = lba % CHS_SECTORS + 1;
    (
        head as u8,
        (sector as u8) | (((cyl >> 2) & 0xc0) as u8),
        (cyl & 0xff) as u8,
    )
}

fn record(boot: u8, os_type: u8, first: u64, count: u64) -> PartRecord {
    let (sh, ss, st) = chs(first);
    let (eh, es, et) = chs(first + count - 1);
    PartRecord {
        boot_indicator: boot,
        start_head: sh,
        start_sector: ss,
        start_track: st,
        os_type,
        end_head: eh,
        end_sector: es,
        end_track: et,
        lb_start: first as u32,
        lb_size: count.min(u32::MAX as u64) as u32,
    }
}

/// A protective MBR, or CoreOS's hybrid one when a partition is legacy-BIOS-bootable:
/// entry 0 = that partition (0x0c, active), entry 1 = 0xEE over LBA 1 up to it. Only the
/// four records and the signature are written, so GRUB's boot code stays.
fn write_mbr(file: &File, hybrid: Option<&Partition>, disk_sectors: u64) -> Result<(), GptError> {
    let protective_size = (disk_sectors - 1).min(u32::MAX as u64) as u32;
    let mut mbr = ProtectiveMBR::with_lb_size(protective_size);
    if let Some(p) = hybrid {
        if p.first_lba + p.sectors > u32::MAX as u64 {
            return Err(GptError::Invalid(format!(
                "partition {} ({}) is beyond the MBR's 2 TiB reach",
                p.number, p.label
            )));
        }
        mbr.set_partition(0, record(0x80, MBR_TYPE_FAT32_LBA, p.first_lba, p.sectors));
        mbr.set_partition(1, record(0, MBR_TYPE_GPT_PROTECTIVE, 1, p.first_lba - 1));
    }
    let mut dev = file;
    mbr.update_conservative(&mut dev)
        .map_err(|e| gpt_err("writing the MBR", e))?;
    Ok(())
}

/// Read the partition table of a disk image or block device.
pub fn read_table(file: &File) -> Result<Layout, GptError> {
    let disk = gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(LB)
        .open_from_device(file)
        .map_err(|e| gpt_err("reading the GPT", e))?;
    let header = disk.header();
    let backup = header.current_lba.max(header.backup_lba);
    Ok(table_layout(*disk.guid(), disk.partitions(), backup))
}

/// Read the primary GPT of an image from its first bytes held in memory (at least through the
/// partition entry array), for a reader that sees the image as a stream and must know its size
/// before the rest arrives. `disk_sectors` of the result comes from the header's AlternateLBA:
/// the backup header is the image's last sector.
pub fn read_primary(disk_start: &[u8]) -> Result<Layout, GptError> {
    let invalid = |m: String| GptError::Invalid(m);
    let sector = crate::SECTOR as usize;
    if disk_start.len() < 2 * sector || &disk_start[sector..sector + 8] != b"EFI PART" {
        return Err(invalid("no GPT header (\"EFI PART\") at LBA 1".into()));
    }
    let mut dev = std::io::Cursor::new(disk_start);
    let header =
        gpt::header::read_header_from_arbitrary_device(&mut dev, LB).map_err(|e| match e {
            HeaderError::InvalidCRC32Checksum => {
                invalid("GPT header CRC32 mismatch at LBA 1".into())
            }
            e => gpt_err("reading the GPT header at LBA 1", e),
        })?;
    // UEFI 2.10 §5.3.2: HeaderSize is at least 92 and at most the block size.
    if !(92..=crate::SECTOR as u32).contains(&header.header_size_le) {
        return Err(invalid(format!(
            "GPT header size {} is invalid",
            header.header_size_le
        )));
    }
    if header.current_lba != 1 || header.backup_lba < 3 {
        return Err(invalid(format!(
            "GPT header at LBA 1 names itself LBA {}, backup LBA {}",
            header.current_lba, header.backup_lba
        )));
    }
    let (at, n, size) = (
        header.part_start * crate::SECTOR,
        header.num_parts as u64,
        header.part_size,
    );
    if size != GPT_ENTRY_SIZE || at + n * size as u64 > disk_start.len() as u64 {
        return Err(invalid(format!(
            "GPT partition entries ({n} x {size} bytes at byte {at}) are outside the first {} bytes",
            disk_start.len()
        )));
    }
    let entries = gpt::partition::file_read_partitions(&mut dev, &header, LB).map_err(|e| {
        if e.to_string().contains("CRC") {
            invalid("GPT partition entry array CRC32 mismatch".into())
        } else {
            gpt_err("reading the GPT partition entries", e)
        }
    })?;
    Ok(table_layout(header.disk_guid, &entries, header.backup_lba))
}

/// The used entries of a table as a `Layout` of `backup_lba + 1` sectors.
fn table_layout(
    disk_guid: uuid::Uuid,
    entries: &std::collections::BTreeMap<u32, gpt::partition::Partition>,
    backup_lba: u64,
) -> Layout {
    let mut partitions = Vec::new();
    for (&number, e) in entries.iter().filter(|(_, e)| e.is_used()) {
        let sectors = e.last_lba + 1 - e.first_lba;
        partitions.push(Partition {
            number,
            label: e.name.clone(),
            type_guid: e.part_type_guid.guid,
            part_guid: e.part_guid,
            first_lba: e.first_lba,
            sectors,
            fs_type: None,
            fs_blocks: sectors * crate::SECTOR / crate::layout::FS_BLOCK_SIZE,
            hybrid: e.flags & ATTR_LEGACY_BIOS_BOOTABLE != 0,
            prioritize: e.flags & (ATTR_SUCCESSFUL | (0xf << ATTR_PRIORITY_SHIFT)) != 0,
            verity: false,
            attributes: e.flags,
            fs_bytes_per_inode: 4096,
            fs_inode_size: 128,
        });
    }
    Layout {
        name: "disk".into(),
        disk_guid,
        disk_sectors: backup_lba + 1,
        partitions,
    }
}

/// Move the backup GPT to the last sectors of a disk of `new_disk_bytes` (as `sgdisk -e`),
/// growing a regular file to that size first, and widen the protective MBR entry.
pub fn relocate_backup(file: &File, new_disk_bytes: u64) -> Result<(), GptError> {
    let (old, entries) = primary_and_entries(file)?;
    let new_sectors = new_disk_bytes / crate::SECTOR;
    let last_end = entries.iter().map(|(_, e)| e.last_lba).max().unwrap_or(0);
    let array_sectors = (old.num_parts as u64 * old.part_size as u64).div_ceil(crate::SECTOR);
    if new_sectors < last_end + array_sectors + 2 {
        return Err(GptError::Invalid(format!(
            "{new_disk_bytes} bytes is too small: the last partition ends at sector {last_end}"
        )));
    }
    if file.metadata()?.file_type().is_file() && file.metadata()?.len() < new_disk_bytes {
        file.set_len(new_disk_bytes)?;
    }
    if device_bytes(file)? < new_disk_bytes {
        return Err(GptError::Invalid(format!(
            "the device is smaller than {new_disk_bytes} bytes"
        )));
    }
    // The old backup header would otherwise stay behind as a stale "EFI PART" mid-disk.
    if old.backup_lba != new_sectors - 1 && old.backup_lba > last_end {
        file.write_all_at(&[0u8; 512], old.backup_lba * crate::SECTOR)?;
    }
    let primary = header_builder(old.disk_guid, old.num_parts, old.part_size, new_sectors - 1)
        .first_usable(old.first_usable)
        .build(LB)
        .map_err(|e| gpt_err("GPT header", e))?;
    write_headers_and_entries(file, primary, &entries)?;
    // Keep a hybrid MBR as it is (its 0xEE entry covers the start of the disk); widen a
    // protective one to the new size.
    let mut first = [0u8; 16];
    file.read_exact_at(&mut first, 446)?;
    if first[4] == MBR_TYPE_GPT_PROTECTIVE && first[8..12] == 1u32.to_le_bytes() {
        let mbr = ProtectiveMBR::with_lb_size((new_sectors - 1).min(u32::MAX as u64) as u32);
        let mut dev = file;
        mbr.update_conservative(&mut dev)
            .map_err(|e| gpt_err("writing the MBR", e))?;
    }
    Ok(())
}

/// Move the end of partition `number` so that it spans `sectors` (as `cgpt add -s`), keeping
/// its start, the other entries, their numbering and the MBR. It must fit the usable sectors:
/// move the backup GPT first (`relocate_backup`) when the disk grew.
pub fn resize_partition(file: &File, number: u32, sectors: u64) -> Result<(), GptError> {
    let (primary, mut entries) = primary_and_entries(file)?;
    let (_, e) = entries
        .iter_mut()
        .find(|(n, _)| *n == number)
        .ok_or_else(|| GptError::Invalid(format!("the GPT has no partition {number}")))?;
    let last = e.first_lba + sectors.max(1) - 1;
    if last > primary.last_usable {
        return Err(GptError::Invalid(format!(
            "partition {number} ({}) of {sectors} sectors from sector {} would end after the last usable sector {}",
            e.name, e.first_lba, primary.last_usable
        )));
    }
    e.last_lba = last;
    write_headers_and_entries(file, primary, &entries)
}

/// The primary header and the used entries (with their numbers) of a disk's GPT.
fn primary_and_entries(
    file: &File,
) -> Result<(Header, Vec<(u32, gpt::partition::Partition)>), GptError> {
    let disk = gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(LB)
        .open_from_device(file)
        .map_err(|e| gpt_err("reading the GPT", e))?;
    let primary = disk
        .primary_header()
        .map_err(|e| gpt_err("the primary GPT header is damaged", e))?
        .clone();
    let entries = disk
        .partitions()
        .iter()
        .filter(|(_, e)| e.is_used())
        .map(|(n, e)| (*n, e.clone()))
        .collect();
    Ok((primary, entries))
}

#[cfg(test)]
#[path = "gpt_tests.rs"]
mod tests;
