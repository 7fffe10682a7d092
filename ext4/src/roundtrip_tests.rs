//! Property tests: random trees written by `write_tree`, judged by e2fsck and read back
//! with debugfs (no mount, no root needed), plus writing into the middle of a larger file.

use super::*;
use proptest::prelude::*;
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileExt;
use std::process::Command;

#[derive(Debug, Clone)]
enum Item {
    File(Vec<u8>, u64, bool),
    Dir,
    Symlink(Vec<u8>),
    HardLink(usize),
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    // Any byte but '/' and NUL, biased towards short readable names; some up to 255 bytes.
    prop_oneof![
        proptest::collection::vec(b'a'..=b'z', 1..12),
        proptest::collection::vec(1u8..=255, 1..40).prop_map(|v| v
            .into_iter()
            .map(|b| if b == b'/' { b'_' } else { b })
            .collect()),
        (200usize..=255).prop_map(|n| vec![b'L'; n]),
    ]
    .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        4 => (proptest::collection::vec(any::<u8>(), 0..64), prop_oneof![Just(0u64), Just(1), Just(4095), Just(4096), Just(4097), 0u64..300_000], any::<bool>())
            .prop_map(|(seed, size, sparse)| Item::File(seed, size, sparse)),
        2 => Just(Item::Dir),
        1 => proptest::collection::vec(b'a'..=b'z', 1..120).prop_map(Item::Symlink),
        1 => (0usize..64).prop_map(Item::HardLink),
    ]
}

/// Build the tree: items go into the directory made most recently (or the root).
fn make(root: &Path, items: &[(Vec<u8>, Item)]) {
    let mut dirs = vec![root.to_path_buf()];
    let mut files: Vec<PathBuf> = Vec::new();
    for (i, (n, it)) in items.iter().enumerate() {
        let parent = dirs[i % dirs.len()].clone();
        let p = parent.join(std::ffi::OsStr::from_bytes(n));
        if fs::symlink_metadata(&p).is_ok() {
            continue;
        }
        match it {
            Item::File(seed, size, sparse) => {
                let f = fs::File::create(&p).unwrap();
                f.set_len(*size).unwrap();
                if *size > 0 && !seed.is_empty() {
                    let chunk: Vec<u8> = seed.iter().cycle().take(3000).cloned().collect();
                    let step = if *sparse { 65536 } else { 3000 };
                    let mut off = 0;
                    while off < *size {
                        let n = chunk.len().min((*size - off) as usize);
                        f.write_all_at(&chunk[..n], off).unwrap();
                        off += step;
                    }
                }
                files.push(p);
            }
            Item::Dir => {
                fs::create_dir(&p).unwrap();
                dirs.push(p);
            }
            Item::Symlink(t) => {
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(t), &p).unwrap()
            }
            Item::HardLink(k) => {
                if let Some(t) = files.get(k % files.len().max(1)) {
                    fs::hard_link(t, &p).unwrap();
                }
            }
        }
    }
}

fn params(flavor: Flavor) -> Ext4Params {
    Ext4Params {
        size: 64 << 20,
        label: "prop".into(),
        uuid: [0x42; 16],
        timestamp: 1_700_000_000,
        flavor,
        read_only_marker: false,
        inode_size: if flavor == Flavor::Ext4 { 256 } else { 128 },
        bytes_per_inode: 4096,
        all_root: false,
        overrides: Vec::new(),
        xattrs: XattrPolicy::KeepAll,
        extra_files: Vec::new(),
    }
}

fn fsck(img: &Path) {
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(img)
        .output()
        .expect("e2fsck is installed (ci/install-deps)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !text.contains("Fix"),
        "e2fsck:\n{text}"
    );
}

/// Names, kinds, content and link targets of `a` and `b` agree (ignoring lost+found in b).
fn same_tree(a: &Path, b: &Path, top: bool) {
    let list = |d: &Path| {
        let mut v: Vec<_> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let mut bl = list(b);
    if top {
        bl.retain(|n| n != "lost+found");
    }
    assert_eq!(list(a), bl, "entries of {}", a.display());
    for n in list(a) {
        let (pa, pb) = (a.join(&n), b.join(&n));
        let (ma, mb) = (
            fs::symlink_metadata(&pa).unwrap(),
            fs::symlink_metadata(&pb).unwrap(),
        );
        assert_eq!(ma.file_type(), mb.file_type(), "{}", pa.display());
        if ma.is_dir() {
            same_tree(&pa, &pb, false);
        } else if ma.file_type().is_symlink() {
            assert_eq!(fs::read_link(&pa).unwrap(), fs::read_link(&pb).unwrap());
        } else {
            assert!(
                fs::read(&pa).unwrap() == fs::read(&pb).unwrap(),
                "content of {}",
                pa.display()
            );
        }
    }
}

/// The report's entries name every path of the source once, in path order, with its kind,
/// size, permissions and link count inside the tree; plus lost+found.
fn same_inventory(src: &Path, entries: &[inventory::Entry]) {
    use std::os::unix::fs::MetadataExt;
    let mut want: Vec<PathBuf> = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        want.push(rel.clone());
        let full = src.join(&rel);
        if fs::symlink_metadata(&full).unwrap().is_dir() {
            for e in fs::read_dir(&full).unwrap() {
                stack.push(rel.join(e.unwrap().file_name()));
            }
        }
    }
    want.push("lost+found".into());
    want.sort();
    let got: Vec<PathBuf> = entries.iter().map(|e| e.path.clone()).collect();
    assert_eq!(got, want, "paths, in order");
    for e in entries.iter().filter(|e| e.path != Path::new("lost+found")) {
        let m = fs::symlink_metadata(src.join(&e.path)).unwrap();
        assert_eq!(e.mode as u32, m.mode(), "{}", e.path.display());
        if m.is_dir() {
            assert!(
                e.size > 0 && e.size % BLOCK_SIZE == 0,
                "{}",
                e.path.display()
            );
        } else {
            assert_eq!(
                (e.size, e.links as u64),
                (m.len(), m.nlink()),
                "{}",
                e.path.display()
            );
        }
        let target = m.file_type().is_symlink().then(|| {
            fs::read_link(src.join(&e.path))
                .unwrap()
                .into_os_string()
                .into_vec()
        });
        assert_eq!(e.target, target, "{}", e.path.display());
    }
}

fn check(items: &[(Vec<u8>, Item)], flavor: Flavor) {
    let src = tempfile::tempdir().unwrap();
    make(src.path(), items);
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("fs.img");
    let f = fs::File::create(&img).unwrap();
    let report = write_tree(Some(src.path()), &f, 0, &params(flavor)).unwrap();
    drop(f);
    fsck(&img);
    same_inventory(src.path(), &report.entries);
    let out = work.path().join("out");
    fs::create_dir(&out).unwrap();
    let r = Command::new("debugfs")
        .arg("-R")
        .arg(format!("rdump / {}", out.display()))
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        r.status.success(),
        "debugfs: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    same_tree(src.path(), &out, true);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_ext4(items in proptest::collection::vec((name(), item()), 0..80)) {
        check(&items, Flavor::Ext4);
    }

    #[test]
    fn random_trees_ext2compat(items in proptest::collection::vec((name(), item()), 0..80)) {
        check(&items, Flavor::Ext2Compat);
    }
}

#[test]
fn writes_only_its_byte_range_and_ignores_old_content() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("hello"), b"hello world").unwrap();
    let work = tempfile::tempdir().unwrap();
    let disk = work.path().join("disk.img");
    let f = fs::OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(true)
        .open(&disk)
        .unwrap();
    // Old garbage everywhere: the filesystem must not depend on it.
    f.write_all_at(&vec![0xA5u8; 24 << 20], 0).unwrap();
    let (offset, size) = (4u64 << 20, 16u64 << 20);
    let mut p = params(Flavor::Ext4);
    p.size = size;
    write_tree(Some(src.path()), &f, offset, &p).unwrap();
    let all = fs::read(&disk).unwrap();
    assert_eq!(all.len(), 24 << 20, "the file must keep its size");
    assert!(
        all[..offset as usize].iter().all(|&b| b == 0xA5),
        "bytes before the range changed"
    );
    assert!(
        all[(offset + size) as usize..].iter().all(|&b| b == 0xA5),
        "bytes after the range changed"
    );
    let part = work.path().join("part.img");
    fs::write(&part, &all[offset as usize..(offset + size) as usize]).unwrap();
    fsck(&part);
}

#[test]
fn too_large_is_detected_before_writing() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("big"), vec![1u8; 2 << 20]).unwrap();
    let f = tempfile::tempfile().unwrap();
    let mut p = params(Flavor::Ext4);
    p.size = 1 << 20;
    let err = write_tree(Some(src.path()), &f, 0, &p).unwrap_err();
    match err {
        Ext4Error::TooLarge {
            needed,
            available,
            short,
        } => {
            assert_eq!(available, 1 << 20);
            assert_eq!(needed - available, short);
            assert!(short >= 1 << 20, "{short}");
        }
        e => panic!("expected TooLarge, got {e}"),
    }
    assert_eq!(f.metadata().unwrap().len(), 0, "nothing may be written");
}

#[test]
fn missing_source_is_named() {
    let src = tempfile::tempdir().unwrap();
    let target = src.path().join("missing-dir");
    let err = Tree::scan(&target, &Default::default()).unwrap_err();
    assert!(err.to_string().contains("missing-dir"), "{err}");
}

#[test]
fn unreadable_directory_is_named() {
    // A directory the process cannot list must be reported by path.
    let src = tempfile::tempdir().unwrap();
    let locked = src.path().join("locked");
    fs::create_dir(&locked).unwrap();
    fs::write(locked.join("secret"), b"x").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    let f = tempfile::tempfile().unwrap();
    let r = write_tree(Some(src.path()), &f, 0, &params(Flavor::Ext4));
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    // Root reads through permissions; everyone else must get an error naming the directory.
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        let err = r.unwrap_err();
        assert!(err.to_string().contains("locked"), "{err}");
    } else {
        r.unwrap();
    }
}

#[test]
fn inode_exhaustion_is_reported() {
    let src = tempfile::tempdir().unwrap();
    for i in 0..300 {
        fs::write(src.path().join(format!("f{i}")), b"").unwrap();
    }
    let f = tempfile::tempfile().unwrap();
    let mut p = params(Flavor::Ext4);
    p.size = 1 << 20;
    p.bytes_per_inode = 1 << 20;
    let err = write_tree(Some(src.path()), &f, 0, &p).unwrap_err();
    assert!(matches!(err, Ext4Error::TooManyInodes { .. }), "{err}");
}

use scan::Tree;

#[test]
fn map_blocks_travel_with_their_file_so_the_data_is_one_run() {
    // One block past the 12 direct ones: an indirect block. 5 MiB: an indirect block, the
    // double-indirect one and one more indirect block. One block: none.
    let src = tempfile::tempdir().unwrap();
    for (name, size) in [
        ("a", 13 * 4096),
        ("b", 5 << 20),
        ("c", 4096),
        ("d", 13 * 4096),
    ] {
        fs::write(src.path().join(name), vec![7u8; size]).unwrap();
    }
    let tree = scan::Tree::scan(src.path(), &scan::Rules::default()).unwrap();
    let plan = plan::plan(&tree, &params(Flavor::Ext2Compat)).unwrap();
    let counts: Vec<usize> = plan.copies.iter().map(|c| c.map_blocks.len()).collect();
    assert_eq!(counts, [1, 3, 0, 1]);
    let metadata: std::collections::HashSet<u64> = plan.metadata.iter().map(|m| m.0).collect();
    let mut next = None;
    for c in &plan.copies {
        let first = c.maps.iter().map(|m| m.physical).min().unwrap();
        let end = c.maps.iter().map(|m| m.physical + m.len).max().unwrap();
        let blocks: Vec<u64> = c.map_blocks.iter().map(|m| m.0).collect();
        // Right after the file's data, then the next file: the copy threads write whole
        // runs, not one run per file cut by a block the metadata writer fills.
        assert_eq!(blocks, (end..end + blocks.len() as u64).collect::<Vec<_>>());
        assert!(blocks.iter().all(|b| !metadata.contains(b)), "{blocks:?}");
        if let Some(n) = next {
            assert_eq!(first, n, "{}", c.source.display());
        }
        next = Some(end + blocks.len() as u64);
    }
}

#[test]
fn fragmented_sparse_file_gets_a_deep_extent_tree() {
    // 2000 islands of data: 2000 extents, more than one level of leaves holds.
    let src = tempfile::tempdir().unwrap();
    let f = fs::File::create(src.path().join("islands")).unwrap();
    f.set_len(2000 * 65536).unwrap();
    for i in 0..2000u64 {
        f.write_all_at(&[(i % 250) as u8 + 1; 4096], i * 65536)
            .unwrap();
    }
    drop(f);
    for flavor in [Flavor::Ext4, Flavor::Ext2Compat] {
        let work = tempfile::tempdir().unwrap();
        let img = work.path().join("fs.img");
        let out = fs::File::create(&img).unwrap();
        write_tree(Some(src.path()), &out, 0, &params(flavor)).unwrap();
        drop(out);
        fsck(&img);
        let dump = work.path().join("out");
        fs::create_dir(&dump).unwrap();
        let r = Command::new("debugfs")
            .arg("-R")
            .arg(format!("rdump / {}", dump.display()))
            .arg(&img)
            .output()
            .unwrap();
        assert!(r.status.success());
        same_tree(src.path(), &dump, true);
    }
}

#[test]
fn extra_files_replace_and_add_fsck_clean_and_reproducibly() {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("lib")).unwrap();
    fs::write(src.path().join("lib/os-release"), b"old").unwrap();
    let big: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8 + 1).collect();
    for flavor in [Flavor::Ext4, Flavor::Ext2Compat] {
        let mut p = params(flavor);
        p.extra_files = vec![
            ExtraFile {
                path: "lib/os-release".into(),
                data: big.clone(),
                perm: 0o644,
                uid: 0,
                gid: 0,
                mtime: 1_600_000_000,
            },
            ExtraFile {
                path: "/share/coreos/update.conf".into(),
                data: b"GROUP=beta\n".to_vec(),
                perm: 0o600,
                uid: 7,
                gid: 8,
                mtime: 1_600_000_000,
            },
        ];
        let work = tempfile::tempdir().unwrap();
        let images: Vec<Vec<u8>> = (0..2)
            .map(|i| {
                let img = work.path().join(format!("fs{i}.img"));
                let f = fs::File::create(&img).unwrap();
                write_tree(Some(src.path()), &f, 0, &p).unwrap();
                drop(f);
                fsck(&img);
                fs::read(&img).unwrap()
            })
            .collect();
        assert!(images[0] == images[1], "{flavor:?}: two writes differ");
        let f = fs::File::open(work.path().join("fs0.img")).unwrap();
        let read = |path: &str| edit::read_file(&f, 0, p.size, path).unwrap();
        assert_eq!(read("/lib/os-release").as_deref(), Some(&big[..]));
        assert_eq!(
            read("/share/coreos/update.conf").as_deref(),
            Some(&b"GROUP=beta\n"[..])
        );
        let stat = Command::new("debugfs")
            .args(["-R", "stat /share/coreos/update.conf"])
            .arg(work.path().join("fs0.img"))
            .output()
            .unwrap();
        let stat = String::from_utf8_lossy(&stat.stdout);
        assert!(
            stat.contains("Mode:  0600") && stat.contains("User:     7   Group:     8"),
            "{stat}"
        );
    }
    assert_eq!(fs::read(src.path().join("lib/os-release")).unwrap(), b"old");
}

#[test]
fn a_read_only_marked_filesystem_reads_but_is_not_edited() {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir_all(src.path().join("share/coreos")).unwrap();
    fs::write(
        src.path().join("share/coreos/release"),
        b"COREOS_RELEASE_VERSION=1.2.3\n",
    )
    .unwrap();
    let mut p = params(Flavor::Ext2Compat);
    p.read_only_marker = true;
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("usr.img");
    let f = fs::File::create(&img).unwrap();
    write_tree(Some(src.path()), &f, 0, &p).unwrap();
    drop(f);
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    let got = edit::read_file(&f, 0, p.size, "/share/coreos/release").unwrap();
    assert_eq!(got.as_deref(), Some(&b"COREOS_RELEASE_VERSION=1.2.3\n"[..]));
    let e = edit::add_file(
        &f,
        0,
        p.size,
        "/x",
        b"x",
        edit::NewFile {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
}
