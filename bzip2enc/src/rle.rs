//! bzip2's first stage: runs of 4 to 255 equal bytes become the 4 bytes and a count, and the
//! input is cut into blocks that fit the level-9 block (900,000 bytes after this stage).

/// libbzip2's limit for level 9 (`100000 * 9 - 19`): a block is filled while shorter than
/// this, and the last run adds at most 5 bytes, so no block exceeds 900,000.
pub const BLOCK_FILL: usize = 100_000 * 9 - 19;

/// Run-length codes the front of `input` into `block` (cleared first) until the block is
/// full; returns how many input bytes it holds.
pub fn fill_block(input: &[u8], block: &mut Vec<u8>) -> usize {
    block.clear();
    let mut i = 0;
    while i < input.len() && block.len() < BLOCK_FILL {
        // Bytes before the next four equal ones go in as they are, up to the fill mark.
        let end = input.len().min(i + (BLOCK_FILL - block.len()));
        let literal = run_of_four(&input[i..end]).unwrap_or(end - i);
        block.extend_from_slice(&input[i..i + literal]);
        i += literal;
        if i == end {
            continue;
        }
        let b = input[i];
        let limit = (input.len() - i).min(255);
        let mut run = 4;
        while run < limit && input[i + run] == b {
            run += 1;
        }
        block.extend_from_slice(&[b, b, b, b, (run - 4) as u8]);
        i += run;
    }
    i
}

/// Where the first four equal bytes in a row start in `s`, if anywhere.
fn run_of_four(s: &[u8]) -> Option<usize> {
    s.windows(4)
        .position(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]) == u32::from(w[0]) * 0x0101_0101)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_four_to_255_become_four_bytes_and_a_count() {
        let mut block = Vec::new();
        let mut input = vec![7u8; 3];
        input.extend([1; 4]);
        input.extend([2; 259]);
        assert_eq!(fill_block(&input, &mut block), input.len());
        let mut expect = vec![7, 7, 7, 1, 1, 1, 1, 0, 2, 2, 2, 2, 251];
        expect.extend([2, 2, 2, 2, 0]);
        assert_eq!(block, expect);
    }

    #[test]
    fn a_block_stops_at_the_level_nine_size() {
        let input: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut block = Vec::new();
        let used = fill_block(&input, &mut block);
        assert_eq!(used, BLOCK_FILL);
        assert_eq!(block, input[..used]);
        // Runs: at most 5 bytes past the fill mark.
        let zeros = vec![0u8; 100_000_000];
        let used = fill_block(&zeros, &mut block);
        assert!(block.len() <= 900_000 && block.len() >= BLOCK_FILL);
        assert_eq!(undo(&block), zeros[..used]);
    }

    /// What a decoder does: after four equal bytes, the next is a count of more.
    fn undo(block: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut same = 0;
        let mut it = block.iter();
        while let Some(&b) = it.next() {
            same = if out.last() == Some(&b) { same + 1 } else { 1 };
            out.push(b);
            if same == 4 {
                let n = *it.next().expect("a count after four equal bytes");
                out.extend(std::iter::repeat_n(b, n as usize));
                same = 0;
            }
        }
        out
    }

    #[test]
    fn any_input_comes_back() {
        let mut x = 1u32;
        for len in [1usize, 3, 4, 5, 254, 255, 256, 259, 260, 1000, 2_000_000] {
            // Runs of every length 1..=300 over a few byte values.
            let mut input = Vec::new();
            while input.len() < len {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let run = (x >> 16) as usize % 300 + 1;
                input.extend(std::iter::repeat_n((x >> 8) as u8 % 3, run));
            }
            input.truncate(len);
            let mut block = Vec::new();
            let mut at = 0;
            while at < input.len() {
                let used = fill_block(&input[at..], &mut block);
                assert!(block.len() <= 900_000);
                assert_eq!(undo(&block), input[at..at + used]);
                at += used;
            }
        }
    }
}
