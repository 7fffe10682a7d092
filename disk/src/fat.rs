//! The EFI system partition: a FAT filesystem (the `fatfs` crate) written at a byte range.
