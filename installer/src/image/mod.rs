//! Putting the decompressed image on the target: the hold-back writer, zero ranges, and the
//! GPT facts the installer needs (image size, partitions, moving the backup header).

pub mod gpt_header;
pub mod holdback;
pub mod zero;

pub use holdback::HoldBackWriter;
