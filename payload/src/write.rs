//! The writer: a full, signed payload as `delta_generator -new_image USR -new_kernel VMLINUZ
//! -private_key KEY` makes one (`delta_diff_generator.cc` `GenerateDeltaUpdateFile`):
//! partition operations over 1 MiB chunks, then a KERNEL procedure with its operations and
//! `new_info`, the procedure's operations mirrored as REPLACE noops into the sparse hole for
//! pre-2015 clients, a final noop over the signature blob (`AddSignatureOp`), `block_size`
//! 4096, `new_partition_info` = size and SHA-256 of the whole partition, and one
//! `Signatures.Signature{version: 2}` over `[0, 20 + n + signatures_offset)`.
//!
//! The manifest must precede the blobs but names their sizes and hashes, so the blobs are
//! compressed into an unnamed temporary file first (memory stays bounded), then header,
//! manifest, blobs and signature are written out in one pass that hashes what it writes.
//! One difference from delta_generator: a short last chunk's extent counts the blocks it
//! fills, not a whole chunk's, so the extents cover their target exactly.

use crate::chunks::{self, Blob, Input, Source};
use crate::header::Header;
use crate::plan::{OpKind, BLOCK_SIZE};
use crate::update_metadata::{
    install_operation, install_procedure, signatures, CoreosRelease, DeltaArchiveManifest, Extent,
    InstallInfo, InstallOperation, InstallProcedure, Signatures, SPARSE_HOLE,
};
use crate::verify::SIGNATURE_VERSION;
use crate::zeros::hash_zeros;
use crate::PayloadError;
use keys::{PayloadSigningKey, PAYLOAD_SIGNATURE_LEN};
use prost::Message;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::PathBuf;

/// What the payload installs.
pub struct PayloadSource<'a> {
    /// The file holding the partition: a disk image (sparse or not) or a partition image.
    pub image: &'a File,
    /// The partition's bytes in `image` (its length a multiple of 4096).
    pub partition: Range<u64>,
    /// The kernel that boots this partition.
    pub kernel: &'a [u8],
}

/// What the payload is a release of (the manifest's CoreOS release field).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Release {
    pub board: String,
    pub version: String,
    pub channel: String,
}

#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// Compression threads; 0 = one per core. The output is the same for any number.
    pub threads: usize,
    /// Folder of the temporary blob file (default: the system's temporary folder).
    pub spool_dir: Option<PathBuf>,
}

/// The payload written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub len: u64,
    pub manifest_len: u64,
    pub partition_ops: usize,
    pub kernel_ops: usize,
    /// SHA-256 of the whole file (Omaha's `sha256`, base64'd there).
    pub sha256: [u8; 32],
    pub partition_sha256: [u8; 32],
    /// The length of each bzip2 stream written to the partition's `.bz2`, in order: stream
    /// `i` decodes to bytes `i * CHUNK..` of the partition (empty when no `.bz2` was asked).
    pub partition_bz2_streams: Vec<u64>,
}

/// One operation's blob, as spooled.
struct Spooled {
    kind: OpKind,
    offset: u64,
    len: u64,
    sha256: [u8; 32],
    dst: Range<u64>,
}

/// The blobs of one target, written to the spool in order.
struct Spool {
    file: BufWriter<File>,
    len: u64,
}

impl Spool {
    /// Compress `source` into the spool; returns its operations and the SHA-256 of its input.
    fn add<'w>(
        &mut self,
        source: &Source,
        threads: usize,
        mut bz2: Option<&mut (dyn Write + 'w)>,
        streams: &mut Vec<u64>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(Vec<Spooled>, [u8; 32]), PayloadError> {
        let mut ops = Vec::new();
        let mut whole = Sha256::new();
        let mut done = 0u64;
        chunks::compress(source, threads, |input, blob: &Blob| {
            if let Some(out) = bz2.as_mut() {
                out.write_all(blob.bzip2_stream())
                    .map_err(|source| PayloadError::Io {
                        what: "writing the partition's .bz2".into(),
                        source,
                    })?;
                streams.push(blob.bzip2_stream().len() as u64);
            }
            let n = match &input {
                Input::Data(d) => {
                    whole.update(d);
                    d.len() as u64
                }
                Input::Zeros(n) => {
                    hash_zeros(&mut whole, *n);
                    *n
                }
            };
            self.file
                .write_all(&blob.bytes)
                .map_err(|source| PayloadError::Io {
                    what: "writing the temporary blob file".into(),
                    source,
                })?;
            ops.push(Spooled {
                kind: blob.kind,
                offset: self.len,
                len: blob.bytes.len() as u64,
                sha256: blob.sha256,
                dst: done..done + n,
            });
            self.len += blob.bytes.len() as u64;
            done += n;
            progress(done);
            Ok(())
        })?;
        Ok((ops, whole.finalize().into()))
    }
}

fn operation(op: &Spooled) -> Result<InstallOperation, PayloadError> {
    let too_big = || {
        PayloadError::Input(
            "the payload's data passes 4 GiB, past CrAU's 32-bit data_offset".into(),
        )
    };
    Ok(InstallOperation {
        r#type: match op.kind {
            OpKind::Replace => install_operation::Type::Replace,
            OpKind::ReplaceBz => install_operation::Type::ReplaceBz,
        } as i32,
        data_offset: Some(u32::try_from(op.offset).map_err(|_| too_big())?),
        data_length: Some(u32::try_from(op.len).map_err(|_| too_big())?),
        dst_extents: vec![Extent {
            start_block: Some(op.dst.start / BLOCK_SIZE),
            num_blocks: Some((op.dst.end - op.dst.start).div_ceil(BLOCK_SIZE)),
        }],
        data_sha256_hash: Some(op.sha256.to_vec()),
        ..Default::default()
    })
}

/// A REPLACE into the sparse hole over `data` (what old clients skip).
fn noop(data: &Range<u64>, sha256: Option<&[u8]>) -> InstallOperation {
    InstallOperation {
        r#type: install_operation::Type::Replace as i32,
        data_offset: Some(data.start as u32),
        data_length: Some((data.end - data.start) as u32),
        dst_extents: vec![Extent {
            start_block: Some(SPARSE_HOLE),
            num_blocks: Some((data.end - data.start).div_ceil(BLOCK_SIZE)),
        }],
        data_sha256_hash: sha256.map(<[u8]>::to_vec),
        ..Default::default()
    }
}

/// The `Signatures` blob for one signature.
fn signatures_blob(signature: &[u8]) -> Vec<u8> {
    Signatures {
        signatures: vec![signatures::Signature {
            version: Some(SIGNATURE_VERSION),
            data: Some(signature.to_vec()),
        }],
    }
    .encode_to_vec()
}

/// Check that `partition` is a whole number of blocks inside `image`.
fn check_partition(image: &File, part: &Range<u64>) -> Result<(), PayloadError> {
    let part_len = part.end.saturating_sub(part.start);
    if part_len == 0 || !part_len.is_multiple_of(BLOCK_SIZE) {
        return Err(PayloadError::Input(format!(
            "the partition (bytes {}..{} of the image) is not a non-empty multiple of {BLOCK_SIZE} bytes",
            part.start, part.end
        )));
    }
    let image_len = image
        .metadata()
        .map_err(|e| PayloadError::Io {
            what: "reading the image's size".into(),
            source: e,
        })?
        .len();
    if part.end > image_len {
        return Err(PayloadError::Input(format!(
            "the partition (bytes {}..{}) runs past the end of the {image_len}-byte image",
            part.start, part.end
        )));
    }
    Ok(())
}

fn threads(options: &WriteOptions) -> usize {
    if options.threads == 0 {
        disk::ordered_map::default_workers()
    } else {
        options.threads
    }
}

fn partition_source<'a>(
    image: &'a File,
    partition: &Range<u64>,
) -> Result<Source<'a>, PayloadError> {
    let data = disk::sparse::data_ranges(image).map_err(|source| PayloadError::Io {
        what: "finding the image's holes".into(),
        source,
    })?;
    Ok(Source::File {
        file: image,
        range: partition.clone(),
        data,
    })
}

/// The partition alone as concatenated bzip2 streams, one per 1 MiB chunk: the same streams
/// as the payload's REPLACE_BZ blobs, which `bzip2 -dc` (or any bunzip2) decodes whole.
/// Returns each stream's length, in order (stream `i` decodes to bytes `i * CHUNK..`), so a
/// caller can splice them into a larger `.bz2` instead of compressing the partition again.
pub fn write_partition_bz2(
    image: &File,
    partition: Range<u64>,
    out: &mut dyn Write,
    options: &WriteOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<u64>, PayloadError> {
    check_partition(image, &partition)?;
    let mut streams = Vec::new();
    let mut done = 0u64;
    chunks::compress(
        &partition_source(image, &partition)?,
        threads(options),
        |input, blob| {
            let stream = blob.bzip2_stream();
            out.write_all(stream).map_err(|source| PayloadError::Io {
                what: "writing the partition's .bz2".into(),
                source,
            })?;
            streams.push(stream.len() as u64);
            done += match input {
                Input::Data(d) => d.len() as u64,
                Input::Zeros(n) => n,
            };
            progress(done);
            Ok(())
        },
    )?;
    out.flush().map_err(|source| PayloadError::Io {
        what: "writing the partition's .bz2".into(),
        source,
    })?;
    Ok(streams)
}

/// Write the payload of `source` to `out`, signed with `key`, calling `progress` with the
/// partition bytes compressed so far.
pub fn write_payload(
    source: &PayloadSource,
    release: &Release,
    key: &PayloadSigningKey,
    out: &mut dyn Write,
    options: &WriteOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<Written, PayloadError> {
    write(source, release, key, out, None, options, progress)
}

/// [`write_payload`], and the partition's `.bz2` as [`write_partition_bz2`] writes it, from
/// one compression of the partition.
pub fn write_payload_and_partition_bz2(
    source: &PayloadSource,
    release: &Release,
    key: &PayloadSigningKey,
    out: &mut dyn Write,
    partition_bz2: &mut dyn Write,
    options: &WriteOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<Written, PayloadError> {
    write(
        source,
        release,
        key,
        out,
        Some(partition_bz2),
        options,
        progress,
    )
}

fn write(
    source: &PayloadSource,
    release: &Release,
    key: &PayloadSigningKey,
    out: &mut dyn Write,
    mut partition_bz2: Option<&mut dyn Write>,
    options: &WriteOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<Written, PayloadError> {
    let part = &source.partition;
    check_partition(source.image, part)?;
    let part_len = part.end - part.start;
    if source.kernel.is_empty() {
        return Err(PayloadError::Input("the kernel is empty".into()));
    }
    let threads = threads(options);
    let io = |what: &str| {
        let what = what.to_string();
        move |source| PayloadError::Io { what, source }
    };

    let spool_dir = options.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    let spool_file = tempfile::tempfile_in(&spool_dir).map_err(io(&format!(
        "creating a temporary blob file in {}",
        spool_dir.display()
    )))?;
    let mut spool = Spool {
        file: BufWriter::with_capacity(1 << 20, spool_file),
        len: 0,
    };
    let mut partition_bz2_streams = Vec::new();
    let (part_ops, part_sha) = spool.add(
        &partition_source(source.image, part)?,
        threads,
        partition_bz2.as_deref_mut(),
        &mut partition_bz2_streams,
        progress,
    )?;
    if let Some(out) = partition_bz2 {
        out.flush().map_err(io("writing the partition's .bz2"))?;
    }
    let (kernel_ops, kernel_sha) = spool.add(
        &Source::Memory(source.kernel),
        threads,
        None,
        &mut Vec::new(),
        &mut |_| {},
    )?;
    let blobs_len = spool.len;

    let sig_size = signatures_blob(&[0u8; PAYLOAD_SIGNATURE_LEN]).len() as u64;
    let kernel_procedure_ops = kernel_ops
        .iter()
        .map(operation)
        .collect::<Result<Vec<_>, _>>()?;
    let mut noops: Vec<InstallOperation> = kernel_ops
        .iter()
        .map(|o| noop(&(o.offset..o.offset + o.len), Some(&o.sha256)))
        .collect();
    if u32::try_from(blobs_len + sig_size).is_err() {
        return Err(PayloadError::Input(
            "the payload's data passes 4 GiB, past CrAU's 32-bit data_offset".into(),
        ));
    }
    noops.push(noop(&(blobs_len..blobs_len + sig_size), None));
    let manifest = DeltaArchiveManifest {
        partition_operations: part_ops
            .iter()
            .map(operation)
            .collect::<Result<Vec<_>, _>>()?,
        noop_operations: noops,
        block_size: Some(BLOCK_SIZE as u32),
        signatures_offset: Some(blobs_len),
        signatures_size: Some(sig_size),
        old_partition_info: None,
        new_partition_info: Some(InstallInfo {
            size: Some(part_len),
            hash: Some(part_sha.to_vec()),
        }),
        procedures: vec![InstallProcedure {
            r#type: Some(install_procedure::Type::Kernel as i32),
            operations: kernel_procedure_ops,
            old_info: None,
            new_info: Some(InstallInfo {
                size: Some(source.kernel.len() as u64),
                hash: Some(kernel_sha.to_vec()),
            }),
        }],
        coreos_release: Some(CoreosRelease {
            board: Some(release.board.clone()),
            version: Some(release.version.clone()),
            channel: Some(release.channel.clone()),
        }),
    }
    .encode_to_vec();
    let header = Header {
        manifest_len: manifest.len() as u64,
    };

    let mut signed = Sha256::new();
    let mut emit = |bytes: &[u8], hasher: &mut Sha256| -> Result<(), PayloadError> {
        hasher.update(bytes);
        out.write_all(bytes).map_err(io("writing the payload"))
    };
    emit(&header.encode(), &mut signed)?;
    emit(&manifest, &mut signed)?;
    let mut spool_file = spool.file.into_inner().map_err(|e| PayloadError::Io {
        what: "writing the temporary blob file".into(),
        source: e.into_error(),
    })?;
    spool_file
        .seek(SeekFrom::Start(0))
        .map_err(io("rewinding the temporary blob file"))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut copied = 0u64;
    loop {
        let n = spool_file
            .read(&mut buf)
            .map_err(io("reading the temporary blob file"))?;
        if n == 0 {
            break;
        }
        emit(&buf[..n], &mut signed)?;
        copied += n as u64;
    }
    if copied != blobs_len {
        return Err(PayloadError::Input(format!(
            "the temporary blob file holds {copied} bytes, not {blobs_len}"
        )));
    }
    let mut whole = signed.clone();
    let digest: [u8; 32] = signed.finalize().into();
    let signature = key.sign_sha256(&digest).map_err(PayloadError::Sign)?;
    let sig_blob = signatures_blob(&signature);
    debug_assert_eq!(sig_blob.len() as u64, sig_size);
    emit(&sig_blob, &mut whole)?;
    out.flush().map_err(io("writing the payload"))?;
    Ok(Written {
        len: header.blobs_start() + blobs_len + sig_size,
        manifest_len: header.manifest_len,
        partition_ops: part_ops.len(),
        kernel_ops: kernel_ops.len(),
        sha256: whole.finalize().into(),
        partition_sha256: part_sha,
        partition_bz2_streams,
    })
}
