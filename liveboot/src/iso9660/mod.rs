//! ISO 9660 (ECMA-119, 4th edition 2019) volumes: the structures (`§` numbers are ECMA-119's),
//! a planner that lays out a volume from file sizes (`layout`), and a reader that finds a file
//! by path (`reader`).
//!
//! Names are plain ECMA-119 identifiers (interchange level 2: d-characters, up to 30
//! characters, `NAME.EXT;1`): GRUB compares them without regard to case when a volume has no
//! Rock Ridge or Joliet, and Linux shows them in lower case, so `/coreos/vmlinuz` finds
//! `COREOS/VMLINUZ;1` everywhere this project needs it. Neither extension is written.

mod layout;
mod reader;

pub use layout::{FileSpec, IsoLayout, VolumeSpec};
pub use reader::{find_file, read_volume, Volume};

use crate::ISO_BLOCK;

/// Blocks before the first volume descriptor: the System Area (§6.2.1), 32 KiB.
pub const SYSTEM_AREA_BLOCKS: u64 = 16;
/// `Standard Identifier` of every volume descriptor (§8.1.2).
pub const STANDARD_ID: &[u8; 5] = b"CD001";
/// Volume descriptor types (§8.1.1).
pub const VD_BOOT_RECORD: u8 = 0;
pub const VD_PRIMARY: u8 = 1;
pub const VD_SET_TERMINATOR: u8 = 255;
/// Bytes of a directory record before its identifier (§9.1).
pub const DIR_RECORD_FIXED: usize = 33;
/// `File Flags` bit: the record names a directory (§9.1.6).
pub const FLAG_DIRECTORY: u8 = 0x02;
/// Offset of the root directory record in the primary volume descriptor (§8.4.18).
pub const PVD_ROOT_RECORD: usize = 156;
/// Longest identifier at interchange level 2 (§10.2), without the `;1` version.
pub const MAX_NAME_LEN: usize = 30;

#[derive(Debug, thiserror::Error)]
pub enum IsoError {
    #[error("I/O at byte {offset}: {source}")]
    Io {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("ISO 9660 name {0:?}: {1}")]
    BadName(String, &'static str),
    #[error("{0}")]
    Invalid(String),
}

/// Both-byte orders of a 32-bit field (§7.3.3): little-endian, then big-endian.
pub fn both32(v: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&v.to_le_bytes());
    b[4..].copy_from_slice(&v.to_be_bytes());
    b
}

/// Both-byte orders of a 16-bit field (§7.2.3).
pub fn both16(v: u16) -> [u8; 4] {
    let mut b = [0u8; 4];
    b[..2].copy_from_slice(&v.to_le_bytes());
    b[2..].copy_from_slice(&v.to_be_bytes());
    b
}

/// The little-endian half of a both-byte-order 32-bit field.
pub fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("four bytes"))
}

/// A directory record (§9.1): one file or directory in its parent's extent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirRecord {
    pub extent_lba: u32,
    pub data_len: u32,
    /// Seconds since the Unix epoch, UTC.
    pub recorded: i64,
    pub flags: u8,
    /// `[0]` for `.`, `[1]` for `..`, else the identifier (`NAME.EXT;1` or a directory name).
    pub identifier: Vec<u8>,
}

impl DirRecord {
    /// Bytes of the record: the fixed part, the identifier, a pad byte to an even length.
    pub fn len(&self) -> usize {
        let n = DIR_RECORD_FIXED + self.identifier.len();
        n + n % 2
    }

    pub fn is_empty(&self) -> bool {
        self.identifier.is_empty()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut r = vec![0u8; self.len()];
        r[0] = self.len() as u8;
        // r[1]: Extended Attribute Record Length, none.
        r[2..10].copy_from_slice(&both32(self.extent_lba));
        r[10..18].copy_from_slice(&both32(self.data_len));
        r[18..25].copy_from_slice(&record_date(self.recorded));
        r[25] = self.flags;
        // r[26], r[27]: File Unit Size and Interleave Gap Size: not interleaved.
        r[28..32].copy_from_slice(&both16(1)); // Volume Sequence Number
        r[32] = self.identifier.len() as u8;
        r[33..33 + self.identifier.len()].copy_from_slice(&self.identifier);
        r
    }

    /// The record at the start of `b`; `None` for a zero length byte (the rest of the block
    /// is unused) or a record that does not fit.
    pub fn decode(b: &[u8]) -> Option<DirRecord> {
        let len = *b.first()? as usize;
        if len < DIR_RECORD_FIXED || len > b.len() {
            return None;
        }
        let id_len = b[32] as usize;
        if DIR_RECORD_FIXED + id_len > len {
            return None;
        }
        Some(DirRecord {
            extent_lba: le32(&b[2..]),
            data_len: le32(&b[10..]),
            recorded: 0,
            flags: b[25],
            identifier: b[33..33 + id_len].to_vec(),
        })
    }

    pub fn is_dir(&self) -> bool {
        self.flags & FLAG_DIRECTORY != 0
    }

    /// The identifier as a path component: without `;1`, a trailing `.`, and in upper case.
    pub fn name(&self) -> String {
        let s = String::from_utf8_lossy(&self.identifier).to_ascii_uppercase();
        let s = s.split(';').next().unwrap_or_default();
        s.strip_suffix('.').unwrap_or(s).to_string()
    }
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day, hour, minute, second), UTC, clamped to the years both date forms hold.
fn civil(unix: i64) -> (i64, u32, u32, u32, u32, u32) {
    let unix = unix.clamp(0, 253_402_300_799); // 1970 ..= 9999-12-31T23:59:59
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    let s = unix.rem_euclid(86_400) as u32;
    (y, m, d, s / 3600, s / 60 % 60, s % 60)
}

/// `Recording Date and Time` of a directory record (§9.1.5): years since 1900, month, day,
/// hour, minute, second, offset from GMT in 15-minute units (0: UTC).
pub fn record_date(unix: i64) -> [u8; 7] {
    let (y, mo, d, h, mi, s) = civil(unix);
    [
        (y - 1900).clamp(0, 255) as u8,
        mo as u8,
        d as u8,
        h as u8,
        mi as u8,
        s as u8,
        0,
    ]
}

/// A volume descriptor date (§8.4.26.1): `YYYYMMDDHHMMSScc` in digits, then the GMT offset.
pub fn volume_date(unix: i64) -> [u8; 17] {
    let (y, mo, d, h, mi, s) = civil(unix);
    let text = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}00");
    let mut b = [0u8; 17];
    b[..16].copy_from_slice(text.as_bytes());
    b
}

/// The "not specified" volume date (§8.4.26.1): sixteen `0` digits and a zero offset.
pub fn volume_date_unset() -> [u8; 17] {
    let mut b = [b'0'; 17];
    b[16] = 0;
    b
}

/// `n` bytes of the field `text`, padded with spaces (a- and d-character fields, §7.4).
pub fn padded(text: &str, n: usize) -> Vec<u8> {
    let mut b = text.as_bytes().to_vec();
    b.truncate(n);
    b.resize(n, b' ');
    b
}

/// Blocks holding `bytes`.
pub fn blocks(bytes: u64) -> u64 {
    bytes.div_ceil(ISO_BLOCK)
}

/// Check one path component: d-characters (`A-Z 0-9 _`) and, for a file, at most one `.`
/// between name and extension (§7.5.1, §7.6.1).
pub fn check_component(name: &str, is_file: bool) -> Result<(), IsoError> {
    let bad = |why| Err(IsoError::BadName(name.to_string(), why));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("longer than 30 characters (interchange level 2)");
    }
    let dots = name.bytes().filter(|&b| b == b'.').count();
    if dots > usize::from(is_file) {
        return bad(if is_file {
            "more than one '.'"
        } else {
            "a directory name holds no '.'"
        });
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
    {
        return bad("only A-Z, 0-9 and _ are d-characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_both_forms() {
        // 2023-11-14T22:13:20Z
        assert_eq!(record_date(1_700_000_000), [123, 11, 14, 22, 13, 20, 0]);
        assert_eq!(&volume_date(1_700_000_000)[..16], b"2023111422132000");
        assert_eq!(volume_date(0)[16], 0);
        assert_eq!(&volume_date_unset()[..16], b"0000000000000000");
    }

    #[test]
    fn records_round_trip_and_pad_to_even_lengths() {
        let r = DirRecord {
            extent_lba: 1234,
            data_len: 99,
            recorded: 0,
            flags: 0,
            identifier: b"VMLINUZ;1".to_vec(),
        };
        let b = r.encode();
        assert_eq!(b.len(), 42, "33 + 9 = 42, already even");
        assert_eq!(&b[2..10], &[0xd2, 4, 0, 0, 0, 0, 4, 0xd2]);
        let back = DirRecord::decode(&b).unwrap();
        assert_eq!((back.extent_lba, back.data_len), (1234, 99));
        assert_eq!(back.name(), "VMLINUZ");
        let dot = DirRecord {
            identifier: vec![0],
            flags: FLAG_DIRECTORY,
            ..r
        };
        assert_eq!(dot.encode().len(), 34);
        assert!(DirRecord::decode(&[0u8; 40]).is_none());
    }

    #[test]
    fn names_are_d_characters() {
        assert!(check_component("GRUB.CFG", true).is_ok());
        assert!(check_component("COREOS", false).is_ok());
        assert!(check_component("grub.cfg", true).is_err());
        assert!(check_component("A.B.C", true).is_err());
        assert!(check_component("A.B", false).is_err());
        assert!(check_component("COREOS-INSTALL", true).is_err());
        assert!(check_component(&"A".repeat(31), true).is_err());
    }
}
