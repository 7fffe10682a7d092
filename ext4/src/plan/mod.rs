//! The whole filesystem decided in memory before any byte is written: inode numbers, block
//! allocation, and every metadata block. File contents are not read here; the plan lists
//! which source byte ranges go to which blocks.
//!
//! One phase per module, in the order blocks are allocated (one sequential cursor, so the
//! order is the layout): `numbering` (inode numbers), `resize` (the resize inode and the
//! reserved descriptor blocks), `journal`, `xattrs` (shared attribute blocks), `dirs`
//! (directories, long symlinks, lost+found), `data` (file contents), `inodes` (the tree's
//! inodes), then the fixed per-group metadata (`tables`).

mod data;
mod dirs;
mod inodes;
mod journal;
mod numbering;
mod resize;
mod xattrs;

use super::alloc::{zip, Allocator, Mapping};
use super::geometry::Geometry;
use super::inventory;
use super::ondisk::csum::fs_seed;
use super::ondisk::inode::Timestamp;
use super::ondisk::inode::{
    Inode, EXT2_GOOD_OLD_INODE_SIZE, EXT4_EXTENTS_FL, EXT4_INODE_EXTRA_ISIZE,
};
use super::scan::Tree;
use super::{blockmap, extent, tables, Ext4Error, Ext4Params, Flavor, WriteReport, BLOCK_SIZE};
use std::collections::HashMap;
use std::path::PathBuf;

/// Copy `size` bytes' worth of `maps` (logical blocks of the source) into the image, then
/// the file's map blocks.
#[derive(Debug, Clone)]
pub struct DataCopy {
    pub source: PathBuf,
    pub size: u64,
    pub maps: Vec<Mapping>,
    /// The file's indirect blocks or extent leaves (block number, 4096 bytes), ascending,
    /// allocated right after its data: written by the thread that writes the data, they do
    /// not cut its run of adjacent blocks (an ext2 file over 48 KiB has one), so a whole
    /// share of the image goes out in few large writes.
    pub map_blocks: Vec<(u64, Vec<u8>)>,
}

pub struct Plan {
    pub blocks_count: u64,
    /// Metadata blocks (block number, 4096 bytes), in no particular order.
    pub metadata: Vec<(u64, Vec<u8>)>,
    pub copies: Vec<DataCopy>,
    pub report: WriteReport,
}

/// What the flavour turns on.
struct Options {
    csum: bool,
    extents: bool,
    journal: bool,
    dir_nlink: bool,
    resize_inode: bool,
}

impl Options {
    fn of(flavor: Flavor) -> Options {
        let ext4 = flavor == Flavor::Ext4;
        Options {
            csum: ext4,
            extents: ext4,
            journal: ext4,
            dir_nlink: ext4,
            resize_inode: ext4,
        }
    }
}

/// Placement of one inode's blocks: its i_block, blocks used (data and map blocks), flags.
struct Placed {
    block: [u8; 60],
    blocks: u64,
    /// Logical blocks mapped (a directory's size in blocks).
    len: u64,
    flags: u32,
}

/// An inode's placement and its map blocks (block number, content).
type Mapped = (Placed, Vec<(u64, Vec<u8>)>);

/// Where the phases allocate and put their blocks.
struct Space {
    alloc: Allocator,
    /// Metadata blocks (and in-memory file contents) built so far.
    metadata: Vec<(u64, Vec<u8>)>,
    extents: bool,
    /// metadata_csum seed of the filesystem.
    csum_seed: Option<u32>,
}

impl Space {
    /// Allocate and place in-memory blocks (directory or symlink content) for one inode.
    fn place_blocks(
        &mut self,
        blocks: Vec<Vec<u8>>,
        iseed: Option<u32>,
    ) -> Result<Placed, Ext4Error> {
        let n = blocks.len() as u64;
        let runs = self.alloc.alloc(n);
        let maps = zip(std::slice::from_ref(&(0..n)), &runs);
        for (b, phys) in blocks.into_iter().zip(runs.iter().cloned().flatten()) {
            self.metadata.push((phys, b));
        }
        self.map_blocks(&maps, iseed)
    }

    /// Build the inode's block map (extent tree or indirect blocks) for `maps`, its map
    /// blocks placed with the metadata.
    fn map_blocks(&mut self, maps: &[Mapping], iseed: Option<u32>) -> Result<Placed, Ext4Error> {
        let (placed, blocks) = self.build_map(maps, iseed)?;
        self.metadata.extend(blocks);
        Ok(placed)
    }

    /// Build the inode's block map for `maps`; its map blocks (allocated next) are returned.
    fn build_map(&mut self, maps: &[Mapping], iseed: Option<u32>) -> Result<Mapped, Ext4Error> {
        let data: u64 = maps.iter().map(|m| m.len).sum();
        let (block, blocks, flags) = if self.extents {
            let exts = extent::extents(maps);
            let leaves = self.alloc.list(extent::leaves_needed(exts.len())?);
            let (block, blocks) = extent::build(&exts, &leaves, iseed);
            (block, blocks, EXT4_EXTENTS_FL)
        } else {
            let ind = self.alloc.list(blockmap::blocks_needed(maps));
            let (block, blocks) = blockmap::build(maps, &ind);
            (block, blocks, 0)
        };
        let placed = Placed {
            block,
            blocks: data + blocks.len() as u64,
            len: data,
            flags,
        };
        Ok((placed, blocks))
    }
}

/// The inode-level choices every phase shares: record size, extra fields, time clamp.
struct InodeFormat {
    /// i_extra_isize of every inode (0 for 128-byte inodes).
    extra_isize: u16,
    /// Bytes left for extended attributes inside an inode.
    xattr_room: usize,
    /// The build time (SOURCE_DATE_EPOCH): no time is later.
    now: u32,
    /// Seconds an inode time field holds.
    range: (i64, i64),
    /// dir_nlink: a directory with more than 65000 links records 1.
    dir_nlink: bool,
}

impl InodeFormat {
    fn new(inode_size: u16, now: u32, dir_nlink: bool) -> InodeFormat {
        let large = inode_size as usize > EXT2_GOOD_OLD_INODE_SIZE;
        let extra_isize = if large { EXT4_INODE_EXTRA_ISIZE } else { 0 };
        InodeFormat {
            extra_isize,
            xattr_room: (inode_size as usize)
                .saturating_sub(EXT2_GOOD_OLD_INODE_SIZE + extra_isize as usize),
            now,
            range: Timestamp::range(large),
            dir_nlink,
        }
    }

    /// A tree time as stored: no later than the build time, within what the record holds
    /// (a 128-byte inode ends in January 2038). A clamped time loses its nanoseconds.
    fn time(&self, secs: i64, nanos: u32) -> Timestamp {
        let hi = self.range.1.min(self.now as i64);
        if secs > hi {
            Timestamp::secs(hi)
        } else if secs < self.range.0 {
            Timestamp::secs(self.range.0)
        } else {
            Timestamp { secs, nanos }
        }
    }

    /// The build time as stored.
    fn now(&self) -> Timestamp {
        self.time(self.now as i64, 0)
    }

    /// A special inode (journal, resize inode, lost+found) made at build time.
    fn special(&self, mode: u16) -> Inode {
        let now = self.now();
        Inode {
            mode,
            atime: now,
            ctime: now,
            mtime: now,
            crtime: now,
            links_count: 1,
            extra_isize: self.extra_isize,
            ..Default::default()
        }
    }
}

/// Inode records by number, each with its in-inode xattr area.
type Inodes = HashMap<u32, (Inode, Vec<u8>)>;

pub fn plan(tree: &Tree, p: &Ext4Params) -> Result<Plan, Ext4Error> {
    if p.label.len() > 16 {
        return Err(Ext4Error::Invalid(format!(
            "label {:?} is longer than 16 bytes",
            p.label
        )));
    }
    let o = Options::of(p.flavor);
    let desc_size = if o.extents { 64 } else { 32 };
    let geo = Geometry::new(
        p.size,
        p.inode_size,
        p.bytes_per_inode,
        desc_size,
        o.resize_inode,
    )?;
    let fmt = InodeFormat::new(p.inode_size, p.timestamp, o.dir_nlink);
    let csum_seed = o.csum.then(|| fs_seed(&p.uuid));
    let mut space = Space {
        alloc: Allocator::new(&geo),
        metadata: Vec::new(),
        extents: o.extents,
        csum_seed,
    };
    let mut inodes = Inodes::new();

    let numbers = numbering::number(tree, &geo)?;
    if geo.reserved_gdt_blocks > 0 {
        let (ino, inode) = resize::resize_inode(&geo, &fmt, &mut space);
        inodes.insert(ino, (inode, Vec::new()));
    }
    let mut jnl_blocks = [0u32; 17];
    if o.journal {
        if let Some((ino, inode, backup)) = journal::journal(&geo, &fmt, &p.uuid, &mut space)? {
            inodes.insert(ino, (inode, Vec::new()));
            jnl_blocks = backup;
        }
    }
    let xattrs = xattrs::place(tree, fmt.xattr_room, &mut space)?;
    let mut placed = dirs::place(tree, &numbers, &mut space)?;
    let lost_found = dirs::lost_found(&numbers, &fmt, &mut space)?;
    let copies = data::place(tree, &numbers, &mut placed, &mut space)?;
    if space.alloc.shortfall > 0 {
        let available = geo.blocks_count * BLOCK_SIZE;
        let short = space.alloc.shortfall * BLOCK_SIZE;
        return Err(Ext4Error::TooLarge {
            needed: available + short,
            available,
            short,
        });
    }
    let mut used_dirs =
        inodes::tree_inodes(tree, &numbers, placed, xattrs, &fmt, &geo, &mut inodes)?;
    let made_lost_found = lost_found.is_some();
    if let Some((ino, inode)) = lost_found {
        used_dirs[geo.inode_location(ino).0 as usize] += 1;
        inodes.insert(ino, (inode, Vec::new()));
    }
    let entries = inventory::list(tree, &numbers.ino_of, made_lost_found, |ino| {
        &inodes[&ino].0
    });

    let Space {
        alloc,
        mut metadata,
        ..
    } = space;
    metadata.extend(tables::inode_tables(
        &geo,
        inodes,
        numbers.max_ino,
        csum_seed,
    ));
    let groups = tables::group_tables(
        &geo,
        numbers.max_ino,
        &used_dirs,
        alloc.allocated,
        csum_seed,
    );
    metadata.extend(groups.bitmaps);
    let sb = tables::superblock(
        &geo,
        p,
        groups.free_blocks,
        groups.free_inodes,
        fmt.extra_isize,
        jnl_blocks,
    );
    metadata.extend(tables::superblock_copies(
        &geo,
        &sb,
        &groups.gdt,
        p.read_only_marker,
    ));
    let report = WriteReport {
        blocks_total: geo.blocks_count,
        blocks_used: geo.blocks_count - groups.free_blocks,
        inodes_total: geo.inodes_count(),
        inodes_used: numbers.max_ino as u64,
        entries,
        ..Default::default()
    };
    Ok(Plan {
        blocks_count: geo.blocks_count,
        metadata,
        copies,
        report,
    })
}
