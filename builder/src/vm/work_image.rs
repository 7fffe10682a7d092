//! The working copy of the production image that a format changes (as image_to_vm.sh did):
//! checked to be a CoreOS disk, copied sparsely (`disk::sparse::copy`), grown to the format's
//! layout, given the platform's OEM tree.

use anyhow::{bail, Context};
use disk::layout::Layout;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

const SECTOR: u64 = disk::SECTOR;
/// Partitions a CoreOS image must have for the VM formats to make sense of it.
pub const REQUIRED: [(u32, &str); 3] = [(3, "USR-A"), (6, "OEM"), (9, "ROOT")];

/// Read the table of `path` and check that it is a CoreOS disk.
pub fn check_coreos(path: &Path) -> anyhow::Result<Layout> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let table = disk::gpt::read_table(&f).with_context(|| {
        format!(
            "{} is not a CoreOS image: no readable GPT partition table",
            path.display()
        )
    })?;
    for (number, label) in REQUIRED {
        match table.by_number(number) {
            Some(p) if p.label == label => {}
            Some(p) => bail!(
                "{} is not a CoreOS image: partition {number} is labelled {:?}, expected {label}",
                path.display(),
                p.label
            ),
            None => bail!(
                "{} is not a CoreOS image: it has no partition {number} ({label})",
                path.display()
            ),
        }
    }
    Ok(table)
}

/// Grow the disk and ROOT (partition 9) to `layout`'s size, as `disk_util update` did, moving the
/// backup GPT to the new end. ROOT's filesystem keeps its size (CoreOS grows it on first boot).
pub fn grow_to_layout(work: &File, layout: &Layout) -> anyhow::Result<()> {
    let table = disk::gpt::read_table(work).context("reading the work copy's GPT")?;
    let root = table
        .by_number(9)
        .context("the image has no ROOT partition")?;
    let want = layout
        .by_number(9)
        .context("the layout has no ROOT partition")?;
    if root.sectors >= want.sectors {
        return Ok(());
    }
    let new_last = root.first_lba + want.sectors - 1;
    // The table needs 33 sectors after the last partition; CoreOS aligns disks to 258048 sectors.
    let disk_sectors = layout
        .disk_sectors
        .max((new_last + 1 + 34).next_multiple_of(258048));
    let old_bytes = work.metadata()?.len();
    if disk_sectors * SECTOR > old_bytes {
        work.set_len(disk_sectors * SECTOR)?;
    }
    disk::gpt::relocate_backup(work, disk_sectors * SECTOR).context("moving the backup GPT")?;
    disk::gpt::resize_partition(work, 9, want.sectors).context("growing ROOT's GPT entry")?;
    Ok(())
}

/// Pad the disk to a whole multiple of `unit` bytes and move the backup GPT to the new end.
pub fn pad_to(work: &File, unit: u64) -> anyhow::Result<u64> {
    let len = work.metadata()?.len();
    let padded = len.next_multiple_of(unit);
    if padded != len {
        disk::gpt::relocate_backup(work, padded).context("moving the backup GPT")?;
        work.set_len(padded)?;
    }
    Ok(padded)
}

/// A seed for the artifacts' IDs (VMDK CID, MAC, OVF UUID) that depends only on the disk:
/// its size, where it holds data, its partition table and the OEM partition's data.
pub fn fingerprint(work: &File, format: &str) -> anyhow::Result<Vec<u8>> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(format.as_bytes());
    let len = work.metadata()?.len();
    h.update(len.to_le_bytes());
    let ranges = disk::sparse::data_ranges(work)?;
    for r in &ranges {
        h.update(r.start.to_le_bytes());
        h.update(r.end.to_le_bytes());
    }
    let mut head = vec![0u8; (1 << 20).min(len as usize)];
    work.read_exact_at(&mut head, 0)?;
    h.update(&head);
    let table = disk::gpt::read_table(work)?;
    for (number, _) in REQUIRED.iter().filter(|(n, _)| *n != 9) {
        let p = table
            .by_number(*number)
            .context("partition checked earlier")?;
        // USR-A's first MiB (superblock, UUIDs) and all of OEM's data.
        let span = if *number == 6 { p.bytes() } else { 1 << 20 };
        let mut buf = vec![0u8; 1 << 20];
        for r in ranges
            .iter()
            .filter(|r| r.start < p.offset() + span && r.end > p.offset())
        {
            let (mut at, end) = (r.start.max(p.offset()), r.end.min(p.offset() + span));
            while at < end {
                let n = ((end - at) as usize).min(buf.len());
                work.read_exact_at(&mut buf[..n], at)?;
                h.update(&buf[..n]);
                at += n as u64;
            }
        }
    }
    Ok(h.finalize().to_vec())
}
