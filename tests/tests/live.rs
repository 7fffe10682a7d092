//! The live media end to end (issue 11): `coreos-build release --formats iso,pxe` from the
//! sample OS, judged by xorriso and isoinfo, booted in qemu from a CD and a USB stick under
//! BIOS and UEFI, by direct kernel boot and through qemu's iPXE ROM over TFTP, tampered with
//! (dm-verity must refuse), and installing unattended, from a customized ISO (under BIOS and
//! UEFI) and from PXE kernel arguments, onto a blank 8 GiB disk (larger than the image, as every
//! real disk is) from the nginx-served mirror: the live system powers off, `sgdisk -v` finds the
//! backup GPT at the disk's end, and the disk boots on its own with the cloud-config and grows
//! ROOT to the end.
//!
//! The release is built once per test process; at most two VMs run at a time.

use e2e::nginx::{Nginx, GUEST_URL as GUEST_MIRROR};
use e2e::qemu::{self, line_after, BootReport, Firmware, Machine, REPORT_MARKER};
use e2e::{bin, cache, require, run, run_fail, sample_os, sha256_file};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// A bound, not a goal: TCG on a loaded two-core machine takes minutes per boot.
const TIMEOUT: Duration = Duration::from_secs(900);
const VERSION: &str = "3456.7.8";
const BOARD: &str = "amd64-usr";
const EPOCH: &str = "1700000000";
const ISO: &str = "coreos_production_iso_image.iso";
const PXE_KERNEL: &str = "coreos_production_pxe.vmlinuz";
const PXE_INITRD: &str = "coreos_production_pxe_image.cpio.gz";
const PXE_CMDLINE: &str = "coreos_production_pxe.txt";
const INSTALL_MARKER: &str = "COREOS-LIVE-INSTALL rc=";
/// The unattended installs' target: larger than the image (4.5 GiB), as a real disk is.
const TARGET_DISK_BYTES: u64 = 8 << 30;
const CLOUD_CONFIG: &str = "#cloud-config\nhostname: live-installed\n";

/// What every test shares: the release (mirror with the live artifacts) and its key.
struct Release {
    _dir: PathBuf,
    mirror: PathBuf,
    version_dir: PathBuf,
    key: PathBuf,
}

impl Release {
    fn file(&self, name: &str) -> PathBuf {
        self.version_dir.join(name)
    }
}

fn release() -> &'static Release {
    static R: OnceLock<Release> = OnceLock::new();
    R.get_or_init(|| {
        for t in ["xorriso", "isoinfo", "qemu-system-x86_64", "nginx", "gzip"] {
            require(t);
        }
        let dir = cache().join("live-test");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let keys = dir.join("keys");
        run(Command::new(bin("coreos-build"))
            .arg("keygen")
            .arg("--output")
            .arg(&keys)
            .args(["--uid", "Live Release <live@example.com>"]));
        let mirror = dir.join("mirror");
        run(Command::new(bin("coreos-build"))
            .args([
                "-q",
                "release",
                "--no-oem",
                "--include-raw",
                "--formats",
                "iso,pxe",
            ])
            .args(["--version", VERSION])
            .arg("--usr")
            .arg(sample_os().join("usr"))
            .arg("--output")
            .arg(&mirror)
            .arg("--signing-key")
            .arg(keys.join("signing-key.asc"))
            .env("SOURCE_DATE_EPOCH", EPOCH));
        Release {
            version_dir: mirror.join(BOARD).join(VERSION),
            mirror,
            key: keys.join("signing-key.pub.asc"),
            _dir: dir,
        }
    })
}

/// Run `m` until its report line, and parse it.
fn live_boot(m: Machine, name: &str) -> BootReport {
    let r = m.run(name, TIMEOUT, |c| line_after(c, REPORT_MARKER).is_some());
    let report = qemu::report(&r, name, name, TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{name}: report after {:.1} s (log {})",
        report.elapsed.as_secs_f64(),
        report.log.display()
    );
    report
}

fn assert_live(r: &BootReport, verity: &str, firmware: Firmware) {
    assert_eq!(
        (
            r.usr.as_str(),
            r.verity.as_str(),
            r.root.as_str(),
            r.firmware.as_str()
        ),
        ("LIVE", verity, "tmpfs", firmware.name()),
        "(usr, verity, root, firmware); log {}",
        r.log.display()
    );
    if verity == "ok" {
        assert_eq!(r.version, VERSION, "log {}", r.log.display());
    }
}

fn cmdline(rel: &Release) -> String {
    fs::read_to_string(rel.file(PXE_CMDLINE))
        .unwrap()
        .trim()
        .to_string()
}

fn work_dir(name: &str) -> PathBuf {
    let d = cache().join("live-test").join(name);
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn iso_has_bios_and_efi_entries_a_hybrid_gpt_and_rebuilds_identically() {
    let rel = release();
    let iso = rel.file(ISO);
    let out = run(Command::new("xorriso").arg("-indev").arg(&iso).args([
        "-report_el_torito",
        "plain",
        "-report_system_area",
        "plain",
    ]));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let imgs: Vec<String> = report
        .lines()
        .filter(|l| l.starts_with("El Torito boot img"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(imgs.len(), 2, "{report}");
    assert!(
        imgs[0].contains(": 1 BIOS y none"),
        "platform 0x00 first: {report}"
    );
    assert!(
        imgs[1].contains(": 2 UEFI y none"),
        "platform 0xEF second: {report}"
    );
    // The hybrid system area: GRUB's boot MBR with a protective 0xEE entry, and a GPT whose EFI
    // system partition (type C12A7328-...) is the El Torito EFI image, for USB sticks.
    let area = |key: &str| -> Vec<String> {
        report
            .lines()
            .filter_map(|l| l.strip_prefix(key))
            .map(|v| {
                v.trim_start_matches([' ', ':'])
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    let summary = area("System area summary");
    assert!(
        summary.len() == 1
            && ["MBR", "grub2-mbr", "GPT"]
                .iter()
                .all(|w| summary[0].split(' ').any(|x| x == *w)),
        "not a hybrid MBR/GPT: {report}"
    );
    assert!(
        area("MBR partition")
            .iter()
            .any(|e| e.split(' ').nth(2) == Some("0xee")),
        "no protective MBR entry: {report}"
    );
    assert_eq!(
        area("GPT type GUID"),
        ["1 28732ac11ff8d211ba4b00a0c93ec93b"],
        "{report}"
    );
    assert_eq!(
        area("GPT partition path"),
        ["1 /BOOT/EFIBOOT.IMG"],
        "{report}"
    );
    let listing = run(Command::new("isoinfo").arg("-f").arg("-i").arg(&iso));
    let listing = String::from_utf8_lossy(&listing.stdout);
    for f in [
        "/COREOS/USR.IMG;1",
        "/COREOS/VMLINUZ;1",
        "/COREOS/GRUB.CFG;1",
        "/BOOT/EFIBOOT.IMG;1",
    ] {
        assert!(listing.contains(f), "{f} missing: {listing}");
    }
    // Every artifact is signed and digested like the image.
    for name in [ISO, PXE_KERNEL, PXE_INITRD, PXE_CMDLINE] {
        for ext in ["", ".sig", ".DIGESTS"] {
            let p = rel.file(&format!("{name}{ext}"));
            assert!(p.is_file(), "{} is missing", p.display());
        }
    }
    run(Command::new("gpg")
        .args(["--batch", "--no-default-keyring", "--keyring"])
        .arg(work_dir("gpg").join("ring.gpg"))
        .arg("--import")
        .arg(&rel.key));
    for name in [ISO, PXE_KERNEL, PXE_INITRD, PXE_CMDLINE] {
        run(Command::new("gpg")
            .args(["--batch", "--no-default-keyring", "--keyring"])
            .arg(cache().join("live-test/gpg/ring.gpg"))
            .arg("--verify")
            .arg(rel.file(&format!("{name}.sig")))
            .arg(rel.file(name)));
    }
    // `vm --format iso|pxe` from the released raw image gives the same bytes, twice.
    let raw = rel.file("coreos_production_image.bin");
    for format in ["iso", "pxe"] {
        for n in 0..2 {
            let out = work_dir(&format!("vm-{format}-{n}"));
            run(Command::new(bin("coreos-build"))
                .args(["-q", "vm", "--format", format, "--image"])
                .arg(&raw)
                .arg("--output")
                .arg(&out)
                .env("SOURCE_DATE_EPOCH", EPOCH));
            let names: &[&str] = if format == "iso" {
                &[ISO]
            } else {
                &[PXE_KERNEL, PXE_INITRD, PXE_CMDLINE]
            };
            for name in names {
                assert!(
                    sha256_file(&out.join(name)) == sha256_file(&rel.file(name)),
                    "{format} build {n} differs from the release's {name}"
                );
            }
        }
    }
    let show = run(Command::new(bin("coreos-install"))
        .args(["iso", "show"])
        .arg(&iso));
    assert!(String::from_utf8_lossy(&show.stdout).contains("not customized"));
}

#[test]
fn iso_boots_from_cd_and_usb_under_bios_and_uefi() {
    let rel = release();
    let iso = rel.file(ISO);
    std::thread::scope(|s| {
        let boots: Vec<_> = [
            ("cd", Firmware::Bios),
            ("cd", Firmware::Uefi),
            ("usb", Firmware::Bios),
            ("usb", Firmware::Uefi),
        ]
        .into_iter()
        .map(|(media, fw)| {
            let iso = iso.clone();
            s.spawn(move || {
                let m = Machine::new(fw);
                let m = if media == "cd" {
                    m.cdrom(&iso)
                } else {
                    m.usb_disk(&iso)
                };
                let r = live_boot(m, &format!("live-iso-{media}-{}", fw.name()));
                assert_live(&r, "ok", fw);
            })
        })
        .collect();
        for b in boots {
            b.join().unwrap();
        }
    });
}

#[test]
fn pxe_boots_directly_and_through_ipxe_over_tftp() {
    let rel = release();
    let tftp = work_dir("tftp");
    for f in [PXE_KERNEL, PXE_INITRD] {
        fs::copy(rel.file(f), tftp.join(f)).unwrap();
    }
    fs::write(
        tftp.join("boot.ipxe"),
        format!(
            "#!ipxe\nkernel {PXE_KERNEL} {}\ninitrd {PXE_INITRD}\nboot\n",
            cmdline(rel)
        ),
    )
    .unwrap();
    std::thread::scope(|s| {
        let direct = s.spawn(|| {
            let m = Machine::new(Firmware::Bios).direct_boot(
                &rel.file(PXE_KERNEL),
                &rel.file(PXE_INITRD),
                &cmdline(rel),
            );
            assert_live(&live_boot(m, "live-pxe-direct"), "ok", Firmware::Bios);
        });
        let m = Machine::new(Firmware::Bios)
            .nic(&format!(
                "user,restrict=on,model=virtio-net-pci,tftp={},bootfile=boot.ipxe",
                tftp.display()
            ))
            .network_boot();
        assert_live(&live_boot(m, "live-pxe-ipxe"), "ok", Firmware::Bios);
        direct.join().unwrap();
    });
}

/// Flip one byte of the live USR filesystem inside `bytes`, `usr_at` being where the `usr.img`
/// cpio member's header starts.
fn flip_usr_byte(f: &File, usr_at: u64) {
    // 110-byte header + "usr.img\0", padded to 4: the data starts 120 bytes in. 1 MiB further
    // is a block of the filesystem that dm-verity covers.
    let at = usr_at + 120 + (1 << 20) + 17;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0xff], at).unwrap();
}

#[test]
fn a_tampered_usr_fails_verity_on_the_iso_and_in_the_pxe_initramfs() {
    let rel = release();
    let dir = work_dir("tamper");
    // ISO: the USR archive's place from the ISO 9660 directory.
    let iso = dir.join("tampered.iso");
    run(Command::new("cp")
        .arg("--sparse=always")
        .arg(rel.file(ISO))
        .arg(&iso));
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&iso)
        .unwrap();
    let (usr_at, _) = liveboot::iso9660::find_file(&f, "/coreos/usr.img")
        .unwrap()
        .unwrap();
    flip_usr_byte(&f, usr_at);
    drop(f);
    // PXE: the USR member inside the decompressed initramfs.
    let plain = dir.join("initrd.cpio");
    run(Command::new("sh")
        .arg("-c")
        .arg("gzip -dc \"$1\" > \"$2\"")
        .arg("sh")
        .arg(rel.file(PXE_INITRD))
        .arg(&plain));
    let bytes = fs::read(&plain).unwrap();
    let name_at = bytes
        .windows(8)
        .position(|w| w == b"usr.img\0")
        .expect("the PXE initramfs holds usr.img");
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&plain)
        .unwrap();
    flip_usr_byte(&f, (name_at - 110) as u64);
    drop(f);
    let tampered_initrd = dir.join("tampered.cpio.gz");
    run(Command::new("sh")
        .arg("-c")
        .arg("gzip -1 -n -c \"$1\" > \"$2\"")
        .arg("sh")
        .arg(&plain)
        .arg(&tampered_initrd));
    std::thread::scope(|s| {
        let pxe = s.spawn(|| {
            let m = Machine::new(Firmware::Bios).direct_boot(
                &rel.file(PXE_KERNEL),
                &tampered_initrd,
                &cmdline(rel),
            );
            assert_live(&live_boot(m, "live-tampered-pxe"), "fail", Firmware::Bios);
        });
        let m = Machine::new(Firmware::Bios).cdrom(&iso);
        assert_live(&live_boot(m, "live-tampered-iso"), "fail", Firmware::Bios);
        pxe.join().unwrap();
    });
}

/// A blank target disk larger than the released image, as every real machine's is: the
/// installer moves the backup GPT to its end.
fn blank_disk(dir: &Path, rel: &Release) -> PathBuf {
    let len = fs::metadata(rel.file("coreos_production_image.bin"))
        .unwrap()
        .len();
    assert!(
        len < TARGET_DISK_BYTES,
        "the image outgrew the 8 GiB target"
    );
    fs::create_dir_all(dir).unwrap();
    qemu::blank_qcow2(&dir.join("target.qcow2"), TARGET_DISK_BYTES)
}

/// Run an unattended install to its end: qemu must power off after `rc=0`.
fn install(m: Machine, name: &str) {
    let r = m.run(name, TIMEOUT, |_| false);
    let console = String::from_utf8_lossy(&r.console);
    let rc = line_after(&r.console, INSTALL_MARKER);
    assert_eq!(
        rc.as_deref().map(str::trim),
        Some("0"),
        "{name}: the unattended install did not succeed (log {})",
        r.log.display()
    );
    assert!(
        console.contains("is installed on /dev/vda"),
        "{name}: coreos-install did not report success (log {})",
        r.log.display()
    );
    assert!(
        r.exited.is_some(),
        "{name}: the live system did not power off after installing (log {})",
        r.log.display()
    );
}

/// The installed disk's GPT is clean for `sgdisk -v`, with the backup GPT at the end of the
/// larger disk (read from a sparse raw copy of the qcow2).
fn assert_table_fills_the_disk(target: &Path) {
    let raw = target.with_extension("check.raw");
    run(Command::new("qemu-img")
        .args(["convert", "-q", "-f", "qcow2", "-O", "raw"])
        .arg(target)
        .arg(&raw));
    let verify = run(Command::new("sgdisk").arg("-v").arg(&raw));
    let print = run(Command::new("sgdisk").arg("-p").arg(&raw));
    let _ = fs::remove_file(&raw);
    let verify = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.contains("No problems found"),
        "{}: sgdisk -v:\n{verify}",
        target.display()
    );
    let print = String::from_utf8_lossy(&print.stdout);
    let last_usable = TARGET_DISK_BYTES / 512 - 34;
    assert!(
        print.contains(&format!("last usable sector is {last_usable}")),
        "{}: the backup GPT is not at the end of the disk:\n{print}",
        target.display()
    );
}

/// The installed disk boots with the cloud-config, and its first boot grows ROOT to the end of
/// the larger disk.
fn assert_installed(disk: &Path, fw: Firmware, cloud_config: &Path) {
    let r = qemu::boot(disk, fw, "qcow2", TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let grown: u64 = r
        .root_grown
        .parse()
        .unwrap_or_else(|_| panic!("root_grown={} (log {})", r.root_grown, r.log.display()));
    assert!(
        grown > TARGET_DISK_BYTES / 2,
        "ROOT grew to only {grown} bytes of the {TARGET_DISK_BYTES}-byte disk (log {})",
        r.log.display()
    );
    assert_eq!(
        (
            r.usr.as_str(),
            r.verity.as_str(),
            r.root.as_str(),
            r.user_data_sha256.as_str(),
            r.version.as_str()
        ),
        (
            "USR-A",
            "ok",
            "ROOT",
            sha256_file(cloud_config).as_str(),
            VERSION
        ),
        "(usr, verity, root, user_data_sha256, version); log {}",
        r.log.display()
    );
}

#[test]
fn a_customized_iso_installs_unattended_and_the_disk_boots_with_the_cloud_config() {
    let rel = release();
    let dir = work_dir("unattended-iso");
    let cc = dir.join("cloud-config.yml");
    fs::write(&cc, CLOUD_CONFIG).unwrap();
    let custom = dir.join("custom.iso");
    let base = format!("{GUEST_MIRROR}/{BOARD}");
    run(Command::new(bin("coreos-install"))
        .args(["iso", "customize"])
        .arg(rel.file(ISO))
        .arg("--output")
        .arg(&custom)
        .args(["--dest-device", "/dev/vda", "-b", &base, "-V", VERSION])
        .arg("--dest-config")
        .arg(&cc)
        .arg("-k")
        .arg(&rel.key));
    let show = run(Command::new(bin("coreos-install"))
        .args(["iso", "show"])
        .arg(&custom));
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.contains("karg coreos.inst.install_dev=/dev/vda"),
        "{show}"
    );
    assert!(show.contains("file coreos-inst/cloud-config.yml"), "{show}");
    // The original is untouched, and a second customization of it is refused without --force.
    let orig = run(Command::new(bin("coreos-install"))
        .args(["iso", "show"])
        .arg(rel.file(ISO)));
    assert!(String::from_utf8_lossy(&orig.stdout).contains("not customized"));
    let again = run_fail(
        Command::new(bin("coreos-install"))
            .args(["iso", "customize"])
            .arg(rel.file(ISO))
            .arg("--output")
            .arg(&custom)
            .args(["--dest-device", "/dev/vda"]),
    );
    assert!(again.contains("--force"), "{again}");

    // Installed under each firmware, each disk then booted under the other one.
    let nginx = Nginx::start(&rel.mirror);
    std::thread::scope(|s| {
        for (fw, boot_fw) in [
            (Firmware::Bios, Firmware::Uefi),
            (Firmware::Uefi, Firmware::Bios),
        ] {
            let (dir, custom, cc, nginx) = (&dir, &custom, &cc, &nginx);
            s.spawn(move || {
                let target = blank_disk(&dir.join(fw.name()), rel);
                let m = Machine::new(fw)
                    .cdrom(custom)
                    .disk(&target, "qcow2", false)
                    .nic(&nginx.guest_nic());
                install(m, &format!("live-unattended-iso-{}", fw.name()));
                assert_table_fills_the_disk(&target);
                assert_installed(&target, boot_fw, cc);
            });
        }
    });
}

#[test]
fn pxe_kernel_arguments_install_unattended_and_a_failure_never_powers_off() {
    let rel = release();
    let dir = work_dir("unattended-pxe");
    // The cloud-config and key are fetched by URL, from the mirror's server.
    let served = rel.mirror.join("live-pxe");
    fs::create_dir_all(&served).unwrap();
    let cc = served.join("cloud-config.yml");
    fs::write(&cc, CLOUD_CONFIG.replace("live-installed", "pxe-installed")).unwrap();
    fs::copy(&rel.key, served.join("key.asc")).unwrap();
    let nginx = Nginx::start(&rel.mirror);
    let target = blank_disk(&dir, rel);
    let args = format!(
        "{} coreos.inst.install_dev=/dev/vda coreos.inst.base_url={GUEST_MIRROR}/{BOARD} \
         coreos.inst.version={VERSION} coreos.inst.cloud_config={GUEST_MIRROR}/live-pxe/cloud-config.yml \
         coreos.inst.key={GUEST_MIRROR}/live-pxe/key.asc",
        cmdline(rel)
    );
    std::thread::scope(|s| {
        // A disk that does not exist: the installer's error on the console, no power-off.
        let failing = s.spawn(|| {
            let bad = cmdline(rel) + " coreos.inst.install_dev=/dev/vdz";
            let m = Machine::new(Firmware::Bios).direct_boot(
                &rel.file(PXE_KERNEL),
                &rel.file(PXE_INITRD),
                &bad,
            );
            let r = m.run("live-unattended-fail", TIMEOUT, |c| {
                line_after(c, INSTALL_MARKER).is_some()
            });
            let console = String::from_utf8_lossy(&r.console);
            assert_eq!(
                line_after(&r.console, INSTALL_MARKER)
                    .as_deref()
                    .map(str::trim),
                Some("1"),
                "log {}",
                r.log.display()
            );
            assert!(
                console.contains("coreos-install: error:") && console.contains("/dev/vdz"),
                "the installer's error is not on the console (log {})",
                r.log.display()
            );
            assert!(
                r.exited.is_none() && console.contains("not powering off"),
                "a failed install must not power off (log {})",
                r.log.display()
            );
        });
        let m = Machine::new(Firmware::Bios)
            .direct_boot(&rel.file(PXE_KERNEL), &rel.file(PXE_INITRD), &args)
            .disk(&target, "qcow2", false)
            .nic(&nginx.guest_nic());
        install(m, "live-unattended-pxe");
        failing.join().unwrap();
    });
    drop(nginx);
    assert_table_fills_the_disk(&target);
    assert_installed(&target, Firmware::Bios, &cc);
}
