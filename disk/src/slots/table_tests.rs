use super::*;
use crate::layout::Layout;
use std::path::Path;
use std::process::Command;

fn image() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.bin");
    let layout = Layout::builtin("base").unwrap();
    let f = open_rw_create(&path);
    f.set_len(layout.disk_bytes()).unwrap();
    crate::gpt::write_table(&f, &layout).unwrap();
    (dir, path)
}

fn open_rw_create(path: &Path) -> File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap()
}

fn tool(cmd: &str, args: &[&str], path: &Path) -> String {
    let out = Command::new(cmd)
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} is not installed (ci/install-deps): {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd} {args:?}: {text}");
    text
}

fn sgdisk_clean(path: &Path) {
    let v = tool("sgdisk", &["-v"], path);
    assert!(v.contains("No problems found"), "{v}");
}

/// (priority, tries, successful) of partition `n` as Debian's cgpt reads them.
fn cgpt_show(path: &Path, n: u32) -> (u8, u8, bool) {
    let field = |flag: &str| -> u8 {
        tool("cgpt", &["show", "-i", &n.to_string(), flag], path)
            .trim()
            .parse()
            .unwrap()
    };
    (field("-P"), field("-T"), field("-S") == 1)
}

fn attrs(priority: u8, tries: u8, successful: bool) -> SlotAttrs {
    SlotAttrs {
        priority,
        tries,
        successful,
    }
}

fn read(path: &Path) -> GptSlots {
    GptSlots::read(&File::open(path).unwrap()).unwrap()
}

#[test]
fn reads_the_base_layout_slots() {
    let (_d, path) = image();
    let g = read(&path);
    assert!(g.damaged.is_empty(), "{:?}", g.damaged);
    let parts = g.usr_partitions();
    assert_eq!(
        parts
            .iter()
            .map(|p| (p.number, p.label.as_str(), p.attrs))
            .collect::<Vec<_>>(),
        [
            (3, "USR-A", attrs(1, 0, true)),
            (4, "USR-B", attrs(0, 0, false))
        ]
    );
    assert_eq!(
        parts[0].part_guid.to_string(),
        "7130c94a-213a-4e5a-8e26-6cce9662f132"
    );
    assert_eq!(parts[1].first_lba, 2367488);
    assert_eq!(parts[1].bytes(), 2097152 * 512);
    assert_eq!(cgpt_show(&path, 3), (1, 0, true));
}

#[test]
fn postinst_values_reach_both_tables_and_cgpt_reads_them() {
    let (_d, path) = image();
    let f = open_rw_create(&path);
    let mut g = GptSlots::read(&f).unwrap();
    // coreos-postinst on USR-B: cgpt add -S0 -T1; cgpt prioritize.
    g.set(4, attrs(0, 1, false)).unwrap();
    g.prioritize(4).unwrap();
    g.write(&f).unwrap();
    sgdisk_clean(&path);
    assert_eq!(cgpt_show(&path, 4), (2, 1, false));
    assert_eq!(cgpt_show(&path, 3), (1, 0, true));
    // The backup alone says the same: wipe the primary header and read again.
    f.write_all_at(&[0u8; 512], 512).unwrap();
    let g = GptSlots::read(&f).unwrap();
    assert!(g.damaged[0].contains("primary GPT"), "{:?}", g.damaged);
    assert_eq!(g.by_label("USR-B").unwrap().attrs, attrs(2, 1, false));
    // Writing repairs the primary from the backup.
    g.write(&f).unwrap();
    sgdisk_clean(&path);
    assert!(read(&path).damaged.is_empty());
}

#[test]
fn same_bytes_as_cgpt_add() {
    // Only the attribute field and the CRCs change, as with cgpt: the whole table areas
    // (primary and backup) come out byte-identical.
    let (_d, ours) = image();
    let (_e, theirs) = image();
    tool(
        "cgpt",
        &["add", "-i", "4", "-S", "0", "-T", "1", "-P", "2"],
        &theirs,
    );
    let f = open_rw_create(&ours);
    let mut g = GptSlots::read(&f).unwrap();
    g.set(4, attrs(2, 1, false)).unwrap();
    g.write(&f).unwrap();
    let len = f.metadata().unwrap().len();
    let region = |p: &Path, at: u64, n: usize| {
        let mut b = vec![0u8; n];
        File::open(p).unwrap().read_exact_at(&mut b, at).unwrap();
        b
    };
    for (at, n) in [(0u64, 34 * 512), (len - 33 * 512, 33 * 512)] {
        assert!(
            region(&ours, at, n) == region(&theirs, at, n),
            "bytes {at}..{} differ from cgpt's",
            at + n as u64
        );
    }
}

#[test]
fn reads_what_cgpt_writes() {
    let (_d, path) = image();
    tool(
        "cgpt",
        &["add", "-i", "4", "-S", "1", "-T", "7", "-P", "15"],
        &path,
    );
    tool(
        "cgpt",
        &["add", "-i", "3", "-S", "0", "-T", "15", "-P", "0"],
        &path,
    );
    let g = read(&path);
    assert_eq!(g.by_label("USR-B").unwrap().attrs, attrs(15, 7, true));
    assert_eq!(g.by_label("USR-A").unwrap().attrs, attrs(0, 15, false));
}

#[test]
fn a_torn_write_leaves_one_valid_table() {
    let (_d, path) = image();
    let f = open_rw_create(&path);
    let mut g = GptSlots::read(&f).unwrap();
    g.set(4, attrs(2, 1, false)).unwrap();
    // The new primary entries landed, its header did not: the primary fails its CRC and
    // the (already written) backup is read.
    let sealed_backup = g.backup.sealed(&g.array);
    f.write_all_at(&g.array, sealed_backup.entry_lba() * 512)
        .unwrap();
    f.write_all_at(&sealed_backup.sector, sealed_backup.my_lba() * 512)
        .unwrap();
    f.write_all_at(&g.array, 2 * 512).unwrap();
    let r = GptSlots::read(&f).unwrap();
    assert!(
        r.damaged[0].contains("entry array CRC32"),
        "{:?}",
        r.damaged
    );
    assert_eq!(r.by_label("USR-B").unwrap().attrs, attrs(2, 1, false));
}

#[test]
fn only_usr_partitions_take_attributes() {
    let (_d, path) = image();
    let f = open_rw_create(&path);
    let mut g = GptSlots::read(&f).unwrap();
    let e = g.set(9, attrs(1, 1, true)).unwrap_err().to_string();
    assert!(e.contains("partition 9 is not a coreos-usr"), "{e}");
    assert!(g.by_label("USR-C").is_err());
}

#[test]
fn no_gpt_is_a_clear_error() {
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().set_len(1 << 20).unwrap();
    let e = GptSlots::read(f.as_file()).unwrap_err().to_string();
    assert!(e.contains("no valid GPT") && e.contains("signature"), "{e}");
}

/// The base image with partition 4's entry field at `field` set to `value`, both tables
/// sealed again (valid CRCs: only the fields are wrong).
fn with_entry_field(path: &Path, field: usize, value: u64) -> File {
    let f = open_rw_create(path);
    let mut g = GptSlots::read(&f).unwrap();
    let at = 3 * g.entry_size + field;
    g.array[at..at + 8].copy_from_slice(&value.to_le_bytes());
    g.write(&f).unwrap();
    f
}

#[test]
fn inconsistent_entry_lbas_are_a_clear_error() {
    // USR-B is LBAs 2367488..=4464639 of the base layout.
    let (first, last) = (2367488u64, 2367488 + 2097151);
    // Each of these overflowed or underflowed `bytes()` or `offset()` before the check.
    let cases = |sectors: u64| {
        [
            (
                ENT_FIRST_LBA,
                last + 1,
                "StartingLBA",
                "after its EndingLBA",
            ),
            (
                ENT_FIRST_LBA,
                u64::MAX,
                "StartingLBA",
                "after its EndingLBA",
            ),
            (
                ENT_LAST_LBA,
                first - 1,
                "StartingLBA",
                "after its EndingLBA",
            ),
            (
                ENT_LAST_LBA,
                u64::MAX,
                "EndingLBA",
                "past the disk's last LBA",
            ),
            (
                ENT_LAST_LBA,
                sectors,
                "EndingLBA",
                "past the disk's last LBA",
            ),
        ]
    };
    let (_d, path) = image();
    let sectors = std::fs::metadata(&path).unwrap().len() / 512;
    let b = read(&path).by_label("USR-B").unwrap();
    assert_eq!((b.first_lba, b.last_lba), (first, last));
    for (at, value, name, why) in cases(sectors) {
        let (_d, path) = image();
        let f = with_entry_field(&path, at, value);
        match GptSlots::read(&f) {
            Err(
                e @ SlotError::Entry {
                    number: 4,
                    field,
                    value: v,
                    ..
                },
            ) => {
                let want = if name == "StartingLBA" && at == ENT_LAST_LBA {
                    first
                } else {
                    value
                };
                assert_eq!((field, v), (name, want));
                assert!(e.to_string().contains(why), "{e}");
                assert!(e.to_string().contains("GPT entry 4"), "{e}");
            }
            other => panic!("{name} {value}: {other:?}"),
        }
    }
}

#[test]
fn headers_pointing_past_the_disk_are_damaged_not_a_panic() {
    let (_d, path) = image();
    let f = open_rw_create(&path);
    let g = GptSlots::read(&f).unwrap();
    // The primary puts its entries at LBA 2^60 (their byte offset overflows) or 2^40 (past
    // the disk): the primary is damaged, the backup (at the disk's end) is read.
    for (field, value, why) in [
        (HDR_ENTRY_LBA, 1u64 << 60, "past the last byte offset"),
        (HDR_ENTRY_LBA, 1u64 << 40, "past the end of the disk"),
    ] {
        let mut h = g.primary.clone();
        h.set_u64(field, value);
        let h = h.sealed(&g.array);
        f.write_all_at(&h.sector, 512).unwrap();
        let r = GptSlots::read(&f).unwrap();
        assert!(
            r.damaged.len() == 1 && r.damaged[0].contains(why),
            "{value}: {:?}",
            r.damaged
        );
        assert_eq!(r.by_label("USR-A").unwrap().number, 3);
    }
}

#[test]
fn a_backup_named_past_the_disk_is_rebuilt_at_its_end() {
    let (_d, path) = image();
    let f = open_rw_create(&path);
    let g = GptSlots::read(&f).unwrap();
    let mut h = g.primary.clone();
    h.set_u64(HDR_ALTERNATE_LBA, 1 << 62);
    f.write_all_at(&h.sealed(&g.array).sector, 512).unwrap();
    let r = GptSlots::read(&f).unwrap();
    assert!(
        r.damaged[0].contains("past the last byte offset"),
        "{:?}",
        r.damaged
    );
    r.write(&f).unwrap();
    let again = GptSlots::read(&f).unwrap();
    assert!(again.damaged.is_empty(), "{:?}", again.damaged);
    sgdisk_clean(&path);
}
