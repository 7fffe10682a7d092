//! The owner/mode manifest (`--owners FILE`): one `path uid gid mode` per line, octal mode,
//! `-` for "keep the source's value", `#` comments. Paths are relative to the tree root
//! (a leading `/` is accepted; `/` alone is the root).

use super::{Ext4Error, Override};
use std::path::PathBuf;

pub fn parse(text: &str) -> Result<Vec<Override>, Ext4Error> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| {
            Ext4Error::Invalid(format!("owners manifest line {}: {what}: {line:?}", n + 1))
        };
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 4 {
            return Err(bad("expected `path uid gid mode`"));
        }
        let num = |s: &str, radix: u32, what: &str| -> Result<Option<u32>, Ext4Error> {
            if s == "-" {
                return Ok(None);
            }
            u32::from_str_radix(s, radix)
                .map(Some)
                .map_err(|_| bad(what))
        };
        let mode = num(f[3], 8, "mode is not octal")?;
        if mode.is_some_and(|m| m > 0o7777) {
            return Err(bad("mode has bits beyond 07777"));
        }
        out.push(Override {
            path: PathBuf::from(f[0].trim_start_matches('/')),
            uid: num(f[1], 10, "uid is not a number")?,
            gid: num(f[2], 10, "gid is not a number")?,
            mode,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_dashes() {
        let o = parse("# owners\n/ 0 0 755\nbin/su 0 0 4755\nshare/x - 50 -\n").unwrap();
        assert_eq!(o.len(), 3);
        assert_eq!(o[0].path, PathBuf::from(""));
        assert_eq!(o[1].mode, Some(0o4755));
        assert_eq!((o[2].uid, o[2].gid, o[2].mode), (None, Some(50), None));
    }

    #[test]
    fn rejects_bad_lines() {
        assert!(parse("a 0 0 9\n")
            .unwrap_err()
            .to_string()
            .contains("line 1"));
        assert!(parse("a 0 0\n").is_err());
    }
}
