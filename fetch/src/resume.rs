//! A `Read` over an HTTP body that survives the connection dropping: it reopens the URL with
//! a `Range: bytes=<pos>-` request and carries on, so the bytes handed on (and verified) are
//! the joined stream. A body shorter than its Content-Length counts as a drop; one that never
//! completes within the retry budget is an error naming the URL and the byte counts.

use crate::http::{error_chain, HttpClient};
use reqwest::blocking::Response;
use reqwest::StatusCode;
use std::io::{self, Read};

pub struct ResumingReader<'a> {
    client: &'a HttpClient,
    url: String,
    body: Option<Response>,
    pos: u64,
    /// Content-Length of the first response: the stream's promised size.
    total: Option<u64>,
    /// Consecutive failed tries without progress.
    failures: u32,
}

impl<'a> ResumingReader<'a> {
    /// Opens `url`; `Ok(None)` when it is absent (404).
    pub fn open(client: &'a HttpClient, url: &str) -> anyhow::Result<Option<Self>> {
        let Some(resp) = client.open(url, 0)? else {
            return Ok(None);
        };
        let total = resp.content_length();
        Ok(Some(ResumingReader {
            client,
            url: url.to_string(),
            body: Some(resp),
            pos: 0,
            total,
            failures: 0,
        }))
    }

    pub fn total(&self) -> Option<u64> {
        self.total
    }

    fn fail(&mut self, why: String) -> io::Result<()> {
        self.body = None;
        self.failures += 1;
        if self.failures > self.client.retries() {
            let of = self
                .total
                .map(|t| format!(" of {t} (Content-Length)"))
                .unwrap_or_default();
            return Err(io::Error::other(format!(
                "{}: download stopped at byte {}{of}: {why} (gave up after {} tries)",
                self.url, self.pos, self.failures
            )));
        }
        let wait = HttpClient::backoff(self.failures);
        tracing::warn!(
            "{}: {why} at byte {}; resuming in {}s",
            self.url,
            self.pos,
            wait.as_secs()
        );
        std::thread::sleep(wait);
        Ok(())
    }

    /// Reopen at `pos`. A server that ignores Range (200) is read past the bytes we have.
    fn reopen(&mut self) -> io::Result<()> {
        let resp = match self.client.open(&self.url, self.pos) {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Err(io::Error::other(format!(
                    "{}: vanished (HTTP 404) while resuming at byte {}",
                    self.url, self.pos
                )))
            }
            Err(e) => return Err(io::Error::other(format!("{e:#}"))),
        };
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                let range = resp
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let (start, total) = parse_content_range(&range).ok_or_else(|| {
                    io::Error::other(format!(
                        "{}: bad Content-Range {range:?} when resuming",
                        self.url
                    ))
                })?;
                if start != self.pos
                    || (self.total.is_some() && total.is_some() && total != self.total)
                {
                    return Err(io::Error::other(format!(
                        "{}: resumed range {range:?} does not continue byte {} of {:?}: the file changed on the server",
                        self.url, self.pos, self.total
                    )));
                }
                self.body = Some(resp);
            }
            _ => {
                let mut resp = resp;
                let skipped = io::copy(&mut (&mut resp).take(self.pos), &mut io::sink())?;
                if skipped != self.pos {
                    return Err(io::Error::other(format!(
                        "{}: shorter than the {} bytes already read",
                        self.url, self.pos
                    )));
                }
                self.body = Some(resp);
            }
        }
        Ok(())
    }
}

/// `bytes 100-199/1000` -> (100, Some(1000)).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

impl Read for ResumingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.body.is_none() {
                if let Err(e) = self.reopen() {
                    self.fail(format!("reopening: {e}"))?;
                    continue;
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
                    self.failures = 0;
                    if let Some(t) = self.total {
                        if self.pos > t {
                            return Err(io::Error::other(format!(
                                "{}: server sent more than its Content-Length of {t} bytes",
                                self.url
                            )));
                        }
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let why = match e.get_ref() {
                        Some(inner) => error_chain(inner),
                        None => e.to_string(),
                    };
                    self.fail(why)?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 100-199/1000"),
            Some((100, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
