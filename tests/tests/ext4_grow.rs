//! ROOT is made small and grown to fill the disk at first boot. Judged here by e2fsprogs:
//! the descriptor blocks our writer reserves (resize_inode) match what mke2fs reserves for
//! the same size, and an image's ROOT, its partition grown by sfdisk to fill a 32 GiB and a
//! 1 TiB disk (sparse files), grows with resize2fs through those reserved blocks, e2fsck
//! clean after. The kernel growing a mounted ROOT is proven by booting (tests/tests/boot.rs):
//! online resizing needs CAP_SYS_RESOURCE, which a container may not have.

use e2e::{bin, require, run, Loop};
use std::fs;
use std::path::Path;
use std::process::Command;

/// `dumpe2fs` of a filesystem: the header (`-h`) or everything.
fn dumpe2fs(dev: &Path, header_only: bool) -> String {
    require("dumpe2fs");
    let mut c = Command::new("dumpe2fs");
    if header_only {
        c.arg("-h");
    }
    String::from_utf8_lossy(&run(c.arg(dev)).stdout).into_owned()
}

/// A numeric header field of dumpe2fs ("Block count:", "Reserved GDT blocks:").
fn field(dump: &str, name: &str) -> u64 {
    dump.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in dumpe2fs output:\n{dump}"))
}

/// Where each group keeps its reserved descriptor blocks ("Reserved GDT blocks at 2-271").
fn reserved_ranges(dump: &str) -> Vec<String> {
    dump.lines()
        .filter_map(|l| l.trim().strip_prefix("Reserved GDT blocks at "))
        .map(str::to_string)
        .collect()
}

fn fsck_clean(dev: &Path) {
    require("e2fsck");
    let out = Command::new("e2fsck").arg("-fn").arg(dev).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("Fix"),
        "e2fsck -fn {}:\n{text}",
        dev.display()
    );
}

#[test]
fn reserved_descriptor_blocks_match_mke2fs() {
    require("mke2fs");
    let work = tempfile::tempdir().unwrap();
    for size in ["64MiB", "300MiB", "2162MiB", "16GiB"] {
        let ours = work.path().join("ours.img");
        let peer = work.path().join("peer.img");
        let _ = fs::remove_file(&ours);
        run(Command::new(bin("coreos-build"))
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args([
                "-q", "mkfs", "ext4", "--size", size, "--label", "ROOT", "--output",
            ])
            .arg(&ours));
        fsck_clean(&ours);
        let bytes = fs::metadata(&ours).unwrap().len();
        fs::File::create(&peer).unwrap().set_len(bytes).unwrap();
        run(Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-b", "4096", "-O", "64bit"])
            .arg(&peer));
        let (a, b) = (dumpe2fs(&ours, false), dumpe2fs(&peer, false));
        assert_eq!(
            field(&a, "Block count:"),
            field(&b, "Block count:"),
            "{size}: block counts differ, so the comparison would not be fair"
        );
        assert!(a.contains("resize_inode"), "{size}: no resize_inode:\n{a}");
        assert_eq!(
            field(&a, "Reserved GDT blocks:"),
            field(&b, "Reserved GDT blocks:"),
            "{size}: reserved GDT blocks"
        );
        assert_eq!(reserved_ranges(&a), reserved_ranges(&b), "{size}: where");
        assert!(!reserved_ranges(&a).is_empty(), "{size}: no ranges listed");
        fs::remove_file(&peer).unwrap();
    }
}

/// `coreos-build image` of a tiny USR tree (ROOT is what matters here), built once.
fn image() -> &'static Path {
    static IMAGE: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let dir = tempfile::tempdir_in(e2e::cache()).unwrap();
            let usr = dir.path().join("usr");
            fs::create_dir_all(usr.join("boot")).unwrap();
            fs::write(usr.join("boot/vmlinuz"), b"not a kernel").unwrap();
            run(Command::new(bin("coreos-build"))
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .args(["-q", "image", "--usr"])
                .arg(&usr)
                .arg("--output")
                .arg(dir.path().join("out")));
            dir
        })
        .path()
}

/// (first sector, sectors) of partition 9, read by sfdisk.
fn partition_9(disk: &Path) -> (u64, u64) {
    let out = run(Command::new("sfdisk").arg("--dump").arg(disk));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|d| d.ends_with('9'))
        })
        .unwrap_or_else(|| panic!("no partition 9 in sfdisk --dump:\n{text}"));
    let fields = line.split_once(" : ").map_or(line, |(_, f)| f);
    let num = |key: &str| -> u64 {
        fields
            .split(',')
            .find_map(|f| f.trim().split_once('=').filter(|(k, _)| k.trim() == key))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {line}"))
    };
    (num("start"), num("size"))
}

/// Grow the image's partition 9 to the end of a `bytes`-long disk as the sample OS does at
/// boot (sfdisk, which also moves the backup GPT), then ROOT with resize2fs.
fn grow(bytes: u64, new_desc_blocks: u64) {
    require("sfdisk");
    require("resize2fs");
    let dir = tempfile::tempdir_in(e2e::cache()).unwrap();
    let disk = dir.path().join("disk.img");
    run(Command::new("cp")
        .arg("--sparse=always")
        .arg(image().join("out/coreos_production_image.bin"))
        .arg(&disk));
    let (start, before) = partition_9(&disk);
    fs::OpenOptions::new()
        .write(true)
        .open(&disk)
        .unwrap()
        .set_len(bytes)
        .unwrap();
    let mut c = Command::new("sfdisk");
    c.args(["-q", "-N", "9"]).arg(&disk);
    c.stdin(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b",+\n").unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk -N 9");
    let verify = run(Command::new("sgdisk").arg("-v").arg(&disk));
    let verify = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.contains("No problems found"), "{verify}");
    let (start2, sectors) = partition_9(&disk);
    assert_eq!(start2, start, "partition 9 moved");
    assert_eq!(
        start + sectors,
        bytes / 512 - 33,
        "partition 9 does not reach the end"
    );
    assert!(sectors > before);

    let out = run(Command::new("losetup")
        .args(["--find", "--show"])
        .arg(format!("--offset={}", start * 512))
        .arg(format!("--sizelimit={}", sectors * 512))
        .arg(&disk));
    let lo = Loop {
        dev: String::from_utf8(out.stdout).unwrap().trim().into(),
    };
    let old = dumpe2fs(&lo.dev, true);
    run(Command::new("resize2fs").arg(&lo.dev));
    fsck_clean(&lo.dev);
    let new = dumpe2fs(&lo.dev, true);
    let blocks = field(&new, "Block count:");
    let part = sectors * 512 / 4096;
    // resize2fs leaves out a last group too small for its own metadata.
    assert!(
        blocks <= part && part - blocks < 32768,
        "{blocks} of {part}"
    );
    // The descriptor table grew into the reserved blocks: no meta_bg conversion.
    assert!(!new.contains("meta_bg"), "{new}");
    assert_eq!(
        field(&new, "Reserved GDT blocks:"),
        field(&old, "Reserved GDT blocks:") - (new_desc_blocks - 1),
        "reserved descriptor blocks used"
    );
}

#[test]
fn root_grows_to_fill_32_gib() {
    // 32 GiB: about 240 groups, 4 descriptor blocks of 64.
    grow(32 << 30, 4);
}

#[test]
fn root_grows_to_fill_1_tib() {
    // 1 TiB: about 8170 groups, 128 descriptor blocks.
    grow(1 << 40, 128);
}
