//! What a manifest asks for, checked before a byte of blob is read: the operations in blob
//! order with their data ranges and the byte ranges they write, the targets' sizes and hashes,
//! where the signature lies. Only full payloads as `delta_generator` makes them pass: REPLACE or
//! REPLACE_BZ operations that write their target once, front to back, and blobs laid out in the
//! order update_engine consumes them (partition operations, then the kernel's), the signature
//! blob right after the last one.

use crate::header::{Header, HEADER_LEN};
use crate::update_metadata::{
    install_operation, install_procedure, CoreosRelease, DeltaArchiveManifest, InstallInfo,
    InstallOperation, SPARSE_HOLE,
};
use crate::{OpName, PayloadError, Target};
use prost::Message;
use std::ops::Range;

/// The only block size this reader takes (`kBlockSize`; every CoreOS and Flatcar payload).
pub const BLOCK_SIZE: u64 = 4096;
/// Per operation, data and output: bounds the memory of apply (delta_generator uses 1 MiB).
pub const MAX_OP_BYTES: u64 = 64 << 20;
/// The kernel is held in memory by apply.
pub const MAX_KERNEL_LEN: u64 = 512 << 20;
/// A `Signatures` message with a few 256-byte signatures is well under this.
pub const MAX_SIGNATURES_LEN: u64 = 64 << 10;

/// How an operation's blob becomes bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Replace,
    ReplaceBz,
}

/// One operation that carries data, as apply performs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedOp {
    pub name: OpName,
    pub kind: OpKind,
    /// The blob, relative to the blob area.
    pub data: Range<u64>,
    pub sha256: [u8; 32],
    /// The bytes of the target it writes (its extents, cut at the target's size).
    pub dst: Range<u64>,
}

/// Size and SHA-256 of a whole target (`InstallInfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetInfo {
    pub size: u64,
    pub sha256: [u8; 32],
}

/// A checked manifest.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Partition operations, then the kernel's, in blob order.
    pub ops: Vec<PlannedOp>,
    pub partition: TargetInfo,
    pub kernel: TargetInfo,
    /// The `Signatures` blob, relative to the blob area.
    pub signatures: Range<u64>,
    pub release: Option<CoreosRelease>,
}

/// The header, manifest and plan at the start of a payload.
#[derive(Clone, Debug)]
pub struct PayloadHead {
    pub header: Header,
    pub manifest: DeltaArchiveManifest,
    pub plan: Plan,
}

impl PayloadHead {
    /// Decode and check a manifest that ends at byte `HEADER_LEN + header.manifest_len`.
    pub fn decode(header: Header, manifest: &[u8]) -> Result<PayloadHead, PayloadError> {
        let manifest = DeltaArchiveManifest::decode(manifest).map_err(|source| {
            PayloadError::ManifestDecode {
                end: header.blobs_start(),
                source,
            }
        })?;
        let plan = plan(&manifest)?;
        Ok(PayloadHead {
            header,
            manifest,
            plan,
        })
    }
}

/// Parse and check the header and manifest at the start of `bytes` (the fuzzing entry point:
/// any input gives a value or an error, never a panic or an unbounded allocation).
pub fn parse_header_and_manifest(bytes: &[u8]) -> Result<PayloadHead, PayloadError> {
    let truncated = |needed: u64, what: &str| PayloadError::Truncated {
        at: bytes.len() as u64,
        needed,
        what: what.to_string(),
    };
    let head: &[u8; HEADER_LEN as usize] = bytes
        .get(..HEADER_LEN as usize)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| truncated(HEADER_LEN, "the header"))?;
    let header = Header::parse(head)?;
    let manifest = bytes
        .get(HEADER_LEN as usize..header.blobs_start() as usize)
        .ok_or_else(|| truncated(header.blobs_start(), "the manifest"))?;
    PayloadHead::decode(header, manifest)
}

fn bad(msg: String) -> PayloadError {
    PayloadError::Manifest(msg)
}

fn info(what: &str, i: Option<&InstallInfo>) -> Result<TargetInfo, PayloadError> {
    let i = i.ok_or_else(|| bad(format!("no {what}")))?;
    let size = i
        .size
        .filter(|&s| s > 0)
        .ok_or_else(|| bad(format!("{what} has no size")))?;
    let sha256 = i
        .hash
        .as_deref()
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
        .ok_or_else(|| bad(format!("{what} has no 32-byte SHA-256")))?;
    Ok(TargetInfo { size, sha256 })
}

/// Check `manifest` as a full payload and lay out its operations.
pub fn plan(m: &DeltaArchiveManifest) -> Result<Plan, PayloadError> {
    let block_size = u64::from(m.block_size());
    if block_size != BLOCK_SIZE {
        return Err(bad(format!(
            "block_size {block_size}; only {BLOCK_SIZE} is supported"
        )));
    }
    if m.old_partition_info.is_some() {
        return Err(bad(
            "old_partition_info is set: a delta payload, and only full payloads are supported"
                .into(),
        ));
    }
    let partition = info("new_partition_info", m.new_partition_info.as_ref())?;
    if !partition.size.is_multiple_of(BLOCK_SIZE) {
        return Err(bad(format!(
            "new_partition_info size {} is not a multiple of {BLOCK_SIZE}",
            partition.size
        )));
    }
    let kernel_procs: Vec<_> = m.procedures.iter().collect();
    let kernel_proc = match kernel_procs.as_slice() {
        [p] if p.r#type == Some(install_procedure::Type::Kernel as i32) => *p,
        [] => {
            return Err(bad(
                "no KERNEL procedure: the payload carries no kernel".into()
            ))
        }
        [p] => {
            return Err(bad(format!(
                "procedure of type {:?}; only KERNEL is supported",
                p.r#type
            )))
        }
        _ => {
            return Err(bad(format!(
                "{} procedures; only one KERNEL procedure is supported",
                kernel_procs.len()
            )))
        }
    };
    if kernel_proc.old_info.is_some() {
        return Err(bad(
            "the KERNEL procedure has old_info: a delta, and only full payloads are supported"
                .into(),
        ));
    }
    let kernel = info("KERNEL procedure new_info", kernel_proc.new_info.as_ref())?;
    if kernel.size > MAX_KERNEL_LEN {
        return Err(bad(format!(
            "a kernel of {} bytes; at most {MAX_KERNEL_LEN}",
            kernel.size
        )));
    }

    let mut ops = Vec::with_capacity(m.partition_operations.len() + kernel_proc.operations.len());
    let mut next_data = 0u64;
    for (target, list, size) in [
        (Target::Partition, &m.partition_operations, partition.size),
        (Target::Kernel, &kernel_proc.operations, kernel.size),
    ] {
        let mut next_block = 0u64;
        let blocks = size.div_ceil(BLOCK_SIZE);
        for (index, op) in list.iter().enumerate() {
            let name = OpName { target, index };
            let p = plan_op(name, op, &mut next_block, blocks, size)?;
            if p.data.start != next_data {
                return Err(bad(format!(
                    "{name}: data at blob offset {}, expected {next_data} (blobs must follow one another in operation order)",
                    p.data.start
                )));
            }
            next_data = p.data.end;
            ops.push(p);
        }
        if next_block < blocks {
            let what = match target {
                Target::Partition => "the partition",
                Target::Kernel => "the kernel",
            };
            return Err(bad(format!(
                "the operations write blocks 0..{next_block} of {what}'s {blocks}; the rest would keep old content"
            )));
        }
    }

    let (Some(sig_offset), Some(sig_size)) = (m.signatures_offset, m.signatures_size) else {
        return Err(bad(
            "no signatures_offset/signatures_size: the payload is unsigned".into(),
        ));
    };
    if sig_offset != next_data {
        return Err(bad(format!(
            "signatures_offset {sig_offset}; the signature blob must follow the last data blob, which ends at {next_data}"
        )));
    }
    if sig_size == 0 || sig_size > MAX_SIGNATURES_LEN {
        return Err(bad(format!(
            "signatures_size {sig_size}; expected 1..={MAX_SIGNATURES_LEN}"
        )));
    }
    let signatures = sig_offset..sig_offset + sig_size;
    for (index, op) in m.noop_operations.iter().enumerate() {
        check_noop(index, op, signatures.end)?;
    }
    Ok(Plan {
        ops,
        partition,
        kernel,
        signatures,
        release: m.coreos_release.clone(),
    })
}

/// Check one data operation of a target of `blocks` blocks (`size` bytes) that the
/// operations before it wrote up to `next_block`.
fn plan_op(
    name: OpName,
    op: &InstallOperation,
    next_block: &mut u64,
    blocks: u64,
    size: u64,
) -> Result<PlannedOp, PayloadError> {
    let kind = match install_operation::Type::try_from(op.r#type) {
        Ok(install_operation::Type::Replace) => OpKind::Replace,
        Ok(install_operation::Type::ReplaceBz) => OpKind::ReplaceBz,
        Ok(t) => {
            return Err(bad(format!(
                "{name}: {t:?} belongs to delta payloads; only full payloads (REPLACE, REPLACE_BZ) are supported"
            )))
        }
        Err(_) => return Err(bad(format!("{name}: unknown type {}", op.r#type))),
    };
    if !op.src_extents.is_empty() {
        return Err(bad(format!("{name}: has src_extents (a delta operation)")));
    }
    let (Some(offset), Some(len)) = (op.data_offset, op.data_length) else {
        return Err(bad(format!("{name}: no data_offset/data_length")));
    };
    let (offset, len) = (u64::from(offset), u64::from(len));
    if len == 0 || len > MAX_OP_BYTES {
        return Err(bad(format!(
            "{name}: data_length {len}; expected 1..={MAX_OP_BYTES}"
        )));
    }
    let sha256 = op
        .data_sha256_hash
        .as_deref()
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
        .ok_or_else(|| bad(format!("{name}: no 32-byte data_sha256_hash")))?;
    if op.dst_extents.is_empty() {
        return Err(bad(format!("{name}: no dst_extents")));
    }
    let first = *next_block;
    for e in &op.dst_extents {
        let start = e.start_block.unwrap_or(SPARSE_HOLE);
        let num = e.num_blocks.unwrap_or(0);
        if start != *next_block || num == 0 {
            return Err(bad(format!(
                "{name}: extent of {num} blocks at block {start}; expected blocks from {next_block} (a full payload writes its target once, in order)"
            )));
        }
        if start >= blocks {
            return Err(bad(format!(
                "{name}: writes block {start}, past the target's {blocks} blocks"
            )));
        }
        // delta_generator gives a short last chunk a whole chunk's extent: cut at the end.
        // The end must still be a byte offset: a count near 2^52 blocks passes the sum but
        // not the product.
        let end = start
            .checked_add(num)
            .filter(|e| e.checked_mul(BLOCK_SIZE).is_some());
        *next_block = end.ok_or(PayloadError::ExtentOutOfRange {
            op: name,
            start_block: start,
            num_blocks: num,
        })?;
    }
    // `first` < `blocks` and `next_block` was checked above: neither product overflows.
    let dst = first * BLOCK_SIZE..(*next_block * BLOCK_SIZE).min(size);
    if dst.end - dst.start > MAX_OP_BYTES {
        return Err(bad(format!(
            "{name}: writes {} bytes; at most {MAX_OP_BYTES} per operation",
            dst.end - dst.start
        )));
    }
    if kind == OpKind::Replace && len != dst.end - dst.start {
        return Err(bad(format!(
            "{name}: REPLACE with {len} bytes of data for {} bytes of extents",
            dst.end - dst.start
        )));
    }
    Ok(PlannedOp {
        name,
        kind,
        data: offset..offset + len,
        sha256,
        dst,
    })
}

/// A noop writes nowhere (old clients' bookkeeping); its data must lie inside the blobs.
fn check_noop(index: usize, op: &InstallOperation, blobs_end: u64) -> Result<(), PayloadError> {
    if op
        .dst_extents
        .iter()
        .any(|e| e.start_block != Some(SPARSE_HOLE))
    {
        return Err(bad(format!(
            "noop op {index} writes real blocks (start_block other than the sparse hole)"
        )));
    }
    if let Some(offset) = op.data_offset {
        // Both are u32: the sum of two cannot overflow a u64.
        let end = u64::from(offset) + u64::from(op.data_length.unwrap_or(0));
        if end > blobs_end {
            return Err(bad(format!(
                "noop op {index}: data {offset}..{end} past the end of the blobs ({blobs_end})"
            )));
        }
    }
    Ok(())
}
