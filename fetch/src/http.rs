//! HTTP(S) requests with retries: reqwest's blocking client over rustls (webpki roots), which
//! honours HTTP_PROXY/HTTPS_PROXY/NO_PROXY, and hickory's resolver so no NSS is needed.

use anyhow::{anyhow, bail, Context, Result};
use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use std::time::Duration;

/// Longest wait between two tries ("matches curl" in coreos-installer; shorter here, an
/// installer is usually watched by a person).
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A connection that does not move for this long is dropped and resumed.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

pub struct HttpClient {
    client: Client,
    retries: u32,
}

/// Why one try failed, and whether another try may help.
enum TryError {
    Retry(anyhow::Error),
    Fatal(anyhow::Error),
}

impl HttpClient {
    pub fn new(retries: u32) -> Result<Self> {
        let client = Client::builder()
            .user_agent(concat!("coreos-install/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .timeout(STALL_TIMEOUT)
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(HttpClient { client, retries })
    }

    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// The delay before try number `attempt` (1-based): 1 s, 2 s, 4 s, ... capped.
    pub fn backoff(attempt: u32) -> Duration {
        let d = Duration::from_secs(1u64 << attempt.saturating_sub(1).min(16));
        d.min(MAX_BACKOFF)
    }

    /// GET `url` from byte `start` on; retries connect errors, timeouts and 408/429/5xx.
    /// `Ok(None)` means 404/410 (absent), which callers may treat as an answer.
    pub fn open(&self, url: &str, start: u64) -> Result<Option<Response>> {
        let mut attempt = 0;
        loop {
            match self.try_open(url, start) {
                Ok(r) => return Ok(r),
                Err(TryError::Fatal(e)) => return Err(e),
                Err(TryError::Retry(e)) => {
                    attempt += 1;
                    if attempt > self.retries {
                        return Err(e.context(format!("giving up on {url} after {attempt} tries")));
                    }
                    let wait = Self::backoff(attempt);
                    tracing::warn!(
                        "{e:#}; retrying in {}s ({attempt}/{})",
                        wait.as_secs(),
                        self.retries
                    );
                    std::thread::sleep(wait);
                }
            }
        }
    }

    fn try_open(&self, url: &str, start: u64) -> Result<Option<Response>, TryError> {
        let mut req = self.client.get(url);
        if start > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={start}-"));
        }
        let resp = req.send().map_err(|e| {
            let e = anyhow!("GET {url}: {}", error_chain(&e));
            TryError::Retry(e)
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(Some(resp));
        }
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            return Ok(None);
        }
        let e = anyhow!("GET {url}: HTTP {status}");
        if status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
        {
            Err(TryError::Retry(e))
        } else {
            Err(TryError::Fatal(e))
        }
    }

    /// A small file read whole (version.txt, a signature); `Ok(None)` when the server says 404.
    pub fn get_optional(&self, url: &str) -> Result<Option<Vec<u8>>> {
        let mut attempt = 0;
        loop {
            let Some(resp) = self.open(url, 0)? else {
                return Ok(None);
            };
            match resp.bytes() {
                Ok(b) => return Ok(Some(b.to_vec())),
                Err(e) => {
                    attempt += 1;
                    if attempt > self.retries {
                        bail!("GET {url}: body: {}", error_chain(&e));
                    }
                    std::thread::sleep(Self::backoff(attempt));
                }
            }
        }
    }
}

/// reqwest's Display hides the cause ("error sending request"); the chain names it.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
