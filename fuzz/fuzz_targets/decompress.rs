//! The whole decompression stage as an install runs it (format sniffed by magic; gzip members,
//! xz streams, zstd and skippable frames, bzip2 streams; trailing data refused): any bytes end
//! in an image or an error, never a panic, a hang or unbounded memory.
#![no_main]
use coreos_install::decompress::decompress_all;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decompress_all(
        std::io::Cursor::new(data.to_vec()),
        "fuzz",
        64 << 20,
        |_| {},
    );
});
