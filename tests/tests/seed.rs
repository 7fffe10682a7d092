//! The seed's scenario, automated: a live environment (the sample OS kernel with a small
//! initramfs carrying `coreos-install`) boots in qemu, installs the signed release image from
//! its second virtual disk onto its third with a cloud-config, and powers off; the third disk
//! then boots on its own and its boot report shows the cloud-config's sha256.

use e2e::qemu::{self, boot, line_after, Firmware, Machine};
use e2e::{bin, cache, require, run, sample_os, sha256_file};
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A bound, not a goal: TCG on a loaded two-core machine takes minutes per boot.
const QEMU_TIMEOUT: Duration = Duration::from_secs(400);
const VERSION: &str = "2345.6.7";
const IMAGE: &str = "coreos_production_image.bin";
/// The line the live init prints after `coreos-install` returns.
const EXIT_MARKER: &str = "SEED-INSTALL-EXIT=";
const CLOUD_CONFIG: &str = "#cloud-config\nhostname: seeded\n";

/// Modules the live init loads, dependencies first: the virtio disks, and ext4 for the disk
/// holding the release files (the same files, and order, as ci/sample-os resolves).
const MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "virtio_blk",
    "crc32c_generic",
    "jbd2",
    "mbcache",
    "crc16",
    "ext4",
];

/// The live environment's init: install from /dev/vdb's files onto /dev/vdc, report the exit
/// status on the serial console, power off.
const LIVE_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /lib/modules/load.order); do
  insmod "/lib/modules/$m.ko" || echo "seed: insmod $m failed"
done
# The disks appear asynchronously after virtio_blk loads.
i=0
while [ $i -lt 300 ] && ! { [ -b /dev/vdb ] && [ -b /dev/vdc ]; }; do sleep 0.1; i=$((i + 1)); done
mkdir -p /mnt
mount -t ext4 -o ro /dev/vdb /mnt || echo "seed: cannot mount /dev/vdb"
# Through a pipe, so the installer prints plain progress lines rather than redrawn bars.
{
  coreos-install -d /dev/vdc -f /mnt/coreos_production_image.bin.bz2 -k /key.asc -c /cloud-config.yml
  echo $? >/tmp/rc
} 2>&1 | cat
rc=$(cat /tmp/rc 2>/dev/null || echo missing)
echo "SEED-INSTALL-EXIT=$rc" >/dev/ttyS0
umount /mnt
sync
poweroff -f
"#;

/// `coreos-build keygen` + `coreos-build release --usr <sample>/usr`: (release folder, public key).
fn release(dir: &Path) -> (PathBuf, PathBuf) {
    let keys = dir.join("keys");
    run(Command::new(bin("coreos-build"))
        .arg("keygen")
        .arg("--output")
        .arg(&keys)
        .args(["--uid", "Seed Release <seed@example.com>"]));
    let mirror = dir.join("mirror");
    run(Command::new(bin("coreos-build"))
        .args([
            "-q",
            "release",
            "--no-oem",
            "--include-raw",
            "--version",
            VERSION,
        ])
        .arg("--usr")
        .arg(sample_os().join("usr"))
        .arg("--output")
        .arg(&mirror)
        .arg("--signing-key")
        .arg(keys.join("signing-key.asc"))
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    (
        mirror.join("amd64-usr").join(VERSION),
        keys.join("signing-key.pub.asc"),
    )
}

/// A gzipped newc initramfs in `dir`: busybox, the static coreos-install, the modules, the
/// key, the cloud-config and the init above.
fn live_initramfs(dir: &Path, key: &Path, cloud_config: &Path) -> PathBuf {
    let sample = sample_os();
    let kver = fs::read_to_string(sample.join("kernel-version")).unwrap();
    let modules = sample.join("usr/lib/modules").join(kver.trim());
    let root = dir.join("initramfs");
    for d in ["bin", "dev", "proc", "sys", "mnt", "tmp", "lib/modules"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    let copy = |from: &Path, to: &str| {
        fs::copy(from, root.join(to)).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    };
    copy(&sample.join("usr/bin/busybox"), "bin/busybox");
    copy(&bin("coreos-install"), "bin/coreos-install");
    copy(key, "key.asc");
    copy(cloud_config, "cloud-config.yml");
    for m in MODULES {
        // Module files name some modules with '-' where the module name has '_'.
        let file = [m.to_string(), m.replace('_', "-")]
            .into_iter()
            .map(|n| modules.join(format!("{n}.ko")))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("module {m} is not in {}", modules.display()));
        copy(&file, &format!("lib/modules/{m}.ko"));
    }
    fs::write(
        root.join("lib/modules/load.order"),
        MODULES.join("\n") + "\n",
    )
    .unwrap();
    fs::write(root.join("init"), LIVE_INIT).unwrap();
    for x in ["init", "bin/busybox", "bin/coreos-install"] {
        fs::set_permissions(root.join(x), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = dir.join("live.img");
    run(Command::new("sh")
        .arg("-c")
        .arg(
            "cd \"$1\" && find . | LC_ALL=C sort | cpio --create --format=newc --quiet --owner=0:0 | gzip -1 -n > \"$2\"",
        )
        .arg("sh")
        .arg(&root)
        .arg(&out));
    out
}

/// A raw disk holding an ext4 filesystem with the image and its signature.
fn source_disk(dir: &Path, release: &Path) -> PathBuf {
    let files = dir.join("source-files");
    fs::create_dir_all(&files).unwrap();
    for f in [format!("{IMAGE}.bz2"), format!("{IMAGE}.bz2.sig")] {
        fs::copy(release.join(&f), files.join(&f))
            .unwrap_or_else(|e| panic!("{f} in {}: {e}", release.display()));
    }
    let bytes = fs::metadata(files.join(format!("{IMAGE}.bz2")))
        .unwrap()
        .len();
    let disk = dir.join("source.raw");
    let size_mib = bytes / (1 << 20) + 64;
    run(Command::new("truncate")
        .arg("-s")
        .arg(format!("{size_mib}M"))
        .arg(&disk));
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-E", "root_owner=0:0", "-d"])
        .arg(&files)
        .arg(&disk));
    disk
}

/// Boot the live environment and return its console output; the log is kept under
/// `<repo>/.cache/boot-logs/` and named in every failure.
fn run_live(kernel: &Path, initrd: &Path, disks: &[(&Path, &str)]) -> (String, PathBuf) {
    let mut machine =
        Machine::new(Firmware::Bios).direct_boot(kernel, initrd, "console=ttyS0 panic=-1");
    for (d, format) in disks {
        machine = machine.disk(d, format, false);
    }
    // Not done at the exit line: the guest still unmounts, syncs and powers off by itself.
    let run = machine.run("seed-live", QEMU_TIMEOUT, |_| false);
    eprintln!(
        "live environment: qemu {:?} after {:.1} s (log {})",
        run.exited,
        run.elapsed.as_secs_f64(),
        run.log.display()
    );
    assert!(
        run.exited.is_some() || line_after(&run.console, EXIT_MARKER).is_some(),
        "the live environment did not finish within {QEMU_TIMEOUT:?} (console log: {})",
        run.log.display()
    );
    (String::from_utf8_lossy(&run.console).into_owned(), run.log)
}

#[test]
fn live_environment_installs_onto_a_third_disk_that_boots_with_the_cloud_config() {
    for t in [
        "qemu-system-x86_64",
        "cpio",
        "gzip",
        "mkfs.ext4",
        "truncate",
        "qemu-img",
    ] {
        require(t);
    }
    let dir = tempfile::tempdir_in(cache()).unwrap();
    let (release, key) = release(dir.path());
    let cloud_config = dir.path().join("cloud-config.yml");
    fs::write(&cloud_config, CLOUD_CONFIG).unwrap();

    // The target: blank, the size of the raw image.
    let raw = release.join(IMAGE);
    let image_bytes = fs::metadata(&raw)
        .unwrap_or_else(|e| panic!("{}: {e}", raw.display()))
        .len();
    fs::remove_file(&raw).unwrap();
    let target = qemu::blank_qcow2(&dir.path().join("target.qcow2"), image_bytes);
    let unused = dir.path().join("unused.raw");
    File::create(&unused).unwrap().set_len(1 << 20).unwrap();
    let source = source_disk(dir.path(), &release);
    let initrd = live_initramfs(dir.path(), &key, &cloud_config);

    let kernel = sample_os().join("usr/boot/vmlinuz");
    let (console, log) = run_live(
        &kernel,
        &initrd,
        &[(&unused, "raw"), (&source, "raw"), (&target, "qcow2")],
    );
    let status = line_after(console.as_bytes(), EXIT_MARKER).map(|s| s.trim().to_string());
    match status.as_deref() {
        Some("0") => {}
        Some(rc) => panic!(
            "coreos-install exited with {rc} in the live environment (console log: {})",
            log.display()
        ),
        None => panic!(
            "the live environment printed no {EXIT_MARKER} line (console log: {})",
            log.display()
        ),
    }
    assert!(
        console.contains("is installed on /dev/vdc"),
        "coreos-install did not report success (console log: {})",
        log.display()
    );

    let r = boot(&target, Firmware::Uefi, "qcow2", QEMU_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "installed disk under uefi: report after {:.1} s (log {})",
        r.elapsed.as_secs_f64(),
        r.log.display()
    );
    let want_sha = sha256_file(&cloud_config);
    assert_eq!(
        (
            r.usr.as_str(),
            r.verity.as_str(),
            r.root.as_str(),
            r.user_data_sha256.as_str(),
            r.version.as_str(),
            r.firmware.as_str(),
        ),
        ("USR-A", "ok", "ROOT", want_sha.as_str(), VERSION, "uefi"),
        "(usr, verity, root, user_data_sha256, version, firmware); log {}",
        r.log.display()
    );
}
