//! The installer's test bed, shared by the `install*` end-to-end tests: a signed mirror of a
//! small raw GPT image with the base layout's partition numbers (ext4 OEM and ROOT made by
//! mkfs.ext4), compressed as `coreos-build release` does (independent bzip2 streams, one per
//! 8 MiB chunk) and signed with gpg; nginx to serve it; loop devices as target disks; and the
//! judges (sgdisk -v, e2fsck -fn, debugfs, sha256 of partitions).

pub use crate::nginx::Nginx;
use crate::{bin, cache, lock, require, run, run_fail, Loop};
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const VERSION: &str = "1.2.3";
pub const BOARD: &str = "amd64-usr";
pub const IMAGE: &str = "coreos_production_image.bin.bz2";
pub const OEM_IMAGE: &str = "coreos_production_packet_image.bin.bz2";
pub const MIB: u64 = 1 << 20;
/// The test image: small, but with every partition number of the base layout.
pub const IMAGE_MIB: u64 = 256;
/// (number, label, type code, size MiB, ext4?)
pub const PARTS: &[(u32, &str, &str, u64, bool)] = &[
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
pub struct Mirror {
    pub dir: PathBuf,
    /// `<dir>/<board>`
    pub base: PathBuf,
    pub raw: PathBuf,
    pub oem_raw: PathBuf,
    pub key: PathBuf,
    pub other_key: PathBuf,
    pub gnupg: PathBuf,
}

impl Mirror {
    pub fn release_dir(&self) -> PathBuf {
        self.base.join(VERSION)
    }
    pub fn image(&self) -> PathBuf {
        self.release_dir().join(IMAGE)
    }
}

pub fn sh(script: &str) -> String {
    let out = run(Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(script));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Build (once) the raw images, the compressed and signed mirror, and two gpg keys.
pub fn mirror() -> Mirror {
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

pub fn sign(m: &Mirror, file: &Path, uid: &str) {
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
pub fn build_raw(raw: &Path, oem_tree: Option<&Path>) {
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
pub fn compress_chunked(raw: &Path, out: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    sh(&format!(
        "cd {t}; split -b 8M -d -a 5 {raw} c.; ls c.* | xargs -P 2 -I{{}} bzip2 -9 {{}}; cat $(ls c.*.bz2 | sort) > {out}",
        t = tmp.path().display(),
        raw = raw.display(),
        out = out.display()
    ));
}

/// The mirror's base URLs for `-b`.
pub trait MirrorBase {
    fn base(&self) -> String;
    fn https_base(&self) -> String;
}

impl MirrorBase for Nginx {
    fn base(&self) -> String {
        self.url(BOARD)
    }
    fn https_base(&self) -> String {
        self.https_url(BOARD)
    }
}

/// A blank sparse target disk on a loop device (with partition scanning).
pub struct Disk {
    pub _dir: tempfile::TempDir,
    pub file: PathBuf,
    pub lo: Loop,
}

pub fn disk(mib: u64) -> Disk {
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

pub fn install(args: &[&str]) -> Command {
    let mut c = Command::new(bin("coreos-install"));
    c.args(args)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env("NO_PROXY", "127.0.0.1");
    c
}

pub fn dev(d: &Disk) -> String {
    d.lo.dev.display().to_string()
}

/// sha256 of a byte range of a file or device.
pub fn sha_range(p: &Path, off: u64, len: u64) -> String {
    use sha2::{Digest, Sha256};
    let mut f = fs::File::open(p).unwrap();
    f.seek(SeekFrom::Start(off)).unwrap();
    let mut h = Sha256::new();
    std::io::copy(&mut f.take(len), &mut h).unwrap();
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Byte offset and length of partition `n` in the test image (laid out back to back from 2 MiB).
pub fn part_range(n: u32) -> (u64, u64) {
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
pub fn table(d: &Disk) -> String {
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

pub fn assert_no_usr_a(d: &Disk, context: &str) {
    let t = table(d);
    assert!(
        !t.contains("USR-A"),
        "{context}: the disk's partition table names USR-A:\n{t}"
    );
}

/// The success line names the version the installed USR-A holds (no OEM was asked for).
pub fn assert_success(out: &std::process::Output, d: &Disk) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = format!("Success! {VERSION} (none) is installed on {}", dev(d));
    assert!(stdout.contains(&line), "{stdout}");
}

/// Every partition not touched by configuration is byte-identical to the image, and the
/// whole disk's GPT and both ext4 filesystems are clean.
pub fn assert_installed(d: &Disk, raw: &Path, skip: &[u32]) {
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

pub fn debugfs_cat(d: &Disk, n: u32, path: &str) -> Vec<u8> {
    let (off, len) = part_range(n);
    let l = Loop::attach_range(&d.file, off, len);
    run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat {path}"))
        .arg(&l.dev))
    .stdout
}

pub const CLOUD: &str = "#cloud-config\nhostname: installed\nssh_authorized_keys:\n  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBogus test@example\n";

pub fn write_tmp(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(name);
    fs::write(&p, text).unwrap();
    (d, p)
}

/// A mirror copy whose image is replaced by `image`, signed by `signer` (None: keep the
/// original signature).
pub fn variant(m: &Mirror, image: &[u8], signer: Option<&str>) -> tempfile::TempDir {
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
pub fn must_fail(base: &str, key: &Path, expect: &[&str]) -> String {
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
