//! `coreos-update apply` reads a payload from a mirror (hostile input) and checks it before it
//! writes a byte: the CrAU header, the protobuf manifest and its plan (operations, extents,
//! blob offsets, sizes), every blob's SHA-256, the signature block. Any bytes must give an
//! error or a verified payload, never a panic, a hang or an allocation past the format's
//! limits; only a payload the fixed key signed may verify, and then its head parses alone.
#![no_main]
use libfuzzer_sys::fuzz_target;
use payload::PayloadPublicKey;
use std::sync::OnceLock;

/// An RSA-2048 payload key (`PayloadSigningKey::generate`, as `coreos-build keygen` makes it),
/// committed with the seeds it signed. Its private half was not kept: when the payload format
/// changes, replace the key and the seeds together (a new key, and `payload::write_payload`
/// of small partitions: 8 KiB of text, 4 KiB of zeros, 8 KiB of noise, 3 MiB mixed).
const KEY: &str = include_str!("../keys/update-payload-key.pub.pem");

fn key() -> &'static PayloadPublicKey {
    static KEY_: OnceLock<PayloadPublicKey> = OnceLock::new();
    KEY_.get_or_init(|| {
        PayloadPublicKey::from_pem(KEY, "the fuzz payload key").expect("the key parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let head = payload::parse_header_and_manifest(data);
    if let Ok(verified) = payload::verify(data, key()) {
        // What verify vouches for is what the head describes.
        let head = head.expect("a verified payload's header and manifest parse");
        let info = verified.info();
        assert_eq!(info.partition_size, head.plan.partition.size);
        assert_eq!(info.partition_sha256, head.plan.partition.sha256);
        assert_eq!(info.kernel_size, head.plan.kernel.size);
        assert_eq!(info.payload_len, data.len() as u64);
    }
});
