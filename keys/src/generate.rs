//! New signing key pairs.

use crate::KeyError;
use pgp::composed::{ArmorOptions, KeyType, SecretKeyParamsBuilder};
use pgp::crypto::hash::HashAlgorithm;

/// A fresh v4 Ed25519 ("EdDSA legacy") primary key that certifies and signs, with `uid`.
/// gpg 2.2 (Debian bookworm) imports and verifies it; signing is fast and deterministic.
/// Returns (secret key armored, public key armored).
pub fn generate(uid: &str) -> Result<(String, String), KeyError> {
    let mut params = SecretKeyParamsBuilder::default();
    params
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(true)
        .primary_user_id(uid.to_string())
        .preferred_hash_algorithms(
            [HashAlgorithm::Sha512, HashAlgorithm::Sha256]
                .into_iter()
                .collect(),
        );
    let params = params
        .build()
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    let key = params
        .generate(rand::thread_rng())
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    let secret = key
        .to_armored_string(ArmorOptions::default())
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    let public = key
        .to_public_key()
        .to_armored_string(ArmorOptions::default())
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    Ok((secret, public))
}
