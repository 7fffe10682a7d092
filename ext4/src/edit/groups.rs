//! Block group descriptors as the editor holds them: the bytes read and the decoded fields,
//! where each descriptor lives (meta_bg scatters them), and its checksum on the way out.

use super::device::Dev;
use super::superblock::Superblock;
use super::EditError;
use crate::ondisk::group::{self, GroupDesc};

pub(crate) struct Desc {
    /// The descriptor as read (bytes past the fields the codec models are kept).
    raw: Vec<u8>,
    pub f: GroupDesc,
}

impl Desc {
    /// The descriptor bytes to write: the fields over what was read, and bg_checksum
    /// (metadata_csum: crc32c; gdt_csum: crc16) when the filesystem has one.
    pub(crate) fn encoded(&self, sb: &Superblock, g: u32) -> Vec<u8> {
        let mut raw = self.raw.clone();
        self.f.encode_into(&mut raw);
        if sb.group_csum() {
            let seed = sb.metadata_csum().then_some(sb.csum_seed);
            group::seal(&mut raw, g, seed, &sb.f.uuid);
        }
        raw
    }
}

/// Byte position of group `g`'s descriptor in the primary table (or, with meta_bg, in the
/// primary copy of its meta group's descriptor block).
pub(crate) fn desc_pos(sb: &Superblock, g: u32) -> u64 {
    let dpb = sb.descs_per_block();
    let index = u64::from(g) / dpb;
    let within = (u64::from(g) % dpb) * sb.desc_size as u64;
    let block = if index < sb.first_meta_bg() {
        sb.first_data_block + 1 + index
    } else {
        let first = (index * dpb) as u32;
        sb.group_first_block(first) + u64::from(sb.has_super(first))
    };
    block * sb.block_size + within
}

pub(crate) fn read_descs(dev: &Dev, sb: &Superblock) -> Result<Vec<Desc>, EditError> {
    let mut descs = Vec::with_capacity(sb.groups as usize);
    let dpb = sb.descs_per_block() as u32;
    for first in (0..sb.groups).step_by(dpb as usize) {
        // One descriptor block at a time (they are scattered with meta_bg).
        let n = dpb.min(sb.groups - first) as usize;
        let mut table = vec![0u8; n * sb.desc_size];
        dev.read(desc_pos(sb, first), &mut table)?;
        descs.extend(table.chunks(sb.desc_size).map(|c| Desc {
            raw: c.to_vec(),
            f: GroupDesc::decode(c),
        }));
    }
    for (g, d) in descs.iter().enumerate() {
        let end = sb.blocks_count;
        let it_blocks =
            (u64::from(sb.inodes_per_group) * sb.inode_size as u64).div_ceil(sb.block_size);
        if d.f.block_bitmap >= end
            || d.f.inode_bitmap >= end
            || d.f.inode_table.saturating_add(it_blocks) > end
        {
            return Err(EditError::Corrupt(format!(
                "group descriptor {g} (file offset {}) points outside the filesystem",
                dev.abs(desc_pos(sb, g as u32))
            )));
        }
    }
    Ok(descs)
}
