//! Getting release files from a mirror, shared by `coreos-install` and `coreos-update`:
//! HTTP(S) with retries and resume (`http`, `resume`), finding a release on a mirror through
//! its `version.txt` (`mirror`), and progress for the person at the console (`progress`).

pub mod http;
pub mod mirror;
pub mod progress;
pub mod resume;

pub use http::HttpClient;
pub use resume::ResumingReader;
