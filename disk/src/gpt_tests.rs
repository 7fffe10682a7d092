use super::*;
use std::process::Command;

fn sgdisk(args: &[&str], path: &std::path::Path) -> String {
    let out = Command::new("sgdisk")
        .args(args)
        .arg(path)
        .output()
        .expect("sgdisk is not installed (ci/install-deps)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sgdisk {args:?}: {text}");
    text
}

fn base_image() -> (tempfile::TempDir, std::path::PathBuf, Layout) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.bin");
    let layout = Layout::builtin("base").unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    f.set_len(layout.disk_bytes()).unwrap();
    // Boot code that must survive.
    f.write_all_at(&[0xabu8; 440], 0).unwrap();
    write_table(&f, &layout).unwrap();
    (dir, path, layout)
}

fn open_rw(path: &std::path::Path) -> File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

#[test]
fn sgdisk_accepts_base_table() {
    let (_d, path, layout) = base_image();
    let v = sgdisk(&["-v"], &path);
    assert!(v.contains("No problems found"), "{v}");
    let p = sgdisk(&["-p"], &path);
    assert!(
        p.contains("Disk identifier (GUID): 00000000-0000-0000-0000-000000000001"),
        "{p}"
    );
    for part in &layout.partitions {
        let i = sgdisk(&["-i", &part.number.to_string()], &path);
        assert!(
            i.contains(&format!("First sector: {} ", part.first_lba)),
            "{i}"
        );
        assert!(
            i.contains(&format!("Last sector: {} ", part.last_lba())),
            "{i}"
        );
        assert!(
            i.contains(&format!("Partition name: '{}'", part.label)),
            "{i}"
        );
        assert!(
            i.to_lowercase()
                .contains(&format!("partition unique guid: {}", part.part_guid)),
            "{i}"
        );
        assert!(
            i.to_lowercase()
                .contains(&format!("partition guid code: {}", part.type_guid)),
            "{i}"
        );
        assert!(
            i.contains(&format!("Attribute flags: {:016X}", part.attributes)),
            "{i}"
        );
    }
    // Reserved numbers have no entry.
    let i5 = sgdisk(&["-i", "5"], &path);
    assert!(i5.contains("does not exist"), "{i5}");
}

#[test]
fn hybrid_mbr_and_boot_code() {
    let (_d, path, _) = base_image();
    let f = File::open(&path).unwrap();
    let mut mbr = [0u8; 512];
    f.read_exact_at(&mut mbr, 0).unwrap();
    assert_eq!(&mbr[..440], &[0xabu8; 440][..]);
    assert_eq!(&mbr[510..], &[0x55, 0xaa]);
    let e0 = &mbr[446..462];
    assert_eq!((e0[0], e0[4]), (0x80, 0x0c));
    assert_eq!(u32::from_le_bytes(e0[8..12].try_into().unwrap()), 4096);
    assert_eq!(u32::from_le_bytes(e0[12..16].try_into().unwrap()), 262144);
    let e1 = &mbr[462..478];
    assert_eq!((e1[0], e1[4]), (0, 0xee));
    assert_eq!(u32::from_le_bytes(e1[8..12].try_into().unwrap()), 1);
    assert_eq!(u32::from_le_bytes(e1[12..16].try_into().unwrap()), 4095);
    // sgdisk sees the hybrid MBR.
    let o = sgdisk(&["-O"], &path);
    assert!(o.contains("0x0C") && o.contains("0xEE"), "{o}");
}

#[test]
fn reads_back_what_it_wrote() {
    let (_d, path, layout) = base_image();
    let t = read_table(&File::open(&path).unwrap()).unwrap();
    assert_eq!(t.disk_guid, layout.disk_guid);
    assert_eq!(t.disk_sectors, layout.disk_sectors);
    let a: Vec<_> = layout
        .partitions
        .iter()
        .map(|p| {
            (
                p.number,
                p.first_lba,
                p.sectors,
                p.label.clone(),
                p.part_guid,
                p.type_guid,
                p.attributes,
            )
        })
        .collect();
    let b: Vec<_> = t
        .partitions
        .iter()
        .map(|p| {
            (
                p.number,
                p.first_lba,
                p.sectors,
                p.label.clone(),
                p.part_guid,
                p.type_guid,
                p.attributes,
            )
        })
        .collect();
    assert_eq!(a, b);
}

#[test]
fn relocates_backup_like_sgdisk_e() {
    let (_d, path, layout) = base_image();
    let f = open_rw(&path);
    let new_bytes = layout.disk_bytes() + (1 << 30);
    relocate_backup(&f, new_bytes).unwrap();
    assert_eq!(f.metadata().unwrap().len(), new_bytes);
    let v = sgdisk(&["-v"], &path);
    assert!(v.contains("No problems found"), "{v}");
    let t = read_table(&f).unwrap();
    assert_eq!(t.disk_sectors, new_bytes / 512);
    assert_eq!(t.partitions.len(), 7);
    // The old backup header is gone.
    let mut old = [0u8; 8];
    f.read_exact_at(&mut old, layout.disk_bytes() - 512)
        .unwrap();
    assert_ne!(&old, b"EFI PART");
}

#[test]
fn resizes_one_partition_keeping_the_others_and_the_mbr() {
    let (_d, path, layout) = base_image();
    let f = open_rw(&path);
    let mut mbr = [0u8; 512];
    f.read_exact_at(&mut mbr, 0).unwrap();
    let root = layout.by_number(9).unwrap();
    let grown = root.sectors + (1 << 21);
    // Past the usable sectors until the backup GPT moves.
    let e = resize_partition(&f, 9, grown).unwrap_err().to_string();
    assert!(
        e.contains("partition 9 (ROOT)") && e.contains("last usable"),
        "{e}"
    );
    relocate_backup(&f, layout.disk_bytes() + (1 << 30)).unwrap();
    resize_partition(&f, 9, grown).unwrap();
    let v = sgdisk(&["-v"], &path);
    assert!(v.contains("No problems found"), "{v}");
    let t = read_table(&f).unwrap();
    for p in &layout.partitions {
        let q = t.by_number(p.number).unwrap();
        let want = if p.number == 9 { grown } else { p.sectors };
        assert_eq!(
            (
                q.label.as_str(),
                q.first_lba,
                q.sectors,
                q.part_guid,
                q.attributes
            ),
            (
                p.label.as_str(),
                p.first_lba,
                want,
                p.part_guid,
                p.attributes
            )
        );
    }
    let mut after = [0u8; 512];
    f.read_exact_at(&mut after, 0).unwrap();
    assert!(after == mbr, "the hybrid MBR is kept");
    let e = resize_partition(&f, 5, 10).unwrap_err().to_string();
    assert!(e.contains("no partition 5"), "{e}");
}

#[test]
fn refuses_a_too_small_disk() {
    let layout = Layout::builtin("base").unwrap();
    let f = tempfile::tempfile().unwrap();
    f.set_len(1 << 30).unwrap();
    let e = write_table(&f, &layout).unwrap_err().to_string();
    assert!(e.contains("1073741824") && e.contains("4756340736"), "{e}");
}

#[test]
fn reads_the_primary_table_from_the_first_mib_in_memory() {
    let (_d, path, layout) = base_image();
    let mut head = vec![0u8; 1 << 20];
    File::open(&path)
        .unwrap()
        .read_exact_at(&mut head, 0)
        .unwrap();
    let t = read_primary(&head).unwrap();
    assert_eq!(t.disk_bytes(), layout.disk_bytes(), "from the AlternateLBA");
    let got: Vec<_> = t
        .partitions
        .iter()
        .map(|p| (p.number, p.label.as_str(), p.first_lba, p.sectors))
        .collect();
    let want: Vec<_> = layout
        .partitions
        .iter()
        .map(|p| (p.number, p.label.as_str(), p.first_lba, p.sectors))
        .collect();
    assert_eq!(got, want);

    let err = |bytes: &[u8]| read_primary(bytes).unwrap_err().to_string();
    assert!(err(&head[..1000]).contains("no GPT header"));
    let mut bad = head.clone();
    bad[512 + 40] ^= 1; // FirstUsableLBA, under the header CRC
    assert!(err(&bad).contains("header CRC32 mismatch"), "{}", err(&bad));
    let mut bad = head.clone();
    bad[1024 + 40] ^= 1; // an entry's LastLBA, under the entry array CRC
    assert!(err(&bad).contains("entry array CRC32"), "{}", err(&bad));
    // The entry array (LBA 2..34) must be in the bytes given.
    assert!(err(&head[..4096]).contains("outside the first 4096 bytes"));
}
