//! The signature check is the keys crate's (`KeyRing`, `StreamVerifier`): rPGP, incremental
//! hashing, no gpg binary at run time.

pub use keys::{KeyRing, StreamVerifier};
