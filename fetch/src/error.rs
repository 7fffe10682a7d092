//! What can go wrong getting a file from a mirror; every error names the URL and what failed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    #[error("CA file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    /// The request did not get an answer (DNS, connect, TLS, timeout).
    #[error("GET {url}: {reason}")]
    Request { url: String, reason: String },
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: HTTP 404 Not Found")]
    NotFound { url: String },
    /// Retries ran out; `last` is the last failure.
    #[error("{last} (gave up after {tries} tries)")]
    GaveUp { tries: u32, last: Box<FetchError> },
    /// A body that stopped, stalled or crawled, and could not be resumed within the retries.
    #[error("{url}: download stopped at byte {pos}{of}: {reason} (gave up after {tries} tries)")]
    Stopped {
        url: String,
        pos: u64,
        of: String,
        reason: String,
        tries: u32,
    },
    /// The file on the server is not the one the download started with: never spliced.
    #[error("{url}: the file changed on the server while it was downloaded ({what}); start again")]
    Changed { url: String, what: String },
    #[error("{url}: bad Content-Range {value:?} in the answer to a request from byte {pos}")]
    BadRange {
        url: String,
        value: String,
        pos: u64,
    },
    #[error("{url}: the server sent more than its Content-Length of {length} bytes")]
    TooLong { url: String, length: u64 },
    /// No version.txt where the mirror layout puts one: most often `-b` is not the board folder.
    #[error("version.txt unavailable: {url}: HTTP 404 Not Found (the mirror URL must be the folder holding <version>/version.txt)")]
    NoVersionTxt { url: String },
    #[error("{url}: has no COREOS_VERSION= line")]
    NoVersion { url: String },
}

impl FetchError {
    /// As an `io::Error` for `Read` implementations, keeping this error as its source.
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }
}

/// reqwest's Display hides the cause ("error sending request"); the chain names it.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}
