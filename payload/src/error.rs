//! What can go wrong with a payload, each naming the problem and where (byte offsets in the
//! payload file, the operation, the key).

use std::ops::Range;

/// An operation by its place in the manifest, as errors name it: `partition op 12`,
/// `kernel op 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpName {
    pub target: Target,
    pub index: usize,
}

/// What an operation writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Partition,
    Kernel,
}

impl std::fmt::Display for OpName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = match self.target {
            Target::Partition => "partition",
            Target::Kernel => "kernel",
        };
        write!(f, "{t} op {}", self.index)
    }
}

fn range(r: &Range<u64>) -> String {
    format!("bytes {}..{}", r.start, r.end)
}

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("reading the payload at byte {at}: {source}")]
    Read { at: u64, source: std::io::Error },
    #[error("payload truncated at byte {at}: {what} needs bytes up to {needed}")]
    Truncated { at: u64, needed: u64, what: String },
    #[error("not a CrAU update payload: the first bytes are {found:02x?}, not \"CrAU\"")]
    BadMagic { found: [u8; 4] },
    #[error("unsupported CrAU file format version {0} (bytes 4..12); only version 1 exists")]
    UnsupportedVersion(u64),
    #[error("manifest length {len} (bytes 12..20) is {why}")]
    ManifestLength { len: u64, why: String },
    #[error("the manifest (bytes 20..{end}) does not decode: {source}")]
    ManifestDecode {
        end: u64,
        source: prost::DecodeError,
    },
    #[error("bad manifest: {0}")]
    Manifest(String),
    #[error("bad manifest: {op}: extent of {num_blocks} blocks at block {start_block} ends past the last byte offset a u64 can hold")]
    ExtentOutOfRange {
        op: OpName,
        start_block: u64,
        num_blocks: u64,
    },
    #[error("{op}: the SHA-256 of its data ({}) does not match the manifest", range(.at))]
    OpHash { op: OpName, at: Range<u64> },
    #[error("the signature blob ({}) does not decode: {source}", range(.at))]
    SignatureDecode {
        at: Range<u64>,
        source: prost::DecodeError,
    },
    #[error("the payload holds no version-2 signature (found versions {found:?}); it was not signed for update_engine")]
    NoSignature { found: Vec<u32> },
    #[error("the payload's {0}")]
    Signature(#[source] keys::PayloadKeyError),
    #[error("trailing data after the signature blob, from byte {at}")]
    TrailingData { at: u64 },
    #[error("the payload changed since it was verified: {0}")]
    Changed(String),
    #[error("{op}: its data ({}) {why}", range(.at))]
    Decode {
        op: OpName,
        at: Range<u64>,
        why: String,
    },
    #[error("the written {what} has SHA-256 {got}, the manifest says {want}")]
    ResultHash {
        what: &'static str,
        got: String,
        want: String,
    },
    #[error("the destination is {have} bytes; the partition needs bytes {offset}..{end}")]
    DestinationTooSmall { have: u64, offset: u64, end: u64 },
    #[error("writing {what} at byte {at} of the destination: {source}")]
    Write {
        what: &'static str,
        at: u64,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("cannot make the payload: {0}")]
    Input(String),
    #[error("signing the payload: {0}")]
    Sign(#[source] keys::PayloadKeyError),
}
