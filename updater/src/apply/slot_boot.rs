//! What GRUB needs to boot a slot just written, taken from the written partition itself: the
//! dm-verity root hash from its tree (the veritysetup superblock after the filesystem's
//! blocks, and the top hash block after it; the whole partition was checked against the
//! signed payload, so the tree is the signed one), the version from its release file, and
//! its initrd (`/boot/initrd`), all read without mounting.

use anyhow::{anyhow, bail, Context, Result};
use disk::slots::esp_files::SlotConfig;
use disk::slots::{Slot, UsrPartition};
use ext4::ondisk::superblock::{Superblock, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE};
use std::fs::File;
use std::os::unix::fs::FileExt;

const INITRD: &str = "/boot/initrd";

pub struct SlotBoot {
    pub config: SlotConfig,
    pub initrd: Option<Vec<u8>>,
}

pub fn from_partition(
    dev: &File,
    part: &UsrPartition,
    slot: Slot,
    version: &str,
) -> Result<SlotBoot> {
    let what = format!("{slot} (partition {})", part.number);
    let mut raw = vec![0u8; SUPERBLOCK_SIZE];
    dev.read_exact_at(&mut raw, part.offset() + SUPERBLOCK_OFFSET)
        .with_context(|| format!("reading the filesystem superblock of {what}"))?;
    let sb = Superblock::decode(&raw)
        .ok_or_else(|| anyhow!("{what} holds no ext2/ext4 filesystem after writing"))?;
    if sb.block_size() != disk::verity::VERITY_BLOCK_SIZE {
        bail!(
            "{what}: {}-byte filesystem blocks; dm-verity here needs 4096",
            sb.block_size()
        );
    }
    let hash_offset = part.offset() + sb.blocks_count * sb.block_size();
    let (vsb, root) = disk::verity::root_hash_of_tree(dev, hash_offset).with_context(|| {
        format!(
            "{what}: the dm-verity tree after its {} filesystem blocks",
            sb.blocks_count
        )
    })?;
    if vsb.data_blocks != sb.blocks_count {
        bail!(
            "{what}: the dm-verity superblock covers {} blocks, the filesystem has {}",
            vsb.data_blocks,
            sb.blocks_count
        );
    }
    let release = crate::release_info::read(dev, part)
        .and_then(|r| r.version)
        .ok_or_else(|| anyhow!("{what}: no COREOS_RELEASE_VERSION in /share/coreos/release"))?;
    if release != version {
        bail!("{what} holds version {release}, but the payload says {version}");
    }
    let initrd = ext4::edit::read_file(dev, part.offset(), part.bytes(), INITRD)
        .with_context(|| format!("reading {INITRD} of {what}"))?;
    let config = SlotConfig {
        slot,
        partuuid: part.part_guid,
        root_hash: disk::verity::hex(&root),
        data_blocks: sb.blocks_count,
        salt: disk::verity::hex(&vsb.salt),
        version: release,
    };
    config.check()?;
    Ok(SlotBoot { config, initrd })
}
