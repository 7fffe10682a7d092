//! The "new ASCII" (newc) cpio format, as the Linux kernel unpacks an initramfs
//! (Documentation/driver-api/early-userspace/buffer-format.rst): each member is a 110-byte
//! header of ASCII hex fields, the NUL-terminated name padded to a multiple of four bytes
//! (counted from the header's start), then the data padded the same way; `TRAILER!!!` ends the
//! archive. Archives may be concatenated, and zero bytes between them are skipped, which is why
//! an uncompressed archive appended to an initrd must start on a four-byte boundary.
//!
//! Written here rather than with the `cpio` crate: the format is one header, and the callers
//! need each member's data offset before any byte is written (the live USR image is copied into
//! place, not streamed through a writer) and no clock or inode counter of the writer's own.

/// `c_magic` of the newc format without checksums.
pub const NEWC_MAGIC: &[u8; 6] = b"070701";
/// Bytes of the fixed header: the magic and 13 eight-digit hex fields.
pub const NEWC_HEADER_LEN: usize = 110;
/// The name of the member that ends an archive.
pub const TRAILER_NAME: &str = "TRAILER!!!";

/// File type bits of `c_mode` (POSIX `<sys/stat.h>`).
pub const S_IFREG: u32 = 0o100_000;
pub const S_IFDIR: u32 = 0o040_000;

#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    #[error("cpio member {name:?}: {what}")]
    Member { name: String, what: String },
}

/// One member's metadata (`c_ino` .. `c_namesize` of the header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub ino: u32,
    /// File type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub size: u64,
}

impl Member {
    /// A regular file owned by root.
    pub fn file(name: &str, ino: u32, perm: u32, mtime: u32, size: u64) -> Member {
        Member {
            name: name.to_string(),
            ino,
            mode: S_IFREG | (perm & 0o7777),
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime,
            size,
        }
    }

    /// A directory owned by root.
    pub fn dir(name: &str, ino: u32, perm: u32, mtime: u32) -> Member {
        Member {
            name: name.to_string(),
            ino,
            mode: S_IFDIR | (perm & 0o7777),
            uid: 0,
            gid: 0,
            nlink: 2,
            mtime,
            size: 0,
        }
    }

    /// The header and the padded name: everything before the member's data.
    pub fn header(&self) -> Result<Vec<u8>, CpioError> {
        let bad = |what: &str| CpioError::Member {
            name: self.name.clone(),
            what: what.to_string(),
        };
        if self.name.is_empty() || self.name.contains('\0') {
            return Err(bad("a name must be non-empty and hold no NUL"));
        }
        let size = u32::try_from(self.size)
            .map_err(|_| bad("newc stores sizes in 32 bits; this member is 4 GiB or more"))?;
        let namesize = self.name.len() + 1;
        let mut h = Vec::with_capacity(pad4(NEWC_HEADER_LEN + namesize));
        h.extend_from_slice(NEWC_MAGIC);
        for v in [
            self.ino,
            self.mode,
            self.uid,
            self.gid,
            self.nlink,
            self.mtime,
            size,
            0, // c_devmajor
            0, // c_devminor
            0, // c_rdevmajor
            0, // c_rdevminor
            namesize as u32,
            0, // c_check: only the "070702" format checksums
        ] {
            h.extend_from_slice(format!("{v:08X}").as_bytes());
        }
        h.extend_from_slice(self.name.as_bytes());
        h.push(0);
        h.resize(pad4(h.len()), 0);
        Ok(h)
    }
}

/// `n` rounded up to a multiple of four.
pub fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// Zero bytes that follow `data_len` bytes of member data.
pub fn data_padding(data_len: u64) -> usize {
    (data_len.next_multiple_of(4) - data_len) as usize
}

/// The archive's last member.
pub fn trailer() -> Vec<u8> {
    Member {
        name: TRAILER_NAME.to_string(),
        ino: 0,
        mode: 0,
        uid: 0,
        gid: 0,
        nlink: 1,
        mtime: 0,
        size: 0,
    }
    .header()
    .expect("the trailer is a valid member")
}

/// A whole archive held in memory: each member's header, data and padding, then the trailer.
pub fn archive(members: &[(Member, &[u8])]) -> Result<Vec<u8>, CpioError> {
    let mut out = Vec::new();
    for (m, data) in members {
        if m.size != data.len() as u64 {
            return Err(CpioError::Member {
                name: m.name.clone(),
                what: format!("header says {} bytes but {} were given", m.size, data.len()),
            });
        }
        out.extend_from_slice(&m.header()?);
        out.extend_from_slice(data);
        out.resize(out.len() + data_padding(data.len() as u64), 0);
    }
    out.extend_from_slice(&trailer());
    Ok(out)
}

/// The members of an archive in memory: (name, data). Stops at the trailer; `None` when the
/// bytes are not a newc archive (used to tell a customized configuration image from zeros).
pub fn read_archive(bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    loop {
        let h = bytes.get(at..at + NEWC_HEADER_LEN)?;
        if &h[..6] != NEWC_MAGIC {
            return None;
        }
        let field = |i: usize| {
            let s = std::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).ok()?;
            u32::from_str_radix(s, 16).ok()
        };
        let size = field(6)? as usize;
        let namesize = field(11)? as usize;
        let name_end = at + NEWC_HEADER_LEN + namesize;
        let name = bytes.get(at + NEWC_HEADER_LEN..name_end.checked_sub(1)?)?;
        let name = String::from_utf8(name.to_vec()).ok()?;
        let data_at = at + pad4(NEWC_HEADER_LEN + namesize);
        if name == TRAILER_NAME {
            return Some(out);
        }
        let data = bytes.get(data_at..data_at + size)?;
        out.push((name, data.to_vec()));
        at = data_at + size + data_padding(size as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn header_fields_and_padding() {
        let m = Member::file("usr.img", 7, 0o644, 1_700_000_000, 5);
        let h = m.header().unwrap();
        assert_eq!(&h[..6], NEWC_MAGIC);
        assert_eq!(&h[6..14], b"00000007");
        assert_eq!(&h[14..22], b"000081A4", "mode 0100644");
        assert_eq!(&h[46..54], b"6553F100", "mtime");
        assert_eq!(&h[54..62], b"00000005", "size");
        assert_eq!(&h[94..102], b"00000008", "namesize counts the NUL");
        assert_eq!(h.len(), 120, "110 + 8 name bytes, padded to 4");
        assert_eq!(data_padding(5), 3);
        assert_eq!(data_padding(8), 0);
        let big = Member::file("x", 1, 0o644, 0, 1 << 32);
        assert!(big.header().unwrap_err().to_string().contains("32 bits"));
    }

    #[test]
    fn archive_reads_back_here_and_with_gnu_cpio() {
        let a = archive(&[
            (Member::dir("etc", 1, 0o755, 0), &[][..]),
            (Member::file("etc/hello", 2, 0o600, 0, 6), &b"hello\n"[..]),
            (Member::file("odd", 3, 0o644, 0, 1), &b"x"[..]),
        ])
        .unwrap();
        let back = read_archive(&a).unwrap();
        assert_eq!(
            back,
            vec![
                ("etc".to_string(), vec![]),
                ("etc/hello".to_string(), b"hello\n".to_vec()),
                ("odd".to_string(), b"x".to_vec())
            ]
        );
        assert!(read_archive(&[0u8; 512]).is_none(), "zeros are no archive");

        // GNU cpio (package cpio, ci/install-deps) lists and extracts the same members.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.cpio");
        std::fs::write(&path, &a).unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg("cd \"$1\" && mkdir x && cd x && cpio -idm --quiet < ../a.cpio && find . -type f | sort && cat etc/hello")
            .arg("sh")
            .arg(dir.path())
            .output()
            .expect("cpio is installed by ci/install-deps");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "./etc/hello\n./odd\nhello\n"
        );
    }
}
