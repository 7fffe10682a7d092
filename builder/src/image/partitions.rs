//! Filesystems written straight into the partitions of the image file: USR-A (+ verity),
//! OEM, empty ext4 ones (ROOT), and the ESP.

use super::usr_policy::UsrPolicy;
use anyhow::Context;
use disk::layout::Partition;
use disk::verity::{self, VerityParams, VerityTree};
use ext4::{Ext4Error, Ext4Params, ExtraFile, Flavor, Override, XattrPolicy};
use std::fs::File;
use std::path::{Path, PathBuf};

/// The filesystem UUID of a partition: its partition GUID (fixed for USR-A by the layout,
/// derived for the others), so the bytes depend only on the layout.
pub fn fs_uuid(p: &Partition) -> [u8; 16] {
    *p.part_guid.as_bytes()
}

fn params(p: &Partition, flavor: Flavor, epoch: i64) -> Ext4Params {
    Ext4Params {
        size: p.fs_bytes(),
        label: p.label.clone(),
        uuid: fs_uuid(p),
        timestamp: epoch.clamp(0, u32::MAX as i64) as u32,
        flavor,
        read_only_marker: false,
        inode_size: p.fs_inode_size,
        bytes_per_inode: p.fs_bytes_per_inode,
        all_root: false,
        overrides: Vec::new(),
        xattrs: XattrPolicy::KeepAll,
        extra_files: Vec::new(),
    }
}

fn flavor(p: &Partition) -> Flavor {
    match p.fs_type.as_deref() {
        Some("ext2") => Flavor::Ext2Compat,
        _ => Flavor::Ext4,
    }
}

fn ext4_context(e: Ext4Error, p: &Partition, what: &str) -> anyhow::Error {
    match e {
        Ext4Error::TooLarge { needed, available, short } => anyhow::anyhow!(
            "{what} does not fit in partition {} ({}): it needs {needed} bytes but the filesystem has {available} bytes (short by {short} bytes)",
            p.number,
            p.label
        ),
        other => anyhow::Error::new(other).context(format!("writing {what} into partition {} ({})", p.number, p.label)),
    }
}

/// What goes into USR-A: the tree, the stamped release files the writer lays over it (the
/// input tree stays untouched), and the ownership and xattr policy.
pub struct UsrSource<'a> {
    pub tree: &'a Path,
    pub stamped: &'a [(PathBuf, Vec<u8>)],
    pub policy: &'a UsrPolicy,
}

/// What `write_usr` made: the verity tree (None without the `verity` feature) and every
/// entry of the filesystem as written.
pub struct UsrWritten {
    pub verity: Option<VerityTree>,
    pub entries: Vec<ext4::inventory::Entry>,
}

/// USR-A: the source with the read-only marker set, then the verity tree after `fs_blocks`
/// when the partition has the `verity` feature. `data` says whether the file data goes
/// through the page cache.
pub fn write_usr(
    out: &File,
    p: &Partition,
    src: UsrSource,
    epoch: i64,
    salt: Vec<u8>,
    data: ext4::DataWrites,
) -> anyhow::Result<UsrWritten> {
    let UsrSource {
        tree: usr,
        stamped,
        policy,
    } = src;
    let mut prm = params(p, flavor(p), epoch);
    prm.read_only_marker = true;
    policy.apply(&mut prm);
    prm.extra_files = stamped
        .iter()
        .map(|(path, data)| ExtraFile {
            path: path.clone(),
            data: data.clone(),
            perm: 0o644,
            uid: 0,
            gid: 0,
            mtime: prm.timestamp,
        })
        .collect();
    let what = || format!("the USR tree {}", usr.display());
    let t = std::time::Instant::now();
    if !p.verity {
        let report = ext4::write_tree(Some(usr), out, p.offset(), &prm)
            .map_err(|e| ext4_context(e, p, &what()))?;
        policy.check(&report);
        tracing::debug!(elapsed = ?t.elapsed(), "USR-A filesystem written");
        return Ok(UsrWritten {
            verity: None,
            entries: report.entries,
        });
    }
    let vp = VerityParams {
        data_offset: p.offset(),
        data_blocks: p.fs_blocks,
        hash_offset: p.offset() + p.fs_bytes(),
        hash_area_bytes: p.bytes() - p.fs_bytes(),
        uuid: verity::uuid_for(&salt),
        salt,
    };
    // Level 0 of the hash tree is computed from the blocks as the writer writes them, so
    // the filesystem is not read back.
    let digests = verity::DataDigests::new(&vp.salt, vp.data_blocks);
    let report = ext4::write_tree_observed(
        Some(usr),
        out,
        p.offset(),
        &prm,
        &|first, bytes| digests.record(first, bytes),
        data,
    )
    .map_err(|e| ext4_context(e, p, &what()))?;
    policy.check(&report);
    tracing::debug!(elapsed = ?t.elapsed(), "USR-A filesystem written and hashed");
    let t = std::time::Instant::now();
    let verity_err = || format!("dm-verity for partition {} ({})", p.number, p.label);
    let tree = if report.blocks_total == vp.data_blocks {
        verity::format_from_digests(out, &vp, digests).with_context(verity_err)?
    } else {
        // The filesystem does not cover the protected area exactly: read it all back.
        verity::format(out, &vp).with_context(verity_err)?
    };
    tracing::debug!(elapsed = ?t.elapsed(), "verity tree written");
    Ok(UsrWritten {
        verity: Some(tree),
        entries: report.entries,
    })
}

/// An ext4 filesystem from a folder (OEM), root-owned per `overrides`.
pub fn write_tree_fs(
    out: &File,
    p: &Partition,
    tree: Option<&Path>,
    overrides: Vec<Override>,
    epoch: i64,
) -> anyhow::Result<()> {
    let mut prm = params(p, flavor(p), epoch);
    prm.overrides = overrides;
    let what = tree
        .map(|t| format!("the tree {}", t.display()))
        .unwrap_or_else(|| "an empty filesystem".into());
    ext4::write_tree(tree, out, p.offset(), &prm).map_err(|e| ext4_context(e, p, &what))?;
    Ok(())
}

/// The ESP's FAT volume.
pub fn write_esp(
    out: &File,
    p: &Partition,
    files: &[(String, Vec<u8>)],
    epoch: i64,
) -> anyhow::Result<()> {
    let g = p.part_guid.as_bytes();
    let params = disk::fat::FatParams {
        label: p.label.clone(),
        volume_id: u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
        timestamp: epoch,
    };
    disk::fat::write_fat(out, p.offset(), p.bytes(), &params, files).with_context(|| {
        format!(
            "writing the FAT filesystem of partition {} ({})",
            p.number, p.label
        )
    })
}
