use super::*;
use std::process::Command;

/// A partition-like file: `blocks` data blocks with some content and a hole, then room for
/// the tree.
fn sample(blocks: u64) -> (tempfile::NamedTempFile, VerityParams) {
    let f = tempfile::NamedTempFile::new().unwrap();
    let total = blocks * VERITY_BLOCK_SIZE + (blocks / 100 + 8) * VERITY_BLOCK_SIZE;
    f.as_file().set_len(total).unwrap();
    for i in (0..blocks).step_by(7) {
        if i > blocks / 3 && i < blocks / 2 {
            continue; // leave a hole
        }
        f.as_file()
            .write_all_at(&[(i % 251) as u8 + 1; 4096], i * VERITY_BLOCK_SIZE)
            .unwrap();
    }
    let salt = salt_for("1.2.3");
    let p = VerityParams {
        data_offset: 0,
        data_blocks: blocks,
        hash_offset: blocks * VERITY_BLOCK_SIZE,
        hash_area_bytes: total - blocks * VERITY_BLOCK_SIZE,
        uuid: uuid_for(&salt),
        salt,
    };
    (f, p)
}

fn veritysetup(args: &[&str]) -> String {
    let out = Command::new("veritysetup")
        .args(args)
        .output()
        .expect("veritysetup is not installed (ci/install-deps)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "veritysetup {args:?}: {text}");
    text
}

#[test]
fn same_bytes_and_root_hash_as_veritysetup() {
    for blocks in [1000u64, 16384 + 5] {
        let (ours, p) = sample(blocks);
        let tree = format(ours.as_file(), &p).unwrap();
        // The same data, formatted by veritysetup with our salt and uuid.
        let (theirs, _) = sample(blocks);
        let uuid = uuid::Uuid::from_bytes(p.uuid).to_string();
        let path = theirs.path().to_str().unwrap();
        let out = veritysetup(&[
            "format",
            "--hash=sha256",
            "--data-block-size=4096",
            "--hash-block-size=4096",
            &format!("--data-blocks={blocks}"),
            &format!("--hash-offset={}", p.hash_offset),
            &format!("--salt={}", tree.salt_hex()),
            &format!("--uuid={uuid}"),
            path,
            path,
        ]);
        assert!(
            out.contains(&tree.root_hash_hex()),
            "{blocks} blocks: ours {} vs\n{out}",
            tree.root_hash_hex()
        );
        let a = std::fs::read(ours.path()).unwrap();
        let b = std::fs::read(theirs.path()).unwrap();
        assert!(
            a == b,
            "{blocks} blocks: hash area differs from veritysetup's"
        );
        let ours_path = ours.path().to_str().unwrap();
        veritysetup(&[
            "verify",
            &format!("--hash-offset={}", p.hash_offset),
            ours_path,
            ours_path,
            &tree.root_hash_hex(),
        ]);
    }
}

#[test]
fn verify_rejects_a_changed_byte() {
    let (f, p) = sample(3000);
    let tree = format(f.as_file(), &p).unwrap();
    f.as_file().write_all_at(&[0x5a], 4096 * 1234 + 17).unwrap();
    let path = f.path().to_str().unwrap();
    let out = Command::new("veritysetup")
        .args([
            "verify",
            &format!("--hash-offset={}", p.hash_offset),
            path,
            path,
            &tree.root_hash_hex(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "veritysetup accepted corrupted data");
}

#[test]
fn refuses_when_the_tree_does_not_fit() {
    let (f, mut p) = sample(3000);
    p.hash_area_bytes = 4096 * 10;
    let e = format(f.as_file(), &p).unwrap_err().to_string();
    assert!(
        e.contains("needs 106496 bytes") && e.contains("40960"),
        "{e}"
    );
}

#[test]
fn levels_for_usr_a() {
    // 260094 blocks: 2032+16+1 blocks in the tree, plus the superblock's = 2050, the rest of 1 GiB.
    assert_eq!(level_sizes(260094), vec![2032, 16, 1]);
}

#[test]
fn reads_back_superblock_and_root_hash() {
    let (f, p) = sample(2000);
    let tree = format(f.as_file(), &p).unwrap();
    assert_eq!(root_hash(f.as_file(), &p).unwrap(), tree.root_hash);
    let sb = read_superblock(f.as_file(), p.hash_offset)
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            sb.data_blocks,
            sb.salt.clone(),
            sb.algorithm.as_str(),
            sb.hash_type
        ),
        (2000, p.salt.clone(), "sha256", 1)
    );
    assert_eq!(read_superblock(f.as_file(), 0).unwrap(), None);
}

/// Record `blocks` of `f` the way a writer shows them: non-zero runs only, from two threads,
/// out of order, the last piece of a run ending in a partial block.
fn record_from_file(f: &File, p: &VerityParams) -> DataDigests {
    let d = DataDigests::new(&p.salt, p.data_blocks);
    let bs = VERITY_BLOCK_SIZE as usize;
    let mut runs: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut block = vec![0u8; bs];
    for b in 0..p.data_blocks {
        f.read_exact_at(&mut block, p.data_offset + b * VERITY_BLOCK_SIZE)
            .unwrap();
        if block.iter().all(|&x| x == 0) {
            continue;
        }
        // Trailing zeros of a block may be left off, as for a file's last block.
        let used = block.iter().rposition(|&x| x != 0).unwrap() + 1;
        match runs.last_mut() {
            Some((first, data))
                if *first + (data.len() / bs) as u64 == b && data.len() % bs == 0 =>
            {
                data.extend_from_slice(&block[..used])
            }
            _ => runs.push((b, block[..used].to_vec())),
        }
    }
    runs.reverse();
    let (a, b) = runs.split_at(runs.len() / 2);
    std::thread::scope(|s| {
        for half in [a, b] {
            let d = &d;
            s.spawn(move || half.iter().for_each(|(first, data)| d.record(*first, data)));
        }
    });
    d
}

#[test]
fn digests_recorded_while_writing_give_the_same_tree_as_reading_back() {
    // One hash block (no level above level 0), two levels, three levels.
    for blocks in [100u64, 1000, 16384 + 5] {
        let (read_back, p) = sample(blocks);
        let expected = format(read_back.as_file(), &p).unwrap();
        let (recorded, _) = sample(blocks);
        let d = record_from_file(recorded.as_file(), &p);
        let tree = format_from_digests(recorded.as_file(), &p, d).unwrap();
        assert_eq!(tree, expected);
        assert!(
            std::fs::read(read_back.path()).unwrap() == std::fs::read(recorded.path()).unwrap(),
            "{blocks} blocks: the hash areas differ"
        );
    }
    let (f, p) = sample(100);
    let e = format_from_digests(f.as_file(), &p, DataDigests::new(&p.salt, 99))
        .unwrap_err()
        .to_string();
    assert!(e.contains("99 blocks"), "{e}");
}

#[test]
fn root_hash_from_the_tree_on_disk() {
    for blocks in [100u64, 20000] {
        let (f, p) = sample(blocks);
        let tree = format(f.as_file(), &p).unwrap();
        let (sb, root) = root_hash_of_tree(f.as_file(), p.hash_offset).unwrap();
        assert_eq!(root, tree.root_hash, "{blocks} blocks");
        assert_eq!(sb.data_blocks, blocks);
        // A changed top block changes the hash; no superblock is an error.
        f.as_file()
            .write_all_at(&[0xee], p.hash_offset + VERITY_BLOCK_SIZE + 7)
            .unwrap();
        assert_ne!(
            root_hash_of_tree(f.as_file(), p.hash_offset).unwrap().1,
            root
        );
        let e = root_hash_of_tree(f.as_file(), 0).unwrap_err().to_string();
        assert!(e.contains("no dm-verity superblock at byte 0"), "{e}");
    }
}
