//! What a filesystem's superblock says about it, for listings (`coreos-build inspect`).

use super::superblock::*;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// An ext2/3/4 filesystem found at some offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsInfo {
    /// "ext4" (extents or metadata_csum), "ext3" (a journal) or "ext2".
    pub kind: &'static str,
    pub label: String,
    pub uuid: [u8; 16],
    /// blocks_count × block size.
    pub bytes: u64,
    /// CoreOS's read-only marker (0xff at byte 0x467): no kernel mounts it read-write.
    pub read_only_marker: bool,
    /// Blocks reserved after each descriptor table for online growth (resize_inode).
    pub reserved_gdt_blocks: u16,
}

impl FsInfo {
    pub fn from_superblock(sb: &Superblock) -> FsInfo {
        let marker = sb.feature_ro_compat & READ_ONLY_MARKER == READ_ONLY_MARKER;
        let kind = if sb.has_incompat(INCOMPAT_EXTENTS) || sb.has_metadata_csum() {
            "ext4"
        } else if sb.has_compat(COMPAT_HAS_JOURNAL) {
            "ext3"
        } else {
            "ext2"
        };
        FsInfo {
            kind,
            label: sb.label(),
            uuid: sb.uuid,
            bytes: sb.blocks_count * sb.block_size(),
            read_only_marker: marker,
            reserved_gdt_blocks: sb.reserved_gdt_blocks,
        }
    }
}

/// The filesystem starting at byte `offset` of `f`, or None when there is no ext2/3/4
/// superblock there.
pub fn probe(f: &File, offset: u64) -> std::io::Result<Option<FsInfo>> {
    let mut b = [0u8; SUPERBLOCK_SIZE];
    f.read_exact_at(&mut b, offset + SUPERBLOCK_OFFSET)?;
    Ok(Superblock::decode(&b).map(|sb| FsInfo::from_superblock(&sb)))
}
