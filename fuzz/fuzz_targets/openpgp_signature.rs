//! A detached signature from a mirror (hostile input) against a fixed trusted key: parsing,
//! issuer matching, the policy checks and the verification itself. Only a signature the key
//! really made over "fuzz" may verify.
#![no_main]
use keys::{KeyRing, StreamVerifier};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// gpg-made keys (Ed25519 and RSA 2048), committed with the seeds.
const TRUSTED: &[u8] = include_bytes!("../keys/trusted.asc");

fn ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| KeyRing::from_armored(TRUSTED).expect("the fuzz key parses"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(mut v) = StreamVerifier::new(ring(), data) {
        v.update(b"fuzz");
        let _ = v.finish();
    }
});
