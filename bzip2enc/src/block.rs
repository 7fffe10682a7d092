//! bzip2's third stage: the symbols Huffman coded with 2 to 6 tables, a table chosen per 50
//! symbols, the tables refined over four passes (as libbzip2 does, so sizes match its own).

use crate::bits::BitWriter;
use crate::huffman::{assign_codes, code_lengths};
use crate::mtf::{Symbols, MAX_ALPHA};

const GROUP: usize = 50;
const MAX_TABLES: usize = 6;
const PASSES: usize = 4;
/// Lanes of a packed cost: six 10-bit sums (50 symbols × 17 bits < 1024).
const LANE: u32 = 10;

/// How many tables a block of `n` symbols gets (libbzip2's thresholds).
fn table_count(n: usize) -> usize {
    match n {
        0..200 => 2,
        200..600 => 3,
        600..1200 => 4,
        1200..2400 => 5,
        _ => 6,
    }
}

/// Buffers reused from block to block.
#[derive(Default)]
pub struct Coder {
    selectors: Vec<u8>,
}

impl Coder {
    /// Writes one block: header, symbol map, tables, selectors and the coded symbols.
    pub fn write(&mut self, w: &mut BitWriter, s: &Symbols, block_crc: u32, orig_ptr: u32) {
        let alpha = s.alpha_size;
        let tables = table_count(s.symbols.len());
        let mut lens = [[0u8; MAX_ALPHA]; MAX_TABLES];
        initial_lengths(&s.freq[..alpha], tables, &mut lens);

        for _ in 0..PASSES {
            let mut freq = [[0u32; MAX_ALPHA]; MAX_TABLES];
            // Every table's length of every symbol in one word, so a group's six costs are
            // one sum.
            let mut packed = [0u64; MAX_ALPHA];
            for (v, p) in packed.iter_mut().enumerate().take(alpha) {
                *p = (0..tables).fold(0, |acc, t| acc | u64::from(lens[t][v]) << (LANE * t as u32));
            }
            self.selectors.clear();
            for group in s.symbols.chunks(GROUP) {
                let cost: u64 = group.iter().map(|&v| packed[v as usize]).sum();
                let lane = |t: usize| (cost >> (LANE * t as u32)) & ((1 << LANE) - 1);
                let best = (1..tables).fold(0, |b, t| if lane(t) < lane(b) { t } else { b });
                self.selectors.push(best as u8);
                for &v in group {
                    freq[best][v as usize] += 1;
                }
            }
            for t in 0..tables {
                code_lengths(&freq[t][..alpha], &mut lens[t][..alpha]);
            }
        }

        // Header: pi, the CRC of the block's input, not randomised, origPtr.
        w.write(24, 0x314159);
        w.write(24, 0x265359);
        w.write(32, block_crc);
        w.write(1, 0);
        w.write(24, orig_ptr);

        // Which bytes are used: 16 ranges of 16, then each used range's bitmap.
        let range_used = |r: usize| s.in_use[r * 16..r * 16 + 16].iter().any(|&u| u);
        w.write(
            16,
            (0..16).fold(0, |acc, r| acc << 1 | u32::from(range_used(r))),
        );
        for r in (0..16).filter(|&r| range_used(r)) {
            let bits = s.in_use[r * 16..r * 16 + 16]
                .iter()
                .fold(0, |acc, &u| acc << 1 | u32::from(u));
            w.write(16, bits);
        }

        // Tables and selectors; selectors move-to-front coded in unary.
        w.write(3, tables as u32);
        w.write(15, self.selectors.len() as u32);
        let mut order: [u8; MAX_TABLES] = std::array::from_fn(|i| i as u8);
        for &sel in &self.selectors {
            let j = order.iter().position(|&t| t == sel).expect("a table");
            order.copy_within(0..j, 1);
            order[0] = sel;
            for _ in 0..j {
                w.write(1, 1);
            }
            w.write(1, 0);
        }
        // Each table's lengths, delta coded: 10 = one longer, 11 = one shorter, 0 = next.
        for table in lens.iter().take(tables) {
            let mut cur = table[0];
            w.write(5, u32::from(cur));
            for &len in &table[..alpha] {
                while cur < len {
                    w.write(2, 2);
                    cur += 1;
                }
                while cur > len {
                    w.write(2, 3);
                    cur -= 1;
                }
                w.write(1, 0);
            }
        }

        let mut codes = [[0u32; MAX_ALPHA]; MAX_TABLES];
        for t in 0..tables {
            assign_codes(&lens[t][..alpha], &mut codes[t][..alpha]);
        }
        for (group, &sel) in s.symbols.chunks(GROUP).zip(&self.selectors) {
            let (len, code) = (&lens[sel as usize], &codes[sel as usize]);
            for &v in group {
                w.write(u32::from(len[v as usize]), code[v as usize]);
            }
        }
    }
}

/// libbzip2's starting tables: the alphabet cut into `tables` ranges of about equal total
/// frequency, each table cheap (0) inside its range and dear (15) outside.
fn initial_lengths(freq: &[u32], tables: usize, lens: &mut [[u8; MAX_ALPHA]; MAX_TABLES]) {
    let alpha = freq.len();
    let mut remaining: u64 = freq.iter().map(|&f| u64::from(f)).sum();
    let mut start = 0usize;
    for left in (1..=tables).rev() {
        let target = remaining / left as u64;
        let mut end = start;
        let mut got = 0u64;
        while end < alpha && (got < target || end == start) {
            got += u64::from(freq[end]);
            end += 1;
        }
        // libbzip2 gives every other middle range one symbol less, to balance rounding.
        if end > start + 1 && left != tables && left != 1 && (tables - left) % 2 == 1 {
            end -= 1;
            got -= u64::from(freq[end]);
        }
        for (v, l) in lens[left - 1].iter_mut().enumerate().take(alpha) {
            *l = if (start..end).contains(&v) { 0 } else { 15 };
        }
        start = end;
        remaining -= got;
    }
}
