//! The ISO writer judged by xorriso (the El Torito catalog, the hybrid System Area) and
//! isoinfo (the directory tree and file contents), and its boot patches compared byte for
//! byte with what `xorriso -as mkisofs -boot-info-table --grub2-boot-info --grub2-mbr` writes
//! for the same GRUB boot image (packages xorriso, genisoimage and grub-pc-bin:
//! ci/install-deps).

use liveboot::eltorito::{self, BootEntry, PLATFORM_EFI, PLATFORM_X86};
use liveboot::hybrid::{self, HybridSpec};
use liveboot::iso9660::{self, FileSpec, IsoLayout, VolumeSpec};
use liveboot::ISO_BLOCK;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

const BOOT_HYBRID: &str = "/usr/lib/grub/i386-pc/boot_hybrid.img";

fn tool(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (ci/install-deps installs it)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A BIOS boot image shaped like GRUB's eltorito.img: 2048 bytes of cdboot, a diskboot
/// sector, then more (patterned, so a misplaced patch shows).
fn bios_image() -> Vec<u8> {
    (0..6000u32).map(|i| (i * 31 % 251) as u8).collect()
}

/// Write an ISO with our writer: two boot images, a few files in nested folders.
fn write_ours(path: &Path, files: &[(&str, Vec<u8>)]) -> IsoLayout {
    let spec = VolumeSpec {
        volume_id: "COREOS_TEST".into(),
        timestamp: 1_700_000_000,
        files: files
            .iter()
            .map(|(p, d)| FileSpec {
                path: p.to_string(),
                len: d.len() as u64,
                align_blocks: if p.ends_with("BIG.BIN") { 2 } else { 1 },
            })
            .collect(),
        boot: Some((
            "BOOT/BOOT.CAT".into(),
            vec![
                BootEntry {
                    platform: PLATFORM_X86,
                    image: "BOOT/ELTORITO.IMG".into(),
                    load_sectors: 4,
                },
                BootEntry {
                    platform: PLATFORM_EFI,
                    image: "BOOT/EFIBOOT.IMG".into(),
                    load_sectors: 0,
                },
            ],
        )),
        tail_blocks: 17,
    };
    let layout = IsoLayout::plan(&spec).unwrap();
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    f.set_len(layout.bytes()).unwrap();
    for (at, b) in layout.metadata() {
        f.write_all_at(b, *at).unwrap();
    }
    for (p, d) in files {
        let mut d = d.clone();
        let (lba, _) = layout.extent(p).unwrap();
        if *p == "BOOT/ELTORITO.IMG" {
            eltorito::patch_boot_image(&mut d, 16, lba, true).unwrap();
        }
        f.write_all_at(&d, layout.offset(p).unwrap()).unwrap();
    }
    let (esp_lba, esp_len) = layout.extent("BOOT/EFIBOOT.IMG").unwrap();
    hybrid::write_system_area(
        &f,
        &HybridSpec {
            mbr_code: fs::read(BOOT_HYBRID).expect("grub-pc-bin is installed"),
            bios_image_lba: layout.extent("BOOT/ELTORITO.IMG").unwrap().0,
            esp_offset: u64::from(esp_lba) * ISO_BLOCK,
            esp_bytes: esp_len,
            disk_guid: uuid::Uuid::from_u128(0x1234),
        },
    )
    .unwrap();
    layout
}

fn sample_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("BOOT/ELTORITO.IMG", bios_image()),
        ("BOOT/EFIBOOT.IMG", vec![0xe5; 64 * 1024]),
        ("COREOS/GRUB.CFG", b"set timeout=1\n".to_vec()),
        ("COREOS/EMPTY.TXT", Vec::new()),
        (
            "COREOS/DEEP/DEEPER/BIG.BIN",
            (0..300_000u32).map(|i| i as u8).collect(),
        ),
        ("README.TXT", b"hello\n".to_vec()),
    ]
}

#[test]
fn xorriso_reads_the_boot_catalog_and_the_hybrid_system_area() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("t.iso");
    write_ours(&iso, &sample_files());
    let report = tool(Command::new("xorriso").arg("-indev").arg(&iso).args([
        "-report_el_torito",
        "plain",
        "-report_system_area",
        "plain",
    ]));
    let line = |prefix: &str| {
        report
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
    };
    let imgs = line("El Torito boot img");
    assert_eq!(imgs.len(), 2, "{report}");
    assert!(imgs[0].contains("1 BIOS y none 0x0000 0x00 4"), "{report}");
    assert!(
        imgs[1].contains("2 UEFI y none 0x0000 0x00 128"),
        "{report}"
    );
    let paths = line("El Torito img path");
    assert!(
        paths[0].ends_with("/BOOT/ELTORITO.IMG;1")
            || paths[0].to_lowercase().ends_with("/boot/eltorito.img"),
        "{report}"
    );
    assert!(line("System area summary")[0].contains("GPT"), "{report}");
    let gpt = line("GPT partname local");
    assert!(!gpt.is_empty(), "no GPT partition listed:\n{report}");
    assert!(report.contains("GPT type GUID"), "{report}");
    // The GPT is sound (sgdisk -v: package gdisk).
    let v = tool(Command::new("sgdisk").arg("-v").arg(&iso));
    assert!(v.contains("No problems found"), "{v}");
}

#[test]
fn isoinfo_lists_the_tree_and_extracts_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("t.iso");
    let files = sample_files();
    let layout = write_ours(&iso, &files);
    let listing = tool(Command::new("isoinfo").arg("-f").arg("-i").arg(&iso));
    for (p, _) in &files {
        assert!(
            listing.contains(&format!("/{p};1")),
            "/{p} missing:\n{listing}"
        );
    }
    assert!(listing.contains("/BOOT/BOOT.CAT;1"), "{listing}");
    for (p, d) in files
        .iter()
        .filter(|(p, _)| !p.starts_with("BOOT/ELTORITO"))
    {
        let out = Command::new("isoinfo")
            .arg("-i")
            .arg(&iso)
            .arg("-x")
            .arg(format!("/{p};1"))
            .output()
            .unwrap();
        assert!(out.stdout == *d, "{p}: isoinfo -x gives other bytes");
    }
    let big = layout.extent("COREOS/DEEP/DEEPER/BIG.BIN").unwrap().0;
    assert_eq!(big % 2, 0, "alignment of 2 blocks honoured");
    // Our reader finds the same extents, ignoring case.
    let f = File::open(&iso).unwrap();
    assert_eq!(
        iso9660::find_file(&f, "/coreos/deep/deeper/big.bin").unwrap(),
        Some((u64::from(big) * ISO_BLOCK, 300_000))
    );
    assert_eq!(iso9660::find_file(&f, "/COREOS/NONE.TXT").unwrap(), None);
    assert_eq!(
        iso9660::find_file(&f, "/COREOS/DEEP").unwrap(),
        None,
        "a directory"
    );
    let d = tool(Command::new("isoinfo").arg("-d").arg("-i").arg(&iso));
    assert!(d.contains("Volume id: COREOS_TEST"), "{d}");
}

#[test]
fn two_writes_are_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.iso"), dir.path().join("b.iso"));
    write_ours(&a, &sample_files());
    write_ours(&b, &sample_files());
    assert!(fs::read(&a).unwrap() == fs::read(&b).unwrap());
}

#[test]
fn boot_patches_match_xorriso_for_the_same_grub_image() {
    let dir = tempfile::tempdir().unwrap();
    let stage = dir.path().join("stage");
    fs::create_dir_all(stage.join("boot")).unwrap();
    let image = bios_image();
    fs::write(stage.join("boot/eltorito.img"), &image).unwrap();
    fs::write(stage.join("filler.bin"), vec![7u8; 10_000]).unwrap();
    let reference = dir.path().join("ref.iso");
    tool(
        Command::new("xorriso")
            .args(["-as", "mkisofs", "-quiet", "-o"])
            .arg(&reference)
            .args([
                "-b",
                "boot/eltorito.img",
                "-no-emul-boot",
                "-boot-load-size",
                "4",
            ])
            .args([
                "-boot-info-table",
                "--grub2-boot-info",
                "--grub2-mbr",
                BOOT_HYBRID,
            ])
            .arg(&stage),
    );
    let r = File::open(&reference).unwrap();
    // The catalog's default entry says where xorriso put the image.
    let mut brvd = [0u8; 2048];
    r.read_exact_at(&mut brvd, 17 * ISO_BLOCK).unwrap();
    assert_eq!(&brvd[7..30], eltorito::EL_TORITO_ID);
    let cat = u32::from_le_bytes(brvd[0x47..0x4b].try_into().unwrap());
    let mut catalog = [0u8; 64];
    r.read_exact_at(&mut catalog, u64::from(cat) * ISO_BLOCK)
        .unwrap();
    let lba = u32::from_le_bytes(catalog[40..44].try_into().unwrap());
    let mut theirs = vec![0u8; image.len()];
    r.read_exact_at(&mut theirs, u64::from(lba) * ISO_BLOCK)
        .unwrap();
    let mut ours = image.clone();
    eltorito::patch_boot_image(&mut ours, 16, lba, true).unwrap();
    assert!(
        ours == theirs,
        "boot info table or grub2 boot info differ from xorriso's"
    );

    let mut their_mbr = [0u8; 512];
    r.read_exact_at(&mut their_mbr, 0).unwrap();
    let mine = dir.path().join("mine.iso");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&mine)
        .unwrap();
    f.set_len(64 * ISO_BLOCK).unwrap();
    hybrid::write_system_area(
        &f,
        &HybridSpec {
            mbr_code: fs::read(BOOT_HYBRID).unwrap(),
            bios_image_lba: lba,
            esp_offset: 40 * ISO_BLOCK,
            esp_bytes: ISO_BLOCK,
            disk_guid: uuid::Uuid::from_u128(1),
        },
    )
    .unwrap();
    let mut our_mbr = [0u8; 512];
    f.read_exact_at(&mut our_mbr, 0).unwrap();
    assert!(
        our_mbr[..hybrid::MBR_CODE_LEN] == their_mbr[..hybrid::MBR_CODE_LEN],
        "MBR boot code differs from xorriso's --grub2-mbr"
    );
}
