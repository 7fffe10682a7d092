//! Where the compressed image comes from: an HTTP(S) mirror (with retries and resume) or a
//! local file. Both are plain `Read`s so the rest of the pipeline does not care.

pub mod http;
pub mod resume;

pub use http::HttpClient;
pub use resume::ResumingReader;
