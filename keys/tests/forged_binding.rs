//! A Subkey Revocation signature (type 0x28) is not a binding, whatever subpackets it carries.
//! rPGP's `verify_bindings` accepts the forged certificate below (the signature is valid
//! cryptographically, and that is all it checks); our policy must not take the subkey for a
//! signer. The forgery: a real primary and subkey, whose only subkey signature is a 0x28 by the
//! primary carrying the Signing key flag and the genuine back-signature.

use keys::{KeyRing, StreamVerifier};
use pgp::composed::{KeyType, SecretKeyParamsBuilder, SignedPublicKey, SubkeyParamsBuilder};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{KeyFlags, SignatureConfig, SignatureType, Subpacket, SubpacketData};
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, Password, Timestamp};

fn subpackets(fpr: pgp::types::Fingerprint) -> Vec<Subpacket> {
    vec![
        Subpacket::regular(SubpacketData::IssuerFingerprint(fpr)).unwrap(),
        Subpacket::regular(SubpacketData::SignatureCreationTime(Timestamp::now())).unwrap(),
    ]
}

#[test]
fn a_subkey_revocation_is_never_a_binding() {
    let mut params = SecretKeyParamsBuilder::default();
    params
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(true)
        .primary_user_id("Forged <forged@example.com>".into())
        .subkey(
            SubkeyParamsBuilder::default()
                .key_type(KeyType::Ed25519Legacy)
                .can_sign(true)
                .build()
                .unwrap(),
        );
    let secret = params
        .build()
        .unwrap()
        .generate(rand::thread_rng())
        .unwrap();
    let genuine: SignedPublicKey = secret.to_public_key();
    let sub_secret = &secret.secret_subkeys[0].key;
    let sub = &genuine.public_subkeys[0];
    let binding = sub
        .signatures
        .iter()
        .find(|s| s.typ() == Some(SignatureType::SubkeyBinding))
        .unwrap();
    let backsig = binding.embedded_signature().unwrap().clone();

    // The data signature the subkey makes.
    let data = b"release image";
    let mut cfg = SignatureConfig::v4(
        SignatureType::Binary,
        sub.key.algorithm(),
        HashAlgorithm::Sha512,
    );
    cfg.hashed_subpackets = subpackets(sub.key.fingerprint());
    let sig = cfg.sign(sub_secret, &Password::empty(), &data[..]).unwrap();
    let sig = pgp::composed::DetachedSignature::new(sig)
        .to_bytes()
        .unwrap();

    // With the genuine binding, the subkey's signature verifies.
    let ring = KeyRing::from_bytes(&genuine.to_bytes().unwrap()).unwrap();
    let mut v = StreamVerifier::new(&ring, &sig).unwrap();
    v.update(data);
    v.finish().unwrap();

    // Forge: the binding replaced by a revocation with the same flags and back-signature.
    let mut flags = KeyFlags::default();
    flags.set_sign(true);
    let mut rev = SignatureConfig::v4(
        SignatureType::SubkeyRevocation,
        genuine.primary_key.algorithm(),
        HashAlgorithm::Sha512,
    );
    rev.hashed_subpackets = subpackets(genuine.primary_key.fingerprint());
    rev.hashed_subpackets
        .push(Subpacket::regular(SubpacketData::KeyFlags(flags)).unwrap());
    rev.hashed_subpackets
        .push(Subpacket::regular(SubpacketData::EmbeddedSignature(Box::new(backsig))).unwrap());
    let rev = rev
        .sign_subkey_binding(
            &secret.primary_key,
            &genuine.primary_key,
            &Password::empty(),
            &sub.key,
        )
        .unwrap();
    let mut forged = genuine.clone();
    forged.public_subkeys[0].signatures = vec![rev];
    // rPGP checks signatures only: it accepts the forgery.
    forged.public_subkeys[0]
        .verify_bindings(&forged.primary_key)
        .expect("rPGP accepts a revocation among the bindings");

    let ring = KeyRing::from_bytes(&forged.to_bytes().unwrap()).unwrap();
    let err = match StreamVerifier::new(&ring, &sig) {
        Err(e) => e.to_string(),
        Ok(mut v) => {
            v.update(data);
            match v.finish() {
                Ok(w) => panic!(
                    "a subkey bound by a revocation verified ({})",
                    w.fingerprint
                ),
                Err(e) => e.to_string(),
            }
        }
    };
    assert!(err.contains("no valid Subkey Binding Signature"), "{err}");
}
