//! Getting release files from a mirror, shared by `coreos-install` and `coreos-update`:
//! HTTP(S) with retries and resume that never splices two files (`http`, `resume`), finding a
//! release on a mirror through its `version.txt` (`mirror`), and progress for the person at the
//! console (`progress`). Errors (`FetchError`) name the URL and what failed.

#![forbid(unsafe_code)]

pub mod content_range;
pub mod error;
pub mod http;
pub mod mirror;
pub mod progress;
pub mod resume;

pub use error::FetchError;
pub use http::{HttpClient, HttpOptions};
pub use resume::ResumingReader;
