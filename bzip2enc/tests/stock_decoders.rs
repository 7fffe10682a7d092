//! The stock decompressors read what the encoder makes: bzip2, lbzip2 (its own decoder, which
//! splits blocks and checks them in parallel) and pbzip2, each testing and decoding it.
//! `ci/install-deps` installs all three.

use std::io::Write;
use std::process::{Command, Stdio};

/// Several blocks of what images hold: noise like machine code, text, runs, zeros.
fn mixed() -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut data = Vec::new();
    for i in 0..3_000_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.push(match (i / 250_000) % 4 {
            0 => x as u8,
            1 => b"usr/lib/modules \n"[(x % 17) as usize],
            2 => (i / 300) as u8,
            _ => 0,
        });
    }
    data
}

fn run(tool: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool} is needed (ci/install-deps installs it): {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("waiting");
    writer.join().expect("writer").expect("writing the stream");
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn bzip2_lbzip2_and_pbzip2_test_and_decode_the_streams() {
    let data = mixed();
    let one = bzip2enc::compress(&data);
    // Two streams back to back, as release splices them.
    let mut two = bzip2enc::compress(&data[..1_000_000]);
    two.extend(bzip2enc::compress(&data[1_000_000..]));
    for tool in ["bzip2", "lbzip2", "pbzip2"] {
        for z in [&one, &two] {
            run(tool, &["-t"], z);
            assert!(
                run(tool, &["-dc"], z) == data,
                "{tool} -dc gives other bytes"
            );
        }
    }
}
