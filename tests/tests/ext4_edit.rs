//! The ext4 editor (`ext4::edit`) judged by real tools: images made by mke2fs in many
//! feature combinations get files added (nested new directories, replacements, a 5 MiB file,
//! 200 entries in one directory), then `e2fsck -fn` must be clean, the kernel must read every
//! file back byte for byte with its mode and owner, and `read_file` must agree.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Command;

use e2e::{require, run, Loop, Mount};
use ext4::edit::{add_file, read_file, EditError, NewFile};
use ext4::{write_tree, Ext4Params, Flavor, XattrPolicy};

const MIB: u64 = 1 << 20;

/// A filesystem inside `file` at [offset, offset+len).
struct Img {
    _dir: tempfile::TempDir,
    file: PathBuf,
    offset: u64,
    len: u64,
}

impl Img {
    /// `mkfs.ext4 <args>` (or another mkfs) over a fresh sparse file of `len` bytes placed at
    /// `offset` inside a file with 1 MiB of slack after it.
    fn mkfs(mkfs: &str, args: &[&str], len: u64, offset: u64) -> Img {
        require(mkfs);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("disk.img");
        File::create(&file)
            .unwrap()
            .set_len(offset + len + MIB)
            .unwrap();
        let mut c = Command::new(mkfs);
        c.args(["-F", "-q"]).args(args);
        if offset != 0 {
            c.arg("-E").arg(format!("offset={offset}"));
        }
        run(c.arg(&file).arg(format!("{}k", len / 1024)));
        Img {
            _dir: dir,
            file,
            offset,
            len,
        }
    }

    /// The name e2fsprogs tools take for a filesystem at an offset.
    fn e2name(&self) -> String {
        if self.offset == 0 {
            self.file.display().to_string()
        } else {
            format!("{}?offset={}", self.file.display(), self.offset)
        }
    }

    fn open(&self) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.file)
            .unwrap()
    }

    fn add(&self, path: &str, data: &[u8], meta: NewFile) -> Result<(), EditError> {
        add_file(&self.open(), self.offset, self.len, path, data, meta)
    }

    fn read(&self, path: &str) -> Option<Vec<u8>> {
        read_file(&self.open(), self.offset, self.len, path)
            .unwrap_or_else(|e| panic!("read_file {path}: {e}"))
    }

    /// `e2fsck -fn` exits 0 and reports nothing but its five passes and the summary (some
    /// problems, such as a bad descriptor checksum answered "no", still exit 0).
    fn fsck_clean(&self) {
        require("e2fsck");
        let out = Command::new("e2fsck")
            .args(["-fn"])
            .arg(self.e2name())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let extra: Vec<&str> = text
            .lines()
            .filter(|l| {
                !(l.is_empty()
                    || l.starts_with("Pass ")
                    || l.starts_with("e2fsck 1.")
                    || l.contains(" files ("))
            })
            .collect();
        assert!(
            out.status.success() && extra.is_empty(),
            "e2fsck -fn {} exit {}, unexpected lines {extra:?}:\n{text}",
            self.e2name(),
            out.status
        );
    }

    /// Mount read-only through a loop device over the range; check every file in `want`.
    fn kernel_reads(&self, want: &BTreeMap<String, (Vec<u8>, NewFile)>) {
        let lo = Loop::attach_range(&self.file, self.offset, self.len);
        let m = Mount::ro(&lo.dev, "ext4");
        for (path, (data, meta)) in want {
            let p = m.path().join(path.trim_start_matches('/'));
            let got = fs::read(&p).unwrap_or_else(|e| panic!("kernel cannot read {path}: {e}"));
            assert!(
                got == *data,
                "{path}: kernel reads {} bytes, differing from the {} written",
                got.len(),
                data.len()
            );
            let md = fs::symlink_metadata(&p).unwrap();
            assert!(md.is_file(), "{path} is not a regular file");
            assert_eq!(
                md.permissions().mode() & 0o7777,
                meta.mode & 0o7777,
                "{path} mode"
            );
            assert_eq!((md.uid(), md.gid()), (meta.uid, meta.gid), "{path} owner");
            assert_eq!(md.mtime(), i64::from(meta.mtime), "{path} mtime");
        }
        drop(m);
    }
}

fn meta(mode: u32, uid: u32, gid: u32) -> NewFile {
    NewFile {
        mode,
        uid,
        gid,
        mtime: 1_700_000_000,
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures are reproducible.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The acceptance sequence: nested new dirs, root file, replace, 5 MiB, 200 in one dir.
fn exercise(img: &Img, existing: Option<&str>) {
    let started = std::time::Instant::now();
    let mut want: BTreeMap<String, (Vec<u8>, NewFile)> = BTreeMap::new();
    let (mut calls, mut bytes) = (0, 0);
    let mut put = |path: &str, data: Vec<u8>, m: NewFile| {
        img.add(path, &data, m)
            .unwrap_or_else(|e| panic!("add_file {path}: {e}"));
        calls += 1;
        bytes += data.len();
        want.insert(path.to_string(), (data, m));
    };
    put(
        "/var/lib/coreos-install/user_data",
        b"#cloud-config\nhostname: edited\n".to_vec(),
        meta(0o600, 0, 0),
    );
    put(
        "/config.ign",
        br#"{"ignition":{"version":"2.2.0"}}"#.to_vec(),
        meta(0o644, 500, 501),
    );
    put("/replace.txt", noise(10_000, 1), meta(0o644, 0, 0));
    put("/replace.txt", noise(70_000, 2), meta(0o640, 7, 8));
    put("/replace.txt", b"short now".to_vec(), meta(0o4755, 0, 0));
    if let Some(p) = existing {
        assert!(
            img.read(p).is_some(),
            "{p} should exist before replacing it"
        );
        put(p, noise(3000, 3), meta(0o600, 1, 1));
    }
    put("/big/blob", noise(5 * MIB as usize, 4), meta(0o644, 0, 0));
    put("/empty", Vec::new(), meta(0o644, 0, 0));
    for i in 0..200 {
        let path = format!("/many/a-file-with-a-rather-long-name-to-fill-blocks-{i:04}");
        put(&path, format!("file {i}\n").into_bytes(), meta(0o644, i, i));
    }
    eprintln!(
        "{calls} add_file calls ({bytes} bytes) took {:?}",
        started.elapsed()
    );
    img.fsck_clean();
    for (path, (data, _)) in &want {
        assert!(
            img.read(path).as_deref() == Some(&data[..]),
            "read_file {path} differs"
        );
    }
    img.kernel_reads(&want);
    if let Ok(keep) = std::env::var("EXT4_EDIT_KEEP") {
        fs::copy(&img.file, keep).unwrap();
    }
}

#[test]
fn default_mkfs_ext4_1k_blocks() {
    exercise(&Img::mkfs("mkfs.ext4", &[], 64 * MIB, 0), None);
}

#[test]
fn default_mkfs_ext4_4k_blocks() {
    exercise(&Img::mkfs("mkfs.ext4", &["-b", "4096"], 256 * MIB, 0), None);
}

#[test]
fn without_metadata_csum_no_checksums() {
    let img = Img::mkfs(
        "mkfs.ext4",
        &["-O", "^metadata_csum", "-b", "4096"],
        128 * MIB,
        0,
    );
    assert!(!features(&img).contains("uninit_bg"));
    exercise(&img, None);
}

/// gdt_csum (uninit_bg): crc16 descriptor checksums and the *_UNINIT flags, 64-byte descriptors.
#[test]
fn gdt_csum_64bit() {
    let img = Img::mkfs(
        "mkfs.ext4",
        &["-O", "^metadata_csum,uninit_bg"],
        128 * MIB,
        0,
    );
    assert!(features(&img).contains("uninit_bg"));
    exercise(&img, None);
}

/// gdt_csum with 32-byte descriptors.
#[test]
fn gdt_csum_32bit() {
    let img = Img::mkfs(
        "mkfs.ext4",
        &["-O", "^metadata_csum,^64bit,uninit_bg", "-b", "4096"],
        128 * MIB,
        0,
    );
    assert!(features(&img).contains("uninit_bg"));
    exercise(&img, None);
}

fn features(img: &Img) -> String {
    let out = run(Command::new("dumpe2fs").arg("-h").arg(img.e2name()));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("Filesystem features:"))
        .unwrap()
        .to_string()
}

#[test]
fn metadata_csum_seed() {
    exercise(
        &Img::mkfs(
            "mkfs.ext4",
            &["-O", "metadata_csum_seed", "-b", "4096"],
            128 * MIB,
            0,
        ),
        None,
    );
}

/// Upstream e2fsprogs 1.47 defaults add metadata_csum_seed and orphan_file (left alone).
#[test]
fn upstream_defaults_with_orphan_file() {
    exercise(
        &Img::mkfs(
            "mkfs.ext4",
            &["-O", "metadata_csum_seed,orphan_file"],
            64 * MIB,
            0,
        ),
        None,
    );
}

/// meta_bg: descriptor blocks spread over the groups they describe (1 KiB blocks: 16
/// descriptors per block, so a 64 MiB filesystem has several meta groups).
#[test]
fn meta_bg() {
    let img = Img::mkfs("mkfs.ext4", &["-O", "meta_bg,^resize_inode"], 64 * MIB, 0);
    assert!(features(&img).contains("meta_bg"));
    exercise(&img, None);
}

#[test]
fn meta_bg_gdt_csum_32bit() {
    let img = Img::mkfs(
        "mkfs.ext4",
        &[
            "-O",
            "meta_bg,^resize_inode,^metadata_csum,^64bit,uninit_bg",
            "-b",
            "1024",
        ],
        128 * MIB,
        0,
    );
    spanning_groups(&img, "(ETB0)");
}

#[test]
fn two_kib_blocks() {
    exercise(&Img::mkfs("mkfs.ext4", &["-b", "2048"], 96 * MIB, 0), None);
}

#[test]
fn small_inodes_128() {
    exercise(&Img::mkfs("mkfs.ext4", &["-I", "128"], 64 * MIB, 0), None);
}

#[test]
fn no_journal() {
    exercise(
        &Img::mkfs("mkfs.ext4", &["-O", "^has_journal"], 64 * MIB, 0),
        None,
    );
}

#[test]
fn thirty_two_bit_descriptors() {
    exercise(
        &Img::mkfs("mkfs.ext4", &["-O", "^64bit", "-b", "4096"], 128 * MIB, 0),
        None,
    );
}

#[test]
fn root_style_2162_mib() {
    exercise(
        &Img::mkfs("mkfs.ext4", &["-L", "ROOT"], 2162 * MIB, 0),
        None,
    );
}

#[test]
fn at_an_offset_inside_a_larger_file() {
    exercise(&Img::mkfs("mkfs.ext4", &[], 64 * MIB, 3 * MIB), None);
}

#[test]
fn ext3_block_mapped() {
    exercise(&Img::mkfs("mkfs.ext3", &[], 64 * MIB, 0), None);
}

#[test]
fn ext2_block_mapped_4k() {
    exercise(&Img::mkfs("mkfs.ext2", &["-b", "4096"], 64 * MIB, 0), None);
}

/// A tree with many files (one directory spanning several blocks), made with `-d`.
fn populated(entries: usize, extra: &[&str]) -> Img {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir_all(src.path().join("etc/deep/er")).unwrap();
    fs::create_dir_all(src.path().join("many")).unwrap();
    for i in 0..entries {
        fs::write(
            src.path()
                .join(format!("many/existing-entry-with-a-long-name-{i:05}")),
            noise(i % 400 * 37, i as u64),
        )
        .unwrap();
    }
    fs::write(src.path().join("etc/deep/er/conf"), b"old content").unwrap();
    fs::write(src.path().join("etc/big"), noise(300_000, 9)).unwrap();
    let mut args = vec!["-d", src.path().to_str().unwrap()];
    args.extend_from_slice(extra);
    Img::mkfs("mkfs.ext4", &args, 128 * MIB, 0)
}

#[test]
fn populated_with_d() {
    let img = populated(400, &[]);
    exercise(&img, Some("/etc/big"));
    assert_eq!(img.read("/etc/deep/er/conf").unwrap(), b"old content");
}

/// `/many` indexed by `e2fsck -D` with `levels` levels of interior index nodes.
fn htree(entries: usize, extra: &[&str], levels: u32) -> Img {
    let img = populated(entries, extra);
    // e2fsck -D indexes every directory larger than a block (exit 1: "file system modified").
    let _ = Command::new("e2fsck")
        .args(["-fyD"])
        .arg(img.e2name())
        .output()
        .unwrap();
    img.fsck_clean();
    let out = run(Command::new("debugfs")
        .args(["-R", "htree /many"])
        .arg(img.e2name()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("Indirect levels: {levels}")),
        "/many should be an htree of {levels} levels:\n{text}"
    );
    img
}

#[test]
fn htree_indexed_parent() {
    exercise(
        &htree(400, &["-b", "4096"], 0),
        Some("/many/existing-entry-with-a-long-name-00010"),
    );
}

#[test]
fn htree_two_level_parent_without_metadata_csum() {
    exercise(
        &htree(3000, &["-O", "^metadata_csum"], 1),
        Some("/many/existing-entry-with-a-long-name-00010"),
    );
}

#[test]
fn htree_two_level_parent() {
    let img = htree(3000, &[], 1);
    exercise(&img, None);
    assert_eq!(
        img.read("/many/existing-entry-with-a-long-name-02999")
            .unwrap(),
        noise(2999 % 400 * 37, 2999)
    );
}

/// A file larger than any group (several extents: a depth-1 tree, or double-indirect maps),
/// space running out, and freed space reused after a replacement.
fn spanning_groups(img: &Img, mapping: &str) {
    let m = meta(0o644, 0, 0);
    let huge = noise(100 * MIB as usize, 11);
    img.add("/huge", &huge, m).unwrap();
    img.fsck_clean();
    let stat = run(Command::new("debugfs")
        .args(["-R", "stat /huge"])
        .arg(img.e2name()));
    let stat = String::from_utf8_lossy(&stat.stdout);
    assert!(
        stat.contains(mapping),
        "/huge should be mapped with {mapping}:\n{stat}"
    );
    assert!(
        img.read("/huge").as_deref() == Some(&huge[..]),
        "read_file /huge"
    );
    let e = unchanged_after(img, |i| {
        i.add("/second", &noise(60 * MIB as usize, 12), m)
            .unwrap_err()
    });
    assert!(matches!(e, EditError::NoSpace(_)), "{e}");
    let small = noise(MIB as usize, 13);
    img.add("/huge", &small, m).unwrap();
    img.fsck_clean();
    let second = noise(60 * MIB as usize, 12);
    img.add("/second", &second, m).unwrap();
    img.fsck_clean();
    let want = BTreeMap::from([
        ("/huge".to_string(), (small, m)),
        ("/second".to_string(), (second, m)),
    ]);
    for (p, (d, _)) in &want {
        assert!(img.read(p).as_deref() == Some(&d[..]), "read_file {p}");
    }
    img.kernel_reads(&want);
}

#[test]
fn spanning_groups_extents() {
    let img = Img::mkfs("mkfs.ext4", &["-b", "1024"], 128 * MIB, 0);
    spanning_groups(&img, "(ETB0)");
}

#[test]
fn spanning_groups_block_mapped() {
    let img = Img::mkfs("mkfs.ext2", &["-b", "1024"], 128 * MIB, 0);
    spanning_groups(&img, "(TIND)");
}

// ---- filesystems made by our own writer (ext4::write_tree) ----

/// `write_tree` of a small tree into [offset, offset+len) of a sparse file.
fn ours(flavor: Flavor, len: u64, offset: u64, inode_size: u16, read_only_marker: bool) -> Img {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir_all(src.path().join("etc/deep")).unwrap();
    fs::write(src.path().join("etc/deep/conf"), b"old content").unwrap();
    fs::write(src.path().join("etc/big"), noise(300_000, 9)).unwrap();
    for i in 0..300 {
        fs::write(
            src.path()
                .join(format!("etc/entry-with-a-long-name-{i:04}")),
            b"e",
        )
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("disk.img");
    let out = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&file)
        .unwrap();
    out.set_len(offset + len + MIB).unwrap();
    let params = Ext4Params {
        size: len,
        label: "ROOT".into(),
        uuid: *b"editor-test-uuid",
        timestamp: 1_600_000_000,
        flavor,
        read_only_marker,
        inode_size,
        bytes_per_inode: 16384,
        all_root: false,
        overrides: Vec::new(),
        xattrs: XattrPolicy::KeepAll,
        extra_files: Vec::new(),
    };
    write_tree(Some(src.path()), &out, offset, &params).unwrap();
    let img = Img {
        _dir: dir,
        file,
        offset,
        len,
    };
    // e2fsck refuses the marker's unknown feature bits, as it should.
    if !read_only_marker {
        img.fsck_clean();
    }
    img
}

#[test]
fn our_writer_ext4_root_style_at_an_offset() {
    let img = ours(Flavor::Ext4, 2162 * MIB, 2 * MIB, 256, false);
    exercise(&img, Some("/etc/big"));
    assert_eq!(img.read("/etc/deep/conf").unwrap(), b"old content");
}

#[test]
fn our_writer_ext2_compatible() {
    let img = ours(Flavor::Ext2Compat, 256 * MIB, 0, 128, false);
    exercise(&img, Some("/etc/deep/conf"));
}

/// The editor stamps times past 2038 into the epoch bits of large inodes (the kernel reads
/// them back), and clamps them to 2038-01-19 in 128-byte inodes instead of wrapping to 1901.
#[test]
fn times_past_2038() {
    let late = NewFile {
        mtime: 3_000_000_000, // 2065-01-24
        ..meta(0o644, 0, 0)
    };
    for (img, holds) in [
        (Img::mkfs("mkfs.ext4", &["-I", "256"], 64 * MIB, 0), true),
        (ours(Flavor::Ext4, 64 * MIB, 0, 256, false), true),
        (Img::mkfs("mkfs.ext4", &["-I", "128"], 64 * MIB, 0), false),
    ] {
        img.add("/late/file", b"late", late).unwrap();
        img.fsck_clean();
        let stored = NewFile {
            mtime: if holds { late.mtime } else { i32::MAX as u32 },
            ..late
        };
        let mut want = BTreeMap::new();
        want.insert("/late/file".to_string(), (b"late".to_vec(), stored));
        img.kernel_reads(&want);
    }
}

#[test]
fn our_writer_read_only_marker_is_refused() {
    let img = ours(Flavor::Ext2Compat, 64 * MIB, 0, 128, true);
    let e = unchanged_after(&img, |i| i.add("/x", b"x", meta(0o644, 0, 0)).unwrap_err());
    assert!(
        matches!(e, EditError::Unsupported(_)) && e.to_string().contains("read-only"),
        "{e}"
    );
}

// ---- failures leave the filesystem unchanged ----

fn sha256(p: &std::path::Path) -> String {
    String::from_utf8(run(Command::new("sha256sum").arg(p)).stdout).unwrap()
}

fn unchanged_after<F: FnOnce(&Img) -> EditError>(img: &Img, f: F) -> EditError {
    let before = sha256(&img.file);
    let e = f(img);
    assert_eq!(
        sha256(&img.file),
        before,
        "the image changed after a failed edit ({e})"
    );
    e
}

#[test]
fn random_bytes_are_not_ext4() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("noise.img");
    fs::write(&file, noise(4 * MIB as usize, 77)).unwrap();
    let img = Img {
        _dir: dir,
        file,
        offset: 0,
        len: 4 * MIB,
    };
    let e = unchanged_after(&img, |i| i.add("/x", b"x", meta(0o644, 0, 0)).unwrap_err());
    assert!(matches!(e, EditError::NotExt4(0)), "{e}");
}

#[test]
fn no_space_names_the_numbers() {
    let img = Img::mkfs("mkfs.ext4", &["-O", "^has_journal"], 8 * MIB, 0);
    let e = unchanged_after(&img, |i| {
        i.add(
            "/a/b/too-big",
            &noise(20 * MIB as usize, 5),
            meta(0o644, 0, 0),
        )
        .unwrap_err()
    });
    let msg = e.to_string();
    assert!(matches!(e, EditError::NoSpace(_)), "{msg}");
    assert!(
        msg.contains("/a/b/too-big") && msg.contains("free"),
        "{msg}"
    );
    img.fsck_clean();
}

#[test]
fn needs_recovery_is_refused() {
    let img = Img::mkfs("mkfs.ext4", &[], 32 * MIB, 0);
    run(Command::new("debugfs")
        .args(["-w", "-R", "feature needs_recovery"])
        .arg(img.e2name()));
    let e = unchanged_after(&img, |i| i.add("/x", b"x", meta(0o644, 0, 0)).unwrap_err());
    assert!(matches!(e, EditError::NeedsRecovery), "{e}");
    assert!(e.to_string().contains("recovery"), "{e}");
}

#[test]
fn bad_paths_are_refused() {
    let img = Img::mkfs("mkfs.ext4", &[], 32 * MIB, 0);
    img.add("/file", b"data", meta(0o644, 0, 0)).unwrap();
    for path in [
        "relative",
        "/",
        "/dir/",
        "/file/below",
        "/lost+found",
        "/a/../b",
    ] {
        let e = unchanged_after(&img, |i| i.add(path, b"x", meta(0o644, 0, 0)).unwrap_err());
        assert!(matches!(e, EditError::BadPath(_)), "{path}: {e}");
    }
    img.fsck_clean();
}

#[test]
fn inline_data_directories_are_refused() {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir_all(src.path().join("small")).unwrap();
    fs::write(src.path().join("small/f"), b"hi\n").unwrap();
    let img = Img::mkfs(
        "mkfs.ext4",
        &["-O", "inline_data", "-d", src.path().to_str().unwrap()],
        64 * MIB,
        0,
    );
    let e = unchanged_after(&img, |i| {
        i.add("/small/new", b"x", meta(0o644, 0, 0)).unwrap_err()
    });
    let msg = e.to_string();
    assert!(
        matches!(e, EditError::Unsupported(_))
            && msg.contains("/small")
            && msg.contains("inline data"),
        "{msg}"
    );
    // Inline file content reads back; directories elsewhere still take new files.
    assert_eq!(img.read("/small/f").unwrap(), b"hi\n");
    let m = meta(0o644, 0, 0);
    img.add("/new/dir/file", b"fine", m).unwrap();
    img.fsck_clean();
    img.kernel_reads(&BTreeMap::from([(
        "/new/dir/file".to_string(),
        (b"fine".to_vec(), m),
    )]));
}

// ---- property test: random sequences stay clean and read back exactly ----

mod property {
    use super::*;
    use proptest::prelude::*;

    fn op() -> impl Strategy<Value = (Vec<u8>, usize, u64)> {
        (
            prop::collection::vec(0u8..4, 1..4),
            0usize..200_000,
            any::<u64>(),
        )
    }

    /// Check a file through debugfs (no mount): `debugfs -R "dump PATH OUT"`.
    fn debugfs_cat(img: &Img, path: &str) -> Vec<u8> {
        let out = img._dir.path().join("dump.out");
        let _ = fs::remove_file(&out);
        run(Command::new("debugfs")
            .arg("-R")
            .arg(format!("dump {path} {}", out.display()))
            .arg(img.e2name()));
        fs::read(&out).unwrap_or_default()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]
        #[test]
        fn random_adds_stay_clean(ops in prop::collection::vec(op(), 1..12), writer in any::<bool>()) {
            // A mke2fs image (1 KiB blocks) or one from our writer (4 KiB blocks).
            let img = if writer {
                ours(Flavor::Ext4, 48 * MIB, 0, 256, false)
            } else {
                Img::mkfs("mkfs.ext4", &[], 48 * MIB, 0)
            };
            let names = ["d", "etc", "x", "a-much-longer-directory-name"];
            // In the writer's tree /etc/deep and /etc/big exist already.
            let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            if writer {
                files.insert("/etc/big".into(), noise(300_000, 9));
            }
            for (parts, size, seed) in ops {
                let path: String = parts.iter().map(|&p| format!("/{}", names[p as usize])).collect();
                let data = noise(size, seed);
                // A file where a directory is needed, or a directory where the file goes, fails.
                let conflict = files.keys().any(|f| path.starts_with(&format!("{f}/")) || f.starts_with(&format!("{path}/")));
                match img.add(&path, &data, meta(0o644, 0, 0)) {
                    Ok(()) => {
                        prop_assert!(!conflict, "{path} should have been refused");
                        files.insert(path, data);
                    }
                    Err(e) => prop_assert!(conflict, "{path}: {e}"),
                }
            }
            img.fsck_clean();
            for (path, data) in &files {
                prop_assert!(img.read(path).as_deref() == Some(&data[..]), "read_file {}", path);
                prop_assert!(debugfs_cat(&img, path) == *data, "debugfs dump {}", path);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]
        /// Damaged metadata gives errors, never a panic (nor a hang).
        #[test]
        fn corrupted_metadata_never_panics(flips in prop::collection::vec((0usize..400 * 1024, any::<u8>()), 1..40)) {
            let img = Img::mkfs("mkfs.ext4", &["-O", "^has_journal", "-N", "64"], 8 * MIB, 0);
            img.add("/etc/f", &noise(20_000, 1), meta(0o644, 0, 0)).unwrap();
            for i in 0..40 {
                img.add(&format!("/etc/entry-{i}"), b"x", meta(0o644, 0, 0)).unwrap();
            }
            let mut bytes = fs::read(&img.file).unwrap();
            for (at, v) in flips {
                bytes[at] ^= v | 1;
            }
            fs::write(&img.file, &bytes).unwrap();
            let f = img.open();
            let _ = read_file(&f, 0, img.len, "/etc/f");
            let _ = add_file(&f, 0, img.len, "/etc/new/file", &noise(50_000, 2), meta(0o644, 0, 0));
            let _ = add_file(&f, 0, img.len, "/etc/f", b"replaced", meta(0o644, 0, 0));
        }
    }
}
