//! The embed areas of a live ISO: reserved, fixed-size byte ranges that `coreos-install iso
//! customize` rewrites in a copy of the ISO, so one published ISO becomes an unattended
//! installer without rebuilding it (Fedora CoreOS's `coreos-installer iso` does the same).
//!
//! Format (version 1), all found through the ISO 9660 directory:
//! - `/COREOS/EMBED.TXT` is the index, lines of `AREA PATH OFFSET LENGTH` (`#` starts a
//!   comment): `kargs` is a byte range of a GRUB configuration, `config` one of an initrd.
//! - A `kargs` area ends the `linux` line of the live GRUB entry. It holds kernel arguments
//!   separated by spaces, then `#` up to its length (GRUB reads a word starting with `#` as a
//!   comment to the end of the line); pristine, it is all `#`. Arguments are printable ASCII
//!   without GRUB's special characters, so GRUB passes them to the kernel as written.
//! - A `config` area is a whole file the live GRUB entry loads as its last initrd. Pristine it
//!   is zeros, which the kernel skips; customized it is a newc cpio archive holding files under
//!   `coreos-inst/` (`cloud-config.yml`, `key.asc`), then zeros.

use crate::cpio::{self, Member};
use crate::iso9660::{find_file, IsoError};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// The index's path in the volume.
pub const INDEX_PATH: &str = "COREOS/EMBED.TXT";
/// Bytes of the kernel-argument area (x86 Linux takes 2048 bytes of command line in all).
pub const KARGS_AREA_LEN: usize = 1024;
/// Bytes of the configuration image.
pub const CONFIG_AREA_LEN: usize = 256 * 1024;
/// What fills the unused part of a kernel-argument area.
pub const KARGS_PAD: u8 = b'#';
/// The folder of the configuration image's files in the live system's root.
pub const CONFIG_DIR: &str = "coreos-inst";

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(transparent)]
    Iso(#[from] IsoError),
    #[error("I/O at byte {offset}: {source}")]
    Io {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AreaKind {
    Kargs,
    Config,
}

impl AreaKind {
    fn name(self) -> &'static str {
        match self {
            AreaKind::Kargs => "kargs",
            AreaKind::Config => "config",
        }
    }
}

/// One line of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Area {
    pub kind: AreaKind,
    /// Path of the file in the volume (`COREOS/GRUB.CFG`).
    pub path: String,
    /// Offset of the area in that file.
    pub offset: u64,
    pub len: u64,
}

/// The index file's text.
pub fn render_index(areas: &[Area]) -> String {
    let mut s = String::from(
        "# coreos-build live ISO embed areas (format 1): AREA PATH OFFSET LENGTH\n\
         # `coreos-install iso customize` rewrites them in a copy of this ISO.\n",
    );
    for a in areas {
        s.push_str(&format!(
            "{} {} {} {}\n",
            a.kind.name(),
            a.path,
            a.offset,
            a.len
        ));
    }
    s
}

pub fn parse_index(text: &str) -> Result<Vec<Area>, EmbedError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let bad = || EmbedError::Invalid(format!("{INDEX_PATH} line {}: {line:?}", i + 1));
        let w: Vec<&str> = line.split_whitespace().collect();
        let [kind, path, offset, len] = w[..] else {
            return Err(bad());
        };
        let kind = match kind {
            "kargs" => AreaKind::Kargs,
            "config" => AreaKind::Config,
            _ => return Err(bad()),
        };
        out.push(Area {
            kind,
            path: path.to_string(),
            offset: offset.parse().map_err(|_| bad())?,
            len: len.parse().map_err(|_| bad())?,
        });
    }
    Ok(out)
}

/// Whether GRUB passes `arg` to the kernel unchanged (no quoting, variables, or separators).
fn plain_karg(arg: &str) -> bool {
    !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"$\"'\\;|&<>(){}#`".contains(&b))
}

/// A kernel-argument area of `len` bytes holding `kargs`.
pub fn kargs_area(kargs: &[String], len: usize) -> Result<Vec<u8>, EmbedError> {
    if let Some(a) = kargs.iter().find(|a| !plain_karg(a)) {
        return Err(EmbedError::Invalid(format!(
            "kernel argument {a:?}: only printable ASCII without spaces and without any of $\"'\\;|&<>(){{}}#` can be embedded"
        )));
    }
    let mut b = kargs.join(" ").into_bytes();
    if !b.is_empty() {
        b.push(b' ');
    }
    // At least one '#': it is what makes the rest of the line a comment.
    if b.len() + 1 > len {
        return Err(EmbedError::Invalid(format!(
            "the kernel arguments take {} bytes; the ISO's area holds {}",
            b.len() + 1,
            len
        )));
    }
    b.resize(len, KARGS_PAD);
    Ok(b)
}

/// The kernel arguments in an area; an error when the bytes are not an area.
pub fn read_kargs_area(b: &[u8]) -> Result<Vec<String>, EmbedError> {
    let text = std::str::from_utf8(b).ok();
    let args = text.and_then(|t| {
        let end = t.find('#')?;
        let (args, pad) = t.split_at(end);
        (pad.bytes().all(|c| c == KARGS_PAD) && (args.is_empty() || args.ends_with(' '))).then(
            || {
                args.split_whitespace()
                    .map(String::from)
                    .collect::<Vec<_>>()
            },
        )
    });
    match args {
        Some(a) if a.iter().all(|x| plain_karg(x)) => Ok(a),
        _ => Err(EmbedError::Invalid(
            "the kernel-argument area holds something else than arguments and '#' padding".into(),
        )),
    }
}

/// A configuration image of `len` bytes holding `files` (names inside `coreos-inst/`).
pub fn config_area(files: &[(String, Vec<u8>)], len: usize) -> Result<Vec<u8>, EmbedError> {
    if files.is_empty() {
        return Ok(vec![0u8; len]);
    }
    let mut members = vec![(Member::dir(CONFIG_DIR, 1, 0o755, 0), &[][..])];
    let mut names = Vec::new();
    for (i, (name, data)) in files.iter().enumerate() {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(EmbedError::Invalid(format!(
                "configuration file name {name:?} must be a plain file name"
            )));
        }
        names.push((
            Member::file(
                &format!("{CONFIG_DIR}/{name}"),
                i as u32 + 2,
                0o600,
                0,
                data.len() as u64,
            ),
            data,
        ));
    }
    for (m, d) in &names {
        members.push((m.clone(), d.as_slice()));
    }
    let mut b = cpio::archive(&members).map_err(|e| EmbedError::Invalid(e.to_string()))?;
    if b.len() > len {
        return Err(EmbedError::Invalid(format!(
            "the configuration files take {} bytes as a cpio archive; the ISO's area holds {len}",
            b.len()
        )));
    }
    b.resize(len, 0);
    Ok(b)
}

/// The files of a configuration image (names inside `coreos-inst/`); an error when the bytes
/// are neither zeros nor an archive.
pub fn read_config_area(b: &[u8]) -> Result<Vec<(String, Vec<u8>)>, EmbedError> {
    if b.iter().all(|&x| x == 0) {
        return Ok(Vec::new());
    }
    let members = cpio::read_archive(b).ok_or_else(|| {
        EmbedError::Invalid("the configuration area holds neither zeros nor a cpio archive".into())
    })?;
    Ok(members
        .into_iter()
        .filter_map(|(n, d)| {
            n.strip_prefix(&format!("{CONFIG_DIR}/"))
                .map(|f| (f.to_string(), d))
        })
        .collect())
}

/// What an ISO's embed areas say: kernel arguments and configuration files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Customization {
    pub kargs: Vec<String>,
    pub files: Vec<(String, Vec<u8>)>,
}

/// Each area of the ISO: (area, absolute byte offset in the ISO).
fn areas(iso: &File) -> Result<Vec<(Area, u64)>, EmbedError> {
    let (at, len) = find_file(iso, INDEX_PATH)?.ok_or_else(|| {
        EmbedError::Invalid(format!(
            "the ISO has no /{INDEX_PATH}: not a live ISO made by coreos-build"
        ))
    })?;
    let text = read(iso, at, len.min(64 * 1024) as usize)?;
    let mut out = Vec::new();
    for a in parse_index(&String::from_utf8_lossy(&text))? {
        let (file_at, file_len) = find_file(iso, &a.path)?.ok_or_else(|| {
            EmbedError::Invalid(format!(
                "{INDEX_PATH} names /{}, which the ISO lacks",
                a.path
            ))
        })?;
        let limit = match a.kind {
            AreaKind::Kargs => 4096,
            AreaKind::Config => 64 << 20,
        };
        if a.offset.checked_add(a.len).is_none_or(|end| end > file_len) || a.len > limit {
            return Err(EmbedError::Invalid(format!(
                "{INDEX_PATH}: the {} area at {}+{} does not fit in /{} ({file_len} bytes)",
                a.kind.name(),
                a.offset,
                a.len,
                a.path
            )));
        }
        let abs = file_at + a.offset;
        out.push((a, abs));
    }
    Ok(out)
}

fn read(iso: &File, offset: u64, len: usize) -> Result<Vec<u8>, EmbedError> {
    let mut b = vec![0u8; len];
    iso.read_exact_at(&mut b, offset)
        .map_err(|source| EmbedError::Io { offset, source })?;
    Ok(b)
}

/// Read the ISO's areas (every area is checked to hold what its kind allows).
pub fn inspect(iso: &File) -> Result<Customization, EmbedError> {
    let mut c = Customization::default();
    for (a, at) in areas(iso)? {
        let b = read(iso, at, a.len as usize)?;
        let located = |e: EmbedError| {
            EmbedError::Invalid(format!(
                "/{} bytes {}..{}: {e}",
                a.path,
                a.offset,
                a.offset + a.len
            ))
        };
        match a.kind {
            AreaKind::Kargs => c.kargs.extend(read_kargs_area(&b).map_err(located)?),
            AreaKind::Config => c.files.extend(read_config_area(&b).map_err(located)?),
        }
    }
    Ok(c)
}

/// Rewrite every area of `iso` (opened read-write) to hold `c`, replacing what they held. All
/// areas are checked and rendered before the first byte is written.
pub fn customize(iso: &File, c: &Customization) -> Result<(), EmbedError> {
    inspect(iso)?;
    let mut writes = Vec::new();
    let (mut kargs, mut config) = (false, false);
    for (a, at) in areas(iso)? {
        let bytes = match a.kind {
            AreaKind::Kargs => {
                kargs = true;
                kargs_area(&c.kargs, a.len as usize)?
            }
            AreaKind::Config => {
                config = true;
                config_area(&c.files, a.len as usize)?
            }
        };
        writes.push((at, bytes));
    }
    if !kargs || !config {
        return Err(EmbedError::Invalid(format!(
            "{INDEX_PATH} lists no {} area",
            if kargs { "config" } else { "kargs" }
        )));
    }
    for (at, b) in writes {
        iso.write_all_at(&b, at)
            .map_err(|source| EmbedError::Io { offset: at, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kargs_areas_round_trip_and_refuse_grub_syntax() {
        let pristine = kargs_area(&[], 64).unwrap();
        assert!(pristine.iter().all(|&b| b == b'#'));
        assert!(read_kargs_area(&pristine).unwrap().is_empty());
        let args = vec![
            "coreos.inst.install_dev=/dev/vda".to_string(),
            "coreos.inst.base_url=http://10.0.2.100/amd64-usr".to_string(),
        ];
        let a = kargs_area(&args, 128).unwrap();
        assert_eq!(a.len(), 128);
        assert!(a.starts_with(b"coreos.inst.install_dev=/dev/vda coreos.inst.base_url="));
        assert_eq!(read_kargs_area(&a).unwrap(), args);
        for bad in ["a=$x", "a b", "x#y", "a;b", ""] {
            assert!(kargs_area(&[bad.to_string()], 64).is_err(), "{bad:?}");
        }
        assert!(
            kargs_area(&["x".repeat(64)], 64).is_err(),
            "no room for '#'"
        );
        assert!(read_kargs_area(b"console=ttyS0\n####").is_err());
        assert!(read_kargs_area(b"abc").is_err(), "no padding");
    }

    #[test]
    fn config_areas_round_trip() {
        assert!(config_area(&[], 1024).unwrap().iter().all(|&b| b == 0));
        let files = vec![
            ("cloud-config.yml".to_string(), b"#cloud-config\n".to_vec()),
            ("key.asc".to_string(), b"-----BEGIN".to_vec()),
        ];
        let a = config_area(&files, 4096).unwrap();
        assert_eq!(a.len(), 4096);
        assert_eq!(read_config_area(&a).unwrap(), files);
        assert!(config_area(&files, 200).is_err(), "too small");
        assert!(config_area(&[("../x".into(), vec![])], 4096).is_err());
        assert!(read_config_area(&[1u8; 64]).is_err());
    }

    #[test]
    fn index_round_trips() {
        let areas = vec![
            Area {
                kind: AreaKind::Kargs,
                path: "COREOS/GRUB.CFG".into(),
                offset: 812,
                len: 1024,
            },
            Area {
                kind: AreaKind::Config,
                path: "COREOS/CONFIG.IMG".into(),
                offset: 0,
                len: 262144,
            },
        ];
        assert_eq!(parse_index(&render_index(&areas)).unwrap(), areas);
        assert!(parse_index("kargs X 1\n").is_err());
        assert!(parse_index("other X 1 2\n").is_err());
    }
}
