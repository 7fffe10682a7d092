//! All-zero data: most of a USR partition (free blocks), so it is detected, hashed and
//! written without being compressed or decoded again and again.

use sha2::{Digest, Sha256};

/// A source of zeros for hashing and writing.
pub static ZEROS: [u8; 1 << 16] = [0; 1 << 16];

pub fn is_zero(data: &[u8]) -> bool {
    let mut words = data.chunks_exact(16);
    words.all(|w| u128::from_ne_bytes(w.try_into().expect("16 bytes")) == 0)
        && words.remainder().iter().all(|&b| b == 0)
}

/// Feed `n` zero bytes to `h`.
pub fn hash_zeros(h: &mut Sha256, mut n: u64) {
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        h.update(&ZEROS[..k]);
        n -= k as u64;
    }
}
