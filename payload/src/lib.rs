//! The CrAU update payload, as update_engine (CoreOS, Flatcar) and Flatcar's ue-rs read it:
//! a 20-byte header (`header`), a protobuf manifest (`update_metadata`), data blobs, and an
//! RSA signature blob. This crate writes full payloads as `delta_generator` does (`write`),
//! and reads them for an updater that must never write a byte before the payload is proven
//! good:
//!
//! 1. [`verify`] reads the whole payload once and checks the header, the manifest's layout
//!    (`plan`), every blob's SHA-256 and the RSA signature. It writes nothing.
//! 2. [`apply`] reads it again, checks every blob once more against the verified manifest,
//!    decodes on every core, writes the partition into the destination, and checks the
//!    written partition's and the kernel's SHA-256 against the manifest. An error part way
//!    leaves the destination partly written: the slot is usable only when `apply` returned
//!    Ok (it has `fdatasync`ed by then), so the updater marks it bootable after that alone.
//!
//! Only full payloads are read (REPLACE and REPLACE_BZ operations that write their target
//! once, front to back, as `delta_generator` makes them); delta operations are refused.
//!
//! CONTRACT (the updater codes against these; they stay):
//! - `verify(reader, &PayloadPublicKey) -> Result<Verified, PayloadError>`,
//!   `Verified::info() -> &PayloadInfo`
//! - `apply(reader, &Verified, dst: &File, dst_offset, progress) -> Result<Applied { kernel }>`
//! - `parse_header_and_manifest(&[u8])` (fuzzing); the builder's `write_payload(..)`,
//!   `write_payload_and_partition_bz2(..)`, `write_partition_bz2(..)`

mod apply;
#[cfg(feature = "write")]
mod chunks;
mod error;
pub mod header;
mod plan;
mod stream;
pub mod update_metadata;
mod verify;
#[cfg(feature = "write")]
mod write;
mod zeros;

pub use apply::{apply, apply_with_threads, Applied};
#[cfg(feature = "write")]
pub use chunks::CHUNK;
pub use error::{OpName, PayloadError, Target};
pub use keys::{PayloadPublicKey, PayloadSigningKey};
pub use plan::{
    parse_header_and_manifest, OpKind, PayloadHead, Plan, PlannedOp, TargetInfo, BLOCK_SIZE,
};
pub use verify::{verify, verify_with_progress, PayloadInfo, Verified, SIGNATURE_VERSION};
#[cfg(feature = "write")]
pub use write::{
    write_partition_bz2, write_payload, write_payload_and_partition_bz2, PayloadSource, Release,
    WriteOptions, Written,
};

#[cfg(all(test, feature = "write"))]
mod tests;
