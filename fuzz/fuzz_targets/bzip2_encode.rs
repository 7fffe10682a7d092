//! The bzip2 encoder (`bzip2enc`) against the reference decoder: whatever the input, the stream
//! it makes must decode with libbzip2 (the `bzip2` crate, which checks every CRC and limit) to
//! the same bytes. The first byte picks how the rest is read: as is, or as (byte, count) pairs
//! that expand to runs and repeats (periodic blocks and run-length edges, which raw fuzz input
//! rarely reaches).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Read;

/// Expanded inputs stop here (bounded time and memory per input).
const LIMIT: usize = 4 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let input: Vec<u8> = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let mut v = Vec::new();
        for pair in rest.chunks_exact(2) {
            // Counts up to 255 × 64: runs past the 255-byte run limit and block edges.
            let n = (pair[1] as usize + 1) * if mode & 2 == 0 { 1 } else { 64 };
            v.extend(std::iter::repeat_n(pair[0], n.min(LIMIT - v.len())));
            if v.len() == LIMIT {
                break;
            }
        }
        if mode & 4 != 0 {
            // The whole thing repeated: a periodic block.
            let unit = v.clone();
            while !unit.is_empty() && v.len() + unit.len() <= LIMIT / 4 {
                v.extend_from_slice(&unit);
            }
        }
        v
    };
    let z = bzip2enc::compress(&input);
    let mut back = Vec::new();
    bzip2::read::BzDecoder::new(&z[..])
        .read_to_end(&mut back)
        .expect("libbzip2 reads every stream bzip2enc makes");
    assert!(back == input, "round trip of {} bytes differs", input.len());
});
