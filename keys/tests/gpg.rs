//! Interoperability with gpg in both directions: gpg verifies what we sign, we verify what gpg
//! signs (Ed25519 and RSA keys, and a signing subkey).

use keys::{clearsign, generate, sign_detached, KeyRing, SecretKey, StreamVerifier};
use std::path::Path;
use std::process::Command;

fn gpg(home: &Path) -> Command {
    let ok = Command::new("sh")
        .arg("-c")
        .arg("command -v gpg")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "gpg is not installed: run ci/install-deps");
    let mut c = Command::new("gpg");
    c.arg("--homedir").arg(home).args([
        "--batch",
        "--no-tty",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
    ]);
    c
}

fn run(c: &mut Command) -> String {
    let out = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{c:?} failed:\n{text}");
    text
}

fn home() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    d
}

#[test]
fn gpg_verifies_our_signatures() {
    let h = home();
    let (secret, public) = generate("Release <release@example.com>").unwrap();
    std::fs::write(h.path().join("pub.asc"), &public).unwrap();
    run(gpg(h.path()).arg("--import").arg(h.path().join("pub.asc")));
    let sk = SecretKey::from_armored(secret.as_bytes()).unwrap();

    let data = h.path().join("data.bin");
    std::fs::write(&data, vec![42u8; 300_000]).unwrap();
    let sig = sign_detached(&sk, std::fs::File::open(&data).unwrap()).unwrap();
    std::fs::write(h.path().join("data.bin.sig"), &sig).unwrap();
    let out = run(gpg(h.path())
        .arg("--verify")
        .arg(h.path().join("data.bin.sig"))
        .arg(&data));
    assert!(out.contains("Good signature"), "{out}");

    // A changed file must be rejected by gpg too.
    std::fs::write(&data, vec![43u8; 300_000]).unwrap();
    let out = gpg(h.path())
        .arg("--verify")
        .arg(h.path().join("data.bin.sig"))
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());

    let text = "# MD5 HASH\n0123  a file\n-- not a header\n";
    std::fs::write(h.path().join("d.asc"), clearsign(&sk, text).unwrap()).unwrap();
    let out = run(gpg(h.path())
        .arg("--output")
        .arg(h.path().join("d.out"))
        .arg("--decrypt")
        .arg(h.path().join("d.asc")));
    assert!(out.contains("Good signature"), "{out}");
    assert_eq!(
        std::fs::read_to_string(h.path().join("d.out")).unwrap(),
        text
    );
}

/// gpg makes a key of `algo` (plus, optionally, a signing subkey) and signs; we verify, and
/// reject tampered data and other keys.
fn we_verify_gpg(algo: &str, subkey: bool) {
    let h = home();
    let uid = format!("Gpg {algo} <gpg@example.com>");
    run(gpg(h.path()).args(["--quick-gen-key", &uid, algo, "sign,cert", "never"]));
    if subkey {
        let fpr = run(gpg(h.path()).args(["--with-colons", "--list-keys", &uid]));
        let fpr = fpr
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .unwrap()
            .split(':')
            .nth(9)
            .unwrap()
            .to_string();
        run(gpg(h.path()).args(["--quick-add-key", &fpr, algo, "sign", "never"]));
    }
    let pubkey = run(gpg(h.path()).args(["--armor", "--export", &uid]));
    let data = h.path().join("data");
    std::fs::write(
        &data,
        (0..200_000u32).map(|i| (i % 253) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    run(gpg(h.path()).arg("--detach-sign").arg(&data));
    let sig = std::fs::read(h.path().join("data.sig")).unwrap();
    let bytes = std::fs::read(&data).unwrap();

    let ring = KeyRing::from_armored(pubkey.as_bytes()).unwrap();
    let mut v = StreamVerifier::new(&ring, &sig).unwrap();
    for c in bytes.chunks(4096) {
        v.update(c);
    }
    v.finish().unwrap();

    let mut v = StreamVerifier::new(&ring, &sig).unwrap();
    v.update(&bytes[1..]);
    assert!(v
        .finish()
        .unwrap_err()
        .to_string()
        .contains("bad signature"));

    // The armored form of the same signature verifies too.
    run(gpg(h.path())
        .args(["--yes", "--armor", "--detach-sign"])
        .arg(&data));
    let armored = std::fs::read(h.path().join("data.asc")).unwrap();
    let mut v = StreamVerifier::new(&ring, &armored).unwrap();
    v.update(&bytes);
    v.finish().unwrap();

    let (_, other) = generate("Other <o@example.com>").unwrap();
    let err = StreamVerifier::new(&KeyRing::from_armored(other.as_bytes()).unwrap(), &sig)
        .err()
        .unwrap();
    assert!(err.to_string().contains("no trusted key matches"), "{err}");
}

#[test]
fn we_verify_gpg_ed25519() {
    we_verify_gpg("ed25519", false);
}

#[test]
fn we_verify_gpg_rsa() {
    we_verify_gpg("rsa2048", false);
}

#[test]
fn we_verify_gpg_signing_subkey() {
    we_verify_gpg("ed25519", true);
}

#[test]
fn we_sign_with_a_gpg_exported_secret_key() {
    let h = home();
    run(gpg(h.path()).args([
        "--quick-gen-key",
        "Exported <e@example.com>",
        "ed25519",
        "sign,cert",
        "never",
    ]));
    let secret = run(gpg(h.path()).args([
        "--armor",
        "--export-secret-keys",
        "Exported <e@example.com>",
    ]));
    let secret = &secret[secret.find("-----BEGIN").unwrap()..];
    let sk = SecretKey::from_armored(secret.as_bytes()).unwrap();
    let data = h.path().join("f");
    std::fs::write(&data, b"payload").unwrap();
    std::fs::write(
        h.path().join("f.sig"),
        sign_detached(&sk, &b"payload"[..]).unwrap(),
    )
    .unwrap();
    let out = run(gpg(h.path())
        .arg("--verify")
        .arg(h.path().join("f.sig"))
        .arg(&data));
    assert!(out.contains("Good signature"), "{out}");
}
