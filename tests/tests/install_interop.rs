//! coreos-install with the stock tools on the other side: mirrors compressed by `bzip2`,
//! `lbzip2`, `pbzip2` and `pzstd` (and concatenations of them) and signed by `gpg
//! --detach-sign` with a gpg-made RSA key exported by `gpg --export --armor`, served by nginx
//! (over HTTPS behind a private CA made by `openssl` too); a key gpg revoked; and `coreos-build
//! release` signing with a key exported by `gpg --export-secret-keys`, verified by gpg and
//! installed.

use e2e::install_fixture::*;
use e2e::{bin, cache, lock, require, run, run_fail, sha256_file};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How each version of the stock mirror is compressed (a shell pipeline over $RAW).
const STOCK: &[(&str, &str)] = &[
    ("2.0.0", "bzip2 -9 -c $RAW"),
    (
        "2.0.1",
        "head -c 8M $RAW | bzip2 -9 -c; tail -c +$((8*1024*1024+1)) $RAW | lbzip2 -9 -c",
    ),
    ("2.0.2", "pbzip2 -9 -c < $RAW"),
    ("2.0.3", "lbzip2 -9 -c < $RAW"),
    ("2.0.4", "pzstd -q -p 2 -c $RAW"),
];

struct Stock {
    dir: PathBuf,
    gnupg: PathBuf,
    key: PathBuf,
    raw: PathBuf,
}

fn gpg(home: &Path) -> Command {
    let mut c = Command::new("gpg");
    c.arg("--homedir").arg(home).args([
        "--batch",
        "--yes",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
    ]);
    c
}

/// The stock mirror, made once: one version per compression, each signed by gpg with an RSA
/// key; the key exported armored.
fn stock_mirror() -> Stock {
    for t in ["gpg", "bzip2", "lbzip2", "pbzip2", "pzstd", "nginx"] {
        require(t);
    }
    let m = mirror();
    let _l = lock("install-stock-mirror");
    let dir = cache().join("install-stock-mirror");
    let s = Stock {
        gnupg: dir.join("gnupg"),
        key: dir.join("stock-key.asc"),
        raw: m.raw.clone(),
        dir: dir.clone(),
    };
    if dir.join(".complete").exists() {
        return s;
    }
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&s.gnupg).unwrap();
    std::fs::set_permissions(
        &s.gnupg,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    run(gpg(&s.gnupg).args([
        "--quick-gen-key",
        "Stock Release <stock@example.com>",
        "rsa2048",
        "sign",
        "never",
    ]));
    let armored = run(gpg(&s.gnupg).args(["--export", "--armor", "stock@example.com"])).stdout;
    fs::write(&s.key, armored).unwrap();
    let board = dir.join(BOARD);
    for (version, pipeline) in STOCK {
        let rel = board.join(version);
        fs::create_dir_all(&rel).unwrap();
        let image = rel.join(IMAGE);
        sh(&format!(
            "RAW={raw}; ({pipeline}) > {out}",
            raw = m.raw.display(),
            out = image.display()
        ));
        run(gpg(&s.gnupg)
            .args(["--local-user", "stock@example.com", "--detach-sign", "-o"])
            .arg(rel.join(format!("{IMAGE}.sig")))
            .arg(&image));
        fs::write(
            rel.join("version.txt"),
            format!("COREOS_BUILD=2\nCOREOS_VERSION={version}\n"),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink(STOCK[0].0, board.join("current")).unwrap();
    fs::write(dir.join(".complete"), "").unwrap();
    s
}

/// Every stock compression installs with -k and the gpg-exported key; the disk is the image.
#[test]
fn stock_tool_mirrors_install_with_the_gpg_exported_key() {
    let s = stock_mirror();
    let web = Nginx::start(&s.dir);
    for (version, pipeline) in STOCK {
        let d = disk(300);
        let out = run(&mut install(&[
            "-d",
            &dev(&d),
            "-V",
            version,
            "-b",
            &web.base(),
            "-k",
            s.key.to_str().unwrap(),
        ]));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("Success!"),
            "{version} ({pipeline}): {stdout}"
        );
        assert_installed(&d, &s.raw, &[]);
    }
}

/// gpg revokes the release key (key compromised) and the revocation is imported and exported
/// with the key: the install stops before writing, naming the revocation.
#[test]
fn a_key_revoked_with_gpg_is_refused_before_any_write() {
    let s = stock_mirror();
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    run(gpg(home.path()).args([
        "--quick-gen-key",
        "Revoked <revoked@example.com>",
        "ed25519",
        "sign",
        "never",
    ]));
    let mirror = tempfile::tempdir_in(cache()).unwrap();
    let rel = mirror.path().join(BOARD).join("2.0.0");
    fs::create_dir_all(&rel).unwrap();
    let src = s.dir.join(BOARD).join("2.0.0");
    fs::hard_link(src.join(IMAGE), rel.join(IMAGE)).unwrap();
    fs::copy(src.join("version.txt"), rel.join("version.txt")).unwrap();
    run(gpg(home.path())
        .args(["--local-user", "revoked@example.com", "--detach-sign", "-o"])
        .arg(rel.join(format!("{IMAGE}.sig")))
        .arg(rel.join(IMAGE)));
    // --gen-revoke asks: create? (y), reason (1 = key has been compromised), description
    // (empty line ends it), okay? (y).
    let rev = home.path().join("revoke.asc");
    // --gen-revoke refuses --batch; --no-tty and --command-fd drive it instead.
    let mut c = Command::new("gpg");
    c.arg("--homedir")
        .arg(home.path())
        .args([
            "--no-tty",
            "--yes",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ])
        .args(["--command-fd", "0", "--status-fd", "2", "--output"])
        .arg(&rev)
        .args(["--gen-revoke", "revoked@example.com"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"y\n1\n\ny\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && rev.exists(),
        "gpg --gen-revoke: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    run(gpg(home.path()).arg("--import").arg(&rev));
    let key = home.path().join("revoked-key.asc");
    fs::write(
        &key,
        run(gpg(home.path()).args(["--export", "--armor", "revoked@example.com"])).stdout,
    )
    .unwrap();
    let web = Nginx::start(mirror.path());
    let d = disk(300);
    let before = sha256_file(&d.file);
    let msg = run_fail(&mut install(&[
        "-d",
        &dev(&d),
        "-b",
        &web.base(),
        "-V",
        "2.0.0",
        "-k",
        key.to_str().unwrap(),
    ]));
    assert!(
        msg.contains("revoked (key compromised)") && msg.contains(IMAGE),
        "{msg}"
    );
    assert_eq!(
        sha256_file(&d.file),
        before,
        "a refused install touched the disk"
    );
}

/// An HTTPS mirror behind a private CA (made with openssl): refused without the CA, installed
/// with --ca-file.
#[test]
fn https_mirror_behind_a_private_ca_needs_ca_file() {
    require("openssl");
    let s = stock_mirror();
    let pki = tempfile::tempdir().unwrap();
    let p = pki.path().display();
    sh(&format!(
        "cd {p}
         openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=Test Mirror CA' \
           -keyout ca.key -out ca.pem 2>/dev/null
         openssl req -newkey rsa:2048 -nodes -subj '/CN=127.0.0.1' -keyout srv.key -out srv.csr 2>/dev/null
         printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext
         openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
           -extfile ext -out srv.pem 2>/dev/null"
    ));
    let web = Nginx::start_tls(
        &s.dir,
        &pki.path().join("srv.pem"),
        &pki.path().join("srv.key"),
    );
    let d = disk(300);
    let msg = run_fail(&mut install(&[
        "-d",
        &dev(&d),
        "-b",
        &web.https_base(),
        "-k",
        s.key.to_str().unwrap(),
        "--retries",
        "0",
    ]));
    assert!(msg.to_lowercase().contains("certificate"), "{msg}");
    assert_no_usr_a(&d, &msg);
    let out = run(&mut install(&[
        "-d",
        &dev(&d),
        "-b",
        &web.https_base(),
        "-k",
        s.key.to_str().unwrap(),
        "--ca-file",
        pki.path().join("ca.pem").to_str().unwrap(),
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Success!"));
    assert_installed(&d, &s.raw, &[]);
}

/// The other direction: gpg makes the release key, `coreos-build release` signs with the
/// secret key gpg exported (and warns that the file is world-readable), gpg verifies the
/// signature, and coreos-install installs the release with the public key gpg exported.
#[test]
fn release_signed_with_a_gpg_exported_key_verifies_in_gpg_and_installs() {
    let s = stock_mirror();
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    run(gpg(home.path()).args([
        "--quick-gen-key",
        "Builder <builder@example.com>",
        "rsa2048",
        "sign",
        "never",
    ]));
    let secret = home.path().join("secret.asc");
    fs::write(
        &secret,
        run(gpg(home.path()).args(["--export-secret-keys", "--armor", "builder@example.com"]))
            .stdout,
    )
    .unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let public = home.path().join("public.asc");
    fs::write(
        &public,
        run(gpg(home.path()).args(["--export", "--armor", "builder@example.com"])).stdout,
    )
    .unwrap();
    let out_mirror = tempfile::tempdir_in(cache()).unwrap();
    let out = run(Command::new(bin("coreos-build"))
        .args(["release", "--from-image"])
        .arg(&s.raw)
        .args(["--version", "3.0.0", "--no-oem", "--output"])
        .arg(out_mirror.path())
        .arg("--signing-key")
        .arg(&secret));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("readable by others") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    let rel = out_mirror.path().join(BOARD).join("3.0.0");
    let verify = run(gpg(home.path())
        .arg("--verify")
        .arg(rel.join(format!("{IMAGE}.sig")))
        .arg(rel.join(IMAGE)));
    assert!(
        String::from_utf8_lossy(&verify.stderr).contains("Good signature"),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let web = Nginx::start(out_mirror.path());
    let d = disk(300);
    let out = run(&mut install(&[
        "-d",
        &dev(&d),
        "-V",
        "3.0.0",
        "-b",
        &web.base(),
        "-k",
        public.to_str().unwrap(),
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Success!"));
    assert_installed(&d, &s.raw, &[]);
}
