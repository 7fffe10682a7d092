//! Compression detection by magic bytes ("don't trust the content-type").

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Bzip2,
    Gzip,
    Xz,
    Zstd,
    Raw,
}

/// bzip2: "BZh" + block size digit '1'..'9'.
const BZIP2_MAGIC: &[u8] = b"BZh";
/// gzip (RFC 1952 §2.3.1): ID1 ID2.
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
/// xz file format §2.1.1.1: header magic.
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
/// zstd (RFC 8878 §3.1.1): frame magic 0xFD2FB528 little-endian.
pub(super) const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// zstd skippable frame (RFC 8878 §3.1.2): magic 0x184D2A5? little-endian. pzstd starts its
/// files with one.
pub(super) fn is_skippable_magic(m: &[u8]) -> bool {
    m.len() >= 4 && m[0] & 0xf0 == 0x50 && m[1..4] == [0x2a, 0x4d, 0x18]
}

impl Format {
    pub fn sniff(head: &[u8]) -> Format {
        if head.starts_with(BZIP2_MAGIC) && head.len() > 3 && (b'1'..=b'9').contains(&head[3]) {
            Format::Bzip2
        } else if head.starts_with(GZIP_MAGIC) {
            Format::Gzip
        } else if head.starts_with(XZ_MAGIC) {
            Format::Xz
        } else if head.starts_with(&ZSTD_MAGIC) || is_skippable_magic(head) {
            Format::Zstd
        } else {
            Format::Raw
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics() {
        assert_eq!(Format::sniff(b"BZh91AY&SY"), Format::Bzip2);
        assert_eq!(Format::sniff(b"BZhx"), Format::Raw);
        assert_eq!(Format::sniff(&[0x1f, 0x8b, 8, 0]), Format::Gzip);
        assert_eq!(
            Format::sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0, 0]),
            Format::Xz
        );
        assert_eq!(Format::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Format::Zstd);
        assert_eq!(Format::sniff(&[0x50, 0x2a, 0x4d, 0x18, 4, 0]), Format::Zstd);
        assert_eq!(Format::sniff(&[0x5f, 0x2a, 0x4d, 0x18, 4, 0]), Format::Zstd);
        assert_eq!(Format::sniff(&[0x60, 0x2a, 0x4d, 0x18, 4, 0]), Format::Raw);
        assert_eq!(Format::sniff(&[0u8; 512]), Format::Raw);
        assert_eq!(Format::sniff(b""), Format::Raw);
    }
}
