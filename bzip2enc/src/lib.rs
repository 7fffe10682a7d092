//! A bzip2 encoder for release images and update payloads. Its output is ordinary level-9
//! bzip2 (`BZh9`, 900 kB blocks) that bunzip2, lbzip2 and every reader take; what differs from
//! libbzip2 is the block sort, a linear-time suffix array (`bwt`), which is most of the
//! time bzip2 spends. The stages follow the format: run-length coding (`rle`), the sort
//! (`bwt`), move-to-front and zero runs (`mtf`), and the Huffman-coded block (`block`).

#![forbid(unsafe_code)]

mod bits;
mod block;
mod bwt;
mod huffman;
mod mtf;
mod rle;

use bits::BitWriter;

/// bzip2's CRC-32 (MSB first, polynomial 0x04c11db7), of each block's input.
const CRC: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_BZIP2);

/// A level-9 encoder; keep one per thread to reuse its buffers (about 9 MB).
#[derive(Default)]
pub struct Encoder {
    block: Vec<u8>,
    last: Vec<u8>,
    sorter: bwt::Sorter,
    symbols: mtf::Symbols,
    coder: block::Coder,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `data` to `out` as one complete bzip2 stream.
    pub fn compress_into(&mut self, data: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(b"BZh9");
        let mut w = BitWriter::new(out);
        let mut stream_crc = 0u32;
        let mut rest = data;
        while !rest.is_empty() {
            let used = rle::fill_block(rest, &mut self.block);
            let block_crc = CRC.checksum(&rest[..used]);
            rest = &rest[used..];
            stream_crc = stream_crc.rotate_left(1) ^ block_crc;
            let orig_ptr = self.sorter.sort(&self.block, &mut self.last);
            self.symbols.encode(&self.last);
            self.coder.write(&mut w, &self.symbols, block_crc, orig_ptr);
        }
        // End of stream: sqrt(pi), the stream's CRC, padding to a byte.
        w.write(24, 0x177245);
        w.write(24, 0x385090);
        w.write(32, stream_crc);
        w.finish();
    }

    /// `data` as one complete bzip2 stream.
    pub fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() / 4 + 64);
        self.compress_into(data, &mut out);
        out
    }
}

thread_local! {
    static ENCODER: std::cell::RefCell<Encoder> = std::cell::RefCell::new(Encoder::new());
}

/// `data` as one bzip2 stream, with this thread's encoder (its buffers kept for the next call).
pub fn compress(data: &[u8]) -> Vec<u8> {
    ENCODER.with(|e| e.borrow_mut().compress(data))
}

#[cfg(test)]
mod tests;
