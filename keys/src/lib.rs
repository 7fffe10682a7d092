//! OpenPGP signing and verification with rPGP (no gpg binary at run time), and the project's
//! trusted public keys (`keys/*.asc`), embedded at compile time.
//!
//! CONTRACT (the installer and the builder call these):
//! - `KeyRing::embedded()`, `KeyRing::from_armored(&[u8])`
//! - `StreamVerifier::new(&KeyRing, signature_bytes)`, `.update(&[u8])`, `.finish() -> Result<Verified>`
//! - `SecretKey::from_armored(&[u8])`, `sign_detached(&SecretKey, impl Read) -> Vec<u8>` (binary, as gpg --detach-sign)
//! - `clearsign(&SecretKey, &str) -> String`, `generate(uid) -> (secret_armored, public_armored)`
