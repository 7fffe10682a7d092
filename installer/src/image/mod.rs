//! Putting the decompressed image on the target: the hold-back writer and zero ranges. The GPT
//! facts the installer needs (image size, partitions, moving the backup header) are
//! `disk::gpt`'s.

pub mod holdback;
pub mod zero;

pub use holdback::HoldBackWriter;
