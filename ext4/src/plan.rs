//! The whole filesystem decided in memory before any byte is written: inode numbers, block
//! allocation, and every metadata block. File contents are not read here; the plan lists
//! which source byte ranges go to which blocks.

use super::alloc::{zip, Allocator, Mapping};
use super::csum::{fs_seed, inode_seed};
use super::dir::{self, Entry};
use super::geometry::Geometry;
use super::inode::*;
use super::scan::{Kind, Node, Tree};
use super::xattr::{self, Attr};
use super::{
    blockmap, extent, journal, tables, Ext4Error, Ext4Params, Flavor, WriteReport, BLOCK_SIZE,
};
use std::collections::HashMap;
use std::path::PathBuf;

/// Highest link count an inode records; directories past it record 1 (dir_nlink).
const EXT4_LINK_MAX: u32 = 65000;
/// Blocks in lost+found, as mke2fs makes it (16 KiB with 4 KiB blocks).
const LOST_FOUND_BLOCKS: u64 = 4;

/// Copy `size` bytes' worth of `maps` (logical blocks of the source) into the image.
#[derive(Debug, Clone)]
pub struct DataCopy {
    pub source: PathBuf,
    pub size: u64,
    pub maps: Vec<Mapping>,
}

pub struct Plan {
    pub blocks_count: u64,
    /// Metadata blocks (block number, 4096 bytes), in no particular order.
    pub metadata: Vec<(u64, Vec<u8>)>,
    pub copies: Vec<DataCopy>,
    pub report: WriteReport,
}

struct Options {
    csum: bool,
    extents: bool,
    journal: bool,
    dir_nlink: bool,
}

/// Placement of one inode's blocks.
struct Placed {
    block: [u8; 60],
    blocks: u64,
    flags: u32,
}

pub fn plan(tree: &Tree, p: &Ext4Params) -> Result<Plan, Ext4Error> {
    let ext4 = p.flavor == Flavor::Ext4;
    let o = Options {
        csum: ext4,
        extents: ext4,
        journal: ext4,
        dir_nlink: ext4,
    };
    let geo = Geometry::new(
        p.size,
        p.inode_size,
        p.bytes_per_inode,
        if ext4 { 64 } else { 32 },
    )?;
    let seed = fs_seed(&p.uuid);
    let csum_seed = o.csum.then_some(seed);
    let nodes = &tree.nodes;
    if p.label.len() > 16 {
        return Err(Ext4Error::Invalid(format!(
            "label {:?} is longer than 16 bytes",
            p.label
        )));
    }

    // Inode numbers: root 2, lost+found 11, the rest breadth-first from 12.
    let lf_node = nodes[0]
        .children
        .iter()
        .find(|(n, _)| n == b"lost+found")
        .map(|&(_, i)| i);
    if let Some(i) = lf_node {
        if !nodes[i].is_dir() {
            return Err(Ext4Error::Invalid(
                "the tree's /lost+found is not a directory".into(),
            ));
        }
    }
    let mut ino_of = vec![0u32; nodes.len()];
    let mut next = EXT2_FIRST_INO + 1;
    for (i, slot) in ino_of.iter_mut().enumerate() {
        *slot = if i == 0 {
            EXT2_ROOT_INO
        } else if Some(i) == lf_node {
            EXT2_FIRST_INO
        } else {
            next += 1;
            next - 1
        };
    }
    let max_ino = next - 1;
    if max_ino as u64 > geo.inodes_count() {
        return Err(Ext4Error::TooManyInodes {
            needed: max_ino as u64,
            available: geo.inodes_count(),
        });
    }

    let mut alloc = Allocator::new(&geo);
    let mut metadata: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut inodes: HashMap<u32, Inode> = HashMap::new();
    let extra_isize = if p.inode_size as usize > EXT2_GOOD_OLD_INODE_SIZE {
        EXTRA_ISIZE
    } else {
        0
    };
    let xattr_room =
        (p.inode_size as usize).saturating_sub(EXT2_GOOD_OLD_INODE_SIZE + extra_isize as usize);
    let now = p.timestamp;
    let clamp = |t: i64| t.clamp(0, now as i64) as u32;

    // Journal first, so it is one contiguous run near the start.
    let mut jnl_blocks = [0u32; 17];
    if o.journal {
        let len = journal::default_blocks(geo.blocks_count);
        if len > 0 {
            let runs = alloc.alloc(len);
            metadata.push((runs[0].start, journal::superblock(len, &p.uuid)));
            let maps = zip(std::slice::from_ref(&(0..len)), &runs);
            let placed = map_blocks(
                &maps,
                &mut alloc,
                &mut metadata,
                &o,
                csum_seed.map(|s| inode_seed(s, EXT4_JOURNAL_INO, 0)),
            )?;
            for (i, w) in placed.block.chunks(4).enumerate() {
                jnl_blocks[i] = u32::from_le_bytes(w.try_into().unwrap());
            }
            jnl_blocks[16] = (len * BLOCK_SIZE) as u32;
            jnl_blocks[15] = ((len * BLOCK_SIZE) >> 32) as u32;
            inodes.insert(
                EXT4_JOURNAL_INO,
                Inode {
                    mode: S_IFREG | 0o600,
                    size: len * BLOCK_SIZE,
                    atime: now,
                    ctime: now,
                    mtime: now,
                    crtime: now,
                    links_count: 1,
                    blocks: placed.blocks * (BLOCK_SIZE / 512),
                    flags: placed.flags,
                    block: placed.block,
                    extra_isize,
                    ..Default::default()
                },
            );
        }
    }

    // Extended attributes: what fits in the inode stays there; identical overflow sets
    // share one block.
    let mut in_inode: Vec<Vec<u8>> = vec![Vec::new(); nodes.len()];
    let mut xblock_of: Vec<Option<usize>> = vec![None; nodes.len()];
    let mut xblocks: Vec<(Vec<Attr>, u32, u64)> = Vec::new();
    let mut xblock_index: HashMap<Vec<Attr>, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if n.xattrs.is_empty() {
            continue;
        }
        let attrs = n
            .xattrs
            .iter()
            .map(|(k, v)| Attr::from_full(k, v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Ext4Error::Invalid(format!("{}: {e}", n.source.display())))?;
        let (inside, rest) = xattr::place(attrs, xattr_room);
        in_inode[i] = inside;
        if rest.is_empty() {
            continue;
        }
        if !xattr::fits_block(&rest) {
            return Err(Ext4Error::Invalid(format!(
                "{}: extended attributes exceed one block",
                n.source.display()
            )));
        }
        let k = *xblock_index.entry(rest.clone()).or_insert_with(|| {
            xblocks.push((rest, 0, 0));
            xblocks.len() - 1
        });
        xblocks[k].1 += 1;
        xblock_of[i] = Some(k);
    }
    for xb in xblocks.iter_mut() {
        xb.2 = alloc.one();
        let mut b = xattr::block(&xb.0, xb.1);
        if let Some(s) = csum_seed {
            xattr::set_block_checksum(&mut b, s, xb.2);
        }
        metadata.push((xb.2, b));
    }

    // Directories and slow symlinks, then lost+found.
    let mut placed: Vec<Option<Placed>> = (0..nodes.len()).map(|_| None).collect();
    let mut dir_blocks: Vec<u64> = vec![0; nodes.len()];
    let ft = |n: &Node| match n.kind {
        Kind::Dir => dir::EXT4_FT_DIR,
        Kind::File { .. } => dir::EXT4_FT_REG_FILE,
        Kind::Symlink(_) => dir::EXT4_FT_SYMLINK,
        Kind::Char(_) => dir::EXT4_FT_CHRDEV,
        Kind::Block(_) => dir::EXT4_FT_BLKDEV,
        Kind::Fifo => dir::EXT4_FT_FIFO,
    };
    for (i, n) in nodes.iter().enumerate() {
        let ino = ino_of[i];
        let iseed = csum_seed.map(|s| inode_seed(s, ino, 0));
        match &n.kind {
            Kind::Dir => {
                let mut entries = vec![
                    Entry {
                        ino,
                        file_type: dir::EXT4_FT_DIR,
                        name: b".",
                    },
                    Entry {
                        ino: ino_of[n.parent],
                        file_type: dir::EXT4_FT_DIR,
                        name: b"..",
                    },
                ];
                if i == 0 && lf_node.is_none() {
                    entries.push(Entry {
                        ino: EXT2_FIRST_INO,
                        file_type: dir::EXT4_FT_DIR,
                        name: b"lost+found",
                    });
                }
                entries.extend(n.children.iter().map(|(name, c)| Entry {
                    ino: ino_of[*c],
                    file_type: ft(&nodes[*c]),
                    name,
                }));
                let mut blocks = dir::build(&entries, iseed);
                if Some(i) == lf_node {
                    while (blocks.len() as u64) < LOST_FOUND_BLOCKS {
                        blocks.push(dir::empty_block(iseed));
                    }
                }
                dir_blocks[i] = blocks.len() as u64;
                placed[i] = Some(place_blocks(blocks, &mut alloc, &mut metadata, &o, iseed)?);
            }
            Kind::Symlink(t) if t.len() >= 60 => {
                let mut b = vec![0u8; BLOCK_SIZE as usize];
                b[..t.len()].copy_from_slice(t);
                placed[i] = Some(place_blocks(vec![b], &mut alloc, &mut metadata, &o, iseed)?);
            }
            _ => {}
        }
    }
    let lf_placed = if lf_node.is_none() {
        let iseed = csum_seed.map(|s| inode_seed(s, EXT2_FIRST_INO, 0));
        let first = dir::build(
            &[
                Entry {
                    ino: EXT2_FIRST_INO,
                    file_type: dir::EXT4_FT_DIR,
                    name: b".",
                },
                Entry {
                    ino: EXT2_ROOT_INO,
                    file_type: dir::EXT4_FT_DIR,
                    name: b"..",
                },
            ],
            iseed,
        );
        let mut blocks = first;
        while (blocks.len() as u64) < LOST_FOUND_BLOCKS {
            blocks.push(dir::empty_block(iseed));
        }
        Some(place_blocks(blocks, &mut alloc, &mut metadata, &o, iseed)?)
    } else {
        None
    };

    // File data, in inode order, each file followed by its map blocks.
    let mut copies = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if let Kind::File { size, data } = &n.kind {
            let total: u64 = data.iter().map(|r| r.end - r.start).sum();
            let runs = alloc.alloc(total);
            let maps = zip(data, &runs);
            let iseed = csum_seed.map(|s| inode_seed(s, ino_of[i], 0));
            placed[i] = Some(map_blocks(&maps, &mut alloc, &mut metadata, &o, iseed)?);
            match &n.in_memory {
                Some(bytes) => metadata.extend(memory_blocks(bytes, &maps)),
                None if total > 0 => copies.push(DataCopy {
                    source: n.source.clone(),
                    size: *size,
                    maps,
                }),
                None => {}
            }
        }
    }

    if alloc.shortfall > 0 {
        let available = geo.blocks_count * BLOCK_SIZE;
        let short = alloc.shortfall * BLOCK_SIZE;
        return Err(Ext4Error::TooLarge {
            needed: available + short,
            available,
            short,
        });
    }

    // Inodes for the tree.
    let mut used_dirs = vec![0u32; geo.groups as usize];
    for (i, n) in nodes.iter().enumerate() {
        let ino = ino_of[i];
        let pl = placed[i].take();
        let (type_bits, size, links) = match &n.kind {
            Kind::Dir => {
                let subdirs = n
                    .children
                    .iter()
                    .filter(|(_, c)| nodes[*c].is_dir())
                    .count() as u32
                    + u32::from(i == 0 && lf_node.is_none());
                let mut links = 2 + subdirs;
                if links > EXT4_LINK_MAX {
                    if !o.dir_nlink {
                        return Err(Ext4Error::Invalid(format!(
                            "{}: too many subdirectories for ext2",
                            n.source.display()
                        )));
                    }
                    links = 1;
                }
                used_dirs[geo.inode_location(ino).0 as usize] += 1;
                (S_IFDIR, dir_blocks[i] * BLOCK_SIZE, links)
            }
            Kind::File { size, .. } => (S_IFREG, *size, n.names),
            Kind::Symlink(t) => (S_IFLNK, t.len() as u64, n.names),
            Kind::Char(_) => (S_IFCHR, 0, n.names),
            Kind::Block(_) => (S_IFBLK, 0, n.names),
            Kind::Fifo => (S_IFIFO, 0, n.names),
        };
        if links > EXT4_LINK_MAX {
            return Err(Ext4Error::Invalid(format!(
                "{}: {links} hard links exceed {EXT4_LINK_MAX}",
                n.source.display()
            )));
        }
        let mut inode = Inode {
            mode: type_bits | n.perm,
            uid: n.uid,
            gid: n.gid,
            size,
            // Only mtime is the tree's content: the source's atime moves as we read it
            // and its ctime as it was unpacked, so both would make builds differ.
            atime: clamp(n.mtime),
            ctime: clamp(n.mtime),
            mtime: clamp(n.mtime),
            crtime: clamp(n.mtime),
            links_count: links as u16,
            extra_isize,
            in_inode_xattrs: std::mem::take(&mut in_inode[i]),
            ..Default::default()
        };
        match (&n.kind, pl) {
            (_, Some(pl)) => {
                inode.block = pl.block;
                inode.blocks = pl.blocks * (BLOCK_SIZE / 512);
                inode.flags = pl.flags;
            }
            (Kind::Symlink(t), None) => inode.block[..t.len()].copy_from_slice(t),
            (Kind::Char(r) | Kind::Block(r), None) => encode_dev(&mut inode.block, *r),
            _ => {}
        }
        if let Some(k) = xblock_of[i] {
            inode.file_acl = xblocks[k].2;
            inode.blocks += BLOCK_SIZE / 512;
        }
        inodes.insert(ino, inode);
    }
    if let Some(pl) = lf_placed {
        used_dirs[0] += 1;
        inodes.insert(
            EXT2_FIRST_INO,
            Inode {
                mode: S_IFDIR | 0o700,
                size: LOST_FOUND_BLOCKS * BLOCK_SIZE,
                atime: now,
                ctime: now,
                mtime: now,
                crtime: now,
                links_count: 2,
                blocks: pl.blocks * (BLOCK_SIZE / 512),
                flags: pl.flags,
                block: pl.block,
                extra_isize,
                ..Default::default()
            },
        );
    }

    metadata.extend(tables::inode_tables(&geo, inodes, max_ino, csum_seed));
    let groups = tables::group_tables(&geo, max_ino, &used_dirs, alloc.allocated, csum_seed);
    metadata.extend(groups.bitmaps);
    let sb = tables::superblock(
        &geo,
        p,
        groups.free_blocks,
        groups.free_inodes,
        extra_isize,
        jnl_blocks,
    );
    metadata.extend(tables::superblock_copies(
        &geo,
        &sb,
        &groups.gdt,
        p.read_only_marker,
    ));
    let free_blocks_total = groups.free_blocks;
    let report = WriteReport {
        blocks_total: geo.blocks_count,
        blocks_used: geo.blocks_count - free_blocks_total,
        inodes_total: geo.inodes_count(),
        inodes_used: max_ino as u64,
    };
    Ok(Plan {
        blocks_count: geo.blocks_count,
        metadata,
        copies,
        report,
    })
}

/// The blocks of a file held in memory, placed per `maps` (the last one zero-padded); they
/// are written with the metadata.
fn memory_blocks(bytes: &[u8], maps: &[Mapping]) -> Vec<(u64, Vec<u8>)> {
    let bs = BLOCK_SIZE as usize;
    let mut out = Vec::new();
    for m in maps {
        for k in 0..m.len {
            let from = ((m.logical + k) as usize * bs).min(bytes.len());
            let mut b = bytes[from..(from + bs).min(bytes.len())].to_vec();
            b.resize(bs, 0);
            out.push((m.physical + k, b));
        }
    }
    out
}

/// Allocate and place in-memory blocks (directory or symlink content) for one inode.
fn place_blocks(
    blocks: Vec<Vec<u8>>,
    alloc: &mut Allocator,
    metadata: &mut Vec<(u64, Vec<u8>)>,
    o: &Options,
    iseed: Option<u32>,
) -> Result<Placed, Ext4Error> {
    let n = blocks.len() as u64;
    let runs = alloc.alloc(n);
    let maps = zip(std::slice::from_ref(&(0..n)), &runs);
    for (b, phys) in blocks.into_iter().zip(runs.iter().cloned().flatten()) {
        metadata.push((phys, b));
    }
    map_blocks(&maps, alloc, metadata, o, iseed)
}

/// Build the inode's block map (extent tree or indirect blocks) for `maps`.
fn map_blocks(
    maps: &[Mapping],
    alloc: &mut Allocator,
    metadata: &mut Vec<(u64, Vec<u8>)>,
    o: &Options,
    iseed: Option<u32>,
) -> Result<Placed, Ext4Error> {
    let data: u64 = maps.iter().map(|m| m.len).sum();
    if o.extents {
        let exts = extent::extents(maps);
        let leaves = alloc.list(extent::leaves_needed(exts.len())?);
        let (block, blocks) = extent::build(&exts, &leaves, iseed);
        let n = blocks.len() as u64;
        metadata.extend(blocks);
        Ok(Placed {
            block,
            blocks: data + n,
            flags: EXT4_EXTENTS_FL,
        })
    } else {
        let need = blockmap::blocks_needed(maps);
        let ind = alloc.list(need);
        let (block, blocks) = blockmap::build(maps, &ind);
        metadata.extend(blocks);
        Ok(Placed {
            block,
            blocks: data + need,
            flags: 0,
        })
    }
}

/// Device numbers in i_block as the kernel stores them: the old 16-bit form when both
/// numbers fit in 8 bits, else the new 32-bit form in the second word.
fn encode_dev(block: &mut [u8; 60], rdev: u64) {
    let major = libc::major(rdev);
    let minor = libc::minor(rdev);
    if major < 256 && minor < 256 {
        block[0..4].copy_from_slice(&((major << 8) | minor).to_le_bytes());
    } else {
        let new = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
        block[4..8].copy_from_slice(&new.to_le_bytes());
    }
}
