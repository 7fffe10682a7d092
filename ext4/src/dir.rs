//! Linear directory blocks (`ext4_dir_entry_2`), with the metadata_csum tail
//! (`ext4_dir_entry_tail`) when checksums are on. Unindexed directories are valid with or
//! without dir_index, so no htree is built.

use super::csum::crc32c_le;
use super::BLOCK_SIZE;

// file_type values (EXT4_FT_*)
pub const EXT4_FT_REG_FILE: u8 = 1;
pub const EXT4_FT_DIR: u8 = 2;
pub const EXT4_FT_CHRDEV: u8 = 3;
pub const EXT4_FT_BLKDEV: u8 = 4;
pub const EXT4_FT_FIFO: u8 = 5;
pub const EXT4_FT_SYMLINK: u8 = 7;
/// Size of the fake entry that carries a leaf block's checksum.
pub const DIR_TAIL_SIZE: usize = 12;
const EXT4_DIR_TAIL_FT: u8 = 0xDE;

/// One directory entry to write.
pub struct Entry<'a> {
    pub ino: u32,
    pub file_type: u8,
    pub name: &'a [u8],
}

fn rec_len(name_len: usize) -> usize {
    (8 + name_len + 3) & !3
}

/// Number of blocks `entries` fill (same rule as `build`).
pub fn blocks_needed<'a>(names: impl Iterator<Item = &'a [u8]>, csum: bool) -> u64 {
    let room = BLOCK_SIZE as usize - if csum { DIR_TAIL_SIZE } else { 0 };
    let mut blocks = 1;
    let mut used = 0;
    for n in names {
        let r = rec_len(n.len());
        if used + r > room {
            blocks += 1;
            used = 0;
        }
        used += r;
    }
    blocks
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
        match last {
            // The last entry's record runs to the end of the usable space.
            Some(off) => {
                let len = room - off;
                cur[off + 4..off + 6].copy_from_slice(&(len as u16).to_le_bytes());
            }
            // An empty block: one unused entry spanning it.
            None => {
                cur[4..6].copy_from_slice(&(room as u16).to_le_bytes());
            }
        }
        if let Some(seed) = csum {
            let t = bs - DIR_TAIL_SIZE;
            cur[t + 4..t + 6].copy_from_slice(&(DIR_TAIL_SIZE as u16).to_le_bytes());
            cur[t + 7] = EXT4_DIR_TAIL_FT;
            let c = crc32c_le(seed, &cur[..t]);
            cur[t + 8..t + 12].copy_from_slice(&c.to_le_bytes());
        }
        blocks.push(std::mem::replace(cur, vec![0u8; bs]));
    };
    for e in entries {
        let r = rec_len(e.name.len());
        if used + r > room {
            finish(&mut cur, last, &mut blocks);
            used = 0;
        }
        cur[used..used + 4].copy_from_slice(&e.ino.to_le_bytes());
        cur[used + 4..used + 6].copy_from_slice(&(r as u16).to_le_bytes());
        cur[used + 6] = e.name.len() as u8;
        cur[used + 7] = e.file_type;
        cur[used + 8..used + 8 + e.name.len()].copy_from_slice(e.name);
        last = Some(used);
        used += r;
    }
    finish(&mut cur, last, &mut blocks);
    blocks
}

/// Pad a directory to `n` blocks with empty blocks (lost+found is made 4 blocks long so
/// e2fsck can reconnect files without allocating).
pub fn empty_block(csum: Option<u32>) -> Vec<u8> {
    build(&[], csum).pop().expect("one block")
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            blocks.len() as u64,
            blocks_needed(names.iter().map(|n| n.as_slice()), true)
        );
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
