//! The writer's observed blocks feed dm-verity (`disk::verity::DataDigests`): the tree they
//! give must equal one computed by reading the filesystem back, whether the data went through
//! the page cache or around it (`DataWrites::Direct`), and both ways write the same bytes.

#[test]
fn ext4_writer_observed_blocks_give_the_same_tree_as_reading_back() {
    use crate::{write_tree_observed, DataWrites, Ext4Params, ExtraFile, Flavor, XattrPolicy};
    use disk::verity::{
        format_from_digests, root_hash, salt_for, uuid_for, DataDigests, VerityParams,
        VERITY_BLOCK_SIZE,
    };
    use std::os::unix::fs::FileExt;
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("odd"), vec![7u8; 4096 * 3 + 5]).unwrap();
    let sparse = std::fs::File::create(src.path().join("sparse")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    sparse.write_all_at(b"middle", 4 << 20).unwrap();
    // Many small files (adjacent blocks, gathered into one direct write) and one larger than
    // a direct write's buffer.
    for i in 0..300u32 {
        let len = (i as usize * 37) % 9000 + 1;
        std::fs::write(
            src.path().join(format!("small{i}")),
            vec![(i % 250) as u8 + 1; len],
        )
        .unwrap();
    }
    let big: Vec<u8> = (0..(9u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(src.path().join("big"), &big).unwrap();
    let blocks = 16384u64;
    let prm = Ext4Params {
        size: blocks * VERITY_BLOCK_SIZE,
        label: "USR-A".into(),
        uuid: [3; 16],
        timestamp: 1_700_000_000,
        flavor: Flavor::Ext2Compat,
        read_only_marker: true,
        inode_size: 128,
        bytes_per_inode: 4096,
        all_root: false,
        overrides: Vec::new(),
        xattrs: XattrPolicy::KeepAll,
        extra_files: vec![ExtraFile {
            path: "share/release".into(),
            data: b"VERSION=1\n".to_vec(),
            perm: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
        }],
    };
    let salt = salt_for("9.9.9");
    let offset = 1 << 20;
    let p = VerityParams {
        data_offset: offset,
        data_blocks: blocks,
        hash_offset: offset + blocks * VERITY_BLOCK_SIZE,
        hash_area_bytes: 1 << 20,
        uuid: uuid_for(&salt),
        salt,
    };
    let mut images = Vec::new();
    for data in [DataWrites::Cached, DataWrites::Direct] {
        let f = tempfile::tempfile().unwrap();
        f.set_len(offset + blocks * VERITY_BLOCK_SIZE + (1 << 20))
            .unwrap();
        // Old content under the filesystem must not leak into the digests.
        f.write_all_at(&[0xaa; 65536], offset + 100 * VERITY_BLOCK_SIZE)
            .unwrap();
        let d = DataDigests::new(&p.salt, p.data_blocks);
        write_tree_observed(
            Some(src.path()),
            &f,
            offset,
            &prm,
            &|b, data| d.record(b, data),
            data,
        )
        .unwrap();
        let recorded = format_from_digests(&f, &p, d).unwrap();
        assert_eq!(root_hash(&f, &p).unwrap(), recorded.root_hash, "{data:?}");
        let mut bytes = vec![0u8; (blocks * VERITY_BLOCK_SIZE) as usize];
        f.read_exact_at(&mut bytes, offset).unwrap();
        images.push(bytes);
    }
    assert!(
        images[0] == images[1],
        "direct writes gave other bytes than cached ones"
    );
}
