//! The block sort: bzip2 orders the block's cyclic rotations. A suffix array orders suffixes,
//! which differ from rotations only where one suffix is a prefix of another. Starting the
//! block at its least rotation removes that difference: that rotation is a Lyndon word (or a
//! power of one), and a Lyndon word's suffixes sort as its rotations do. So the sort is
//! libsais's linear-time suffix array of the rotated block, and the result is the same
//! last column libbzip2's sort gives (for a periodic block, one whose equal rotations any
//! bzip2 decoder reads the same way).

/// The index where the lexicographically least rotation of a block starts (the smallest such
/// index when rotations repeat), given the block twice over. Linear: the two candidates and
/// the match length only grow; matches are measured eight bytes at a time.
fn least_rotation(doubled: &[u8]) -> usize {
    let n = doubled.len() / 2;
    let (mut i, mut j) = (0usize, 1usize);
    while i < n && j < n {
        // Most candidates differ at once; only a match is measured eight bytes at a time.
        let k = if doubled[i] != doubled[j] {
            0
        } else {
            common_prefix(&doubled[i..i + n], &doubled[j..j + n])
        };
        if k == n {
            break;
        }
        if doubled[i + k] > doubled[j + k] {
            i += k + 1;
        } else {
            j += k + 1;
        }
        if i == j {
            j += 1;
        }
    }
    i.min(j)
}

/// The length of the common prefix of two equally long slices.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let mut k = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let d = u64::from_le_bytes(x.try_into().expect("8 bytes"))
            ^ u64::from_le_bytes(y.try_into().expect("8 bytes"));
        if d != 0 {
            return k + (d.trailing_zeros() / 8) as usize;
        }
        k += 8;
    }
    k + a[k..]
        .iter()
        .zip(&b[k..])
        .take_while(|(x, y)| x == y)
        .count()
}

/// Room libsais may use beyond the suffix array (its `fs`), for speed.
const SPARE: usize = 8192;

/// Buffers reused from block to block.
#[derive(Default)]
pub struct Sorter {
    /// The block twice over: every rotation is a slice of it.
    doubled: Vec<u8>,
    suffixes: Vec<i32>,
}

impl Sorter {
    /// The last column of `block`'s sorted rotations into `last`, and the row of the
    /// unrotated block (bzip2's `origPtr`).
    pub fn sort(&mut self, block: &[u8], last: &mut Vec<u8>) -> u32 {
        let n = block.len();
        assert!(
            n > 0 && n < i32::MAX as usize,
            "a bzip2 block holds 1..=900000 bytes"
        );
        self.doubled.clear();
        self.doubled.extend_from_slice(block);
        self.doubled.extend_from_slice(block);
        let start = least_rotation(&self.doubled);
        let rotated = &self.doubled[start..start + n];
        // Sized once, never refilled; what exceeds n is libsais's spare room.
        if self.suffixes.len() < n + SPARE {
            self.suffixes.resize(n.max(900_000) + SPARE, 0);
        }
        libsais::SuffixArrayConstruction::for_text(rotated)
            .in_borrowed_buffer(&mut self.suffixes[..])
            .single_threaded()
            .run()
            .expect("libsais sorts any byte string shorter than 2 GiB");
        // The unrotated block is the rotation that starts at n - start of the rotated one.
        let original = ((n - start) % n) as i32;
        let mut row = 0;
        last.clear();
        last.extend(self.suffixes[..n].iter().enumerate().map(|(r, &p)| {
            if p == original {
                row = r;
            }
            let before = if p == 0 { n - 1 } else { p as usize - 1 };
            rotated[before]
        }));
        row as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition: sort every rotation (stably, so equal rotations keep index order).
    fn naive(block: &[u8]) -> (Vec<u8>, u32) {
        let n = block.len();
        let mut rows: Vec<usize> = (0..n).collect();
        rows.sort_by(|&a, &b| {
            let ra = block[a..].iter().chain(&block[..a]);
            let rb = block[b..].iter().chain(&block[..b]);
            ra.cmp(rb)
        });
        let last = rows.iter().map(|&r| block[(r + n - 1) % n]).collect();
        let orig = rows.iter().position(|&r| r == 0).unwrap() as u32;
        (last, orig)
    }

    /// What a bzip2 decoder does with the last column: follow the rows from `orig`.
    fn inverse(last: &[u8], orig: u32) -> Vec<u8> {
        let mut counts = [0usize; 256];
        for &b in last {
            counts[b as usize] += 1;
        }
        let mut start = [0usize; 256];
        let mut sum = 0;
        for c in 0..256 {
            start[c] = sum;
            sum += counts[c];
        }
        let mut next = vec![0usize; last.len()];
        for (i, &b) in last.iter().enumerate() {
            next[start[b as usize]] = i;
            start[b as usize] += 1;
        }
        let mut out = Vec::with_capacity(last.len());
        let mut p = next[orig as usize];
        for _ in 0..last.len() {
            out.push(last[p]);
            p = next[p];
        }
        out
    }

    #[test]
    fn least_rotation_of_known_strings() {
        let least = |s: &[u8]| least_rotation(&[s, s].concat());
        assert_eq!(least(b"a"), 0);
        assert_eq!(least(b"bca"), 2);
        assert_eq!(least(b"abab"), 0);
        assert_eq!(least(b"babab"), 1);
        assert_eq!(least(b"zzzzaz"), 4);
        assert_eq!(least(b"cabcab"), 1);
        assert_eq!(least(b"bbbbbbbbbbbbbbbbbbbbbbbbbbba"), 27);
        assert_eq!(least(b"bbbbbbbbbbabbbbbbbbbbbbbbbbba"), 28);
    }

    fn check(block: &[u8]) {
        let mut s = Sorter::default();
        let mut last = Vec::new();
        let orig = s.sort(block, &mut last);
        let (want_last, want_orig) = naive(block);
        assert_eq!(last, want_last, "last column of {block:?}");
        assert_eq!(inverse(&last, orig), block, "decoding {block:?}");
        // Only a periodic block has equal rotations, whose rows may be ordered otherwise.
        let n = block.len();
        let periodic = (1..n).any(|d| n.is_multiple_of(d) && block[d..] == block[..n - d]);
        if !periodic {
            assert_eq!(orig, want_orig, "row of {block:?}");
        }
    }

    #[test]
    fn periodic_and_tricky_blocks() {
        for b in [
            &b"a"[..],
            b"ab",
            b"ba",
            b"abab",
            b"baba",
            b"aaaa",
            b"banana",
            b"abracadabra",
            b"mississippi",
            b"abcabcabc",
            b"cabcabcab",
            b"aab",
            b"aba",
            b"baa",
        ] {
            check(b);
        }
    }

    proptest! {
        #[test]
        fn equals_the_sorted_rotations(block in proptest::collection::vec(0u8..3, 1..200)) {
            check(&block);
        }

        #[test]
        fn equals_the_sorted_rotations_of_repeated_words(
            word in proptest::collection::vec(0u8..3, 1..8), times in 1usize..10, shift in 0usize..8
        ) {
            let mut block: Vec<u8> = word.iter().copied().cycle().take(word.len() * times).collect();
            let s = shift % block.len();
            block.rotate_left(s);
            check(&block);
        }
    }
}
