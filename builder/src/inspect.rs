//! `coreos-build inspect IMAGE`: the partition table with attributes decoded, the
//! filesystems found in each partition, the OS version from USR-A, and the dm-verity root
//! hash (recomputed, and compared with the published `_verity.txt` beside the image).

use anyhow::Context;
use disk::layout::{types, Partition};
use disk::verity::{self, VerityParams};
use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  coreos-build inspect out/coreos_production_image.bin
  coreos-build inspect /dev/sda")]
pub struct Args {
    /// A disk image (or block device) with a GPT.
    image: PathBuf,
}

/// `priority=1 tries=0 successful=1 legacy-bios-bootable`, for the bits that are set.
fn attributes(p: &Partition) -> String {
    let mut s = format!("0x{:016x}", p.attributes);
    // A/B fields matter on coreos-usr partitions; elsewhere only when something is set.
    let usr = p.type_guid == types::type_guid("coreos-usr").expect("known type");
    if usr || p.priority() != 0 || p.tries() != 0 || p.successful() {
        let _ = write!(
            s,
            " priority={} tries={} successful={}",
            p.priority(),
            p.tries(),
            p.successful() as u8
        );
    }
    if p.legacy_bios_bootable() {
        s.push_str(" legacy-bios-bootable");
    }
    s
}

/// `VERSION=` of `/lib/os-release` in the USR filesystem, through the ext4 reader.
fn usr_version(f: &File, p: &Partition, fs_bytes: u64) -> Option<String> {
    let data = ext4::edit::read_file(f, p.offset(), fs_bytes, "/lib/os-release").ok()??;
    String::from_utf8_lossy(&data).lines().find_map(|l| {
        l.strip_prefix("VERSION=")
            .map(|v| v.trim_matches('"').to_string())
    })
}

/// `<stem>_verity.txt` beside the image (coreos_production_image.bin → ..._verity.txt).
fn published_hash(image: &Path) -> Option<String> {
    let stem = image.file_stem()?.to_string_lossy().into_owned();
    let txt = image.with_file_name(format!("{stem}_verity.txt"));
    let h = std::fs::read_to_string(txt).ok()?.trim().to_string();
    (!h.is_empty()).then_some(h)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    print!("{}", report(&args.image)?);
    Ok(())
}

/// The whole report as text.
pub fn report(image: &Path) -> anyhow::Result<String> {
    let f = File::open(image).with_context(|| format!("opening {}", image.display()))?;
    let table = disk::gpt::read_table(&f)
        .with_context(|| format!("reading the partition table of {}", image.display()))?;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "image: {} ({} bytes)",
        image.display(),
        table.disk_bytes()
    );
    let pristine = table.disk_guid == disk::layout::PRISTINE_DISK_GUID;
    let _ = writeln!(
        w,
        "disk GUID: {}{}",
        table.disk_guid,
        if pristine { " (never booted)" } else { "" }
    );
    let mut mbr = [0u8; 512];
    f.read_exact_at(&mut mbr, 0)?;
    let kind = match (mbr[446 + 4], mbr[462 + 4]) {
        (0xee, _) => "protective".to_string(),
        (t, 0xee) => format!(
            "hybrid (entry 0 type 0x{t:02x}{}, entry 1 type 0xee)",
            if mbr[446] == 0x80 { " active" } else { "" }
        ),
        _ => "not a GPT protective MBR".to_string(),
    };
    let boot_code = mbr[..440].iter().any(|&b| b != 0);
    let _ = writeln!(
        w,
        "MBR: {kind}; boot code {}",
        if boot_code { "present" } else { "empty" }
    );
    let _ = writeln!(w, "partitions:");
    let mut version = None;
    let mut hashes = Vec::new();
    for p in &table.partitions {
        let ty = types::type_name(&p.type_guid)
            .map(str::to_string)
            .unwrap_or_else(|| p.type_guid.to_string());
        let _ = writeln!(
            w,
            "  {:>2} {:<12} {:<15} first {:>9} sectors {:>9} ({} MiB) guid {}",
            p.number,
            p.label,
            ty,
            p.first_lba,
            p.sectors,
            p.bytes() >> 20,
            p.part_guid
        );
        let _ = writeln!(w, "     attributes {}", attributes(p));
        if let Some(fat) = disk::fat::probe(&f, p.offset())? {
            let _ = writeln!(
                w,
                "     filesystem {} label {:?} volume id {:08x}",
                fat.fat_type, fat.label, fat.volume_id
            );
        } else if let Some(ext) = ext4::ondisk::probe::probe(&f, p.offset())? {
            let _ = writeln!(
                w,
                "     filesystem {} label {:?} uuid {} size {} bytes{}",
                ext.kind,
                ext.label,
                uuid::Uuid::from_bytes(ext.uuid),
                ext.bytes,
                if ext.read_only_marker {
                    " read-only marker"
                } else {
                    ""
                }
            );
            if ext.bytes < p.bytes() {
                if let Some(sb) = verity::read_superblock(&f, p.offset() + ext.bytes)? {
                    let _ = writeln!(
                        w,
                        "     dm-verity at byte {} of the partition: {} hash type {}, {} data blocks of {}, salt {}",
                        ext.bytes,
                        sb.algorithm,
                        sb.hash_type,
                        sb.data_blocks,
                        sb.data_block_size,
                        verity::hex(&sb.salt)
                    );
                    let vp = VerityParams {
                        data_offset: p.offset(),
                        data_blocks: sb.data_blocks,
                        hash_offset: p.offset() + ext.bytes,
                        hash_area_bytes: p.bytes() - ext.bytes,
                        salt: sb.salt.clone(),
                        uuid: sb.uuid,
                    };
                    hashes.push((p.label.clone(), verity::hex(&verity::root_hash(&f, &vp)?)));
                }
            }
            if version.is_none() && ext.read_only_marker {
                version = usr_version(&f, p, ext.bytes);
            }
        } else {
            let _ = writeln!(w, "     no filesystem");
        }
    }
    // The ext4 reader refuses read-only-marked filesystems for now; then version.txt beside
    // the image says it.
    let version = version
        .map(|v| format!("{v} (from /lib/os-release in USR)"))
        .or_else(|| {
            let txt = std::fs::read_to_string(image.with_file_name("version.txt")).ok()?;
            let v = txt
                .lines()
                .find_map(|l| l.strip_prefix("COREOS_VERSION="))?
                .to_string();
            Some(format!("{v} (from version.txt beside the image)"))
        });
    let _ = writeln!(
        w,
        "version: {}",
        version
            .as_deref()
            .unwrap_or("unknown (no /lib/os-release readable in USR, no version.txt)")
    );
    let published = published_hash(image);
    for (label, h) in &hashes {
        let check = match &published {
            Some(p) if p == h => " (matches the published _verity.txt)".to_string(),
            Some(p) => format!(" (DIFFERS from the published _verity.txt: {p})"),
            None => String::new(),
        };
        let _ = writeln!(w, "verity root hash ({label}): {h}{check}");
    }
    if hashes.is_empty() {
        let _ = writeln!(w, "verity root hash: none (no dm-verity superblock found)");
    }
    Ok(out)
}
