//! Checking a detached signature over data that arrives in pieces (the installer verifies
//! while it downloads), against a `KeyRing`.

use crate::ring::Signer;
use crate::{hex, policy, KeyError, KeyRing};
use pgp::composed::{Deserializable, DetachedSignature};
use pgp::packet::{Signature, SignatureType};

/// Who signed: the component key that made the signature and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Fingerprint (upper-case hex) of the key that made the signature (primary or subkey).
    pub fingerprint: String,
    /// Signature creation time, seconds since the epoch.
    pub created: Option<u32>,
}

struct Pending {
    signature: Signature,
    signers: Vec<Signer>,
    hasher: Box<dyn digest::DynDigest + Send>,
    key_id: String,
}

/// Feed the signed data with `update`, then `finish` says whether any signature in the
/// signature data verifies with a trusted key.
pub struct StreamVerifier {
    pending: Vec<Pending>,
}

impl StreamVerifier {
    /// `signature` is binary or armored (one or more signature packets). Fails early, before
    /// any data is read, when the ring is empty, no trusted key matches the issuer, or the
    /// matching keys may not have made it (`policy`: revoked, expired, not yet created, a
    /// broken hash).
    pub fn new(ring: &KeyRing, signature: &[u8]) -> Result<StreamVerifier, KeyError> {
        if ring.is_empty() {
            return Err(KeyError::NoTrustedKeys);
        }
        let (iter, _) = DetachedSignature::from_reader_many(signature)
            .map_err(KeyError::UnparsableSignature)?;
        let sigs = iter
            .collect::<Result<Vec<_>, _>>()
            .map_err(KeyError::UnparsableSignature)?;
        if sigs.is_empty() {
            return Err(KeyError::NoSignature);
        }
        let mut pending = Vec::new();
        let mut unmatched = Vec::new();
        // The first reason a matched signature was refused, reported when none is usable.
        let mut refused: Option<KeyError> = None;
        for DetachedSignature { signature } in sigs {
            if signature.typ() != Some(SignatureType::Binary) {
                return Err(KeyError::UnsupportedSignature {
                    typ: format!("{:?}", signature.typ()),
                });
            }
            let ids: Vec<Vec<u8>> = signature
                .issuer_key_id()
                .iter()
                .map(|k| k.as_ref().to_vec())
                .collect();
            let fprs: Vec<Vec<u8>> = signature
                .issuer_fingerprint()
                .iter()
                .map(|f| f.as_bytes().to_vec())
                .collect();
            let key_id = ids
                .first()
                .map(|i| hex(i))
                .or_else(|| fprs.first().map(|f| hex(&f[f.len().saturating_sub(8)..])))
                .unwrap_or_else(|| "(none)".into());
            let signers = ring.signers_matching(&ids, &fprs);
            if signers.is_empty() {
                unmatched.push(key_id);
                continue;
            }
            let config = signature
                .config()
                .ok_or_else(|| KeyError::UnsupportedSignature {
                    typ: format!("version {:?}", signature.version()),
                })?;
            // Policy first, from the signature packet alone: a refused signature is reported
            // before a single byte of the data is read.
            if let Some(why) = policy::weak_data_hash(config.hash_alg) {
                refused.get_or_insert(KeyError::WeakHash {
                    key_id,
                    alg: config.hash_alg.to_string(),
                    why,
                });
                continue;
            }
            let Some(made) = signature.created().map(|t| t.as_secs()) else {
                refused.get_or_insert(KeyError::Refused {
                    key_id,
                    reason: "the signature has no creation time".into(),
                });
                continue;
            };
            let mut usable = Vec::new();
            for s in signers {
                match s.refuse_at(made) {
                    None => usable.push(s),
                    Some(reason) => {
                        tracing::debug!("signature by {key_id}: {reason}");
                        refused.get_or_insert(KeyError::Refused {
                            key_id: key_id.clone(),
                            reason,
                        });
                    }
                }
            }
            if usable.is_empty() {
                continue;
            }
            let signers = usable;
            let hasher =
                config
                    .hash_alg
                    .new_hasher()
                    .map_err(|e| KeyError::UnsupportedSignature {
                        typ: format!("hash {:?}: {e}", config.hash_alg),
                    })?;
            let mut hasher = hasher;
            // A v6 signature's hash starts with its salt (RFC 9580 5.2.4).
            if let pgp::packet::SignatureVersionSpecific::V6 { salt } = &config.version_specific {
                hasher.update(salt.as_ref());
            }
            pending.push(Pending {
                signature,
                signers,
                hasher,
                key_id,
            });
        }
        if pending.is_empty() {
            if let Some(e) = refused {
                return Err(e);
            }
            return Err(KeyError::NoMatchingKey {
                key_id: unmatched.join(", "),
                trusted: ring.fingerprints().join(", "),
            });
        }
        Ok(StreamVerifier { pending })
    }

    pub fn update(&mut self, data: &[u8]) {
        for p in &mut self.pending {
            p.hasher.update(data);
        }
    }

    /// The first signature that verifies wins; otherwise the reason the first one failed.
    pub fn finish(self) -> Result<Verified, KeyError> {
        let mut first_err = None;
        for Pending {
            signature,
            signers,
            mut hasher,
            key_id,
        } in self.pending
        {
            match check(&signature, &signers, &mut hasher) {
                Ok(v) => return Ok(v),
                Err(reason) => {
                    first_err.get_or_insert(KeyError::BadSignature { key_id, reason });
                }
            }
        }
        Err(first_err.expect("StreamVerifier always holds a signature"))
    }
}

fn check(
    signature: &Signature,
    signers: &[Signer],
    hasher: &mut Box<dyn digest::DynDigest + Send>,
) -> Result<Verified, String> {
    let config = signature.config().expect("checked in new");
    let len = config
        .hash_signature_data(hasher)
        .map_err(|e| e.to_string())?;
    hasher.update(&config.trailer(len).map_err(|e| e.to_string())?);
    let hash = hasher.finalize_reset();
    if signature
        .signed_hash_value()
        .is_some_and(|v| v[..] != hash[..2])
    {
        return Err("digest mismatch (the data or the signature was changed)".into());
    }
    let bytes = signature
        .signature()
        .ok_or("signature has no signature bytes")?;
    let mut last = String::new();
    for s in signers {
        let key = s.as_verifying();
        match key.verify_hash(config.hash_alg, &hash, bytes) {
            Ok(()) => {
                return Ok(Verified {
                    fingerprint: hex(&key.fingerprint_bytes()),
                    created: signature.created().map(|t| t.as_secs()),
                })
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

#[allow(dead_code)]
fn _assert_send<T: Send>() {}
#[allow(dead_code)]
fn _verifier_is_send() {
    _assert_send::<StreamVerifier>();
}
