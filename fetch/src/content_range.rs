//! The `Content-Range` of a 206 answer (RFC 9110 §14.4): `bytes FIRST-LAST/COMPLETE`, where
//! COMPLETE may be `*` (unknown). A server's header is untrusted text: anything else, a range
//! whose last byte comes before its first, or one that ends past the complete length, is
//! refused (None), never wrapped or trusted.

/// A satisfied byte range: bytes `start..=end` of a representation of `total` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub start: u64,
    pub end: u64,
    pub total: Option<u64>,
}

/// `1*DIGIT` as a u64 (Rust's parse would also take a `+` sign).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parse a `Content-Range` value; None unless it is a valid satisfied byte range.
pub fn parse(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.trim().split_once('-')?;
    let (start, end) = (digits(start)?, digits(end)?);
    let total = match total.trim() {
        "*" => None,
        t => Some(digits(t)?),
    };
    if end < start || total.is_some_and(|t| end >= t) {
        return None;
    }
    Some(ContentRange { start, end, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satisfied_ranges_parse() {
        assert_eq!(
            parse("bytes 100-199/1000"),
            Some(ContentRange {
                start: 100,
                end: 199,
                total: Some(1000)
            })
        );
        assert_eq!(
            parse("bytes 5-9/*").map(|r| (r.start, r.total)),
            Some((5, None))
        );
        let max = u64::MAX;
        assert_eq!(
            parse(&format!("bytes 0-{}/{max}", max - 1)).map(|r| r.end),
            Some(max - 1)
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "items 1-2/3",
            "bytes */1000",
            "bytes 200-100/1000",
            "bytes 0-1000/1000",
            "bytes +1-2/3",
            "bytes 1--2/3",
            "bytes 1-2/-3",
            "bytes 0-18446744073709551616/*",
            "bytes -/",
            "",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
