//! Boot truth: images booted in qemu (TCG) under UEFI (OVMF) and BIOS (SeaBIOS); the sample
//! OS's initramfs prints one COREOS-BOOT-REPORT line, and every field of it is checked.
//!
//! Two sources of images: `coreos-build image` (the product), and an image assembled with
//! stock tools around the builder's bootloader code, which tells a bootloader fault apart from
//! an image-writer fault.

use coreos_build::bootloader;
#[path = "boot/hand_image.rs"]
mod hand_image;

use e2e::qemu::{boot, boot_writable, BootReport, Firmware};
use e2e::run;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// A bound, not a goal (the goal is under 60 s): TCG on a shared two-core machine varies.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
const VERSION: &str = "1234.5.6";

fn boot_ok(image: &Path, fw: Firmware) -> BootReport {
    let r = boot(image, fw, "raw", BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "boot {} under {}: report after {:.1} s (log {})",
        image.display(),
        fw.name(),
        r.elapsed.as_secs_f64(),
        r.log.display()
    );
    r
}

fn assert_report(r: &BootReport, version: &str, oem_id: &str, fw: Firmware) {
    assert_report_with(r, version, oem_id, "none", fw)
}

fn assert_report_with(
    r: &BootReport,
    version: &str,
    oem_id: &str,
    user_data_sha256: &str,
    fw: Firmware,
) {
    let want = (
        "USR-A",
        "ok",
        "ROOT",
        oem_id,
        user_data_sha256,
        version,
        fw.name(),
    );
    let got = (
        r.usr.as_str(),
        r.verity.as_str(),
        r.root.as_str(),
        r.oem_id.as_str(),
        r.user_data_sha256.as_str(),
        r.version.as_str(),
        r.firmware.as_str(),
    );
    assert_eq!(
        got,
        want,
        "(usr, verity, root, oem_id, user_data_sha256, version, firmware); log {}",
        r.log.display()
    );
    // The image's own slack after ROOT (2 MiB) is not worth growing into.
    assert_eq!(r.root_grown, "no", "log {}", r.log.display());
}

/// `coreos-build image --usr <sample>/usr` into `.cache/boot-images/<name>/`.
fn build_image(name: &str, extra: &[&str]) -> PathBuf {
    let usr = e2e::sample_os().join("usr");
    let out = e2e::cache().join("boot-images").join(name);
    let _ = std::fs::remove_dir_all(&out);
    run(Command::new(e2e::bin("coreos-build"))
        .args(["-q", "image", "--usr"])
        .arg(&usr)
        .arg("--output")
        .arg(&out)
        .args(["--version", VERSION])
        .args(extra));
    let image = out.join("coreos_production_image.bin");
    assert!(
        image.is_file(),
        "coreos-build image wrote no {}",
        image.display()
    );
    image
}

/// The default image, built once per test process.
fn default_image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| build_image("default", &[]))
}

/// First byte of GPT partition `n` (read with sgdisk, not with our own GPT code).
fn partition_offset(image: &Path, n: u32) -> u64 {
    let out = run(Command::new("sgdisk").arg(format!("--info={n}")).arg(image));
    let text = String::from_utf8_lossy(&out.stdout);
    let lba: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("First sector: "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("sgdisk --info={n}: {text}"));
    lba * 512
}

/// Change one byte in the first data block of `file` (a path inside /usr) in the USR-A
/// filesystem that starts at byte `usr_offset` of `image`; returns the byte offset changed.
fn corrupt_usr_file(image: &Path, usr_offset: u64, file: &str) -> u64 {
    e2e::require("debugfs");
    let spec = format!("{}?offset={usr_offset}", image.display());
    let out = run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("bmap {file} 0"))
        .arg(&spec));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let block: u64 = stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("debugfs bmap {file}: {stdout:?}"));
    assert!(block > 0, "{file} has no first data block");
    let at = usr_offset + block * 4096 + 123;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x5a], at).unwrap();
    at
}

#[test]
fn image_boots_under_uefi() {
    let r = boot_ok(default_image(), Firmware::Uefi);
    assert_report(&r, VERSION, "none", Firmware::Uefi);
}

#[test]
fn image_boots_under_bios() {
    let r = boot_ok(default_image(), Firmware::Bios);
    assert_report(&r, VERSION, "none", Firmware::Bios);
}

#[test]
fn ec2_image_reports_its_oem_id() {
    let image = build_image("ec2", &["--oem", "ec2"]);
    let r = boot_ok(&image, Firmware::Bios);
    assert_report(&r, VERSION, "ec2", Firmware::Bios);
}

#[test]
fn image_with_one_usr_byte_changed_never_reports_verity_ok() {
    let dir = tempfile::tempdir_in(e2e::cache()).unwrap();
    let image = dir.path().join("corrupt.bin");
    run(Command::new("cp")
        .arg("--sparse=always")
        .arg(default_image())
        .arg(&image));
    let at = corrupt_usr_file(&image, partition_offset(&image, 3), "/bin/busybox");
    let r = boot_ok(&image, Firmware::Uefi);
    assert_eq!(r.verity, "fail", "byte {at} of USR-A changed, yet {r:?}");
    assert_eq!(r.usr, "USR-A", "{r:?}");
}

#[test]
fn hand_assembled_image_boots_under_uefi_and_bios_with_its_oem_config_and_user_data() {
    let sample = e2e::sample_os();
    let dir = tempfile::tempdir_in(e2e::cache()).unwrap();
    let user_data = b"#cloud-config\nhostname: hand\n";
    let img = hand_image::assemble(
        dir.path(),
        &sample.join("usr"),
        "1.2.3",
        Some("hand"),
        Some(user_data),
    );
    let user_data_path = dir.path().join("user_data");
    std::fs::write(&user_data_path, user_data).unwrap();
    let sha = e2e::sha256_file(&user_data_path);
    for fw in [Firmware::Uefi, Firmware::Bios] {
        let r = boot_ok(&img.path, fw);
        assert_report_with(&r, "1.2.3", "hand", &sha, fw);
    }
}

#[test]
fn hand_assembled_image_with_one_usr_byte_changed_never_reports_verity_ok() {
    let sample = e2e::sample_os();
    let dir = tempfile::tempdir_in(e2e::cache()).unwrap();
    let img = hand_image::assemble(dir.path(), &sample.join("usr"), "1.2.3", None, None);
    let at = corrupt_usr_file(&img.path, img.usr_a_offset, "/bin/busybox");
    let r = boot_ok(&img.path, Firmware::Bios);
    assert_eq!(r.verity, "fail", "byte {at} of USR-A changed, yet {r:?}");
    assert_eq!(r.usr, "USR-A", "{r:?}");
}

/// ROOT grows online at boot when the disk is larger than the image (the kernel resizes the
/// mounted filesystem through its reserved descriptor blocks): the default image on a 32 GiB
/// and on a 1 TiB disk (sparse files). Afterwards, on the host: the GPT is valid with its
/// backup at the new end, partition 9 reaches it, e2fsck finds nothing to fix, and the size
/// the guest reported is the filesystem's.
#[test]
fn root_grows_online_to_fill_a_larger_disk() {
    for (bytes, fw) in [(32u64 << 30, Firmware::Uefi), (1 << 40, Firmware::Bios)] {
        let dir = tempfile::tempdir_in(e2e::cache()).unwrap();
        let image = dir.path().join(format!("grow-{}g.bin", bytes >> 30));
        run(Command::new("cp")
            .arg("--sparse=always")
            .arg(default_image())
            .arg(&image));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&image)
            .unwrap()
            .set_len(bytes)
            .unwrap();
        // Growing to 1 TiB adds about 40 s of TCG time to the boot.
        let r = boot_writable(&image, fw, BOOT_TIMEOUT + Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "boot {} under {}: report after {:.1} s (log {})",
            image.display(),
            fw.name(),
            r.elapsed.as_secs_f64(),
            r.log.display()
        );
        assert_eq!(
            (r.usr.as_str(), r.verity.as_str(), r.root.as_str()),
            ("USR-A", "ok", "ROOT")
        );
        let grown: u64 = r
            .root_grown
            .parse()
            .unwrap_or_else(|_| panic!("root_grown={} (log {})", r.root_grown, r.log.display()));

        let verify = run(Command::new("sgdisk").arg("-v").arg(&image));
        let verify = String::from_utf8_lossy(&verify.stdout);
        assert!(verify.contains("No problems found"), "{verify}");
        let info = run(Command::new("sgdisk").arg("--info=9").arg(&image));
        let info = String::from_utf8_lossy(&info.stdout);
        let last: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("Last sector: "))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{info}"));
        assert_eq!(
            last,
            bytes / 512 - 34,
            "partition 9 ends before the disk does"
        );
        let start = partition_offset(&image, 9);
        let part = (last + 1) * 512 - start;
        assert!(
            grown <= part && part - grown < 128 << 20,
            "ROOT is {grown} bytes in a {part}-byte partition"
        );
        let spec = format!("{}?offset={start}", image.display());
        let fsck = Command::new("e2fsck")
            .arg("-fn")
            .arg(&spec)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&fsck.stdout).into_owned()
            + &String::from_utf8_lossy(&fsck.stderr);
        assert!(
            fsck.status.success() && !text.contains("Fix"),
            "e2fsck -fn ROOT:\n{text}"
        );
        let dump = run(Command::new("dumpe2fs").arg("-h").arg(&spec));
        let dump = String::from_utf8_lossy(&dump.stdout);
        let blocks: u64 = dump
            .lines()
            .find_map(|l| l.strip_prefix("Block count:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{dump}"));
        assert_eq!(
            blocks * 4096,
            grown,
            "the reported size is not the filesystem's"
        );
    }
}
