//! Our signatures verify with our verifier; tampering, wrong keys and empty rings fail clearly.

use keys::{clearsign, generate, sign_detached, KeyError, KeyRing, SecretKey, StreamVerifier};

fn pair(uid: &str) -> (SecretKey, KeyRing) {
    let (secret, public) = generate(uid).unwrap();
    (
        SecretKey::from_armored(secret.as_bytes()).unwrap(),
        KeyRing::from_armored(public.as_bytes()).unwrap(),
    )
}

fn verify_in_pieces(
    ring: &KeyRing,
    sig: &[u8],
    data: &[u8],
    piece: usize,
) -> Result<keys::Verified, KeyError> {
    let mut v = StreamVerifier::new(ring, sig)?;
    for c in data.chunks(piece) {
        v.update(c);
    }
    v.finish()
}

#[test]
fn detached_signature_verifies_in_pieces() {
    let (sk, ring) = pair("Test <t@example.com>");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sig = sign_detached(&sk, &data[..]).unwrap();
    assert_eq!(sig[0] & 0x80, 0x80, "binary packet, not armor");
    let v = verify_in_pieces(&ring, &sig, &data, 777).unwrap();
    assert_eq!(v.fingerprint, sk.fingerprint());
}

#[test]
fn tampered_data_is_a_bad_signature() {
    let (sk, ring) = pair("Test <t@example.com>");
    let mut data = vec![5u8; 10_000];
    let sig = sign_detached(&sk, &data[..]).unwrap();
    data[4321] ^= 1;
    let err = verify_in_pieces(&ring, &sig, &data, 1000).unwrap_err();
    assert!(matches!(err, KeyError::BadSignature { .. }), "{err}");
    assert!(err.to_string().contains("bad signature"), "{err}");
}

#[test]
fn wrong_key_names_the_issuer() {
    let (sk, _) = pair("A <a@example.com>");
    let (_, other) = pair("B <b@example.com>");
    let sig = sign_detached(&sk, &b"hello"[..]).unwrap();
    let err = StreamVerifier::new(&other, &sig).err().expect("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("no trusted key matches") && msg.contains(&sk.key_id()),
        "{msg}"
    );
}

#[test]
fn ring_with_several_keys_finds_the_signer() {
    let (sk, ring_a) = pair("A <a@example.com>");
    let (_, mut ring) = pair("B <b@example.com>");
    ring.extend(ring_a);
    assert_eq!(ring.len(), 2);
    let sig = sign_detached(&sk, &b"data"[..]).unwrap();
    verify_in_pieces(&ring, &sig, b"data", 2).unwrap();
}

#[test]
fn empty_ring_asks_for_a_key() {
    let (sk, _) = pair("A <a@example.com>");
    let sig = sign_detached(&sk, &b"x"[..]).unwrap();
    let err = StreamVerifier::new(&KeyRing::default(), &sig)
        .err()
        .expect("must fail");
    assert!(
        err.to_string().contains("no trusted keys; pass -k"),
        "{err}"
    );
}

#[test]
fn garbage_key_is_unparsable() {
    let err = KeyRing::from_armored(b"not a key at all").unwrap_err();
    assert!(err.to_string().contains("unparsable key"), "{err}");
    let err = SecretKey::from_armored(
        b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxx\n-----END PGP PRIVATE KEY BLOCK-----\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("unparsable key"), "{err}");
}

#[test]
fn public_key_is_not_a_secret_key() {
    let (secret, public) = generate("A <a@example.com>").unwrap();
    assert!(SecretKey::from_armored(public.as_bytes()).is_err());
    assert!(secret.contains("PRIVATE KEY BLOCK") && public.contains("PUBLIC KEY BLOCK"));
}

#[test]
fn signatures_are_reproducible_with_a_fixed_signing_time() {
    let (sk, ring) = pair("A <a@example.com>");
    let sk = sk.with_signing_time(4_000_000_000);
    let a = sign_detached(&sk, &b"same"[..]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = sign_detached(&sk, &b"same"[..]).unwrap();
    let c1 = clearsign(&sk, "text\n").unwrap();
    let c2 = clearsign(&sk, "text\n").unwrap();
    assert_eq!(a, b);
    assert_eq!(c1, c2);
    let v = verify_in_pieces(&ring, &a, b"same", 3).unwrap();
    assert_eq!(v.created, Some(4_000_000_000));
}

#[test]
fn clearsigned_text_carries_the_text() {
    let (sk, _) = pair("A <a@example.com>");
    let text = "# MD5 HASH\nabc  file\n- dash line\n";
    let signed = clearsign(&sk, text).unwrap();
    assert!(
        signed.starts_with("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"),
        "{signed}"
    );
    assert!(
        signed.contains("# MD5 HASH\nabc  file\n- - dash line\n-----BEGIN PGP SIGNATURE"),
        "{signed}"
    );
    assert!(signed.contains("-----BEGIN PGP SIGNATURE-----"));
}

#[test]
fn embedded_ring_parses_and_an_empty_one_says_so() {
    let ring = KeyRing::embedded().expect("every keys/*.asc must parse");
    if ring.is_empty() {
        let (sk, _) = pair("A <a@example.com>");
        let sig = sign_detached(&sk, &b"x"[..]).unwrap();
        let err = StreamVerifier::new(&ring, &sig).err().expect("must fail");
        assert!(err.to_string().contains("no trusted keys"), "{err}");
    }
}
