//! dm-verity hash trees (sha256, 4096-byte blocks) with a veritysetup-compatible superblock.
//!
//! Format as cryptsetup's `veritysetup format` writes it (hash type 1): a 512-byte superblock
//! at the start of the hash area, the tree from the next hash block on, its levels stored
//! top (the single block under the root) first; every digest is sha256(salt || block), hash
//! blocks hold 128 digests and are zero-padded. The root hash is the digest of the top block.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;

/// `struct verity_sb` signature (cryptsetup `lib/verity/verity.c`).
pub const VERITY_SIGNATURE: &[u8; 8] = b"verity\0\0";
pub const VERITY_SB_SIZE: usize = 512;
/// Format version 1: salt before the data in every digest.
pub const VERITY_HASH_TYPE: u32 = 1;
pub const VERITY_BLOCK_SIZE: u64 = 4096;
const DIGEST_SIZE: usize = 32;
const DIGESTS_PER_BLOCK: u64 = VERITY_BLOCK_SIZE / DIGEST_SIZE as u64;
/// Data blocks hashed per read.
const CHUNK_BLOCKS: u64 = 256;

#[derive(Debug, thiserror::Error)]
pub enum VerityError {
    #[error("I/O at byte {offset}: {source}")]
    Io {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("the hash tree needs {needed} bytes at byte {offset} but only {available} are left in the partition")]
    NoSpace {
        offset: u64,
        needed: u64,
        available: u64,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Where the data is and where the hash area goes, all in bytes of the same file.
#[derive(Debug, Clone)]
pub struct VerityParams {
    pub data_offset: u64,
    pub data_blocks: u64,
    /// Absolute byte where the superblock goes (partition start + fs_blocks × 4096).
    pub hash_offset: u64,
    /// Bytes available from `hash_offset` on (to the end of the partition).
    pub hash_area_bytes: u64,
    pub salt: Vec<u8>,
    pub uuid: [u8; 16],
}

/// What `format` wrote: what the kernel command line and `veritysetup verify` need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityTree {
    pub root_hash: [u8; 32],
    pub salt: Vec<u8>,
    pub data_blocks: u64,
    pub data_block_size: u64,
    pub hash_block_size: u64,
    /// Hash blocks of the tree, not counting the superblock's block.
    pub hash_blocks: u64,
}

impl VerityTree {
    pub fn root_hash_hex(&self) -> String {
        hex(&self.root_hash)
    }
    pub fn salt_hex(&self) -> String {
        hex(&self.salt)
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The salt of an image: sha256 of a fixed string and the image version, so that two builds
/// of one version are identical while different versions do not share a salt.
pub fn salt_for(version: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"coreos-build dm-verity salt\0");
    h.update(version.as_bytes());
    h.finalize().to_vec()
}

/// The superblock's UUID, derived from the salt (veritysetup would pick a random one).
pub fn uuid_for(salt: &[u8]) -> [u8; 16] {
    let d = Sha256::new()
        .chain_update(b"coreos-build dm-verity uuid\0")
        .chain_update(salt)
        .finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    *uuid::Builder::from_custom_bytes(b).as_uuid().as_bytes()
}

/// Blocks per tree level, lowest (hashes of data blocks) first.
fn level_sizes(data_blocks: u64) -> Vec<u64> {
    let mut sizes = Vec::new();
    let mut n = data_blocks;
    loop {
        n = n.div_ceil(DIGESTS_PER_BLOCK);
        sizes.push(n);
        if n <= 1 {
            return sizes;
        }
    }
}

/// Bytes of the hash area for `data_blocks` blocks: the superblock's block and the tree.
pub fn hash_area_bytes(data_blocks: u64) -> u64 {
    (1 + level_sizes(data_blocks).iter().sum::<u64>()) * VERITY_BLOCK_SIZE
}

/// The 512-byte superblock (`struct verity_sb`).
fn superblock(p: &VerityParams) -> [u8; VERITY_SB_SIZE] {
    let mut sb = [0u8; VERITY_SB_SIZE];
    sb[0..8].copy_from_slice(VERITY_SIGNATURE);
    sb[8..12].copy_from_slice(&1u32.to_le_bytes()); // version
    sb[12..16].copy_from_slice(&VERITY_HASH_TYPE.to_le_bytes());
    sb[16..32].copy_from_slice(&p.uuid);
    sb[32..38].copy_from_slice(b"sha256"); // algorithm[32]
    sb[64..68].copy_from_slice(&(VERITY_BLOCK_SIZE as u32).to_le_bytes());
    sb[68..72].copy_from_slice(&(VERITY_BLOCK_SIZE as u32).to_le_bytes());
    sb[72..80].copy_from_slice(&p.data_blocks.to_le_bytes());
    sb[80..82].copy_from_slice(&(p.salt.len() as u16).to_le_bytes());
    // pad1[6], then salt[256] at 88, pad2[168].
    sb[88..88 + p.salt.len()].copy_from_slice(&p.salt);
    sb
}

/// Compute the tree over `data_blocks` blocks at `data_offset` and write superblock and tree
/// at `hash_offset`. Level 0 (the bulk of the work) is split between two threads; runs of
/// the file that are holes are hashed as zero blocks without being read.
pub fn format(file: &File, p: &VerityParams) -> Result<VerityTree, VerityError> {
    let sizes = check(p)?;
    let (levels, root_hash) = compute_levels(file, p, &sizes)?;
    write_tree(file, p, &sizes, levels, root_hash)
}

/// `format` from level-0 digests collected while the data was written (`DataDigests`),
/// without reading the data back. Same bytes as `format` over the same data.
pub fn format_from_digests(
    file: &File,
    p: &VerityParams,
    digests: DataDigests,
) -> Result<VerityTree, VerityError> {
    let sizes = check(p)?;
    if digests.salt != p.salt || digests.blocks() != p.data_blocks {
        return Err(VerityError::Invalid(format!(
            "digests of {} blocks with another salt or count than the {} blocks to protect",
            digests.blocks(),
            p.data_blocks
        )));
    }
    let level0 = digests
        .digests
        .into_inner()
        .expect("a digest thread panicked");
    let level0 = pad_to_block(level0.into_flattened());
    // Level 0, the bulk of the tree and last on disk, is written while the levels above it
    // are hashed; `write_tree` puts those (and the superblock) before it.
    let level0_at = p.hash_offset + (1 + sizes[1..].iter().sum::<u64>()) * VERITY_BLOCK_SIZE;
    let (written, (above, root_hash)) = std::thread::scope(|s| {
        let w = s.spawn(|| write_at(file, &level0, level0_at));
        let above = levels_above(&level0, &p.salt);
        (w.join().expect("verity write thread panicked"), above)
    });
    written?;
    write_tree(file, p, &sizes, above, root_hash)
}

/// The level sizes, once the parameters are known to be usable and the tree to fit.
fn check(p: &VerityParams) -> Result<Vec<u64>, VerityError> {
    if p.data_blocks == 0 || p.salt.len() > 256 {
        return Err(VerityError::Invalid(
            "verity needs at least one data block and a salt of at most 256 bytes".into(),
        ));
    }
    let sizes = level_sizes(p.data_blocks);
    let needed = hash_area_bytes(p.data_blocks);
    if needed > p.hash_area_bytes {
        return Err(VerityError::NoSpace {
            offset: p.hash_offset,
            needed,
            available: p.hash_area_bytes,
        });
    }
    Ok(sizes)
}

fn write_tree(
    file: &File,
    p: &VerityParams,
    sizes: &[u64],
    levels: Vec<Vec<u8>>,
    root_hash: [u8; 32],
) -> Result<VerityTree, VerityError> {
    let mut sb_block = vec![0u8; VERITY_BLOCK_SIZE as usize];
    sb_block[..VERITY_SB_SIZE].copy_from_slice(&superblock(p));
    write_at(file, &sb_block, p.hash_offset)?;
    let mut pos = p.hash_offset + VERITY_BLOCK_SIZE;
    for level in levels.iter().rev() {
        write_at(file, level, pos)?;
        pos += level.len() as u64;
    }
    Ok(VerityTree {
        root_hash,
        salt: p.salt.clone(),
        data_blocks: p.data_blocks,
        data_block_size: VERITY_BLOCK_SIZE,
        hash_block_size: VERITY_BLOCK_SIZE,
        hash_blocks: sizes.iter().sum(),
    })
}

/// Level-0 digests of a data area, filled in while the data is written (from any thread,
/// in any order); blocks never recorded are zero blocks.
pub struct DataDigests {
    salt: Vec<u8>,
    digests: std::sync::Mutex<Vec<[u8; DIGEST_SIZE]>>,
}

impl DataDigests {
    /// `data_blocks` zero blocks.
    pub fn new(salt: &[u8], data_blocks: u64) -> DataDigests {
        let zero = digest(salt, &[0u8; VERITY_BLOCK_SIZE as usize]);
        DataDigests {
            salt: salt.to_vec(),
            digests: std::sync::Mutex::new(vec![zero; data_blocks as usize]),
        }
    }

    pub fn blocks(&self) -> u64 {
        self.digests.lock().expect("a digest thread panicked").len() as u64
    }

    /// `data` now starts at block `first` (a partial last block is zero-padded). Blocks past
    /// the data area are ignored: they are not protected.
    pub fn record(&self, first: u64, data: &[u8]) {
        let bs = VERITY_BLOCK_SIZE as usize;
        let mut block = [0u8; VERITY_BLOCK_SIZE as usize];
        let hashed: Vec<[u8; DIGEST_SIZE]> = data
            .chunks(bs)
            .map(|c| {
                if c.len() == bs {
                    digest(&self.salt, c)
                } else {
                    block[..c.len()].copy_from_slice(c);
                    block[c.len()..].fill(0);
                    digest(&self.salt, &block)
                }
            })
            .collect();
        let mut all = self.digests.lock().expect("a digest thread panicked");
        for (i, d) in hashed.into_iter().enumerate() {
            if let Some(slot) = all.get_mut(first as usize + i) {
                *slot = d;
            }
        }
    }
}

/// The tree's levels (lowest first) and the root hash, computed without writing anything.
fn compute_levels(
    file: &File,
    p: &VerityParams,
    sizes: &[u64],
) -> Result<(Vec<Vec<u8>>, [u8; 32]), VerityError> {
    let holes =
        crate::sparse::data_ranges(file).map_err(|source| VerityError::Io { offset: 0, source })?;
    let data_end = p.data_offset + p.data_blocks * VERITY_BLOCK_SIZE;
    let data: Vec<Range<u64>> = holes
        .into_iter()
        .filter(|r| r.end > p.data_offset && r.start < data_end)
        .collect();

    // Level 0 in two halves, each a whole number of hash blocks.
    let groups = sizes[0];
    let split = groups.div_ceil(2) * DIGESTS_PER_BLOCK;
    let halves = [
        0..split.min(p.data_blocks),
        split.min(p.data_blocks)..p.data_blocks,
    ];
    let results: Vec<Result<Vec<u8>, VerityError>> = std::thread::scope(|s| {
        let handles: Vec<_> = halves
            .iter()
            .map(|h| {
                let h = h.clone();
                let data = &data;
                s.spawn(move || hash_data(file, p, h, data))
            })
            .collect();
        handles
            .into_iter()
            .map(|j| j.join().expect("verity thread panicked"))
            .collect()
    });
    let mut level0 = Vec::with_capacity((sizes[0] * VERITY_BLOCK_SIZE) as usize);
    for r in results {
        level0.extend_from_slice(&r?);
    }
    Ok(upper_levels(level0, &p.salt))
}

/// All levels (lowest first) from level 0 (hash blocks), and the root hash.
fn upper_levels(level0: Vec<u8>, salt: &[u8]) -> (Vec<Vec<u8>>, [u8; 32]) {
    let (above, root_hash) = levels_above(&level0, salt);
    (std::iter::once(level0).chain(above).collect(), root_hash)
}

/// The levels above level 0 (lowest first, none when level 0 is one block), and the root hash.
fn levels_above(level0: &[u8], salt: &[u8]) -> (Vec<Vec<u8>>, [u8; 32]) {
    let mut above: Vec<Vec<u8>> = Vec::new();
    loop {
        let below = above.last().map_or(level0, |l| l.as_slice());
        if below.len() as u64 <= VERITY_BLOCK_SIZE {
            let root_hash = digest(salt, below);
            return (above, root_hash);
        }
        let mut digests =
            Vec::with_capacity(below.len() / VERITY_BLOCK_SIZE as usize * DIGEST_SIZE);
        for block in below.chunks(VERITY_BLOCK_SIZE as usize) {
            digests.extend_from_slice(&digest(salt, block));
        }
        above.push(pad_to_block(digests));
    }
}

/// The root hash of `p.data_blocks` blocks at `p.data_offset` with `p.salt`, nothing
/// written (for checking an image against its published hash).
pub fn root_hash(file: &File, p: &VerityParams) -> Result<[u8; 32], VerityError> {
    if p.data_blocks == 0 {
        return Err(VerityError::Invalid(
            "verity needs at least one data block".into(),
        ));
    }
    Ok(compute_levels(file, p, &level_sizes(p.data_blocks))?.1)
}

/// The fields of a verity superblock that `inspect` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VeritySuperblock {
    pub hash_type: u32,
    pub algorithm: String,
    pub data_block_size: u32,
    pub hash_block_size: u32,
    pub data_blocks: u64,
    pub salt: Vec<u8>,
    pub uuid: [u8; 16],
}

/// The superblock at byte `offset`, or None when there is none.
pub fn read_superblock(file: &File, offset: u64) -> Result<Option<VeritySuperblock>, VerityError> {
    let mut sb = [0u8; VERITY_SB_SIZE];
    file.read_exact_at(&mut sb, offset)
        .map_err(|source| VerityError::Io { offset, source })?;
    if &sb[0..8] != VERITY_SIGNATURE {
        return Ok(None);
    }
    let u32_at = |o: usize| u32::from_le_bytes(sb[o..o + 4].try_into().unwrap());
    let salt_len = (u16::from_le_bytes([sb[80], sb[81]]) as usize).min(256);
    let alg_end = sb[32..64].iter().position(|&b| b == 0).unwrap_or(32);
    Ok(Some(VeritySuperblock {
        hash_type: u32_at(12),
        algorithm: String::from_utf8_lossy(&sb[32..32 + alg_end]).into_owned(),
        data_block_size: u32_at(64),
        hash_block_size: u32_at(68),
        data_blocks: u64::from_le_bytes(sb[72..80].try_into().unwrap()),
        salt: sb[88..88 + salt_len].to_vec(),
        uuid: sb[16..32].try_into().unwrap(),
    }))
}

/// The root hash of a tree already on disk, from its superblock at `hash_offset` and the top
/// hash block right after it (the levels are stored top first): sha256(salt || top block).
/// Only as trustworthy as the tree's bytes — for a partition whose whole content was checked
/// against a signed hash. Also returns the superblock; errors name what does not fit.
pub fn root_hash_of_tree(
    file: &File,
    hash_offset: u64,
) -> Result<(VeritySuperblock, [u8; 32]), VerityError> {
    let sb = read_superblock(file, hash_offset)?.ok_or_else(|| {
        VerityError::Invalid(format!("no dm-verity superblock at byte {hash_offset}"))
    })?;
    if sb.hash_type != VERITY_HASH_TYPE
        || sb.algorithm != "sha256"
        || sb.data_block_size as u64 != VERITY_BLOCK_SIZE
        || sb.hash_block_size as u64 != VERITY_BLOCK_SIZE
    {
        return Err(VerityError::Invalid(format!(
            "dm-verity superblock at byte {hash_offset}: hash type {} {} with {}/{}-byte blocks; \
             expected type {VERITY_HASH_TYPE} sha256 with {VERITY_BLOCK_SIZE}-byte blocks",
            sb.hash_type, sb.algorithm, sb.data_block_size, sb.hash_block_size
        )));
    }
    let mut top = vec![0u8; VERITY_BLOCK_SIZE as usize];
    let at = hash_offset + VERITY_BLOCK_SIZE;
    file.read_exact_at(&mut top, at)
        .map_err(|source| VerityError::Io { offset: at, source })?;
    let root = digest(&sb.salt, &top);
    Ok((sb, root))
}

fn digest(salt: &[u8], block: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(salt)
        .chain_update(block)
        .finalize()
        .into()
}

fn pad_to_block(mut v: Vec<u8>) -> Vec<u8> {
    let len = (v.len() as u64).div_ceil(VERITY_BLOCK_SIZE) * VERITY_BLOCK_SIZE;
    v.resize(len as usize, 0);
    v
}

fn write_at(file: &File, buf: &[u8], offset: u64) -> Result<(), VerityError> {
    file.write_all_at(buf, offset)
        .map_err(|source| VerityError::Io { offset, source })
}

/// Level-0 hash blocks for data blocks `range` (zero-padded to whole hash blocks).
fn hash_data(
    file: &File,
    p: &VerityParams,
    range: Range<u64>,
    data: &[Range<u64>],
) -> Result<Vec<u8>, VerityError> {
    let bs = VERITY_BLOCK_SIZE as usize;
    let zero_digest = digest(&p.salt, &vec![0u8; bs]);
    let mut out = Vec::with_capacity(
        ((range.end - range.start) as usize).div_ceil(DIGESTS_PER_BLOCK as usize) * bs,
    );
    let mut buf = vec![0u8; CHUNK_BLOCKS as usize * bs];
    let mut block = range.start;
    while block < range.end {
        let n = CHUNK_BLOCKS.min(range.end - block);
        let start = p.data_offset + block * VERITY_BLOCK_SIZE;
        let end = start + n * VERITY_BLOCK_SIZE;
        if data.iter().any(|r| r.start < end && r.end > start) {
            let chunk = &mut buf[..n as usize * bs];
            file.read_exact_at(chunk, start)
                .map_err(|source| VerityError::Io {
                    offset: start,
                    source,
                })?;
            for b in chunk.chunks(bs) {
                out.extend_from_slice(&digest(&p.salt, b));
            }
        } else {
            for _ in 0..n {
                out.extend_from_slice(&zero_digest);
            }
        }
        block += n;
    }
    Ok(pad_to_block(out))
}

#[cfg(test)]
#[path = "verity_tests.rs"]
mod tests;
