use super::*;
use std::process::Command;

fn params() -> FatParams {
    FatParams {
        label: "EFI-SYSTEM".into(),
        volume_id: 0x1234abcd,
        timestamp: 1_700_000_000,
    }
}

fn esp(files: &[(String, Vec<u8>)]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().set_len(200 << 20).unwrap();
    write_fat(f.as_file(), 4096 * 512, 128 << 20, &params(), files).unwrap();
    f
}

fn extract(f: &tempfile::NamedTempFile) -> tempfile::NamedTempFile {
    let part = tempfile::NamedTempFile::new().unwrap();
    let mut buf = vec![0u8; 128 << 20];
    f.as_file().read_exact_at(&mut buf, 4096 * 512).unwrap();
    std::fs::write(part.path(), buf).unwrap();
    part
}

#[test]
fn fsck_vfat_accepts_and_mtools_reads_files() {
    let kernel: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let files = vec![
        ("coreos/vmlinuz-a".to_string(), kernel.clone()),
        ("EFI/boot/bootx64.efi".to_string(), b"MZ fake".to_vec()),
        (
            "coreos/grub/grub.cfg".to_string(),
            b"set timeout=1\n".to_vec(),
        ),
    ];
    let img = esp(&files);
    let part = extract(&img);
    let out = Command::new("fsck.vfat")
        .arg("-n")
        .arg(part.path())
        .output()
        .expect("fsck.vfat (dosfstools)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "fsck.vfat -n: {text}");
    let label = Command::new("fatlabel")
        .arg(part.path())
        .output()
        .expect("fatlabel");
    assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), "EFI-SYSTEM");
    let out = Command::new("mtype")
        .args(["-i", part.path().to_str().unwrap(), "::coreos/vmlinuz-a"])
        .output()
        .expect("mtools");
    assert!(
        out.stdout == kernel,
        "mtype returned {} bytes",
        out.stdout.len()
    );
    let fs = FileSystem::new(
        ByteRange::new(part.as_file(), 0, 128 << 20),
        FsOptions::new(),
    )
    .unwrap();
    assert_eq!(fs.fat_type(), fatfs::FatType::Fat16);
    assert_eq!(fs.volume_id(), 0x1234abcd);
    let info = probe(img.as_file(), 4096 * 512).unwrap().unwrap();
    assert_eq!(
        info,
        FatInfo {
            fat_type: "FAT16".into(),
            label: "EFI-SYSTEM".into(),
            volume_id: 0x1234abcd
        }
    );
    assert_eq!(probe(img.as_file(), 0).unwrap(), None);
}

#[test]
fn same_inputs_same_bytes_and_old_content_does_not_matter() {
    let files = vec![("a/b.txt".to_string(), b"hello".to_vec())];
    let a = esp(&files);
    let b = tempfile::NamedTempFile::new().unwrap();
    b.as_file().set_len(200 << 20).unwrap();
    b.as_file()
        .write_all_at(&vec![0xee; 1 << 20], 4096 * 512 + (60 << 20))
        .unwrap();
    write_fat(b.as_file(), 4096 * 512, 128 << 20, &params(), &files).unwrap();
    assert!(std::fs::read(a.path()).unwrap() == std::fs::read(b.path()).unwrap());
}

#[test]
fn too_many_bytes_is_an_error_naming_the_file() {
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().set_len(8 << 20).unwrap();
    let e = write_fat(
        f.as_file(),
        0,
        4 << 20,
        &params(),
        &[("big.bin".into(), vec![1u8; 5 << 20])],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("big.bin"), "{e}");
}

#[test]
fn dates() {
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(19675), (2023, 11, 14));
    let d = dos_datetime(1_700_000_000);
    assert_eq!(
        (
            d.date.year,
            d.date.month,
            d.date.day,
            d.time.hour,
            d.time.min
        ),
        (2023, 11, 14, 22, 13)
    );
}

#[test]
fn read_file_reads_without_writing() {
    let kernel: Vec<u8> = (0..3_000_000u32).map(|i| (i * 11 % 251) as u8).collect();
    let img = esp(&[("coreos/vmlinuz-a".to_string(), kernel.clone())]);
    let before = std::fs::read(img.path()).unwrap();
    let ro = File::open(img.path()).unwrap();
    let got = read_file(&ro, 4096 * 512, 128 << 20, "coreos/vmlinuz-a").unwrap();
    assert!(got == Some(kernel.clone()));
    let got = read_file(&ro, 4096 * 512, 128 << 20, "/coreos/vmlinuz-a").unwrap();
    assert!(got == Some(kernel), "a leading / is the root");
    assert!(read_file(&ro, 4096 * 512, 128 << 20, "coreos/vmlinuz-b")
        .unwrap()
        .is_none());
    assert!(std::fs::read(img.path()).unwrap() == before);
    assert!(
        read_file(&ro, 0, 128 << 20, "coreos/vmlinuz-a").is_err(),
        "no FAT at byte 0"
    );
}
