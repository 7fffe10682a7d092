//! Laying out a volume from file sizes: where every structure and file goes, and the bytes of
//! everything that is not file data (volume descriptors, path tables, directories, the El
//! Torito catalog). File data is the caller's to write at `IsoLayout::extent`, so a large file
//! can be copied straight into place and nothing is held in memory twice.
//!
//! Order on the volume: System Area (16 blocks, left to the caller: see `hybrid`), Primary
//! Volume Descriptor (block 16), Boot Record (El Torito), Set Terminator, the L and M path
//! tables, the directories in path-table order, the boot catalog, then the files in the order
//! given, each at the next block (or the next multiple of its alignment), then `tail_blocks`
//! blocks of zeros that belong to the volume (room for a backup GPT).

use super::{
    blocks, both16, both32, check_component, padded, volume_date, volume_date_unset, DirRecord,
    IsoError, DIR_RECORD_FIXED, FLAG_DIRECTORY, PVD_ROOT_RECORD, STANDARD_ID, SYSTEM_AREA_BLOCKS,
    VD_PRIMARY, VD_SET_TERMINATOR,
};
use crate::eltorito::{self, BootEntry};
use crate::ISO_BLOCK;
use std::collections::BTreeMap;

/// One file of the volume.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// `DIR/NAME.EXT`, d-characters, without `;1`.
    pub path: String,
    pub len: u64,
    /// The file starts on a multiple of this many blocks (1: any block).
    pub align_blocks: u64,
}

/// What the volume holds besides file data.
#[derive(Debug, Clone)]
pub struct VolumeSpec {
    /// Volume Identifier (d-characters, up to 32).
    pub volume_id: String,
    /// Seconds since the Unix epoch for every date (SOURCE_DATE_EPOCH).
    pub timestamp: i64,
    pub files: Vec<FileSpec>,
    /// El Torito: the catalog's path (it is listed in the directory like a file) and the boot
    /// entries, each naming one of `files`.
    pub boot: Option<(String, Vec<BootEntry>)>,
    /// Blocks of zeros at the end of the volume.
    pub tail_blocks: u64,
}

/// Where everything goes.
#[derive(Debug, Clone)]
pub struct IsoLayout {
    extents: BTreeMap<String, (u32, u64)>,
    metadata: Vec<(u64, Vec<u8>)>,
    total_blocks: u64,
}

impl IsoLayout {
    /// Plan `spec`; any bad name or size is an error before anything is written.
    pub fn plan(spec: &VolumeSpec) -> Result<IsoLayout, IsoError> {
        Planner::new(spec)?.plan()
    }

    /// (first block, bytes) of a file of the volume.
    pub fn extent(&self, path: &str) -> Option<(u32, u64)> {
        self.extents.get(path).copied()
    }

    /// Byte offset of a file in the volume.
    pub fn offset(&self, path: &str) -> Option<u64> {
        self.extent(path).map(|(lba, _)| u64::from(lba) * ISO_BLOCK)
    }

    /// (byte offset, bytes) of every structure that is not file data.
    pub fn metadata(&self) -> &[(u64, Vec<u8>)] {
        &self.metadata
    }

    /// Size of the volume in bytes (a multiple of the block size).
    pub fn bytes(&self) -> u64 {
        self.total_blocks * ISO_BLOCK
    }
}

struct Dir {
    /// Path from the root (`""` for the root itself).
    path: String,
    name: String,
    parent: usize,
    /// Names of the entries and whether each is a directory, sorted as §9.3 orders records.
    entries: BTreeMap<(String, String), Entry>,
    lba: u32,
    bytes: u32,
}

#[derive(Clone)]
enum Entry {
    Dir(usize),
    File(String),
}

struct Planner<'a> {
    spec: &'a VolumeSpec,
    dirs: Vec<Dir>,
    /// (path, bytes) of every file, the catalog included, in placement order.
    files: Vec<(String, u64, u64)>,
}

/// Sort key of a record (§9.3): the name, then the extension.
fn sort_key(name: &str) -> (String, String) {
    match name.split_once('.') {
        Some((n, e)) => (n.to_string(), e.to_string()),
        None => (name.to_string(), String::new()),
    }
}

impl<'a> Planner<'a> {
    fn new(spec: &'a VolumeSpec) -> Result<Planner<'a>, IsoError> {
        if spec.volume_id.len() > 32 {
            return Err(IsoError::BadName(
                spec.volume_id.clone(),
                "a volume identifier has at most 32 characters",
            ));
        }
        let mut p = Planner {
            spec,
            dirs: vec![Dir {
                path: String::new(),
                name: String::new(),
                parent: 0,
                entries: BTreeMap::new(),
                lba: 0,
                bytes: 0,
            }],
            files: Vec::new(),
        };
        if let Some((catalog, _)) = &spec.boot {
            p.add_file(catalog, ISO_BLOCK, 1)?;
        }
        for f in &spec.files {
            if f.len > u64::from(u32::MAX) {
                return Err(IsoError::Invalid(format!(
                    "{}: {} bytes; one ISO 9660 extent holds less than 4 GiB",
                    f.path, f.len
                )));
            }
            p.add_file(&f.path, f.len, f.align_blocks.max(1))?;
        }
        Ok(p)
    }

    fn add_file(&mut self, path: &str, len: u64, align: u64) -> Result<(), IsoError> {
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() > 8 {
            return Err(IsoError::BadName(path.into(), "deeper than 8 levels"));
        }
        let (name, dirs) = parts.split_last().expect("split gives one part at least");
        let mut cur = 0;
        for d in dirs {
            check_component(d, false)?;
            let key = sort_key(d);
            cur = match self.dirs[cur].entries.get(&key) {
                Some(Entry::Dir(i)) => *i,
                Some(Entry::File(_)) => {
                    return Err(IsoError::BadName(path.into(), "a parent is a file"))
                }
                None => {
                    let i = self.dirs.len();
                    let parent_path = self.dirs[cur].path.clone();
                    self.dirs.push(Dir {
                        path: if parent_path.is_empty() {
                            d.to_string()
                        } else {
                            format!("{parent_path}/{d}")
                        },
                        name: d.to_string(),
                        parent: cur,
                        entries: BTreeMap::new(),
                        lba: 0,
                        bytes: 0,
                    });
                    self.dirs[cur].entries.insert(key, Entry::Dir(i));
                    i
                }
            };
        }
        check_component(name, true)?;
        if self.dirs[cur]
            .entries
            .insert(sort_key(name), Entry::File(path.to_string()))
            .is_some()
        {
            return Err(IsoError::BadName(path.into(), "named twice"));
        }
        self.files.push((path.to_string(), len, align));
        Ok(())
    }

    /// Directories in path-table order (§9.4.3): by level, then parent, then name.
    fn table_order(&self) -> Vec<usize> {
        let mut order = vec![0];
        let mut i = 0;
        while i < order.len() {
            for e in self.dirs[order[i]].entries.values() {
                if let Entry::Dir(d) = e {
                    order.push(*d);
                }
            }
            i += 1;
        }
        order
    }

    fn identifier(name: &str, dir: bool) -> Vec<u8> {
        if dir {
            name.as_bytes().to_vec()
        } else {
            format!("{name};1").into_bytes()
        }
    }

    /// Record lengths of a directory's extent, `.` and `..` first.
    fn record_lens(&self, d: usize) -> Vec<usize> {
        let mut lens = vec![DIR_RECORD_FIXED + 1, DIR_RECORD_FIXED + 1];
        for ((n, e), entry) in &self.dirs[d].entries {
            let name = if e.is_empty() {
                n.clone()
            } else {
                format!("{n}.{e}")
            };
            let id = Self::identifier(&name, matches!(entry, Entry::Dir(_)));
            let len = DIR_RECORD_FIXED + id.len();
            lens.push(len + len % 2);
        }
        lens
    }

    /// Records never cross a block boundary (§6.8.1.1).
    fn pack(lens: &[usize]) -> u64 {
        let mut used_blocks = 1u64;
        let mut pos = 0usize;
        for &l in lens {
            if pos + l > ISO_BLOCK as usize {
                used_blocks += 1;
                pos = 0;
            }
            pos += l;
        }
        used_blocks * ISO_BLOCK
    }

    fn path_table_bytes(&self, order: &[usize]) -> u64 {
        order
            .iter()
            .map(|&d| {
                let n = self.dirs[d].name.len().max(1);
                (8 + n + n % 2) as u64
            })
            .sum()
    }

    fn plan(mut self) -> Result<IsoLayout, IsoError> {
        let spec = self.spec;
        let order = self.table_order();
        let boot = spec.boot.is_some();
        let pvd_lba = SYSTEM_AREA_BLOCKS;
        let mut next = pvd_lba + 1;
        let brvd_lba = boot.then(|| {
            next += 1;
            next - 1
        });
        let terminator_lba = next;
        next += 1;
        let pt_bytes = self.path_table_bytes(&order);
        let l_table = next;
        next += blocks(pt_bytes);
        let m_table = next;
        next += blocks(pt_bytes);
        for &d in &order {
            let bytes = Self::pack(&self.record_lens(d));
            self.dirs[d].lba = next as u32;
            self.dirs[d].bytes = bytes as u32;
            next += blocks(bytes);
        }
        let mut extents = BTreeMap::new();
        for (path, len, align) in &self.files {
            next = next.next_multiple_of(*align);
            extents.insert(path.clone(), (next as u32, *len));
            next += blocks(*len);
        }
        let total_blocks = next + spec.tail_blocks;
        if total_blocks > u64::from(u32::MAX) {
            return Err(IsoError::Invalid(format!(
                "the volume needs {total_blocks} blocks; ISO 9660 counts them in 32 bits"
            )));
        }

        let mut metadata = Vec::new();
        let root = self.dir_record(0, vec![0]);
        metadata.push((
            pvd_lba * ISO_BLOCK,
            self.pvd(&root, total_blocks, pt_bytes, l_table, m_table),
        ));
        if let (Some(lba), Some((catalog, entries))) = (brvd_lba, &spec.boot) {
            let (cat_lba, _) = extents[catalog];
            metadata.push((lba * ISO_BLOCK, eltorito::boot_record(cat_lba)));
            let mut placed = Vec::new();
            for e in entries {
                let (img_lba, len) = *extents.get(&e.image).ok_or_else(|| {
                    IsoError::Invalid(format!(
                        "boot image {} is not a file of the volume",
                        e.image
                    ))
                })?;
                placed.push((e.clone(), img_lba, len));
            }
            metadata.push((u64::from(cat_lba) * ISO_BLOCK, eltorito::catalog(&placed)?));
        }
        let mut term = vec![0u8; ISO_BLOCK as usize];
        term[0] = VD_SET_TERMINATOR;
        term[1..6].copy_from_slice(STANDARD_ID);
        term[6] = 1;
        metadata.push((terminator_lba * ISO_BLOCK, term));
        metadata.push((l_table * ISO_BLOCK, self.path_table(&order, false)));
        metadata.push((m_table * ISO_BLOCK, self.path_table(&order, true)));
        for &d in &order {
            metadata.push((
                u64::from(self.dirs[d].lba) * ISO_BLOCK,
                self.dir_extent(d, &extents),
            ));
        }
        Ok(IsoLayout {
            extents,
            metadata,
            total_blocks,
        })
    }

    fn dir_record(&self, d: usize, identifier: Vec<u8>) -> DirRecord {
        DirRecord {
            extent_lba: self.dirs[d].lba,
            data_len: self.dirs[d].bytes,
            recorded: self.spec.timestamp,
            flags: FLAG_DIRECTORY,
            identifier,
        }
    }

    fn dir_extent(&self, d: usize, extents: &BTreeMap<String, (u32, u64)>) -> Vec<u8> {
        let mut records = vec![
            self.dir_record(d, vec![0]),
            self.dir_record(self.dirs[d].parent, vec![1]),
        ];
        for ((n, e), entry) in &self.dirs[d].entries {
            let name = if e.is_empty() {
                n.clone()
            } else {
                format!("{n}.{e}")
            };
            records.push(match entry {
                Entry::Dir(c) => self.dir_record(*c, Self::identifier(&name, true)),
                Entry::File(path) => {
                    let (lba, len) = extents[path];
                    DirRecord {
                        extent_lba: lba,
                        data_len: len as u32,
                        recorded: self.spec.timestamp,
                        flags: 0,
                        identifier: Self::identifier(&name, false),
                    }
                }
            });
        }
        let mut out = vec![0u8; self.dirs[d].bytes as usize];
        let mut pos = 0usize;
        for r in records {
            let b = r.encode();
            if pos % ISO_BLOCK as usize + b.len() > ISO_BLOCK as usize {
                pos = pos.next_multiple_of(ISO_BLOCK as usize);
            }
            out[pos..pos + b.len()].copy_from_slice(&b);
            pos += b.len();
        }
        out
    }

    /// The L (little-endian) or M (big-endian) path table (§9.4).
    fn path_table(&self, order: &[usize], big_endian: bool) -> Vec<u8> {
        let number: BTreeMap<usize, u16> = order
            .iter()
            .enumerate()
            .map(|(i, &d)| (d, i as u16 + 1))
            .collect();
        let mut out = Vec::new();
        for &d in order {
            let dir = &self.dirs[d];
            let id: &[u8] = if d == 0 { &[0] } else { dir.name.as_bytes() };
            out.push(id.len() as u8);
            out.push(0);
            let parent = number[&dir.parent];
            if big_endian {
                out.extend_from_slice(&dir.lba.to_be_bytes());
                out.extend_from_slice(&parent.to_be_bytes());
            } else {
                out.extend_from_slice(&dir.lba.to_le_bytes());
                out.extend_from_slice(&parent.to_le_bytes());
            }
            out.extend_from_slice(id);
            if id.len() % 2 == 1 {
                out.push(0);
            }
        }
        out.resize(blocks(out.len() as u64) as usize * ISO_BLOCK as usize, 0);
        out
    }

    /// The Primary Volume Descriptor (§8.4).
    fn pvd(
        &self,
        root: &DirRecord,
        total: u64,
        pt_bytes: u64,
        l_table: u64,
        m_table: u64,
    ) -> Vec<u8> {
        let s = self.spec;
        let mut b = vec![0u8; ISO_BLOCK as usize];
        b[0] = VD_PRIMARY;
        b[1..6].copy_from_slice(STANDARD_ID);
        b[6] = 1; // Volume Descriptor Version
        b[8..40].copy_from_slice(&padded("LINUX", 32)); // System Identifier
        b[40..72].copy_from_slice(&padded(&s.volume_id, 32));
        b[80..88].copy_from_slice(&both32(total as u32)); // Volume Space Size
        b[120..124].copy_from_slice(&both16(1)); // Volume Set Size
        b[124..128].copy_from_slice(&both16(1)); // Volume Sequence Number
        b[128..132].copy_from_slice(&both16(ISO_BLOCK as u16)); // Logical Block Size
        b[132..140].copy_from_slice(&both32(pt_bytes as u32));
        b[140..144].copy_from_slice(&(l_table as u32).to_le_bytes());
        b[148..152].copy_from_slice(&(m_table as u32).to_be_bytes());
        b[PVD_ROOT_RECORD..PVD_ROOT_RECORD + 34].copy_from_slice(&root.encode());
        b[190..318].copy_from_slice(&padded(&s.volume_id, 128)); // Volume Set Identifier
        b[318..446].copy_from_slice(&padded("", 128)); // Publisher
        b[446..574].copy_from_slice(&padded("", 128)); // Data Preparer
        b[574..702].copy_from_slice(&padded("COREOS-BUILD", 128)); // Application
        b[702..813].copy_from_slice(&padded("", 111)); // Copyright, Abstract, Bibliographic
        b[813..830].copy_from_slice(&volume_date(s.timestamp)); // Creation
        b[830..847].copy_from_slice(&volume_date(s.timestamp)); // Modification
        b[847..864].copy_from_slice(&volume_date_unset()); // Expiration
        b[864..881].copy_from_slice(&volume_date(s.timestamp)); // Effective
        b[881] = 1; // File Structure Version
        b
    }
}
