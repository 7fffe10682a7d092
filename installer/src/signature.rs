//! Streaming check of a detached OpenPGP signature over the compressed image.
//!
//! STOPGAP: the contract puts this in `keys::StreamVerifier`, which is not built yet on this
//! branch; this is the same shape (`new(&ring, sig)`, `update`, `finish`) over rPGP so the
//! installer works and is tested now. Swap to `keys::{KeyRing, StreamVerifier}` when it lands.
//! Hashing is incremental: the signature's hash context is fed chunk by chunk, never buffered.

use anyhow::{anyhow, bail, Context, Result};
use pgp::composed::{Deserializable, DetachedSignature, PublicOrSecret, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{Signature, SignatureType};
use pgp::types::VerifyingKey;
use std::io::Cursor;

/// The keys a signature may come from.
pub struct KeyRing {
    keys: Vec<SignedPublicKey>,
}

impl KeyRing {
    /// Keys built into the binary (`keys/*.asc`, via the keys crate once it lands).
    pub fn embedded() -> Result<Self> {
        bail!("no signing keys are built into this coreos-install yet; pass the release key with -k KEYFILE")
    }

    /// Armored or binary public (or secret) keys.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (iter, _) = PublicOrSecret::from_reader_many(Cursor::new(bytes.to_vec()))
            .map_err(|e| anyhow!("{e}"))?;
        let mut keys = Vec::new();
        for k in iter {
            keys.push(match k.map_err(|e| anyhow!("{e}"))? {
                PublicOrSecret::Public(p) => p,
                PublicOrSecret::Secret(s) => s.to_public_key(),
            });
        }
        if keys.is_empty() {
            bail!("no OpenPGP public key in it");
        }
        Ok(KeyRing { keys })
    }
}

pub struct StreamVerifier {
    keys: Vec<SignedPublicKey>,
    sig: Signature,
    hasher: Box<dyn sha2::digest::DynDigest + Send>,
    hash_alg: HashAlgorithm,
}

impl StreamVerifier {
    /// `sig` is a detached signature, binary (gpg --detach-sign) or armored.
    pub fn new(ring: &KeyRing, sig: &[u8]) -> Result<Self> {
        let parsed = if sig.starts_with(b"-----BEGIN") {
            DetachedSignature::from_armor_single(Cursor::new(sig)).map(|(s, _)| s)
        } else {
            DetachedSignature::from_bytes(Cursor::new(sig))
        }
        .map_err(|e| anyhow!("not an OpenPGP detached signature: {e}"))?;
        let sig = parsed.signature;
        if sig.typ() != Some(SignatureType::Binary) {
            bail!(
                "signature type {:?} is not a binary document signature",
                sig.typ()
            );
        }
        let config = sig
            .config()
            .ok_or_else(|| anyhow!("unsupported signature version"))?;
        let hash_alg = config.hash_alg;
        let mut hasher = hash_alg.new_hasher().map_err(|e| anyhow!("{e}"))?;
        if let pgp::packet::SignatureVersionSpecific::V6 { salt } = &config.version_specific {
            hasher.update(salt.as_ref());
        }
        Ok(StreamVerifier {
            keys: ring.keys.clone(),
            sig,
            hasher,
            hash_alg,
        })
    }

    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    /// Ok when one of the ring's keys (primary or subkey) made the signature over every byte fed.
    pub fn finish(self) -> Result<()> {
        let StreamVerifier {
            keys,
            sig,
            mut hasher,
            hash_alg,
        } = self;
        let config = sig.config().expect("checked in new");
        let len = config
            .hash_signature_data(&mut hasher)
            .map_err(|e| anyhow!("{e}"))?;
        hasher.update(&config.trailer(len).map_err(|e| anyhow!("{e}"))?);
        let hash = hasher.finalize();
        if sig.signed_hash_value() != Some([hash[0], hash[1]]) {
            bail!("BAD signature: the data does not match it (hash prefix differs)");
        }
        let bytes = sig
            .signature()
            .context("signature has no signature bytes")?;
        for key in &keys {
            if key.verify(hash_alg, &hash, bytes).is_ok() {
                return Ok(());
            }
            for sub in &key.public_subkeys {
                if sub.verify(hash_alg, &hash, bytes).is_ok() {
                    return Ok(());
                }
            }
        }
        bail!(
            "BAD signature: not made by any trusted key ({} key(s) tried)",
            keys.len()
        )
    }
}
