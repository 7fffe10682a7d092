//! Add files to an existing ext2/ext3/ext4 filesystem (in an image file or on a block device)
//! without mounting it, and read files back.
//!
//! CONTRACT: `add_file` keeps this signature.
//!
//! Written here rather than taken from the `ext4_rs` crate (evaluated from its README only):
//! its `BlockDevice` trait cannot report I/O errors (`read_offset` returns a `Vec`,
//! `write_offset` nothing), its examples assume a fixed 4096-byte block (mke2fs makes 1 KiB
//! blocks for small filesystems), it is built with a nightly toolchain, and it publishes no
//! e2fsck results. Proving it under `e2fsck -fn` for every feature combination below would
//! have cost more than these small modules, whose every write is judged by `e2fsck -fn` and
//! the kernel in tests/tests/ext4_edit.rs.
//!
//! How an edit works: everything is read and planned in memory (path lookup, allocation,
//! directory changes) so any error (bad path, unsupported feature, no space) comes before the
//! first write; `fs::Fs::commit` then writes in an order where a crash leaves at worst
//! allocated-but-unreferenced blocks or inodes (and stale counts or checksums), which e2fsck
//! repairs; never an entry of the reachable tree naming something unwritten or free
//! (`crash_tests` stops an edit after every write to check this). With a journal the
//! edit is written in place, as debugfs does; a filesystem that needs journal recovery is
//! refused.
//!
//! Handled: 1, 2 and 4 KiB blocks; extents (new files get up to four
//! extents in the inode, else a depth-1 tree) and ext2/3 block maps (up to triple indirect);
//! 32- and 64-byte descriptors, flex_bg, meta_bg; metadata_csum (with or without
//! metadata_csum_seed) or gdt_csum/uninit_bg; BLOCK_UNINIT/INODE_UNINIT groups and
//! bg_itable_unused; huge_file, dir_nlink, extra_isize, 128/256-byte inodes; a journal;
//! orphan_file (untouched). Htree parents lose their index (see `dir`). Refused with a named
//! reason: needs_recovery, an unclean or erroneous s_state, bigalloc, quota, casefold, mmp,
//! unknown feature bits (including the read-only marker), writing into inline-data or
//! encrypted directories, replacing hard-linked or inline files, symlinks in the path.
//!
//! On a block device, pass the same `File` (whole disk plus the partition's byte offset) the
//! image was written through, or sync that one first: partition nodes have their own page
//! cache.

mod add;
mod alloc;
mod blockmap;
mod device;
mod dir;
mod extents;
mod fs;
mod groups;
mod inode;
mod path;
mod read;
mod run;
mod superblock;

use std::fs::File;

use device::Dev;
use fs::Fs;

/// Metadata for a file the editor creates.
#[derive(Debug, Clone, Copy)]
pub struct NewFile {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("I/O at byte {offset}: {source}")]
    Io {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("not an ext2/3/4 filesystem at byte {0}")]
    NotExt4(u64),
    #[error("{0}")]
    Unsupported(String),
    #[error("no space left: {0}")]
    NoSpace(String),
    #[error("the filesystem needs journal recovery (needs_recovery is set): mount it once or run e2fsck before editing")]
    NeedsRecovery,
    #[error("inconsistent filesystem: {0} (run e2fsck)")]
    Corrupt(String),
    #[error("bad path {0}")]
    BadPath(String),
}

/// Create (or replace) the regular file `path` (absolute inside the filesystem, e.g.
/// `/var/lib/coreos-install/user_data`) with `data`, creating missing parent directories
/// (mode 0755, root-owned), in the filesystem that starts at byte `offset` of `dev` and is
/// `len` bytes long.
pub fn add_file(
    dev: &File,
    offset: u64,
    len: u64,
    path: &str,
    data: &[u8],
    meta: NewFile,
) -> Result<(), EditError> {
    let mut fs = Fs::open(Dev::new(dev, offset, len))?;
    fs.plan_add(path, data, meta)?;
    tracing::debug!(path, bytes = data.len(), "ext4 edit planned; writing");
    fs.commit(data)
}

/// The content of the regular file `path`, or None when it does not exist. Reading works
/// on read-only-marked filesystems (USR) too.
pub fn read_file(
    dev: &File,
    offset: u64,
    len: u64,
    path: &str,
) -> Result<Option<Vec<u8>>, EditError> {
    let fs = Fs::open_for_reading(Dev::new(dev, offset, len))?;
    match fs.resolve(path)? {
        Some(inode) => fs.read_regular(&inode, path).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod crash_tests;
