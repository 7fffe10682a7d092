//! A `Read` over an HTTP body that survives the connection dropping, stalling or crawling: it
//! reopens the URL with `Range: bytes=<pos>-` and carries on, so the bytes handed on (and
//! verified) are the joined stream. What it never does is splice two different files:
//!
//! - the first answer's identity (strong ETag, else Last-Modified, and Content-Length) goes
//!   into `If-Range` on every resume, so a server that has a new file answers 200 with it;
//! - a 200 to a resume is either the same file from its start (a server that ignores Range:
//!   its head is skipped) or a changed one (`FetchError::Changed`), told apart by that identity;
//! - a 206 must continue at the byte asked for, of the same total length and identity.
//!
//! A body shorter than its Content-Length counts as a drop. A connection that sends nothing for
//! the stall timeout, or less than the minimum speed over it (a one-byte-a-second drip), is
//! dropped and resumed. Tries are counted from the last time the download kept its speed, so a
//! server that always crawls ends in an error naming the URL and the byte counts.

use crate::content_range::{self, ContentRange};
use crate::error::FetchError;
use crate::http::{io_reason, HttpClient};
use reqwest::blocking::Response;
use reqwest::header::{HeaderMap, CONTENT_RANGE, ETAG, LAST_MODIFIED};
use reqwest::StatusCode;
use std::io::{self, Read};
use std::time::Instant;

/// What identifies the file a download started with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    etag: Option<String>,
    last_modified: Option<String>,
}

impl Identity {
    fn of(headers: &HeaderMap) -> Identity {
        let get = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Identity {
            etag: get(ETAG),
            last_modified: get(LAST_MODIFIED),
        }
    }

    /// The `If-Range` validator: a strong ETag, else the date (RFC 9110 13.1.5; a weak ETag
    /// may not be used there).
    fn if_range(&self) -> Option<&str> {
        match &self.etag {
            Some(e) if !e.starts_with("W/") => Some(e),
            _ => self.last_modified.as_deref(),
        }
    }

    /// How `other` differs from this identity, if it does (a validator missing on one side
    /// proves nothing).
    fn differs(&self, other: &Identity) -> Option<String> {
        let pairs = [
            ("ETag", &self.etag, &other.etag),
            ("Last-Modified", &self.last_modified, &other.last_modified),
        ];
        pairs.iter().find_map(|(name, a, b)| match (a, b) {
            (Some(a), Some(b)) if a != b => Some(format!("{name} {a} became {b}")),
            _ => None,
        })
    }
}

/// Bytes received since `start`, for the speed check.
struct Window {
    start: Instant,
    bytes: u64,
}

impl Window {
    fn new() -> Window {
        Window {
            start: Instant::now(),
            bytes: 0,
        }
    }
}

pub struct ResumingReader {
    client: HttpClient,
    url: String,
    body: Option<Response>,
    pos: u64,
    /// Content-Length of the first response: the stream's promised size.
    total: Option<u64>,
    identity: Identity,
    /// Failed tries since the download last kept its speed over a whole window.
    failures: u32,
    window: Window,
    /// Set when the current connection turned out too slow after its bytes were handed on:
    /// the next read drops it.
    too_slow: Option<String>,
}

impl ResumingReader {
    /// Opens `url` (retrying as `HttpClient::open`); `Ok(None)` when it is absent (404).
    pub fn open(client: &HttpClient, url: &str) -> Result<Option<Self>, FetchError> {
        let Some(resp) = client.open(url)? else {
            return Ok(None);
        };
        let total = resp.content_length();
        let identity = Identity::of(resp.headers());
        Ok(Some(ResumingReader {
            client: client.clone(),
            url: url.to_string(),
            body: Some(resp),
            pos: 0,
            total,
            identity,
            failures: 0,
            window: Window::new(),
            too_slow: None,
        }))
    }

    pub fn total(&self) -> Option<u64> {
        self.total
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Count a failed try and wait before the next, or give up.
    fn fail(&mut self, reason: String) -> Result<(), FetchError> {
        self.body = None;
        self.failures += 1;
        if self.failures > self.client.retries() {
            return Err(FetchError::Stopped {
                url: self.url.clone(),
                pos: self.pos,
                of: self
                    .total
                    .map(|t| format!(" of {t} (Content-Length)"))
                    .unwrap_or_default(),
                reason,
                tries: self.failures,
            });
        }
        let wait = HttpClient::backoff(self.failures);
        tracing::warn!(
            "{}: {reason} at byte {}; resuming in {}s ({}/{})",
            self.url,
            self.pos,
            wait.as_secs(),
            self.failures,
            self.client.retries()
        );
        std::thread::sleep(wait);
        Ok(())
    }

    /// Reopen at `pos`. `Err(Ok(reason))` is worth another try; `Err(Err(e))` is final.
    fn reopen(&mut self) -> Result<(), Result<String, FetchError>> {
        let resp = match self
            .client
            .try_range(&self.url, self.pos, self.identity.if_range())
        {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Err(Err(FetchError::Changed {
                    url: self.url.clone(),
                    what: format!("it is gone (HTTP 404) when resuming at byte {}", self.pos),
                }))
            }
            Err((true, e)) => return Err(Ok(format!("reopening: {e}"))),
            Err((false, FetchError::Status { status: 416, .. })) => {
                return Err(Err(FetchError::Changed {
                    url: self.url.clone(),
                    what: format!("it no longer reaches byte {} (HTTP 416)", self.pos),
                }))
            }
            Err((false, e)) => return Err(Err(e)),
        };
        let identity = Identity::of(resp.headers());
        if let Some(what) = self.identity.differs(&identity) {
            return Err(Err(FetchError::Changed {
                url: self.url.clone(),
                what,
            }));
        }
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                let value = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let Some(ContentRange { start, total, .. }) = content_range::parse(&value) else {
                    return Err(Err(FetchError::BadRange {
                        url: self.url.clone(),
                        value,
                        pos: self.pos,
                    }));
                };
                if start != self.pos {
                    return Err(Err(FetchError::BadRange {
                        url: self.url.clone(),
                        value,
                        pos: self.pos,
                    }));
                }
                if let (Some(a), Some(b)) = (self.total, total) {
                    if a != b {
                        return Err(Err(FetchError::Changed {
                            url: self.url.clone(),
                            what: format!("its length {a} became {b}"),
                        }));
                    }
                }
                self.body = Some(resp);
            }
            _ => {
                // The whole file again: a server that ignores Range, or (If-Range failed) a
                // new file whose validators we could not compare. The same length and identity
                // mean the former; the bytes already read are skipped.
                if let (Some(a), Some(b)) = (self.total, resp.content_length()) {
                    if a != b {
                        return Err(Err(FetchError::Changed {
                            url: self.url.clone(),
                            what: format!("its length {a} became {b}"),
                        }));
                    }
                }
                tracing::info!(
                    "{}: the server ignored the Range request; skipping the first {} bytes",
                    self.url,
                    self.pos
                );
                let mut resp = resp;
                let skipped = io::copy(&mut (&mut resp).take(self.pos), &mut io::sink())
                    .map_err(|e| Ok(format!("skipping to byte {}: {}", self.pos, io_reason(&e))))?;
                if skipped != self.pos {
                    return Err(Err(FetchError::Changed {
                        url: self.url.clone(),
                        what: format!("it is shorter than the {} bytes already read", self.pos),
                    }));
                }
                self.body = Some(resp);
            }
        }
        self.window = Window::new();
        Ok(())
    }

    /// After `n` bytes arrived: once a whole stall window passed, check its speed.
    fn account(&mut self, n: usize) {
        self.window.bytes += n as u64;
        let opts = self.client.options();
        let elapsed = self.window.start.elapsed();
        if elapsed < opts.stall_timeout {
            return;
        }
        let need = (opts.min_speed as f64 * elapsed.as_secs_f64()) as u64;
        if self.window.bytes < need {
            self.too_slow = Some(format!(
                "too slow: {} bytes in {:.0}s, below {} bytes/s",
                self.window.bytes,
                elapsed.as_secs_f64(),
                opts.min_speed
            ));
        } else {
            self.failures = 0;
        }
        self.window = Window::new();
    }

    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, FetchError> {
        loop {
            if let Some(why) = self.too_slow.take() {
                self.fail(why)?;
            }
            if self.body.is_none() {
                match self.reopen() {
                    Ok(()) => {}
                    Err(Err(fatal)) => return Err(fatal),
                    Err(Ok(why)) => {
                        self.fail(why)?;
                        continue;
                    }
                }
            }
            let body = self.body.as_mut().expect("opened above");
            match body.read(buf) {
                Ok(0) => match self.total {
                    Some(t) if self.pos < t => {
                        self.fail(format!("connection closed {} bytes early", t - self.pos))?;
                    }
                    _ => return Ok(0),
                },
                Ok(n) => {
                    self.pos += n as u64;
                    if let Some(t) = self.total {
                        if self.pos > t {
                            return Err(FetchError::TooLong {
                                url: self.url.clone(),
                                length: t,
                            });
                        }
                    }
                    self.account(n);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let timed_out = e.kind() == io::ErrorKind::TimedOut
                        || e.get_ref()
                            .and_then(|i| i.downcast_ref::<reqwest::Error>())
                            .is_some_and(|r| r.is_timeout());
                    let why = if timed_out {
                        format!(
                            "no data for {}s",
                            self.client.options().stall_timeout.as_secs()
                        )
                    } else {
                        io_reason(&e)
                    };
                    self.fail(why)?;
                }
            }
        }
    }
}

impl Read for ResumingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.read_some(buf).map_err(FetchError::into_io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_validators() {
        let strong = Identity {
            etag: Some("\"abc\"".into()),
            last_modified: Some("Mon, 01 Jan 2024 00:00:00 GMT".into()),
        };
        assert_eq!(strong.if_range(), Some("\"abc\""));
        let weak = Identity {
            etag: Some("W/\"abc\"".into()),
            ..strong.clone()
        };
        assert_eq!(weak.if_range(), Some("Mon, 01 Jan 2024 00:00:00 GMT"));
        let changed = Identity {
            etag: Some("\"def\"".into()),
            ..strong.clone()
        };
        assert!(strong.differs(&changed).unwrap().contains("ETag"));
        let silent = Identity {
            etag: None,
            last_modified: None,
        };
        assert_eq!(strong.differs(&silent), None);
        assert_eq!(strong.differs(&strong.clone()), None);
    }
}
