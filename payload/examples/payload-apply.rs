//! For `ci/bench.d/payload.sh`: verify a payload, then apply it onto a device or file, and
//! print each pass's time. Not a product (the updater is `coreos-update`).
//!
//! usage: payload-apply PAYLOAD PUBKEY.pem DST [OFFSET]

use std::fs::{File, OpenOptions};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        return Err("usage: payload-apply PAYLOAD PUBKEY.pem DST [OFFSET]".into());
    }
    let key = payload::PayloadPublicKey::from_file(args[2].as_ref())?;
    let offset: u64 = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let t = Instant::now();
    let verified = payload::verify(File::open(&args[1])?, &key)?;
    let verify_s = t.elapsed().as_secs_f64();
    let dst = OpenOptions::new().read(true).write(true).open(&args[3])?;
    let t = Instant::now();
    payload::apply(File::open(&args[1])?, &verified, &dst, offset, &mut |_| {})?;
    let apply_s = t.elapsed().as_secs_f64();
    println!(
        "verify {verify_s:.3} s, apply {apply_s:.3} s ({} MiB partition, {} MiB payload)",
        verified.info().partition_size >> 20,
        verified.info().payload_len >> 20
    );
    Ok(())
}
