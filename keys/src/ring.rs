//! A set of trusted public keys and the component keys (primaries and signing subkeys) that
//! may have made a data signature.

use crate::policy::{self, Validity};
use crate::{hex, KeyError};
use pgp::composed::{PublicOrSecret, SignedPublicKey};
use pgp::packet::{PublicKey, PublicSubkey};
use pgp::types::{KeyDetails, VerifyingKey};

/// The trusted public keys a signature must come from.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: Vec<SignedPublicKey>,
}

/// One key that may have made a data signature: a primary key or one of its subkeys, with what
/// their self-signatures say about when it may sign (`policy`).
#[derive(Debug, Clone)]
pub(crate) struct Signer {
    key: SignerKey,
    primary: Validity,
    /// The subkey's own validity (None when the signer is the primary).
    subkey: Option<Validity>,
}

#[derive(Debug, Clone)]
enum SignerKey {
    Primary(PublicKey),
    Subkey(PublicSubkey),
}

impl Signer {
    pub(crate) fn as_verifying(&self) -> &dyn VerifyingKeyDyn {
        match &self.key {
            SignerKey::Primary(k) => k,
            SignerKey::Subkey(k) => k,
        }
    }

    /// Why a signature this key made at `t` does not count (None: it may count).
    pub(crate) fn refuse_at(&self, t: u32) -> Option<String> {
        policy::refuse(&self.primary, self.subkey.as_ref(), t)
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
    /// The keys embedded at compile time (possibly none): `keys/*.asc` and the files named by
    /// `COREOS_TRUSTED_KEYS` at build time (`build.rs`). An error names the embedded file.
    pub fn embedded() -> Result<KeyRing, KeyError> {
        let mut ring = KeyRing::default();
        for (name, bytes) in EMBEDDED_KEYS {
            ring.extend(KeyRing::parse(bytes, &format!("embedded key {name}"))?);
        }
        Ok(ring)
    }

    /// The paths the embedded keys were built from, for messages and `--version`-like output.
    pub fn embedded_sources() -> Vec<&'static str> {
        EMBEDDED_KEYS.iter().map(|(name, _)| *name).collect()
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

    /// Same as `from_armored`: armored or binary data are both accepted.
    pub fn from_bytes(bytes: &[u8]) -> Result<KeyRing, KeyError> {
        KeyRing::parse(bytes, "(key data)")
    }

    /// Public keys, or secret keys whose public halves are used.
    fn parse(bytes: &[u8], what: &str) -> Result<KeyRing, KeyError> {
        let err = |source| KeyError::UnparsableKey {
            what: what.to_string(),
            source,
        };
        let (iter, _) = PublicOrSecret::from_reader_many(bytes).map_err(err)?;
        let mut keys = Vec::new();
        for k in iter {
            keys.push(match k.map_err(err)? {
                PublicOrSecret::Public(p) => p,
                PublicOrSecret::Secret(s) => s.to_public_key(),
            });
        }
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

    /// One line per component key and what its self-signatures say (created, expiry,
    /// revocation, signing capability), for `-v` output and diagnostics.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        for key in &self.keys {
            let primary = policy::primary(key);
            out.push(primary.describe());
            for sub in &key.public_subkeys {
                out.push(format!(
                    "  {}",
                    policy::subkey(&key.primary_key, sub).describe()
                ));
            }
        }
        out
    }

    /// Primary key fingerprints, upper-case hex, for messages.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| hex(k.primary_key.fingerprint().as_bytes()))
            .collect()
    }

    /// Component keys whose legacy key id is `key_id` (8 bytes) or whose fingerprint is `fpr`,
    /// with their validity; whether they may have made a given signature is `Signer::refuse_at`.
    /// A subkey is matched only as part of its primary's certificate, never alone.
    pub(crate) fn signers_matching(&self, key_ids: &[Vec<u8>], fprs: &[Vec<u8>]) -> Vec<Signer> {
        let hit = |k: &dyn VerifyingKeyDyn| {
            key_ids.contains(&k.key_id()) || fprs.contains(&k.fingerprint_bytes())
        };
        let mut out = Vec::new();
        for key in &self.keys {
            let primary_hit = hit(&key.primary_key);
            let sub_hits: Vec<_> = key.public_subkeys.iter().filter(|s| hit(&s.key)).collect();
            if !primary_hit && sub_hits.is_empty() {
                continue;
            }
            let primary = policy::primary(key);
            if primary_hit {
                out.push(Signer {
                    key: SignerKey::Primary(key.primary_key.clone()),
                    primary: primary.clone(),
                    subkey: None,
                });
            }
            for sub in sub_hits {
                out.push(Signer {
                    key: SignerKey::Subkey(sub.key.clone()),
                    primary: primary.clone(),
                    subkey: Some(policy::subkey(&key.primary_key, sub)),
                });
            }
        }
        out
    }
}
