//! `coreos-build image` judged by real tools: sgdisk, fsck.vfat, e2fsck, veritysetup, the
//! kernel mounting USR-A, and byte-for-byte reproducibility.

use e2e::partitions::{extract, manifest, sgdisk_info};
use e2e::{bin, require, run, run_fail, Loop, Mount};
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const EPOCH: &str = "1700000000";
const IMAGE: &str = "coreos_production_image.bin";
const USR_A_OFFSET: u64 = 270336 * 512;
const USR_A_BYTES: u64 = 2097152 * 512;
const USR_A_FS_BYTES: u64 = 260094 * 4096;

/// (number, label, type GUID, first LBA, sectors, attributes, fixed partition GUID) of the
/// CoreOS base layout, from the reference, not from our layout code.
type Row = (
    u32,
    &'static str,
    &'static str,
    u64,
    u64,
    &'static str,
    Option<&'static str>,
);
const BASE: &[Row] = &[
    (
        1,
        "EFI-SYSTEM",
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
        4096,
        262144,
        "0000000000000004",
        None,
    ),
    (
        2,
        "BIOS-BOOT",
        "21686148-6449-6E6F-744E-656564454649",
        266240,
        4096,
        "0000000000000000",
        None,
    ),
    (
        3,
        "USR-A",
        "5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6",
        270336,
        2097152,
        "0101000000000000",
        Some("7130C94A-213A-4E5A-8E26-6CCE9662F132"),
    ),
    (
        4,
        "USR-B",
        "5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6",
        2367488,
        2097152,
        "0000000000000000",
        Some("E03DD35C-7C2D-4A47-B3FE-27F15780A57C"),
    ),
    (
        6,
        "OEM",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
        4464640,
        262144,
        "0000000000000000",
        None,
    ),
    (
        7,
        "OEM-CONFIG",
        "C95DC21A-DF0E-4340-8D7B-26CBFA9A03E0",
        4726784,
        131072,
        "0000000000000000",
        None,
    ),
    (
        9,
        "ROOT",
        "3884DD41-8582-4404-B9A8-E9B84F2DF50E",
        4857856,
        4427776,
        "0000000000000000",
        None,
    ),
];

/// A small USR tree with the kinds of entries an OS has, including an `lib/os-release` that
/// the stamped one must replace.
fn small_usr(dir: &Path) -> PathBuf {
    let usr = dir.join("usr");
    for d in ["bin", "lib/modules/6.1", "share/doc/x", "boot", "sbin"] {
        fs::create_dir_all(usr.join(d)).unwrap();
    }
    let busybox: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(usr.join("bin/busybox"), busybox).unwrap();
    fs::hard_link(usr.join("bin/busybox"), usr.join("sbin/init")).unwrap();
    std::os::unix::fs::symlink("busybox", usr.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("../lib/modules/6.1/vmlinuz", usr.join("boot/vmlinuz")).unwrap();
    fs::write(
        usr.join("lib/modules/6.1/vmlinuz"),
        b"MZ not really a kernel".repeat(1000),
    )
    .unwrap();
    fs::write(usr.join("lib/os-release"), b"ID=input\n").unwrap();
    fs::write(usr.join("share/doc/x/empty"), b"").unwrap();
    fs::write(usr.join("bin/su"), b"#!/bin/sh\n").unwrap();
    run(Command::new("chmod").arg("4755").arg(usr.join("bin/su")));
    usr
}

fn build(usr: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    run(Command::new(bin("coreos-build"))
        .args(["--quiet", "image", "--usr"])
        .arg(usr)
        .arg("--output")
        .arg(out)
        .args(extra)
        .env("SOURCE_DATE_EPOCH", EPOCH))
}

fn read_verity(out: &Path) -> String {
    let t = fs::read_to_string(out.join("coreos_production_image_verity.txt")).unwrap();
    assert!(
        t.len() == 65 && t.ends_with('\n') && t[..64].bytes().all(|b| b.is_ascii_hexdigit()),
        "{t:?}"
    );
    t[..64].to_string()
}

/// What the kernel shows in USR-A must be the input tree plus the stamped release files.
fn assert_usr_content(image: &Path, usr: &Path) {
    let lo = Loop::attach_range(image, USR_A_OFFSET, USR_A_FS_BYTES);
    let m = Mount::ro(&lo.dev, "ext4");
    let got = manifest(m.path());
    let mut want = manifest(usr);
    for stamped in [
        "lib/os-release",
        "share/coreos/release",
        "share/coreos/update.conf",
        "share/coreos/lsb-release",
    ] {
        let p = m.path().join(stamped);
        assert!(p.is_file(), "{stamped} was not stamped into USR-A");
        let line = format!(
            "100644 0:0 file {} {}",
            fs::metadata(&p).unwrap().len(),
            e2e::sha256_file(&p)
        );
        want.insert(stamped.to_string(), line);
        let mut parent = Path::new(stamped).parent();
        while let Some(d) = parent.filter(|d| !d.as_os_str().is_empty()) {
            want.entry(d.to_string_lossy().into_owned())
                .or_insert_with(|| "40755 0:0 dir".to_string());
            parent = d.parent();
        }
    }
    let diff: Vec<String> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: want {v}, got {:?}", got.get(k)))
        .chain(
            got.keys()
                .filter(|k| !want.contains_key(*k))
                .map(|k| format!("{k}: unexpected")),
        )
        .collect();
    assert!(
        diff.is_empty(),
        "USR-A differs from input + stamped files:\n{}",
        diff.join("\n")
    );
    let os_release = fs::read_to_string(m.path().join("lib/os-release")).unwrap();
    assert!(os_release.contains("ID=coreos\n"), "{os_release}");
}

/// `_contents.txt` lists exactly what the kernel shows in the mounted USR-A: CoreOS's
/// `find -printf` run there (owners as numbers, since the host's passwd names them otherwise;
/// the listing prints 0 as root), compared line by line in path order.
fn assert_contents_as_mounted(image: &Path, out: &Path) {
    let lo = Loop::attach_range(image, USR_A_OFFSET, USR_A_FS_BYTES);
    let m = Mount::ro(&lo.dev, "ext4");
    let find = run(Command::new("find")
        .arg(".")
        .args([
            "-printf",
            "%M %2n %U %G %7s %TY-%Tm-%Td %TH:%TM ./usr/%P -> %l\\n",
        ])
        .current_dir(m.path())
        .env("TZ", "UTC"));
    let tokens = |line: &str, numeric: bool| -> Vec<String> {
        let line = line.trim_end();
        let line = line.strip_suffix(" ->").unwrap_or(line);
        let mut t: Vec<String> = line.split_whitespace().map(String::from).collect();
        if numeric {
            for owner in &mut t[2..4] {
                if owner == "0" {
                    *owner = "root".into();
                }
            }
            if t[7] == "./usr/" {
                t[7] = "./usr".into();
            }
        }
        t
    };
    let mut kernel: Vec<Vec<String>> = String::from_utf8_lossy(&find.stdout)
        .lines()
        .map(|l| tokens(l, true))
        .collect();
    let listed = fs::read_to_string(out.join("coreos_production_image_contents.txt")).unwrap();
    let mut ours: Vec<Vec<String>> = listed.lines().map(|l| tokens(l, false)).collect();
    // Component by component, as a path sorts ("a/b" before "a-c").
    let by_path = |a: &Vec<String>, b: &Vec<String>| {
        (Path::new(&a[7]), &a[8..]).cmp(&(Path::new(&b[7]), &b[8..]))
    };
    kernel.sort_by(by_path);
    let in_order = ours.windows(2).all(|w| by_path(&w[0], &w[1]).is_lt());
    ours.sort_by(by_path);
    let diff: Vec<String> = kernel
        .iter()
        .zip(&ours)
        .filter(|(k, o)| k != o)
        .map(|(k, o)| format!("kernel: {}\nlisted: {}", k.join(" "), o.join(" ")))
        .take(10)
        .collect();
    assert!(
        diff.is_empty() && kernel.len() == ours.len(),
        "{} entries mounted, {} listed; first differences:\n{}",
        kernel.len(),
        ours.len(),
        diff.join("\n")
    );
    assert!(in_order, "the listing is not sorted by path");
}

fn assert_e2fsck_clean(part: &Path, what: &str) {
    let out = Command::new("e2fsck")
        .args(["-fn"])
        .arg(part)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "e2fsck -fn {what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// USR-A on its own: the read-only marker, e2fsck (marker cleared, on a copy), veritysetup
/// verify with the published root hash, and a changed byte rejected.
fn assert_usr_a_checks(image: &Path, root_hash: &str) {
    let part = extract(image, USR_A_OFFSET, USR_A_BYTES);
    let mut marker = [0u8; 1];
    part.as_file().read_exact_at(&mut marker, 0x467).unwrap();
    assert_eq!(marker[0], 0xff, "read-only marker at 0x467 of USR-A");
    let offset = format!("--hash-offset={USR_A_FS_BYTES}");
    let p = part.path().to_str().unwrap();
    run(Command::new("veritysetup").args(["verify", &offset, p, p, root_hash]));
    let dump = run(Command::new("veritysetup").args(["dump", &offset, p]));
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("260094") && dump.contains("sha256"), "{dump}");

    let copy = extract(part.path(), 0, USR_A_BYTES);
    copy.as_file().write_all_at(&[0], 0x467).unwrap();
    assert_e2fsck_clean(copy.path(), "USR-A (marker cleared)");

    part.as_file()
        .write_all_at(&[0x42], 3 * 4096 + 100)
        .unwrap();
    let out = Command::new("veritysetup")
        .args(["verify", &offset, p, p, root_hash])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "veritysetup verify accepted USR-A after a byte changed"
    );
}

#[test]
fn base_image_is_coreos_base_and_judged_clean() {
    for t in [
        "sgdisk",
        "fsck.vfat",
        "fatlabel",
        "e2fsck",
        "e2label",
        "veritysetup",
        "losetup",
        "mount",
        "mtype",
    ] {
        require(t);
    }
    let work = tempfile::tempdir_in(e2e::cache()).unwrap();
    let usr = small_usr(work.path());
    let out = work.path().join("out");
    build(
        &usr,
        &out,
        &[
            "--oem",
            "vagrant",
            "--version",
            "3788.1.2",
            "--group",
            "beta",
        ],
    );
    let image = out.join(IMAGE);
    assert_eq!(fs::metadata(&image).unwrap().len(), 4756340736);

    let v = run(Command::new("sgdisk").arg("-v").arg(&image));
    let v = String::from_utf8_lossy(&v.stdout);
    assert!(v.contains("No problems found"), "{v}");
    let p = String::from_utf8_lossy(&run(Command::new("sgdisk").arg("-p").arg(&image)).stdout)
        .into_owned();
    assert!(
        p.contains("Disk identifier (GUID): 00000000-0000-0000-0000-000000000001"),
        "{p}"
    );
    let mut guids = Vec::new();
    for (n, label, ty, first, sectors, attrs, guid) in BASE {
        let i = sgdisk_info(&image, *n);
        assert_eq!(i["Partition name"], format!("'{label}'"), "{n}: {i:?}");
        assert!(i["Partition GUID code"].starts_with(ty), "{n}: {i:?}");
        assert!(
            i["First sector"].starts_with(&format!("{first} ")),
            "{n}: {i:?}"
        );
        assert!(
            i["Partition size"].starts_with(&format!("{sectors} sectors")),
            "{n}: {i:?}"
        );
        assert_eq!(i["Attribute flags"], *attrs, "{n}");
        if let Some(g) = guid {
            assert_eq!(i["Partition unique GUID"], *g, "{n}");
        }
        guids.push(i["Partition unique GUID"].clone());
    }
    guids.sort();
    guids.dedup();
    assert_eq!(guids.len(), BASE.len(), "partition GUIDs must be distinct");
    for n in [5, 8] {
        let i = Command::new("sgdisk")
            .arg("-i")
            .arg(n.to_string())
            .arg(&image)
            .output()
            .unwrap();
        let i = String::from_utf8_lossy(&i.stdout);
        assert!(
            i.contains("does not exist"),
            "partition {n} must not exist: {i}"
        );
    }

    // ESP: fsck.vfat clean, its label, and the kernel from boot/vmlinuz.
    let esp = extract(&image, 4096 * 512, 262144 * 512);
    run(Command::new("fsck.vfat").arg("-n").arg(esp.path()));
    let k =
        run(Command::new("mtype").args(["-i", esp.path().to_str().unwrap(), "::coreos/vmlinuz-a"]));
    assert!(
        k.stdout == fs::read(usr.join("lib/modules/6.1/vmlinuz")).unwrap(),
        "coreos/vmlinuz-a is not boot/vmlinuz"
    );
    let label = run(Command::new("fatlabel").arg(esp.path()));
    assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), "EFI-SYSTEM");

    // OEM and ROOT.
    let oem = extract(&image, 4464640 * 512, 262144 * 512);
    assert_e2fsck_clean(oem.path(), "OEM");
    let root = extract(&image, 4857856 * 512, 4427776 * 512);
    assert_e2fsck_clean(root.path(), "ROOT");
    for (part, label) in [(&oem, "OEM"), (&root, "ROOT")] {
        let l = run(Command::new("e2label").arg(part.path()));
        assert_eq!(String::from_utf8_lossy(&l.stdout).trim(), label);
    }
    {
        let lo = Loop::attach_range(&image, 4464640 * 512, 262144 * 512);
        let m = Mount::ro(&lo.dev, "ext4");
        let grub = fs::read_to_string(m.path().join("grub.cfg")).unwrap();
        assert!(grub.contains("set oem_id=\"vagrant\""), "{grub}");
        assert!(fs::read_to_string(m.path().join("cloud-config.yml"))
            .unwrap()
            .contains("vagrant insecure public key"));
    }

    let hash = read_verity(&out);
    assert_usr_a_checks(&image, &hash);
    assert_usr_content(&image, &usr);

    let version = fs::read_to_string(out.join("version.txt")).unwrap();
    assert!(
        version.starts_with(
            "COREOS_BUILD=3788\nCOREOS_BRANCH=1\nCOREOS_PATCH=2\nCOREOS_VERSION=3788.1.2\n"
        ),
        "{version}"
    );
    let contents = fs::read_to_string(out.join("coreos_production_image_contents.txt")).unwrap();
    assert!(
        contents.contains(" ./usr/bin/sh -> busybox\n"),
        "{contents}"
    );
    assert!(contents.contains("-rwsr-xr-x "), "{contents}");
    assert!(
        contents.contains("2023-11-14 22:13 ./usr/share/coreos/update.conf\n"),
        "{contents}"
    );
    {
        let lo = Loop::attach_range(&image, USR_A_OFFSET, USR_A_FS_BYTES);
        let m = Mount::ro(&lo.dev, "ext4");
        let update = fs::read_to_string(m.path().join("share/coreos/update.conf")).unwrap();
        assert_eq!(
            update,
            "SERVER=https://public.update.core-os.net/v1/update/\nGROUP=beta\n"
        );
    }
    // Nothing left behind under a temporary name.
    let names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

/// Three builds of the same inputs, the third over the first's files (the replacing commit):
/// every file byte-identical.
#[test]
fn three_builds_are_byte_identical() {
    let work = tempfile::tempdir_in(e2e::cache()).unwrap();
    let usr = small_usr(work.path());
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    build(&usr, &a, &["--oem", "ec2"]);
    let first = outputs(&a);
    assert_eq!(first.len(), 4, "{first:?}");
    build(&usr, &b, &["--oem", "ec2"]);
    assert_eq!(outputs(&b), first, "the second build differs");
    build(&usr, &a, &["--oem", "ec2"]);
    assert_eq!(
        outputs(&a),
        first,
        "the third build (over the first) differs"
    );
    // The default version is the day count of SOURCE_DATE_EPOCH.
    assert!(fs::read_to_string(a.join("version.txt"))
        .unwrap()
        .contains("COREOS_VERSION=3788.0.0\n"));
}

fn assert_fails_cleanly(usr: &Path, out: &Path, extra: &[&str], needles: &[&str]) {
    let msg = run_fail(
        Command::new(bin("coreos-build"))
            .args(["--quiet", "image", "--usr"])
            .arg(usr)
            .arg("--output")
            .arg(out)
            .args(extra)
            .env("SOURCE_DATE_EPOCH", EPOCH),
    );
    for n in needles {
        assert!(msg.contains(n), "message should name {n:?}:\n{msg}");
    }
    if out.exists() {
        let left: Vec<_> = fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            left.is_empty(),
            "a failed build left files behind: {left:?}"
        );
    }
}

#[test]
fn bad_layouts_fail_naming_the_partition() {
    let work = tempfile::tempdir_in(e2e::cache()).unwrap();
    let usr = small_usr(work.path());
    let part = |n: u32, label: &str, extra: &str| {
        format!("[[partition]]\nnumber = {n}\nlabel = \"{label}\"\ntype = \"data\"\nblocks = 8192\n{extra}\n")
    };
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "overlap",
            format!("{}{}", part(1, "A", ""), part(2, "B", "first_lba = 8192")),
            vec!["partition 2 (B)", "overlaps partition 1 (A)"],
        ),
        (
            "misaligned",
            part(1, "A", "first_lba = 6000"),
            vec!["partition 1 (A)", "6000", "aligned"],
        ),
        (
            "fs-too-large",
            "inherits = \"base\"\n[[partition]]\nnumber = 3\nfs_blocks = 262145\n".into(),
            vec!["partition 3 (USR-A)", "1073745920", "1073741824"],
        ),
        (
            "duplicate-number",
            format!("{}{}", part(1, "A", ""), part(1, "B", "")),
            vec!["duplicate partition number 1"],
        ),
        (
            "duplicate-label",
            format!("{}{}", part(1, "A", ""), part(2, "A", "")),
            vec!["duplicate label \"A\"", "partition 2 (A)"],
        ),
        (
            "unknown-type",
            "inherits = \"base\"\n[[partition]]\nnumber = 6\ntype = \"oem-magic\"\n".into(),
            vec!["partition 6 (OEM)", "oem-magic"],
        ),
    ];
    for (name, text, needles) in cases {
        let file = work.path().join(format!("{name}.toml"));
        fs::write(&file, text).unwrap();
        let out = work.path().join(format!("out-{name}"));
        assert_fails_cleanly(&usr, &out, &["--layout", file.to_str().unwrap()], &needles);
    }
}

#[test]
fn too_large_usr_tree_fails_naming_usr_a_and_bytes() {
    let work = tempfile::tempdir_in(e2e::cache()).unwrap();
    let usr = small_usr(work.path());
    let big: Vec<u8> = (0..12_000_000u32)
        .map(|i| (i.wrapping_mul(40503) >> 7) as u8)
        .collect();
    fs::write(usr.join("share/big"), big).unwrap();
    let layout = work.path().join("small-usr.toml");
    fs::write(
        &layout,
        "inherits = \"base\"\n[[partition]]\nnumber = 3\nblocks = 16384\nfs_blocks = 2000\n",
    )
    .unwrap();
    let out = work.path().join("out");
    assert_fails_cleanly(
        &usr,
        &out,
        &["--layout", layout.to_str().unwrap()],
        &["partition 3 (USR-A)", "8192000 bytes"],
    );
}

#[test]
fn unknown_oem_and_bad_version_are_refused() {
    let work = tempfile::tempdir_in(e2e::cache()).unwrap();
    let usr = small_usr(work.path());
    let out = work.path().join("out");
    assert_fails_cleanly(&usr, &out, &["--oem", "amiga"], &["amiga", "vagrant"]);
    assert_fails_cleanly(&usr, &out, &["--version", "1.2"], &["1.2", "X.Y.Z"]);
}

#[test]
fn debian_minbase_usr_image() {
    let minbase = e2e::debian_minbase();
    let usr = minbase.join("usr");
    let work = tempfile::tempdir_in(e2e::cache()).unwrap();
    let out = work.path().join("out");
    build(&usr, &out, &["--oem", "gce"]);
    let image = out.join(IMAGE);
    let v = run(Command::new("sgdisk").arg("-v").arg(&image));
    assert!(String::from_utf8_lossy(&v.stdout).contains("No problems found"));
    let hash = read_verity(&out);
    assert_usr_a_checks(&image, &hash);
    assert_usr_content(&image, &usr);
    let contents = fs::read_to_string(out.join("coreos_production_image_contents.txt")).unwrap();
    let lines = contents.lines().count();
    assert!(lines > 5000, "contents listing has only {lines} lines");
    assert_contents_as_mounted(&image, &out);
}

/// The listing describes the filesystem as written, not the input tree: owners set by
/// `--all-root` and `--owners`, times clamped to SOURCE_DATE_EPOCH, a folder of several
/// blocks, hard links counted inside the tree, lost+found.
#[test]
fn contents_listing_is_what_the_kernel_shows() {
    let work = tempfile::tempdir_in(e2e::cache()).unwrap();
    let usr = small_usr(work.path());
    let many = usr.join("share/many");
    fs::create_dir_all(&many).unwrap();
    for i in 0..300 {
        fs::write(many.join(format!("a-file-with-a-long-name-{i:04}")), b"x").unwrap();
    }
    fs::write(usr.join("share/future"), b"later").unwrap();
    run(Command::new("touch")
        .args(["-d", "2030-01-01 00:00:00 UTC"])
        .arg(usr.join("share/future")));
    fs::write(usr.join("share/foreign"), b"owned by someone").unwrap();
    run(Command::new("chown")
        .arg("4242:4243")
        .arg(usr.join("share/foreign")));
    run(Command::new("chown")
        .arg("4242:4243")
        .arg(usr.join("bin/su")));
    let owners = work.path().join("owners");
    fs::write(&owners, "bin/su 0 0 4755\nshare/doc/x/empty 7 8 0600\n").unwrap();
    let out = work.path().join("out");
    build(&usr, &out, &["--owners", owners.to_str().unwrap()]);
    assert_contents_as_mounted(&out.join(IMAGE), &out);
    let listed = fs::read_to_string(out.join("coreos_production_image_contents.txt")).unwrap();
    for line in [
        "-rwsr-xr-x  1 root    root         10 ",
        "-rw-------  1 7       8             0 ",
        "-rw-r--r--  1 4242    4243         16 ",
        "2023-11-14 22:13 ./usr/share/future\n",
        "drwx------  2 root    root      16384 2023-11-14 22:13 ./usr/lost+found\n",
    ] {
        assert!(listed.contains(line), "no {line:?} in\n{listed}");
    }
}

#[test]
fn inspect_shows_table_filesystems_version_and_hash() {
    let work = tempfile::tempdir_in(e2e::cache()).unwrap();
    let usr = small_usr(work.path());
    let out = work.path().join("out");
    build(&usr, &out, &["--oem", "metal", "--version", "42.0.1"]);
    let image = out.join(IMAGE);
    let hash = read_verity(&out);
    let r = run(Command::new(bin("coreos-build")).arg("inspect").arg(&image));
    let r = String::from_utf8_lossy(&r.stdout).into_owned();
    for needle in [
        "disk GUID: 00000000-0000-0000-0000-000000000001 (never booted)",
        "MBR: hybrid",
        "legacy-bios-bootable",
        "0x0101000000000000 priority=1 tries=0 successful=1",
        "filesystem FAT16 label \"EFI-SYSTEM\"",
        "filesystem ext2 label \"USR-A\" uuid 7130c94a-213a-4e5a-8e26-6cce9662f132 size 1065345024 bytes read-only marker",
        "dm-verity at byte 1065345024",
        "filesystem ext4 label \"OEM\"",
        "filesystem ext4 label \"ROOT\"",
        "version: 42.0.1",
    ] {
        assert!(r.contains(needle), "inspect should show {needle:?}:\n{r}");
    }
    assert!(
        r.contains(&format!(
            "verity root hash (USR-A): {hash} (matches the published _verity.txt)"
        )),
        "{r}"
    );
    // A changed byte in USR-A shows up as a differing hash.
    fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap()
        .write_all_at(&[1], USR_A_OFFSET + 4096 * 9 + 1)
        .unwrap();
    let r = run(Command::new(bin("coreos-build")).arg("inspect").arg(&image));
    assert!(
        String::from_utf8_lossy(&r.stdout).contains("DIFFERS from the published"),
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
}

/// The files of a finished build, by name, with their hashes.
fn outputs(out: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = fs::read_dir(out)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e2e::sha256_file(&e.path()),
            )
        })
        .collect();
    v.sort();
    v
}

/// GRUB module folders in the tree that grub-mkimage cannot use (they are found first: the
/// tree's lib/grub wins over the host's).
fn break_grub(usr: &Path) {
    for target in ["i386-pc", "x86_64-efi"] {
        let d = usr.join("lib/grub").join(target);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("moddep.lst"), "normal: nonexistent\n").unwrap();
        fs::write(d.join("kernel.img"), b"not an ELF file").unwrap();
    }
}

/// A build that fails (a tree too large for USR-A, a GRUB that cannot be made) leaves the
/// previous build's image, verity, contents and version files byte-identical, and no
/// temporary file.
#[test]
fn a_failed_build_keeps_the_previous_image_and_its_files() {
    let work = tempfile::tempdir_in(e2e::cache()).unwrap();
    let usr = small_usr(work.path());
    let layout = work.path().join("small-usr.toml");
    fs::write(
        &layout,
        "inherits = \"base\"\n[[partition]]\nnumber = 3\nblocks = 16384\nfs_blocks = 2000\n",
    )
    .unwrap();
    let layout_arg = ["--layout", layout.to_str().unwrap()];
    let out = work.path().join("out");
    build(&usr, &out, &layout_arg);
    let before = outputs(&out);
    assert_eq!(before.len(), 4, "{before:?}");

    let fail = |needles: &[&str]| {
        let msg = run_fail(
            Command::new(bin("coreos-build"))
                .args(["--quiet", "image", "--usr"])
                .arg(&usr)
                .arg("--output")
                .arg(&out)
                .args(layout_arg)
                .env("SOURCE_DATE_EPOCH", EPOCH),
        );
        for n in needles {
            assert!(msg.contains(n), "message should name {n:?}:\n{msg}");
        }
        assert_eq!(outputs(&out), before, "the previous build's files changed");
    };
    // Too large for USR-A.
    let big: Vec<u8> = (0..12_000_000u32)
        .map(|i| (i.wrapping_mul(40503) >> 7) as u8)
        .collect();
    fs::write(usr.join("share/big"), big).unwrap();
    fail(&["partition 3 (USR-A)"]);
    fs::remove_file(usr.join("share/big")).unwrap();
    // A GRUB that cannot be made.
    break_grub(&usr);
    fail(&["grub-mkimage", &usr.join("lib/grub").display().to_string()]);
}

/// `--no-bootloader` builds an image without GRUB even where GRUB cannot be made; without it
/// that is an error (above). The ESP then holds no EFI loader and the MBR no boot code.
#[test]
fn no_bootloader_builds_an_image_without_grub() {
    let work = tempfile::tempdir_in(e2e::cache()).unwrap();
    let usr = small_usr(work.path());
    break_grub(&usr);
    let out = work.path().join("out");
    let o = build(&usr, &out, &["--no-bootloader"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--no-bootloader"),
        "no warning: {o:?}"
    );
    let image = out.join(IMAGE);
    let esp = extract(&image, 4096 * 512, 262144 * 512);
    let dir = run(Command::new("mdir").args(["-/", "-b", "-i", esp.path().to_str().unwrap()]));
    let dir = String::from_utf8_lossy(&dir.stdout);
    assert!(
        dir.contains("vmlinuz-a") && !dir.to_lowercase().contains("bootx64.efi"),
        "{dir}"
    );
    let mut mbr = [0u8; 440];
    fs::File::open(&image)
        .unwrap()
        .read_exact_at(&mut mbr, 0)
        .unwrap();
    assert!(mbr.iter().all(|&b| b == 0), "boot code in the MBR");
}
