//! A most-significant-bit-first bit writer, as bzip2 packs its fields.

pub struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    /// Bits held in `acc` that are not yet in `out` (fewer than 32 between calls).
    pending: u32,
}

impl<'a> BitWriter<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            pending: 0,
        }
    }

    /// Appends the low `n` bits of `value` (`n` at most 32).
    #[inline]
    pub fn write(&mut self, n: u32, value: u32) {
        debug_assert!(n <= 32 && (n == 32 || value >> n == 0));
        self.acc = (self.acc << n) | u64::from(value);
        self.pending += n;
        if self.pending >= 32 {
            self.pending -= 32;
            self.out
                .extend_from_slice(&((self.acc >> self.pending) as u32).to_be_bytes());
        }
    }

    /// Writes what is pending, the last byte padded with zero bits.
    pub fn finish(mut self) {
        while self.pending >= 8 {
            self.pending -= 8;
            self.out.push((self.acc >> self.pending) as u8);
        }
        if self.pending > 0 {
            self.out.push((self.acc << (8 - self.pending)) as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_most_significant_bit_first_and_pads_with_zeros() {
        let mut out = Vec::new();
        let mut w = BitWriter::new(&mut out);
        w.write(3, 0b101);
        w.write(32, 0xdead_beef);
        w.write(6, 0b111111);
        w.finish();
        // 101 + deadbeef + 111111, 41 bits, padded to 48.
        let bits: u64 = (0b101u64 << 38) | (0xdead_beefu64 << 6) | 0b111111;
        let expect = (bits << 7).to_be_bytes();
        assert_eq!(out, expect[2..]);
    }
}
