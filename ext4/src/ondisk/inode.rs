//! Inodes (`struct ext4_inode`: 128 bytes, then the "large inode" fields up to
//! 128 + i_extra_isize, then in-inode extended attributes; inodes.rst) and their checksum.

use super::csum::{crc32c_le, inode_seed};
use super::le::{get16, get32, put16, put32};

pub const EXT2_GOOD_OLD_INODE_SIZE: usize = 128;
/// i_extra_isize of a full `ext4_inode_large` (through i_projid), as mke2fs sets it.
pub const EXT4_INODE_EXTRA_ISIZE: u16 = 32;

// Special inode numbers.
pub const EXT2_BAD_INO: u32 = 1;
pub const EXT2_ROOT_INO: u32 = 2;
pub const EXT2_RESIZE_INO: u32 = 7;
pub const EXT4_JOURNAL_INO: u32 = 8;
pub const EXT2_GOOD_OLD_FIRST_INO: u32 = 11;

// i_mode file type bits
pub const S_IFMT: u16 = 0o170000;
pub const S_IFIFO: u16 = 0o010000;
pub const S_IFCHR: u16 = 0o020000;
pub const S_IFDIR: u16 = 0o040000;
pub const S_IFBLK: u16 = 0o060000;
pub const S_IFREG: u16 = 0o100000;
pub const S_IFLNK: u16 = 0o120000;

// i_flags
pub const EXT4_ENCRYPT_FL: u32 = 0x0000_0800;
pub const EXT4_INDEX_FL: u32 = 0x0000_1000;
pub const EXT4_HUGE_FILE_FL: u32 = 0x0004_0000;
pub const EXT4_EXTENTS_FL: u32 = 0x0008_0000;
pub const EXT4_INLINE_DATA_FL: u32 = 0x1000_0000;
pub const EXT4_CASEFOLD_FL: u32 = 0x4000_0000;

// i_block as a block map (ext2/3): direct pointers, then single, double, triple indirect.
pub const EXT2_NDIR_BLOCKS: usize = 12;
pub const EXT2_IND_BLOCK: usize = 12;
pub const EXT2_DIND_BLOCK: usize = 13;
pub const EXT2_TIND_BLOCK: usize = 14;
/// Bytes of i_block (15 words): extent root, block map, fast symlink or device number.
pub const I_BLOCK_BYTES: usize = 60;

// Offsets of the large-inode fields (from the start of the record).
const I_EXTRA_ISIZE: usize = 0x80;
const I_CHECKSUM_HI: usize = 0x82;
const I_CTIME_EXTRA: usize = 0x84;
const I_MTIME_EXTRA: usize = 0x88;
const I_ATIME_EXTRA: usize = 0x8C;
const I_CRTIME: usize = 0x90;
const I_CRTIME_EXTRA: usize = 0x94;
/// Low 2 bits of an `_extra` time field: bits 32-33 of the seconds; the rest: nanoseconds.
const EXT4_EPOCH_BITS: u32 = 2;
const EXT4_EPOCH_MASK: u32 = (1 << EXT4_EPOCH_BITS) - 1;

/// A time as an inode stores it: seconds since the epoch (signed) and nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

impl Timestamp {
    pub fn secs(secs: i64) -> Timestamp {
        Timestamp { secs, nanos: 0 }
    }

    /// Seconds a time field can hold: a signed 32-bit number, widened by the two epoch bits
    /// of its `_extra` field when the inode has one (1901 to 2446).
    pub fn range(with_extra: bool) -> (i64, i64) {
        let lo = i32::MIN as i64;
        let hi = i32::MAX as i64 + if with_extra { 3 << 32 } else { 0 };
        (lo, hi)
    }

    fn lo(self) -> u32 {
        self.secs as u32
    }

    /// The `_extra` word: nanoseconds above the epoch bits (how far past the signed 32-bit
    /// range the seconds lie, as the kernel's ext4_encode_extra_time computes it).
    fn extra(self) -> u32 {
        let epoch = ((self.secs - self.secs as i32 as i64) >> 32) as u32 & EXT4_EPOCH_MASK;
        epoch | (self.nanos << EXT4_EPOCH_BITS)
    }

    fn from_parts(lo: u32, extra: Option<u32>) -> Timestamp {
        let mut secs = lo as i32 as i64;
        let mut nanos = 0;
        if let Some(x) = extra {
            secs += ((x & EXT4_EPOCH_MASK) as i64) << 32;
            nanos = x >> EXT4_EPOCH_BITS;
        }
        Timestamp { secs, nanos }
    }
}

/// One inode's fields. `blocks` is the raw 48-bit i_blocks (512-byte sectors, or filesystem
/// blocks with EXT4_HUGE_FILE_FL); `block` the 60-byte i_block area. Times past the range
/// the record holds are the caller's to clamp (`Timestamp::range`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: Timestamp,
    pub ctime: Timestamp,
    pub mtime: Timestamp,
    pub dtime: u32,
    pub links_count: u16,
    pub blocks: u64,
    pub flags: u32,
    pub block: [u8; I_BLOCK_BYTES],
    pub generation: u32,
    pub file_acl: u64,
    /// i_extra_isize: how many bytes of large-inode fields follow the first 128 (0 in a
    /// 128-byte record). A field exists only when it lies within them.
    pub extra_isize: u16,
    /// Creation time (large inodes only).
    pub crtime: Timestamp,
}

impl Default for Inode {
    fn default() -> Self {
        Inode {
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            atime: Timestamp::default(),
            ctime: Timestamp::default(),
            mtime: Timestamp::default(),
            dtime: 0,
            links_count: 0,
            blocks: 0,
            flags: 0,
            block: [0; I_BLOCK_BYTES],
            generation: 0,
            file_acl: 0,
            extra_isize: 0,
            crtime: Timestamp::default(),
        }
    }
}

/// Does a field at `[at, at + 4)` exist in a record of `len` bytes with `extra_isize`?
fn fits(len: usize, extra_isize: u16, at: usize) -> bool {
    len > EXT2_GOOD_OLD_INODE_SIZE && at + 4 <= EXT2_GOOD_OLD_INODE_SIZE + extra_isize as usize
}

impl Inode {
    pub fn file_type(&self) -> u16 {
        self.mode & S_IFMT
    }

    /// Byte offset of the in-inode extended attribute area (after the large-inode fields).
    pub fn xattr_area_start(&self) -> usize {
        EXT2_GOOD_OLD_INODE_SIZE + self.extra_isize as usize
    }

    /// A new record: `out` (the slot in the inode table) zeroed, the fields, `xattrs` (the
    /// in-inode attribute area, `xattr::place`) after the large-inode fields, and with
    /// `csum_seed` (the metadata_csum seed) the checksum for inode number `ino`.
    pub fn encode(&self, out: &mut [u8], xattrs: &[u8], ino: u32, csum_seed: Option<u32>) {
        out.fill(0);
        self.encode_into(out);
        if out.len() > EXT2_GOOD_OLD_INODE_SIZE && !xattrs.is_empty() {
            let start = self.xattr_area_start();
            out[start..start + xattrs.len()].copy_from_slice(xattrs);
        }
        if let Some(seed) = csum_seed {
            set_checksum(out, seed, ino);
        }
    }

    /// Write the fields over `out` (the whole record), leaving other bytes (i_version,
    /// i_projid, in-inode xattrs, ...) alone. The checksum is the caller's (`set_checksum`).
    pub fn encode_into(&self, out: &mut [u8]) {
        put16(out, 0x00, self.mode);
        put16(out, 0x02, self.uid as u16);
        put32(out, 0x04, self.size as u32);
        put32(out, 0x08, self.atime.lo());
        put32(out, 0x0C, self.ctime.lo());
        put32(out, 0x10, self.mtime.lo());
        put32(out, 0x14, self.dtime);
        put16(out, 0x18, self.gid as u16);
        put16(out, 0x1A, self.links_count);
        put32(out, 0x1C, self.blocks as u32);
        put32(out, 0x20, self.flags);
        out[0x28..0x28 + I_BLOCK_BYTES].copy_from_slice(&self.block);
        put32(out, 0x64, self.generation);
        put32(out, 0x68, self.file_acl as u32);
        put32(out, 0x6C, (self.size >> 32) as u32);
        put16(out, 0x74, (self.blocks >> 32) as u16);
        put16(out, 0x76, (self.file_acl >> 32) as u16);
        put16(out, 0x78, (self.uid >> 16) as u16);
        put16(out, 0x7A, (self.gid >> 16) as u16);
        if out.len() <= EXT2_GOOD_OLD_INODE_SIZE {
            return;
        }
        put16(out, I_EXTRA_ISIZE, self.extra_isize);
        let (len, x) = (out.len(), self.extra_isize);
        for (at, t) in [
            (I_CTIME_EXTRA, self.ctime),
            (I_MTIME_EXTRA, self.mtime),
            (I_ATIME_EXTRA, self.atime),
            (I_CRTIME_EXTRA, self.crtime),
        ] {
            if fits(len, x, at) {
                put32(out, at, t.extra());
            }
        }
        if fits(len, x, I_CRTIME) {
            put32(out, I_CRTIME, self.crtime.lo());
        }
    }

    pub fn decode(b: &[u8]) -> Inode {
        let extra_isize = if b.len() > EXT2_GOOD_OLD_INODE_SIZE {
            get16(b, I_EXTRA_ISIZE)
        } else {
            0
        };
        let field = |at: usize| fits(b.len(), extra_isize, at).then(|| get32(b, at));
        Inode {
            mode: get16(b, 0x00),
            uid: get16(b, 0x02) as u32 | (get16(b, 0x78) as u32) << 16,
            gid: get16(b, 0x18) as u32 | (get16(b, 0x7A) as u32) << 16,
            size: get32(b, 0x04) as u64 | (get32(b, 0x6C) as u64) << 32,
            atime: Timestamp::from_parts(get32(b, 0x08), field(I_ATIME_EXTRA)),
            ctime: Timestamp::from_parts(get32(b, 0x0C), field(I_CTIME_EXTRA)),
            mtime: Timestamp::from_parts(get32(b, 0x10), field(I_MTIME_EXTRA)),
            dtime: get32(b, 0x14),
            links_count: get16(b, 0x1A),
            blocks: get32(b, 0x1C) as u64 | (get16(b, 0x74) as u64) << 32,
            flags: get32(b, 0x20),
            block: b[0x28..0x28 + I_BLOCK_BYTES].try_into().unwrap(),
            generation: get32(b, 0x64),
            file_acl: get32(b, 0x68) as u64 | (get16(b, 0x76) as u64) << 32,
            extra_isize,
            crtime: match field(I_CRTIME) {
                Some(lo) => Timestamp::from_parts(lo, field(I_CRTIME_EXTRA)),
                None => Timestamp::default(),
            },
        }
    }
}

/// Does this record store i_checksum_hi (a large inode whose extra fields reach it)?
fn has_checksum_hi(raw: &[u8]) -> bool {
    raw.len() > EXT2_GOOD_OLD_INODE_SIZE
        && I_CHECKSUM_HI + 2 <= EXT2_GOOD_OLD_INODE_SIZE + get16(raw, I_EXTRA_ISIZE) as usize
}

/// metadata_csum inode checksum: crc32c(inode seed of (ino, i_generation), the whole record
/// with both checksum halves zeroed); only the low 16 bits without i_checksum_hi.
pub fn checksum(fs_seed: u32, ino: u32, raw: &[u8]) -> u32 {
    let hi = has_checksum_hi(raw);
    let seed = inode_seed(fs_seed, ino, get32(raw, 0x64));
    let mut c = crc32c_le(seed, &raw[..0x7C]);
    c = crc32c_le(c, &[0, 0]);
    if hi {
        c = crc32c_le(c, &raw[0x7E..I_CHECKSUM_HI]);
        c = crc32c_le(c, &[0, 0]);
        c = crc32c_le(c, &raw[I_CHECKSUM_HI + 2..]);
        c
    } else {
        c = crc32c_le(c, &raw[0x7E..]);
        c & 0xFFFF
    }
}

/// Store the checksum of inode `ino` in its record (l_i_checksum_lo, i_checksum_hi).
pub fn set_checksum(raw: &mut [u8], fs_seed: u32, ino: u32) {
    let c = checksum(fs_seed, ino, raw);
    put16(raw, 0x7C, c as u16);
    if has_checksum_hi(raw) {
        put16(raw, I_CHECKSUM_HI, (c >> 16) as u16);
    }
}

/// Device numbers in i_block as the kernel stores them: the old 16-bit form when both
/// numbers fit in 8 bits, else the new 32-bit form in the second word.
pub fn encode_dev(block: &mut [u8; I_BLOCK_BYTES], major: u32, minor: u32) {
    if major < 256 && minor < 256 {
        put32(block, 0, (major << 8) | minor);
    } else {
        put32(
            block,
            4,
            (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut i = Inode {
            mode: S_IFREG | 0o4755,
            uid: 70000,
            gid: 5,
            size: 5 << 32 | 3,
            links_count: 2,
            blocks: 1 << 33,
            flags: EXT4_EXTENTS_FL,
            extra_isize: EXT4_INODE_EXTRA_ISIZE,
            crtime: Timestamp::secs(9),
            mtime: Timestamp {
                secs: 5_000_000_000,
                nanos: 123_456_789,
            },
            atime: Timestamp::secs(-5),
            ..Default::default()
        };
        i.block[0] = 0x0A;
        let mut b = vec![0u8; 256];
        i.encode(&mut b, &[], 12, Some(0x1234));
        assert_eq!(Inode::decode(&b), i);
        let stored = get16(&b, 0x7C) as u32 | (get16(&b, 0x82) as u32) << 16;
        assert_eq!(stored, checksum(0x1234, 12, &b));
    }

    #[test]
    fn times_past_2038_need_the_epoch_bits() {
        // 2040-01-01: past the signed 32-bit range; in a 128-byte record it wraps to 1904.
        let t = Timestamp {
            secs: 2_208_988_800,
            nanos: 5,
        };
        let i = Inode {
            mtime: t,
            extra_isize: EXT4_INODE_EXTRA_ISIZE,
            ..Default::default()
        };
        let mut large = vec![0u8; 256];
        i.encode(&mut large, &[], 12, None);
        assert_eq!(get32(&large, I_MTIME_EXTRA), 1 | 5 << 2);
        assert_eq!(Inode::decode(&large).mtime, t);
        let mut small = vec![0u8; 128];
        i.encode(&mut small, &[], 12, None);
        assert_eq!(Inode::decode(&small).mtime.secs, 2_208_988_800 - (1 << 32));
        assert_eq!(Timestamp::range(true).1, 15_032_385_535); // 2446-05-10
    }

    #[test]
    fn short_extra_isize_hides_later_fields() {
        // i_extra_isize 4 (checksum_hi only): no _extra times, no crtime.
        let mut b = vec![0u8; 256];
        put16(&mut b, I_EXTRA_ISIZE, 4);
        put32(&mut b, I_MTIME_EXTRA, 0xFFFF_FFFF);
        let i = Inode::decode(&b);
        assert_eq!(
            (i.mtime, i.crtime),
            (Timestamp::default(), Timestamp::default())
        );
        i.encode_into(&mut b);
        assert_eq!(
            get32(&b, I_MTIME_EXTRA),
            0xFFFF_FFFF,
            "not a field: left alone"
        );
    }

    #[test]
    fn device_numbers() {
        let mut b = [0u8; I_BLOCK_BYTES];
        encode_dev(&mut b, 1, 3);
        assert_eq!(get32(&b, 0), 0x0103);
        let mut b = [0u8; I_BLOCK_BYTES];
        encode_dev(&mut b, 259, 300000);
        assert_eq!(
            get32(&b, 4),
            (300000 & 0xff) | (259 << 8) | ((300000 & !0xff) << 12)
        );
    }
}
