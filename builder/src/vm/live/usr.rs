//! The live USR as the initramfs receives it: a newc cpio archive holding one file, `usr.img`,
//! which is the image's USR-A filesystem cut to its used blocks, followed by a dm-verity hash
//! area (veritysetup superblock and tree) at `data blocks × 4096`, the layout USR-A has in its
//! partition. The archive is written straight into the artifact (the ISO, or the PXE file's
//! temporary), so the filesystem is copied once, in the kernel.

use disk::layout::Partition;
use disk::verity::{self, VerityParams, VerityTree, VERITY_BLOCK_SIZE};
use ext4::shrink::ShrinkPlan;
use liveboot::cpio::{self, Member};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// The file's name in the initramfs, where the live init looks for it.
pub const USR_IMAGE_NAME: &str = "usr.img";

pub struct UsrArchive {
    shrink: ShrinkPlan,
    /// USR-A's byte offset in the production image.
    usr_offset: u64,
    salt: Vec<u8>,
    header: Vec<u8>,
    hash_bytes: u64,
}

impl UsrArchive {
    /// Plan the archive for the USR-A partition `usr` of `image`.
    pub fn plan(image: &File, usr: &Partition, version: &str) -> anyhow::Result<UsrArchive> {
        let shrink = ShrinkPlan::new(image, usr.offset(), usr.bytes())?;
        if shrink.block_size != VERITY_BLOCK_SIZE {
            anyhow::bail!(
                "USR-A has {}-byte blocks; the live USR's dm-verity tree needs {VERITY_BLOCK_SIZE}",
                shrink.block_size
            );
        }
        let hash_bytes = verity::hash_area_bytes(shrink.blocks);
        // Its own salt: the live image is not USR-A, and must not share its hashes.
        let salt = verity::salt_for(&format!("{version} live"));
        let mtime = u32::try_from(disk::epoch::build_time()?).unwrap_or(u32::MAX);
        let header =
            Member::file(USR_IMAGE_NAME, 1, 0o444, mtime, shrink.bytes() + hash_bytes).header()?;
        Ok(UsrArchive {
            shrink,
            usr_offset: usr.offset(),
            salt,
            header,
            hash_bytes,
        })
    }

    /// Filesystem blocks dm-verity covers.
    pub fn data_blocks(&self) -> u64 {
        self.shrink.blocks
    }

    pub fn salt_hex(&self) -> String {
        verity::hex(&self.salt)
    }

    /// Bytes of `usr.img`.
    pub fn image_bytes(&self) -> u64 {
        self.shrink.bytes() + self.hash_bytes
    }

    /// Bytes of the whole archive.
    pub fn len(&self) -> u64 {
        let data = self.image_bytes();
        self.header.len() as u64
            + data
            + cpio::data_padding(data) as u64
            + cpio::trailer().len() as u64
    }

    /// Write the archive at byte `at` of `out` (zeros there, as in a new or sparse file);
    /// returns the verity tree, whose root hash the kernel command line must carry.
    pub fn write(&self, image: &File, out: &File, at: u64) -> anyhow::Result<VerityTree> {
        out.write_all_at(&self.header, at)?;
        let fs_at = at + self.header.len() as u64;
        self.shrink.write(image, self.usr_offset, out, fs_at)?;
        let tree = verity::format(
            out,
            &VerityParams {
                data_offset: fs_at,
                data_blocks: self.shrink.blocks,
                hash_offset: fs_at + self.shrink.bytes(),
                hash_area_bytes: self.hash_bytes,
                salt: self.salt.clone(),
                uuid: verity::uuid_for(&self.salt),
            },
        )?;
        let end = fs_at + self.image_bytes();
        out.write_all_at(
            &cpio::trailer(),
            end + cpio::data_padding(self.image_bytes()) as u64,
        )?;
        Ok(tree)
    }
}
