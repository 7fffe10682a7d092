//! The parallel bzip2 decoder (stream splitter, worker pool, one-core fallback for long
//! streams) against the reference: libbzip2's multi-stream decoder (the `bzip2` crate). When
//! the reference decodes the input whole, ours must give the same bytes; when ours succeeds,
//! the reference must agree.
#![no_main]
use coreos_install::decompress::{decompress_all, Piece};
use libfuzzer_sys::fuzz_target;
use std::io::Read;

/// Outputs beyond this are not compared (bounded memory per input).
const LIMIT: u64 = 64 << 20;

fuzz_target!(|data: &[u8]| {
    if !(data.len() >= 4 && data.starts_with(b"BZh") && (b'1'..=b'9').contains(&data[3])) {
        return;
    }
    let mut ours = Vec::new();
    let got = decompress_all(
        std::io::Cursor::new(data.to_vec()),
        "fuzz.bz2",
        LIMIT,
        |p| match p {
            Piece::Data(d) => ours.extend_from_slice(&d),
            Piece::Zeros(n) => ours.resize(ours.len() + n as usize, 0),
        },
    );
    let mut reference = Vec::new();
    let want = bzip2::read::MultiBzDecoder::new(data)
        .take(LIMIT + 1)
        .read_to_end(&mut reference);
    if reference.len() as u64 > LIMIT {
        return;
    }
    match (got, want) {
        (Ok(_), Ok(_)) => assert!(ours == reference, "outputs differ"),
        (Ok(_), Err(e)) => panic!("ours decoded what libbzip2 refuses: {e}"),
        (Err(e), Ok(_)) => panic!("libbzip2 decoded what ours refuses: {e:#}"),
        (Err(_), Err(_)) => {}
    }
});
