//! The updater's GPT slot table (`disk::slots::GptSlots`) on a disk whose header and entry
//! fields are generated, not mutated: the CRCs are computed after the fields are chosen, so
//! inputs get past the checksums to the LBAs, counts and sizes behind them (a one-byte
//! mutation of a real table never does). Any disk gives slots or an error, never a panic or
//! an overflow; slots that were read, changed and written read back as written.
#![no_main]
use disk::slots::{GptSlots, SlotAttrs};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;

const SECTOR: u64 = 512;
const USR_TYPE: &str = "5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6";

/// A header field: mostly the value a valid table has, sometimes any value.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Field<T> {
    Valid,
    Near(i8),
    Any(T),
}

impl Field<u64> {
    fn or(self, valid: u64) -> u64 {
        match self {
            Field::Valid => valid,
            Field::Near(d) => valid.wrapping_add_signed(i64::from(d)),
            Field::Any(v) => v,
        }
    }
}

impl Field<u32> {
    fn or(self, valid: u32) -> u32 {
        match self {
            Field::Valid => valid,
            Field::Near(d) => valid.wrapping_add_signed(i32::from(d)),
            Field::Any(v) => v,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct HeaderFields {
    header_size: Field<u32>,
    my_lba: Field<u64>,
    alternate_lba: Field<u64>,
    entry_lba: Field<u64>,
    entry_count: Field<u32>,
    entry_size: Field<u32>,
    bad_header_crc: bool,
    bad_array_crc: bool,
}

#[derive(Arbitrary, Debug)]
struct Entry {
    usr: bool,
    first_lba: Field<u64>,
    last_lba: Field<u64>,
    attributes: u64,
    label: u8,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Set {
        number: u8,
        priority: u8,
        tries: u8,
        successful: bool,
    },
    Prioritize {
        number: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    extra_sectors: u16,
    primary: HeaderFields,
    backup: HeaderFields,
    entries: Vec<Entry>,
    ops: Vec<Op>,
}

fn header(f: &HeaderFields, lba: u64, alternate: u64, entry_lba: u64, array: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; SECTOR as usize];
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    let size = f.header_size.or(92);
    h[12..16].copy_from_slice(&size.to_le_bytes());
    h[24..32].copy_from_slice(&f.my_lba.or(lba).to_le_bytes());
    h[32..40].copy_from_slice(&f.alternate_lba.or(alternate).to_le_bytes());
    h[72..80].copy_from_slice(&f.entry_lba.or(entry_lba).to_le_bytes());
    h[80..84].copy_from_slice(&f.entry_count.or(128).to_le_bytes());
    h[84..88].copy_from_slice(&f.entry_size.or(128).to_le_bytes());
    let array_crc = crc32fast::hash(array) ^ u32::from(f.bad_array_crc);
    h[88..92].copy_from_slice(&array_crc.to_le_bytes());
    let covered = (size as usize).clamp(92, SECTOR as usize);
    let crc = crc32fast::hash(&h[..covered]) ^ u32::from(f.bad_header_crc);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

fn memfd() -> File {
    // SAFETY: a NUL-terminated name; the descriptor returned is owned by the File alone.
    let fd = unsafe { libc::memfd_create(c"gpt".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create");
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    unsafe { File::from_raw_fd(fd) }
}

fuzz_target!(|input: Input| {
    // 128 entries of 128 bytes: 32 sectors of entries after LBA 1 and before the last LBA.
    let sectors = 68 + u64::from(input.extra_sectors % 512);
    let last = sectors - 1;
    let usr = uuid::Uuid::parse_str(USR_TYPE).unwrap().to_bytes_le();
    let mut array = vec![0u8; 128 * 128];
    for (i, e) in input.entries.iter().take(128).enumerate() {
        let at = i * 128;
        if e.usr {
            array[at..at + 16].copy_from_slice(&usr);
        } else {
            array[at] = 1;
        }
        array[at + 16] = i as u8 + 1;
        let first = e.first_lba.or(34 + i as u64);
        array[at + 32..at + 40].copy_from_slice(&first.to_le_bytes());
        array[at + 40..at + 48].copy_from_slice(&e.last_lba.or(first).to_le_bytes());
        array[at + 48..at + 56].copy_from_slice(&e.attributes.to_le_bytes());
        let label: &[u8] = if e.label % 2 == 0 { b"USR-A" } else { b"USR-B" };
        for (j, c) in label.iter().enumerate() {
            array[at + 56 + 2 * j] = *c;
        }
    }
    let mut disk = vec![0u8; (sectors * SECTOR) as usize];
    disk[SECTOR as usize..2 * SECTOR as usize].copy_from_slice(&header(
        &input.primary,
        1,
        last,
        2,
        &array,
    ));
    disk[2 * SECTOR as usize..2 * SECTOR as usize + array.len()].copy_from_slice(&array);
    let backup_entries = last - 32;
    let at = (backup_entries * SECTOR) as usize;
    disk[at..at + array.len()].copy_from_slice(&array);
    disk[(last * SECTOR) as usize..].copy_from_slice(&header(
        &input.backup,
        last,
        1,
        backup_entries,
        &array,
    ));
    let mut file = memfd();
    file.write_all(&disk).unwrap();

    let Ok(mut slots) = GptSlots::read(&file) else {
        return;
    };
    for p in slots.usr_partitions() {
        // Read checked these against the disk: neither may overflow or leave it.
        assert!(p.offset() + p.bytes() <= sectors * SECTOR, "{p:?}");
    }
    for op in &input.ops {
        let _ = match *op {
            Op::Set {
                number,
                priority,
                tries,
                successful,
            } => slots.set(
                u32::from(number),
                SlotAttrs {
                    priority: priority % 16,
                    tries: tries % 16,
                    successful,
                },
            ),
            Op::Prioritize { number } => slots.prioritize(u32::from(number)),
        };
    }
    let want: Vec<_> = slots
        .usr_partitions()
        .iter()
        .map(|p| (p.number, p.attrs))
        .collect();
    if slots.write(&file).is_err() {
        return;
    }
    let again = GptSlots::read(&file).expect("a table just written reads back");
    let got: Vec<_> = again
        .usr_partitions()
        .iter()
        .map(|p| (p.number, p.attrs))
        .collect();
    assert_eq!(got, want);
});
