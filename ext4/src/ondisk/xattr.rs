//! Extended attributes (kernel Documentation/filesystems/ext4/attributes.rst): entries in the
//! inode after i_extra_isize when they fit, the rest in one shared xattr block.

use super::csum::crc32c_le;
use crate::{Ext4Error, BLOCK_SIZE};

pub const EXT4_XATTR_MAGIC: u32 = 0xEA02_0000;
const HEADER_LEN: usize = 32;
const ENTRY_HEADER_LEN: usize = 16;
const NAME_HASH_SHIFT: u32 = 5;
const VALUE_HASH_SHIFT: u32 = 16;
const BLOCK_HASH_SHIFT: u32 = 16;

/// Name prefixes and their e_name_index (`ext4_xattr_handler` table). Full-name matches
/// (the POSIX ACLs) come first.
const PREFIXES: &[(&[u8], u8, bool)] = &[
    (b"system.posix_acl_access", 2, true),
    (b"system.posix_acl_default", 3, true),
    (b"user.", 1, false),
    (b"trusted.", 4, false),
    (b"security.", 6, false),
    (b"system.", 7, false),
];

/// One attribute in on-disk terms.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Attr {
    pub index: u8,
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

impl Attr {
    /// Map a full attribute name (e.g. `security.capability`) and value to disk form.
    pub fn from_full(full: &[u8], value: &[u8]) -> Result<Attr, Ext4Error> {
        for &(prefix, index, whole) in PREFIXES {
            if (whole && full == prefix) || (!whole && full.starts_with(prefix)) {
                let name = if whole {
                    Vec::new()
                } else {
                    full[prefix.len()..].to_vec()
                };
                let value = if index == 2 || index == 3 {
                    acl_to_disk(value)?
                } else {
                    value.to_vec()
                };
                return Ok(Attr { index, name, value });
            }
        }
        Err(Ext4Error::Invalid(format!(
            "extended attribute {} has no ext4 name index",
            String::from_utf8_lossy(full)
        )))
    }

    fn entry_len(&self) -> usize {
        (ENTRY_HEADER_LEN + self.name.len() + 3) & !3
    }
    fn value_len(&self) -> usize {
        (self.value.len() + 3) & !3
    }
    /// Sort key the kernel's lookups rely on: (index, name length, name).
    fn key(&self) -> (u8, usize, &[u8]) {
        (self.index, self.name.len(), &self.name)
    }
}

/// `ext4_xattr_hash_entry`: names hash as signed chars, as e2fsprogs does on x86.
pub fn entry_hash(a: &Attr) -> u32 {
    let mut h: u32 = 0;
    for &c in &a.name {
        h = (h << NAME_HASH_SHIFT) ^ (h >> (32 - NAME_HASH_SHIFT)) ^ (c as i8 as i32 as u32);
    }
    let mut padded = a.value.clone();
    padded.resize(a.value_len(), 0);
    for w in padded.chunks(4) {
        let v = u32::from_le_bytes(w.try_into().unwrap());
        h = (h << VALUE_HASH_SHIFT) ^ (h >> (32 - VALUE_HASH_SHIFT)) ^ v;
    }
    h
}

/// Split `attrs` between the inode (`room` bytes after i_extra_isize) and a block. Returns
/// the in-inode bytes (empty when nothing goes there) and the attributes left for a block.
pub fn place(mut attrs: Vec<Attr>, room: usize) -> (Vec<u8>, Vec<Attr>) {
    attrs.sort_by(|a, b| a.key().cmp(&b.key()));
    // In-inode layout: magic, entries, 4-byte terminator; values at the end.
    let mut used = 4 + 4;
    let mut inside = Vec::new();
    let mut rest = Vec::new();
    for a in attrs {
        let need = a.entry_len() + a.value_len();
        if used + need <= room {
            used += need;
            inside.push(a);
        } else {
            rest.push(a);
        }
    }
    if inside.is_empty() {
        return (Vec::new(), rest);
    }
    let mut b = vec![0u8; room];
    b[0..4].copy_from_slice(&EXT4_XATTR_MAGIC.to_le_bytes());
    // Value offsets count from the first entry, just after the magic.
    write_entries(&mut b[4..], &inside, 0);
    (b, rest)
}

/// Write entries from the start of `area` and values from its end; offsets relative to
/// `area` start plus `base`. Returns nothing; `area` must be large enough.
fn write_entries(area: &mut [u8], attrs: &[Attr], base: usize) {
    let mut e = 0usize;
    let mut v = area.len();
    for a in attrs {
        let offs = if a.value.is_empty() {
            0
        } else {
            v -= a.value_len();
            area[v..v + a.value.len()].copy_from_slice(&a.value);
            v + base
        };
        let h = &mut area[e..e + ENTRY_HEADER_LEN];
        h[0] = a.name.len() as u8;
        h[1] = a.index;
        h[2..4].copy_from_slice(&(offs as u16).to_le_bytes());
        h[8..12].copy_from_slice(&(a.value.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&entry_hash(a).to_le_bytes());
        area[e + ENTRY_HEADER_LEN..e + ENTRY_HEADER_LEN + a.name.len()].copy_from_slice(&a.name);
        e += a.entry_len();
    }
}

/// Whether `attrs` fit in one xattr block.
pub fn fits_block(attrs: &[Attr]) -> bool {
    let need: usize = HEADER_LEN
        + 4
        + attrs
            .iter()
            .map(|a| a.entry_len() + a.value_len())
            .sum::<usize>();
    need <= BLOCK_SIZE as usize
}

/// An xattr block (without checksum) holding `attrs`, referenced by `refcount` inodes.
pub fn block(attrs: &[Attr], refcount: u32) -> Vec<u8> {
    let mut attrs = attrs.to_vec();
    attrs.sort_by(|a, b| a.key().cmp(&b.key()));
    let mut b = vec![0u8; BLOCK_SIZE as usize];
    b[0..4].copy_from_slice(&EXT4_XATTR_MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&refcount.to_le_bytes());
    b[8..12].copy_from_slice(&1u32.to_le_bytes()); // h_blocks
    let mut hash: u32 = 0;
    for a in &attrs {
        hash = (hash << BLOCK_HASH_SHIFT) ^ (hash >> (32 - BLOCK_HASH_SHIFT)) ^ entry_hash(a);
    }
    b[12..16].copy_from_slice(&hash.to_le_bytes());
    write_entries(&mut b[HEADER_LEN..], &attrs, HEADER_LEN);
    b
}

/// Set h_checksum: crc32c(fs seed, le64 block number, block with h_checksum = 0).
pub fn set_block_checksum(b: &mut [u8], fs_seed: u32, blocknr: u64) {
    b[16..20].fill(0);
    let c = crc32c_le(crc32c_le(fs_seed, &blocknr.to_le_bytes()), b);
    b[16..20].copy_from_slice(&c.to_le_bytes());
}

/// POSIX ACL xattr (VFS form, version 2, 8-byte entries) to ext4's form (version 1, 4-byte
/// entries for the owner/group/mask/other tags, 8-byte for named users and groups).
fn acl_to_disk(v: &[u8]) -> Result<Vec<u8>, Ext4Error> {
    const ACL_USER: u16 = 2;
    const ACL_GROUP: u16 = 8;
    if v.len() < 4
        || !(v.len() - 4).is_multiple_of(8)
        || u32::from_le_bytes(v[0..4].try_into().unwrap()) != 2
    {
        return Err(Ext4Error::Invalid("malformed POSIX ACL attribute".into()));
    }
    let mut out = 1u32.to_le_bytes().to_vec();
    for e in v[4..].chunks(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        out.extend_from_slice(&e[0..4]);
        if tag == ACL_USER || tag == ACL_GROUP {
            out.extend_from_slice(&e[4..8]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_indexes() {
        let a = Attr::from_full(b"security.capability", b"x").unwrap();
        assert_eq!((a.index, a.name.as_slice()), (6, &b"capability"[..]));
        assert_eq!(Attr::from_full(b"user.mime", b"").unwrap().index, 1);
        assert_eq!(Attr::from_full(b"trusted.a", b"").unwrap().index, 4);
        assert!(Attr::from_full(b"weird.a", b"").is_err());
    }

    #[test]
    fn hash_of_known_entry() {
        // Computed by hand from ext4_xattr_hash_entry: name "a" then one value word.
        let a = Attr {
            index: 1,
            name: b"a".to_vec(),
            value: vec![1, 0, 0, 0],
        };
        assert_eq!(entry_hash(&a), ((0x61u32) << 16) ^ 1);
    }

    #[test]
    fn overflow_goes_to_block() {
        let attrs = vec![
            Attr {
                index: 1,
                name: b"small".to_vec(),
                value: vec![1; 8],
            },
            Attr {
                index: 1,
                name: b"zbig".to_vec(),
                value: vec![2; 200],
            },
        ];
        let (inside, rest) = place(attrs, 96);
        assert!(!inside.is_empty());
        assert_eq!(rest.len(), 1);
        assert!(fits_block(&rest));
        let b = block(&rest, 1);
        assert_eq!(&b[0..4], &EXT4_XATTR_MAGIC.to_le_bytes());
    }
}
