//! Round trips through libbzip2's decoder (the `bzip2` crate), which checks every block CRC,
//! the stream CRC and the format's limits.

use super::*;
use proptest::prelude::*;
use std::io::Read;

fn decode(z: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    bzip2::read::BzDecoder::new(z)
        .read_to_end(&mut out)
        .expect("libbzip2 reads the stream");
    out
}

fn round_trip(data: &[u8]) -> Vec<u8> {
    let z = compress(data);
    assert_eq!(&z[..4], b"BZh9");
    assert_eq!(decode(&z), data, "{} bytes", data.len());
    z
}

/// A deterministic pseudo-random byte source (xorshift).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn empty_input_is_the_empty_stream() {
    let z = round_trip(b"");
    // Header, end magic, CRC 0.
    assert_eq!(
        z,
        [b'B', b'Z', b'h', b'9', 0x17, 0x72, 0x45, 0x38, 0x50, 0x90, 0, 0, 0, 0]
    );
}

#[test]
fn small_and_periodic_inputs() {
    for d in [
        &b"a"[..],
        b"ab",
        b"abab",
        b"aaaa",
        b"aaaaa",
        b"banana",
        b"mississippi",
        &[0u8; 4][..],
        &[255u8; 1000][..],
    ] {
        round_trip(d);
    }
    let abc: Vec<u8> = b"abc".iter().copied().cycle().take(3_000_000).collect();
    round_trip(&abc);
}

#[test]
fn multi_block_inputs_of_every_kind() {
    // Zeros: runs coded 255 at a time, about 46 MB per block.
    round_trip(&vec![0u8; 100_000_000]);
    // Incompressible: the blocks are full after run-length coding.
    round_trip(&noise(3_000_000, 7));
    // Text-like: a small alphabet with structure.
    let text: Vec<u8> = noise(2_500_000, 3)
        .iter()
        .map(|b| b"etaoin shrdlu\n"[(*b % 14) as usize])
        .collect();
    let z = round_trip(&text);
    assert!(z.len() < text.len() / 2);
    // Runs that straddle the block's fill mark.
    let mut runs = Vec::new();
    for i in 0..400_000u32 {
        runs.extend(std::iter::repeat_n(i as u8, (i % 9) as usize + 1));
    }
    round_trip(&runs);
}

#[test]
fn sizes_within_a_percent_of_libbzip2() {
    // A mix of machine code-like noise, text and zeros, as an image holds.
    let mut data = noise(1_500_000, 11);
    data.extend(
        noise(1_500_000, 5)
            .iter()
            .map(|b| b"the quick brown fox\n"[(*b % 20) as usize]),
    );
    data.extend(vec![0u8; 500_000]);
    for (i, b) in data.iter_mut().enumerate().skip(100_000).step_by(3) {
        *b = (i / 1000) as u8;
    }
    let ours = round_trip(&data).len();
    let mut theirs = Vec::new();
    bzip2::read::BzEncoder::new(&data[..], bzip2::Compression::best())
        .read_to_end(&mut theirs)
        .unwrap();
    let ratio = ours as f64 / theirs.len() as f64;
    assert!(
        ratio < 1.01,
        "ours {ours} B, libbzip2 {} B: {ratio}",
        theirs.len()
    );
}

#[test]
fn an_encoder_reused_gives_the_same_bytes() {
    let mut e = Encoder::new();
    let a = noise(1_000_000, 9);
    let b: Vec<u8> = (0..2_000_000u32).map(|i| (i / 7) as u8).collect();
    let first = e.compress(&a);
    let _ = e.compress(&b);
    assert_eq!(e.compress(&a), first);
    assert_eq!(compress(&b), e.compress(&b));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn any_input_round_trips(data in proptest::collection::vec(0u8..4, 0..5000)) {
        prop_assert_eq!(decode(&compress(&data)), data);
    }

    #[test]
    fn any_bytes_round_trip(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
        prop_assert_eq!(decode(&compress(&data)), data);
    }
}
