//! When a trusted key's signature counts. rPGP parses keys and checks that a signature is
//! mathematically valid; whether the key was allowed to make it is decided here, from the
//! key's own self-signatures (RFC 9580):
//!
//! - a component key (primary or subkey) counts only with a valid self-signature: for the
//!   primary a User ID certification or direct-key signature made by itself (§5.2.1), for a
//!   subkey a Subkey Binding Signature (type 0x18) by the primary with the Signing flag and a
//!   valid embedded Primary Key Binding "back-signature" (§5.2.1, §5.2.3.29). A Subkey
//!   Revocation (0x28) is never a binding. The newest valid self-signature carries the key
//!   flags and the Key Expiration Time (§5.2.3.13, relative to the key's creation);
//! - a revocation (0x20 for the primary, 0x28 for a subkey) with no reason, "key compromised"
//!   or an unknown reason is hard: the key verifies nothing, whenever it signed. "Superseded"
//!   and "retired" are soft: signatures made before the revocation keep counting (§5.2.3.31);
//! - a data signature counts when made (its Signature Creation Time) after the key and its
//!   primary were created and before either expired or was softly revoked, with a hash that is
//!   not broken: MD5, SHA-1, RIPEMD-160 and SHA-224 are refused (§9.5 deprecates the first
//!   three for new signatures; SHA-224 is below the 256 bits this project asks for).
//!
//! The clock of the machine running the installer is not consulted: live systems often boot
//! with a wrong clock, and a release signature does not become more or less valid with it.

use crate::hex;
use pgp::composed::{SignedPublicKey, SignedPublicSubKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{PublicKey, PublicSubkey, RevocationCode, Signature, SignatureType};
use pgp::types::{KeyDetails, Tag};

/// Why a data signature's hash is refused, or None when it is acceptable.
pub(crate) fn weak_data_hash(alg: HashAlgorithm) -> Option<&'static str> {
    match alg {
        HashAlgorithm::Sha256
        | HashAlgorithm::Sha384
        | HashAlgorithm::Sha512
        | HashAlgorithm::Sha3_256
        | HashAlgorithm::Sha3_512 => None,
        HashAlgorithm::Md5 => Some("MD5 is broken"),
        HashAlgorithm::Sha1 => Some("SHA-1 is broken (chosen-prefix collisions)"),
        HashAlgorithm::Ripemd160 => Some("RIPEMD-160 is deprecated (RFC 9580 9.5)"),
        HashAlgorithm::Sha224 => Some("SHA-224 is weaker than the 256 bits required"),
        _ => Some("the hash algorithm is unknown"),
    }
}

/// Self-signatures may still use SHA-1 (keys certified before 2014 do), never MD5.
fn weak_binding_hash(sig: &Signature) -> bool {
    matches!(
        sig.hash_alg(),
        Some(HashAlgorithm::Md5) | Some(HashAlgorithm::None) | None
    )
}

/// How a key was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Revoked {
    /// No signature of the key counts.
    Hard { reason: String },
    /// Signatures made before `since` still count.
    Soft { since: u32, reason: String },
}

/// One component key (a primary, or a subkey of it) and what its self-signatures say.
#[derive(Debug, Clone)]
pub(crate) struct Validity {
    /// "primary key ABCD..." or "subkey ABCD...", for messages.
    pub name: String,
    pub created: u32,
    /// Absolute expiry (seconds since 1970), if the newest self-signature sets one.
    pub expires: Option<u32>,
    pub revoked: Option<Revoked>,
    /// The newest self-signature grants signing (or, for a primary, sets no key flags).
    pub can_sign: bool,
    /// No valid self-signature at all: the key is not usable.
    pub unbound: Option<String>,
}

impl Validity {
    /// "subkey ABCD...: created ..., expires ..., signs" and the like.
    pub fn describe(&self) -> String {
        let mut s = format!("{}: created {}", self.name, utc(self.created));
        if let Some(e) = self.expires {
            s.push_str(&format!(", expires {}", utc(e)));
        }
        match &self.revoked {
            Some(Revoked::Hard { reason }) => s.push_str(&format!(", REVOKED ({reason})")),
            Some(Revoked::Soft { since, reason }) => {
                s.push_str(&format!(", revoked {} ({reason})", utc(*since)))
            }
            None => {}
        }
        if let Some(why) = &self.unbound {
            s.push_str(&format!(", NOT USABLE: {why}"));
        } else if self.can_sign {
            s.push_str(", may sign");
        }
        s
    }

    /// Why a signature made at `t` by this component does not count.
    pub fn refuse_at(&self, t: u32) -> Option<String> {
        let name = &self.name;
        if let Some(why) = &self.unbound {
            return Some(format!("{name} is not usable: {why}"));
        }
        match &self.revoked {
            Some(Revoked::Hard { reason }) => {
                return Some(format!("{name} is revoked ({reason})"));
            }
            Some(Revoked::Soft { since, reason }) if t >= *since => {
                return Some(format!(
                    "{name} was revoked ({reason}) on {}, before the signature was made on {}",
                    utc(*since),
                    utc(t)
                ));
            }
            _ => {}
        }
        if t < self.created {
            return Some(format!(
                "the signature was made on {}, before {name} existed (created {})",
                utc(t),
                utc(self.created)
            ));
        }
        if let Some(e) = self.expires {
            if t >= e {
                return Some(format!(
                    "{name} expired on {}, before the signature was made on {}",
                    utc(e),
                    utc(t)
                ));
            }
        }
        None
    }
}

/// Why a data signature made at `t` by a primary key (`subkey` None) or by one of its
/// subkeys does not count: the primary's state bounds its subkeys'.
pub(crate) fn refuse(primary: &Validity, subkey: Option<&Validity>, t: u32) -> Option<String> {
    if let Some(why) = primary.refuse_at(t) {
        return Some(why);
    }
    let own = subkey.unwrap_or(primary);
    if let Some(why) = own.refuse_at(t) {
        return Some(why);
    }
    if !own.can_sign {
        return Some(format!(
            "{} is not allowed to sign data (its self-signature's key flags)",
            own.name
        ));
    }
    None
}

fn reason(code: Option<&RevocationCode>) -> (bool, String) {
    match code {
        None => (true, "no reason given".into()),
        Some(RevocationCode::NoReason) => (true, "no reason specified".into()),
        Some(RevocationCode::KeyCompromised) => (true, "key compromised".into()),
        Some(RevocationCode::KeySuperseded) => (false, "key superseded".into()),
        Some(RevocationCode::KeyRetired) => (false, "key retired".into()),
        Some(other) => (true, format!("reason {other:?}")),
    }
}

/// The strongest of the valid revocations: a hard one wins, else the earliest soft one.
fn strongest<'s>(revocations: impl Iterator<Item = (u32, &'s Signature)>) -> Option<Revoked> {
    let mut out: Option<Revoked> = None;
    for (created, sig) in revocations {
        let (hard, why) = reason(sig.revocation_reason_code());
        let this = if hard {
            Revoked::Hard { reason: why }
        } else {
            Revoked::Soft {
                since: created,
                reason: why,
            }
        };
        out = match (out, this) {
            (Some(h @ Revoked::Hard { .. }), _) => Some(h),
            (_, h @ Revoked::Hard { .. }) => Some(h),
            (
                Some(Revoked::Soft {
                    since: a,
                    reason: ra,
                }),
                Revoked::Soft {
                    since: b,
                    reason: rb,
                },
            ) => Some(if a <= b {
                Revoked::Soft {
                    since: a,
                    reason: ra,
                }
            } else {
                Revoked::Soft {
                    since: b,
                    reason: rb,
                }
            }),
            (None, s) => Some(s),
        };
    }
    out
}

fn created(sig: &Signature) -> Option<u32> {
    sig.created().map(|t| t.as_secs())
}

/// Expiry as an absolute time: the subpacket counts from the key's creation; 0 means never.
fn expiry(key_created: u32, sig: &Signature) -> Option<u32> {
    sig.key_expiration_time()
        .map(|d| d.as_secs())
        .filter(|&d| d > 0)
        .map(|d| key_created.saturating_add(d))
}

/// The primary key's validity from its self-signatures and revocations.
pub(crate) fn primary(key: &SignedPublicKey) -> Validity {
    let pk: &PublicKey = &key.primary_key;
    let key_created = pk.created_at().as_secs();
    let mut selfsigs: Vec<(u32, &Signature)> = Vec::new();
    for user in &key.details.users {
        for sig in &user.signatures {
            let is_binding = matches!(
                sig.typ(),
                Some(
                    SignatureType::CertGeneric
                        | SignatureType::CertPersona
                        | SignatureType::CertCasual
                        | SignatureType::CertPositive
                )
            );
            if !is_binding || weak_binding_hash(sig) {
                continue;
            }
            // Third-party certifications fail here (another key made them): they say nothing
            // about this key's own policy.
            if sig.verify_certification(pk, Tag::UserId, &user.id).is_err() {
                continue;
            }
            if let Some(t) = created(sig).filter(|&t| t >= key_created) {
                selfsigs.push((t, sig));
            }
        }
    }
    for sig in &key.details.direct_signatures {
        if sig.typ() == Some(SignatureType::Key)
            && !weak_binding_hash(sig)
            && sig.verify_key(pk).is_ok()
        {
            if let Some(t) = created(sig).filter(|&t| t >= key_created) {
                selfsigs.push((t, sig));
            }
        }
    }
    let revocations = key
        .details
        .revocation_signatures
        .iter()
        .filter(|s| s.typ() == Some(SignatureType::KeyRevocation))
        .filter(|s| s.verify_key(pk).is_ok())
        .filter_map(|s| created(s).map(|t| (t, s)));
    let revoked = strongest(revocations);
    let name = format!("primary key {}", hex(pk.fingerprint().as_bytes()));
    let newest = selfsigs.iter().max_by_key(|(t, _)| *t).map(|(_, s)| *s);
    match newest {
        None => Validity {
            name,
            created: key_created,
            expires: None,
            revoked,
            can_sign: false,
            unbound: Some("it has no valid self-signature (User ID binding)".into()),
        },
        Some(sig) => Validity {
            name,
            created: key_created,
            expires: expiry(key_created, sig),
            revoked,
            can_sign: !has_key_flags(sig) || sig.key_flags().sign(),
            unbound: None,
        },
    }
}

/// A subkey's validity from its bindings and revocations by `primary`.
pub(crate) fn subkey(primary: &PublicKey, sub: &SignedPublicSubKey) -> Validity {
    let sk: &PublicSubkey = &sub.key;
    let key_created = sk.created_at().as_secs();
    let name = format!("subkey {}", hex(sk.fingerprint().as_bytes()));
    let mut bindings: Vec<(u32, &Signature)> = Vec::new();
    let mut revocations: Vec<(u32, &Signature)> = Vec::new();
    for sig in &sub.signatures {
        if weak_binding_hash(sig) || sig.verify_subkey_binding(primary, sk).is_err() {
            continue;
        }
        let Some(t) = created(sig) else { continue };
        match sig.typ() {
            Some(SignatureType::SubkeyBinding) if t >= key_created => {
                // A signing subkey must sign the primary back, or anyone could claim the
                // primary's subkey as theirs (RFC 9580 5.2.1, type 0x19).
                if sig.key_flags().sign() {
                    let back = sig.embedded_signature();
                    if back.is_none_or(|b| b.verify_primary_key_binding(sk, primary).is_err()) {
                        continue;
                    }
                }
                bindings.push((t, sig));
            }
            Some(SignatureType::SubkeyRevocation) => revocations.push((t, sig)),
            _ => {}
        }
    }
    let revoked = strongest(revocations.into_iter());
    match bindings.iter().max_by_key(|(t, _)| *t).map(|(_, s)| *s) {
        None => Validity {
            name,
            created: key_created,
            expires: None,
            revoked,
            can_sign: false,
            unbound: Some("no valid Subkey Binding Signature by its primary key".into()),
        },
        Some(sig) => Validity {
            name,
            created: key_created,
            expires: expiry(key_created, sig),
            revoked,
            can_sign: sig.key_flags().sign(),
            unbound: None,
        },
    }
}

fn has_key_flags(sig: &Signature) -> bool {
    sig.config().is_some_and(|c| {
        c.hashed_subpackets()
            .any(|p| matches!(p.data, pgp::packet::SubpacketData::KeyFlags(_)))
    })
}

/// `secs` as a UTC date and time, for messages ("2024-05-01 12:00:00 UTC").
pub(crate) fn utc(secs: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(u32::MAX), "2106-02-07 06:28:15 UTC");
    }

    #[test]
    fn hashes() {
        for ok in [
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha512,
            HashAlgorithm::Sha384,
        ] {
            assert_eq!(weak_data_hash(ok), None);
        }
        for weak in [
            HashAlgorithm::Md5,
            HashAlgorithm::Sha1,
            HashAlgorithm::Ripemd160,
            HashAlgorithm::Sha224,
        ] {
            assert!(weak_data_hash(weak).is_some(), "{weak:?}");
        }
    }

    #[test]
    fn validity_windows() {
        let v = Validity {
            name: "subkey X".into(),
            created: 100,
            expires: Some(200),
            revoked: None,
            can_sign: true,
            unbound: None,
        };
        assert_eq!(v.refuse_at(150), None);
        assert!(v.refuse_at(99).unwrap().contains("before subkey X existed"));
        assert!(v.refuse_at(200).unwrap().contains("expired"));
        let soft = Validity {
            revoked: Some(Revoked::Soft {
                since: 180,
                reason: "key superseded".into(),
            }),
            ..v.clone()
        };
        assert_eq!(soft.refuse_at(179), None);
        assert!(soft.refuse_at(180).unwrap().contains("superseded"));
        let hard = Validity {
            revoked: Some(Revoked::Hard {
                reason: "key compromised".into(),
            }),
            ..v
        };
        assert!(hard.refuse_at(150).unwrap().contains("compromised"));
    }
}
