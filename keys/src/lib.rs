//! OpenPGP signing and verification with rPGP (no gpg binary at run time), and the project's
//! trusted public keys (`keys/*.asc`), embedded at compile time.
//!
//! CONTRACT (the installer and the builder call these):
//! - `KeyRing::embedded()`, `KeyRing::from_armored(&[u8])`
//! - `StreamVerifier::new(&KeyRing, signature_bytes)`, `.update(&[u8])`, `.finish() -> Result<Verified>`
//! - `SecretKey::from_armored(&[u8])`, `sign_detached(&SecretKey, impl Read) -> Result<Vec<u8>>` (binary, as gpg --detach-sign)
//! - `clearsign(&SecretKey, &str) -> Result<String>`, `generate(uid) -> Result<(secret_armored, public_armored)>`
//!
//! - Update payloads (RSA, not OpenPGP): `PayloadSigningKey::{from_file, from_pem, generate,
//!   to_pkcs8_pem, to_pkcs1_pem, public_key, sign_sha256}`,
//!   `PayloadPublicKey::{from_file, from_pem, to_pem, verify_sha256}`
//!
//! Signatures are v4 with SHA-512, made at `SOURCE_DATE_EPOCH` when it is set; Ed25519 and
//! RSA PKCS#1 v1.5 are deterministic, so the same key, data and epoch give the same bytes.

#![forbid(unsafe_code)]

mod error;
mod generate;
mod payload_key;
mod policy;
mod ring;
mod sign;
mod verify;

pub use error::KeyError;
pub use generate::generate;
pub use payload_key::{
    PayloadKeyError, PayloadPublicKey, PayloadSigningKey, PAYLOAD_KEY_BITS, PAYLOAD_SIGNATURE_LEN,
};
pub use ring::KeyRing;
pub use sign::{clearsign, sign_detached, DetachedSigner, SecretKey};
pub use verify::{StreamVerifier, Verified};

/// Upper-case hex, as gpg prints key ids and fingerprints.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
