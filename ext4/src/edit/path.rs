//! Paths inside the filesystem: absolute, '/'-separated, no "." or ".." components.

use super::EditError;

/// Longest name a directory entry holds.
const EXT4_NAME_LEN: usize = 255;

/// The components of an absolute path (repeated slashes collapse); at least one.
pub(crate) fn components(path: &str) -> Result<Vec<&[u8]>, EditError> {
    let bad = |why: &str| Err(EditError::BadPath(format!("{path:?}: {why}")));
    if !path.starts_with('/') {
        return bad("must be absolute");
    }
    if path.ends_with('/') {
        return bad("names a directory (ends with '/')");
    }
    let mut out = Vec::new();
    for c in path.split('/').filter(|c| !c.is_empty()) {
        if c == "." || c == ".." {
            return bad("\".\" and \"..\" components are not allowed");
        }
        if c.len() > EXT4_NAME_LEN {
            return bad(&format!(
                "component {c:?} is longer than {EXT4_NAME_LEN} bytes"
            ));
        }
        if c.contains('\0') {
            return bad("contains a NUL byte");
        }
        out.push(c.as_bytes());
    }
    if out.is_empty() {
        return bad("names the root directory");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_rejects() {
        assert_eq!(components("/a//b/c").unwrap(), vec![&b"a"[..], b"b", b"c"]);
        for bad in [
            "a/b",
            "/",
            "/a/",
            "/a/../b",
            "/./a",
            &format!("/{}", "x".repeat(256)),
        ] {
            assert!(components(bad).is_err(), "{bad}");
        }
    }
}
