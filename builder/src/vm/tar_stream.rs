//! A tar archive as a sequence of byte pieces (headers, file data, padding), so it can be
//! compressed in parallel without a temporary tar file. Members are GNU-format (`ustar  `
//! magic, i.e. GNU tar's `oldgnu`); a member read from a sparse file becomes an old-GNU sparse
//! member (type `S`) holding only the file's data ranges.
//!
//! The `tar` crate reads sparse members but its `Builder` cannot write them, so the pieces are
//! assembled here from the crate's `GnuHeader`/`GnuSparseHeader`/`GnuExtSparseHeader` types.

use anyhow::Context;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use tar::{EntryType, GnuExtSparseHeader, Header};

const BLOCK: u64 = 512;
/// GNU tar's default record: 20 blocks.
const RECORD: u64 = 10240;
/// File data is read in pieces of at most this size.
const READ_PIECE: u64 = 1 << 20;

pub enum Source {
    Bytes(Vec<u8>),
    /// A regular file, stored whole.
    File(PathBuf),
    /// A file stored as an old-GNU sparse member: only its data ranges.
    SparseFile(PathBuf),
}

pub struct Member {
    pub name: String,
    pub mode: u32,
    pub source: Source,
}

/// One piece of the archive, read when the consumer asks for it.
pub enum Piece {
    Bytes(Vec<u8>),
    Read { file: Arc<File>, at: u64, len: u64 },
}

impl Piece {
    pub fn len(&self) -> u64 {
        match self {
            Piece::Bytes(b) => b.len() as u64,
            Piece::Read { len, .. } => *len,
        }
    }

    pub fn read(self) -> anyhow::Result<Vec<u8>> {
        match self {
            Piece::Bytes(b) => Ok(b),
            Piece::Read { file, at, len } => {
                let mut buf = vec![0u8; len as usize];
                file.read_exact_at(&mut buf, at)
                    .with_context(|| format!("reading {len} bytes at {at}"))?;
                Ok(buf)
            }
        }
    }
}

fn base_header(name: &str, mode: u32, mtime: u64) -> anyhow::Result<Header> {
    let mut h = Header::new_gnu();
    h.set_path(name)
        .with_context(|| format!("tar member name {name}"))?;
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_username("root")?;
    h.set_groupname("root")?;
    h.set_mtime(mtime);
    Ok(h)
}

fn data_pieces(file: &Arc<File>, ranges: &[Range<u64>], out: &mut Vec<Piece>) {
    for r in ranges {
        let mut at = r.start;
        while at < r.end {
            let len = (r.end - at).min(READ_PIECE);
            out.push(Piece::Read {
                file: file.clone(),
                at,
                len,
            });
            at += len;
        }
    }
}

fn padding(stored: u64) -> Piece {
    Piece::Bytes(vec![
        0u8;
        (stored.next_multiple_of(BLOCK) - stored) as usize
    ])
}

/// The old-GNU sparse map of `ranges` within a file of `real_size` bytes: four entries in the
/// header, 21 per extension block. As GNU tar does, a file that ends in a hole gets a last,
/// empty entry at its end.
fn sparse_header(h: &mut Header, ranges: &[Range<u64>], real_size: u64) -> Vec<Piece> {
    let mut map: Vec<(u64, u64)> = ranges.iter().map(|r| (r.start, r.end - r.start)).collect();
    if ranges.last().is_none_or(|r| r.end < real_size) {
        map.push((real_size, 0));
    }
    let gnu = h.as_gnu_mut().expect("a GNU header");
    gnu.set_real_size(real_size);
    let (first, rest) = map.split_at(map.len().min(4));
    for (slot, (off, len)) in gnu.sparse.iter_mut().zip(first) {
        slot.set_offset(*off);
        slot.set_length(*len);
    }
    gnu.set_is_extended(!rest.is_empty());
    let chunks: Vec<&[(u64, u64)]> = rest.chunks(21).collect();
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut ext = GnuExtSparseHeader::new();
            for (slot, (off, len)) in ext.sparse_mut().iter_mut().zip(chunk.iter()) {
                slot.set_offset(*off);
                slot.set_length(*len);
            }
            ext.set_is_extended(i + 1 < chunks.len());
            Piece::Bytes(ext.as_bytes().to_vec())
        })
        .collect()
}

/// The whole archive: every member, the two zero blocks, padding to a whole record.
pub fn pieces(members: Vec<Member>, mtime: u64) -> anyhow::Result<Vec<Piece>> {
    let mut out = Vec::new();
    for m in members {
        let mut h = base_header(&m.name, m.mode, mtime)?;
        match m.source {
            Source::Bytes(b) => {
                h.set_entry_type(EntryType::Regular);
                h.set_size(b.len() as u64);
                h.set_cksum();
                out.push(Piece::Bytes(h.as_bytes().to_vec()));
                let n = b.len() as u64;
                out.push(Piece::Bytes(b));
                out.push(padding(n));
            }
            Source::File(path) => {
                let f = Arc::new(
                    File::open(&path).with_context(|| format!("opening {}", path.display()))?,
                );
                let len = f.metadata()?.len();
                h.set_entry_type(EntryType::Regular);
                h.set_size(len);
                h.set_cksum();
                out.push(Piece::Bytes(h.as_bytes().to_vec()));
                data_pieces(&f, &[0..len], &mut out);
                out.push(padding(len));
            }
            Source::SparseFile(path) => {
                let f = Arc::new(
                    File::open(&path).with_context(|| format!("opening {}", path.display()))?,
                );
                let real_size = f.metadata()?.len();
                let ranges = disk::sparse::data_ranges(&f)
                    .with_context(|| format!("mapping {}", path.display()))?;
                let stored: u64 = ranges.iter().map(|r| r.end - r.start).sum();
                h.set_entry_type(EntryType::GNUSparse);
                h.set_size(stored);
                let ext = sparse_header(&mut h, &ranges, real_size);
                h.set_cksum();
                out.push(Piece::Bytes(h.as_bytes().to_vec()));
                out.extend(ext);
                data_pieces(&f, &ranges, &mut out);
                out.push(padding(stored));
            }
        }
    }
    let written: u64 = out.iter().map(Piece::len).sum::<u64>() + 2 * BLOCK;
    out.push(Piece::Bytes(vec![
        0u8;
        (2 * BLOCK + written.next_multiple_of(RECORD) - written)
            as usize
    ]));
    Ok(out)
}
