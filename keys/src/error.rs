//! What can go wrong with keys and signatures, each naming the key or input that failed.

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unparsable key file {what}: {source}")]
    UnparsableKey {
        what: String,
        source: pgp::errors::Error,
    },
    #[error("{what} holds no OpenPGP {kind} key")]
    NoKeyInFile { what: String, kind: &'static str },
    #[error("secret key {key_id} is protected by a passphrase; export it without one (gpg --export-secret-keys with an empty passphrase)")]
    Passphrase { key_id: String },
    #[error("unparsable signature: {0}")]
    UnparsableSignature(pgp::errors::Error),
    #[error("the signature data holds no signature packet")]
    NoSignature,
    #[error("no trusted keys; pass -k with a public key file")]
    NoTrustedKeys,
    #[error("no trusted key matches the signature's issuer key id {key_id} (trusted: {trusted})")]
    NoMatchingKey { key_id: String, trusted: String },
    #[error("unsupported signature (type {typ}); expected a binary detached signature as made by gpg --detach-sign")]
    UnsupportedSignature { typ: String },
    #[error("signature by key {key_id} refused: it uses {alg}, and {why}")]
    WeakHash {
        key_id: String,
        alg: String,
        why: &'static str,
    },
    #[error("signature by key {key_id} refused: {reason}")]
    Refused { key_id: String, reason: String },
    #[error("bad signature by key {key_id}: {reason}")]
    BadSignature { key_id: String, reason: String },
    #[error("signing with key {key_id} failed: {source}")]
    Sign {
        key_id: String,
        source: pgp::errors::Error,
    },
    #[error("reading the data to sign: {0}")]
    Read(#[from] std::io::Error),
    #[error("key generation failed: {0}")]
    Generate(String),
}
