//! bzip2's second stage: the last column move-to-front coded over the bytes the block uses,
//! runs of zeros written as bijective base-2 numbers in RUNA/RUNB, and an end-of-block symbol.

pub const RUNA: u16 = 0;
pub const RUNB: u16 = 1;
/// Symbols: RUNA, RUNB, MTF positions 1..=255, EOB.
pub const MAX_ALPHA: usize = 258;

/// The coded block.
pub struct Symbols {
    pub symbols: Vec<u16>,
    pub freq: [u32; MAX_ALPHA],
    /// RUNA, RUNB, the used bytes less one, EOB.
    pub alpha_size: usize,
    /// Which byte values occur in the block.
    pub in_use: [bool; 256],
}

impl Default for Symbols {
    fn default() -> Self {
        Symbols {
            symbols: Vec::new(),
            freq: [0; MAX_ALPHA],
            alpha_size: 0,
            in_use: [false; 256],
        }
    }
}

impl Symbols {
    fn push(&mut self, s: u16) {
        self.symbols.push(s);
        self.freq[s as usize] += 1;
    }

    /// A run of `zeros` (at least one) MTF zeros.
    fn push_run(&mut self, zeros: u32) {
        let mut z = zeros - 1;
        loop {
            self.push(if z & 1 == 1 { RUNB } else { RUNA });
            if z < 2 {
                break;
            }
            z = (z - 2) / 2;
        }
    }

    /// Codes `last` (the sorted block's last column).
    pub fn encode(&mut self, last: &[u8]) {
        self.symbols.clear();
        self.freq = [0; MAX_ALPHA];
        self.in_use = [false; 256];
        for &b in last {
            self.in_use[b as usize] = true;
        }
        // Each used byte's rank among the used bytes.
        let mut rank = [0u8; 256];
        let mut used = 0usize;
        for (r, _) in rank.iter_mut().zip(&self.in_use).filter(|(_, &u)| u) {
            *r = used as u8;
            used += 1;
        }
        self.alpha_size = used + 2;
        let mut order: [u8; 256] = std::array::from_fn(|i| i as u8);
        let mut zeros = 0u32;
        for &b in last {
            let c = rank[b as usize];
            if order[0] == c {
                zeros += 1;
                continue;
            }
            if zeros > 0 {
                self.push_run(zeros);
                zeros = 0;
            }
            let j = move_to_front(&mut order, c);
            self.push(j as u16 + 1);
        }
        if zeros > 0 {
            self.push_run(zeros);
        }
        self.push(used as u16 + 1);
    }
}

/// Moves `c` (not at the front) to the front of `order`; returns where it was. Most symbols
/// are among the first 16, which are searched and shifted as one 128-bit word.
#[inline]
fn move_to_front(order: &mut [u8; 256], c: u8) -> usize {
    const ONES: u128 = u128::from_le_bytes([1; 16]);
    const HIGHS: u128 = ONES * 0x80;
    let front = u128::from_le_bytes(order[..16].try_into().expect("16 bytes"));
    let x = front ^ (ONES * u128::from(c));
    // The lowest byte of x that is zero (the first match) sets the lowest flagged bit.
    let zero = x.wrapping_sub(ONES) & !x & HIGHS;
    if zero != 0 {
        let j = (zero.trailing_zeros() / 8) as usize;
        let keep = if j == 15 { 0 } else { !0u128 << (8 * (j + 1)) };
        let moved = (front << 8) | u128::from(c);
        order[..16].copy_from_slice(&((moved & !keep) | (front & keep)).to_le_bytes());
        return j;
    }
    let j = 16 + memchr::memchr(c, &order[16..]).expect("every used byte is in the list");
    order.copy_within(0..j, 1);
    order[0] = c;
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of n zeros reads back as n: digits RUNA=1, RUNB=2 times powers of two.
    #[test]
    fn zero_runs_are_bijective_base_two() {
        for n in 1..2000u32 {
            let mut s = Symbols::default();
            s.push_run(n);
            let value: u32 = s
                .symbols
                .iter()
                .enumerate()
                .map(|(i, &d)| (u32::from(d) + 1) << i)
                .sum();
            assert_eq!(value, n);
        }
    }

    #[test]
    fn move_to_front_matches_the_definition() {
        let mut fast: [u8; 256] = std::array::from_fn(|i| i as u8);
        let mut slow: Vec<u8> = fast.to_vec();
        let mut x = 12345u32;
        for _ in 0..100_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            // Mostly near the front, sometimes anywhere.
            let pos = if x.is_multiple_of(5) {
                (x >> 8) % 255 + 1
            } else {
                (x >> 8) % 20 + 1
            } as usize;
            let c = slow[pos];
            let j = move_to_front(&mut fast, c);
            assert_eq!(j, pos);
            slow.remove(pos);
            slow.insert(0, c);
            assert_eq!(&fast[..], &slow[..]);
        }
    }

    #[test]
    fn codes_positions_and_ends_with_eob() {
        let mut s = Symbols::default();
        s.encode(b"bbaab");
        // Used: a(0), b(1). Order [a,b]: b at 1 -> sym 2; b at 0 -> run; a at 1 -> run(1)=RUNA,
        // sym 2; a -> run; b at 1 -> RUNA, sym 2; EOB = 3.
        assert_eq!(s.symbols, vec![2, RUNA, 2, RUNA, 2, 3]);
        assert_eq!(s.alpha_size, 4);
        assert_eq!(s.freq[2], 3);
    }
}
