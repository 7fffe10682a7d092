//! A/B updates end to end (issue 10's acceptance, 1–6, and issue 13's second disk): a version 1
//! image, a version 2 payload from a changed USR tree (the sample OS plus a marker file),
//! `coreos-update` on writable disk images, judged by Debian's `cgpt`, `sgdisk -v`,
//! `fsck.vfat -n` and booted VMs (the sample OS's report line names slot, verity and version;
//! its init runs `coreos-update sync` and, after verity passed, `mark-good`).
//!
//! Images and payloads are made once per test process; every test works on its own sparse copy.
//! Each test boots its VMs one after another, so with two test threads at most two run at once.

use e2e::qemu::{BootReport, Firmware, Machine};
use e2e::{bin, require, run, run_fail};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const V1: &str = "1000.0.0";
const V2: &str = "1001.0.0";
const BOARD: &str = "amd64-usr";
/// A bound, not a goal: TCG on a shared two-core machine varies.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
/// USR-A and USR-B in the base layout.
const USR_A: u32 = 3;
const USR_B: u32 = 4;
const ROOT: u32 = 9;
const ESP_OFFSET: u64 = 4096 * 512;
const ESP_BYTES: u64 = 262144 * 512;

struct Fixture {
    dir: PathBuf,
    v1_usr: PathBuf,
    v1_image: PathBuf,
    v2_image: PathBuf,
    /// V2's USR-A as a payload.
    v2_payload: PathBuf,
    key_pub: PathBuf,
    signing_key: keys::PayloadSigningKey,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let sample = e2e::sample_os();
        let dir = e2e::cache().join("update");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let signing_key = keys::PayloadSigningKey::generate().unwrap();
        let key_pub = dir.join("update-payload-key.pub.pem");
        fs::write(&key_pub, signing_key.public_key().to_pem().unwrap()).unwrap();
        let copy_usr = |from: &Path, to: &Path| {
            run(Command::new("cp")
                .args(["-a", "--reflink=auto"])
                .arg(from)
                .arg(to));
        };
        // Version 1: the sample OS with the payload key where update_engine kept it.
        let v1_usr = dir.join("usr-v1");
        copy_usr(&sample.join("usr"), &v1_usr);
        fs::create_dir_all(v1_usr.join("share/update_engine")).unwrap();
        fs::copy(
            &key_pub,
            v1_usr.join("share/update_engine/update-payload-key.pub.pem"),
        )
        .unwrap();
        // Version 2: the same plus a marker file.
        let v2_usr = dir.join("usr-v2");
        copy_usr(&v1_usr, &v2_usr);
        fs::create_dir_all(v2_usr.join("share/update-test")).unwrap();
        fs::write(v2_usr.join("share/update-test/marker"), V2).unwrap();
        let v1_image = build_image(&v1_usr, &dir.join("v1"), V1);
        let v2_image = build_image(&v2_usr, &dir.join("v2"), V2);
        let v2_payload = dir.join("v2_update.gz");
        make_payload(&v2_image, &v2_usr, V2, BOARD, &signing_key, &v2_payload);
        Fixture {
            dir,
            v1_usr,
            v1_image,
            v2_image,
            v2_payload,
            key_pub,
            signing_key,
        }
    })
}

/// V1's USR-A as a payload (to write USR-A from USR-B), made when first needed.
fn v1_payload() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let f = fixture();
        let p = f.dir.join("v1_update.gz");
        make_payload(&f.v1_image, &f.v1_usr, V1, BOARD, &f.signing_key, &p);
        p
    })
}

fn build_image(usr: &Path, out: &Path, version: &str) -> PathBuf {
    run(Command::new(bin("coreos-build"))
        .args(["-q", "image", "--usr"])
        .arg(usr)
        .arg("--output")
        .arg(out)
        .args(["--version", version]));
    out.join("coreos_production_image.bin")
}

/// The payload of `image`'s USR-A with the tree's kernel, as the release writes it.
fn make_payload(
    image: &Path,
    usr: &Path,
    version: &str,
    board: &str,
    key: &keys::PayloadSigningKey,
    out: &Path,
) {
    let img = File::open(image).unwrap();
    let part = e2e::partitions::sgdisk_info(image, USR_A);
    let first: u64 = part["First sector"]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let last: u64 = part["Last sector"]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let kernel = fs::read(usr.join("boot/vmlinuz")).unwrap();
    let partition = first * 512..(last + 1) * 512;
    write_payload(&img, partition, &kernel, version, board, key, out);
}

fn write_payload(
    img: &File,
    partition: std::ops::Range<u64>,
    kernel: &[u8],
    version: &str,
    board: &str,
    key: &keys::PayloadSigningKey,
    out: &Path,
) {
    let source = payload::PayloadSource {
        image: img,
        partition,
        kernel,
    };
    let release = payload::Release {
        board: board.into(),
        version: version.into(),
        channel: "developer".into(),
    };
    let mut f = std::io::BufWriter::new(File::create(out).unwrap());
    payload::write_payload(
        &source,
        &release,
        key,
        &mut f,
        &payload::WriteOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    std::io::Write::flush(&mut f).unwrap();
}

/// A sparse copy of `image` for one test.
fn copy_of(image: &Path, name: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir_in(&fixture().dir).unwrap();
    let p = d.path().join(name);
    run(Command::new("cp").arg("--sparse=always").arg(image).arg(&p));
    (d, p)
}

fn update(args: &[&str], disk: &Path) -> Command {
    let mut c = Command::new(bin("coreos-update"));
    c.args(args).arg("-d").arg(disk);
    c
}

fn apply(disk: &Path, payload: &Path) -> Output {
    run(update(&["apply"], disk)
        .arg("-f")
        .arg(payload)
        .arg("-k")
        .arg(&fixture().key_pub))
}

/// (priority, tries, successful) of partition `n` as Debian's cgpt reads them.
fn cgpt(disk: &Path, n: u32) -> (u8, u8, u8) {
    let field = |flag: &str| -> u8 {
        let out = run(Command::new("cgpt")
            .args(["show", "-i", &n.to_string(), flag])
            .arg(disk));
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (field("-P"), field("-T"), field("-S"))
}

/// `coreos-update status` agrees with cgpt on every field of both slots.
fn assert_status_agrees_with_cgpt(disk: &Path) -> String {
    let out = run(&mut update(&["status"], disk));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for (label, n) in [("USR-A", USR_A), ("USR-B", USR_B)] {
        let line = text
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("status has no {label}: {text}"));
        let (p, t, s) = cgpt(disk, n);
        let want = format!("priority={p} tries={t} successful={s}");
        assert!(line.contains(&want), "status {line:?} vs cgpt {want}");
    }
    text
}

fn judge_tables(disk: &Path) {
    let v = run(Command::new("sgdisk").arg("-v").arg(disk));
    let v = String::from_utf8_lossy(&v.stdout);
    assert!(v.contains("No problems found"), "sgdisk -v: {v}");
    let esp = e2e::partitions::extract(disk, ESP_OFFSET, ESP_BYTES);
    run(Command::new("fsck.vfat").arg("-n").arg(esp.path()));
}

/// Boot `disk` (writable) and return the report.
fn boot(disk: &Path, fw: Firmware, name: &str) -> BootReport {
    boot_machine(Machine::new(fw), disk, fw, name, BOOT_TIMEOUT)
}

fn boot_machine(
    m: Machine,
    disk: &Path,
    fw: Firmware,
    name: &str,
    timeout: Duration,
) -> BootReport {
    let r = m
        .disk(disk, "raw", false)
        .boot_report(&format!("update-{name}-{}", fw.name()), timeout)
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{name} under {}: {} {} {} after {:.0} s",
        fw.name(),
        r.usr,
        r.verity,
        r.version,
        r.elapsed.as_secs_f64()
    );
    r
}

fn assert_booted(r: &BootReport, usr: &str, verity: &str, version: &str) {
    assert_eq!(
        (r.usr.as_str(), r.verity.as_str(), r.version.as_str()),
        (usr, verity, version),
        "(usr, verity, version); log {}",
        r.log.display()
    );
}

/// Change one byte in the first data block of `file` in the USR filesystem of partition `n`.
fn corrupt_usr_file(disk: &Path, n: u32, file: &str) {
    require("debugfs");
    let part = e2e::partitions::sgdisk_info(disk, n);
    let first: u64 = part["First sector"]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let offset = first * 512;
    let out = run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("bmap {file} 0"))
        .arg(format!("{}?offset={offset}", disk.display())));
    let block: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let at = offset + block * 4096 + 123;
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x5a], at).unwrap();
}

#[test]
fn apply_boots_usr_b_once_marks_it_good_and_the_slots_alternate() {
    require("cgpt");
    let f = fixture();
    let (_d, disk) = copy_of(&f.v1_image, "disk.bin");
    assert_eq!(cgpt(&disk, USR_A), (1, 0, 1), "a fresh image");
    assert_eq!(cgpt(&disk, USR_B), (0, 0, 0));

    // 1. apply: USR-B priority 2, tries 1, successful 0; USR-A untouched.
    let out = apply(&disk, &f.v2_payload);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(V2) && said.contains("USR-B"), "{said}");
    assert_eq!(cgpt(&disk, USR_B), (2, 1, 0));
    assert_eq!(cgpt(&disk, USR_A), (1, 0, 1));
    judge_tables(&disk);
    let status = assert_status_agrees_with_cgpt(&disk);
    assert!(
        status.contains(&format!("USR-B partition=4 version={V2}")),
        "{status}"
    );

    // 2. The trial boot (under UEFI: GRUB's save_env on FAT worked, or it would not boot B)
    // marks USR-B good; under BIOS it boots again.
    let r = boot(&disk, Firmware::Uefi, "trial");
    assert_booted(&r, "USR-B", "ok", V2);
    assert_eq!(cgpt(&disk, USR_B), (2, 0, 1), "marked good");
    assert_eq!(cgpt(&disk, USR_A), (1, 0, 1));
    let r = boot(&disk, Firmware::Bios, "again");
    assert_booted(&r, "USR-B", "ok", V2);
    judge_tables(&disk);

    // 6. From USR-B the next apply writes USR-A; status agrees with cgpt throughout.
    let out = apply(&disk, v1_payload());
    assert!(String::from_utf8_lossy(&out.stdout).contains("USR-A"));
    assert_eq!(cgpt(&disk, USR_A), (2, 1, 0));
    assert_eq!(cgpt(&disk, USR_B), (1, 0, 1));
    assert_status_agrees_with_cgpt(&disk);
    let r = boot(&disk, Firmware::Uefi, "alternate");
    assert_booted(&r, "USR-A", "ok", V1);
    assert_eq!(cgpt(&disk, USR_A), (2, 0, 1));
    assert_status_agrees_with_cgpt(&disk);
    judge_tables(&disk);
}

#[test]
fn a_slot_that_fails_verity_rolls_back_and_is_not_chosen_again() {
    require("cgpt");
    let f = fixture();
    let (_d, disk) = copy_of(&f.v1_image, "disk.bin");
    apply(&disk, &f.v2_payload);
    corrupt_usr_file(&disk, USR_B, "/bin/busybox");
    // The trial (under BIOS: save_env through SeaBIOS works too) fails verity: not marked good.
    let r = boot(&disk, Firmware::Bios, "corrupt-trial");
    assert_eq!(
        (r.usr.as_str(), r.verity.as_str()),
        ("USR-B", "fail"),
        "log {}",
        r.log.display()
    );
    assert_eq!(
        cgpt(&disk, USR_B),
        (2, 0, 0),
        "the try is spent, never good"
    );
    // The next boot is USR-A, which marks itself good and goes back on top.
    let r = boot(&disk, Firmware::Uefi, "rollback");
    assert_booted(&r, "USR-A", "ok", V1);
    assert_eq!(cgpt(&disk, USR_A), (2, 0, 1));
    assert_eq!(cgpt(&disk, USR_B), (1, 0, 0));
    let status = assert_status_agrees_with_cgpt(&disk);
    let next = status.lines().find(|l| l.contains("boots next")).unwrap();
    assert!(next.starts_with("USR-A"), "{status}");
}

/// Apply with `COREOS_UPDATE_FAULT=point` on a fresh copy: it must stop dead there.
fn killed_at(point: &str) -> (tempfile::TempDir, PathBuf) {
    let f = fixture();
    let (d, disk) = copy_of(&f.v1_image, "disk.bin");
    let out = update(&["apply"], &disk)
        .arg("-f")
        .arg(&f.v2_payload)
        .arg("-k")
        .arg(&f.key_pub)
        .env("COREOS_UPDATE_FAULT", point)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{point}: {:?} {err}",
        out.status
    );
    assert!(err.contains(point), "{err}");
    (d, disk)
}

fn assert_boots_usr_a(disk: &Path, fw: Firmware, name: &str) {
    let r = boot(disk, fw, name);
    assert_booted(&r, "USR-A", "ok", V1);
}

#[test]
fn apply_killed_around_the_slot_write_leaves_a_disk_that_boots_usr_a() {
    for (point, fw) in [
        ("before-slot-write", Firmware::Uefi),
        ("during-slot-write", Firmware::Bios),
        ("after-slot-write", Firmware::Uefi),
    ] {
        let (_d, disk) = killed_at(point);
        assert_eq!(cgpt(&disk, USR_B).0, 0, "{point}: USR-B has priority 0");
        assert_boots_usr_a(&disk, fw, point);
    }
}

#[test]
fn apply_killed_later_or_at_random_leaves_a_disk_that_boots_usr_a() {
    for (point, fw) in [
        ("before-attributes", Firmware::Bios),
        ("between-gpt-and-grubenv", Firmware::Uefi),
    ] {
        let (_d, disk) = killed_at(point);
        assert_boots_usr_a(&disk, fw, point);
    }
    // A kill -9 at a random moment of a real run (its length measured first).
    let f = fixture();
    let (_m, measured) = copy_of(&f.v1_image, "measured.bin");
    let t0 = Instant::now();
    apply(&measured, &f.v2_payload);
    let full = t0.elapsed();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut delay = full.mul_f64((seed % 900) as f64 / 1000.0);
    loop {
        let (_d, disk) = copy_of(&f.v1_image, "disk.bin");
        let mut child = update(&["apply"], &disk)
            .arg("-f")
            .arg(&f.v2_payload)
            .arg("-k")
            .arg(&f.key_pub)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        // SAFETY: kill on the pid of a child not yet waited for.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let status = child.wait().unwrap();
        if status.signal() != Some(libc::SIGKILL) {
            // It finished first (a full run takes {full:?}): try earlier.
            delay /= 2;
            continue;
        }
        eprintln!("killed after {delay:?} of a {full:?} apply (seed {seed})");
        assert_boots_usr_a(&disk, Firmware::Bios, "random-kill");
        break;
    }
}

/// sha256 of the whole image.
fn image_hash(disk: &Path) -> String {
    e2e::sha256_file(disk)
}

/// (offset, length) in bytes of partition `n` of `image`, as sgdisk reads the table.
fn part_bytes(image: &Path, n: u32) -> (u64, u64) {
    let part = e2e::partitions::sgdisk_info(image, n);
    let sector = |field: &str| -> u64 { part[field].split(' ').next().unwrap().parse().unwrap() };
    let (first, last) = (sector("First sector"), sector("Last sector"));
    (first * 512, (last + 1 - first) * 512)
}

/// A mirror's folder: `BOARD/V2` and each of `also` hold V2's payload and a version.txt
/// naming that folder; `current` is V2.
fn v2_mirror(also: &[&str]) -> tempfile::TempDir {
    let f = fixture();
    let root = tempfile::tempdir_in(&f.dir).unwrap();
    let board = root.path().join(BOARD);
    for dir in std::iter::once(&V2).chain(also) {
        fs::create_dir_all(board.join(dir)).unwrap();
        fs::copy(
            &f.v2_payload,
            board.join(dir).join("coreos_production_update.gz"),
        )
        .unwrap();
        fs::write(
            board.join(dir).join("version.txt"),
            format!("COREOS_BUILD=1\nCOREOS_VERSION={dir}\n"),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink(V2, board.join("current")).unwrap();
    root
}

/// `apply -b URL -V current` from a mirror nginx serves: `current` resolves through
/// version.txt, the payload downloads and lands in USR-B byte for byte; a version folder whose
/// payload is another version is refused before a byte is written; a disk that already runs
/// the current version is left alone.
#[test]
fn apply_from_a_mirror_resolves_current_and_refuses_another_version() {
    require("cgpt");
    let f = fixture();
    // 1002.0.0 serves V2's payload: what a mirror mix-up or a replayed payload looks like.
    let root = v2_mirror(&["1002.0.0"]);
    let nginx = e2e::nginx::Nginx::start(root.path());
    let base = nginx.url(BOARD);
    let (_d, disk) = copy_of(&f.v1_image, "disk.bin");

    let before = image_hash(&disk);
    let err = run_fail(
        update(&["apply"], &disk)
            .args(["-b", &base, "-V", "1002.0.0", "-k"])
            .arg(&f.key_pub),
    );
    assert!(
        err.contains(&format!("is version {V2}, not the requested 1002.0.0")),
        "{err}"
    );
    assert_eq!(
        image_hash(&disk),
        before,
        "a refused payload wrote to the disk"
    );

    let out = run(update(&["apply"], &disk)
        .args(["-b", &format!("{base}/"), "-V", "current", "-k"])
        .arg(&f.key_pub));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("USR-B"), "{said}");
    assert_eq!(cgpt(&disk, USR_B), (2, 1, 0), "USR-B is the pending slot");
    let (a_at, a_len) = part_bytes(&f.v2_image, USR_A);
    let (b_at, b_len) = part_bytes(&disk, USR_B);
    assert_eq!(a_len, b_len);
    let want = e2e::partitions::extract(&f.v2_image, a_at, a_len);
    let got = e2e::partitions::extract(&disk, b_at, b_len);
    assert!(
        e2e::same_content(want.path(), got.path()),
        "USR-B does not hold version {V2}'s USR-A"
    );
    assert_status_agrees_with_cgpt(&disk);

    // A disk that already runs the current version has nothing to apply: not a byte changes.
    let (_d2, v2_disk) = copy_of(&f.v2_image, "v2.bin");
    let before = image_hash(&v2_disk);
    let out = run(update(&["apply"], &v2_disk)
        .args(["-b", &base, "-V", "current", "-k"])
        .arg(&f.key_pub));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("USR-A of {} already runs {V2}", v2_disk.display()))
            && said.contains("nothing to apply"),
        "{said}"
    );
    assert_eq!(
        image_hash(&v2_disk),
        before,
        "an up-to-date disk was written"
    );
}

/// Write `text` into ROOT's filesystem (partition 9) of `disk` at `path`, creating its folders.
fn write_root_file(disk: &Path, path: &str, text: &str) {
    require("debugfs");
    let (at, _) = part_bytes(disk, ROOT);
    let dir = tempfile::tempdir_in(&fixture().dir).unwrap();
    let src = dir.path().join("file");
    fs::write(&src, text).unwrap();
    let mut cmds = String::new();
    let mut parent = String::new();
    for part in path
        .trim_start_matches('/')
        .split('/')
        .collect::<Vec<_>>()
        .split_last()
        .unwrap()
        .1
    {
        parent = format!("{parent}/{part}");
        cmds += &format!("mkdir {parent}\n");
    }
    cmds += &format!("write {} {path}\n", src.display());
    let script = dir.path().join("cmds");
    fs::write(&script, cmds).unwrap();
    run(Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&script)
        .arg(format!("{}?offset={at}", disk.display())));
    let out = run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat {path}"))
        .arg(format!("{}?offset={at}", disk.display())));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        text,
        "debugfs wrote {path}"
    );
}

/// Update like an app: the running version 1 system itself (no `-d`: the disk it booted from)
/// finds the mirror's current version, downloads it through qemu's forward to nginx, verifies
/// it with the key its verified USR carries and writes USR-B while it runs from USR-A. The next
/// start boots version 2 from USR-B, which marks itself good and finds nothing newer.
#[test]
fn the_running_system_applies_the_mirrors_update_and_boots_it_next() {
    require("cgpt");
    let f = fixture();
    let root = v2_mirror(&[]);
    let nginx = e2e::nginx::Nginx::start(root.path());
    let (_d, disk) = copy_of(&f.v1_image, "disk.bin");
    write_root_file(
        &disk,
        "/etc/coreos/update.conf",
        &format!(
            "GROUP=developer\nSERVER={}/{BOARD}\n",
            e2e::nginx::GUEST_URL
        ),
    );
    // Downloading, verifying and writing a 1 GiB slot under TCG takes minutes, not seconds.
    let long = BOOT_TIMEOUT * 4;
    let online = |fw| Machine::new(fw).nic(&nginx.guest_nic());

    let r = boot_machine(
        online(Firmware::Bios),
        &disk,
        Firmware::Bios,
        "online-apply",
        long,
    );
    assert_booted(&r, "USR-A", "ok", V1);
    assert_eq!(r.update, "applied", "log {}", r.log.display());
    assert_eq!(cgpt(&disk, USR_B), (2, 1, 0), "USR-B boots next, once");
    assert_eq!(cgpt(&disk, USR_A), (1, 0, 1), "USR-A is untouched");
    judge_tables(&disk);
    let status = assert_status_agrees_with_cgpt(&disk);
    assert!(
        status.contains(&format!("USR-B partition=4 version={V2}")),
        "{status}"
    );

    let r = boot_machine(
        online(Firmware::Uefi),
        &disk,
        Firmware::Uefi,
        "online-next",
        long,
    );
    assert_booted(&r, "USR-B", "ok", V2);
    assert_eq!(r.update, "current", "log {}", r.log.display());
    assert_eq!(cgpt(&disk, USR_B), (2, 0, 1), "marked good");
    assert_eq!(cgpt(&disk, USR_A), (1, 0, 1));
    judge_tables(&disk);
}

/// Offline (no booted slot to go by), a second apply before the first one ever booted replaces
/// the pending USR-B again: USR-A, the only slot known to work, is never the target.
#[test]
fn applying_twice_offline_rewrites_the_pending_slot_not_the_proven_one() {
    require("cgpt");
    let f = fixture();
    let (_d, disk) = copy_of(&f.v1_image, "disk.bin");
    apply(&disk, &f.v2_payload);
    assert_eq!(cgpt(&disk, USR_B), (2, 1, 0), "pending");
    let out = apply(&disk, &f.v2_payload);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("USR-B") && !said.contains("USR-A"), "{said}");
    assert_eq!(
        cgpt(&disk, USR_A),
        (1, 0, 1),
        "the proven slot is untouched"
    );
    assert_eq!(cgpt(&disk, USR_B), (2, 1, 0));
    assert_status_agrees_with_cgpt(&disk);
    judge_tables(&disk);
}

#[test]
fn bad_payloads_and_a_mounted_slot_are_refused_leaving_the_disk_unchanged() {
    let f = fixture();
    let (d, disk) = copy_of(&f.v1_image, "disk.bin");
    // USR-B holds a filesystem (so it can be mounted below) and is the passive slot again.
    apply(&disk, &f.v2_payload);
    run(&mut update(&["mark-good", "--slot", "a"], &disk));
    let before = image_hash(&disk);
    let payload = fs::read(&f.v2_payload).unwrap();
    let refuse = |name: &str, bytes: &[u8], key: &Path, extra: &[&str], want: &[&str]| {
        let p = d.path().join(name);
        fs::write(&p, bytes).unwrap();
        let text = run_fail(
            update(&["apply"], &disk)
                .arg("-f")
                .arg(&p)
                .arg("-k")
                .arg(key)
                .args(extra),
        );
        for w in want {
            assert!(text.contains(w), "{name}: no {w:?} in: {text}");
        }
        assert_eq!(image_hash(&disk), before, "{name} changed the disk");
    };
    // One byte of a data blob changed (the middle of the file is blob data).
    let mut tampered = payload.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x01;
    refuse(
        "tampered.gz",
        &tampered,
        &f.key_pub,
        &[],
        &["SHA-256", "nothing was written"],
    );
    // Signed by another key.
    let other = keys::PayloadSigningKey::generate().unwrap();
    let other_pub = d.path().join("other.pub.pem");
    fs::write(&other_pub, other.public_key().to_pem().unwrap()).unwrap();
    refuse(
        "v2.gz",
        &payload,
        &other_pub,
        &[],
        &["signature", "nothing was written"],
    );
    // Truncated.
    refuse(
        "truncated.gz",
        &payload[..payload.len() - 1000],
        &f.key_pub,
        &[],
        &["truncated", "nothing was written"],
    );
    // For another board (a valid payload, signed with the right key; a small partition is
    // enough, the board is checked before anything is written).
    let other_board = d.path().join("arm64.gz");
    let small = tempfile::tempfile_in(d.path()).unwrap();
    small.write_all_at(&[7u8; 1 << 20], 0).unwrap();
    let kernel = b"a kernel".to_vec();
    write_payload(
        &small,
        0..1 << 20,
        &kernel,
        V2,
        "arm64-usr",
        &f.signing_key,
        &other_board,
    );
    let bytes = fs::read(&other_board).unwrap();
    refuse(
        "arm64.gz",
        &bytes,
        &f.key_pub,
        &[],
        &["board arm64-usr", BOARD],
    );
    // Not the version asked for.
    refuse(
        "v2-as-v3.gz",
        &payload,
        &f.key_pub,
        &["-V", "1002.0.0"],
        &["not the requested 1002.0.0"],
    );

    // A mounted passive slot is not written under the kernel (the ESP's check is the same, but
    // this host kernel has no vfat to mount one).
    let lo = e2e::Loop::attach(&disk, true);
    let mnt = e2e::Mount::ro(&lo.part(USR_B), "ext4");
    let text = run_fail(
        update(&["apply"], &disk)
            .arg("-f")
            .arg(&f.v2_payload)
            .arg("-k")
            .arg(&f.key_pub),
    );
    assert!(
        text.contains("USR-B (partition 4")
            && text.contains(&format!("is mounted on {}", mnt.path().display())),
        "{text}"
    );
    drop(mnt);
    drop(lo);
    assert_eq!(image_hash(&disk), before, "the refusal changed the disk");
}

#[test]
fn grub_does_not_boot_a_trial_it_cannot_record() {
    let f = fixture();
    let (_d, disk) = copy_of(&f.v1_image, "disk.bin");
    apply(&disk, &f.v2_payload);
    // A write-protected disk: save_env fails, so the trial slot must not boot.
    let r = Machine::new(Firmware::Uefi)
        .disk(&disk, "raw", false)
        .read_only()
        .boot_report("update-read-only-uefi", BOOT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_booted(&r, "USR-A", "ok", V1);
    // Lossy: the console holds firmware and GRUB bytes that are not UTF-8.
    let console = String::from_utf8_lossy(&fs::read(&r.log).unwrap()).into_owned();
    assert!(
        console.contains("cannot be recorded"),
        "log {}",
        r.log.display()
    );
    assert_eq!(cgpt(&disk, USR_B), (2, 1, 0), "nothing was written");
}

#[test]
fn a_corrupt_grubenv_boots_the_last_good_slot_and_sync_repairs_it() {
    let f = fixture();
    let (_d, disk) = copy_of(&f.v1_image, "disk.bin");
    apply(&disk, &f.v2_payload);
    {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&disk)
            .unwrap();
        let esp = disk::fat_edit::FatEditor::open(&file, ESP_OFFSET, ESP_BYTES, 0).unwrap();
        let mut env = esp.read("coreos/grub/grubenv").unwrap().unwrap();
        env[25..31].copy_from_slice(b"b_prio");
        esp.overwrite("coreos/grub/grubenv", &env).unwrap();
        esp.close().unwrap();
    }
    let status = String::from_utf8_lossy(&run(&mut update(&["status"], &disk)).stdout).into_owned();
    assert!(status.contains("GRUB's view: unusable"), "{status}");
    // USR-B is pending in the GPT, but GRUB cannot see that: it boots the fallback, USR-A.
    let r = boot(&disk, Firmware::Bios, "corrupt-grubenv");
    assert_booted(&r, "USR-A", "ok", V1);
    let status = String::from_utf8_lossy(&run(&mut update(&["status"], &disk)).stdout).into_owned();
    assert!(status.contains("GRUB's view: same as the GPT"), "{status}");
}

#[test]
fn the_disk_grub_started_from_wins_over_a_second_coreos_disk() {
    let f = fixture();
    // Both disks carry slots with the same PARTUUIDs and an ESP labelled EFI-SYSTEM.
    for fw in [Firmware::Uefi, Firmware::Bios] {
        for (first_boots, want) in [(false, V2), (true, V1)] {
            let m = Machine::new(fw).disk(&f.v1_image, "raw", true);
            let m = if first_boots { m.boot_from_this() } else { m };
            let m = m.disk(&f.v2_image, "raw", true);
            let m = if first_boots { m } else { m.boot_from_this() };
            let name = format!("two-disks-{}-{}", want, fw.name());
            let r = m
                .boot_report(&name, BOOT_TIMEOUT)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_booted(&r, "USR-A", "ok", want);
            if fw == Firmware::Bios {
                break; // SeaBIOS makes the boot disk the first: one case shows it.
            }
        }
    }
}
