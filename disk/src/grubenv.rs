//! GRUB's environment block (`include/grub/lib/envblk.h`, `grub-core/lib/envblk.c`): a file
//! of a fixed size, 1024 bytes as `grub-editenv create` makes it, that starts with
//! `# GRUB Environment Block\n`, then `name=value\n` lines (a backslash escapes a backslash or
//! a newline in a value), padded to its size with `#`. GRUB's `save_env` rewrites the whole
//! block in place through the file's sectors and never changes its size.

/// `GRUB_ENVBLK_SIGNATURE`.
pub const ENVBLK_SIGNATURE: &[u8] = b"# GRUB Environment Block\n";
/// `DEFAULT_ENVBLK_SIZE`.
pub const ENVBLK_SIZE: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvBlockError {
    #[error("not a GRUB environment block (no \"# GRUB Environment Block\" signature)")]
    NoSignature,
    #[error("the variables need {needed} bytes, more than the block's {size}")]
    TooSmall { needed: usize, size: usize },
    #[error(
        "variable name {0:?} is empty, starts with '#' (a comment line) or holds '=' or a newline"
    )]
    BadName(String),
}

/// The variables of a block, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvBlock {
    vars: Vec<(String, String)>,
}

impl EnvBlock {
    /// Parse as `grub_envblk_iterate` does: comment lines (`#…`) are skipped, a line without
    /// `=` ends the variables.
    pub fn parse(block: &[u8]) -> Result<EnvBlock, EnvBlockError> {
        let body = block
            .strip_prefix(ENVBLK_SIGNATURE)
            .ok_or(EnvBlockError::NoSignature)?;
        let mut vars = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            if rest[0] == b'#' {
                let end = rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |i| i + 1);
                rest = &rest[end..];
                continue;
            }
            let Some(eq) = rest.iter().position(|&b| b == b'=' || b == b'\n') else {
                break;
            };
            if rest[eq] != b'=' {
                break;
            }
            let name = String::from_utf8_lossy(&rest[..eq]).into_owned();
            let mut value = Vec::new();
            let mut i = eq + 1;
            while i < rest.len() && rest[i] != b'\n' {
                if rest[i] == b'\\' && i + 1 < rest.len() {
                    i += 1;
                }
                value.push(rest[i]);
                i += 1;
            }
            vars.push((name, String::from_utf8_lossy(&value).into_owned()));
            rest = &rest[(i + 1).min(rest.len())..];
        }
        Ok(EnvBlock { vars })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Set `name` (replacing its value in place, or appending it).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), EnvBlockError> {
        // A line starting with '#' is a comment to every reader: such a name never reads back.
        if name.is_empty() || name.starts_with('#') || name.contains(['=', '\n']) {
            return Err(EnvBlockError::BadName(name.into()));
        }
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some(v) => v.1 = value.into(),
            None => self.vars.push((name.into(), value.into())),
        }
        Ok(())
    }

    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }

    /// The block of `size` bytes (`ENVBLK_SIZE` for a new file).
    pub fn render(&self, size: usize) -> Result<Vec<u8>, EnvBlockError> {
        let mut out = ENVBLK_SIGNATURE.to_vec();
        for (name, value) in &self.vars {
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            for &b in value.as_bytes() {
                if b == b'\\' || b == b'\n' {
                    out.push(b'\\');
                }
                out.push(b);
            }
            out.push(b'\n');
        }
        if out.len() > size {
            return Err(EnvBlockError::TooSmall {
                needed: out.len(),
                size,
            });
        }
        out.resize(size, b'#');
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn round_trip_with_escapes() {
        let mut e = EnvBlock::default();
        e.set("a_prio", "1").unwrap();
        e.set("odd", "x\\y\nz").unwrap();
        e.set("a_prio", "2").unwrap();
        let b = e.render(ENVBLK_SIZE).unwrap();
        assert_eq!(b.len(), 1024);
        assert!(b.starts_with(b"# GRUB Environment Block\na_prio=2\nodd=x\\\\y\\\nz\n#"));
        assert_eq!(EnvBlock::parse(&b).unwrap(), e);
        assert_eq!(
            e.set("#x", "1"),
            Err(EnvBlockError::BadName("#x".into())),
            "a name GRUB would read as a comment line"
        );
        assert_eq!(EnvBlock::parse(&b).unwrap().get("odd"), Some("x\\y\nz"));
    }

    #[test]
    fn errors_are_named() {
        assert_eq!(
            EnvBlock::parse(b"#GRUB\n").unwrap_err(),
            EnvBlockError::NoSignature
        );
        let mut e = EnvBlock::default();
        e.set("x", &"v".repeat(2000)).unwrap();
        assert!(matches!(
            e.render(ENVBLK_SIZE),
            Err(EnvBlockError::TooSmall { size: 1024, .. })
        ));
        assert!(e.set("a=b", "1").is_err());
    }

    #[test]
    fn grub_editenv_reads_ours_and_we_read_its() {
        // grub-editenv (grub-common) is GRUB's own userland codec of the same block.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("grubenv");
        let mut e = EnvBlock::default();
        e.set("a_prio", "1").unwrap();
        e.set("b_tries", "15").unwrap();
        std::fs::write(&p, e.render(ENVBLK_SIZE).unwrap()).unwrap();
        let out = Command::new("grub-editenv")
            .arg(&p)
            .arg("list")
            .output()
            .expect("grub-editenv (grub-common)");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "a_prio=1\nb_tries=15\n"
        );
        let ok = Command::new("grub-editenv")
            .arg(&p)
            .args(["set", "b_tries=14", "next_entry=x"])
            .status()
            .unwrap();
        assert!(ok.success());
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 1024);
        let back = EnvBlock::parse(&bytes).unwrap();
        assert_eq!(back.get("b_tries"), Some("14"));
        assert_eq!(back.get("next_entry"), Some("x"));
        assert_eq!(back.get("a_prio"), Some("1"));
    }
}
