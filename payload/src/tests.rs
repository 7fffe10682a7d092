//! Round trips and refusals of the whole format: write → verify → apply, and every way a
//! payload can be bad, each refused by verify with the error that names it.

use crate::header::{Header, HEADER_LEN};
use crate::update_metadata::{install_operation, DeltaArchiveManifest, Signatures};
use crate::*;
use prost::Message;
use sha2::{Digest, Sha256};
use std::io::Cursor;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

fn key() -> &'static PayloadSigningKey {
    static K: OnceLock<PayloadSigningKey> = OnceLock::new();
    K.get_or_init(|| PayloadSigningKey::generate().unwrap())
}

fn other_key() -> &'static PayloadSigningKey {
    static K: OnceLock<PayloadSigningKey> = OnceLock::new();
    K.get_or_init(|| PayloadSigningKey::generate().unwrap())
}

/// Text-like bytes that bzip2 compresses, varying with `seed`.
fn text(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| b"the quick brown fox jumps "[((i / 5 + seed) % 26) as usize] ^ (i % 7 == 0) as u8)
        .collect()
}

/// Random-looking bytes (splitmix64) that bzip2 cannot shrink (REPLACE).
fn noise(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 56) as u8
        })
        .collect()
}

const PART_START: u64 = 3 << 20;
const PART_LEN: u64 = 6 * CHUNK + 5 * 4096;

/// A sparse "disk image" with a partition at PART_START: text, noise, a hole, explicit zeros.
fn image() -> (tempfile::NamedTempFile, Vec<u8>) {
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file()
        .set_len(PART_START + PART_LEN + (1 << 20))
        .unwrap();
    let mut part = vec![0u8; PART_LEN as usize];
    part[..1_500_000].copy_from_slice(&text(1_500_000, 1));
    part[2 << 20..3 << 20].copy_from_slice(&noise(1 << 20, 7));
    // Chunk 3 stays a hole; chunk 4 is written zeros; the short last chunk holds text.
    let tail = (6 * CHUNK) as usize;
    part[tail + 10..tail + 9000].copy_from_slice(&text(8990, 3));
    f.as_file()
        .write_all_at(&part[..3 << 20], PART_START)
        .unwrap();
    f.as_file()
        .write_all_at(&vec![0u8; 1 << 20], PART_START + (4 << 20))
        .unwrap();
    f.as_file()
        .write_all_at(&part[5 << 20..], PART_START + (5 << 20))
        .unwrap();
    // Bytes around the partition that must not get in.
    f.as_file()
        .write_all_at(&[0xee; 4096], PART_START - 4096)
        .unwrap();
    f.as_file()
        .write_all_at(&[0xee; 4096], PART_START + PART_LEN)
        .unwrap();
    (f, part)
}

fn kernel() -> Vec<u8> {
    let mut k = text(2_500_000, 9);
    k.extend(noise(12_345, 3));
    k
}

fn release() -> Release {
    Release {
        board: "amd64-usr".into(),
        version: "4000.0.0".into(),
        channel: "stable".into(),
    }
}

fn write_with(threads: usize) -> Vec<u8> {
    let (img, _) = image();
    let k = kernel();
    let mut out = Vec::new();
    let src = PayloadSource {
        image: img.as_file(),
        partition: PART_START..PART_START + PART_LEN,
        kernel: &k,
    };
    let opts = WriteOptions {
        threads,
        spool_dir: None,
    };
    let w = write_payload(&src, &release(), key(), &mut out, &opts, &mut |_| {}).unwrap();
    assert_eq!(w.len, out.len() as u64);
    assert_eq!(w.sha256, <[u8; 32]>::from(Sha256::digest(&out)));
    out
}

fn payload() -> &'static [u8] {
    static P: OnceLock<Vec<u8>> = OnceLock::new();
    P.get_or_init(|| write_with(2))
}

fn verify_bytes(bytes: &[u8]) -> Result<Verified, PayloadError> {
    verify(Cursor::new(bytes), &key().public_key())
}

#[test]
fn round_trip_reproduces_partition_and_kernel() {
    let (_, part) = image();
    let v = verify_bytes(payload()).unwrap();
    let info = v.info();
    assert_eq!(info.partition_size, PART_LEN);
    assert_eq!(
        info.partition_sha256,
        <[u8; 32]>::from(Sha256::digest(&part))
    );
    assert_eq!(info.kernel_size, kernel().len() as u64);
    assert_eq!(info.board.as_deref(), Some("amd64-usr"));
    assert_eq!(info.version.as_deref(), Some("4000.0.0"));
    assert_eq!(info.channel.as_deref(), Some("stable"));
    assert_eq!(info.payload_len, payload().len() as u64);

    // Into old content (every byte 0xaa, data extents): none of it may survive, the bytes
    // around the partition stay.
    let dst = tempfile::tempfile().unwrap();
    let at = 1 << 20;
    dst.write_all_at(&vec![0xaa; (PART_LEN + (2 << 20)) as usize], 0)
        .unwrap();
    let mut seen = Vec::new();
    let applied = apply(Cursor::new(payload()), &v, &dst, at, &mut |n| seen.push(n)).unwrap();
    assert_eq!(applied.kernel, kernel());
    let mut back = vec![0u8; (PART_LEN + (2 << 20)) as usize];
    dst.read_exact_at(&mut back, 0).unwrap();
    assert!(back[..at as usize].iter().all(|&b| b == 0xaa));
    assert!(back[(at + PART_LEN) as usize..].iter().all(|&b| b == 0xaa));
    assert!(back[at as usize..(at + PART_LEN) as usize] == part[..]);
    assert_eq!(seen.last(), Some(&PART_LEN));
    assert!(seen.windows(2).all(|w| w[0] < w[1]));

    // Into a sparse file (a fresh USR-B): the zero chunks stay holes.
    let sparse = tempfile::tempfile().unwrap();
    sparse.set_len(PART_LEN).unwrap();
    apply_with_threads(Cursor::new(payload()), &v, &sparse, 0, 1, &mut |_| {}).unwrap();
    let mut back = vec![0u8; PART_LEN as usize];
    sparse.read_exact_at(&mut back, 0).unwrap();
    assert!(back == part);
    let data: u64 = disk::sparse::data_ranges(&sparse)
        .unwrap()
        .iter()
        .map(|r| r.end - r.start)
        .sum();
    assert!(data < PART_LEN, "the zero chunks were written as data");
}

#[test]
fn layout_is_delta_generators() {
    let head = parse_header_and_manifest(payload()).unwrap();
    let m = &head.manifest;
    assert_eq!(m.block_size, Some(4096));
    assert_eq!(m.partition_operations.len(), 7);
    let types: Vec<i32> = m.partition_operations.iter().map(|o| o.r#type).collect();
    let bz = install_operation::Type::ReplaceBz as i32;
    let raw = install_operation::Type::Replace as i32;
    // text, text, noise (REPLACE), hole, zeros, zeros, short text chunk
    assert_eq!(types, [bz, bz, raw, bz, bz, bz, bz]);
    let last = m.partition_operations.last().unwrap();
    assert_eq!(last.dst_extents[0].start_block, Some(6 * 256));
    assert_eq!(last.dst_extents[0].num_blocks, Some(5));
    // The zero chunks share one blob encoding.
    assert_eq!(
        m.partition_operations[3].data_sha256_hash,
        m.partition_operations[4].data_sha256_hash
    );
    let kernel_ops = &m.procedures[0].operations;
    assert_eq!(kernel_ops.len(), 3);
    // Noops: one mirror per kernel op, then the signature op.
    assert_eq!(m.noop_operations.len(), kernel_ops.len() + 1);
    for (noop, op) in m.noop_operations.iter().zip(kernel_ops) {
        assert_eq!(noop.data_offset, op.data_offset);
        assert_eq!(noop.data_sha256_hash, op.data_sha256_hash);
        assert_eq!(noop.dst_extents[0].start_block, Some(u64::MAX));
    }
    let sig_op = m.noop_operations.last().unwrap();
    assert_eq!(sig_op.data_offset.map(u64::from), m.signatures_offset);
    assert_eq!(sig_op.data_length.map(u64::from), m.signatures_size);
    assert_eq!(sig_op.data_sha256_hash, None);
    // The signature blob ends the file.
    let end = HEADER_LEN
        + head.header.manifest_len
        + m.signatures_offset.unwrap()
        + m.signatures_size.unwrap();
    assert_eq!(end, payload().len() as u64);
}

#[test]
fn reproducible_for_any_thread_count() {
    assert!(write_with(1) == payload());
    assert!(write_with(3) == payload());
}

fn flipped(at: usize) -> Vec<u8> {
    let mut p = payload().to_vec();
    p[at] ^= 0x01;
    p
}

fn head() -> PayloadHead {
    parse_header_and_manifest(payload()).unwrap()
}

fn blobs_start() -> usize {
    head().header.blobs_start() as usize
}

#[test]
fn refuses_a_flipped_byte_in_a_blob_naming_the_op_and_range() {
    let h = head();
    let op = &h.plan.ops[1];
    let at = blobs_start() + op.data.start as usize + 10;
    match verify_bytes(&flipped(at)) {
        Err(PayloadError::OpHash { op: name, at: r }) => {
            assert_eq!(name.to_string(), "partition op 1");
            assert!(r.contains(&(at as u64)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn refuses_a_flipped_byte_in_the_manifest() {
    // Every byte of the manifest: an error each time (which one depends on the byte).
    for at in (HEADER_LEN as usize..blobs_start()).step_by(7) {
        assert!(verify_bytes(&flipped(at)).is_err(), "byte {at}");
    }
}

#[test]
fn refuses_a_flipped_byte_in_the_signature() {
    let end = payload().len();
    let e = verify_bytes(&flipped(end - 20)).unwrap_err();
    assert!(matches!(e, PayloadError::Signature(_)), "{e}");
    assert!(e.to_string().contains("does not verify"), "{e}");
}

#[test]
fn refuses_another_keys_signature_naming_the_key() {
    let e = verify(Cursor::new(payload()), &other_key().public_key()).unwrap_err();
    assert!(matches!(e, PayloadError::Signature(_)), "{e}");
}

#[test]
fn refuses_truncation_at_every_part() {
    let len = payload().len();
    for cut in [
        0,
        3,
        19,
        20,
        21,
        blobs_start() - 1,
        blobs_start() + 1000,
        len - 300,
        len - 1,
    ] {
        match verify_bytes(&payload()[..cut]) {
            Err(PayloadError::Truncated { at, needed, .. }) => {
                assert_eq!(at, cut as u64);
                assert!(needed > at);
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn refuses_trailing_garbage() {
    let mut p = payload().to_vec();
    p.extend_from_slice(b"x");
    let e = verify_bytes(&p).unwrap_err();
    assert!(
        matches!(e, PayloadError::TrailingData { at } if at == payload().len() as u64),
        "{e}"
    );
}

#[test]
fn refuses_version_2_and_a_manifest_past_the_end() {
    let mut p = payload().to_vec();
    p[11] = 2;
    assert!(matches!(
        verify_bytes(&p),
        Err(PayloadError::UnsupportedVersion(2))
    ));
    let mut p = payload().to_vec();
    let past = p.len() as u64; // a manifest longer than the file
    p[12..20].copy_from_slice(&past.to_be_bytes());
    let e = verify_bytes(&p).unwrap_err();
    assert!(
        matches!(e, PayloadError::Truncated { at, .. } if at == past),
        "{e}"
    );
    let mut p = payload().to_vec();
    p[12..20].copy_from_slice(&u64::MAX.to_be_bytes());
    assert!(matches!(
        verify_bytes(&p),
        Err(PayloadError::ManifestLength { .. })
    ));
}

/// The payload with its manifest changed by `f`, and signed again: a well-signed but
/// malformed payload, as a buggy or hostile builder would make.
fn resigned(f: impl FnOnce(&mut DeltaArchiveManifest)) -> Vec<u8> {
    let h = head();
    let mut m = h.manifest.clone();
    f(&mut m);
    let manifest = m.encode_to_vec();
    let blobs = &payload()[blobs_start()..];
    let sig_off = m.signatures_offset.unwrap_or(0) as usize;
    let mut out = Header {
        manifest_len: manifest.len() as u64,
    }
    .encode()
    .to_vec();
    out.extend_from_slice(&manifest);
    let signed_blobs = &blobs[..sig_off.min(blobs.len())];
    out.extend_from_slice(signed_blobs);
    let digest: [u8; 32] = Sha256::digest(&out).into();
    let sig = key().sign_sha256(&digest).unwrap();
    out.extend(
        Signatures {
            signatures: vec![update_metadata::signatures::Signature {
                version: Some(2),
                data: Some(sig.to_vec()),
            }],
        }
        .encode_to_vec(),
    );
    out
}

fn manifest_error(p: &[u8]) -> String {
    match verify_bytes(p) {
        Err(PayloadError::Manifest(m)) => m,
        other => panic!("{other:?}"),
    }
}

#[test]
fn resigning_unchanged_gives_the_same_payload() {
    assert!(resigned(|_| {}) == payload());
}

#[test]
fn refuses_signed_payloads_that_are_not_full_in_order_updates() {
    let e = manifest_error(&resigned(|m| {
        m.partition_operations[2].r#type = install_operation::Type::Move as i32
    }));
    assert!(e.contains("partition op 2") && e.contains("Move"), "{e}");
    let e = manifest_error(&resigned(|m| {
        m.partition_operations[3].dst_extents[0].start_block = Some(0)
    }));
    assert!(
        e.contains("partition op 3") && e.contains("at block 0"),
        "{e}"
    );
    let e = manifest_error(&resigned(|m| {
        m.partition_operations.pop();
    }));
    assert!(e.contains("keep old content"), "{e}");
    let e = manifest_error(&resigned(|m| {
        m.partition_operations.swap(0, 1);
    }));
    assert!(e.contains("partition op 0"), "{e}");
    let e = manifest_error(&resigned(|m| m.procedures.clear()));
    assert!(e.contains("KERNEL"), "{e}");
    let e = manifest_error(&resigned(|m| {
        m.new_partition_info.as_mut().unwrap().size = Some(PART_LEN + 4096)
    }));
    assert!(e.contains("keep old content"), "{e}");
    let e = manifest_error(&resigned(|m| {
        m.partition_operations[0].data_sha256_hash = None
    }));
    assert!(
        e.contains("partition op 0") && e.contains("data_sha256_hash"),
        "{e}"
    );
    let e = manifest_error(&resigned(|m| {
        m.noop_operations[0].dst_extents[0].start_block = Some(0)
    }));
    assert!(e.contains("noop op 0"), "{e}");
}

/// The payload's head with its manifest changed by `f` and not signed again: what the
/// fuzzing entry point and verify see before any signature is checked.
fn unsigned_head(f: impl FnOnce(&mut DeltaArchiveManifest)) -> Vec<u8> {
    let mut m = head().manifest;
    f(&mut m);
    let manifest = m.encode_to_vec();
    let mut out = Header {
        manifest_len: manifest.len() as u64,
    }
    .encode()
    .to_vec();
    out.extend_from_slice(&manifest);
    out
}

#[test]
fn refuses_an_extent_whose_end_is_no_byte_offset() {
    // 2^52 blocks pass `start + num` but not `* 4096`; 2^64 - 1 fails the sum itself. Either
    // wrapped or panicked before the checked product, depending on the build.
    for num in [1u64 << 52, (1 << 60) + 3, u64::MAX] {
        let p = unsigned_head(|m| {
            let last = m.partition_operations.last_mut().unwrap();
            last.dst_extents[0].num_blocks = Some(num);
        });
        let last = head().manifest.partition_operations.len() - 1;
        let start = head().manifest.partition_operations[last].dst_extents[0]
            .start_block
            .unwrap();
        match parse_header_and_manifest(&p) {
            Err(PayloadError::ExtentOutOfRange {
                op,
                start_block,
                num_blocks,
            }) => {
                assert_eq!(op.to_string(), format!("partition op {last}"));
                assert_eq!((start_block, num_blocks), (start, num));
            }
            other => panic!("{num} blocks: {other:?}"),
        }
    }
    // The same manifest, signed, is refused by verify with the same error.
    let p = resigned(|m| m.procedures[0].operations[0].dst_extents[0].num_blocks = Some(1 << 53));
    let e = verify_bytes(&p).unwrap_err();
    assert!(
        matches!(e, PayloadError::ExtentOutOfRange { num_blocks, .. } if num_blocks == 1 << 53),
        "{e:?}"
    );
    assert!(e.to_string().contains("kernel op 0"), "{e}");
}

#[test]
fn accepts_delta_generators_whole_chunk_extent_on_a_short_last_chunk() {
    let p = resigned(|m| {
        let last = m.procedures[0].operations.last_mut().unwrap();
        last.dst_extents[0].num_blocks = Some(256);
        let last = m.partition_operations.last_mut().unwrap();
        last.dst_extents[0].num_blocks = Some(256);
    });
    let v = verify_bytes(&p).unwrap();
    let dst = tempfile::tempfile().unwrap();
    dst.set_len(PART_LEN).unwrap();
    let a = apply(Cursor::new(&p), &v, &dst, 0, &mut |_| {}).unwrap();
    assert_eq!(a.kernel, kernel());
}

#[test]
fn apply_refuses_a_payload_changed_since_verify() {
    let v = verify_bytes(payload()).unwrap();
    let h = head();
    let at = blobs_start() + h.plan.ops[5].data.start as usize;
    let dst = tempfile::tempfile().unwrap();
    dst.set_len(PART_LEN).unwrap();
    let e = apply(Cursor::new(flipped(at)), &v, &dst, 0, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&e, PayloadError::Changed(m) if m.contains("partition op 5")),
        "{e}"
    );
    // A changed manifest is noticed before anything is written.
    let fresh = tempfile::tempfile().unwrap();
    fresh.set_len(PART_LEN).unwrap();
    let e = apply(Cursor::new(flipped(30)), &v, &fresh, 0, &mut |_| {}).unwrap_err();
    assert!(matches!(e, PayloadError::Changed(_)), "{e}");
    assert!(disk::sparse::data_ranges(&fresh).unwrap().is_empty());
}

#[test]
fn apply_refuses_a_destination_too_small() {
    let v = verify_bytes(payload()).unwrap();
    let dst = tempfile::tempfile().unwrap();
    dst.set_len(PART_LEN + 100).unwrap();
    let e = apply(Cursor::new(payload()), &v, &dst, 4096, &mut |_| {}).unwrap_err();
    assert!(matches!(e, PayloadError::DestinationTooSmall { .. }), "{e}");
    assert_eq!(dst.metadata().unwrap().len(), PART_LEN + 100);
}

#[test]
fn writer_refuses_bad_input_before_writing() {
    let (img, _) = image();
    let k = kernel();
    let mut out = Vec::new();
    for (range, kernel, want) in [
        (PART_START..PART_START + 1000, &k[..], "multiple of 4096"),
        (PART_START..PART_START + (64 << 20), &k[..], "past the end"),
        (PART_START..PART_START + 4096, &[][..], "kernel is empty"),
    ] {
        let src = PayloadSource {
            image: img.as_file(),
            partition: range,
            kernel,
        };
        let e = write_payload(
            &src,
            &release(),
            key(),
            &mut out,
            &WriteOptions::default(),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
        assert!(out.is_empty());
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]
    #[test]
    fn parsing_mutated_heads_never_panics(
        at in 0usize..4096, byte in 0u8..=255, cut in 0usize..8192
    ) {
        let head_len = blobs_start();
        let mut p = payload()[..head_len.min(8192)].to_vec();
        let i = at % p.len();
        p[i] = byte;
        p.truncate(cut.max(1).min(p.len()));
        let _ = parse_header_and_manifest(&p);
    }

    #[test]
    fn parsing_noise_never_panics(bytes in proptest::collection::vec(0u8..=255, 0..512)) {
        let mut p = b"CrAU\0\0\0\0\0\0\0\x01".to_vec();
        p.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        p.extend_from_slice(&bytes);
        let _ = parse_header_and_manifest(&p);
    }
}

#[test]
fn partition_bz2_is_the_payloads_streams_and_decodes_to_the_partition() {
    use std::io::Read;
    let (img, part) = image();
    let k = kernel();
    let src = PayloadSource {
        image: img.as_file(),
        partition: PART_START..PART_START + PART_LEN,
        kernel: &k,
    };
    let (mut p, mut bz2) = (Vec::new(), Vec::new());
    let opts = WriteOptions::default();
    let written = write_payload_and_partition_bz2(
        &src,
        &release(),
        key(),
        &mut p,
        &mut bz2,
        &opts,
        &mut |_| {},
    )
    .unwrap();
    assert!(
        p == payload(),
        "the .bz2 by-product changes nothing in the payload"
    );
    let mut alone = Vec::new();
    let streams = write_partition_bz2(
        src.image,
        src.partition.clone(),
        &mut alone,
        &opts,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(streams.iter().sum::<u64>(), alone.len() as u64);
    assert_eq!(streams, written.partition_bz2_streams);
    assert_eq!(streams.len() as u64, PART_LEN.div_ceil(CHUNK));
    assert!(alone == bz2);
    // Each stream alone decodes to its 1 MiB of the partition (what a splice relies on).
    let mut at = 0usize;
    for (i, len) in streams.iter().enumerate() {
        let mut one = Vec::new();
        bzip2::read::BzDecoder::new(&bz2[at..at + *len as usize])
            .read_to_end(&mut one)
            .unwrap();
        let start = i * CHUNK as usize;
        assert!(one == part[start..(start + CHUNK as usize).min(part.len())]);
        at += *len as usize;
    }
    let mut out = Vec::new();
    bzip2::read::MultiBzDecoder::new(&bz2[..])
        .read_to_end(&mut out)
        .unwrap();
    assert!(out == part);
}
