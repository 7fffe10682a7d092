//! Repair of the `.` and `..` entries `fatfs` 0.3.6 writes: it puts a long-name (LFN) entry
//! before each of them, so `.` and `..` are not in the first two slots of a new directory
//! and `fsck.fat` rejects the volume (rafalh/rust-fatfs#117, fixed upstream after 0.3.6).
//! After the volume is written, every subdirectory's first two slots are made `.` and `..`
//! again and the two stray LFN slots are marked deleted (0xE5), which is what a fixed
//! `fatfs` and mkfs/Linux produce apart from the two free slots.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

const ENTRY: usize = 32;
const ATTR_LFN: u8 = 0x0f;
const ATTR_DIRECTORY: u8 = 0x10;
const DELETED: u8 = 0xe5;

struct Geometry {
    bytes_per_cluster: u64,
    fat_offset: u64,
    root_offset: u64,
    root_bytes: u64,
    data_offset: u64,
    fat_bits: u32,
    root_cluster: u32,
}

fn geometry(dev: &File, base: u64) -> io::Result<Geometry> {
    let mut b = [0u8; 512];
    dev.read_exact_at(&mut b, base)?;
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
    let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as u64;
    let bps = u16_at(11);
    let spc = b[13] as u64;
    let reserved = u16_at(14);
    let fats = b[16] as u64;
    let root_entries = u16_at(17);
    let total = if u16_at(19) != 0 {
        u16_at(19)
    } else {
        u32_at(32)
    };
    let fat_size = if u16_at(22) != 0 {
        u16_at(22)
    } else {
        u32_at(36)
    };
    if bps == 0 || spc == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a FAT boot sector",
        ));
    }
    let root_sectors = (root_entries * ENTRY as u64).div_ceil(bps);
    let first_data = reserved + fats * fat_size + root_sectors;
    let clusters = (total - first_data) / spc;
    let fat_bits = if clusters < 4085 {
        12
    } else if clusters < 65525 {
        16
    } else {
        32
    };
    Ok(Geometry {
        bytes_per_cluster: bps * spc,
        fat_offset: base + reserved * bps,
        root_offset: base + (reserved + fats * fat_size) * bps,
        root_bytes: root_sectors * bps,
        data_offset: base + first_data * bps,
        fat_bits,
        root_cluster: if fat_bits == 32 { u32_at(44) as u32 } else { 0 },
    })
}

impl Geometry {
    fn cluster_offset(&self, c: u32) -> u64 {
        self.data_offset + (c as u64 - 2) * self.bytes_per_cluster
    }

    fn next(&self, dev: &File, c: u32) -> io::Result<Option<u32>> {
        let (v, end) = match self.fat_bits {
            12 => {
                let mut b = [0u8; 2];
                dev.read_exact_at(&mut b, self.fat_offset + c as u64 * 3 / 2)?;
                let v = u16::from_le_bytes(b) as u32;
                (if c % 2 == 1 { v >> 4 } else { v & 0xfff }, 0xff8)
            }
            16 => {
                let mut b = [0u8; 2];
                dev.read_exact_at(&mut b, self.fat_offset + c as u64 * 2)?;
                (u16::from_le_bytes(b) as u32, 0xfff8)
            }
            _ => {
                let mut b = [0u8; 4];
                dev.read_exact_at(&mut b, self.fat_offset + c as u64 * 4)?;
                (u32::from_le_bytes(b) & 0x0fff_ffff, 0x0fff_fff8)
            }
        };
        Ok(if v < 2 || v >= end { None } else { Some(v) })
    }

    /// Byte ranges holding a directory's entries: the fixed FAT12/16 root, or a chain.
    fn dir_extents(&self, dev: &File, first: u32) -> io::Result<Vec<(u64, u64)>> {
        if first == 0 {
            return Ok(vec![(self.root_offset, self.root_bytes)]);
        }
        let mut out = Vec::new();
        let mut c = Some(first);
        while let Some(cl) = c {
            if out.len() > 1 << 20 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "FAT cluster chain loops",
                ));
            }
            out.push((self.cluster_offset(cl), self.bytes_per_cluster));
            c = self.next(dev, cl)?;
        }
        Ok(out)
    }
}

/// Fix the dot entries of every directory of the FAT volume at byte `base` of `dev`.
pub fn repair_dot_entries(dev: &File, base: u64) -> io::Result<()> {
    let g = geometry(dev, base)?;
    let mut pending = vec![g.root_cluster];
    while let Some(dir) = pending.pop() {
        for (off, len) in g.dir_extents(dev, dir)? {
            let mut buf = vec![0u8; len as usize];
            dev.read_exact_at(&mut buf, off)?;
            for e in buf.chunks(ENTRY) {
                if e[0] == 0 {
                    break;
                }
                let name = &e[..11];
                if e[0] == DELETED
                    || e[11] == ATTR_LFN
                    || e[11] & ATTR_DIRECTORY == 0
                    || name == b".          "
                    || name == b"..         "
                {
                    continue;
                }
                let hi = if g.fat_bits == 32 {
                    (u16::from_le_bytes([e[20], e[21]]) as u32) << 16
                } else {
                    0
                };
                let cluster = hi | u16::from_le_bytes([e[26], e[27]]) as u32;
                if cluster >= 2 {
                    fix_first_slots(dev, g.cluster_offset(cluster))?;
                    pending.push(cluster);
                }
            }
        }
    }
    Ok(())
}

fn fix_first_slots(dev: &File, at: u64) -> io::Result<()> {
    let mut s = [0u8; 4 * ENTRY];
    dev.read_exact_at(&mut s, at)?;
    let attr = |i: usize| s[i * ENTRY + 11];
    let name = |i: usize| &s[i * ENTRY..i * ENTRY + 11];
    if attr(0) == ATTR_LFN
        && name(1) == b".          "
        && attr(2) == ATTR_LFN
        && name(3) == b"..         "
    {
        let mut fixed = [0u8; 4 * ENTRY];
        fixed[..ENTRY].copy_from_slice(&s[ENTRY..2 * ENTRY]);
        fixed[ENTRY..2 * ENTRY].copy_from_slice(&s[3 * ENTRY..4 * ENTRY]);
        fixed[2 * ENTRY] = DELETED;
        fixed[3 * ENTRY] = DELETED;
        dev.write_all_at(&fixed, at)?;
    }
    Ok(())
}
