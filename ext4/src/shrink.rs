//! A copy of an ext2/3/4 filesystem cut to the blocks it uses: what `resize2fs -M` leaves when
//! no block has to move. The groups past the last one holding data or inodes are dropped, the
//! last kept group ends after its last used block, and the superblock (with its backups), the
//! descriptor table and that group's block bitmap are rewritten to say so; every other block is
//! copied unchanged. The live USR is made this way from an image's USR-A: the very filesystem
//! the disk boots (inodes, owners, xattrs and all), without the gigabyte of free space.
//!
//! This writer's filesystems fill each group's data area in group order, so their used blocks
//! are a prefix. A filesystem whose used blocks or inodes lie in a later group keeps that
//! group; one whose dropped groups' metadata lies elsewhere (flex_bg packing), or which has
//! checksums, a resize inode, meta_bg, or superblock fields this crate's codec does not carry,
//! is refused by name rather than altered.

use super::Ext4Error;
use crate::ondisk::group::GroupDesc;
use crate::ondisk::superblock::{
    group_has_super, Superblock, COMPAT_RESIZE_INODE, INCOMPAT_RECOVER, RO_COMPAT_GDT_CSUM,
    RO_COMPAT_METADATA_CSUM, RO_COMPAT_SPARSE_SUPER, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE,
};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

/// s_feature_incompat: the descriptor table is split into meta block groups.
const INCOMPAT_META_BG: u32 = 0x0010;

/// What the cut filesystem is: its size and the blocks that differ from the original.
#[derive(Debug, Clone)]
pub struct ShrinkPlan {
    pub block_size: u64,
    /// Blocks of the cut filesystem (its new s_blocks_count).
    pub blocks: u64,
    /// Groups kept.
    pub groups: u32,
    /// (byte offset in the filesystem, new bytes).
    patches: Vec<(u64, Vec<u8>)>,
}

fn io(offset: u64) -> impl FnOnce(std::io::Error) -> Ext4Error {
    move |e| Ext4Error::Io {
        path: format!("byte {offset}").into(),
        source: e,
    }
}

fn read(f: &File, at: u64, len: usize) -> Result<Vec<u8>, Ext4Error> {
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, at).map_err(io(at))?;
    Ok(b)
}

fn bit(b: &[u8], i: u64) -> bool {
    b[(i / 8) as usize] & (1 << (i % 8)) != 0
}

fn invalid(msg: String) -> Ext4Error {
    Ext4Error::Invalid(msg)
}

/// Decode a superblock and check that encoding it again gives the same bytes, so rewriting it
/// through the codec loses nothing.
fn decode_exact(raw: &[u8], what: &str) -> Result<Superblock, Ext4Error> {
    let sb = Superblock::decode(raw)
        .ok_or_else(|| invalid(format!("no ext2/3/4 superblock at the {what}")))?;
    if sb.encode()[..] != raw[..SUPERBLOCK_SIZE] {
        return Err(invalid(format!(
            "the {what} carries fields this builder does not rewrite (a filesystem made by another tool); it cannot be cut"
        )));
    }
    Ok(sb)
}

impl ShrinkPlan {
    /// Plan the cut of the filesystem at `[offset, offset + len)` of `src`.
    pub fn new(src: &File, offset: u64, len: u64) -> Result<ShrinkPlan, Ext4Error> {
        let raw = read(src, offset + SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)?;
        let sb = decode_exact(&raw, "primary superblock")?;
        let bs = sb.block_size();
        if sb.blocks_count * bs > len {
            return Err(invalid(format!(
                "the filesystem says {} blocks of {bs} bytes, more than its {len}-byte partition",
                sb.blocks_count
            )));
        }
        for (on, name) in [
            (
                sb.feature_ro_compat & RO_COMPAT_METADATA_CSUM != 0,
                "metadata_csum",
            ),
            (sb.feature_ro_compat & RO_COMPAT_GDT_CSUM != 0, "uninit_bg"),
            (sb.feature_compat & COMPAT_RESIZE_INODE != 0, "resize_inode"),
            (sb.feature_incompat & INCOMPAT_META_BG != 0, "meta_bg"),
            (
                sb.feature_incompat & INCOMPAT_RECOVER != 0,
                "needs_recovery",
            ),
        ] {
            if on {
                return Err(invalid(format!(
                    "the filesystem uses {name}; only an ext2-compatible filesystem without it can be cut"
                )));
            }
        }
        let groups = sb.group_count();
        let bpg = u64::from(sb.blocks_per_group);
        let ipg = sb.inodes_per_group;
        let desc_len = sb.desc_bytes();
        let gdt_blocks = (groups as u64 * desc_len as u64).div_ceil(bs);
        let first = u64::from(sb.first_data_block);
        let gdt = read(src, offset + (first + 1) * bs, (gdt_blocks * bs) as usize)?;
        let descs: Vec<GroupDesc> = (0..groups as usize)
            .map(|g| GroupDesc::decode(&gdt[g * desc_len..(g + 1) * desc_len]))
            .collect();
        let sparse = sb.feature_ro_compat & RO_COMPAT_SPARSE_SUPER != 0;
        let itable_blocks = (u64::from(ipg) * u64::from(sb.inode_size)).div_ceil(bs);
        let group_start = |g: u32| first + g as u64 * bpg;
        let group_len = |g: u32| (sb.blocks_count - group_start(g)).min(bpg);
        // Blocks of group g that are its own metadata, relative to the group's start.
        let own_meta = |g: u32| -> Result<Vec<u64>, Ext4Error> {
            let (start, glen) = (group_start(g), group_len(g));
            let mut m = Vec::new();
            if group_has_super(g, sparse) {
                m.extend(0..1 + gdt_blocks);
            }
            let d = &descs[g as usize];
            for b in [d.block_bitmap, d.inode_bitmap]
                .into_iter()
                .chain(d.inode_table..d.inode_table + itable_blocks)
            {
                if b < start || b >= start + glen {
                    return Err(invalid(format!(
                        "group {g} keeps its bitmaps or inode table outside itself (block {b}); it cannot be dropped"
                    )));
                }
                m.push(b - start);
            }
            Ok(m)
        };

        // The last group holding anything besides its own metadata decides what is kept.
        let mut bitmaps = Vec::with_capacity(groups as usize);
        let mut keep = 1u32;
        for g in 0..groups {
            let bm = read(
                src,
                offset + descs[g as usize].block_bitmap * bs,
                bs as usize,
            )?;
            let d = &descs[g as usize];
            let mut meta = own_meta(g).ok();
            let used_other = match &mut meta {
                Some(m) => {
                    m.sort_unstable();
                    (0..group_len(g)).any(|i| bit(&bm, i) && m.binary_search(&i).is_err())
                }
                None => true,
            };
            if used_other || d.free_inodes_count < ipg || d.used_dirs_count > 0 {
                keep = g + 1;
            }
            bitmaps.push(bm);
        }
        for g in keep..groups {
            own_meta(g)?;
        }
        let last = keep - 1;
        let bm = &bitmaps[last as usize];
        let used_len = (0..group_len(last))
            .rev()
            .find(|&i| bit(bm, i))
            .map_or(1, |i| i + 1);
        let blocks = group_start(last) + used_len;
        let new_gdt_blocks = (keep as u64 * desc_len as u64).div_ceil(bs);
        if new_gdt_blocks != gdt_blocks {
            return Err(invalid(format!(
                "cutting {groups} groups to {keep} shrinks the descriptor table from {gdt_blocks} to {new_gdt_blocks} blocks, which this cut does not do"
            )));
        }

        // The last kept group: its bitmap marks the blocks past the new end as in use (the
        // padding ext2 requires), and its free count drops by the blocks cut off.
        let mut last_bm = bm.clone();
        for i in used_len..bs * 8 {
            last_bm[(i / 8) as usize] |= 1 << (i % 8);
        }
        let cut_free = (used_len..group_len(last)).filter(|&i| !bit(bm, i)).count() as u32;
        let mut new_descs = descs[..keep as usize].to_vec();
        new_descs[last as usize].free_blocks_count -= cut_free;
        let mut new_gdt = vec![0u8; gdt.len()];
        for (g, d) in new_descs.iter().enumerate() {
            d.encode(
                &mut new_gdt[g * desc_len..(g + 1) * desc_len],
                g as u32,
                None,
            );
        }
        let free_blocks: u64 = new_descs
            .iter()
            .map(|d| u64::from(d.free_blocks_count))
            .sum();
        let free_inodes: u32 = new_descs.iter().map(|d| d.free_inodes_count).sum();

        let mut patches = vec![(new_descs[last as usize].block_bitmap * bs, last_bm)];
        for g in (0..keep).filter(|&g| group_has_super(g, sparse)) {
            let start = group_start(g) * bs;
            // The primary sits 1024 bytes in; a backup starts its group's first block.
            let at = if g == 0 { SUPERBLOCK_OFFSET } else { start };
            let raw = read(src, offset + at, SUPERBLOCK_SIZE)?;
            let mut s = decode_exact(&raw, &format!("superblock of group {g}"))?;
            s.blocks_count = blocks;
            s.free_blocks_count = free_blocks;
            s.inodes_count = keep * ipg;
            s.free_inodes_count = free_inodes;
            // The reserved share stays the same fraction of the filesystem, as resize2fs keeps it.
            s.r_blocks_count = (u128::from(sb.r_blocks_count) * u128::from(blocks)
                / u128::from(sb.blocks_count)) as u64;
            patches.push((at, s.encode().to_vec()));
            patches.push((start + bs, new_gdt.clone()));
        }
        Ok(ShrinkPlan {
            block_size: bs,
            blocks,
            groups: keep,
            patches,
        })
    }

    /// Bytes of the cut filesystem.
    pub fn bytes(&self) -> u64 {
        self.blocks * self.block_size
    }

    /// Write the cut filesystem at `dst_offset` of `dst`: the data ranges of the original's
    /// first `bytes()` bytes are copied in the kernel (holes stay holes when `dst` is sparse
    /// there), then the rewritten blocks.
    pub fn write(
        &self,
        src: &File,
        src_offset: u64,
        dst: &File,
        dst_offset: u64,
    ) -> Result<(), Ext4Error> {
        let end = src_offset + self.bytes();
        let ranges = disk::sparse::data_ranges(src).map_err(io(src_offset))?;
        for r in ranges {
            let (a, b) = (r.start.max(src_offset), r.end.min(end));
            if a < b {
                copy_range(src, a, dst, dst_offset + (a - src_offset), b - a)?;
            }
        }
        for (at, bytes) in &self.patches {
            dst.write_all_at(bytes, dst_offset + at)
                .map_err(io(dst_offset + at))?;
        }
        Ok(())
    }
}

/// `len` bytes from `src` at `from` to `dst` at `to`, in the kernel (copy_file_range), or
/// through a buffer where the kernel cannot.
fn copy_range(src: &File, from: u64, dst: &File, to: u64, len: u64) -> Result<(), Ext4Error> {
    let (mut off_in, mut off_out, mut left) = (from as i64, to as i64, len);
    while left > 0 {
        // SAFETY: valid descriptors and offset pointers that live across the call.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                &mut off_out,
                left.min(1 << 30) as usize,
                0,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if matches!(
                e.raw_os_error(),
                Some(libc::EXDEV | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
            ) {
                return copy_buffered(src, off_in as u64, dst, off_out as u64, left);
            }
            return Err(io(off_in as u64)(e));
        }
        if n == 0 {
            return Err(invalid(format!(
                "the source ends at byte {off_in}, inside the filesystem being copied"
            )));
        }
        left -= n as u64;
    }
    Ok(())
}

fn copy_buffered(src: &File, from: u64, dst: &File, to: u64, len: u64) -> Result<(), Ext4Error> {
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        src.read_exact_at(&mut buf[..n], from + done)
            .map_err(io(from + done))?;
        dst.write_all_at(&buf[..n], to + done)
            .map_err(io(to + done))?;
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{write_tree, Ext4Params, Flavor};
    use std::process::Command;

    fn params(size: u64, marker: bool) -> Ext4Params {
        Ext4Params {
            size,
            label: "USR-A".into(),
            uuid: [7; 16],
            timestamp: 1_700_000_000,
            flavor: Flavor::Ext2Compat,
            read_only_marker: marker,
            inode_size: 128,
            bytes_per_inode: 4096,
            overrides: Vec::new(),
            extra_files: Vec::new(),
            all_root: false,
            xattrs: crate::XattrPolicy::KeepAll,
        }
    }

    /// A tree of small files and one of `big` bytes (not zeros, so it takes blocks).
    fn tree(dir: &std::path::Path, big: usize) {
        std::fs::create_dir_all(dir.join("lib/deep")).unwrap();
        std::fs::write(dir.join("lib/os-release"), "VERSION_ID=1.2.3\n").unwrap();
        std::fs::write(dir.join("lib/deep/data"), vec![0x5a; 70_000]).unwrap();
        std::os::unix::fs::symlink("deep/data", dir.join("lib/link")).unwrap();
        let pattern: Vec<u8> = (0..big).map(|i| (i % 253) as u8 | 1).collect();
        std::fs::write(dir.join("big"), pattern).unwrap();
    }

    fn tool(cmd: &mut Command) -> String {
        let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{cmd:?} failed:\n{text}");
        text
    }

    /// Write the tree into a filesystem of `size` at a 1 MiB offset, cut it into another file
    /// at an odd offset, and return (plan, cut filesystem as its own file).
    fn cut(
        dir: &std::path::Path,
        size: u64,
        big: usize,
        marker: bool,
    ) -> (ShrinkPlan, std::path::PathBuf) {
        let src_tree = dir.join("tree");
        tree(&src_tree, big);
        let img = dir.join("disk.img");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&img)
            .unwrap();
        write_tree(Some(&src_tree), &f, 1 << 20, &params(size, marker)).unwrap();
        let plan = ShrinkPlan::new(&f, 1 << 20, size).unwrap();
        let out = dir.join("cut.img");
        let o = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&out)
            .unwrap();
        // An odd offset, as inside a cpio archive; then the filesystem alone for the tools.
        plan.write(&f, 1 << 20, &o, 120).unwrap();
        let fs_only = dir.join("fs.img");
        let mut bytes = vec![0u8; plan.bytes() as usize];
        o.read_exact_at(&mut bytes, 120).unwrap();
        std::fs::write(&fs_only, bytes).unwrap();
        (plan, fs_only)
    }

    #[test]
    fn one_group_of_a_large_filesystem_passes_e2fsck_and_keeps_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, fs) = cut(dir.path(), 600 << 20, 3 << 20, false);
        assert_eq!(plan.groups, 1, "a small tree stays in group 0");
        assert!(plan.bytes() < 20 << 20, "cut to {} bytes", plan.bytes());
        tool(Command::new("e2fsck").arg("-fn").arg(&fs));
        let cat = |p: &str| {
            Command::new("debugfs")
                .args(["-R", &format!("cat {p}")])
                .arg(&fs)
                .output()
                .unwrap()
                .stdout
        };
        assert_eq!(cat("/lib/os-release"), b"VERSION_ID=1.2.3\n");
        assert_eq!(cat("/lib/deep/data"), vec![0x5a; 70_000]);
        let stat = tool(
            Command::new("debugfs")
                .args(["-R", "stat /lib/link"])
                .arg(&fs),
        );
        assert!(stat.contains("Fast link dest: \"deep/data\""), "{stat}");
        let sb = tool(Command::new("dumpe2fs").arg("-h").arg(&fs));
        assert!(
            sb.contains(&format!("Block count:              {}", plan.blocks)),
            "{sb}"
        );
    }

    #[test]
    fn data_in_a_later_group_keeps_it_and_the_read_only_marker_survives() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, fs) = cut(dir.path(), 600 << 20, 140 << 20, true);
        assert_eq!(plan.groups, 2, "140 MB of data reaches group 1");
        assert!(
            plan.bytes() < 160 << 20 && plan.bytes() > 140 << 20,
            "{}",
            plan.bytes()
        );
        let mut marker = [0u8; 1];
        File::open(&fs)
            .unwrap()
            .read_exact_at(&mut marker, 0x467)
            .unwrap();
        assert_eq!(marker[0], 0xff, "the read-only marker is kept");
        // e2fsck refuses unknown ro_compat bits: judge a copy without the marker.
        let f = std::fs::OpenOptions::new().write(true).open(&fs).unwrap();
        f.write_all_at(&[0], 0x467).unwrap();
        tool(Command::new("e2fsck").arg("-fn").arg(&fs));
        let big = Command::new("debugfs")
            .args(["-R", "cat /big"])
            .arg(&fs)
            .output()
            .unwrap()
            .stdout;
        assert_eq!(big.len(), 140 << 20);
        assert!(big
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i % 253) as u8 | 1));
    }

    #[test]
    fn a_foreign_filesystem_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("m.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        tool(Command::new("mkfs.ext2").args(["-q", "-F"]).arg(&img));
        let f = File::open(&img).unwrap();
        let e = ShrinkPlan::new(&f, 0, 64 << 20).unwrap_err().to_string();
        assert!(
            e.contains("resize_inode") || e.contains("another tool"),
            "{e}"
        );
        let zero = dir.path().join("z.img");
        std::fs::File::create(&zero)
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        let e = ShrinkPlan::new(&File::open(&zero).unwrap(), 0, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no ext2/3/4 superblock"), "{e}");
    }
}
