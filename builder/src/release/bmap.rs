//! bmaptool's block map (format 2.0, SHA-256 per range) of a sparse raw image, from its
//! SEEK_DATA ranges, so `bmaptool copy` writes only the blocks that hold data and checks them.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// bmaptool's block size (BmapCreate uses the filesystem's; 4 KiB everywhere here).
pub const BLOCK: u64 = 4096;
const VERSION: &str = "2.0";

/// bmaptools' `human_size`: at most one decimal, binary units.
fn human(size: u64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = size as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{size} bytes")
    } else {
        format!("{:.1} {}", v, units[u])
    }
}

/// The bmap XML for `image`.
pub fn create(image: &Path) -> Result<String> {
    let f = File::open(image).with_context(|| format!("opening {}", image.display()))?;
    let size = f.metadata()?.len();
    let blocks = size.div_ceil(BLOCK);
    // Block-aligned, merged ranges (extents are block-aligned already; rounding keeps partial
    // blocks at the edges mapped).
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for r in disk::sparse::data_ranges(&f)
        .with_context(|| format!("finding data in {}", image.display()))?
    {
        let (first, last) = (r.start / BLOCK, (r.end.div_ceil(BLOCK)).min(blocks) - 1);
        match ranges.last_mut() {
            Some(prev) if prev.1 + 1 >= first => prev.1 = prev.1.max(last),
            _ => ranges.push((first, last)),
        }
    }
    let mut body = String::new();
    let mut mapped = 0;
    let mut buf = vec![0u8; 1 << 20];
    for &(first, last) in &ranges {
        mapped += last - first + 1;
        let mut h = Sha256::new();
        let (mut pos, end) = (first * BLOCK, ((last + 1) * BLOCK).min(size));
        while pos < end {
            let n = ((end - pos) as usize).min(buf.len());
            f.read_exact_at(&mut buf[..n], pos)
                .with_context(|| format!("reading {} at {pos}", image.display()))?;
            h.update(&buf[..n]);
            pos += n as u64;
        }
        // bmaptool hashes whole blocks; a short last block reads as short, as here.
        let sum = crate::release::digests::hex(&h.finalize());
        if first == last {
            body.push_str(&format!(
                "        <Range chksum=\"{sum}\"> {first} </Range>\n"
            ));
        } else {
            body.push_str(&format!(
                "        <Range chksum=\"{sum}\"> {first}-{last} </Range>\n"
            ));
        }
    }
    let percent = if blocks == 0 {
        0.0
    } else {
        mapped as f64 * 100.0 / blocks as f64
    };
    let xml = format!(
        "<?xml version=\"1.0\" ?>\n\
<!-- Block map of a raw disk image: the blocks that hold data, with a SHA-256 per range,\n     \
for bmaptool copy. Written by coreos-build. -->\n\n\
<bmap version=\"{VERSION}\">\n    \
<!-- Image size in bytes: {} -->\n    <ImageSize> {size} </ImageSize>\n\n    \
<!-- Size of a block in bytes -->\n    <BlockSize> {BLOCK} </BlockSize>\n\n    \
<!-- Count of blocks in the image file -->\n    <BlocksCount> {blocks} </BlocksCount>\n\n    \
<!-- Count of mapped blocks: {} or {percent:.1}% -->\n    <MappedBlocksCount> {mapped} </MappedBlocksCount>\n\n    \
<!-- Type of checksum used in this file -->\n    <ChecksumType> sha256 </ChecksumType>\n\n    \
<!-- The checksum of this bmap file. When it is calculated, the value of\n         \
the checksum has be zero (all ASCII \"0\" symbols).  -->\n    <BmapFileChecksum> {} </BmapFileChecksum>\n\n    \
<!-- The block map: ranges of mapped blocks with their checksums. -->\n    <BlockMap>\n{body}    </BlockMap>\n</bmap>\n",
        human(size),
        human(mapped * BLOCK),
        "0".repeat(64),
    );
    // The file checksum is the SHA-256 of the file with the checksum field all zeros.
    let sum = crate::release::digests::hex(&Sha256::digest(xml.as_bytes()));
    Ok(xml.replacen(&"0".repeat(64), &sum, 1))
}
