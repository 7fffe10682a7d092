//! RSA keys for update payloads (CrAU), separate from the OpenPGP release key as CoreOS kept them.
//!
//! update_engine signs the SHA-256 of the payload with RSA-2048, PKCS#1 v1.5 padding and the
//! SHA-256 DigestInfo (`payload_signer.cc`: `openssl pkeyutl -sign -pkeyopt digest:sha256`), and
//! reads the public key as SPKI PEM (`PEM_read_RSA_PUBKEY`, `BEGIN PUBLIC KEY`). The signature
//! is exactly 256 bytes, so only 2048-bit keys are accepted. The payload is hashed by the caller
//! while it streams (prehashed signing), never held in memory.

use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey};
use rsa::pkcs1v15;
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;
use std::path::Path;

/// Bits of every payload key: update_engine's signature blob holds 256-byte signatures.
pub const PAYLOAD_KEY_BITS: usize = 2048;
/// Bytes of one payload signature.
pub const PAYLOAD_SIGNATURE_LEN: usize = PAYLOAD_KEY_BITS / 8;

/// What can go wrong with a payload key or signature; each names the key (its file).
#[derive(Debug, thiserror::Error)]
pub enum PayloadKeyError {
    #[error("reading payload key {what}: {source}")]
    Read {
        what: String,
        source: std::io::Error,
    },
    #[error("payload key {what}: {reason}")]
    Unparsable { what: String, reason: String },
    #[error("payload key {what} is not an RSA key ({found})")]
    NotRsa { what: String, found: String },
    #[error("payload key {what} is an RSA-{bits} key; update payloads need RSA-2048 (update_engine's signatures are 256 bytes)")]
    WrongSize { what: String, bits: usize },
    #[error("signature does not verify with payload key {what}: {reason}")]
    BadSignature { what: String, reason: String },
    #[error("signing with payload key {what} failed: {reason}")]
    Sign { what: String, reason: String },
    #[error("generating a payload key failed: {0}")]
    Generate(String),
    #[error("encoding payload key {what} as PEM failed: {reason}")]
    Encode { what: String, reason: String },
}

/// The PEM label of the first block (`RSA PRIVATE KEY`, `PRIVATE KEY`, `PUBLIC KEY`, ...).
fn pem_label(pem: &str) -> Option<&str> {
    let start = pem.find("-----BEGIN ")? + "-----BEGIN ".len();
    let len = pem[start..].find("-----")?;
    Some(&pem[start..start + len])
}

fn read_text(path: &Path) -> Result<String, PayloadKeyError> {
    let what = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| PayloadKeyError::Read {
        what: what.clone(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|_| PayloadKeyError::Unparsable {
        what,
        reason: "not a PEM text file".into(),
    })
}

fn check_bits(what: &str, n_bytes: usize) -> Result<(), PayloadKeyError> {
    let bits = n_bytes * 8;
    if bits != PAYLOAD_KEY_BITS {
        return Err(PayloadKeyError::WrongSize {
            what: what.to_string(),
            bits,
        });
    }
    Ok(())
}

/// An RSA-2048 private key that signs update payloads.
#[derive(Clone)]
pub struct PayloadSigningKey {
    key: RsaPrivateKey,
    what: String,
}

impl std::fmt::Debug for PayloadSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadSigningKey")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl PayloadSigningKey {
    /// A PEM private key: PKCS#1 (`BEGIN RSA PRIVATE KEY`, what `openssl genrsa` writes) or
    /// unencrypted PKCS#8 (`BEGIN PRIVATE KEY`). `what` names it in errors (its file).
    pub fn from_pem(pem: &str, what: &str) -> Result<PayloadSigningKey, PayloadKeyError> {
        let unparsable = |reason: String| PayloadKeyError::Unparsable {
            what: what.to_string(),
            reason,
        };
        let key = match pem_label(pem) {
            Some("RSA PRIVATE KEY") => RsaPrivateKey::from_pkcs1_pem(pem)
                .map_err(|e| unparsable(format!("bad PKCS#1 RSA private key: {e}")))?,
            Some("PRIVATE KEY") => RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| match e {
                // PKCS#8 names the algorithm: another one's key gets its own message.
                rsa::pkcs8::Error::PublicKey(rsa::pkcs8::spki::Error::OidUnknown { oid }) => {
                    PayloadKeyError::NotRsa {
                        what: what.to_string(),
                        found: format!("PKCS#8 key of algorithm {oid}"),
                    }
                }
                _ => unparsable(format!("bad PKCS#8 private key: {e}")),
            })?,
            Some("ENCRYPTED PRIVATE KEY") => {
                return Err(unparsable(
                    "the key is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN)"
                        .into(),
                ))
            }
            Some(l @ ("PUBLIC KEY" | "RSA PUBLIC KEY")) => {
                return Err(unparsable(format!(
                    "holds a public key ({l}); the private key is needed to sign"
                )))
            }
            Some(l) => {
                return Err(PayloadKeyError::NotRsa {
                    what: what.to_string(),
                    found: format!("PEM block {l}"),
                })
            }
            None => return Err(unparsable("no PEM block (-----BEGIN ...-----)".into())),
        };
        check_bits(what, key.size())?;
        Ok(PayloadSigningKey {
            key,
            what: what.to_string(),
        })
    }

    /// A PEM private key file; errors name the file.
    pub fn from_file(path: &Path) -> Result<PayloadSigningKey, PayloadKeyError> {
        PayloadSigningKey::from_pem(&read_text(path)?, &path.display().to_string())
    }

    /// A fresh RSA-2048 key (e = 65537).
    pub fn generate() -> Result<PayloadSigningKey, PayloadKeyError> {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), PAYLOAD_KEY_BITS)
            .map_err(|e| PayloadKeyError::Generate(e.to_string()))?;
        Ok(PayloadSigningKey {
            key,
            what: "(new key)".into(),
        })
    }

    /// Where the key came from, as errors name it.
    pub fn name(&self) -> &str {
        &self.what
    }

    /// PKCS#8 PEM (`BEGIN PRIVATE KEY`), what `openssl genpkey` writes.
    pub fn to_pkcs8_pem(&self) -> Result<String, PayloadKeyError> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map(|s| s.to_string())
            .map_err(|e| self.encode_error(e))
    }

    /// PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`), what `openssl genrsa` (1.x) writes.
    pub fn to_pkcs1_pem(&self) -> Result<String, PayloadKeyError> {
        self.key
            .to_pkcs1_pem(LineEnding::LF)
            .map(|s| s.to_string())
            .map_err(|e| self.encode_error(e))
    }

    fn encode_error(&self, e: impl std::fmt::Display) -> PayloadKeyError {
        PayloadKeyError::Encode {
            what: self.what.clone(),
            reason: e.to_string(),
        }
    }

    pub fn public_key(&self) -> PayloadPublicKey {
        PayloadPublicKey {
            key: self.key.to_public_key(),
            what: format!("{} (public part)", self.what),
        }
    }

    /// The 256-byte RSA PKCS#1 v1.5 signature of a SHA-256 digest computed by the caller.
    /// Deterministic: the same key and digest give the same bytes.
    pub fn sign_sha256(
        &self,
        digest: &[u8; 32],
    ) -> Result<[u8; PAYLOAD_SIGNATURE_LEN], PayloadKeyError> {
        let signer = pkcs1v15::SigningKey::<Sha256>::new(self.key.clone());
        let sig: pkcs1v15::Signature =
            signer
                .sign_prehash(digest)
                .map_err(|e| PayloadKeyError::Sign {
                    what: self.what.clone(),
                    reason: e.to_string(),
                })?;
        let bytes: Box<[u8]> = sig.into();
        bytes
            .as_ref()
            .try_into()
            .map_err(|_| PayloadKeyError::Sign {
                what: self.what.clone(),
                reason: format!("signature of {} bytes", bytes.len()),
            })
    }
}

/// An RSA-2048 public key that verifies update payloads.
#[derive(Clone, Debug)]
pub struct PayloadPublicKey {
    key: RsaPublicKey,
    what: String,
}

impl PayloadPublicKey {
    /// SPKI PEM (`BEGIN PUBLIC KEY`, what update_engine and ue-rs read) or, for convenience,
    /// PKCS#1 (`BEGIN RSA PUBLIC KEY`). `what` names it in errors (its file).
    pub fn from_pem(pem: &str, what: &str) -> Result<PayloadPublicKey, PayloadKeyError> {
        let unparsable = |reason: String| PayloadKeyError::Unparsable {
            what: what.to_string(),
            reason,
        };
        let key = match pem_label(pem) {
            Some("PUBLIC KEY") => RsaPublicKey::from_public_key_pem(pem).map_err(|e| match e {
                rsa::pkcs8::spki::Error::OidUnknown { oid } => PayloadKeyError::NotRsa {
                    what: what.to_string(),
                    found: format!("public key of algorithm {oid}"),
                },
                _ => unparsable(format!("bad SPKI public key: {e}")),
            })?,
            Some("RSA PUBLIC KEY") => RsaPublicKey::from_pkcs1_pem(pem)
                .map_err(|e| unparsable(format!("bad PKCS#1 RSA public key: {e}")))?,
            Some(l @ ("PRIVATE KEY" | "RSA PRIVATE KEY" | "ENCRYPTED PRIVATE KEY")) => {
                return Err(unparsable(format!(
                    "holds a private key ({l}); give the public key (openssl pkey -pubout)"
                )))
            }
            Some(l) => {
                return Err(PayloadKeyError::NotRsa {
                    what: what.to_string(),
                    found: format!("PEM block {l}"),
                })
            }
            None => return Err(unparsable("no PEM block (-----BEGIN ...-----)".into())),
        };
        check_bits(what, key.size())?;
        Ok(PayloadPublicKey {
            key,
            what: what.to_string(),
        })
    }

    /// A PEM public key file; errors name the file.
    pub fn from_file(path: &Path) -> Result<PayloadPublicKey, PayloadKeyError> {
        PayloadPublicKey::from_pem(&read_text(path)?, &path.display().to_string())
    }

    /// Where the key came from, as errors name it.
    pub fn name(&self) -> &str {
        &self.what
    }

    /// SPKI PEM (`BEGIN PUBLIC KEY`), what `openssl pkey -pubout` writes.
    pub fn to_pem(&self) -> Result<String, PayloadKeyError> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| PayloadKeyError::Encode {
                what: self.what.clone(),
                reason: e.to_string(),
            })
    }

    /// Check a PKCS#1 v1.5 / SHA-256 signature over a digest computed by the caller.
    pub fn verify_sha256(
        &self,
        digest: &[u8; 32],
        signature: &[u8],
    ) -> Result<(), PayloadKeyError> {
        let bad = |reason: String| PayloadKeyError::BadSignature {
            what: self.what.clone(),
            reason,
        };
        if signature.len() != PAYLOAD_SIGNATURE_LEN {
            return Err(bad(format!(
                "the signature is {} bytes, not {PAYLOAD_SIGNATURE_LEN}",
                signature.len()
            )));
        }
        let sig = pkcs1v15::Signature::try_from(signature).map_err(|e| bad(e.to_string()))?;
        pkcs1v15::VerifyingKey::<Sha256>::new(self.key.clone())
            .verify_prehash(digest, &sig)
            .map_err(|_| bad("wrong key, or the signed bytes changed".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn key() -> &'static PayloadSigningKey {
        static KEY: std::sync::OnceLock<PayloadSigningKey> = std::sync::OnceLock::new();
        KEY.get_or_init(|| PayloadSigningKey::generate().unwrap())
    }

    #[test]
    fn signs_and_verifies_prehashed() {
        let digest: [u8; 32] = Sha256::digest(b"payload bytes").into();
        let sig = key().sign_sha256(&digest).unwrap();
        assert_eq!(sig, key().sign_sha256(&digest).unwrap(), "deterministic");
        key().public_key().verify_sha256(&digest, &sig).unwrap();
        let mut other = digest;
        other[0] ^= 1;
        let e = key().public_key().verify_sha256(&other, &sig).unwrap_err();
        assert!(matches!(e, PayloadKeyError::BadSignature { .. }), "{e}");
        let e = key()
            .public_key()
            .verify_sha256(&digest, &sig[..255])
            .unwrap_err();
        assert!(e.to_string().contains("255 bytes"), "{e}");
    }

    #[test]
    fn pem_round_trips_in_every_encoding() {
        let k = key();
        let pkcs8 = k.to_pkcs8_pem().unwrap();
        let pkcs1 = k.to_pkcs1_pem().unwrap();
        assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let digest = [7u8; 32];
        let want = k.sign_sha256(&digest).unwrap();
        for pem in [&pkcs8, &pkcs1] {
            let again = PayloadSigningKey::from_pem(pem, "k.pem").unwrap();
            assert_eq!(again.sign_sha256(&digest).unwrap(), want);
        }
        let spki = k.public_key().to_pem().unwrap();
        assert!(spki.starts_with("-----BEGIN PUBLIC KEY-----"));
        let public = PayloadPublicKey::from_pem(&spki, "k.pub.pem").unwrap();
        public.verify_sha256(&digest, &want).unwrap();
        let pkcs1_pub =
            rsa::pkcs1::EncodeRsaPublicKey::to_pkcs1_pem(&k.key.to_public_key(), LineEnding::LF)
                .unwrap();
        PayloadPublicKey::from_pem(&pkcs1_pub, "k.pub.pem")
            .unwrap()
            .verify_sha256(&digest, &want)
            .unwrap();
    }

    #[test]
    fn refuses_wrong_keys_naming_the_file() {
        let small = RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
        let pem = small.to_pkcs8_pem(LineEnding::LF).unwrap();
        let e = PayloadSigningKey::from_pem(&pem, "/k/small.pem").unwrap_err();
        assert!(
            matches!(e, PayloadKeyError::WrongSize { bits: 1024, .. })
                && e.to_string().contains("/k/small.pem"),
            "{e}"
        );
        let spki = small
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let e = PayloadPublicKey::from_pem(&spki, "small.pub.pem").unwrap_err();
        assert!(
            matches!(e, PayloadKeyError::WrongSize { bits: 1024, .. }),
            "{e}"
        );

        let e = PayloadSigningKey::from_pem(
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
            "ec.pem",
        )
        .unwrap_err();
        assert!(
            matches!(e, PayloadKeyError::NotRsa { .. }) && e.to_string().contains("ec.pem"),
            "{e}"
        );
        let e = PayloadSigningKey::from_pem("hello", "x.pem").unwrap_err();
        assert!(e.to_string().contains("no PEM block"), "{e}");
        let public = key().public_key().to_pem().unwrap();
        let e = PayloadSigningKey::from_pem(&public, "pub.pem").unwrap_err();
        assert!(e.to_string().contains("public key"), "{e}");
        let e = PayloadPublicKey::from_pem(&key().to_pkcs8_pem().unwrap(), "priv.pem").unwrap_err();
        assert!(e.to_string().contains("private key"), "{e}");
        let e = PayloadSigningKey::from_file(Path::new("/nonexistent/key.pem")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/key.pem"), "{e}");
    }
}
