//! Every frame of a zstd file (RFC 8878 §3.1: a file is a sequence of frames). `pzstd` and
//! `zstd -T` with `--rsyncable` write many frames, and pzstd puts a skippable frame before each
//! (§3.1.2, magic 0x184D2A50..=0x184D2A5F, then a little-endian u32 size) holding the next
//! frame's size. ruzstd's `FrameDecoder` decodes one frame at a time; this walks the frames.

use super::sniff::{is_skippable_magic, ZSTD_MAGIC};
use super::Compressed;
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
use std::io::{self, BufRead, Read};

/// Decoded bytes produced per step inside a frame (bounds memory to about this plus the window).
const STEP: usize = 1 << 20;

pub struct ZstdFrames {
    src: Compressed,
    decoder: FrameDecoder,
    in_frame: bool,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl ZstdFrames {
    pub fn new(src: Compressed) -> ZstdFrames {
        ZstdFrames {
            src,
            decoder: FrameDecoder::new(),
            in_frame: false,
        }
    }

    pub fn into_inner(self) -> Compressed {
        self.src
    }

    /// Offset of the next unread compressed byte.
    fn offset(&self) -> u64 {
        self.src.get_ref().bytes() - self.src.buffer().len() as u64
    }

    /// Between frames: start the next one. Returns false at the end of the file, or before
    /// bytes that start no frame (left unread: the caller reports them as trailing data).
    fn next_frame(&mut self) -> io::Result<bool> {
        loop {
            let at = self.offset();
            let head = self.src.fill_buf()?;
            if head.is_empty() {
                return Ok(false);
            }
            if head.len() >= 4 && head[..4] != ZSTD_MAGIC && !is_skippable_magic(&head[..4]) {
                return Ok(false);
            }
            let mut magic = [0u8; 4];
            self.src.read_exact(&mut magic).map_err(|_| {
                invalid(format!(
                    "truncated zstd frame header at compressed byte {at}"
                ))
            })?;
            if is_skippable_magic(&magic) {
                let mut size = [0u8; 4];
                self.src.read_exact(&mut size).map_err(|_| {
                    invalid(format!("truncated skippable frame at compressed byte {at}"))
                })?;
                let size = u32::from_le_bytes(size) as u64;
                let skipped = io::copy(&mut (&mut self.src).take(size), &mut io::sink())?;
                if skipped != size {
                    return Err(invalid(format!(
                        "truncated skippable frame at compressed byte {at} ({skipped} of {size} bytes)"
                    )));
                }
                continue;
            }
            if magic != ZSTD_MAGIC {
                return Err(invalid(format!(
                    "trailing data after the compressed stream at byte {at}"
                )));
            }
            self.decoder
                .reset((&magic[..]).chain(&mut self.src))
                .map_err(|e| {
                    invalid(format!(
                        "bad zstd frame header at compressed byte {at}: {e}"
                    ))
                })?;
            self.in_frame = true;
            return Ok(true);
        }
    }
}

impl Read for ZstdFrames {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame && !self.next_frame()? {
                return Ok(0);
            }
            let n = self.decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.decoder.is_finished() {
                if let (Some(want), Some(got)) = (
                    self.decoder.get_checksum_from_data(),
                    self.decoder.get_calculated_checksum(),
                ) {
                    if want != got {
                        return Err(invalid(format!(
                            "zstd frame checksum mismatch before compressed byte {}",
                            self.offset()
                        )));
                    }
                }
                self.in_frame = false;
                continue;
            }
            let at = self.offset();
            self.decoder
                .decode_blocks(&mut self.src, BlockDecodingStrategy::UptoBytes(STEP))
                .map_err(|e| {
                    invalid(format!("corrupt zstd data near compressed byte {at}: {e}"))
                })?;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::decompress::test_input::src;
    use crate::decompress::{decompress_all, Piece};
    use ruzstd::encoding::{compress_to_vec, CompressionLevel};

    fn zst(data: &[u8]) -> Vec<u8> {
        compress_to_vec(data, CompressionLevel::Fastest)
    }

    /// A skippable frame as pzstd writes one before each frame: magic, size, payload.
    fn skippable(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x50, 0x2a, 0x4d, 0x18];
        f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn decode(bytes: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        decompress_all(
            std::io::Cursor::new(bytes),
            "image.zst",
            1 << 30,
            |p| match p {
                Piece::Data(d) => out.extend(d),
                Piece::Zeros(n) => out.resize(out.len() + n as usize, 0),
            },
        )?;
        Ok(out)
    }

    #[test]
    fn frames_and_skippable_frames() {
        let (a, b) = (b"first frame ".repeat(1000), b"second".repeat(3000));
        let one = zst(&a);
        let two = zst(&b);
        let file = [skippable(&(one.len() as u32).to_le_bytes()), one.clone()]
            .into_iter()
            .chain([
                skippable(&[]),
                two.clone(),
                skippable(b"trailing skippable"),
            ])
            .flatten()
            .collect::<Vec<u8>>();
        assert_eq!(decode(file).unwrap(), [&a[..], &b[..]].concat());
        assert_eq!(
            decode([one.clone(), two].concat()).unwrap(),
            [&a[..], &b[..]].concat()
        );

        let mut garbage = one.clone();
        garbage.extend_from_slice(b"garbage");
        let e = format!("{:#}", decode(garbage).unwrap_err());
        assert!(
            e.contains("trailing data") && e.contains(&format!("byte {}", one.len())),
            "{e}"
        );

        let e = format!("{:#}", decode(one[..one.len() - 5].to_vec()).unwrap_err());
        assert!(!e.is_empty());
        let _ = src(Vec::new());
    }
}
