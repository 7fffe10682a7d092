//! A user's layout file: any text gives a validated layout or an error naming the problem.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(layout) = disk::layout::Layout::from_toml("fuzz", text, "fuzz.toml") {
            let _ = layout.disk_bytes();
        }
    }
});
