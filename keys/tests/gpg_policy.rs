//! The signature policy against keys and signatures real gpg made: revoked (hard and soft,
//! primary and subkey), expired (primary and subkey), signatures older than their key, weak
//! digests. gpg's own `--verify` says "Good signature" (exit 0) to several of these; we refuse
//! them. Times are set with gpg's --faked-system-time, so the cases do not depend on today's
//! date.

use keys::{KeyRing, StreamVerifier};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const DAY: u64 = 86_400;

struct Gpg {
    home: tempfile::TempDir,
    data: PathBuf,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Gpg {
    fn new() -> Gpg {
        let home = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            home.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let data = home.path().join("data");
        std::fs::write(&data, b"the signed release image").unwrap();
        Gpg { home, data }
    }

    fn cmd(&self, at: Option<u64>) -> Command {
        let mut c = Command::new("gpg");
        c.arg("--homedir").arg(self.home.path()).args([
            "--no-tty",
            "--yes",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ]);
        if let Some(t) = at {
            c.arg("--faked-system-time").arg(format!("{t}!"));
        }
        c
    }

    fn run(&self, at: Option<u64>, args: &[&str]) -> Vec<u8> {
        self.run_with(at, args, None)
    }

    fn run_with(&self, at: Option<u64>, args: &[&str], input: Option<&str>) -> Vec<u8> {
        let mut c = self.cmd(at);
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("gpg is installed (ci/install-deps)");
        let mut stdin = child.stdin.take().unwrap();
        if let Some(i) = input {
            stdin.write_all(i.as_bytes()).unwrap();
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "gpg {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn gen_key(&self, at: Option<u64>, uid: &str, algo: &str) -> String {
        self.run(
            at,
            &[
                "--batch",
                "--quick-gen-key",
                uid,
                algo,
                "sign,cert",
                "never",
            ],
        );
        self.fingerprint(uid)
    }

    fn fingerprint(&self, uid: &str) -> String {
        let out = self.run(None, &["--with-colons", "--list-keys", uid]);
        String::from_utf8_lossy(&out)
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .unwrap()
            .split(':')
            .nth(9)
            .unwrap()
            .to_string()
    }

    /// A detached signature by `signer` made at `at` (None: now).
    fn sign(&self, at: Option<u64>, signer: &str, extra: &[&str]) -> Vec<u8> {
        let out = self.home.path().join("sig");
        let mut args = vec!["--batch", "--local-user", signer, "--detach-sign", "-o"];
        let out_s = out.to_str().unwrap().to_string();
        args.push(&out_s);
        args.extend_from_slice(extra);
        let data = self.data.to_str().unwrap().to_string();
        args.push(&data);
        self.run(at, &args);
        std::fs::read(out).unwrap()
    }

    /// `gpg --gen-revoke` with the menu's reason (0 none, 1 compromised, 2 superseded, 3 no
    /// longer used), made at `at` and imported.
    fn revoke(&self, at: Option<u64>, uid: &str, reason: u32) {
        let rev = self.home.path().join("rev.asc");
        let rev_s = rev.to_str().unwrap().to_string();
        self.run_with(
            at,
            &["--command-fd", "0", "-o", &rev_s, "--gen-revoke", uid],
            Some(&format!("y\n{reason}\n\ny\n")),
        );
        self.run(None, &["--batch", "--import", &rev_s]);
    }

    fn ring(&self, uid: &str) -> KeyRing {
        KeyRing::from_armored(&self.run(None, &["--export", "--armor", uid])).unwrap()
    }

    fn verify(&self, ring: &KeyRing, sig: &[u8]) -> Result<keys::Verified, String> {
        let mut v = StreamVerifier::new(ring, sig).map_err(|e| e.to_string())?;
        v.update(&std::fs::read(&self.data).unwrap());
        v.finish().map_err(|e| e.to_string())
    }

    /// What gpg itself says: its exit status and stderr.
    fn gpg_verify(&self, sig: &[u8]) -> (bool, String) {
        let p = self.home.path().join("check.sig");
        std::fs::write(&p, sig).unwrap();
        let out = self
            .cmd(None)
            .arg("--batch")
            .arg("--verify")
            .arg(&p)
            .arg(&self.data)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn refused(result: Result<keys::Verified, String>, expect: &str) {
    match result {
        Ok(v) => panic!(
            "verified (by {}), expected a refusal naming {expect:?}",
            v.fingerprint
        ),
        Err(e) => assert!(e.contains(expect), "expected {expect:?} in: {e}"),
    }
}

#[test]
fn a_hard_revocation_voids_every_signature_of_the_key() {
    for (menu, reason) in [(0, "no reason specified"), (1, "key compromised")] {
        let g = Gpg::new();
        let t0 = now() - 30 * DAY;
        g.gen_key(Some(t0), "Rel <rel@example.com>", "ed25519");
        let old = g.sign(Some(t0 + DAY), "rel@example.com", &[]);
        assert!(g.verify(&g.ring("rel@example.com"), &old).is_ok());
        g.revoke(Some(t0 + 10 * DAY), "rel@example.com", menu);
        let ring = g.ring("rel@example.com");
        refused(g.verify(&ring, &old), &format!("revoked ({reason})"));
        // gpg warns about the revoked key, and (2.2) still calls it a good signature.
        let (_, said) = g.gpg_verify(&old);
        assert!(said.contains("revoked"), "{said}");
    }
}

#[test]
fn a_soft_revocation_keeps_signatures_made_before_it() {
    for (menu, reason) in [(2, "key superseded"), (3, "key retired")] {
        let g = Gpg::new();
        let t0 = now() - 30 * DAY;
        g.gen_key(Some(t0), "Rel <rel@example.com>", "ed25519");
        let before = g.sign(Some(t0 + DAY), "rel@example.com", &[]);
        let after = g.sign(Some(t0 + 20 * DAY), "rel@example.com", &[]);
        g.revoke(Some(t0 + 10 * DAY), "rel@example.com", menu);
        let ring = g.ring("rel@example.com");
        g.verify(&ring, &before)
            .unwrap_or_else(|e| panic!("{reason}: a signature older than the revocation: {e}"));
        refused(g.verify(&ring, &after), reason);
    }
}

#[test]
fn a_revoked_subkey_voids_its_signatures_and_only_them() {
    let g = Gpg::new();
    let (fpr, sub) = key_with_signing_subkey(&g, now());
    let by_subkey = g.sign(None, "rel@example.com", &[]);
    let primary = format!("{fpr}!");
    let by_primary = g.sign(None, &primary, &[]);
    let ring = g.ring("rel@example.com");
    let v = g.verify(&ring, &by_subkey).unwrap();
    assert_eq!(
        v.fingerprint, sub,
        "gpg signs with the newest signing subkey"
    );
    // key 1, revkey, confirm, reason 1 (compromised), no description, confirm, save.
    g.run_with(
        None,
        &["--command-fd", "0", "--edit-key", &fpr],
        Some("key 1\nrevkey\ny\n1\n\ny\nsave\n"),
    );
    let ring = g.ring("rel@example.com");
    refused(g.verify(&ring, &by_subkey), "subkey");
    refused(g.verify(&ring, &by_subkey), "revoked (key compromised)");
    assert_eq!(g.verify(&ring, &by_primary).unwrap().fingerprint, fpr);
}

#[test]
fn a_key_expired_when_it_signed_is_refused() {
    let g = Gpg::new();
    let t0 = now() - 3 * 365 * DAY;
    let fpr = g.gen_key(Some(t0), "Rel <rel@example.com>", "rsa2048");
    let while_valid = g.sign(Some(t0 + 10 * DAY), "rel@example.com", &[]);
    let today = g.sign(None, "rel@example.com", &[]);
    // A day after creation the owner set a one-year expiry (gpg --quick-set-expire).
    g.run(
        Some(t0 + DAY),
        &["--batch", "--quick-set-expire", &fpr, "1y"],
    );
    let ring = g.ring("rel@example.com");
    g.verify(&ring, &while_valid).unwrap();
    refused(g.verify(&ring, &today), "expired");
    let (ok, said) = g.gpg_verify(&today);
    assert!(said.contains("expired"), "{said}");
    let _ = ok;
}

#[test]
fn a_signature_older_than_its_key_is_refused() {
    let g = Gpg::new();
    let t0 = now() - 10 * DAY;
    g.gen_key(Some(t0), "Rel <rel@example.com>", "ed25519");
    let sig = g.sign(
        Some(t0 - DAY),
        "rel@example.com",
        &["--ignore-time-conflict"],
    );
    refused(
        g.verify(&g.ring("rel@example.com"), &sig),
        "before primary key",
    );
}

#[test]
fn weak_digests_are_refused_and_strong_ones_verify() {
    let g = Gpg::new();
    g.gen_key(None, "Rel <rel@example.com>", "rsa2048");
    let ring = g.ring("rel@example.com");
    for alg in ["SHA1", "SHA224", "RIPEMD160"] {
        let sig = g.sign(None, "rel@example.com", &["--digest-algo", alg]);
        refused(g.verify(&ring, &sig), alg);
        // gpg verifies them all.
        assert!(g.gpg_verify(&sig).0, "gpg --verify {alg}");
    }
    for alg in ["SHA256", "SHA384", "SHA512"] {
        let sig = g.sign(None, "rel@example.com", &["--digest-algo", alg]);
        g.verify(&ring, &sig)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
    }
}

/// A key with a signing subkey, both made at `at`: (primary, subkey) fingerprints.
fn key_with_signing_subkey(g: &Gpg, at: u64) -> (String, String) {
    let fpr = g.gen_key(Some(at), "Rel <rel@example.com>", "ed25519");
    g.run(
        Some(at),
        &[
            "--batch",
            "--quick-add-key",
            &fpr,
            "ed25519",
            "sign",
            "never",
        ],
    );
    let out = g.run(None, &["--with-colons", "--list-keys", &fpr]);
    let text = String::from_utf8_lossy(&out);
    let fprs: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("fpr:"))
        .filter_map(|l| l.split(':').nth(9))
        .collect();
    assert_eq!(fprs.len(), 2, "a primary and one subkey:\n{text}");
    (fpr.clone(), fprs[1].to_string())
}

#[test]
fn a_soft_revoked_subkey_keeps_signatures_made_before_it() {
    for (menu, reason) in [(2, "key superseded"), (3, "key retired")] {
        let g = Gpg::new();
        let t0 = now() - 30 * DAY;
        let (fpr, sub) = key_with_signing_subkey(&g, t0);
        let by_sub = format!("{sub}!");
        let before = g.sign(Some(t0 + DAY), &by_sub, &[]);
        let after = g.sign(Some(t0 + 20 * DAY), &by_sub, &[]);
        // key 1, revkey, confirm, the reason, no description, confirm, save.
        g.run_with(
            Some(t0 + 10 * DAY),
            &["--command-fd", "0", "--edit-key", &fpr],
            Some(&format!("key 1\nrevkey\ny\n{menu}\n\ny\nsave\n")),
        );
        let ring = g.ring("rel@example.com");
        let v = g
            .verify(&ring, &before)
            .unwrap_or_else(|e| panic!("{reason}: a signature older than the revocation: {e}"));
        assert_eq!(v.fingerprint, sub);
        refused(g.verify(&ring, &after), reason);
    }
}

#[test]
fn a_subkey_expired_when_it_signed_is_refused() {
    let g = Gpg::new();
    let t0 = now() - 3 * 365 * DAY;
    let (fpr, sub) = key_with_signing_subkey(&g, t0);
    let by_sub = format!("{sub}!");
    let while_valid = g.sign(Some(t0 + 10 * DAY), &by_sub, &[]);
    let today = g.sign(None, &by_sub, &[]);
    // A day after creation the owner gave the subkey, not the primary, a one-year expiry.
    g.run(
        Some(t0 + DAY),
        &["--batch", "--quick-set-expire", &fpr, "1y", &sub],
    );
    let ring = g.ring("rel@example.com");
    assert_eq!(g.verify(&ring, &while_valid).unwrap().fingerprint, sub);
    refused(g.verify(&ring, &today), "expired");
    // The primary itself never expires: its own signatures of today still verify.
    let by_primary = g.sign(None, &format!("{fpr}!"), &[]);
    assert_eq!(g.verify(&ring, &by_primary).unwrap().fingerprint, fpr);
}
