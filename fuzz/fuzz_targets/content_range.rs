//! The `Content-Range` of a server's 206 answer (`fetch::content_range`), untrusted text the
//! resuming download decides by: a generated range parses exactly when it is a satisfied byte
//! range (first <= last < complete), to its own numbers; any text gives a range or None,
//! never a panic.
#![no_main]
use fetch::content_range::{parse, ContentRange};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    start: u64,
    end: u64,
    total: Option<u64>,
    text: String,
}

fuzz_target!(|input: Input| {
    let total = input.total.map_or("*".to_string(), |t| t.to_string());
    let value = format!("bytes {}-{}/{total}", input.start, input.end);
    let valid = input.start <= input.end && input.total.is_none_or(|t| input.end < t);
    let want = valid.then_some(ContentRange {
        start: input.start,
        end: input.end,
        total: input.total,
    });
    assert_eq!(parse(&value), want, "{value}");
    if let Some(r) = parse(&input.text) {
        assert!(
            r.start <= r.end && r.total.is_none_or(|t| r.end < t),
            "{r:?}"
        );
    }
});
