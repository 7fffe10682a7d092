//! The on-disk structures of a sparse extent (VMware Virtual Disk Format 5.0, "Hosted Sparse
//! Extent Header" and "Stream-Optimized Compressed Sparse Extents"), little-endian.

/// `magicNumber`: "KDMV" read as a little-endian u32.
pub const SPARSE_MAGICNUMBER: u32 = 0x564d_444b;
/// Version 3: ESXi rejects older stream-optimized extents (open-vmdk `SPARSE_VERSION_INCOMPAT_FLAGS`).
pub const VERSION: u32 = 3;
/// Version 1: the hosted sparse extent (monolithicSparse) of Workstation, Fusion and qemu.
pub const VERSION_HOSTED: u32 = 1;
/// flags bit 0: the newline-detection characters are valid.
pub const FLAG_VALID_NEW_LINE_DETECTION_TEST: u32 = 1 << 0;
/// flags bit 1: the redundant grain directory and tables are in use.
pub const FLAG_USE_REDUNDANT_GRAIN_TABLE: u32 = 1 << 1;
/// flags bit 16: grains are compressed.
pub const FLAG_COMPRESSED: u32 = 1 << 16;
/// flags bit 17: the extent has markers (grain, GT, GD, footer, end of stream).
pub const FLAG_EMBEDDED_LBA: u32 = 1 << 17;
/// `compressAlgorithm` none (hosted extents store grains as they are).
pub const COMPRESSION_NONE: u16 = 0;
/// `compressAlgorithm` DEFLATE (in practice zlib-wrapped, as qemu, VirtualBox and open-vmdk use).
pub const COMPRESSION_DEFLATE: u16 = 1;
/// `gdOffset` in the leading header when the grain directory follows the grains.
pub const GD_AT_END: u64 = u64::MAX;
/// Grains are 128 sectors = 64 KiB.
pub const GRAIN_SECTORS: u64 = 128;
/// Grain table entries per grain table (a GT is 2048 bytes = 4 sectors).
pub const NUM_GTES_PER_GT: u32 = 512;
/// Where the embedded descriptor starts, and how many sectors it may use (as open-vmdk and qemu).
pub const DESCRIPTOR_OFFSET: u64 = 1;
pub const DESCRIPTOR_SECTORS: u64 = 20;

/// Metadata marker types.
pub const MARKER_EOS: u32 = 0;
pub const MARKER_GT: u32 = 1;
pub const MARKER_GD: u32 = 2;
pub const MARKER_FOOTER: u32 = 3;

pub const SECTOR: usize = 512;

/// SparseExtentHeader: the first sector of the file, and (with the real `gd_offset`) the
/// footer of a stream-optimized extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseExtentHeader {
    pub version: u32,
    pub flags: u32,
    /// Virtual disk size in sectors.
    pub capacity: u64,
    /// Sector of the redundant grain directory (0: none).
    pub rgd_offset: u64,
    /// Sector of the grain directory, or `GD_AT_END`.
    pub gd_offset: u64,
    /// Sectors of metadata before the first grain.
    pub over_head: u64,
    pub compress_algorithm: u16,
}

impl SparseExtentHeader {
    /// A stream-optimized extent's header (`gd_offset` = `GD_AT_END`) or footer.
    pub fn stream_optimized(capacity: u64, gd_offset: u64, over_head: u64) -> Self {
        SparseExtentHeader {
            version: VERSION,
            flags: FLAG_VALID_NEW_LINE_DETECTION_TEST | FLAG_COMPRESSED | FLAG_EMBEDDED_LBA,
            capacity,
            rgd_offset: 0,
            gd_offset,
            over_head,
            compress_algorithm: COMPRESSION_DEFLATE,
        }
    }

    /// A hosted (monolithicSparse) extent's header: both grain directories, plain grains.
    pub fn hosted(capacity: u64, rgd_offset: u64, gd_offset: u64, over_head: u64) -> Self {
        SparseExtentHeader {
            version: VERSION_HOSTED,
            flags: FLAG_VALID_NEW_LINE_DETECTION_TEST | FLAG_USE_REDUNDANT_GRAIN_TABLE,
            capacity,
            rgd_offset,
            gd_offset,
            over_head,
            compress_algorithm: COMPRESSION_NONE,
        }
    }

    pub fn to_bytes(self) -> [u8; SECTOR] {
        let mut b = [0u8; SECTOR];
        b[0..4].copy_from_slice(&SPARSE_MAGICNUMBER.to_le_bytes());
        b[4..8].copy_from_slice(&self.version.to_le_bytes());
        b[8..12].copy_from_slice(&self.flags.to_le_bytes());
        b[12..20].copy_from_slice(&self.capacity.to_le_bytes());
        b[20..28].copy_from_slice(&GRAIN_SECTORS.to_le_bytes());
        b[28..36].copy_from_slice(&DESCRIPTOR_OFFSET.to_le_bytes());
        b[36..44].copy_from_slice(&DESCRIPTOR_SECTORS.to_le_bytes());
        b[44..48].copy_from_slice(&NUM_GTES_PER_GT.to_le_bytes());
        b[48..56].copy_from_slice(&self.rgd_offset.to_le_bytes());
        b[56..64].copy_from_slice(&self.gd_offset.to_le_bytes());
        b[64..72].copy_from_slice(&self.over_head.to_le_bytes());
        // uncleanShutdown (72) = 0; then the newline-detection characters.
        b[73..77].copy_from_slice(b"\n \r\n");
        b[77..79].copy_from_slice(&self.compress_algorithm.to_le_bytes());
        b
    }
}

/// A metadata marker: `numSectors` of metadata of `kind` follow in the next sectors.
pub fn metadata_marker(num_sectors: u64, kind: u32) -> [u8; SECTOR] {
    let mut b = [0u8; SECTOR];
    b[0..8].copy_from_slice(&num_sectors.to_le_bytes());
    // size (8..12) = 0 marks metadata rather than a grain.
    b[12..16].copy_from_slice(&kind.to_le_bytes());
    b
}

/// Bytes before a compressed grain's data: `u64 lba`, `u32 size`.
pub const GRAIN_MARKER_BYTES: usize = 12;

pub fn grain_marker(lba: u64, compressed_len: u32) -> [u8; GRAIN_MARKER_BYTES] {
    let mut b = [0u8; GRAIN_MARKER_BYTES];
    b[0..8].copy_from_slice(&lba.to_le_bytes());
    b[8..12].copy_from_slice(&compressed_len.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_at_spec_offsets() {
        let h = SparseExtentHeader::stream_optimized(2048, GD_AT_END, 128);
        let b = h.to_bytes();
        assert_eq!(&b[0..4], b"KDMV");
        assert_eq!(u32::from_le_bytes(b[4..8].try_into().unwrap()), 3);
        assert_eq!(
            u32::from_le_bytes(b[8..12].try_into().unwrap()),
            0x0003_0001
        );
        assert_eq!(u64::from_le_bytes(b[20..28].try_into().unwrap()), 128);
        assert_eq!(u64::from_le_bytes(b[56..64].try_into().unwrap()), u64::MAX);
        assert_eq!(&b[73..77], b"\n \r\n");
        assert_eq!(u16::from_le_bytes(b[77..79].try_into().unwrap()), 1);
    }
}
