//! The update payload (`coreos-build payload`, `release --update-key`, `keygen`) judged by
//! consumers that are not our decoder: `protoc --decode_raw` reads the manifest, `openssl`
//! verifies the RSA signature over the signed range with the `.pub.pem`, `bzip2 -dc` of the
//! blobs in extent order gives back USR-A (`dd` of the image) and the ESP's kernel (`mtype`),
//! gpg verifies the release signatures; Flatcar's own reader (`decode_payload` with its
//! `update_metadata.proto`) reproduces USR-A and the kernel; and the library's verify + apply
//! onto a loop device.

use e2e::{bin, require, run, run_fail, Loop};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

const EPOCH: &str = "1700000000";
const IMAGE: &str = "coreos_production_image.bin";
/// USR-A of the base layout (the reference's numbers, not our layout code).
const USR_A_OFFSET: u64 = 270336 * 512;
const USR_A_BYTES: u64 = 2097152 * 512;
const ESP_OFFSET: u64 = 4096 * 512;

fn build() -> Command {
    let mut c = Command::new(bin("coreos-build"));
    c.arg("--quiet").env("SOURCE_DATE_EPOCH", EPOCH);
    c
}

/// Shared by every test: a small USR tree built into an image once, and one key pair.
struct Fixture {
    _dir: tempfile::TempDir,
    image: PathBuf,
    keys: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let usr = dir.path().join("usr");
        for d in ["bin", "lib/modules/6.1", "share/doc", "boot"] {
            fs::create_dir_all(usr.join(d)).unwrap();
        }
        let text: Vec<u8> = (0..6_000_000u32)
            .map(|i| b"coreos update payload "[(i / 3 % 22) as usize])
            .collect();
        fs::write(usr.join("share/doc/text"), &text).unwrap();
        let noise: Vec<u8> = (0..2_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        fs::write(usr.join("bin/busybox"), noise).unwrap();
        fs::write(
            usr.join("lib/modules/6.1/vmlinuz"),
            b"MZ not really a kernel ".repeat(40_000),
        )
        .unwrap();
        std::os::unix::fs::symlink("../lib/modules/6.1/vmlinuz", usr.join("boot/vmlinuz")).unwrap();
        let out = dir.path().join("out");
        run(build()
            .args(["image", "--usr"])
            .arg(&usr)
            .arg("--output")
            .arg(&out)
            .args([
                "--version",
                "1.2.3",
                "--board",
                "amd64-usr",
                "--group",
                "beta",
            ]));
        let keys = dir.path().join("keys");
        run(build().arg("keygen").arg("--output").arg(&keys));
        Fixture {
            image: out.join(IMAGE),
            keys,
            _dir: dir,
        }
    })
}

fn key() -> PathBuf {
    fixture().keys.join("update-payload-key.pem")
}

fn pub_key() -> PathBuf {
    fixture().keys.join("update-payload-key.pub.pem")
}

/// `coreos-build payload` of the fixture's image into `out`.
fn make_payload(out: &Path, extra: &[&str]) {
    run(build()
        .arg("payload")
        .arg("--image")
        .arg(&fixture().image)
        .arg("--update-key")
        .arg(key())
        .arg("--output")
        .arg(out)
        .args(extra));
}

/// SHA-256 of `len` bytes of `path` from `offset`, read in pieces (USR-A is 1 GiB).
fn sha256_range(path: &Path, offset: u64, len: u64) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let f = fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 8 << 20];
    let mut at = offset;
    while at < offset + len {
        let n = (offset + len - at).min(buf.len() as u64) as usize;
        f.read_exact_at(&mut buf[..n], at).unwrap();
        h.update(&buf[..n]);
        at += n as u64;
    }
    h.finalize().into()
}

/// SHA-256 of the image's USR-A, as dd would read it.
fn usr_a_sha256() -> [u8; 32] {
    static H: OnceLock<[u8; 32]> = OnceLock::new();
    *H.get_or_init(|| sha256_range(&fixture().image, USR_A_OFFSET, USR_A_BYTES))
}

fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(b).into()
}

fn esp_kernel(dir: &Path) -> Vec<u8> {
    require("mtype");
    let esp = dir.join("esp.img");
    run(Command::new("dd")
        .arg(format!("if={}", fixture().image.display()))
        .arg(format!("of={}", esp.display()))
        .args([
            "bs=512",
            &format!("skip={}", ESP_OFFSET / 512),
            "count=262144",
            "status=none",
        ]));
    run(Command::new("mtype")
        .arg("-i")
        .arg(&esp)
        .arg("::coreos/vmlinuz-a"))
    .stdout
}

fn bunzip2(blob: &[u8]) -> Vec<u8> {
    let mut child = Command::new("bzip2")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let blob = blob.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&blob).unwrap());
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.status.success(), "bzip2 -dc refused a blob");
    out.stdout
}

/// Decode a target's operations with stock bzip2, placing each at its extent.
fn decode_with_bzip2(p: &[u8], ops: &[payload::PlannedOp], start: u64, size: u64) -> Vec<u8> {
    let mut out = vec![0xa5u8; size as usize];
    for op in ops {
        let blob = &p[(start + op.data.start) as usize..(start + op.data.end) as usize];
        let data = match op.kind {
            payload::OpKind::ReplaceBz => bunzip2(blob),
            payload::OpKind::Replace => blob.to_vec(),
        };
        assert_eq!(data.len() as u64, op.dst.end - op.dst.start, "{}", op.name);
        out[op.dst.start as usize..op.dst.end as usize].copy_from_slice(&data);
    }
    out
}

#[test]
fn payload_is_read_by_protoc_openssl_and_bzip2() {
    require("protoc");
    require("openssl");
    require("bzip2");
    let dir = tempfile::tempdir().unwrap();
    let p_path = dir.path().join("coreos_production_update.gz");
    make_payload(&p_path, &[]);
    let p = fs::read(&p_path).unwrap();
    let head = payload::parse_header_and_manifest(&p).unwrap();
    let n = head.header.manifest_len as usize;

    // protoc reads the manifest with no schema; the fields are where update_engine looks.
    let decode_raw = |bytes: &[u8]| {
        let f = dir.path().join("message.pb");
        fs::write(&f, bytes).unwrap();
        let out = run(Command::new("sh")
            .arg("-c")
            .arg(format!("protoc --decode_raw < {}", f.display())));
        String::from_utf8(out.stdout).unwrap()
    };
    let text = decode_raw(&p[20..20 + n]);
    let top = |field: &str| text.lines().filter(|l| *l == format!("{field} {{")).count();
    assert_eq!(top("1"), 1024, "1 MiB partition operations over 1 GiB");
    assert_eq!(top("10"), 1, "one procedure");
    for needle in [
        "\n3: 4096\n".to_string(),               // block_size
        format!("\n9 {{\n  1: {USR_A_BYTES}\n"), // new_partition_info
        "\n10 {\n  1: 0\n".to_string(),          // KERNEL
        // decode_raw guesses "amd64-usr" is a message (its bytes parse as one); 2 and 3 show.
        "  2: \"1.2.3\"\n  3: \"beta\"\n}".to_string(),
        "\n1000 {\n".to_string(),
        "    1: 18446744073709551615\n".to_string(), // noops: sparse hole
    ] {
        assert!(
            text.contains(&needle),
            "protoc --decode_raw lacks {needle:?}:\n{}",
            &text[text.len().saturating_sub(2000)..]
        );
    }

    // openssl verifies the version-2 signature over [0, 20 + n + signatures_offset).
    let sig_start = (20 + n as u64 + head.plan.signatures.start) as usize;
    let sig_text = decode_raw(&p[sig_start..]);
    assert!(sig_text.starts_with("1 {\n  1: 2\n  2: "), "{sig_text}");
    let signed = dir.path().join("signed.bin");
    fs::write(&signed, &p[..sig_start]).unwrap();
    let sig = dir.path().join("sig.bin");
    fs::write(&sig, &p[p.len() - 256..]).unwrap();
    let openssl_verify = || {
        let mut c = Command::new("openssl");
        c.args(["dgst", "-sha256", "-verify"])
            .arg(pub_key())
            .arg("-signature")
            .arg(&sig)
            .arg(&signed);
        c
    };
    let out = run(&mut openssl_verify());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Verified OK");
    let mut bad = p[..sig_start].to_vec();
    bad[sig_start / 2] ^= 1;
    fs::write(&signed, bad).unwrap();
    let text = run_fail(&mut openssl_verify());
    assert!(text.contains("Verification failure"), "{text}");

    // bzip2 -dc of the blobs in extent order is USR-A as dd reads it, and the ESP's kernel.
    let blobs = head.header.blobs_start();
    let (part_ops, kernel_ops): (Vec<_>, Vec<_>) = head
        .plan
        .ops
        .iter()
        .cloned()
        .partition(|o| o.name.target == payload::Target::Partition);
    assert!(
        sha256(&decode_with_bzip2(&p, &part_ops, blobs, USR_A_BYTES)) == usr_a_sha256(),
        "USR-A differs"
    );
    let kernel = esp_kernel(dir.path());
    assert!(
        decode_with_bzip2(&p, &kernel_ops, blobs, kernel.len() as u64) == kernel,
        "the kernel differs from the ESP's coreos/vmlinuz-a"
    );
}

/// Flatcar's own payload reader, `decode_payload` (bash + protoc with Flatcar's
/// `update_metadata.proto`), kept unmodified in `tests/peers/flatcar-update_engine`.
fn flatcar_decode_payload(dir: &Path, payload: &Path, pub_key: &Path) -> (bool, String) {
    require("protoc");
    require("openssl");
    require("bzcat");
    let script = e2e::repo().join("tests/peers/flatcar-update_engine/decode_payload");
    let out = Command::new("bash")
        .arg(script)
        .arg(pub_key)
        .arg(payload)
        .arg(dir.join("usr.img"))
        .arg(dir.join("kernel"))
        // Also check each operation's data_sha256_hash, not only the final hashes.
        .env("CHECKINPUT", "1")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Flatcar's reader takes our payload: the signature (version 2) verifies with our
/// `.pub.pem`, every blob's hash, the partition's and the kernel's size and SHA-256 match, and
/// what it writes is USR-A and the ESP's kernel byte for byte. Every field it reads is named by
/// its schema; the only field it does not know is our release info (1000), which protobuf
/// readers skip.
#[test]
fn flatcars_decode_payload_reproduces_usr_a_and_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("coreos_production_update.gz");
    make_payload(&p, &[]);
    let (ok, log) = flatcar_decode_payload(dir.path(), &p, &pub_key());
    assert!(ok, "decode_payload refused our payload:\n{log}");
    assert!(log.contains("Valid signature found (Version: 2,"), "{log}");
    assert!(log.lines().any(|l| l == "Success"), "{log}");
    assert!(
        sha256_range(&dir.path().join("usr.img"), 0, USR_A_BYTES) == usr_a_sha256(),
        "decode_payload's partition differs from USR-A"
    );
    let written = fs::metadata(dir.path().join("usr.img")).unwrap().len();
    assert_eq!(written, USR_A_BYTES);
    assert!(
        fs::read(dir.path().join("kernel")).unwrap() == esp_kernel(dir.path()),
        "decode_payload's kernel differs from the ESP's coreos/vmlinuz-a"
    );

    // Flatcar's schema names every field but ours; ue-rs also needs one extent per operation.
    let bytes = fs::read(&p).unwrap();
    let n = payload::parse_header_and_manifest(&bytes)
        .unwrap()
        .header
        .manifest_len as usize;
    let manifest = dir.path().join("manifest.pb");
    fs::write(&manifest, &bytes[20..20 + n]).unwrap();
    let peer = e2e::repo().join("tests/peers/flatcar-update_engine/src/update_engine");
    let text = run(Command::new("sh").arg("-c").arg(format!(
        "protoc --decode=chromeos_update_engine.DeltaArchiveManifest --proto_path {0} \
         {0}/update_metadata.proto < {1}",
        peer.display(),
        manifest.display()
    )))
    .stdout;
    let text = String::from_utf8(text).unwrap();
    let unknown = text
        .find("\n1000 {\n")
        .expect("our release info (field 1000)");
    let (known, ours) = text.split_at(unknown + 1);
    assert!(
        !known
            .lines()
            .any(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit())),
        "a field Flatcar's schema does not know:\n{known}"
    );
    let ours_end = ours.find("\n}\n").unwrap() + 3;
    assert_eq!(ours[ours_end..].trim(), "", "field 1000 is last");
    for l in log.lines().filter_map(|l| l.strip_prefix("unmatched: ")) {
        assert!(
            ours[..ours_end].contains(l),
            "decode_payload did not read {l:?}"
        );
    }
    for op in known.split("partition_operations {").skip(1) {
        let op = op.split("\n}\n").next().unwrap();
        assert_eq!(op.matches("dst_extents {").count(), 1, "{op}");
        assert_eq!(op.matches("data_sha256_hash:").count(), 1, "{op}");
    }
    assert_eq!(known.matches("partition_operations {").count(), 1024);
    assert!(known.contains("procedures {\n  type: KERNEL\n"), "{known}");
}

/// The oracle can say no: with another key's `.pub.pem`, Flatcar's reader finds no signature.
#[test]
fn flatcars_decode_payload_refuses_another_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("coreos_production_update.gz");
    make_payload(&p, &[]);
    let other = dir.path().join("other.pem");
    run(Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&other)
        .arg("2048"));
    let other_pub = dir.path().join("other.pub.pem");
    run(Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(&other)
        .arg("-out")
        .arg(&other_pub));
    let (ok, log) = flatcar_decode_payload(dir.path(), &p, &other_pub);
    assert!(
        !ok,
        "decode_payload took a payload signed by another key:\n{log}"
    );
    assert!(log.contains("No valid signature found"), "{log}");
}

#[test]
fn keygen_writes_payload_keys_that_openssl_reads() {
    require("openssl");
    let secret = key();
    let mode = fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the payload's secret key is private");
    let text = fs::read_to_string(pub_key()).unwrap();
    assert!(text.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{text}");
    let out = run(Command::new("openssl")
        .args(["pkey", "-pubin", "-noout", "-text", "-in"])
        .arg(pub_key()));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Public-Key: (2048 bit)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    run(Command::new("openssl")
        .args(["pkey", "-noout", "-in"])
        .arg(&secret));
    // keygen refuses to overwrite any of its four files.
    let text = run_fail(build().arg("keygen").arg("--output").arg(&fixture().keys));
    assert!(text.contains("refusing to overwrite"), "{text}");
}

#[test]
fn payloads_are_reproducible_and_take_openssl_keys() {
    require("openssl");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.gz"), dir.path().join("b.gz"));
    make_payload(&a, &[]);
    make_payload(&b, &[]);
    assert!(
        fs::read(&a).unwrap() == fs::read(&b).unwrap(),
        "two payloads differ"
    );
    // A PKCS#1 key as `openssl genrsa -traditional` writes it signs too; --version overrides.
    let pkcs1 = dir.path().join("pkcs1.pem");
    run(Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&pkcs1)
        .arg("2048"));
    assert!(fs::read_to_string(&pkcs1)
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let c = dir.path().join("c.gz");
    run(build()
        .arg("payload")
        .arg("--image")
        .arg(&fixture().image)
        .arg("--update-key")
        .arg(&pkcs1)
        .arg("--output")
        .arg(&c)
        .args(["--version", "1.2.4"]));
    let head = payload::parse_header_and_manifest(&fs::read(&c).unwrap()).unwrap();
    let rel = head.manifest.coreos_release.unwrap();
    assert_eq!(rel.version.as_deref(), Some("1.2.4"));
    assert_eq!(rel.board.as_deref(), Some("amd64-usr"), "read from USR-A");
    assert_eq!(rel.channel.as_deref(), Some("beta"), "read from USR-A");
}

#[test]
fn bad_payload_keys_are_refused_before_anything_is_written() {
    require("openssl");
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.pem");
    run(Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&small)
        .arg("1024"));
    let ec = dir.path().join("ec.pem");
    run(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&ec));
    let missing = dir.path().join("missing.pem");
    for (k, needle) in [
        (&small, "RSA-1024"),
        (&ec, "not an RSA key"),
        (&missing, "missing.pem"),
        (&pub_key(), "public key"),
    ] {
        let out = dir.path().join("out.gz");
        let text = run_fail(
            build()
                .arg("payload")
                .arg("--image")
                .arg(&fixture().image)
                .arg("--update-key")
                .arg(k)
                .arg("--output")
                .arg(&out),
        );
        assert!(
            text.contains(needle) && text.contains(&*k.to_string_lossy()),
            "{text}"
        );
        assert!(!out.exists());
        let mirror = dir.path().join("mirror");
        let text = run_fail(
            build()
                .arg("release")
                .arg("--from-image")
                .arg(&fixture().image)
                .args(["--version", "1.2.3", "--no-oem", "--update-key"])
                .arg(k)
                .arg("--output")
                .arg(&mirror),
        );
        assert!(text.contains(needle), "{text}");
        assert!(
            !mirror.exists(),
            "release wrote before checking --update-key"
        );
    }
}

fn gpg_verify(public: &Path, file: &Path) {
    require("gpg");
    let home = tempfile::tempdir().unwrap();
    run(Command::new("gpg")
        .arg("--homedir")
        .arg(home.path())
        .args(["--batch", "--import"])
        .arg(public));
    run(Command::new("gpg")
        .arg("--homedir")
        .arg(home.path())
        .args(["--batch", "--verify"])
        .arg(format!("{}.sig", file.display()))
        .arg(file));
}

#[test]
fn release_writes_signed_update_files() {
    require("bzip2");
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    let release = |mirror: &Path, update_key: bool| {
        let mut c = build();
        c.arg("release")
            .arg("--from-image")
            .arg(&fixture().image)
            .args(["--version", "1.2.3", "--no-oem", "--group", "beta"])
            .arg("--signing-key")
            .arg(fixture().keys.join("signing-key.asc"))
            .arg("--output")
            .arg(mirror);
        if update_key {
            c.arg("--update-key").arg(key());
        }
        run(&mut c)
    };
    release(&mirror, true);
    let v = mirror.join("amd64-usr/1.2.3");
    for f in [
        "coreos_production_update.gz",
        "coreos_production_update.bin.bz2",
    ] {
        let file = v.join(f);
        gpg_verify(&fixture().keys.join("signing-key.pub.asc"), &file);
        let digests = fs::read_to_string(v.join(format!("{f}.DIGESTS"))).unwrap();
        assert!(
            digests.contains(&format!("  {f}\n")) && digests.contains("# SHA512 HASH"),
            "{digests}"
        );
    }
    // The same payload as `coreos-build payload` of the image (one key, one epoch).
    let alone = dir.path().join("alone.gz");
    make_payload(
        &alone,
        &[
            "--version",
            "1.2.3",
            "--board",
            "amd64-usr",
            "--channel",
            "beta",
        ],
    );
    assert!(fs::read(&alone).unwrap() == fs::read(v.join("coreos_production_update.gz")).unwrap());
    let raw = dir.path().join("usr.bin");
    run(Command::new("sh").arg("-c").arg(format!(
        "bzip2 -dc {} > {}",
        v.join("coreos_production_update.bin.bz2").display(),
        raw.display()
    )));
    assert_eq!(fs::metadata(&raw).unwrap().len(), USR_A_BYTES);
    assert!(
        sha256_range(&raw, 0, USR_A_BYTES) == usr_a_sha256(),
        "update.bin.bz2 is not USR-A"
    );

    // Without --update-key: the partition is released, the payload is not, and it is said.
    let mirror2 = dir.path().join("mirror2");
    let out = release(&mirror2, false);
    let v2 = mirror2.join("amd64-usr/1.2.3");
    assert!(v2.join("coreos_production_update.bin.bz2").exists());
    assert!(!v2.join("coreos_production_update.gz").exists());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no --update-key"), "{stderr}");
    assert!(
        fs::read(v2.join("coreos_production_update.bin.bz2")).unwrap()
            == fs::read(v.join("coreos_production_update.bin.bz2")).unwrap()
    );
}

#[test]
fn verify_and_apply_onto_a_loop_device_reproduce_usr_a() {
    let dir = tempfile::tempdir().unwrap();
    let p_path = dir.path().join("update.gz");
    make_payload(&p_path, &[]);
    let public = payload::PayloadPublicKey::from_file(&pub_key()).unwrap();
    let verified = payload::verify(fs::File::open(&p_path).unwrap(), &public).unwrap();
    assert_eq!(verified.info().partition_size, USR_A_BYTES);
    assert_eq!(verified.info().board.as_deref(), Some("amd64-usr"));

    // A "disk" whose USR-B is full of old content (0xbb): none of it may survive.
    let disk = dir.path().join("disk.img");
    let at = 1 << 20;
    {
        let f = fs::File::create(&disk).unwrap();
        let old = vec![0xbbu8; 8 << 20];
        let mut off = 0;
        while off < USR_A_BYTES + 2 * at {
            f.write_all_at(&old, off).unwrap();
            off += old.len() as u64;
        }
    }
    let lo = Loop::attach(&disk, false);
    let dev = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&lo.dev)
        .unwrap();
    let mut last = 0;
    let applied = payload::apply(
        fs::File::open(&p_path).unwrap(),
        &verified,
        &dev,
        at,
        &mut |n| last = n,
    )
    .unwrap();
    assert_eq!(last, USR_A_BYTES);
    assert!(applied.kernel == esp_kernel(dir.path()));
    assert!(
        sha256_range(&lo.dev, at, USR_A_BYTES) == usr_a_sha256(),
        "the loop device's partition differs from USR-A"
    );
    let mut edge = [0u8; 4096];
    dev.read_exact_at(&mut edge, at - 4096).unwrap();
    assert!(
        edge.iter().all(|&b| b == 0xbb),
        "bytes before the partition changed"
    );
    dev.read_exact_at(&mut edge, at + USR_A_BYTES).unwrap();
    assert!(
        edge.iter().all(|&b| b == 0xbb),
        "bytes after the partition changed"
    );

    // Too small a device: refused before a byte is written.
    drop(dev);
    drop(lo);
    let small = dir.path().join("small.img");
    fs::File::create(&small)
        .unwrap()
        .set_len(USR_A_BYTES / 2)
        .unwrap();
    let lo = Loop::attach(&small, false);
    let dev = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&lo.dev)
        .unwrap();
    let e = payload::apply(
        fs::File::open(&p_path).unwrap(),
        &verified,
        &dev,
        0,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("the partition needs bytes"), "{e}");
}
