//! coreos-install end to end, as root: a signed mirror served by nginx (or by the test's own
//! fault-injecting server), loop devices as target disks, and real tools as judges (sgdisk -v,
//! e2fsck -fn, debugfs, sha256 of partitions).
//!
//! The mirror is a small raw GPT image with the base layout's partition numbers (ext4 OEM and
//! ROOT made by mkfs.ext4), compressed as `coreos-build release` does (independent bzip2
//! streams, one per 8 MiB chunk) and signed with gpg. TODO: use `coreos-build release` once it
//! lands.

use e2e::httpfault::{Fault, FaultServer};
use e2e::nginx::Nginx;
use e2e::{bin, cache, lock, require, run, run_fail, sha256_file, Loop};
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const VERSION: &str = "1.2.3";
const BOARD: &str = "amd64-usr";
const IMAGE: &str = "coreos_production_image.bin.bz2";
const OEM_IMAGE: &str = "coreos_production_packet_image.bin.bz2";
const MIB: u64 = 1 << 20;
/// The test image: small, but with every partition number of the base layout.
const IMAGE_MIB: u64 = 256;
/// (number, label, type code, size MiB, ext4?)
const PARTS: &[(u32, &str, &str, u64, bool)] = &[
    (1, "EFI-SYSTEM", "ef00", 16, false),
    (2, "BIOS-BOOT", "ef02", 2, false),
    (
        3,
        "USR-A",
        "5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6",
        64,
        false,
    ),
    (
        4,
        "USR-B",
        "5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6",
        64,
        false,
    ),
    (6, "OEM", "8300", 32, true),
    (
        7,
        "OEM-CONFIG",
        "c95dc21a-df0e-4340-8d7b-26cbfa9a03e0",
        8,
        false,
    ),
    (9, "ROOT", "3884dd41-8582-4404-b9a8-e9b84f2df50e", 60, true),
];

/// The signed mirror and what the tests compare against.
struct Mirror {
    dir: PathBuf,
    /// `<dir>/<board>`
    base: PathBuf,
    raw: PathBuf,
    oem_raw: PathBuf,
    key: PathBuf,
    other_key: PathBuf,
    gnupg: PathBuf,
}

impl Mirror {
    fn release_dir(&self) -> PathBuf {
        self.base.join(VERSION)
    }
    fn image(&self) -> PathBuf {
        self.release_dir().join(IMAGE)
    }
}

fn sh(script: &str) -> String {
    let out = run(Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(script));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Build (once) the raw images, the compressed and signed mirror, and two gpg keys.
fn mirror() -> Mirror {
    for t in [
        "sgdisk",
        "mkfs.ext4",
        "gpg",
        "bzip2",
        "split",
        "nginx",
        "debugfs",
        "e2fsck",
        "losetup",
    ] {
        require(t);
    }
    let _l = lock("install-mirror");
    let dir = cache().join("install-mirror");
    let m = Mirror {
        base: dir.join(BOARD),
        raw: dir.join("image.raw"),
        oem_raw: dir.join("image-packet.raw"),
        key: dir.join("key.asc"),
        other_key: dir.join("other-key.asc"),
        gnupg: dir.join("gnupg"),
        dir: dir.clone(),
    };
    if dir.join(".complete").exists() {
        return m;
    }
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(m.release_dir()).unwrap();
    fs::create_dir_all(&m.gnupg).unwrap();
    let d = dir.display();
    // Keys: the release key and an unrelated one.
    sh(&format!(
        "export GNUPGHOME={d}/gnupg; chmod 700 $GNUPGHOME
         gpg --batch --passphrase '' --quick-gen-key 'Test Release <release@example.com>' ed25519 sign never
         gpg --batch --passphrase '' --quick-gen-key 'Someone Else <other@example.com>' ed25519 sign never
         gpg --batch --armor --export release@example.com > {d}/key.asc
         gpg --batch --armor --export other@example.com > {d}/other-key.asc"
    ));
    build_raw(&m.raw, None);
    let oem_tree = dir.join("oem-packet");
    fs::create_dir_all(&oem_tree).unwrap();
    fs::write(
        oem_tree.join("grub.cfg"),
        "set oem_id=\"packet\"\nset linux_append=\"coreos.autologin\"\n",
    )
    .unwrap();
    build_raw(&m.oem_raw, Some(&oem_tree));
    let rel = m.release_dir();
    compress_chunked(&m.raw, &rel.join(IMAGE));
    compress_chunked(&m.oem_raw, &rel.join(OEM_IMAGE));
    for name in [IMAGE, OEM_IMAGE] {
        sign(&m, &rel.join(name), "release@example.com");
    }
    fs::write(
        rel.join("version.txt"),
        format!("COREOS_BUILD=1\nCOREOS_VERSION={VERSION}\nCOREOS_VERSION_ID={VERSION}\n"),
    )
    .unwrap();
    std::os::unix::fs::symlink(VERSION, m.base.join("current")).unwrap();
    fs::write(dir.join(".complete"), "").unwrap();
    m
}

fn sign(m: &Mirror, file: &Path, uid: &str) {
    let sig = PathBuf::from(format!("{}.sig", file.display()));
    let _ = fs::remove_file(&sig);
    run(Command::new("gpg")
        .env("GNUPGHOME", &m.gnupg)
        .args([
            "--batch",
            "--yes",
            "--local-user",
            uid,
            "--detach-sign",
            "-o",
        ])
        .arg(&sig)
        .arg(file));
}

/// A raw GPT disk image with the base layout's partition numbers; USR-A holds data, OEM and
/// ROOT are ext4 (OEM seeded from `oem_tree`).
fn build_raw(raw: &Path, oem_tree: Option<&Path>) {
    let f = fs::File::create(raw).unwrap();
    f.set_len(IMAGE_MIB * MIB).unwrap();
    drop(f);
    let mut args = vec!["-o".to_string()];
    for &(n, label, ty, _, _) in PARTS {
        let (off, len) = part_range(n);
        args.push(format!("-n={n}:{}:{}", off / 512, (off + len) / 512 - 1));
        args.push(format!("-t={n}:{ty}"));
        args.push(format!("-c={n}:{label}"));
    }
    run(Command::new("sgdisk").args(&args).arg(raw));
    for &(n, label, _, _, ext4) in PARTS {
        let (off, len) = part_range(n);
        if ext4 {
            let mut c = Command::new("mkfs.ext4");
            c.args(["-q", "-F", "-L", label, "-E"])
                .arg(format!("offset={off}"));
            if let (Some(t), 6) = (oem_tree, n) {
                c.arg("-d").arg(t);
            }
            run(c
                .env("E2FSPROGS_FAKE_TIME", "1600000000")
                .arg(raw)
                .arg(format!("{}k", len / 1024)));
        }
        if n == 3 {
            // USR-A: an ext2 /usr with the release file (the installer reports its version)
            // and compressible but varied data, then zeros, as a real /usr image.
            let tree = tempfile::tempdir().unwrap();
            let t = tree.path().display();
            sh(&format!(
                "mkdir -p {t}/share/coreos {t}/lib
                 printf 'COREOS_RELEASE_VERSION={VERSION}\nCOREOS_RELEASE_BOARD={BOARD}\n' > {t}/share/coreos/release
                 head -c 30M /dev/urandom | base64 -w 0 | head -c 40M > {t}/lib/data"
            ));
            run(Command::new("mkfs.ext4")
                .args(["-q", "-F", "-t", "ext2", "-L", label, "-d"])
                .arg(tree.path())
                .arg("-E")
                .arg(format!("offset={off}"))
                .env("E2FSPROGS_FAKE_TIME", "1600000000")
                .arg(raw)
                .arg(format!("{}k", len / 1024)));
            continue;
        }
        let data = match n {
            1 => "head -c 3M /dev/urandom",
            _ => continue,
        };
        sh(&format!(
            "{data} | dd of={} bs=1M seek={} conv=notrunc status=none",
            raw.display(),
            off / MIB
        ));
    }
}

/// As the release: one independent bzip2 stream per 8 MiB chunk, concatenated.
fn compress_chunked(raw: &Path, out: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    sh(&format!(
        "cd {t}; split -b 8M -d -a 5 {raw} c.; ls c.* | xargs -P 2 -I{{}} bzip2 -9 {{}}; cat $(ls c.*.bz2 | sort) > {out}",
        t = tmp.path().display(),
        raw = raw.display(),
        out = out.display()
    ));
}

/// The mirror's base URL for `-b`.
trait MirrorBase {
    fn base(&self) -> String;
}

impl MirrorBase for Nginx {
    fn base(&self) -> String {
        self.url(BOARD)
    }
}

/// A blank sparse target disk on a loop device (with partition scanning).
struct Disk {
    _dir: tempfile::TempDir,
    file: PathBuf,
    lo: Loop,
}

fn disk(mib: u64) -> Disk {
    let dir = tempfile::tempdir_in(cache()).unwrap();
    let file = dir.path().join("disk.img");
    fs::File::create(&file).unwrap().set_len(mib * MIB).unwrap();
    let lo = Loop::attach(&file, true);
    Disk {
        _dir: dir,
        file,
        lo,
    }
}

fn install(args: &[&str]) -> Command {
    let mut c = Command::new(bin("coreos-install"));
    c.args(args)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env("NO_PROXY", "127.0.0.1");
    c
}

fn dev(d: &Disk) -> String {
    d.lo.dev.display().to_string()
}

/// sha256 of a byte range of a file or device.
fn sha_range(p: &Path, off: u64, len: u64) -> String {
    use sha2::{Digest, Sha256};
    let mut f = fs::File::open(p).unwrap();
    f.seek(SeekFrom::Start(off)).unwrap();
    let mut h = Sha256::new();
    std::io::copy(&mut f.take(len), &mut h).unwrap();
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Byte offset and length of partition `n` in the test image (laid out back to back from 2 MiB).
fn part_range(n: u32) -> (u64, u64) {
    let mut start = 2 * MIB;
    for &(k, _, _, mib, _) in PARTS {
        if k == n {
            return (start, mib * MIB);
        }
        start += mib * MIB;
    }
    panic!("no partition {n}")
}

/// The disk's partition table as sgdisk prints it.
fn table(d: &Disk) -> String {
    let out = Command::new("sgdisk")
        .arg("-p")
        .arg(&d.lo.dev)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_usr_a(d: &Disk, context: &str) {
    let t = table(d);
    assert!(
        !t.contains("USR-A"),
        "{context}: the disk's partition table names USR-A:\n{t}"
    );
}

/// The success line names the version the installed USR-A holds (no OEM was asked for).
fn assert_success(out: &std::process::Output, d: &Disk) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = format!("Success! {VERSION} (none) is installed on {}", dev(d));
    assert!(stdout.contains(&line), "{stdout}");
}

/// Every partition not touched by configuration is byte-identical to the image, and the
/// whole disk's GPT and both ext4 filesystems are clean.
fn assert_installed(d: &Disk, raw: &Path, skip: &[u32]) {
    for &(n, label, _, _, _) in PARTS {
        if skip.contains(&n) {
            continue;
        }
        let (off, len) = part_range(n);
        assert_eq!(
            sha_range(&d.lo.dev, off, len),
            sha_range(raw, off, len),
            "partition {n} ({label}) differs from the image"
        );
    }
    let v = run(Command::new("sgdisk").arg("-v").arg(&d.lo.dev));
    let v = String::from_utf8_lossy(&v.stdout);
    assert!(v.contains("No problems found"), "sgdisk -v:\n{v}");
    for n in [6, 9] {
        let (off, len) = part_range(n);
        let l = Loop::attach_range(&d.file, off, len);
        run(Command::new("e2fsck").arg("-fn").arg(&l.dev));
    }
}

fn debugfs_cat(d: &Disk, n: u32, path: &str) -> Vec<u8> {
    let (off, len) = part_range(n);
    let l = Loop::attach_range(&d.file, off, len);
    run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat {path}"))
        .arg(&l.dev))
    .stdout
}

const CLOUD: &str = "#cloud-config\nhostname: installed\nssh_authorized_keys:\n  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBogus test@example\n";

fn write_tmp(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(name);
    fs::write(&p, text).unwrap();
    (d, p)
}

#[test]
fn happy_path_from_nginx_with_cloud_config() {
    let m = mirror();
    let web = Nginx::start(&m.dir);
    let d = disk(512);
    let (_t, cloud) = write_tmp("cloud.yml", CLOUD);
    let out = run(&mut install(&[
        "-d",
        &dev(&d),
        "-b",
        &web.base(),
        "-k",
        m.key.to_str().unwrap(),
        "-c",
        cloud.to_str().unwrap(),
    ]));
    assert_success(&out, &d);
    assert_installed(&d, &m.raw, &[9]);
    assert_eq!(
        debugfs_cat(&d, 9, "/var/lib/coreos-install/user_data"),
        CLOUD.as_bytes()
    );
    // The kernel sees the new partitions.
    assert!(
        d.lo.part(9).exists(),
        "no {} after install",
        d.lo.part(9).display()
    );
}

#[test]
fn image_only_through_a_symlinked_device_path() {
    let m = mirror();
    let web = Nginx::start(&m.dir);
    let d = disk(300);
    // A symlinked device path, as /dev/disk/by-id/... .
    let links = tempfile::tempdir().unwrap();
    let link = links.path().join("by-id-disk");
    std::os::unix::fs::symlink(&d.lo.dev, &link).unwrap();
    let out = run(&mut install(&[
        "-d",
        link.to_str().unwrap(),
        "-V",
        "current",
        "-b",
        &web.base(),
        "-k",
        m.key.to_str().unwrap(),
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Success!"));
    assert_installed(&d, &m.raw, &[]);
    // The backup GPT moved to the end of the larger disk.
    let t = table(&d);
    assert!(t.contains(&format!("{} sectors", 300 * MIB / 512)), "{t}");
    assert!(
        d.lo.part(3).exists(),
        "no {} after install",
        d.lo.part(3).display()
    );
}

#[test]
fn oem_image_is_chosen() {
    let m = mirror();
    let web = Nginx::start(&m.dir);
    let d = disk(300);
    let out = run(&mut install(&[
        "-d",
        &dev(&d),
        "-o",
        "packet",
        "-b",
        &web.base(),
        "-k",
        m.key.to_str().unwrap(),
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("Success! {VERSION} (packet)")));
    assert_installed(&d, &m.oem_raw, &[]);
    assert!(
        String::from_utf8_lossy(&debugfs_cat(&d, 6, "/grub.cfg")).contains("set oem_id=\"packet\"")
    );
}

#[test]
fn oem_without_its_image_sets_oem_id_on_the_base_image() {
    let m = mirror();
    let web = Nginx::start(&m.dir);
    let d = disk(300);
    let (_t, ign) = write_tmp("config.ign", "{\"ignition\":{\"version\":\"3.0.0\"}}");
    run(&mut install(&[
        "-d",
        &dev(&d),
        "-o",
        "azure",
        "-i",
        ign.to_str().unwrap(),
        "-b",
        &web.base(),
        "-k",
        m.key.to_str().unwrap(),
    ]));
    assert_installed(&d, &m.raw, &[6]);
    let grub = String::from_utf8_lossy(&debugfs_cat(&d, 6, "/grub.cfg")).into_owned();
    assert_eq!(
        grub.lines().find(|l| l.starts_with("set oem_id")),
        Some("set oem_id=\"azure\""),
        "{grub}"
    );
    assert_eq!(debugfs_cat(&d, 6, "/config.ign"), fs::read(&ign).unwrap());
}

#[test]
fn local_file_with_signature_and_without() {
    let m = mirror();
    let d = disk(300);
    let out = run(&mut install(&[
        "-d",
        &dev(&d),
        "-f",
        m.image().to_str().unwrap(),
        "-k",
        m.key.to_str().unwrap(),
    ]));
    assert_installed(&d, &m.raw, &[]);
    // The version comes from the installed USR-A, not from a file name.
    assert_success(&out, &d);

    let tmp = tempfile::tempdir().unwrap();
    let unsigned = tmp.path().join("unsigned.bin.bz2");
    fs::copy(m.image(), &unsigned).unwrap();
    let d2 = disk(300);
    let before = sha256_file(&d2.file);
    let msg = run_fail(&mut install(&[
        "-d",
        &dev(&d2),
        "-f",
        unsigned.to_str().unwrap(),
        "-k",
        m.key.to_str().unwrap(),
    ]));
    assert!(msg.contains("unsigned.bin.bz2.sig"), "{msg}");
    assert_eq!(
        sha256_file(&d2.file),
        before,
        "a refused install touched the disk"
    );
    let out = run(&mut install(&[
        "-d",
        &dev(&d2),
        "-f",
        unsigned.to_str().unwrap(),
        "--insecure",
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("UNVERIFIED"));
    assert_installed(&d2, &m.raw, &[]);
}

#[test]
fn dry_run_writes_nothing() {
    let m = mirror();
    let web = Nginx::start(&m.dir);
    let d = disk(300);
    let before = sha256_file(&d.file);
    let out = run(&mut install(&[
        "-d",
        &dev(&d),
        "-y",
        "-b",
        &web.base(),
        "-k",
        m.key.to_str().unwrap(),
    ]));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("Settings:") && s.contains(&format!("VERSION={VERSION}")),
        "{s}"
    );
    assert_eq!(sha256_file(&d.file), before);
}

/// A mirror copy whose image is replaced by `image`, signed by `signer` (None: keep the
/// original signature).
fn variant(m: &Mirror, image: &[u8], signer: Option<&str>) -> tempfile::TempDir {
    let t = tempfile::tempdir_in(cache()).unwrap();
    let rel = t.path().join(BOARD).join(VERSION);
    fs::create_dir_all(&rel).unwrap();
    fs::copy(m.release_dir().join("version.txt"), rel.join("version.txt")).unwrap();
    std::os::unix::fs::symlink(VERSION, t.path().join(BOARD).join("current")).unwrap();
    fs::write(rel.join(IMAGE), image).unwrap();
    match signer {
        Some(uid) => sign(m, &rel.join(IMAGE), uid),
        None => {
            fs::copy(
                m.release_dir().join(format!("{IMAGE}.sig")),
                rel.join(format!("{IMAGE}.sig")),
            )
            .unwrap();
        }
    }
    t
}

/// Run an install that must fail; its message must name `expect`, and the disk must carry no
/// partition table naming USR-A.
fn must_fail(base: &str, key: &Path, expect: &[&str]) -> String {
    let d = disk(300);
    let msg = run_fail(&mut install(&[
        "-d",
        &dev(&d),
        "-b",
        base,
        "-k",
        key.to_str().unwrap(),
        "--retries",
        "2",
    ]));
    for e in expect {
        assert!(msg.contains(e), "message lacks {e:?}:\n{msg}");
    }
    assert!(
        msg.contains(&dev(&d)) || msg.contains("http://"),
        "message names neither the device nor the URL:\n{msg}"
    );
    assert_no_usr_a(&d, &msg);
    msg
}

#[test]
fn bad_signatures_are_refused() {
    let m = mirror();
    let good = fs::read(m.image()).unwrap();
    // A signature over other bytes.
    let t = variant(&m, &good, None);
    let rel = t.path().join(BOARD).join(VERSION);
    let mut other = good.clone();
    other.extend_from_slice(b"x");
    fs::write(rel.join("other"), &other).unwrap();
    sign(&m, &rel.join("other"), "release@example.com");
    fs::rename(rel.join("other.sig"), rel.join(format!("{IMAGE}.sig"))).unwrap();
    let web = Nginx::start(t.path());
    must_fail(
        &web.base(),
        &m.key,
        &["signature verification failed", IMAGE],
    );
    drop(web);

    // Signed by a key we do not trust.
    let t = variant(&m, &good, Some("other@example.com"));
    let web = Nginx::start(t.path());
    must_fail(&web.base(), &m.key, &["signature verification failed"]);
    drop(web);

    // One byte changed after signing.
    let mut tampered = good.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x01;
    let t = variant(&m, &tampered, None);
    let web = Nginx::start(t.path());
    must_fail(&web.base(), &m.key, &[IMAGE]);
}

#[test]
fn missing_signature_image_or_version() {
    let m = mirror();
    let srv = FaultServer::start(m.dir.clone(), ".sig", Fault::NotFound);
    must_fail(
        &format!("{}/{BOARD}", srv.url()),
        &m.key,
        &["Image signature unavailable", ".bin.bz2.sig"],
    );
    let srv = FaultServer::start(m.dir.clone(), IMAGE, Fault::NotFound);
    must_fail(
        &format!("{}/{BOARD}", srv.url()),
        &m.key,
        &["Image URL unavailable", "404", IMAGE],
    );
    let srv = FaultServer::start(m.dir.clone(), "version.txt", Fault::NotFound);
    must_fail(
        &format!("{}/{BOARD}", srv.url()),
        &m.key,
        &["version.txt unavailable", "404"],
    );
}

#[test]
fn truncated_and_trailing_garbage_are_refused_even_when_signed() {
    let m = mirror();
    let good = fs::read(m.image()).unwrap();
    // Cut inside the last stream, and inside the last stream's header (the release's .bz2
    // is one stream per chunk, each starting with "BZh9" and the block magic).
    let header = b"BZh9\x31\x41\x59\x26\x53\x59";
    let last = good
        .windows(header.len())
        .rposition(|w| w == header)
        .expect("a stream header");
    for cut in [good.len() - 1000, last + 5] {
        let t = variant(&m, &good[..cut], Some("release@example.com"));
        let web = Nginx::start(t.path());
        let msg = must_fail(&web.base(), &m.key, &[IMAGE]);
        assert!(
            msg.contains("truncated") || msg.contains("ended"),
            "cut at {cut}: {msg}"
        );
    }
    let mut garbage = good.clone();
    garbage.extend_from_slice(b"garbage after the last stream\n");
    let t = variant(&m, &garbage, Some("release@example.com"));
    let web = Nginx::start(t.path());
    must_fail(&web.base(), &m.key, &["trailing data"]);
}

#[test]
fn drop_mid_body_resumes_and_500s_are_retried() {
    let m = mirror();
    for fault in [
        Fault::DropAfter {
            after: 3 * MIB + 123,
            times: 2,
        },
        Fault::Status {
            code: 500,
            times: 2,
        },
    ] {
        let srv = FaultServer::start(m.dir.clone(), IMAGE, fault);
        let d = disk(300);
        run(&mut install(&[
            "-d",
            &dev(&d),
            "-b",
            &format!("{}/{BOARD}", srv.url()),
            "-k",
            m.key.to_str().unwrap(),
        ]));
        assert_installed(&d, &m.raw, &[]);
        let log = srv.requests();
        let gets: Vec<_> = log
            .iter()
            .filter(|l| l.contains(IMAGE) && !l.contains(".sig"))
            .collect();
        assert_eq!(gets.len(), 3, "{fault:?}: {log:?}");
        if let Fault::DropAfter { after, .. } = fault {
            assert!(
                gets[1].ends_with(&format!("Some({after})")),
                "the resume did not ask for a Range: {log:?}"
            );
            assert!(
                gets[2].ends_with(&format!("Some({})", 2 * after)),
                "the second resume: {log:?}"
            );
        }
    }
}

#[test]
fn lying_content_length_is_an_error() {
    let m = mirror();
    let srv = FaultServer::start(m.dir.clone(), IMAGE, Fault::LyingLength { extra: 1000 });
    must_fail(
        &format!("{}/{BOARD}", srv.url()),
        &m.key,
        &[IMAGE, "Content-Length"],
    );
}

#[test]
fn refused_targets_stay_untouched() {
    let m = mirror();
    let web = Nginx::start(&m.dir);
    let key = m.key.to_str().unwrap().to_string();
    // Too small for the image.
    let d = disk(100);
    let before = sha256_file(&d.file);
    let msg = run_fail(&mut install(&[
        "-d",
        &dev(&d),
        "-b",
        &web.base(),
        "-k",
        &key,
    ]));
    assert!(msg.contains("too small") && msg.contains(&dev(&d)), "{msg}");
    assert_eq!(sha256_file(&d.file), before);
    // Broken configs and keys.
    let d = disk(300);
    let before = sha256_file(&d.file);
    let (_t, cloud) = write_tmp("cloud.yml", "#cloud-config\nusers: [unclosed\n");
    let msg = run_fail(&mut install(&[
        "-d",
        &dev(&d),
        "-c",
        cloud.to_str().unwrap(),
        "-b",
        &web.base(),
        "-k",
        &key,
    ]));
    assert!(
        msg.contains("cloud.yml") && msg.contains("not valid"),
        "{msg}"
    );
    let (_t2, noheader) = write_tmp("plain.yml", "hostname: x\n");
    let msg = run_fail(&mut install(&[
        "-d",
        &dev(&d),
        "-c",
        noheader.to_str().unwrap(),
        "-b",
        &web.base(),
        "-k",
        &key,
    ]));
    assert!(msg.contains("plain.yml"), "{msg}");
    let (_t3, ign) = write_tmp("bad.ign", "{not json");
    let msg = run_fail(&mut install(&[
        "-d",
        &dev(&d),
        "-i",
        ign.to_str().unwrap(),
        "-b",
        &web.base(),
        "-k",
        &key,
    ]));
    assert!(msg.contains("bad.ign") && msg.contains("JSON"), "{msg}");
    let (_t4, badkey) = write_tmp("key.asc", "not a key");
    let msg = run_fail(&mut install(&[
        "-d",
        &dev(&d),
        "-b",
        &web.base(),
        "-k",
        badkey.to_str().unwrap(),
    ]));
    assert!(msg.contains("key.asc"), "{msg}");
    assert_eq!(sha256_file(&d.file), before);
    // A missing device, and none at all.
    let msg = run_fail(&mut install(&[
        "-d",
        "/dev/coreos-install-no-such-disk",
        "-b",
        &web.base(),
        "-k",
        &key,
    ]));
    assert!(
        msg.contains("/dev/coreos-install-no-such-disk") && msg.contains("does not exist"),
        "{msg}"
    );
    let msg = run_fail(&mut install(&["-b", &web.base()]));
    assert!(msg.contains("-d is required"), "{msg}");
}

#[test]
fn mounted_disk_and_partition_are_refused() {
    let m = mirror();
    let web = Nginx::start(&m.dir);
    let key = m.key.to_str().unwrap().to_string();
    // A disk holding the image, its ROOT partition mounted.
    let tmp = tempfile::tempdir_in(cache()).unwrap();
    let file = tmp.path().join("disk.img");
    fs::copy(&m.raw, &file).unwrap();
    let lo = Loop::attach(&file, true);
    let part9 = lo.part(9);
    let before = sha256_file(&file);
    let mnt = tempfile::tempdir().unwrap();
    // Read-only and without journal replay, so mounting itself does not change the disk.
    run(Command::new("mount")
        .args(["-o", "ro,noload"])
        .arg(&part9)
        .arg(mnt.path()));
    let msg = run_fail(&mut install(&[
        "-d",
        lo.dev.to_str().unwrap(),
        "-b",
        &web.base(),
        "-k",
        &key,
    ]));
    run(Command::new("umount").arg(mnt.path()));
    assert!(
        msg.contains("mounted") && msg.contains(&part9.display().to_string()),
        "{msg}"
    );
    // A partition as the target.
    let msg = run_fail(&mut install(&[
        "-d",
        part9.to_str().unwrap(),
        "-b",
        &web.base(),
        "-k",
        &key,
    ]));
    assert!(
        msg.contains("is a partition") && msg.contains(&lo.dev.display().to_string()),
        "{msg}"
    );
    assert_eq!(sha256_file(&file), before);
}

#[test]
fn kill_during_write_never_leaves_a_usr_a_table() {
    let m = mirror();
    let total = fs::metadata(m.image()).unwrap().len();
    // About four seconds for the whole download.
    let srv = FaultServer::start(
        m.dir.clone(),
        IMAGE,
        Fault::Slow {
            bytes_per_sec: total / 4,
        },
    );
    let mut seed = std::process::id() as u64 ^ 0x9E37_79B9_7F4A_7C15;
    for trial in 0..10 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let after = Duration::from_millis(200 + seed % 3500);
        let d = disk(300);
        let mut child = install(&[
            "-d",
            &dev(&d),
            "-b",
            &format!("{}/{BOARD}", srv.url()),
            "-k",
            m.key.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(after);
        let finished = child.try_wait().unwrap().is_some();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        assert!(
            !finished,
            "trial {trial}: the install finished before the kill at {after:?}"
        );
        assert_no_usr_a(&d, &format!("trial {trial}, killed after {after:?}"));
    }
}

#[test]
fn download_only_fetches_and_verifies() {
    let m = mirror();
    let web = Nginx::start(&m.dir);
    let out = tempfile::tempdir().unwrap();
    run(&mut install(&[
        "-D",
        out.path().to_str().unwrap(),
        "-b",
        &web.base(),
        "-k",
        m.key.to_str().unwrap(),
    ]));
    assert_eq!(
        sha256_file(&out.path().join(IMAGE)),
        sha256_file(&m.image())
    );
    assert!(out.path().join(format!("{IMAGE}.sig")).exists());
    let wrong = tempfile::tempdir().unwrap();
    let msg = run_fail(&mut install(&[
        "-D",
        wrong.path().to_str().unwrap(),
        "-b",
        &web.base(),
        "-k",
        m.other_key.to_str().unwrap(),
    ]));
    assert!(msg.contains("signature verification failed"), "{msg}");
    assert!(
        !wrong.path().join(IMAGE).exists(),
        "an unverified download kept its final name"
    );
}
