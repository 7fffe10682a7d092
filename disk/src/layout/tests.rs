use super::*;

fn err(text: &str) -> String {
    Layout::from_toml("t", text, "t.toml")
        .unwrap_err()
        .to_string()
}

#[test]
fn base_matches_coreos() {
    let l = Layout::builtin("base").unwrap();
    let firsts: Vec<(u32, u64, u64)> = l
        .partitions
        .iter()
        .map(|p| (p.number, p.first_lba, p.sectors))
        .collect();
    assert_eq!(
        firsts,
        vec![
            (1, 4096, 262144),
            (2, 266240, 4096),
            (3, 270336, 2097152),
            (4, 2367488, 2097152),
            (6, 4464640, 262144),
            (7, 4726784, 131072),
            (9, 4857856, 4427776)
        ]
    );
    assert_eq!(l.disk_sectors, 9289728);
    assert_eq!(l.disk_bytes(), 4756340736);
    assert_eq!(
        l.disk_guid.to_string(),
        "00000000-0000-0000-0000-000000000001"
    );
    let usr_a = l.by_label("USR-A").unwrap();
    assert_eq!(usr_a.attributes, 0x0101000000000000);
    assert_eq!(usr_a.fs_blocks, 260094);
    assert!(usr_a.verity);
    assert_eq!(
        usr_a.part_guid.to_string(),
        "7130c94a-213a-4e5a-8e26-6cce9662f132"
    );
    assert_eq!(l.by_label("USR-B").unwrap().attributes, 0);
    assert_eq!(
        l.by_label("USR-B").unwrap().part_guid.to_string(),
        "e03dd35c-7c2d-4a47-b3fe-27f15780a57c"
    );
    let esp = l.by_number(1).unwrap();
    assert!(esp.hybrid && esp.legacy_bios_bootable());
    assert_eq!(
        esp.type_guid.to_string(),
        "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
    );
    assert_eq!(
        l.by_number(9).unwrap().type_guid.to_string(),
        "3884dd41-8582-4404-b9a8-e9b84f2df50e"
    );
    assert!(l.by_number(5).is_none() && l.by_number(8).is_none());
    // Derived GUIDs are stable and distinct.
    let again = Layout::builtin("base").unwrap();
    assert_eq!(esp.part_guid, again.by_number(1).unwrap().part_guid);
    assert_ne!(esp.part_guid, l.by_number(2).unwrap().part_guid);
}

#[test]
fn variants_override_only_root() {
    let base = Layout::builtin("base").unwrap();
    for (name, root, disk) in [
        ("vm", 12943360u64, 17805312u64),
        ("vagrant", 33845248, 38707200),
        ("azure", 58875904, 63737856),
    ] {
        let l = Layout::builtin(name).unwrap();
        assert_eq!(l.disk_sectors, disk, "{name}");
        for (a, b) in base.partitions.iter().zip(&l.partitions) {
            assert_eq!(
                (a.number, a.first_lba, &a.label, a.part_guid),
                (b.number, b.first_lba, &b.label, b.part_guid)
            );
            if a.number == 9 {
                assert_eq!(b.sectors, root);
            } else {
                assert_eq!(a.sectors, b.sectors);
            }
        }
    }
}

#[test]
fn user_file_inherits_base() {
    let l = Layout::from_toml(
        "mine",
        "inherits = \"base\"\n[[partition]]\nnumber = 6\nblocks = 524288\n",
        "m.toml",
    )
    .unwrap();
    assert_eq!(l.by_number(6).unwrap().sectors, 524288);
    assert_eq!(l.by_number(7).unwrap().first_lba, 4726784 + 262144);
}

const ONE: &str = "[[partition]]\nnumber = 1\nlabel = \"A\"\ntype = \"data\"\nblocks = 4096\n";

#[test]
fn rejects_unknown_type() {
    let e = err(&ONE.replace("\"data\"", "\"nonsense\""));
    assert!(
        e.contains("partition 1 (A)") && e.contains("nonsense"),
        "{e}"
    );
}

#[test]
fn rejects_duplicates() {
    let e = err(&format!("{ONE}{}", ONE.replace("\"A\"", "\"B\"")));
    assert!(e.contains("duplicate partition number 1"), "{e}");
    let e = err(&format!("{ONE}{}", ONE.replace("number = 1", "number = 2")));
    assert!(
        e.contains("duplicate label \"A\"") && e.contains("partition 2 (A)"),
        "{e}"
    );
}

#[test]
fn rejects_misaligned_and_overlap() {
    let e = err(&ONE.replace("blocks", "first_lba = 5000\nblocks"));
    assert!(
        e.contains("partition 1 (A)") && e.contains("5000") && e.contains("aligned"),
        "{e}"
    );
    let two = format!("{ONE}[[partition]]\nnumber = 2\nlabel = \"B\"\ntype = \"data\"\nfirst_lba = 4096\nblocks = 8192\n");
    let e = err(&two);
    assert!(
        e.contains("partition 2 (B)") && e.contains("overlaps partition 1 (A)"),
        "{e}"
    );
}

#[test]
fn rejects_fs_larger_than_partition() {
    let e = err(&ONE.replace("blocks = 4096", "blocks = 4096\nfs_blocks = 513"));
    assert!(
        e.contains("partition 1 (A)") && e.contains("2101248") && e.contains("2097152"),
        "{e}"
    );
}

#[test]
fn rejects_unknown_keys_and_layouts() {
    let e = err(&ONE.replace("blocks", "colour = 1\nblocks"));
    assert!(e.contains("t.toml") && e.contains("colour"), "{e}");
    assert!(Layout::by_name_or_path("nope")
        .unwrap_err()
        .to_string()
        .contains("nope"));
}
