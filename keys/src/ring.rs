//! A set of trusted public keys and the component keys (primaries and signing subkeys) that
//! may have made a data signature.

use crate::{hex, KeyError};
use pgp::composed::{Deserializable, SignedPublicKey};
use pgp::packet::{PublicKey, PublicSubkey};
use pgp::types::{KeyDetails, VerifyingKey};

/// The trusted public keys a signature must come from.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: Vec<SignedPublicKey>,
}

/// One key that can verify data signatures: a primary key or a subkey whose binding (checked
/// against its primary) grants signing.
#[derive(Debug, Clone)]
pub(crate) enum Signer {
    Primary(PublicKey),
    Subkey(PublicSubkey),
}

impl Signer {
    pub(crate) fn as_verifying(&self) -> &dyn VerifyingKeyDyn {
        match self {
            Signer::Primary(k) => k,
            Signer::Subkey(k) => k,
        }
    }
}

/// `VerifyingKey` is not object safe through `impl Trait` arguments; this narrows it to what we use.
pub(crate) trait VerifyingKeyDyn {
    fn verify_hash(
        &self,
        alg: pgp::crypto::hash::HashAlgorithm,
        hash: &[u8],
        sig: &pgp::types::SignatureBytes,
    ) -> pgp::errors::Result<()>;
    fn key_id(&self) -> Vec<u8>;
    fn fingerprint_bytes(&self) -> Vec<u8>;
}

impl<T: VerifyingKey> VerifyingKeyDyn for T {
    fn verify_hash(
        &self,
        alg: pgp::crypto::hash::HashAlgorithm,
        hash: &[u8],
        sig: &pgp::types::SignatureBytes,
    ) -> pgp::errors::Result<()> {
        self.verify(alg, hash, sig)
    }
    fn key_id(&self) -> Vec<u8> {
        self.legacy_key_id().as_ref().to_vec()
    }
    fn fingerprint_bytes(&self) -> Vec<u8> {
        self.fingerprint().as_bytes().to_vec()
    }
}

include!(concat!(env!("OUT_DIR"), "/embedded_keys.rs"));

impl KeyRing {
    /// Every `keys/*.asc` of this repository, embedded at compile time (possibly none).
    pub fn embedded() -> Result<KeyRing, KeyError> {
        let mut ring = KeyRing::default();
        for (name, bytes) in EMBEDDED_KEYS {
            ring.extend(KeyRing::parse(bytes, &format!("keys/{name}"))?);
        }
        Ok(ring)
    }

    /// Public keys from armored or binary OpenPGP data (one or several keys).
    pub fn from_armored(bytes: &[u8]) -> Result<KeyRing, KeyError> {
        KeyRing::parse(bytes, "(key data)")
    }

    /// Public keys from a file (armored or binary); errors name the file.
    pub fn from_file(path: &std::path::Path) -> Result<KeyRing, KeyError> {
        let what = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| KeyError::UnparsableKey {
            what: what.clone(),
            source: pgp::errors::Error::from(e),
        })?;
        KeyRing::parse(&bytes, &what)
    }

    fn parse(bytes: &[u8], what: &str) -> Result<KeyRing, KeyError> {
        let err = |source| KeyError::UnparsableKey {
            what: what.to_string(),
            source,
        };
        let (iter, _) = SignedPublicKey::from_reader_many(bytes).map_err(err)?;
        let keys = iter.collect::<Result<Vec<_>, _>>().map_err(err)?;
        if keys.is_empty() {
            return Err(KeyError::NoKeyInFile {
                what: what.to_string(),
                kind: "public",
            });
        }
        Ok(KeyRing { keys })
    }

    pub fn extend(&mut self, other: KeyRing) {
        self.keys.extend(other.keys);
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Primary key fingerprints, upper-case hex, for messages.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| hex(k.primary_key.fingerprint().as_bytes()))
            .collect()
    }

    /// Component keys whose legacy key id is `key_id` (8 bytes) or whose fingerprint is `fpr`.
    pub(crate) fn signers_matching(&self, key_ids: &[Vec<u8>], fprs: &[Vec<u8>]) -> Vec<Signer> {
        let hit = |k: &dyn VerifyingKeyDyn| {
            key_ids.contains(&k.key_id()) || fprs.contains(&k.fingerprint_bytes())
        };
        let mut out = Vec::new();
        for key in &self.keys {
            if hit(&key.primary_key) {
                out.push(Signer::Primary(key.primary_key.clone()));
            }
            for sub in &key.public_subkeys {
                if !hit(&sub.key) {
                    continue;
                }
                // A subkey speaks for its primary only through a valid binding that allows signing.
                let binds = sub.signatures.iter().any(|s| s.key_flags().sign())
                    && sub.verify_bindings(&key.primary_key).is_ok();
                if binds {
                    out.push(Signer::Subkey(sub.key.clone()));
                }
            }
        }
        out
    }
}
