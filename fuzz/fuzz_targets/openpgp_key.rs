//! A key file given with -k (or embedded): parsing, then the policy over its self-signatures
//! (bindings, back-signatures, revocations, expiry) that decides which component keys count.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ring) = keys::KeyRing::from_armored(data) {
        let _ = ring.describe();
        let _ = ring.fingerprints();
    }
});
