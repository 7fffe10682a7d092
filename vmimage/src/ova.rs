//! OVA: an OVF package as one ustar archive (DMTF DSP0243 "OVF package"): the descriptor
//! (`.ovf`) first, the manifest (`.mf`) next, then the files the descriptor's `References`
//! list, in that order. The manifest holds one `SHA256(name)= hex` line per other member (the
//! format of ovftool and open-vmdk; ESXi rejects spaces around the parentheses).
//!
//! The large files are hashed by the caller while it writes them (`DigestWriter`) and copied
//! into the archive in the kernel (`disk::sparse::copy_at`: `copy_file_range`, or reading and
//! writing across filesystems), so no file is read twice in user space.

use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use tar::{EntryType, Header};

/// ustar blocks.
const BLOCK: u64 = 512;
/// GNU tar's default record (20 blocks): the archive is padded to a whole record, as tar does.
const RECORD: u64 = 10240;

#[derive(Debug, thiserror::Error)]
pub enum OvaError {
    #[error("member name {0:?} does not fit a ustar header")]
    Name(String),
    #[error("the first member must be the .ovf descriptor, not {0:?}")]
    NotDescriptor(String),
    #[error("reading {name}: {source}")]
    Read { name: String, source: io::Error },
    #[error("writing the OVA: {0}")]
    Write(#[source] io::Error),
}

/// The manifest's hash, chosen by the virtual hardware version the descriptor asks for
/// (open-vmdk `mkova.sh`: SHA-1 up to vmx-12, SHA-256 for 13 and 14, SHA-512 above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestDigest {
    Sha1,
    Sha256,
    Sha512,
}

impl ManifestDigest {
    pub fn for_virtual_hardware(version: u32) -> ManifestDigest {
        match version {
            ..=12 => ManifestDigest::Sha1,
            13 | 14 => ManifestDigest::Sha256,
            _ => ManifestDigest::Sha512,
        }
    }

    /// The name that starts a manifest line.
    pub fn name(self) -> &'static str {
        match self {
            ManifestDigest::Sha1 => "SHA1",
            ManifestDigest::Sha256 => "SHA256",
            ManifestDigest::Sha512 => "SHA512",
        }
    }

    fn hasher(self) -> Hasher {
        match self {
            ManifestDigest::Sha1 => Hasher::Sha1(Sha1::new()),
            ManifestDigest::Sha256 => Hasher::Sha256(Sha256::new()),
            ManifestDigest::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    /// Lower-case hex digest of `bytes`.
    pub fn hex(self, bytes: &[u8]) -> String {
        let mut h = self.hasher();
        h.update(bytes);
        h.finish()
    }
}

enum Hasher {
    Sha1(Sha1),
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(b),
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
        }
    }
    fn finish(self) -> String {
        let bytes = match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A writer that hashes what passes through it, for a member's manifest line.
pub struct DigestWriter<W: Write> {
    inner: W,
    hasher: Hasher,
    written: u64,
}

impl<W: Write> DigestWriter<W> {
    pub fn new(inner: W, digest: ManifestDigest) -> Self {
        DigestWriter {
            inner,
            hasher: digest.hasher(),
            written: 0,
        }
    }

    /// The hex digest and the byte count of everything written.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        self.inner.flush()?;
        Ok((self.hasher.finish(), self.written))
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A member after the manifest: a file already written, and its digest.
pub struct PackageFile<'a> {
    pub name: &'a str,
    pub file: &'a File,
    /// Hex digest of the file's bytes, by the package's `ManifestDigest`.
    pub digest_hex: String,
}

/// One manifest line: `SHA256(name)= hex`.
pub fn manifest_line(digest: ManifestDigest, name: &str, hex: &str) -> String {
    format!("{}({name})= {hex}\n", digest.name())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvaReport {
    /// The manifest's member name and text.
    pub manifest_name: String,
    pub manifest: String,
    pub size: u64,
}

/// Write the package into `out` (truncated first): `descriptor_name` (must end in `.ovf`)
/// with `descriptor`, the manifest `<stem>.mf`, then `files` in order. `mtime` stamps every
/// member, so the same inputs give the same archive.
pub fn write_ova(
    out: &File,
    descriptor_name: &str,
    descriptor: &[u8],
    files: &[PackageFile],
    digest: ManifestDigest,
    mtime: u64,
) -> Result<OvaReport, OvaError> {
    let stem = descriptor_name
        .strip_suffix(".ovf")
        .ok_or_else(|| OvaError::NotDescriptor(descriptor_name.to_string()))?;
    let manifest_name = format!("{stem}.mf");
    let mut manifest = manifest_line(digest, descriptor_name, &digest.hex(descriptor));
    for f in files {
        manifest.push_str(&manifest_line(digest, f.name, &f.digest_hex));
    }

    out.set_len(0).map_err(OvaError::Write)?;
    let mut at = 0u64;
    let put = |at: &mut u64, bytes: &[u8]| -> Result<(), OvaError> {
        out.write_all_at(bytes, *at).map_err(OvaError::Write)?;
        *at += bytes.len() as u64;
        Ok(())
    };
    for (name, bytes) in [
        (descriptor_name, descriptor),
        (manifest_name.as_str(), manifest.as_bytes()),
    ] {
        put(&mut at, &header(name, bytes.len() as u64, mtime)?)?;
        put(&mut at, bytes)?;
        at = at.next_multiple_of(BLOCK);
    }
    for f in files {
        let len = f
            .file
            .metadata()
            .map_err(|source| OvaError::Read {
                name: f.name.to_string(),
                source,
            })?
            .len();
        put(&mut at, &header(f.name, len, mtime)?)?;
        disk::sparse::copy_at(f.file, len, out, at).map_err(|source| OvaError::Read {
            name: f.name.to_string(),
            source,
        })?;
        at = (at + len).next_multiple_of(BLOCK);
    }
    // The end-of-archive marker (two zero blocks), then zeros to a whole record.
    let size = (at + 2 * BLOCK).next_multiple_of(RECORD);
    out.set_len(size).map_err(OvaError::Write)?;
    Ok(OvaReport {
        manifest_name,
        manifest,
        size,
    })
}

/// A ustar header for a regular file owned by root, mode 0644.
fn header(name: &str, size: u64, mtime: u64) -> Result<[u8; BLOCK as usize], OvaError> {
    let mut h = Header::new_ustar();
    h.set_path(name)
        .map_err(|_| OvaError::Name(name.to_string()))?;
    h.set_entry_type(EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_username("root")
        .map_err(|_| OvaError::Name(name.to_string()))?;
    h.set_groupname("root")
        .map_err(|_| OvaError::Name(name.to_string()))?;
    h.set_cksum();
    Ok(*h.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn digest_follows_the_hardware_version() {
        assert_eq!(
            ManifestDigest::for_virtual_hardware(11),
            ManifestDigest::Sha1
        );
        assert_eq!(
            ManifestDigest::for_virtual_hardware(13),
            ManifestDigest::Sha256
        );
        assert_eq!(
            ManifestDigest::for_virtual_hardware(19),
            ManifestDigest::Sha512
        );
        assert_eq!(
            manifest_line(
                ManifestDigest::Sha1,
                "a.ovf",
                &ManifestDigest::Sha1.hex(b"abc")
            ),
            "SHA1(a.ovf)= a9993e364706816aba3e25717850c26c9cd0d89d\n"
        );
    }

    /// GNU tar lists the members in order, extracts them intact, and every manifest line
    /// matches `sha256sum` of the extracted member.
    #[test]
    fn tar_and_sha256sum_accept_the_package() {
        let dir = tempfile::tempdir().unwrap();
        let disk_path = dir.path().join("disk.vmdk");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut w = DigestWriter::new(File::create(&disk_path).unwrap(), ManifestDigest::Sha256);
        w.write_all(&data).unwrap();
        let (hex, n) = w.finish().unwrap();
        assert_eq!(n, data.len() as u64);
        let disk = File::open(&disk_path).unwrap();
        let ova = dir.path().join("x.ova");
        let out = File::create(&ova).unwrap();
        let r = write_ova(
            &out,
            "x.ovf",
            b"<Envelope/>\n",
            &[PackageFile {
                name: "x-disk1.vmdk",
                file: &disk,
                digest_hex: hex,
            }],
            ManifestDigest::Sha256,
            1_700_000_000,
        )
        .unwrap();
        assert_eq!(r.manifest_name, "x.mf");
        assert_eq!(std::fs::metadata(&ova).unwrap().len(), r.size);
        assert_eq!(r.size % RECORD, 0);
        let list = Command::new("tar").arg("-tf").arg(&ova).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&list.stdout),
            "x.ovf\nx.mf\nx-disk1.vmdk\n"
        );
        let x = dir.path().join("x");
        std::fs::create_dir(&x).unwrap();
        let st = Command::new("tar")
            .arg("-xf")
            .arg(&ova)
            .arg("-C")
            .arg(&x)
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(std::fs::read(x.join("x-disk1.vmdk")).unwrap(), data);
        // The manifest, rewritten as sha256sum's input, checks out.
        let sums: String = std::fs::read_to_string(x.join("x.mf"))
            .unwrap()
            .lines()
            .map(|l| {
                let (name, hex) = l
                    .strip_prefix("SHA256(")
                    .and_then(|l| l.split_once(")= "))
                    .unwrap_or_else(|| panic!("bad manifest line {l:?}"));
                format!("{hex}  {name}\n")
            })
            .collect();
        std::fs::write(dir.path().join("sums"), sums).unwrap();
        let st = Command::new("sha256sum")
            .args(["-c", "--strict", "../sums"])
            .current_dir(&x)
            .status()
            .unwrap();
        assert!(st.success());
        let st = Command::new("tar")
            .arg("-tf")
            .arg(&ova)
            .arg("--format=ustar")
            .status();
        assert!(st.unwrap().success());
    }

    #[test]
    fn refuses_a_descriptor_that_is_not_ovf() {
        let f = tempfile::tempfile().unwrap();
        let e = write_ova(&f, "x.xml", b"", &[], ManifestDigest::Sha256, 0).unwrap_err();
        assert!(e.to_string().contains("x.xml"), "{e}");
    }
}
