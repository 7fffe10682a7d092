//! Inputs for the decompressors' unit tests.

use super::Compressed;
use crate::verify::VerifyingTee;
use std::io::{BufReader, Cursor, Read, Write};

/// One bzip2 stream holding `data`.
pub fn bz(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `bytes` as the compressed side of the pipeline (no signature check).
pub fn src(bytes: Vec<u8>) -> Compressed {
    BufReader::new(VerifyingTee::new(
        Box::new(Cursor::new(bytes)) as Box<dyn Read + Send>,
        None,
    ))
}
