//! Add files to an existing ext4 filesystem (in an image file or on a block device) without
//! mounting it.
//!
//! CONTRACT: `add_file` keeps this signature.

use std::fs::File;

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
    let _ = (dev, offset, len, path, data, meta);
    Err(EditError::Unsupported("ext4 editor not built yet".into()))
}
