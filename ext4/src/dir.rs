//! Linear directory blocks for new directories, with the metadata_csum tail when checksums
//! are on. Unindexed directories are valid with or without dir_index, so no htree is built.

use super::ondisk::dir::{
    put_entry, put_tail, rec_len, set_tail_checksum, DirEntryHeader, DIR_TAIL_SIZE,
};
use super::BLOCK_SIZE;

/// One directory entry to write.
pub struct Entry<'a> {
    pub ino: u32,
    pub file_type: u8,
    pub name: &'a [u8],
}

/// The directory's blocks. With `csum = Some(inode_seed)` each block ends in a checksum tail.
pub fn build(entries: &[Entry], csum: Option<u32>) -> Vec<Vec<u8>> {
    let bs = BLOCK_SIZE as usize;
    let room = bs - if csum.is_some() { DIR_TAIL_SIZE } else { 0 };
    let mut blocks = Vec::new();
    let mut cur = vec![0u8; bs];
    let mut used = 0usize;
    let mut last = None::<usize>;
    let finish = |cur: &mut Vec<u8>, last: Option<usize>, blocks: &mut Vec<Vec<u8>>| {
        // The last entry's record runs to the end of the usable space; an empty block is
        // one unused entry spanning it.
        let at = last.unwrap_or(0);
        let mut h = DirEntryHeader::decode(cur, at);
        h.rec_len = (room - at) as u16;
        h.encode_into(cur, at);
        if let Some(seed) = csum {
            put_tail(cur);
            set_tail_checksum(cur, seed);
        }
        blocks.push(std::mem::replace(cur, vec![0u8; bs]));
    };
    for e in entries {
        let r = rec_len(e.name.len());
        if used + r > room {
            finish(&mut cur, last, &mut blocks);
            used = 0;
        }
        put_entry(&mut cur, used, e.ino, r, e.name, e.file_type);
        last = Some(used);
        used += r;
    }
    finish(&mut cur, last, &mut blocks);
    blocks
}

/// An empty directory block (lost+found is made 4 blocks long so e2fsck can reconnect
/// files without allocating).
pub fn empty_block(csum: Option<u32>) -> Vec<u8> {
    build(&[], csum).pop().expect("one block")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ondisk::csum::crc32c_le;
    use crate::ondisk::dir::EXT4_FT_REG_FILE;

    #[test]
    fn entries_fill_blocks_and_last_record_spans() {
        let names: Vec<Vec<u8>> = (0..600)
            .map(|i| format!("file-{i:05}").into_bytes())
            .collect();
        let entries: Vec<Entry> = names
            .iter()
            .map(|n| Entry {
                ino: 12,
                file_type: EXT4_FT_REG_FILE,
                name: n,
            })
            .collect();
        let blocks = build(&entries, Some(7));
        // 600 entries of 20 bytes, 204 to a block (4084 bytes before the tail).
        assert_eq!(blocks.len(), 3);
        for b in &blocks {
            // Walk the records: they must tile the block exactly up to the tail.
            let mut off = 0;
            while off < 4096 - DIR_TAIL_SIZE {
                let r = u16::from_le_bytes([b[off + 4], b[off + 5]]) as usize;
                assert!(r >= 12);
                off += r;
            }
            assert_eq!(off, 4096 - DIR_TAIL_SIZE);
            let c = crc32c_le(7, &b[..4096 - DIR_TAIL_SIZE]);
            assert_eq!(&b[4096 - 4..], &c.to_le_bytes());
        }
    }
}
