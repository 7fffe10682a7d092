//! qcow2 version 3 (qemu `docs/interop/qcow2.txt`) written from a sparse raw image.
//!
//! Layout, cluster by cluster: header | L1 table | refcount table | refcount blocks | L2 tables |
//! data clusters. Only clusters that hold non-zero data are allocated (holes and all-zero
//! clusters stay unallocated and read as zeros). The metadata is sized for every cluster the
//! source's data ranges touch, the data is streamed after it, and the metadata is written last
//! once the data's places are known. Every cluster of the file is referenced exactly once, so
//! `qemu-img check` finds no leaks and every L1/L2 entry carries QCOW_OFLAG_COPIED.
//! Big-endian throughout.

use disk::ordered_map::ordered_map;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// "QFI\xfb".
pub const QCOW_MAGIC: u32 = 0x5146_49fb;
pub const VERSION: u32 = 3;
/// 64 KiB clusters, qemu's default.
pub const CLUSTER_BITS: u32 = 16;
pub const CLUSTER_SIZE: u64 = 1 << CLUSTER_BITS;
/// refcount_order 4: 16-bit refcounts.
pub const REFCOUNT_ORDER: u32 = 4;
/// Version 3 header length (no optional fields).
pub const HEADER_LENGTH: u32 = 104;
/// Refcount is exactly 1: the cluster may be written in place.
pub const QCOW_OFLAG_COPIED: u64 = 1 << 63;

const L2_ENTRIES: u64 = CLUSTER_SIZE / 8;
const REFCOUNTS_PER_BLOCK: u64 = CLUSTER_SIZE * 8 / (1 << REFCOUNT_ORDER);
/// Clusters read per work item (1 MiB).
const BATCH_CLUSTERS: u64 = 16;

#[derive(Debug, thiserror::Error)]
pub enum Qcow2Error {
    #[error("reading the source image at byte {offset}: {source}")]
    Read { offset: u64, source: io::Error },
    #[error("writing the qcow2 image: {0}")]
    Write(#[source] io::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qcow2Report {
    pub virtual_size: u64,
    pub data_clusters: u64,
    pub file_size: u64,
}

/// Where the metadata lives, in clusters.
struct Plan {
    l1_entries: u64,
    l1_offset: u64,
    refcount_table_offset: u64,
    refcount_table_clusters: u64,
    refcount_blocks_offset: u64,
    refcount_blocks: u64,
    /// L1 index → cluster of its L2 table, for every L1 index the data may touch.
    l2_clusters: Vec<(u64, u64)>,
    data_offset: u64,
}

impl Plan {
    fn new(virtual_size: u64, touched: &[u64]) -> Plan {
        let clusters = virtual_size.div_ceil(CLUSTER_SIZE);
        let l1_entries = clusters.div_ceil(L2_ENTRIES);
        let l1_clusters = (l1_entries * 8).div_ceil(CLUSTER_SIZE).max(1);
        let mut l1_indices: Vec<u64> = touched.iter().map(|c| c / L2_ENTRIES).collect();
        l1_indices.dedup();
        // The refcount blocks must count every cluster, themselves included: grow to a fixed point.
        let fixed = 1 + l1_clusters + l1_indices.len() as u64 + touched.len() as u64;
        let (mut table_clusters, mut blocks) = (1u64, 1u64);
        loop {
            let total = fixed + table_clusters + blocks;
            let need_blocks = total.div_ceil(REFCOUNTS_PER_BLOCK);
            let need_table = (need_blocks * 8).div_ceil(CLUSTER_SIZE).max(1);
            if need_blocks <= blocks && need_table <= table_clusters {
                break;
            }
            blocks = blocks.max(need_blocks);
            table_clusters = table_clusters.max(need_table);
        }
        let l1_offset = CLUSTER_SIZE;
        let refcount_table_offset = l1_offset + l1_clusters * CLUSTER_SIZE;
        let refcount_blocks_offset = refcount_table_offset + table_clusters * CLUSTER_SIZE;
        let l2_start = refcount_blocks_offset + blocks * CLUSTER_SIZE;
        let l2_clusters = l1_indices
            .iter()
            .enumerate()
            .map(|(i, &l1)| (l1, l2_start + i as u64 * CLUSTER_SIZE))
            .collect();
        Plan {
            l1_entries,
            l1_offset,
            refcount_table_offset,
            refcount_table_clusters: table_clusters,
            refcount_blocks_offset,
            refcount_blocks: blocks,
            l2_clusters,
            data_offset: l2_start + l1_indices.len() as u64 * CLUSTER_SIZE,
        }
    }
}

fn header(virtual_size: u64, plan: &Plan) -> Vec<u8> {
    let mut h = vec![0u8; CLUSTER_SIZE as usize];
    let mut put = |at: usize, bytes: &[u8]| h[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, &QCOW_MAGIC.to_be_bytes());
    put(4, &VERSION.to_be_bytes());
    // backing_file_offset (8) and backing_file_size (16) stay 0.
    put(20, &CLUSTER_BITS.to_be_bytes());
    put(24, &virtual_size.to_be_bytes());
    // crypt_method (32) = 0.
    put(36, &(plan.l1_entries as u32).to_be_bytes());
    put(40, &plan.l1_offset.to_be_bytes());
    put(48, &plan.refcount_table_offset.to_be_bytes());
    put(56, &(plan.refcount_table_clusters as u32).to_be_bytes());
    // nb_snapshots (60), snapshots_offset (64), incompatible (72), compatible (80), autoclear (88) = 0.
    put(96, &REFCOUNT_ORDER.to_be_bytes());
    put(100, &HEADER_LENGTH.to_be_bytes());
    // The header extension area that follows is all zeros: the end-of-extensions marker.
    h
}

/// Clusters (indices into the virtual disk) that the source's data ranges touch.
fn touched_clusters(src: &File, virtual_size: u64) -> Result<Vec<u64>, Qcow2Error> {
    let ranges = disk::sparse::data_ranges(src).map_err(|e| Qcow2Error::Read {
        offset: 0,
        source: e,
    })?;
    let mut out: Vec<u64> = Vec::new();
    for r in ranges {
        let first = r.start / CLUSTER_SIZE;
        let end = r.end.min(virtual_size).div_ceil(CLUSTER_SIZE);
        let first = match out.last() {
            Some(&last) if last >= first => last + 1,
            _ => first,
        };
        out.extend(first..end);
    }
    Ok(out)
}

/// Write `src` as a qcow2 image into `out` (which should be empty; it is truncated to size).
pub fn write_qcow2(
    src: &File,
    out: &File,
    workers: usize,
    progress: &dyn Fn(u64),
) -> Result<Qcow2Report, Qcow2Error> {
    let virtual_size = src
        .metadata()
        .map_err(|e| Qcow2Error::Read {
            offset: 0,
            source: e,
        })?
        .len();
    let touched = touched_clusters(src, virtual_size)?;
    let plan = Plan::new(virtual_size, &touched);
    out.set_len(0).map_err(Qcow2Error::Write)?;

    let mut l2_tables: Vec<Vec<u64>> =
        vec![vec![0u64; L2_ENTRIES as usize]; plan.l2_clusters.len()];
    let l2_slot = |cluster: u64| {
        plan.l2_clusters
            .binary_search_by_key(&(cluster / L2_ENTRIES), |x| x.0)
            .expect("planned L2")
    };
    let mut next_data = plan.data_offset;
    let mut done = 0u64;
    // Reading and zero-testing run on the workers; the writes stay in cluster order.
    let batches = touched
        .chunks(BATCH_CLUSTERS as usize)
        .map(Ok::<_, Qcow2Error>);
    ordered_map(
        batches,
        workers,
        workers * 4,
        || (),
        |_, clusters: &[u64]| {
            let mut found = Vec::with_capacity(clusters.len());
            for &c in clusters {
                let offset = c * CLUSTER_SIZE;
                let mut buf = vec![0u8; CLUSTER_SIZE as usize];
                let n = (virtual_size - offset).min(CLUSTER_SIZE) as usize;
                src.read_exact_at(&mut buf[..n], offset)
                    .map_err(|e| Qcow2Error::Read { offset, source: e })?;
                if buf.iter().any(|&b| b != 0) {
                    found.push((c, buf));
                }
            }
            Ok(found)
        },
        |found: Vec<(u64, Vec<u8>)>| {
            for (c, buf) in found {
                out.write_all_at(&buf, next_data)
                    .map_err(Qcow2Error::Write)?;
                l2_tables[l2_slot(c)][(c % L2_ENTRIES) as usize] = next_data | QCOW_OFLAG_COPIED;
                next_data += CLUSTER_SIZE;
                done += CLUSTER_SIZE;
            }
            progress(done);
            Ok(())
        },
    )?;
    let file_size = next_data;
    let data_clusters = (file_size - plan.data_offset) / CLUSTER_SIZE;

    // L2 tables, the L1 table, refcounts (every cluster up to the end of the file is used once).
    let be = |v: &[u64]| -> Vec<u8> { v.iter().flat_map(|e| e.to_be_bytes()).collect() };
    for ((_, at), table) in plan.l2_clusters.iter().zip(&l2_tables) {
        out.write_all_at(&be(table), *at)
            .map_err(Qcow2Error::Write)?;
    }
    let mut l1 = vec![0u64; plan.l1_entries as usize];
    for (l1_index, at) in &plan.l2_clusters {
        l1[*l1_index as usize] = at | QCOW_OFLAG_COPIED;
    }
    out.write_all_at(&be(&l1), plan.l1_offset)
        .map_err(Qcow2Error::Write)?;
    let table: Vec<u64> = (0..plan.refcount_blocks)
        .map(|i| plan.refcount_blocks_offset + i * CLUSTER_SIZE)
        .collect();
    out.write_all_at(&be(&table), plan.refcount_table_offset)
        .map_err(Qcow2Error::Write)?;
    let used_clusters = file_size / CLUSTER_SIZE;
    let mut refcounts = vec![0u8; (plan.refcount_blocks * CLUSTER_SIZE) as usize];
    for c in 0..used_clusters as usize {
        refcounts[c * 2..c * 2 + 2].copy_from_slice(&1u16.to_be_bytes());
    }
    out.write_all_at(&refcounts, plan.refcount_blocks_offset)
        .map_err(Qcow2Error::Write)?;
    out.write_all_at(&header(virtual_size, &plan), 0)
        .map_err(Qcow2Error::Write)?;
    out.set_len(file_size).map_err(Qcow2Error::Write)?;
    Ok(Qcow2Report {
        virtual_size,
        data_clusters,
        file_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn qemu_img(args: &[&str]) -> String {
        let out = Command::new("qemu-img")
            .args(args)
            .output()
            .expect("qemu-img is installed (ci/install-deps)");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "qemu-img {args:?}: {text}");
        text
    }

    fn round_trip(size: u64) -> Qcow2Report {
        let dir = tempfile::tempdir().unwrap();
        let (raw, img, back) = (
            dir.path().join("a.raw"),
            dir.path().join("a.qcow2"),
            dir.path().join("b.raw"),
        );
        crate::vmdk::tests::synthetic_raw(&raw, size);
        let report = write_qcow2(
            &File::open(&raw).unwrap(),
            &File::create(&img).unwrap(),
            2,
            &|_| (),
        )
        .unwrap();
        let p = img.to_str().unwrap();
        let info = qemu_img(&["info", p]);
        assert!(
            info.contains("file format: qcow2") && info.contains("compat: 1.1"),
            "{info}"
        );
        let check = qemu_img(&["check", p]);
        assert!(check.contains("No errors were found"), "{check}");
        qemu_img(&["convert", "-O", "raw", p, back.to_str().unwrap()]);
        let same = Command::new("cmp")
            .arg(&raw)
            .arg(&back)
            .status()
            .unwrap()
            .success();
        assert!(same, "round trip differs");
        report
    }

    #[test]
    fn qemu_checks_and_reads_back() {
        let r = round_trip(96 << 20);
        // random 3 MiB (48) + text 5 MiB (80) + straddling 1000 bytes (1–2) + tail (1); zeros left out.
        assert!((130..=132).contains(&r.data_clusters), "{r:?}");
    }

    #[test]
    fn large_sparse_disk_spans_many_l2_tables() {
        // 1.5 GiB: three L2 tables' worth of disk (the tail in the last), most of it unallocated.
        let r = round_trip(3 << 29);
        assert!(r.file_size < 16 << 20, "{r:?}");
    }
}
