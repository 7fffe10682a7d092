//! The CrAU file header (`update_metadata.proto`'s header comment, `delta_metadata.h`):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `CrAU` |
//! | 4 | 8 | `file_format_version` = 1, big-endian |
//! | 12 | 8 | manifest length, big-endian |
//! | 20 | n | `DeltaArchiveManifest` (protobuf, not compressed) |
//! | 20+n | … | data blobs; every `data_offset` counts from here |
//! | 20+n+`signatures_offset` | `signatures_size` | `Signatures` |

use crate::PayloadError;

pub const MAGIC: [u8; 4] = *b"CrAU";
/// `kDeltaVersion`; Flatcar and ue-rs refuse any other.
pub const FILE_FORMAT_VERSION: u64 = 1;
/// Bytes before the manifest.
pub const HEADER_LEN: u64 = 20;
/// Our bound on the manifest: a full payload of a 4 GiB partition needs about 250 kB, so this
/// only keeps a hostile length from allocating memory.
pub const MAX_MANIFEST_LEN: u64 = 16 << 20;

/// The 20 bytes before the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub manifest_len: u64,
}

impl Header {
    pub fn parse(bytes: &[u8; HEADER_LEN as usize]) -> Result<Header, PayloadError> {
        let magic: [u8; 4] = bytes[0..4].try_into().expect("4 bytes");
        if magic != MAGIC {
            return Err(PayloadError::BadMagic { found: magic });
        }
        let version = u64::from_be_bytes(bytes[4..12].try_into().expect("8 bytes"));
        if version != FILE_FORMAT_VERSION {
            return Err(PayloadError::UnsupportedVersion(version));
        }
        let manifest_len = u64::from_be_bytes(bytes[12..20].try_into().expect("8 bytes"));
        if manifest_len == 0 {
            return Err(PayloadError::ManifestLength {
                len: 0,
                why: "zero".into(),
            });
        }
        if manifest_len > MAX_MANIFEST_LEN {
            return Err(PayloadError::ManifestLength {
                len: manifest_len,
                why: format!("above the {MAX_MANIFEST_LEN}-byte limit"),
            });
        }
        Ok(Header { manifest_len })
    }

    pub fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut b = [0u8; HEADER_LEN as usize];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..12].copy_from_slice(&FILE_FORMAT_VERSION.to_be_bytes());
        b[12..20].copy_from_slice(&self.manifest_len.to_be_bytes());
        b
    }

    /// Where the blob area starts: every `data_offset` is relative to this byte.
    pub fn blobs_start(&self) -> u64 {
        HEADER_LEN + self.manifest_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses() {
        let h = Header { manifest_len: 300 };
        let b = h.encode();
        assert_eq!(&b[..12], b"CrAU\0\0\0\0\0\0\0\x01");
        assert_eq!(Header::parse(&b).unwrap(), h);
        let mut v2 = b;
        v2[11] = 2;
        assert!(matches!(
            Header::parse(&v2),
            Err(PayloadError::UnsupportedVersion(2))
        ));
        let mut magic = b;
        magic[0] = b'X';
        assert!(Header::parse(&magic)
            .unwrap_err()
            .to_string()
            .contains("not a CrAU"));
        let huge = Header {
            manifest_len: u64::MAX,
        }
        .encode();
        assert!(matches!(
            Header::parse(&huge),
            Err(PayloadError::ManifestLength { .. })
        ));
    }
}
