//! Finding a file of an ISO 9660 volume by path: the Primary Volume Descriptor's root record,
//! then one directory extent per path component. Enough for `coreos-install iso customize`
//! to locate the embed areas; names compare without regard to case, as GRUB and Linux do.

use super::{
    le32, DirRecord, IsoError, PVD_ROOT_RECORD, STANDARD_ID, SYSTEM_AREA_BLOCKS, VD_PRIMARY,
};
use crate::ISO_BLOCK;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// A directory larger than this is not one this project wrote.
const MAX_DIR_BYTES: u32 = 1 << 24;

/// What the Primary Volume Descriptor says.
#[derive(Debug, Clone)]
pub struct Volume {
    pub volume_id: String,
    /// Volume Space Size, in blocks.
    pub blocks: u32,
    pub root: DirRecord,
}

fn read_at(f: &File, offset: u64, len: usize) -> Result<Vec<u8>, IsoError> {
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, offset)
        .map_err(|source| IsoError::Io { offset, source })?;
    Ok(b)
}

/// The Primary Volume Descriptor at block 16.
pub fn read_volume(f: &File) -> Result<Volume, IsoError> {
    let at = SYSTEM_AREA_BLOCKS * ISO_BLOCK;
    let b = read_at(f, at, ISO_BLOCK as usize)?;
    if b[0] != VD_PRIMARY || &b[1..6] != STANDARD_ID {
        return Err(IsoError::Invalid(format!(
            "no ISO 9660 primary volume descriptor at byte {at} (not an ISO image)"
        )));
    }
    let root = DirRecord::decode(&b[PVD_ROOT_RECORD..PVD_ROOT_RECORD + 34])
        .filter(DirRecord::is_dir)
        .ok_or_else(|| IsoError::Invalid("the root directory record is damaged".into()))?;
    Ok(Volume {
        volume_id: String::from_utf8_lossy(&b[40..72]).trim_end().to_string(),
        blocks: le32(&b[80..]),
        root,
    })
}

/// The records of a directory, `.` and `..` excluded.
fn list(f: &File, dir: &DirRecord) -> Result<Vec<DirRecord>, IsoError> {
    if dir.data_len > MAX_DIR_BYTES {
        return Err(IsoError::Invalid(format!(
            "a directory of {} bytes at block {}",
            dir.data_len, dir.extent_lba
        )));
    }
    let bytes = read_at(
        f,
        u64::from(dir.extent_lba) * ISO_BLOCK,
        dir.data_len as usize,
    )?;
    let mut out = Vec::new();
    for block in bytes.chunks(ISO_BLOCK as usize) {
        let mut pos = 0;
        while let Some(r) = DirRecord::decode(&block[pos..]) {
            pos += r.len();
            if r.identifier != [0] && r.identifier != [1] {
                out.push(r);
            }
            if pos >= block.len() {
                break;
            }
        }
    }
    Ok(out)
}

/// (byte offset, bytes) of the file at `path` (`/coreos/grub.cfg` or `COREOS/GRUB.CFG`), or
/// None when no such file exists.
pub fn find_file(f: &File, path: &str) -> Result<Option<(u64, u64)>, IsoError> {
    let mut cur = read_volume(f)?.root;
    let parts: Vec<String> = path
        .split('/')
        .filter(|p| !p.is_empty())
        .map(|p| p.to_ascii_uppercase())
        .collect();
    for (i, want) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let Some(r) = list(f, &cur)?
            .into_iter()
            .find(|r| &r.name() == want && r.is_dir() != last)
        else {
            return Ok(None);
        };
        cur = r;
    }
    if cur.is_dir() {
        return Ok(None);
    }
    Ok(Some((
        u64::from(cur.extent_lba) * ISO_BLOCK,
        u64::from(cur.data_len),
    )))
}
