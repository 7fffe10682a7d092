//! Length-limited Huffman code lengths and bzip2's canonical codes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The longest code the encoder makes (libbzip2's choice; decoders accept up to 20).
pub const MAX_CODE_LEN: u8 = 17;

/// Code lengths for `freq` into `lens`, each in 1..=`MAX_CODE_LEN`. Unused symbols count as
/// used once (bzip2 gives every symbol of the alphabet a code). Ties go to the shallower
/// subtree, and when the tree is too deep the weights are halved and it is built again.
pub fn code_lengths(freq: &[u32], lens: &mut [u8]) {
    let n = freq.len();
    debug_assert!(n >= 2 && lens.len() == n);
    // Weight in the high bits, subtree depth in the low 8.
    let mut weight: Vec<u64> = freq.iter().map(|&f| u64::from(f.max(1)) << 8).collect();
    let mut parent = vec![usize::MAX; 2 * n];
    let mut node_weight = vec![0u64; 2 * n];
    let mut heap = BinaryHeap::with_capacity(n);
    loop {
        heap.clear();
        for (i, &w) in weight.iter().enumerate() {
            node_weight[i] = w;
            parent[i] = usize::MAX;
            heap.push(Reverse((w, i)));
        }
        let mut next = n;
        while heap.len() > 1 {
            let Reverse((w1, a)) = heap.pop().expect("two nodes");
            let Reverse((w2, b)) = heap.pop().expect("two nodes");
            let depth = 1 + (w1 & 0xff).max(w2 & 0xff);
            let w = ((w1 & !0xff) + (w2 & !0xff)) | depth;
            node_weight[next] = w;
            parent[a] = next;
            parent[b] = next;
            parent[next] = usize::MAX;
            heap.push(Reverse((w, next)));
            next += 1;
        }
        let mut too_long = false;
        for (i, len) in lens.iter_mut().enumerate() {
            let mut depth = 0u32;
            let mut k = i;
            while parent[k] != usize::MAX {
                k = parent[k];
                depth += 1;
            }
            *len = depth.min(255) as u8;
            too_long |= depth > u32::from(MAX_CODE_LEN);
        }
        if !too_long {
            return;
        }
        for w in weight.iter_mut() {
            *w = ((*w >> 8) / 2 + 1) << 8;
        }
    }
}

/// The canonical codes bzip2 decoders rebuild from the lengths: shorter codes first, and
/// symbols in order within a length.
pub fn assign_codes(lens: &[u8], codes: &mut [u32]) {
    let min = *lens.iter().min().expect("an alphabet");
    let max = *lens.iter().max().expect("an alphabet");
    let mut code = 0u32;
    for len in min..=max {
        for (i, &l) in lens.iter().enumerate() {
            if l == len {
                codes[i] = code;
                code += 1;
            }
        }
        code <<= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kraft(lens: &[u8]) -> f64 {
        lens.iter().map(|&l| 0.5f64.powi(i32::from(l))).sum()
    }

    #[test]
    fn skewed_frequencies_are_limited_to_seventeen_bits() {
        // Fibonacci weights make the deepest possible tree.
        let mut freq = vec![1u32, 1];
        while freq.len() < 40 {
            let k = freq.len();
            freq.push(freq[k - 1].saturating_add(freq[k - 2]));
        }
        let mut lens = vec![0u8; freq.len()];
        code_lengths(&freq, &mut lens);
        assert!(lens.iter().all(|&l| (1..=MAX_CODE_LEN).contains(&l)));
        assert!((kraft(&lens) - 1.0).abs() < 1e-9);
    }

    proptest! {
        #[test]
        fn lengths_form_a_complete_prefix_code(freq in proptest::collection::vec(0u32..100_000, 2..258)) {
            let mut lens = vec![0u8; freq.len()];
            code_lengths(&freq, &mut lens);
            prop_assert!(lens.iter().all(|&l| (1..=MAX_CODE_LEN).contains(&l)));
            prop_assert!((kraft(&lens) - 1.0).abs() < 1e-9);
            let mut codes = vec![0u32; freq.len()];
            assign_codes(&lens, &mut codes);
            // No code is a prefix of another.
            for i in 0..lens.len() {
                for j in 0..lens.len() {
                    if i != j && lens[i] <= lens[j] {
                        prop_assert_ne!(codes[j] >> (lens[j] - lens[i]), codes[i]);
                    }
                }
            }
        }
    }
}
