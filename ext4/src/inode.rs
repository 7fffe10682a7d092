//! On-disk inodes (`struct ext4_inode`, 128 bytes plus the "extra" part) and their checksum.
//! Public so the in-place editor can read and write inodes.

use super::csum::{crc32c_le, inode_seed};

pub const EXT2_GOOD_OLD_INODE_SIZE: usize = 128;
/// i_extra_isize this writer uses: the whole `ext4_inode_large` up to i_projid.
pub const EXTRA_ISIZE: u16 = 32;

pub const EXT2_ROOT_INO: u32 = 2;
pub const EXT4_JOURNAL_INO: u32 = 8;
pub const EXT2_FIRST_INO: u32 = 11;

// i_mode type bits
pub const S_IFIFO: u16 = 0o010000;
pub const S_IFCHR: u16 = 0o020000;
pub const S_IFDIR: u16 = 0o040000;
pub const S_IFBLK: u16 = 0o060000;
pub const S_IFREG: u16 = 0o100000;
pub const S_IFLNK: u16 = 0o120000;

// i_flags
pub const EXT4_EXTENTS_FL: u32 = 0x0008_0000;

/// One inode's fields. `block` is the 60-byte i_block area (extent root, block map, fast
/// symlink target or device number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: u32,
    pub ctime: u32,
    pub mtime: u32,
    pub crtime: u32,
    pub links_count: u16,
    /// In 512-byte units.
    pub blocks: u64,
    pub flags: u32,
    pub block: [u8; 60],
    pub generation: u32,
    pub file_acl: u64,
    /// Bytes after the 128-byte base + extra_isize (in-inode xattrs), for large inodes.
    pub extra_isize: u16,
    pub in_inode_xattrs: Vec<u8>,
}

impl Default for Inode {
    fn default() -> Self {
        Inode {
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            atime: 0,
            ctime: 0,
            mtime: 0,
            crtime: 0,
            links_count: 0,
            blocks: 0,
            flags: 0,
            block: [0; 60],
            generation: 0,
            file_acl: 0,
            extra_isize: 0,
            in_inode_xattrs: Vec::new(),
        }
    }
}

fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn get16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn get32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

impl Inode {
    /// Encode into `out` (the inode's slot in the table, `s_inode_size` bytes). With
    /// `csum_seed` (the filesystem seed), i_checksum_lo/hi are set for inode number `ino`.
    pub fn encode(&self, out: &mut [u8], ino: u32, csum_seed: Option<u32>) {
        out.fill(0);
        put16(out, 0x00, self.mode);
        put16(out, 0x02, self.uid as u16);
        put32(out, 0x04, self.size as u32);
        put32(out, 0x08, self.atime);
        put32(out, 0x0C, self.ctime);
        put32(out, 0x10, self.mtime);
        put16(out, 0x18, self.gid as u16);
        put16(out, 0x1A, self.links_count);
        put32(out, 0x1C, self.blocks as u32);
        put32(out, 0x20, self.flags);
        out[0x28..0x64].copy_from_slice(&self.block);
        put32(out, 0x64, self.generation);
        put32(out, 0x68, self.file_acl as u32);
        put32(out, 0x6C, (self.size >> 32) as u32);
        put16(out, 0x74, (self.blocks >> 32) as u16);
        put16(out, 0x76, (self.file_acl >> 32) as u16);
        put16(out, 0x78, (self.uid >> 16) as u16);
        put16(out, 0x7A, (self.gid >> 16) as u16);
        let large = out.len() > EXT2_GOOD_OLD_INODE_SIZE && self.extra_isize >= 4;
        if out.len() > EXT2_GOOD_OLD_INODE_SIZE {
            put16(out, 0x80, self.extra_isize);
            if self.extra_isize >= 24 {
                put32(out, 0x90, self.crtime);
            }
            let start = EXT2_GOOD_OLD_INODE_SIZE + self.extra_isize as usize;
            let x = &self.in_inode_xattrs;
            out[start..start + x.len()].copy_from_slice(x);
        }
        if let Some(seed) = csum_seed {
            let c = inode_checksum(seed, ino, self.generation, out, large);
            put16(out, 0x7C, c as u16);
            if large {
                put16(out, 0x82, (c >> 16) as u16);
            }
        }
    }

    pub fn decode(b: &[u8]) -> Inode {
        let extra_isize = if b.len() > EXT2_GOOD_OLD_INODE_SIZE {
            get16(b, 0x80)
        } else {
            0
        };
        let start = EXT2_GOOD_OLD_INODE_SIZE + extra_isize as usize;
        Inode {
            mode: get16(b, 0x00),
            uid: get16(b, 0x02) as u32 | (get16(b, 0x78) as u32) << 16,
            gid: get16(b, 0x18) as u32 | (get16(b, 0x7A) as u32) << 16,
            size: get32(b, 0x04) as u64 | (get32(b, 0x6C) as u64) << 32,
            atime: get32(b, 0x08),
            ctime: get32(b, 0x0C),
            mtime: get32(b, 0x10),
            crtime: if extra_isize >= 24 { get32(b, 0x90) } else { 0 },
            links_count: get16(b, 0x1A),
            blocks: get32(b, 0x1C) as u64 | (get16(b, 0x74) as u64) << 32,
            flags: get32(b, 0x20),
            block: b[0x28..0x64].try_into().unwrap(),
            generation: get32(b, 0x64),
            file_acl: get32(b, 0x68) as u64 | (get16(b, 0x76) as u64) << 32,
            extra_isize,
            in_inode_xattrs: if b.len() > start {
                b[start..].to_vec()
            } else {
                Vec::new()
            },
        }
    }
}

/// crc32c over (seed, inode number, generation, the inode with both checksum fields zeroed).
pub fn inode_checksum(fs_seed: u32, ino: u32, generation: u32, raw: &[u8], large: bool) -> u32 {
    let mut b = raw.to_vec();
    b[0x7C] = 0;
    b[0x7D] = 0;
    if large {
        b[0x82] = 0;
        b[0x83] = 0;
    }
    let c = crc32c_le(inode_seed(fs_seed, ino, generation), &b);
    if large {
        c
    } else {
        c & 0xFFFF
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
            extra_isize: EXTRA_ISIZE,
            crtime: 9,
            ..Default::default()
        };
        i.block[0] = 0x0A;
        let mut b = vec![0u8; 256];
        i.encode(&mut b, 12, Some(0x1234));
        let mut d = Inode::decode(&b);
        assert!(d.in_inode_xattrs.iter().all(|&x| x == 0));
        d.in_inode_xattrs.clear();
        assert_eq!(d, i);
        let stored = get16(&b, 0x7C) as u32 | (get16(&b, 0x82) as u32) << 16;
        assert_eq!(stored, inode_checksum(0x1234, 12, 0, &b, true));
    }
}
