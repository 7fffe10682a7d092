//! ext4 (and its ext2-compatible, checksum-free form) written from a directory tree, and
//! edited in place without mounting.
//!
//! CONTRACT (other modules call these; keep the signatures): `write_tree`, `Ext4Params`,
//! `Flavor`, `XattrPolicy`, `WriteReport`, `Ext4Error`, and `edit::add_file`.
//!
//! `ondisk` is the one codec of the format (superblock, group descriptors, inodes, extents,
//! directory entries, extended attributes, checksums, feature bits): the writer, the editor
//! (`edit`) and `coreos-build inspect` (`ondisk::probe`) all go through it.
//!
//! How the writer works: `scan` reads the tree (lstat, sorted names, holes, xattrs);
//! `plan` numbers inodes breadth-first and allocates blocks with one sequential cursor
//! (`alloc`), building every metadata block in memory (`dir`, `extent` or `blockmap`,
//! `tables`), one phase per module; `write` punches the target range to zeros and writes
//! the metadata while two threads copy file data with copy_file_range, each file followed
//! by its map blocks (so a thread's share is one run of blocks). The same tree and
//! parameters always give the same bytes.
//!
//! Layout choice: both flavours keep each group's bitmaps and inode table inside the group
//! (valid with or without flex_bg), so one rule serves ext2 and ext4.

pub mod alloc;
mod blockmap;
mod dir;
mod direct;
pub mod edit;
mod extent;
pub mod extra;
pub mod geometry;
pub mod inventory;
pub mod manifest;
#[cfg(test)]
mod mke2fs_vectors;
pub mod ondisk;
pub mod plan;
#[cfg(test)]
mod roundtrip_tests;
pub mod scan;
pub mod shrink;
mod tables;
#[cfg(test)]
mod verity_tests;
mod write;

pub use extra::ExtraFile;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Block size of every filesystem this writer makes.
pub const BLOCK_SIZE: u64 = 4096;

/// Which on-disk flavour to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// ext4 with extents, 64bit, metadata checksums (never `metadata_csum_seed`/`orphan_file`).
    Ext4,
    /// The checksum-free, journal-free form CoreOS used for USR (dm-verity protects it).
    Ext2Compat,
}

/// Everything that decides the bytes of a filesystem besides the tree itself.
#[derive(Debug, Clone)]
pub struct Ext4Params {
    /// Size of the filesystem in bytes (rounded down to whole blocks).
    pub size: u64,
    pub label: String,
    pub uuid: [u8; 16],
    /// Creation/mount-time stamp, and the clamp for every inode time (SOURCE_DATE_EPOCH).
    pub timestamp: u32,
    pub flavor: Flavor,
    /// Byte 0xff at 0x467 (top byte of s_feature_ro_compat): no kernel mounts it read-write.
    pub read_only_marker: bool,
    /// Inode size in bytes (CoreOS USR used 128; ext4 default 256).
    pub inode_size: u16,
    /// One inode per this many bytes (CoreOS used 4096).
    pub bytes_per_inode: u64,
    /// Every entry of the tree owned by root (uid 0, gid 0), before `overrides`: a tree
    /// unpacked by an unprivileged user (`dpkg-deb -x`, `tar`) is owned by that user.
    pub all_root: bool,
    /// Owner/mode overrides by path inside the tree (like a fakeroot manifest).
    pub overrides: Vec<Override>,
    /// Which of the tree's extended attributes the filesystem keeps.
    pub xattrs: XattrPolicy,
    /// Regular files added from memory over the tree (replacing same-named files, parents
    /// created), after `overrides` are applied.
    pub extra_files: Vec<ExtraFile>,
}

/// Which extended attributes of the source tree go into the filesystem.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum XattrPolicy {
    /// All of them, as `mkfs.ext4 -d` copies them.
    #[default]
    KeepAll,
    /// Not those that describe the machine the tree was unpacked on rather than the OS:
    /// `security.selinux` (labels from the build host's policy) and `user.*` (notes of the
    /// host's tools). File capabilities (`security.capability`), ACLs and the rest stay.
    DropHostLabels,
}

impl XattrPolicy {
    /// Does the filesystem keep the attribute with this full name?
    pub fn keeps(self, name: &[u8]) -> bool {
        match self {
            XattrPolicy::KeepAll => true,
            XattrPolicy::DropHostLabels => {
                name != b"security.selinux" && !name.starts_with(b"user.")
            }
        }
    }
}

/// One line of an owner/mode override table: `path uid gid mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// Path relative to the tree root, without a leading slash ("" is the root).
    pub path: PathBuf,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: Option<u32>,
}

/// What was written, for logs and the builder's contents listing.
#[derive(Debug, Clone, Default)]
pub struct WriteReport {
    pub blocks_total: u64,
    pub blocks_used: u64,
    pub inodes_total: u64,
    pub inodes_used: u64,
    /// Entries (inodes) of the tree not owned by uid 0 and gid 0 as written, and the first
    /// of them in scan order: (path inside the tree, uid, gid).
    pub not_root_owned: u64,
    pub not_root_example: Option<(PathBuf, u32, u32)>,
    /// Extended attributes of the tree left out by `Ext4Params::xattrs`.
    pub xattrs_dropped: u64,
    /// Every name in the filesystem as written (lost+found included), in path order.
    pub entries: Vec<inventory::Entry>,
}

#[derive(Debug, thiserror::Error)]
pub enum Ext4Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the tree does not fit: it needs {needed} bytes but the filesystem has {available} (short by {short} bytes)")]
    TooLarge {
        needed: u64,
        available: u64,
        short: u64,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: name is {len} bytes long; ext4 allows at most 255")]
    NameTooLong { path: PathBuf, len: usize },
    #[error("the tree needs {needed} inodes but the filesystem has {available}; lower the bytes-per-inode ratio or grow the filesystem")]
    TooManyInodes { needed: u64, available: u64 },
}

/// Write a complete filesystem of `params.size` bytes at byte `offset` of `out`, holding the
/// tree at `source` (or an empty root directory when `None`). Never writes zeros into holes.
/// Everything that can fail about the tree (size, names, readability, inodes) is checked
/// before the first byte is written.
///
/// A file shorter than `offset + size` is extended first (ftruncate); callers that write
/// several partitions of one image from several threads should size the image beforehand.
pub fn write_tree(
    source: Option<&Path>,
    out: &File,
    offset: u64,
    params: &Ext4Params,
) -> Result<WriteReport, Ext4Error> {
    write_tree_with_progress(source, out, offset, params, &|_, _| {})
}

/// `write_tree`, calling `progress(bytes_just_copied, total_bytes)` as file data is copied
/// (from the copy threads, hence `Sync`).
pub fn write_tree_with_progress(
    source: Option<&Path>,
    out: &File,
    offset: u64,
    params: &Ext4Params,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<WriteReport, Ext4Error> {
    write_tree_inner(
        source,
        out,
        offset,
        params,
        progress,
        None,
        DataWrites::Cached,
    )
}

/// How the file data of an observed write reaches the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataWrites {
    /// Through the page cache: the output is read again soon (a work image compressed at
    /// once).
    Cached,
    /// Around it (`O_DIRECT`, gathered into large writes), where the output allows it: the
    /// output is synced once finished and not read soon (an image about to be published).
    Direct,
}

/// `write_tree`, showing every non-zero write to `blocks(first_block, bytes)` as it happens
/// (from several threads; `bytes` starts at block `first_block` of the filesystem, and a
/// partial last block stands for that block padded with zeros). Blocks never shown read as
/// zeros; a block shown twice holds what it was shown last. This lets a caller hash the
/// filesystem (dm-verity) while the data is in the cache, instead of reading it back.
pub fn write_tree_observed(
    source: Option<&Path>,
    out: &File,
    offset: u64,
    params: &Ext4Params,
    blocks: &(dyn Fn(u64, &[u8]) + Sync),
    data: DataWrites,
) -> Result<WriteReport, Ext4Error> {
    write_tree_inner(source, out, offset, params, &|_, _| {}, Some(blocks), data)
}

fn write_tree_inner(
    source: Option<&Path>,
    out: &File,
    offset: u64,
    params: &Ext4Params,
    progress: write::Progress,
    blocks: Option<write::Blocks>,
    data: DataWrites,
) -> Result<WriteReport, Ext4Error> {
    if !offset.is_multiple_of(BLOCK_SIZE) {
        return Err(Ext4Error::Invalid(format!(
            "offset {offset} is not a multiple of {BLOCK_SIZE}"
        )));
    }
    let started = std::time::Instant::now();
    let mut tree = match source {
        Some(root) => scan::Tree::scan(
            root,
            &scan::Rules {
                all_root: params.all_root,
                overrides: &params.overrides,
                xattrs: params.xattrs,
            },
        )?,
        None => scan::Tree::empty(params.timestamp),
    };
    extra::apply(&mut tree, &params.extra_files)?;
    let scanned = started.elapsed();
    let mut plan = plan::plan(&tree, params)?;
    let report = WriteReport {
        not_root_owned: tree.not_root_owned,
        not_root_example: tree.not_root_example.take(),
        xattrs_dropped: tree.xattrs_dropped,
        ..std::mem::take(&mut plan.report)
    };
    drop(tree);
    let planned = started.elapsed();
    // Two copy threads: the metadata writer shares the machine's two cores with them, and
    // two streams keep the page cache busy while one waits on a read.
    write::write(plan, out, offset, 2, progress, blocks, data)?;
    tracing::debug!(
        blocks_used = report.blocks_used,
        inodes_used = report.inodes_used,
        ?scanned,
        ?planned,
        written = ?started.elapsed(),
        "ext4 written"
    );
    Ok(report)
}
