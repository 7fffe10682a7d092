//! A CoreOS-layout disk image assembled with stock tools (sgdisk, mkfs.ext4 -d, veritysetup,
//! mkfs.vfat + mtools) and the builder's own bootloader code (`prepare`, `install_bios`). It
//! proves the bootloader and the sample OS apart from the image builder: a failure here is a
//! boot problem, not an ext4/verity/GPT-writer problem.

use super::bootloader::{self, BootInputs};
use e2e::run;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const SECTOR: u64 = 512;
/// The `base` layout's first sectors and sizes (DESIGN.md), ROOT shrunk to 64 MiB.
const ESP: (u64, u64) = (4096, 262144);
const BIOS_BOOT: (u64, u64) = (266240, 4096);
const USR_A: (u64, u64) = (270336, 2097152);
const USR_B: (u64, u64) = (2367488, 2097152);
const OEM: (u64, u64) = (4464640, 262144);
const ROOT: (u64, u64) = (4726784, 131072);
/// USR-A filesystem blocks (CoreOS `fs_blocks`); the verity tree follows them.
const USR_FS_BLOCKS: u64 = 260094;

pub struct HandImage {
    pub path: PathBuf,
    pub usr_a_offset: u64,
}

/// Assemble the image in `dir` from `usr` (the sample OS's /usr) with `version` stamped into
/// os-release, an OEM partition whose grub.cfg sets `oem_id` when given, and `user_data` at
/// ROOT:/var/lib/coreos-install/user_data when given.
pub fn assemble(
    dir: &Path,
    usr: &Path,
    version: &str,
    oem_id: Option<&str>,
    user_data: Option<&[u8]>,
) -> HandImage {
    for t in [
        "sgdisk",
        "mkfs.ext4",
        "veritysetup",
        "mkfs.vfat",
        "mcopy",
        "grub-mkimage",
    ] {
        e2e::require(t);
    }
    let path = dir.join("hand.img");
    let disk = File::create(&path).unwrap();
    disk.set_len((ROOT.0 + ROOT.1 + 2048) * SECTOR).unwrap();
    drop(disk);
    let mut sg = Command::new("sgdisk");
    sg.args(["-U", "00000000-0000-0000-0000-000000000001"]);
    for (n, (first, size), ty, label, uuid) in [
        (
            1,
            ESP,
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
            "EFI-SYSTEM",
            None,
        ),
        (
            2,
            BIOS_BOOT,
            "21686148-6449-6e6f-744e-656564454649",
            "BIOS-BOOT",
            None,
        ),
        (
            3,
            USR_A,
            "5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6",
            "USR-A",
            Some("7130c94a-213a-4e5a-8e26-6cce9662f132"),
        ),
        (
            4,
            USR_B,
            "5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6",
            "USR-B",
            Some("e03dd35c-7c2d-4a47-b3fe-27f15780a57c"),
        ),
        (6, OEM, "0fc63daf-8483-4772-8e79-3d69d8477de4", "OEM", None),
        (
            9,
            ROOT,
            "3884dd41-8582-4404-b9a8-e9b84f2df50e",
            "ROOT",
            None,
        ),
    ] {
        sg.arg(format!("--new={n}:{first}:{}", first + size - 1));
        sg.arg(format!("--typecode={n}:{ty}"));
        sg.arg(format!("--change-name={n}:{label}"));
        if let Some(u) = uuid {
            sg.arg(format!("--partition-guid={n}:{u}"));
        }
    }
    run(sg.arg(&path));

    // USR-A: ext4 from the tree (with the version stamped), read-only hack, then verity.
    // No metadata_csum: the read-only byte would break the superblock checksum.
    let tree = dir.join("usr-tree");
    run(Command::new("cp").arg("-a").arg(usr).arg(&tree));
    fs::write(
        tree.join("lib/os-release"),
        format!("ID=coreos\nNAME=\"CoreOS sample\"\nVERSION={version}\nVERSION_ID={version}\n"),
    )
    .unwrap();
    let usr_img = dir.join("usr.img");
    File::create(&usr_img)
        .unwrap()
        .set_len(USR_A.1 * SECTOR)
        .unwrap();
    run(Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-b",
            "4096",
            "-O",
            "^metadata_csum",
            "-L",
            "USR-A",
            "-d",
        ])
        .arg(&tree)
        .arg(&usr_img)
        .arg(USR_FS_BLOCKS.to_string()));
    let f = fs::OpenOptions::new().write(true).open(&usr_img).unwrap();
    f.write_all_at(&[0xff], 0x467).unwrap();
    drop(f);
    let out = run(Command::new("veritysetup")
        .args([
            "format",
            "--hash=sha256",
            "--data-block-size=4096",
            "--hash-block-size=4096",
        ])
        .arg(format!("--data-blocks={USR_FS_BLOCKS}"))
        .arg(format!("--hash-offset={}", USR_FS_BLOCKS * 4096))
        .arg(&usr_img)
        .arg(&usr_img));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("veritysetup printed no {name}: {text}"))
    };
    let (root_hash, salt) = (field("Root hash:"), field("Salt:"));

    let assets = bootloader::prepare(
        &tree,
        &BootInputs {
            verity_root_hash: root_hash,
            usr_fs_blocks: USR_FS_BLOCKS,
            verity_salt: salt,
        },
    )
    .expect("the sample OS has GRUB modules");

    // ESP: FAT with the bootloader's files and the kernel.
    let esp = dir.join("esp.img");
    run(Command::new("mkfs.vfat")
        .args(["-F", "32", "-n", "EFI-SYSTEM", "-C"])
        .arg(&esp)
        .arg((ESP.1 / 2).to_string()));
    let mut files = assets.esp_files.clone();
    files.push((
        "coreos/vmlinuz-a".into(),
        fs::read(tree.join("boot/vmlinuz")).unwrap(),
    ));
    files.push((
        "coreos/initrd-a".into(),
        fs::read(tree.join("boot/initrd")).unwrap(),
    ));
    let staging = dir.join("esp-files");
    for (name, data) in &files {
        let p = staging.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
    run(Command::new("mcopy")
        .args(["-s", "-i"])
        .arg(&esp)
        .arg(staging.join("EFI"))
        .arg(staging.join("coreos"))
        .arg("::/"));

    let oem_tree = dir.join("oem-tree");
    fs::create_dir_all(&oem_tree).unwrap();
    if let Some(id) = oem_id {
        fs::write(oem_tree.join("grub.cfg"), format!("set oem_id=\"{id}\"\n")).unwrap();
    }
    let oem = ext4_image(dir, "oem.img", "OEM", &oem_tree, OEM.1);
    let root_tree = dir.join("root-tree");
    fs::create_dir_all(&root_tree).unwrap();
    if let Some(data) = user_data {
        fs::create_dir_all(root_tree.join("var/lib/coreos-install")).unwrap();
        fs::write(root_tree.join("var/lib/coreos-install/user_data"), data).unwrap();
    }
    let root = ext4_image(dir, "root.img", "ROOT", &root_tree, ROOT.1);

    for (img, (first, _)) in [(&esp, ESP), (&usr_img, USR_A), (&oem, OEM), (&root, ROOT)] {
        run(Command::new("dd")
            .arg(format!("if={}", img.display()))
            .arg(format!("of={}", path.display()))
            .args(["bs=1M", "conv=notrunc,sparse", "status=none"])
            .arg(format!("seek={}B", first * SECTOR)));
    }
    let disk = bootloader::open_image(&path).unwrap();
    bootloader::install_bios(&disk, assets.bios.as_ref().expect("BIOS GRUB"), BIOS_BOOT.0).unwrap();
    disk.sync_all().unwrap();
    run(Command::new("sgdisk").arg("-v").arg(&path));
    HandImage {
        path,
        usr_a_offset: USR_A.0 * SECTOR,
    }
}

fn ext4_image(dir: &Path, name: &str, label: &str, tree: &Path, sectors: u64) -> PathBuf {
    let p = dir.join(name);
    File::create(&p).unwrap().set_len(sectors * SECTOR).unwrap();
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", label, "-d"])
        .arg(tree)
        .arg(&p));
    p
}
