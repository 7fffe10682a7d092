//! Boot truth: images booted in qemu (TCG) under UEFI (OVMF) and BIOS (SeaBIOS); the sample
//! OS's initramfs prints one COREOS-BOOT-REPORT line, and every field of it is checked.

// The bootloader code itself (the builder is a binary crate), for the hand-assembled image.
#[allow(dead_code)]
#[path = "../../builder/src/bootloader/mod.rs"]
mod bootloader;
#[path = "boot/hand_image.rs"]
mod hand_image;

use e2e::qemu::{boot, BootReport, Firmware};
use e2e::run;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Generous for TCG on a busy two-core machine; the goal is under 60 s.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

fn boot_ok(image: &Path, fw: Firmware) -> BootReport {
    let r = boot(image, fw, "raw", BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("boot {} under {}: {:.1} s", image.display(), fw.name(), r.elapsed.as_secs_f64());
    r
}

fn assert_default_report(r: &BootReport, version: &str, fw: Firmware) {
    assert_eq!(r.usr, "USR-A", "{r:?}");
    assert_eq!(r.verity, "ok", "{r:?}");
    assert_eq!(r.root, "ROOT", "{r:?}");
    assert_eq!(r.user_data_sha256, "none", "{r:?}");
    assert_eq!(r.version, version, "{r:?}");
    assert_eq!(r.firmware, fw.name(), "{r:?}");
}

/// Change one byte in the first data block of `file` (a path inside /usr) in the USR-A
/// filesystem that starts at byte `usr_offset` of `image`; returns the byte offset changed.
fn corrupt_usr_file(image: &Path, usr_offset: u64, file: &str) -> u64 {
    e2e::require("debugfs");
    let spec = format!("{}?offset={usr_offset}", image.display());
    let out = run(Command::new("debugfs").arg("-R").arg(format!("bmap {file} 0")).arg(&spec));
    let block: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| {
        panic!("debugfs bmap {file}: {:?}", String::from_utf8_lossy(&out.stdout))
    });
    assert!(block > 0, "{file} has no first data block");
    let at = usr_offset + block * 4096 + 123;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(image).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x5a], at).unwrap();
    at
}

#[test]
fn hand_assembled_image_boots_under_uefi_and_bios() {
    let sample = e2e::sample_os();
    let dir = tempfile::tempdir_in(e2e::cache()).unwrap();
    let img = hand_image::assemble(dir.path(), &sample.join("usr"), "1.2.3", None);
    std::fs::copy(&img.path, "/tmp/boot-debug.img").unwrap();
    for fw in [Firmware::Bios, Firmware::Uefi] {
        let r = boot_ok(&img.path, fw);
        assert_default_report(&r, "1.2.3", fw);
        assert_eq!(r.oem_id, "none", "{r:?}");
    }
}

#[test]
fn hand_assembled_oem_grub_cfg_sets_the_oem_id() {
    let sample = e2e::sample_os();
    let dir = tempfile::tempdir_in(e2e::cache()).unwrap();
    let img = hand_image::assemble(dir.path(), &sample.join("usr"), "7.0.1", Some("ec2"));
    let r = boot_ok(&img.path, Firmware::Uefi);
    assert_default_report(&r, "7.0.1", Firmware::Uefi);
    assert_eq!(r.oem_id, "ec2", "{r:?}");
}

#[test]
fn hand_assembled_corrupted_usr_never_reports_verity_ok() {
    let sample = e2e::sample_os();
    let dir = tempfile::tempdir_in(e2e::cache()).unwrap();
    let img = hand_image::assemble(dir.path(), &sample.join("usr"), "1.2.3", None);
    let at = corrupt_usr_file(&img.path, img.usr_a_offset, "/bin/busybox");
    let r = boot_ok(&img.path, Firmware::Bios);
    assert_eq!(r.verity, "fail", "byte {at} changed in USR-A, yet: {r:?}");
    assert_eq!(r.usr, "USR-A", "{r:?}");
}
