//! The CrAU manifest messages (proto2), written by hand with `prost` (no protoc at build time).
//!
//! Field numbers and types follow Flatcar's `src/update_engine/update_metadata.proto`
//! (flatcar/update_engine @ 73826410, unchanged from coreos/update_engine @ b0a992ac). prost
//! encodes fields in tag order, as protoc's C++ does, so the bytes are reproducible.
//!
//! One addition: [`DeltaArchiveManifest::coreos_release`] at field [`COREOS_RELEASE_FIELD`].
//! CrAU has no board or version field (Omaha carries them beside the payload), but an updater
//! given a file must be able to refuse "a payload for another board". proto2 parsers keep
//! unknown fields and ignore them (update_engine's C++ protobuf, ue-rs's rust-protobuf), so
//! the field is invisible to them; it sits far above upstream's numbers (1–10) so that a
//! future upstream field cannot collide with it.

/// The field number of [`CoreosRelease`] in the manifest (ours, not upstream's).
pub const COREOS_RELEASE_FIELD: u32 = 1000;

/// `Extent.start_block` of an operation that writes nowhere ("sparse hole"): the noop
/// operations that old clients skip over.
pub const SPARSE_HOLE: u64 = u64::MAX;

/// `InstallOperation`: one step that writes `dst_extents` from a data blob.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstallOperation {
    #[prost(enumeration = "install_operation::Type", required, tag = "1")]
    pub r#type: i32,
    /// Offset of the blob from the start of the blob area (byte 20 + manifest length).
    #[prost(uint32, optional, tag = "2")]
    pub data_offset: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    pub data_length: Option<u32>,
    #[prost(message, repeated, tag = "4")]
    pub src_extents: Vec<Extent>,
    #[prost(uint64, optional, tag = "5")]
    pub src_length: Option<u64>,
    #[prost(message, repeated, tag = "6")]
    pub dst_extents: Vec<Extent>,
    #[prost(uint64, optional, tag = "7")]
    pub dst_length: Option<u64>,
    /// SHA-256 of the blob; clients refuse an operation with data but no hash.
    #[prost(bytes = "vec", optional, tag = "8")]
    pub data_sha256_hash: Option<Vec<u8>>,
}

pub mod install_operation {
    /// `InstallOperation.Type`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum Type {
        /// The blob, written as is.
        Replace = 0,
        /// The blob is one bzip2 stream; its output is written.
        ReplaceBz = 1,
        /// Copy `src_extents` to `dst_extents` (delta payloads only).
        Move = 2,
        /// bspatch of `src_extents` (delta payloads only).
        Bsdiff = 3,
    }
}

/// `Extent`: `num_blocks` blocks of `block_size` bytes from `start_block`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Extent {
    #[prost(uint64, optional, tag = "1")]
    pub start_block: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    pub num_blocks: Option<u64>,
}

/// `Signatures`: the blob at `signatures_offset`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Signatures {
    #[prost(message, repeated, tag = "1")]
    pub signatures: Vec<signatures::Signature>,
}

pub mod signatures {
    /// `Signatures.Signature`: clients verify the one with `version == 2`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Signature {
        #[prost(uint32, optional, tag = "1")]
        pub version: Option<u32>,
        #[prost(bytes = "vec", optional, tag = "2")]
        pub data: Option<Vec<u8>>,
    }
}

/// `InstallInfo`: size and SHA-256 of a whole target (partition or file).
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstallInfo {
    #[prost(uint64, optional, tag = "1")]
    pub size: Option<u64>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub hash: Option<Vec<u8>>,
}

/// `InstallProcedure`: the operations for one file other than the partition (the kernel).
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstallProcedure {
    #[prost(enumeration = "install_procedure::Type", optional, tag = "1")]
    pub r#type: Option<i32>,
    #[prost(message, repeated, tag = "2")]
    pub operations: Vec<InstallOperation>,
    #[prost(message, optional, tag = "3")]
    pub old_info: Option<InstallInfo>,
    #[prost(message, optional, tag = "4")]
    pub new_info: Option<InstallInfo>,
}

pub mod install_procedure {
    /// `InstallProcedure.Type`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum Type {
        /// The kernel, written to `/boot/coreos/vmlinuz-a|b` by the client.
        Kernel = 0,
        PcrPolicy = 1,
    }
}

/// `DeltaArchiveManifest`: everything before the blobs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeltaArchiveManifest {
    #[prost(message, repeated, tag = "1")]
    pub partition_operations: Vec<InstallOperation>,
    /// For pre-2015 clients: REPLACE ops into [`SPARSE_HOLE`] covering the procedures' blobs
    /// and, last, the signature blob.
    #[prost(message, repeated, tag = "2")]
    pub noop_operations: Vec<InstallOperation>,
    #[prost(uint32, optional, tag = "3", default = "4096")]
    pub block_size: Option<u32>,
    #[prost(uint64, optional, tag = "4")]
    pub signatures_offset: Option<u64>,
    #[prost(uint64, optional, tag = "5")]
    pub signatures_size: Option<u64>,
    #[prost(message, optional, tag = "8")]
    pub old_partition_info: Option<InstallInfo>,
    #[prost(message, optional, tag = "9")]
    pub new_partition_info: Option<InstallInfo>,
    #[prost(message, repeated, tag = "10")]
    pub procedures: Vec<InstallProcedure>,
    /// Ours (see the module documentation); unknown to update_engine and ue-rs.
    #[prost(message, optional, tag = "1000")]
    pub coreos_release: Option<CoreosRelease>,
}

/// What the payload is a release of: the updater refuses another board's payload.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct CoreosRelease {
    /// e.g. `amd64-usr`.
    #[prost(string, optional, tag = "1")]
    pub board: Option<String>,
    /// X.Y.Z, as in `/usr/share/coreos/release`.
    #[prost(string, optional, tag = "2")]
    pub version: Option<String>,
    /// The release channel (GROUP), e.g. `stable`; may be empty.
    #[prost(string, optional, tag = "3")]
    pub channel: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn encodes_in_tag_order_with_the_upstream_numbers() {
        let m = DeltaArchiveManifest {
            block_size: Some(4096),
            signatures_offset: Some(5),
            coreos_release: Some(CoreosRelease {
                board: Some("b".into()),
                ..Default::default()
            }),
            partition_operations: vec![InstallOperation {
                r#type: install_operation::Type::ReplaceBz as i32,
                data_offset: Some(0),
                ..Default::default()
            }],
            ..Default::default()
        };
        let bytes = m.encode_to_vec();
        // field 1 (len), field 3 varint 4096, field 4 varint 5, field 1000 (len: tag 0xc2 0x3e).
        assert_eq!(
            bytes,
            [
                0x0a, 0x04, 0x08, 0x01, 0x10,
                0x00, // partition_operations {type 1, data_offset 0}
                0x18, 0x80, 0x20, // block_size 4096
                0x20, 0x05, // signatures_offset 5
                0xc2, 0x3e, 0x03, 0x0a, 0x01, b'b', // 1000 { board "b" }
            ]
        );
        assert_eq!(DeltaArchiveManifest::decode(&bytes[..]).unwrap(), m);
    }
}
