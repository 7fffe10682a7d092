//! The SDK's DIGESTS file (`make_digests` in release_util.sh): for each file, an
//! `# MD5 HASH`, `# SHA1 HASH` and `# SHA512 HASH` section with `md5sum`-style lines.

use super::sums::Sums;
use anyhow::{Context, Result};
use std::path::Path;

/// One file's digests under the name it has in the DIGESTS file's folder.
pub struct FileDigests {
    pub name: String,
    pub md5: [u8; 16],
    pub sha1: [u8; 20],
    pub sha512: [u8; 64],
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl FileDigests {
    /// Digests of a file, read once, and its detached signature when `signer` is given.
    pub fn of_file_signed(
        path: &Path,
        signer: Option<keys::DetachedSigner>,
    ) -> Result<(FileDigests, Option<Vec<u8>>)> {
        use std::io::Read;
        let mut f =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut sums = Sums::new(signer);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f
                .read(&mut buf)
                .with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            sums.update(&buf[..n]);
        }
        let s = sums.finish()?;
        Ok((
            FileDigests {
                name: file_name(path),
                md5: s.md5,
                sha1: s.sha1,
                sha512: s.sha512,
            },
            s.signature,
        ))
    }

    pub fn of_file(path: &Path) -> Result<FileDigests> {
        Ok(Self::of_file_signed(path, None)?.0)
    }
}

pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The DIGESTS text: per file, the three sections in the SDK's order.
pub fn render(files: &[FileDigests]) -> String {
    let mut out = String::new();
    for f in files {
        out.push_str(&format!("# MD5 HASH\n{}  {}\n", hex(&f.md5), f.name));
        out.push_str(&format!("# SHA1 HASH\n{}  {}\n", hex(&f.sha1), f.name));
        out.push_str(&format!("# SHA512 HASH\n{}  {}\n", hex(&f.sha512), f.name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_coreutils_format() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.bin.bz2");
        std::fs::write(&p, b"abc").unwrap();
        let text = render(&[FileDigests::of_file(&p).unwrap()]);
        assert_eq!(
            text.lines().take(2).collect::<Vec<_>>(),
            ["# MD5 HASH", "900150983cd24fb0d6963f7d28e17f72  x.bin.bz2"]
        );
        assert!(text.contains("# SHA1 HASH\na9993e364706816aba3e25717850c26c9cd0d89d  x.bin.bz2\n"));
        assert!(text.contains("# SHA512 HASH\nddaf35a193617aba"));
    }
}
