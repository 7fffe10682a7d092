//! `coreos-build vm`, judged by the real consumers: qemu-img (info/check/convert), sgdisk,
//! debugfs, xmllint, GNU tar, gzip; plus reproducibility and refusal of non-CoreOS input.
//! The cloud and hypervisor formats are in `vm/platforms.rs`.

#[path = "vm/platforms.rs"]
mod platforms;

use e2e::{bin, cache, lock, require, run, run_fail, sha256_file};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const SECTOR: u64 = 512;
/// The `base` layout (DESIGN.md): (number, label, first sector, sectors).
const USR_A: (u64, u64) = (270336, 2097152);
const OEM: (u64, u64) = (4464640, 262144);
const ROOT_FIRST: u64 = 4857856;
const BASE_DISK_SECTORS: u64 = 9289728;
/// ROOT sizes of the `vm` and `vagrant` layouts.
const VM_ROOT: u64 = 12943360;
const VAGRANT_ROOT: u64 = 33845248;

/// A disk with CoreOS's base partition table (sgdisk) and filesystems (mke2fs -d): USR-A with
/// random and text files, OEM with a `metal` grub.cfg, an empty ROOT. Made once.
fn coreos_image() -> PathBuf {
    let _l = lock("vm-image");
    let dir = cache().join("vm-fixture");
    let img = dir.join("coreos_production_image.bin");
    if dir.join(".complete").exists() {
        return img;
    }
    for t in ["sgdisk", "mkfs.ext4", "mkfs.ext2"] {
        require(t);
    }
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("usr/bin")).unwrap();
    fs::create_dir_all(dir.join("oem")).unwrap();
    let mut x = 0x2545f4914f6cdd1du64;
    let random: Vec<u8> = (0..24 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(dir.join("usr/bin/blob"), random).unwrap();
    let text: String = (0..1_500_000).map(|i| format!("{i}\n")).collect();
    fs::write(dir.join("usr/bin/text"), text).unwrap();
    fs::write(dir.join("oem/grub.cfg"), "set oem_id=\"metal\"\n").unwrap();
    File::create(&img)
        .unwrap()
        .set_len(BASE_DISK_SECTORS * SECTOR)
        .unwrap();
    run(Command::new("sgdisk")
        .arg("-o")
        .args([
            "-n",
            "1:4096:+262144",
            "-c",
            "1:EFI-SYSTEM",
            "-t",
            "1:ef00",
            "-n",
            "2:266240:+4096",
            "-c",
            "2:BIOS-BOOT",
            "-t",
            "2:ef02",
            "-n",
            "3:270336:+2097152",
            "-c",
            "3:USR-A",
            "-t",
            "3:5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6",
            "-n",
            "4:2367488:+2097152",
            "-c",
            "4:USR-B",
            "-t",
            "4:5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6",
            "-n",
            "6:4464640:+262144",
            "-c",
            "6:OEM",
            "-n",
            "7:4726784:+131072",
            "-c",
            "7:OEM-CONFIG",
            "-n",
            "9:4857856:+4427776",
            "-c",
            "9:ROOT",
            "-t",
            "9:3884dd41-8582-4404-b9a8-e9b84f2df50e",
        ])
        .arg(&img));
    let mkfs = |kind: &str, label: &str, tree: Option<&str>, first: u64, kib: u64| {
        let mut c = Command::new(format!("mkfs.{kind}"));
        c.args(["-q", "-F", "-L", label, "-E"])
            .arg(format!("offset={}", first * SECTOR));
        c.env("E2FSPROGS_FAKE_TIME", "1700000000")
            .args(["-U", "7130c94a-213a-4e5a-8e26-6cce9662f132"]);
        if let Some(t) = tree {
            c.arg("-d").arg(dir.join(t));
        }
        run(c.arg(&img).arg(format!("{kib}k")));
    };
    mkfs("ext2", "USR-A", Some("usr"), USR_A.0, 260094 * 4);
    mkfs("ext4", "OEM", Some("oem"), OEM.0, OEM.1 / 2);
    mkfs("ext4", "ROOT", None, ROOT_FIRST, 4427776 / 2);
    fs::write(dir.join("version.txt"), "COREOS_VERSION=1234.5.6\n").unwrap();
    File::create(dir.join(".complete")).unwrap();
    img
}

fn vm(format: &str, image: &Path, out: &Path) -> Vec<PathBuf> {
    let o = run(Command::new(bin("coreos-build"))
        .args(["--quiet", "vm", "--format", format, "--image"])
        .arg(image)
        .arg("--output")
        .arg(out)
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect()
}

fn names(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn qemu_img(args: &[&str]) -> String {
    require("qemu-img");
    String::from_utf8(run(Command::new("qemu-img").args(args)).stdout).unwrap()
}

/// The VMDK's judges: qemu-img calls it streamOptimized and checks it clean; returns the raw
/// disk qemu-img converts it back to.
fn vmdk_to_raw(vmdk: &Path, adapter: &str) -> PathBuf {
    let p = vmdk.to_str().unwrap();
    let info = qemu_img(&["info", p]);
    assert!(info.contains("create type: streamOptimized"), "{info}");
    qemu_img(&["check", p]);
    let mut head = vec![0u8; 512 * 21];
    File::open(vmdk).unwrap().read_exact(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[512..]).to_string();
    assert!(
        head.contains(&format!("ddb.adapterType = \"{adapter}\"")),
        "{head}"
    );
    let raw = vmdk.with_extension("raw");
    qemu_img(&["convert", "-O", "raw", p, raw.to_str().unwrap()]);
    raw
}

fn read_range(path: &Path, (first, sectors): (u64, u64)) -> Vec<u8> {
    let mut b = vec![0u8; (sectors * SECTOR) as usize];
    File::open(path)
        .unwrap()
        .read_exact_at(&mut b, first * SECTOR)
        .unwrap();
    b
}

/// USR-A equals the source's, the table passes `sgdisk -v`, ROOT has the layout's size and the
/// OEM partition's grub.cfg (read by debugfs) names `oem_id`.
fn check_disk(raw: &Path, source: &Path, root_sectors: u64, oem_id: &str) {
    require("sgdisk");
    require("debugfs");
    assert!(
        read_range(raw, USR_A) == read_range(source, USR_A),
        "USR-A differs from the source image"
    );
    let v = String::from_utf8(run(Command::new("sgdisk").arg("-v").arg(raw)).stdout).unwrap();
    assert!(v.contains("No problems found"), "{v}");
    let p =
        String::from_utf8(run(Command::new("sgdisk").arg("-i").arg("9").arg(raw)).stdout).unwrap();
    assert!(
        p.contains(&format!("Partition size: {root_sectors} sectors")),
        "{p}"
    );
    let oem = raw.with_extension("oem");
    fs::write(&oem, read_range(raw, OEM)).unwrap();
    let cfg = String::from_utf8(
        run(Command::new("debugfs")
            .args(["-R", "cat /grub.cfg"])
            .arg(&oem))
        .stdout,
    )
    .unwrap();
    assert!(
        cfg.contains(&format!("set oem_id=\"{oem_id}\"")),
        "OEM grub.cfg: {cfg}"
    );
}

fn tar_list(archive: &Path) -> Vec<String> {
    let o = run(Command::new("tar").arg("-tzf").arg(archive));
    let mut v: Vec<String> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

#[test]
fn virtualbox_vmdk_and_ovf() {
    let src = coreos_image();
    let out = tempfile::tempdir().unwrap();
    let files = vm("virtualbox", &src, out.path());
    assert_eq!(
        names(&files),
        [
            "coreos_production_virtualbox_image.vmdk",
            "coreos_production_virtualbox.ovf"
        ]
    );
    let raw = vmdk_to_raw(&files[0], "ide");
    check_disk(&raw, &src, VM_ROOT, "virtualbox");
    require("xmllint");
    run(Command::new("xmllint").arg("--noout").arg(&files[1]));
    let ovf = fs::read_to_string(&files[1]).unwrap();
    let size = fs::metadata(&raw).unwrap().len();
    assert!(
        ovf.contains(&format!("ovf:capacity=\"{size}\"")),
        "capacity is not {size}:\n{ovf}"
    );
    assert!(ovf.contains("ovf:href=\"coreos_production_virtualbox_image.vmdk\""));
    assert!(ovf.contains("MACAddress=\"080027"));
    assert!(fs::read_dir(out.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with('.')));
}

#[test]
fn vagrant_box_and_catalog() {
    let src = coreos_image();
    let out = tempfile::tempdir().unwrap();
    let files = vm("vagrant", &src, out.path());
    assert_eq!(
        names(&files),
        [
            "coreos_production_vagrant.box",
            "coreos_production_vagrant.json"
        ]
    );
    assert_eq!(
        tar_list(&files[0]),
        [
            "Vagrantfile",
            "box.ovf",
            "coreos_production_vagrant_image.vmdk",
            "metadata.json"
        ]
    );
    let x = out.path().join("x");
    fs::create_dir(&x).unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&files[0])
        .arg("-C")
        .arg(&x));
    let meta: String = fs::read_to_string(x.join("metadata.json")).unwrap();
    assert!(
        meta.replace(' ', "")
            .contains("\"provider\":\"virtualbox\""),
        "{meta}"
    );
    run(Command::new("xmllint")
        .arg("--noout")
        .arg(x.join("box.ovf")));
    let ovf = fs::read_to_string(x.join("box.ovf")).unwrap();
    let vf = fs::read_to_string(x.join("Vagrantfile")).unwrap();
    let mac = vf
        .split("config.vm.base_mac = \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(
        mac.starts_with("080027") && ovf.contains(&format!("MACAddress=\"{mac}\"")),
        "{mac}"
    );
    for line in [
        "config.ssh.username = \"core\"",
        "config.ssh.insert_key = false",
        "disabled: true",
    ] {
        assert!(vf.contains(line), "Vagrantfile lacks {line}");
    }
    let raw = vmdk_to_raw(&x.join("coreos_production_vagrant_image.vmdk"), "ide");
    check_disk(&raw, &src, VAGRANT_ROOT, "vagrant");
    let cat = fs::read_to_string(&files[1]).unwrap();
    assert!(
        cat.contains(&sha256_file(&files[0])),
        "catalog checksum: {cat}"
    );
    assert!(
        cat.contains("\"version\": \"1234.5.6\"") && cat.contains("coreos_production_vagrant.box"),
        "{cat}"
    );
}

#[test]
fn gce_sparse_oldgnu_tar_gz() {
    let src = coreos_image();
    let out = tempfile::tempdir().unwrap();
    let files = vm("gce", &src, out.path());
    assert_eq!(names(&files), ["coreos_production_gce.tar.gz"]);
    let list =
        String::from_utf8(run(Command::new("tar").arg("-tzvf").arg(&files[0])).stdout).unwrap();
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(
        list.contains(" disk.raw") && list.contains("9663676416"),
        "{list}"
    );
    // The member header: old GNU magic and the sparse type flag.
    let mut head = [0u8; 512];
    flate2_free_gunzip_head(&files[0], &mut head);
    assert_eq!(&head[257..265], b"ustar  \0", "not an old-GNU header");
    assert_eq!(head[156], b'S', "not a sparse member");
    let x = out.path().join("x");
    fs::create_dir(&x).unwrap();
    run(Command::new("tar")
        .arg("-xzSf")
        .arg(&files[0])
        .arg("-C")
        .arg(&x));
    let raw = x.join("disk.raw");
    assert_eq!(fs::metadata(&raw).unwrap().len() % (1 << 30), 0);
    check_disk(&raw, &src, VM_ROOT, "gce");
}

/// The first 512 bytes of a .gz's content, through `gzip -dc`.
fn flate2_free_gunzip_head(gz: &Path, head: &mut [u8; 512]) {
    let mut c = Command::new("gzip")
        .arg("-dc")
        .arg(gz)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdout.take().unwrap().read_exact(head).unwrap();
    let _ = c.kill();
    let _ = c.wait();
}

#[test]
fn ami_raw_and_stream_vmdk() {
    let src = coreos_image();
    let out = tempfile::tempdir().unwrap();
    let files = vm("ami", &src, out.path());
    assert_eq!(names(&files), ["coreos_production_ami_image.bin"]);
    check_disk(&files[0], &src, 4427776, "ec2");
    let files = vm("ami_vmdk", &src, out.path());
    assert_eq!(names(&files), ["coreos_production_ami_vmdk_image.vmdk"]);
    let raw = vmdk_to_raw(&files[0], "lsilogic");
    check_disk(&raw, &src, 4427776, "ec2");
    assert!(
        fs::read(&raw).unwrap()
            == fs::read(out.path().join("coreos_production_ami_image.bin")).unwrap()
    );
}

#[test]
fn qemu_qcow2_and_launcher() {
    let src = coreos_image();
    let out = tempfile::tempdir().unwrap();
    let files = vm("qemu", &src, out.path());
    assert_eq!(
        names(&files),
        [
            "coreos_production_qemu_image.img",
            "coreos_production_qemu.sh"
        ]
    );
    let p = files[0].to_str().unwrap();
    let check = qemu_img(&["check", p]);
    assert!(check.contains("No errors were found"), "{check}");
    let raw = out.path().join("back.raw");
    qemu_img(&["convert", "-O", "raw", p, raw.to_str().unwrap()]);
    // qemu keeps the image's own OEM tree, as CoreOS's qemu format did.
    check_disk(&raw, &src, VM_ROOT, "metal");
    // The launcher, with a stand-in qemu that prints its arguments.
    let fake = out.path().join("fake-qemu");
    fs::write(&fake, "#!/bin/sh\nprintf '%s\\n' \"$@\"\n").unwrap();
    run(Command::new("chmod").arg("+x").arg(&fake));
    let o = run(Command::new("sh")
        .arg(&files[1])
        .args(["-p", "2345"])
        .env("QEMU", &fake)
        .env("QEMU_ACCEL", "tcg"));
    let args = String::from_utf8(o.stdout).unwrap();
    for a in [
        "-nographic",
        "tcg",
        "hostfwd=tcp:127.0.0.1:2345-:22",
        "format=qcow2",
    ] {
        assert!(args.contains(a), "launcher args lack {a}:\n{args}");
    }
    assert!(
        args.contains(&format!(
            "file={}",
            fs::canonicalize(&files[0]).unwrap().display()
        )),
        "{args}"
    );
    let o = run(Command::new("sh")
        .arg(&files[1])
        .arg("-u")
        .env("QEMU", &fake)
        .env("OVMF", "/x/OVMF.fd"));
    assert!(String::from_utf8(o.stdout).unwrap().contains("/x/OVMF.fd"));
}

/// Every format, three runs each: every file byte-identical (the Vagrant catalog with a fixed
/// box URL, as `release` gives it; its default names the output folder).
#[test]
fn three_runs_of_every_format_are_byte_identical() {
    let src = coreos_image();
    for format in ["virtualbox", "vagrant", "gce", "ami", "ami_vmdk", "qemu"] {
        let mut first: Option<Vec<(String, String)>> = None;
        for run_no in 1..=3 {
            let out = tempfile::tempdir().unwrap();
            let o = run(Command::new(bin("coreos-build"))
                .args(["--quiet", "vm", "--format", format, "--image"])
                .arg(&src)
                .arg("--output")
                .arg(out.path())
                .args([
                    "--box-url",
                    "https://mirror.example/coreos_production_vagrant.box",
                ])
                .env("SOURCE_DATE_EPOCH", "1700000000"));
            let files: Vec<PathBuf> = String::from_utf8(o.stdout)
                .unwrap()
                .lines()
                .map(PathBuf::from)
                .collect();
            let sums: Vec<(String, String)> = names(&files)
                .into_iter()
                .zip(files.iter().map(|f| sha256_file(f)))
                .collect();
            match &first {
                None => first = Some(sums),
                Some(f) => assert_eq!(&sums, f, "{format}: run {run_no} differs from run 1"),
            }
        }
    }
}

#[test]
fn refuses_a_raw_that_is_not_coreos() {
    let dir = tempfile::tempdir().unwrap();
    let zeros = dir.path().join("zeros.bin");
    File::create(&zeros).unwrap().set_len(64 << 20).unwrap();
    let out = dir.path().join("out");
    let msg = run_fail(
        Command::new(bin("coreos-build"))
            .args(["vm", "--format", "virtualbox", "--image"])
            .arg(&zeros)
            .arg("--output")
            .arg(&out),
    );
    assert!(
        msg.contains("zeros.bin is not a CoreOS image") && msg.contains("GPT"),
        "{msg}"
    );

    require("sgdisk");
    let plain = dir.path().join("plain.bin");
    File::create(&plain).unwrap().set_len(64 << 20).unwrap();
    run(Command::new("sgdisk")
        .args(["-o", "-n", "1:2048:+4096", "-c", "1:DATA"])
        .arg(&plain));
    let msg = run_fail(
        Command::new(bin("coreos-build"))
            .args(["vm", "--format", "gce", "--image"])
            .arg(&plain)
            .arg("--output")
            .arg(&out),
    );
    assert!(
        msg.contains("not a CoreOS image") && msg.contains("partition 3 (USR-A)"),
        "{msg}"
    );
    let left: Vec<_> = fs::read_dir(&out)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

/// A bound for a boot under TCG on a shared machine, not a goal.
const BOOT_TIMEOUT: Duration = Duration::from_secs(360);

/// A real image (the sample OS through `coreos-build image`), built once per test process
/// for every boot test here.
fn sample_image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let usr = e2e::sample_os().join("usr");
        let dir = cache().join("vm-boot-image");
        let _ = fs::remove_dir_all(&dir);
        run(Command::new(bin("coreos-build"))
            .args(["-q", "image", "--usr"])
            .arg(&usr)
            .arg("--output")
            .arg(&dir)
            .args(["--version", "1234.5.6"])
            .env("SOURCE_DATE_EPOCH", "1700000000"));
        dir.join("coreos_production_image.bin")
    })
}

/// The VirtualBox VMDK of a real image, booted in qemu under BIOS straight from the VMDK:
/// the guest reports USR-A, verity ok and its OEM id.
#[test]
fn virtualbox_vmdk_boots_under_bios_with_its_oem_id() {
    use e2e::qemu::{boot, Firmware};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vm");
    let files = vm("virtualbox", sample_image(), &out);
    let r = boot(&files[0], Firmware::Bios, "vmdk", BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let got = (
        r.usr.as_str(),
        r.verity.as_str(),
        r.root.as_str(),
        r.oem_id.as_str(),
        r.version.as_str(),
        r.firmware.as_str(),
    );
    assert_eq!(
        got,
        ("USR-A", "ok", "ROOT", "virtualbox", "1234.5.6", "bios"),
        "log {}",
        r.log.display()
    );
}
