//! Making signatures: binary detached (as `gpg --detach-sign`) and cleartext (as
//! `gpg --clearsign`), reproducible when the caller fixes the signing time
//! (`SecretKey::with_signing_time`, from `SOURCE_DATE_EPOCH`).

use crate::{hex, policy, KeyError};
use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, Deserializable, DetachedSignature, SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{SignatureConfig, SignatureType, Subpacket, SubpacketData};
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, Password, SigningKey, Timestamp};
use std::io::Read;

/// SHA-512: what gpg 2.2 picks for Ed25519 and a safe choice for RSA.
const HASH: HashAlgorithm = HashAlgorithm::Sha512;

/// An unprotected OpenPGP secret key (a transferable secret key).
#[derive(Debug, Clone)]
pub struct SecretKey {
    key: SignedSecretKey,
    /// Creation time of every signature made; None = now.
    signing_time: Option<u32>,
}

impl SecretKey {
    /// Armored or binary secret key data; the first key is used.
    pub fn from_armored(bytes: &[u8]) -> Result<SecretKey, KeyError> {
        SecretKey::parse(bytes, "(key data)")
    }

    /// A secret key file; errors name the file. A file that group or others may read is
    /// used, with a warning (`gpg --export-secret-keys > key.asc` under umask 022 makes one).
    pub fn from_file(path: &std::path::Path) -> Result<SecretKey, KeyError> {
        use std::os::unix::fs::PermissionsExt;
        let what = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| KeyError::UnparsableKey {
            what: what.clone(),
            source: pgp::errors::Error::from(e),
        })?;
        let key = SecretKey::parse(&bytes, &what)?;
        if let Ok(md) = std::fs::metadata(path) {
            let mode = md.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    "secret key {what} is readable by {} (mode {mode:04o}); chmod 600 it",
                    if mode & 0o007 != 0 {
                        "others"
                    } else {
                        "its group"
                    }
                );
            }
        }
        Ok(key)
    }

    fn parse(bytes: &[u8], what: &str) -> Result<SecretKey, KeyError> {
        let err = |source| KeyError::UnparsableKey {
            what: what.to_string(),
            source,
        };
        let (mut iter, _) = SignedSecretKey::from_reader_many(bytes).map_err(err)?;
        let key = iter
            .next()
            .ok_or(KeyError::NoKeyInFile {
                what: what.to_string(),
                kind: "secret",
            })?
            .map_err(err)?;
        let sk = SecretKey {
            key,
            signing_time: None,
        };
        if sk.signing_key().protected() {
            return Err(KeyError::Passphrase {
                key_id: sk.key_id(),
            });
        }
        Ok(sk)
    }

    /// Stamp every signature with this creation time (seconds since 1970) instead of now, so a
    /// release is reproducible; it is never earlier than the key's own creation.
    pub fn with_signing_time(mut self, secs: u32) -> SecretKey {
        self.signing_time = Some(secs);
        self
    }

    /// Legacy key id (16 hex digits) of the key that signs.
    pub fn key_id(&self) -> String {
        hex(self.signing_key().key_id().as_ref())
    }

    /// Primary key fingerprint (upper-case hex).
    pub fn fingerprint(&self) -> String {
        hex(self.key.primary_key.fingerprint().as_bytes())
    }

    /// The public half, armored.
    pub fn public_armored(&self) -> Result<String, KeyError> {
        let public = self.key.to_public_key();
        public
            .to_armored_string(ArmorOptions::default())
            .map_err(|source| KeyError::Sign {
                key_id: self.key_id(),
                source,
            })
    }

    /// As gpg does: the newest signing subkey that may sign now (`policy`), else the primary.
    fn signing_key(&self) -> Component<'_> {
        let public = self.key.to_public_key();
        let t = self.effective_time(&self.key.primary_key);
        let primary = &self.key.primary_key;
        self.key
            .secret_subkeys
            .iter()
            .zip(&public.public_subkeys)
            .filter(|(_, p)| {
                let v = policy::subkey(&public.primary_key, p);
                v.can_sign && v.refuse_at(t).is_none()
            })
            .max_by_key(|(s, _)| s.key.created_at().as_secs())
            .map(|(s, _)| Component::Subkey(&s.key))
            .unwrap_or(Component::Primary(primary))
    }

    /// The signing time as `creation_time` will stamp it.
    fn effective_time(&self, key: &impl KeyDetails) -> u32 {
        creation_time(key, self.signing_time).as_secs()
    }

    /// Refuse to make a signature the installer would refuse: the signing key revoked,
    /// expired, or not allowed to sign at the signing time.
    fn check_usable(&self) -> Result<(), KeyError> {
        let public = self.key.to_public_key();
        let primary = policy::primary(&public);
        let (sub, t) = match self.signing_key() {
            Component::Primary(k) => (None, self.effective_time(k)),
            Component::Subkey(k) => {
                let fpr = k.fingerprint();
                let sub = public
                    .public_subkeys
                    .iter()
                    .find(|p| p.key.fingerprint() == fpr)
                    .map(|p| policy::subkey(&public.primary_key, p));
                (sub, self.effective_time(k))
            }
        };
        match policy::refuse(&primary, sub.as_ref(), t) {
            None => Ok(()),
            Some(reason) => Err(KeyError::Refused {
                key_id: self.key_id(),
                reason: format!("cannot sign with it: {reason}"),
            }),
        }
    }
}

enum Component<'a> {
    Primary(&'a pgp::packet::SecretKey),
    Subkey(&'a pgp::packet::SecretSubkey),
}

impl Component<'_> {
    fn protected(&self) -> bool {
        match self {
            Component::Primary(k) => k.secret_params().is_encrypted(),
            Component::Subkey(k) => k.secret_params().is_encrypted(),
        }
    }

    fn key_id(&self) -> pgp::types::KeyId {
        match self {
            Component::Primary(k) => k.legacy_key_id(),
            Component::Subkey(k) => k.legacy_key_id(),
        }
    }

    fn sign<R: Read>(
        &self,
        typ: SignatureType,
        time: Option<u32>,
        data: R,
    ) -> pgp::errors::Result<pgp::packet::Signature> {
        match self {
            Component::Primary(k) => config(*k, typ, time)?.sign(*k, &Password::empty(), data),
            Component::Subkey(k) => config(*k, typ, time)?.sign(*k, &Password::empty(), data),
        }
    }
}

/// Signature creation time: the fixed time when given (reproducible releases), else now;
/// never before the key's own creation, which gpg rejects as a "time conflict".
fn creation_time(key: &impl KeyDetails, fixed: Option<u32>) -> Timestamp {
    let t = fixed
        .map(Timestamp::from_secs)
        .unwrap_or_else(Timestamp::now);
    Timestamp::from_secs(t.as_secs().max(key.created_at().as_secs()))
}

/// The same subpackets gpg writes: creation time and issuer fingerprint hashed, issuer key id
/// unhashed. No salt notation, so the bytes depend only on key, data and time.
fn config(
    key: &impl SigningKey,
    typ: SignatureType,
    time: Option<u32>,
) -> pgp::errors::Result<SignatureConfig> {
    let mut config = SignatureConfig::v4(typ, key.algorithm(), HASH);
    config.hashed_subpackets = vec![
        Subpacket::regular(SubpacketData::IssuerFingerprint(key.fingerprint()))?,
        Subpacket::regular(SubpacketData::SignatureCreationTime(creation_time(
            key, time,
        )))?,
    ];
    config.unhashed_subpackets = vec![Subpacket::regular(SubpacketData::IssuerKeyId(
        key.legacy_key_id(),
    ))?];
    Ok(config)
}

/// A binary detached signature over `data`, as `gpg --detach-sign` writes.
pub fn sign_detached(key: &SecretKey, mut data: impl Read) -> Result<Vec<u8>, KeyError> {
    let mut signer = DetachedSigner::new(key)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = data.read(&mut buf)?;
        if n == 0 {
            break;
        }
        signer.update(&buf[..n]);
    }
    signer.finish()
}

/// A detached signature made from data fed in pieces (the release writer signs the
/// compressed image while writing it, without reading it back).
pub struct DetachedSigner {
    key: SecretKey,
    hasher: pgp::packet::SignatureHasher,
}

impl DetachedSigner {
    pub fn new(key: &SecretKey) -> Result<DetachedSigner, KeyError> {
        key.check_usable()?;
        let err = |source| KeyError::Sign {
            key_id: key.key_id(),
            source,
        };
        let config = match key.signing_key() {
            Component::Primary(k) => config(k, SignatureType::Binary, key.signing_time),
            Component::Subkey(k) => config(k, SignatureType::Binary, key.signing_time),
        }
        .map_err(err)?;
        let hasher = config.into_hasher().map_err(err)?;
        Ok(DetachedSigner {
            key: key.clone(),
            hasher,
        })
    }

    pub fn update(&mut self, data: &[u8]) {
        // Hashing into memory cannot fail.
        let _ = std::io::Write::write_all(&mut self.hasher, data);
    }

    /// The binary signature packet.
    pub fn finish(self) -> Result<Vec<u8>, KeyError> {
        let err = |source| KeyError::Sign {
            key_id: self.key.key_id(),
            source,
        };
        let sig = match self.key.signing_key() {
            Component::Primary(k) => self.hasher.sign(k, &Password::empty()),
            Component::Subkey(k) => self.hasher.sign(k, &Password::empty()),
        }
        .map_err(err)?;
        DetachedSignature::new(sig).to_bytes().map_err(err)
    }
}

/// `text` with an armored cleartext signature, as `gpg --clearsign` writes.
pub fn clearsign(key: &SecretKey, text: &str) -> Result<String, KeyError> {
    key.check_usable()?;
    let signer = key.signing_key();
    let err = |source| KeyError::Sign {
        key_id: key.key_id(),
        source,
    };
    // The line break before the signature armor is framing, not signed text (RFC 9580 7.1);
    // rPGP adds it itself, so a final newline would otherwise appear twice.
    let text = text.strip_suffix('\n').unwrap_or(text);
    let msg = CleartextSignedMessage::new_many(text, |normalized| {
        Ok(vec![signer.sign(
            SignatureType::Text,
            key.signing_time,
            normalized.as_bytes(),
        )?])
    })
    .map_err(err)?;
    msg.to_armored_string(ArmorOptions::default()).map_err(err)
}
