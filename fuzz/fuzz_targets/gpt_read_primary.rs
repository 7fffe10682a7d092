//! The installer reads the image's GPT from its first MiB as it streams in, before anything
//! verified it: any bytes must give a layout or an error, never a panic or an overflow.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(layout) = disk::gpt::read_primary(data) {
        let _ = layout.disk_bytes();
        for p in &layout.partitions {
            let _ = (p.offset(), p.bytes(), p.last_lba());
        }
    }
});
