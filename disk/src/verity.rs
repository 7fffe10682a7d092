//! dm-verity hash trees (sha256, 4096-byte blocks) with a veritysetup-compatible superblock.
