//! Fixed VHD (Microsoft "Virtual Hard Disk Image Format Specification", 2006): the raw disk
//! followed by one 512-byte hard disk footer, all fields big-endian. What Azure takes for upload
//! and Hyper-V attaches. A fixed disk has no other metadata, so a raw image becomes a VHD by
//! appending the footer (`append_fixed_footer`) — no copy of the data.
//!
//! The footer names creator `qem2` (what `qemu-img -o force_size` writes): qemu then trusts
//! `current_size` instead of rounding to the CHS geometry, and Azure accepts it.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Spec "Hard Disk Footer Format": the footer is the last 512 bytes of the file.
pub const FOOTER_SIZE: usize = 512;
/// "Cookie": identifies the original creator of the hard disk image.
pub const COOKIE: &[u8; 8] = b"conectix";
/// "Features": bit 1 is reserved and must always be set.
pub const FEATURES_RESERVED: u32 = 0x0000_0002;
/// "File Format Version" 1.0.
pub const FILE_FORMAT_VERSION: u32 = 0x0001_0000;
/// "Data Offset" of a fixed disk: no dynamic disk header.
pub const FIXED_DATA_OFFSET: u64 = u64::MAX;
/// "Time Stamp": seconds since 2000-01-01 00:00:00 UTC, as a Unix time.
pub const VHD_TIMESTAMP_BASE: u64 = 946_684_800;
/// "Creator Application": qemu's force_size marker (qemu `vpc_ignore_current_size` trusts it).
pub const CREATOR_APPLICATION: &[u8; 4] = b"qem2";
/// "Creator Version": what qemu writes (Virtual PC 2007, 5.3).
pub const CREATOR_VERSION: u32 = 0x0005_0003;
/// "Creator Host OS": Windows, `Wi2k`.
pub const CREATOR_HOST_OS_WINDOWS: u32 = 0x5769_326B;
/// "Disk Type".
pub const DISK_TYPE_FIXED: u32 = 2;
/// Appendix "CHS Calculation": the largest geometry, 65535 cylinders × 16 heads × 255 sectors.
pub const MAX_CHS_SECTORS: u64 = 65535 * 16 * 255;
/// Azure takes only disks of a whole number of MiB (its "size N·MiB + 512 bytes" rule).
pub const SIZE_UNIT: u64 = 1 << 20;
const SECTOR: u64 = 512;

#[derive(Debug, thiserror::Error)]
pub enum VhdError {
    #[error("the disk is {0} bytes, not a whole number of MiB (Azure and Hyper-V need one)")]
    NotWholeMib(u64),
    #[error("the disk is empty")]
    Empty,
    #[error("{0} bytes is too short to hold a VHD footer")]
    TooShort(u64),
    #[error("no VHD footer: the last 512 bytes do not start with \"conectix\"")]
    NoCookie,
    #[error("VHD footer checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("VHD footer: disk type {0} is not fixed (2)")]
    NotFixed(u32),
    #[error("VHD footer: current size {footer} differs from the {data} bytes before the footer")]
    SizeMismatch { footer: u64, data: u64 },
    #[error("{what} the VHD: {source}")]
    Io {
        what: &'static str,
        source: io::Error,
    },
}

/// "Disk Geometry": cylinders (u16), heads (u8), sectors per track (u8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskGeometry {
    pub cylinders: u16,
    pub heads: u8,
    pub sectors_per_track: u8,
}

impl DiskGeometry {
    /// The spec's appendix "CHS Calculation" for a disk of `total_sectors`.
    pub fn for_sectors(total_sectors: u64) -> DiskGeometry {
        let total = total_sectors.min(MAX_CHS_SECTORS);
        let (spt, heads, cylinder_times_heads) = if total >= 65535 * 16 * 63 {
            (255, 16, total / 255)
        } else {
            let mut spt = 17;
            let mut cth = total / spt;
            let mut heads = cth.div_ceil(1024).max(4);
            if cth >= heads * 1024 || heads > 16 {
                spt = 31;
                heads = 16;
                cth = total / spt;
            }
            if cth >= heads * 1024 {
                spt = 63;
                heads = 16;
                cth = total / spt;
            }
            (spt, heads, cth)
        };
        DiskGeometry {
            cylinders: (cylinder_times_heads / heads) as u16,
            heads: heads as u8,
            sectors_per_track: spt as u8,
        }
    }

    pub fn sectors(self) -> u64 {
        self.cylinders as u64 * self.heads as u64 * self.sectors_per_track as u64
    }
}

/// The hard disk footer of a fixed disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HardDiskFooter {
    /// Seconds since 2000-01-01 UTC.
    pub time_stamp: u32,
    pub creator_application: [u8; 4],
    pub creator_version: u32,
    pub creator_host_os: u32,
    pub original_size: u64,
    pub current_size: u64,
    pub disk_geometry: DiskGeometry,
    pub disk_type: u32,
    pub unique_id: [u8; 16],
    pub saved_state: u8,
}

impl HardDiskFooter {
    /// The footer of a fixed disk of `size` bytes (a whole number of MiB), created at Unix
    /// time `unix_time` (clamped to the VHD epoch, 2000–2136).
    pub fn fixed(size: u64, unique_id: [u8; 16], unix_time: u64) -> Result<Self, VhdError> {
        if size == 0 {
            return Err(VhdError::Empty);
        }
        if !size.is_multiple_of(SIZE_UNIT) {
            return Err(VhdError::NotWholeMib(size));
        }
        Ok(HardDiskFooter {
            time_stamp: vhd_time_stamp(unix_time),
            creator_application: *CREATOR_APPLICATION,
            creator_version: CREATOR_VERSION,
            creator_host_os: CREATOR_HOST_OS_WINDOWS,
            original_size: size,
            current_size: size,
            disk_geometry: DiskGeometry::for_sectors(size / SECTOR),
            disk_type: DISK_TYPE_FIXED,
            unique_id,
            saved_state: 0,
        })
    }

    /// The 512 bytes, checksum included.
    pub fn to_bytes(&self) -> [u8; FOOTER_SIZE] {
        let mut b = [0u8; FOOTER_SIZE];
        b[0..8].copy_from_slice(COOKIE);
        b[8..12].copy_from_slice(&FEATURES_RESERVED.to_be_bytes());
        b[12..16].copy_from_slice(&FILE_FORMAT_VERSION.to_be_bytes());
        b[16..24].copy_from_slice(&FIXED_DATA_OFFSET.to_be_bytes());
        b[24..28].copy_from_slice(&self.time_stamp.to_be_bytes());
        b[28..32].copy_from_slice(&self.creator_application);
        b[32..36].copy_from_slice(&self.creator_version.to_be_bytes());
        b[36..40].copy_from_slice(&self.creator_host_os.to_be_bytes());
        b[40..48].copy_from_slice(&self.original_size.to_be_bytes());
        b[48..56].copy_from_slice(&self.current_size.to_be_bytes());
        b[56..58].copy_from_slice(&self.disk_geometry.cylinders.to_be_bytes());
        b[58] = self.disk_geometry.heads;
        b[59] = self.disk_geometry.sectors_per_track;
        b[60..64].copy_from_slice(&self.disk_type.to_be_bytes());
        // Checksum (64..68) is computed over the footer with this field zero.
        b[68..84].copy_from_slice(&self.unique_id);
        b[84] = self.saved_state;
        let sum = checksum(&b);
        b[64..68].copy_from_slice(&sum.to_be_bytes());
        b
    }

    /// Read a footer, checking the cookie and the checksum.
    pub fn parse(b: &[u8; FOOTER_SIZE]) -> Result<Self, VhdError> {
        if &b[0..8] != COOKIE {
            return Err(VhdError::NoCookie);
        }
        let be32 = |at: usize| u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        let be64 = |at: usize| u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        let stored = be32(64);
        let mut zeroed = *b;
        zeroed[64..68].fill(0);
        let computed = checksum(&zeroed);
        if stored != computed {
            return Err(VhdError::Checksum { stored, computed });
        }
        Ok(HardDiskFooter {
            time_stamp: be32(24),
            creator_application: b[28..32].try_into().expect("4 bytes"),
            creator_version: be32(32),
            creator_host_os: be32(36),
            original_size: be64(40),
            current_size: be64(48),
            disk_geometry: DiskGeometry {
                cylinders: u16::from_be_bytes([b[56], b[57]]),
                heads: b[58],
                sectors_per_track: b[59],
            },
            disk_type: be32(60),
            unique_id: b[68..84].try_into().expect("16 bytes"),
            saved_state: b[84],
        })
    }
}

/// "Checksum": the one's complement of the sum of the footer's bytes (checksum field zero).
pub fn checksum(footer: &[u8; FOOTER_SIZE]) -> u32 {
    !footer.iter().fold(0u32, |s, &b| s.wrapping_add(b as u32))
}

/// A Unix time as a VHD time stamp, clamped to what 32 bits from 2000 can hold.
pub fn vhd_time_stamp(unix_time: u64) -> u32 {
    unix_time
        .saturating_sub(VHD_TIMESTAMP_BASE)
        .min(u32::MAX as u64) as u32
}

/// A "Unique Id" derived from `seed` (a fingerprint of the inputs), shaped as a random UUID,
/// so the same inputs give the same file.
pub fn unique_id_from_seed(seed: &[u8]) -> [u8; 16] {
    let d = Sha256::digest([b"vhd-unique-id".as_slice(), seed].concat());
    let mut id: [u8; 16] = d[..16].try_into().expect("16 bytes");
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

/// Turn the raw disk `file` into a fixed VHD by appending the footer. The disk's size must be
/// a whole number of MiB. Returns the footer written.
pub fn append_fixed_footer(
    file: &File,
    unique_id: [u8; 16],
    unix_time: u64,
) -> Result<HardDiskFooter, VhdError> {
    let size = file
        .metadata()
        .map_err(|source| VhdError::Io {
            what: "reading the size of",
            source,
        })?
        .len();
    let footer = HardDiskFooter::fixed(size, unique_id, unix_time)?;
    file.write_all_at(&footer.to_bytes(), size)
        .map_err(|source| VhdError::Io {
            what: "writing the footer of",
            source,
        })?;
    Ok(footer)
}

/// Read and check the footer of the fixed VHD `file`: cookie, checksum, fixed type, and a
/// current size equal to the data before the footer.
pub fn read_fixed_footer(file: &File) -> Result<HardDiskFooter, VhdError> {
    let len = file
        .metadata()
        .map_err(|source| VhdError::Io {
            what: "reading the size of",
            source,
        })?
        .len();
    if len < FOOTER_SIZE as u64 {
        return Err(VhdError::TooShort(len));
    }
    let mut b = [0u8; FOOTER_SIZE];
    file.read_exact_at(&mut b, len - FOOTER_SIZE as u64)
        .map_err(|source| VhdError::Io {
            what: "reading the footer of",
            source,
        })?;
    let footer = HardDiskFooter::parse(&b)?;
    if footer.disk_type != DISK_TYPE_FIXED {
        return Err(VhdError::NotFixed(footer.disk_type));
    }
    let data = len - FOOTER_SIZE as u64;
    if footer.current_size != data {
        return Err(VhdError::SizeMismatch {
            footer: footer.current_size,
            data,
        });
    }
    Ok(footer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn geometry_follows_the_spec_appendix() {
        // Our layouts are multiples of 258048 sectors = 256 × 16 × 63: CHS covers them exactly.
        let base = DiskGeometry::for_sectors(9289728);
        assert_eq!(
            (base.cylinders, base.heads, base.sectors_per_track),
            (9216, 16, 63)
        );
        assert_eq!(base.sectors(), 9289728);
        // 20 MiB (Azure's smallest upload): 17 sectors per track, 4 heads.
        let small = DiskGeometry::for_sectors(40960);
        assert_eq!(
            (small.cylinders, small.heads, small.sectors_per_track),
            (602, 4, 17)
        );
        // 31 sectors, then 63 once 16 heads of 17 sectors no longer fit 1024 cylinders.
        let mid = DiskGeometry::for_sectors(16 * 1024 * 17 + 1);
        assert_eq!((mid.heads, mid.sectors_per_track), (16, 31));
        // Past 127 GiB: 255 sectors per track, capped at 65535 cylinders.
        let big = DiskGeometry::for_sectors(1 << 40);
        assert_eq!(
            (big.cylinders, big.heads, big.sectors_per_track),
            (65535, 16, 255)
        );
    }

    #[test]
    fn footer_fields_at_spec_offsets_and_checksum_verifies() {
        let id = unique_id_from_seed(b"seed");
        let f = HardDiskFooter::fixed(9289728 * 512, id, 1_700_000_000).unwrap();
        let b = f.to_bytes();
        assert_eq!(&b[0..8], b"conectix");
        assert_eq!(&b[8..16], &[0, 0, 0, 2, 0, 1, 0, 0]);
        assert_eq!(&b[16..24], &[0xff; 8]);
        assert_eq!(
            u32::from_be_bytes(b[24..28].try_into().unwrap()),
            753_315_200
        );
        assert_eq!(&b[28..32], b"qem2");
        assert_eq!(&b[36..40], b"Wi2k");
        assert_eq!(
            u64::from_be_bytes(b[48..56].try_into().unwrap()),
            4756340736
        );
        assert_eq!(&b[56..60], &[0x24, 0x00, 16, 63]);
        assert_eq!(u32::from_be_bytes(b[60..64].try_into().unwrap()), 2);
        assert_eq!(&b[68..84], &id);
        assert!(b[84..].iter().all(|&x| x == 0));
        assert_eq!(HardDiskFooter::parse(&b).unwrap(), f);
        let mut bad = b;
        bad[100] = 1;
        assert!(matches!(
            HardDiskFooter::parse(&bad),
            Err(VhdError::Checksum { .. })
        ));
        assert_eq!(unique_id_from_seed(b"seed"), id);
        assert_ne!(unique_id_from_seed(b"other"), id);
    }

    #[test]
    fn refuses_a_size_that_is_not_whole_mib() {
        let e = HardDiskFooter::fixed((1 << 20) + 512, [0; 16], 0).unwrap_err();
        assert!(e.to_string().contains("1049088 bytes"), "{e}");
        assert!(matches!(
            HardDiskFooter::fixed(0, [0; 16], 0),
            Err(VhdError::Empty)
        ));
        assert_eq!(vhd_time_stamp(0), 0);
    }

    /// The real judge: qemu-img reads our file as `vpc` with the exact size, and converts it
    /// back to the same bytes. (`-f vpc`: qemu probes VHDs by a cookie at the start, which only
    /// dynamic disks have; it calls qemu-img's own fixed VHDs raw too.)
    #[test]
    fn qemu_img_reads_the_fixed_vhd() {
        let dir = tempfile::tempdir().unwrap();
        let (vhd, back) = (dir.path().join("d.vhd"), dir.path().join("d.raw"));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&vhd)
            .unwrap();
        let size = 258048 * 512;
        f.set_len(size).unwrap();
        f.write_all_at(b"first sector", 0).unwrap();
        f.write_all_at(b"last sector", size - 512).unwrap();
        let footer = append_fixed_footer(&f, unique_id_from_seed(b"x"), 1_700_000_000).unwrap();
        assert_eq!(read_fixed_footer(&f).unwrap(), footer);
        let out = Command::new("qemu-img")
            .args(["info", "-f", "vpc", "--output=json"])
            .arg(&vhd)
            .output()
            .expect("qemu-img (ci/install-deps installs it)");
        let info = String::from_utf8_lossy(&out.stdout);
        assert!(info.contains("\"format\": \"vpc\""), "{info}");
        assert!(
            info.contains(&format!("\"virtual-size\": {size},")),
            "{info}"
        );
        let st = Command::new("qemu-img")
            .args(["convert", "-f", "vpc", "-O", "raw"])
            .arg(&vhd)
            .arg(&back)
            .status()
            .unwrap();
        assert!(st.success());
        let (a, b) = (std::fs::read(&vhd).unwrap(), std::fs::read(&back).unwrap());
        assert!(a[..size as usize] == b[..], "round trip differs");
    }
}
