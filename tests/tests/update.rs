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

const V3: &str = "1002.0.0";

/// A version 3 payload (V2's tree plus another marker), built when first needed.
fn v3_payload() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let f = fixture();
        let usr = f.dir.join("usr-v3");
        run(Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(&f.v1_usr)
            .arg(&usr));
        fs::create_dir_all(usr.join("share/update-test")).unwrap();
        fs::write(usr.join("share/update-test/marker"), V3).unwrap();
        let image = build_image(&usr, &f.dir.join("v3"), V3);
        let p = f.dir.join("v3_update.gz");
        make_payload(&image, &usr, V3, BOARD, &f.signing_key, &p);
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
    write_channel_payload(
        img,
        partition,
        kernel,
        version,
        board,
        "developer",
        key,
        out,
    )
}

#[allow(clippy::too_many_arguments)]
fn write_channel_payload(
    img: &File,
    partition: std::ops::Range<u64>,
    kernel: &[u8],
    version: &str,
    board: &str,
    channel: &str,
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
        channel: channel.into(),
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
    // V1 is older than the running V2: a downgrade, written only when asked.
    let out = run(apply_cmd(&disk, v1_payload()).arg("--allow-downgrade"));
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

/// Run `cmd`, which must exit with `code`; its stdout and stderr.
fn exits_with(cmd: &mut Command, code: i32) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(code), "{cmd:?}:\n{text}");
    text
}

fn apply_cmd(disk: &Path, payload: &Path) -> Command {
    let mut c = update(&["apply"], disk);
    c.arg("-f").arg(payload).arg("-k").arg(&fixture().key_pub);
    c
}

/// The failed trial of USR-B as a boot leaves it: GRUB spent its one try (folded into the GPT
/// by that boot's sync), the boot never marked it good, and the next boot (USR-A) did.
fn fail_trial_of_usr_b(disk: &Path) {
    run(Command::new("cgpt")
        .args(["add", "-i", &USR_B.to_string(), "-T", "0"])
        .arg(disk));
    run(&mut update(&["mark-good", "--slot", "a"], disk));
    let (p, t, s) = cgpt(disk, USR_B);
    assert!(
        p > 0 && t == 0 && s == 0,
        "USR-B failed its trial: {p} {t} {s}"
    );
}

/// Issue 25 item 5: from a boot on trial (USR-B booted, its try spent, not marked good yet),
/// `apply` would overwrite USR-A, the only slot known to boot: refused (exit 3), not a byte
/// written; `--force` writes it and says what it destroyed.
#[test]
fn apply_from_a_boot_on_trial_is_refused_unless_forced() {
    require("cgpt");
    let f = fixture();
    let (_d, disk) = copy_of(&f.v1_image, "disk.bin");
    apply(&disk, &f.v2_payload);
    // The trial boot of USR-B: GRUB spent the try, sync folded it.
    run(Command::new("cgpt")
        .args(["add", "-i", &USR_B.to_string(), "-T", "0"])
        .arg(&disk));
    let before = image_hash(&disk);
    let text = exits_with(
        apply_cmd(&disk, &f.v2_payload).env("COREOS_UPDATE_PRETEND_BOOTED", "b"),
        3,
    );
    assert!(
        text.contains("refusing to write USR-A")
            && text.contains("USR-B is on trial")
            && text.contains(&format!(
                "USR-A (version {V1}) is the only slot known to boot"
            ))
            && text.contains("--force"),
        "{text}"
    );
    assert_eq!(image_hash(&disk), before, "the refusal changed the disk");

    let out = run(apply_cmd(&disk, &f.v2_payload)
        .env("COREOS_UPDATE_PRETEND_BOOTED", "b")
        .arg("--force"));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(&format!(
            "USR-A (version {V1}, the only slot marked good) is overwritten"
        )),
        "{text}"
    );
    assert_eq!(cgpt(&disk, USR_A).1, 1, "USR-A is the pending slot now");
    judge_tables(&disk);
}

/// Issue 25 item 8: on a disk running V2, a mirror whose unsigned version.txt names the older
/// (validly signed) V1 as `current` is refused (exit 4) before the download, a local V1 payload
/// after verification, and a payload signed for another channel (exit 5) — each leaving the
/// disk byte-identical; `--allow-downgrade` writes V1.
#[test]
fn an_older_or_other_channel_release_is_refused_leaving_the_disk_unchanged() {
    require("cgpt");
    let f = fixture();
    let v1 = v1_payload();
    let root = tempfile::tempdir_in(&f.dir).unwrap();
    let dir = root.path().join(BOARD).join(V1);
    fs::create_dir_all(&dir).unwrap();
    fs::copy(v1, dir.join("coreos_production_update.gz")).unwrap();
    fs::write(
        dir.join("version.txt"),
        format!("COREOS_BUILD=1\nCOREOS_VERSION={V1}\n"),
    )
    .unwrap();
    std::os::unix::fs::symlink(V1, root.path().join(BOARD).join("current")).unwrap();
    let nginx = e2e::nginx::Nginx::start(root.path());
    let (d, disk) = copy_of(&f.v2_image, "disk.bin");
    let before = image_hash(&disk);

    let text = exits_with(
        update(&["apply"], &disk)
            .args(["-b", &nginx.url(BOARD), "-V", "current", "-k"])
            .arg(&f.key_pub),
        4,
    );
    assert!(
        text.contains(&format!("version {V1} (from its version.txt)"))
            && text.contains(&format!("older than the running {V2}"))
            && text.contains("--allow-downgrade"),
        "{text}"
    );
    assert_eq!(
        image_hash(&disk),
        before,
        "the mirror's downgrade changed the disk"
    );
    let text = exits_with(&mut apply_cmd(&disk, v1), 4);
    assert!(text.contains(&format!("signed as version {V1}")), "{text}");
    assert_eq!(
        image_hash(&disk),
        before,
        "a local downgrade changed the disk"
    );

    // Signed for channel beta; this machine follows developer (USR's update.conf).
    let beta = d.path().join("beta.gz");
    let small = tempfile::tempfile_in(d.path()).unwrap();
    small.write_all_at(&[7u8; 1 << 20], 0).unwrap();
    write_channel_payload(
        &small,
        0..1 << 20,
        b"a kernel",
        V2,
        BOARD,
        "beta",
        &f.signing_key,
        &beta,
    );
    let text = exits_with(&mut apply_cmd(&disk, &beta), 5);
    assert!(
        text.contains("channel beta") && text.contains("follows developer"),
        "{text}"
    );
    assert_eq!(
        image_hash(&disk),
        before,
        "another channel's payload changed the disk"
    );
    // ROOT's /etc/coreos/update.conf overrides USR's: now the developer payload is foreign.
    write_root_file(&disk, "/etc/coreos/update.conf", "GROUP=beta\n");
    let before = image_hash(&disk);
    let text = exits_with(&mut apply_cmd(&disk, &f.v2_payload), 5);
    assert!(
        text.contains("channel developer") && text.contains("follows beta"),
        "{text}"
    );
    assert_eq!(image_hash(&disk), before);

    let (_d2, disk) = copy_of(&f.v2_image, "disk.bin");
    run(apply_cmd(&disk, v1).arg("--allow-downgrade"));
    assert_eq!(cgpt(&disk, USR_B), (2, 1, 0), "V1 pending in USR-B");
    judge_tables(&disk);
}

/// Issue 25 item 6: V2 failed its trial boot; `apply` of V2 (a local payload, or the mirror's
/// `current`) is skipped with exit 6 and not a byte written; `--retry-failed` writes it, the
/// failure stays remembered on the ESP after the slot is rewritten; V3 is written.
#[test]
fn a_release_that_failed_its_trial_is_not_written_again_until_a_newer_one() {
    require("cgpt");
    let f = fixture();
    let (_d, disk) = copy_of(&f.v1_image, "disk.bin");
    apply(&disk, &f.v2_payload);
    fail_trial_of_usr_b(&disk);
    let before = image_hash(&disk);
    let text = exits_with(&mut apply_cmd(&disk, &f.v2_payload), 6);
    assert!(
        text.contains(&format!("not writing {V2}: it failed its trial boot"))
            && text.contains("--retry-failed"),
        "{text}"
    );
    assert_eq!(
        image_hash(&disk),
        before,
        "a failed release was written again"
    );
    let root = v2_mirror(&[]);
    let nginx = e2e::nginx::Nginx::start(root.path());
    let text = exits_with(
        update(&["apply"], &disk)
            .args(["-b", &nginx.url(BOARD), "-V", "current", "-k"])
            .arg(&f.key_pub),
        6,
    );
    assert!(text.contains("failed its trial boot"), "{text}");
    assert_eq!(
        image_hash(&disk),
        before,
        "the mirror's failed release was written"
    );

    // Retried on request; the slot is pending again, yet the failure is remembered.
    run(apply_cmd(&disk, &f.v2_payload).arg("--retry-failed"));
    assert_eq!(cgpt(&disk, USR_B), (2, 1, 0));
    let file = File::open(&disk).unwrap();
    let esp = disk::fat_edit::FatEditor::open(&file, ESP_OFFSET, ESP_BYTES, 0).unwrap();
    let failed = esp
        .read("coreos/update/failed")
        .unwrap()
        .expect("remembered");
    assert!(String::from_utf8_lossy(&failed).lines().any(|l| l == V2));
    drop(esp);
    run(&mut update(&["mark-good", "--slot", "a"], &disk));
    let before = image_hash(&disk);
    exits_with(&mut apply_cmd(&disk, &f.v2_payload), 6);
    assert_eq!(image_hash(&disk), before);

    // A newer release is written.
    let out = run(&mut apply_cmd(&disk, v3_payload()));
    assert!(String::from_utf8_lossy(&out.stdout).contains(V3));
    assert_eq!(cgpt(&disk, USR_B), (2, 1, 0));
    judge_tables(&disk);
}

/// `coreos-update status` of `disk`: the slot whose line says "boots next".
fn boots_next(disk: &Path) -> String {
    let status = assert_status_agrees_with_cgpt(disk);
    assert!(
        status.contains("GRUB's view: same as the GPT"),
        "GRUB's view was not rendered: {status}"
    );
    let line = status
        .lines()
        .find(|l| l.contains("boots next"))
        .unwrap_or_else(|| panic!("nothing boots next: {status}"));
    line[..5].to_string()
}

/// V2 running from USR-B and marked good, V1 good in USR-A: the state a manual rollback
/// starts from.
fn v2_good_in_usr_b() -> (tempfile::TempDir, PathBuf) {
    let f = fixture();
    let (d, disk) = copy_of(&f.v1_image, "disk.bin");
    apply(&disk, &f.v2_payload);
    run(&mut update(&["mark-good", "--slot", "b"], &disk));
    assert_eq!(cgpt(&disk, USR_B), (2, 0, 1));
    assert_eq!(cgpt(&disk, USR_A), (1, 0, 1));
    (d, disk)
}

/// Issue 25 item 1: CoreOS's manual rollback (`cgpt add -P` of the passive partition, or
/// `cgpt add -P0` of the running one) is not undone by the running slot's `mark-good`, and the
/// shutdown `sync` renders it for GRUB; `mark-good` then writes nothing at all (item 9).
#[test]
fn mark_good_leaves_an_operators_cgpt_rollback_in_place() {
    require("cgpt");
    for edit in [["-i", "3", "-P", "3"], ["-i", "4", "-P", "0"]] {
        let (_d, disk) = v2_good_in_usr_b();
        run(Command::new("cgpt").arg("add").args(edit).arg(&disk));
        let gpt_after_edit = (cgpt(&disk, USR_A), cgpt(&disk, USR_B));
        // The running V2 (USR-B) comes to mark itself good, as at every boot.
        let out = run(update(&["mark-good"], &disk).env("COREOS_UPDATE_PRETEND_BOOTED", "b"));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("USR-B is not raised"),
            "{edit:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            (cgpt(&disk, USR_A), cgpt(&disk, USR_B)),
            gpt_after_edit,
            "{edit:?}: mark-good undid the operator's edit"
        );
        // Shutdown.
        run(update(&["sync"], &disk).env("COREOS_UPDATE_PRETEND_BOOTED", "b"));
        assert_eq!(boots_next(&disk), "USR-A", "{edit:?}");
        // The next boot (USR-A) marks itself good; nothing changes, nothing is written.
        run(update(&["mark-good"], &disk).env("COREOS_UPDATE_PRETEND_BOOTED", "a"));
        assert_eq!(boots_next(&disk), "USR-A", "{edit:?}: USR-A stays");
        let before = image_hash(&disk);
        run(update(&["mark-good"], &disk).env("COREOS_UPDATE_PRETEND_BOOTED", "a"));
        assert_eq!(
            image_hash(&disk),
            before,
            "{edit:?}: a mark-good with nothing to do wrote"
        );
    }
}

/// Issue 25 item 1: `coreos-update prioritize --slot a` is `cgpt prioritize` of USR-A with
/// GRUB's view rendered at once; the running USR-B's mark-good leaves it so.
#[test]
fn prioritize_makes_the_other_slot_boot_next_and_mark_good_keeps_it() {
    require("cgpt");
    let (_d, disk) = v2_good_in_usr_b();
    let out = run(&mut update(&["prioritize", "--slot", "a"], &disk));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("USR-A prioritized"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(cgpt(&disk, USR_A), (2, 0, 1), "cgpt prioritize's numbering");
    assert_eq!(cgpt(&disk, USR_B), (1, 0, 1));
    assert_eq!(boots_next(&disk), "USR-A");
    let before = image_hash(&disk);
    run(update(&["mark-good"], &disk).env("COREOS_UPDATE_PRETEND_BOOTED", "b"));
    assert_eq!(
        image_hash(&disk),
        before,
        "mark-good of USR-B changed the disk"
    );
    judge_tables(&disk);
}

/// Rewrite `var=old` as `var=new` (same length) in the ESP's grubenv, as GRUB's save_env does.
fn grub_sets(disk: &Path, from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk)
        .unwrap();
    let esp = disk::fat_edit::FatEditor::open(&file, ESP_OFFSET, ESP_BYTES, 0).unwrap();
    let env = esp.read("coreos/grub/grubenv").unwrap().unwrap();
    let text = String::from_utf8(env).unwrap();
    assert!(text.contains(&format!("\n{from}\n")), "{text}");
    let text = text.replacen(&format!("\n{from}\n"), &format!("\n{to}\n"), 1);
    esp.overwrite("coreos/grub/grubenv", text.as_bytes())
        .unwrap();
    esp.close().unwrap();
}

/// Issue 25 item 2: `cgpt add -T 3` on the pending slot survives `sync` (its grubenv still
/// says the 1 try rendered, which is not a try GRUB spent); a try GRUB does spend is folded.
#[test]
fn tries_an_operator_adds_survive_sync_and_spent_ones_are_folded() {
    require("cgpt");
    let f = fixture();
    let (_d, disk) = copy_of(&f.v1_image, "disk.bin");
    apply(&disk, &f.v2_payload);
    run(Command::new("cgpt")
        .args(["add", "-i", &USR_B.to_string(), "-T", "3"])
        .arg(&disk));
    run(&mut update(&["sync"], &disk));
    assert_eq!(
        cgpt(&disk, USR_B),
        (2, 3, 0),
        "sync took back the operator's tries"
    );
    assert_eq!(boots_next(&disk), "USR-B");
    // GRUB boots USR-B and spends one of the 3.
    grub_sets(&disk, "b_tries=3", "b_tries=2");
    run(&mut update(&["sync"], &disk));
    assert_eq!(
        cgpt(&disk, USR_B),
        (2, 2, 0),
        "the spent try was not folded"
    );
    judge_tables(&disk);
}

/// Issue 25 item 3: a power cut between apply's GPT write and its grubenv write. The next
/// boot is USR-A (GRUB's view still says USR-B cannot boot); its sync and mark-good leave the
/// update pending, so the boot after that tries it.
#[test]
fn a_cut_between_the_gpt_and_grubenv_is_tried_on_the_boot_after() {
    require("cgpt");
    let (_d, disk) = killed_at("between-gpt-and-grubenv");
    assert_eq!(cgpt(&disk, USR_B), (2, 1, 0));
    let status = String::from_utf8_lossy(&run(&mut update(&["status"], &disk)).stdout).into_owned();
    assert!(status.contains("differs"), "{status}");
    assert!(
        status
            .contains("GRUB boots next: USR-A (from today's grubenv); after the next sync: USR-B"),
        "{status}"
    );
    for verb in ["sync", "mark-good"] {
        run(update(&[verb], &disk).env("COREOS_UPDATE_PRETEND_BOOTED", "a"));
    }
    assert_eq!(cgpt(&disk, USR_B), (2, 1, 0), "the update is still pending");
    assert_eq!(cgpt(&disk, USR_A), (1, 0, 1));
    assert_eq!(boots_next(&disk), "USR-B");
    // Not fsck.vfat: the killed apply left the FAT's dirty bit set, as any cut does.
    let v = run(Command::new("sgdisk").arg("-v").arg(&disk));
    assert!(String::from_utf8_lossy(&v.stdout).contains("No problems found"));
}

/// Issue 25 item 7: `coreos-update` holds the disk's flock for the whole command. With another
/// program holding it, `apply` and `mark-good` wait `--wait` seconds, then fail naming the lock,
/// not a byte written; two runs started together (`apply` and `mark-good`) take turns and
/// leave GPT and FAT consistent.
#[test]
fn runs_take_turns_on_the_disk_lock() {
    use std::os::unix::io::AsRawFd;
    require("cgpt");
    let f = fixture();
    let (_d, disk) = copy_of(&f.v1_image, "disk.bin");
    let before = image_hash(&disk);
    {
        let holder = File::open(&disk).unwrap();
        // SAFETY: flock on a descriptor this test owns.
        assert_eq!(unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX) }, 0);
        let t = Instant::now();
        let text = exits_with(apply_cmd(&disk, &f.v2_payload).args(["--wait", "2"]), 1);
        assert!(t.elapsed() >= Duration::from_secs(2), "it did not wait");
        assert!(
            text.contains(&format!("locking {}", disk.display()))
                && text.contains("is locked by another program"),
            "{text}"
        );
        let text = exits_with(
            &mut update(&["mark-good", "--slot", "a", "--wait", "0"], &disk),
            1,
        );
        assert!(text.contains("is locked by another program"), "{text}");
        // `status` reads under a shared lock: it waits too.
        exits_with(&mut update(&["status", "--wait", "0"], &disk), 1);
    }
    assert_eq!(image_hash(&disk), before, "a run without the lock wrote");

    let first = apply_cmd(&disk, &f.v2_payload)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Start the second run once the first holds the lock.
    let probe = File::open(&disk).unwrap();
    let t = Instant::now();
    // SAFETY: flock on a descriptor this test owns.
    while unsafe { libc::flock(probe.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
        // SAFETY: as above.
        unsafe { libc::flock(probe.as_raw_fd(), libc::LOCK_UN) };
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "apply never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = update(&["mark-good", "--slot", "a"], &disk)
        .output()
        .unwrap();
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{first:?}");
    assert!(second.status.success(), "{second:?}");
    // mark-good waited for apply: it ran on the finished update, so USR-A went back on top.
    assert_eq!(cgpt(&disk, USR_A), (2, 0, 1));
    assert_eq!(cgpt(&disk, USR_B), (1, 1, 0));
    assert_status_agrees_with_cgpt(&disk);
    judge_tables(&disk);
}

/// Issue 25 item 1 in a VM: V2 running from USR-B and marked good, V1 good in USR-A. An
/// operator's `cgpt add -P 3` of USR-A (GPT only; grubenv still says USR-B) is CoreOS's manual
/// rollback: this boot still comes up from USR-B as GRUB's view said, but its `mark-good` no
/// longer puts USR-B back on top, so the next boot is V1 from USR-A, and the one after too.
#[test]
fn a_cgpt_rollback_boots_the_other_slot_and_it_stays() {
    require("cgpt");
    let (_d, disk) = v2_good_in_usr_b();
    run(Command::new("cgpt")
        .args(["add", "-i", &USR_A.to_string(), "-P", "3"])
        .arg(&disk));
    let r = boot(&disk, Firmware::Uefi, "cgpt-rollback-1");
    assert_booted(&r, "USR-B", "ok", V2);
    assert_eq!(
        cgpt(&disk, USR_A).0,
        3,
        "the operator's priority was undone"
    );
    let r = boot(&disk, Firmware::Bios, "cgpt-rollback-2");
    assert_booted(&r, "USR-A", "ok", V1);
    let r = boot(&disk, Firmware::Uefi, "cgpt-rollback-3");
    assert_booted(&r, "USR-A", "ok", V1);
    assert_eq!(boots_next(&disk), "USR-A");
    judge_tables(&disk);
}

/// Issue 25 item 9: on a disk cloned with `sgdisk -G` (new disk and partition GUIDs) the slots
/// are still found by their labels; `status` says USR-A's boot config names the old PARTUUID,
/// and `sync` rewrites it with the new one (GRUB passes it to the kernel as `verity.usr=`).
#[test]
fn after_sgdisk_g_the_slots_are_found_and_sync_renews_their_partuuid() {
    require("cgpt");
    let f = fixture();
    let (_d, disk) = copy_of(&f.v1_image, "disk.bin");
    run(Command::new("sgdisk").arg("-G").arg(&disk));
    let status = assert_status_agrees_with_cgpt(&disk);
    assert!(status.contains("boot-files=stale"), "{status}");
    let out = run(&mut update(&["sync"], &disk));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("USR-A: its boot config named PARTUUID"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let guid = e2e::partitions::sgdisk_info(&disk, USR_A)["Partition unique GUID"].to_lowercase();
    let file = File::open(&disk).unwrap();
    let esp = disk::fat_edit::FatEditor::open(&file, ESP_OFFSET, ESP_BYTES, 0).unwrap();
    let cfg = String::from_utf8(esp.read("coreos/usr-a.cfg").unwrap().unwrap()).unwrap();
    assert!(cfg.contains(&guid), "{guid} not in {cfg}");
    drop(esp);
    let status = assert_status_agrees_with_cgpt(&disk);
    assert!(
        status.contains("boot-files=yes") && !status.contains("stale"),
        "{status}"
    );
    judge_tables(&disk);
}

/// Issue 25 item 3 in a VM: apply killed between its GPT write and its grubenv write. The
/// first boot is V1 from USR-A (GRUB's view did not say USR-B yet); the one after tries V2
/// from USR-B, which marks itself good.
#[test]
fn a_cut_between_the_gpt_and_grubenv_boots_the_update_on_the_boot_after() {
    require("cgpt");
    let (_d, disk) = killed_at("between-gpt-and-grubenv");
    let r = boot(&disk, Firmware::Uefi, "cut-1");
    assert_booted(&r, "USR-A", "ok", V1);
    assert_eq!(cgpt(&disk, USR_B), (2, 1, 0), "the update is still pending");
    let r = boot(&disk, Firmware::Bios, "cut-2");
    assert_booted(&r, "USR-B", "ok", V2);
    assert_eq!(cgpt(&disk, USR_B), (2, 0, 1), "marked good");
}

/// Where the ESP's grubenv lies (bytes from the ESP's start), found by its current contents;
/// an in-place rewrite keeps it there (GRUB's `save_env` writes the sectors it found).
fn grubenv_at(disk: &Path) -> u64 {
    let file = File::open(disk).unwrap();
    let env = disk::fat_edit::FatEditor::open(&file, ESP_OFFSET, ESP_BYTES, 0)
        .unwrap()
        .read("coreos/grub/grubenv")
        .unwrap()
        .expect("a grubenv");
    let mut esp = vec![0; ESP_BYTES as usize];
    file.read_exact_at(&mut esp, ESP_OFFSET).unwrap();
    (0..esp.len() - env.len())
        .step_by(512)
        .find(|&i| esp[i..i + env.len()] == env[..])
        .expect("grubenv's contents in the ESP") as u64
}

/// Issue 25 item 4: an OS that keeps the ESP mounted (the sample OS mounts it on `/boot` when
/// ROOT's `/etc/coreos/esp-mount` says so, before any `coreos-update` runs) applies the
/// mirror's V2 through the mount, boots it, marks it good and stays on it: before, `sync`,
/// `mark-good` and `apply` all refused a mounted ESP, so the trial boot was never marked good
/// and the one after rolled back. grubenv keeps its sectors throughout (rewritten in place), and
/// the ESP the kernel unmounted passes `fsck.vfat -n`.
#[test]
fn an_os_that_keeps_the_esp_mounted_updates_marks_good_and_stays_on_v2() {
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
    write_root_file(&disk, "/etc/coreos/esp-mount", "/boot\n");
    let env_at = grubenv_at(&disk);
    let long = BOOT_TIMEOUT * 4;
    let online = |fw| Machine::new(fw).nic(&nginx.guest_nic());

    let r = boot_machine(
        online(Firmware::Bios),
        &disk,
        Firmware::Bios,
        "esp-mounted-apply",
        long,
    );
    assert_booted(&r, "USR-A", "ok", V1);
    assert_eq!(
        r.esp,
        "/boot",
        "the ESP was not mounted; log {}",
        r.log.display()
    );
    assert_eq!(r.update, "applied", "log {}", r.log.display());
    assert_eq!(cgpt(&disk, USR_B), (2, 1, 0), "USR-B boots next, once");
    assert_eq!(cgpt(&disk, USR_A), (1, 0, 1), "USR-A is untouched");
    assert_eq!(boots_next(&disk), "USR-B");
    assert_eq!(grubenv_at(&disk), env_at, "grubenv moved");
    judge_tables(&disk);

    let r = boot_machine(
        online(Firmware::Uefi),
        &disk,
        Firmware::Uefi,
        "esp-mounted-trial",
        long,
    );
    assert_booted(&r, "USR-B", "ok", V2);
    assert_eq!(r.esp, "/boot", "log {}", r.log.display());
    assert_eq!(r.update, "current", "log {}", r.log.display());
    assert_eq!(cgpt(&disk, USR_B), (2, 0, 1), "marked good");
    assert_eq!(cgpt(&disk, USR_A), (1, 0, 1));
    assert_eq!(boots_next(&disk), "USR-B");
    assert_eq!(grubenv_at(&disk), env_at, "grubenv moved");
    judge_tables(&disk);

    let r = boot_machine(
        online(Firmware::Bios),
        &disk,
        Firmware::Bios,
        "esp-mounted-again",
        long,
    );
    assert_booted(&r, "USR-B", "ok", V2);
    assert_eq!(r.esp, "/boot", "log {}", r.log.display());
    assert_eq!(cgpt(&disk, USR_B), (2, 0, 1), "still good");
    assert_eq!(cgpt(&disk, USR_A), (1, 0, 1));
    assert_eq!(boots_next(&disk), "USR-B");
    assert_eq!(grubenv_at(&disk), env_at, "grubenv moved");
    judge_tables(&disk);
}
