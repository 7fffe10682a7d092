//! HTTP(S) requests with retries: reqwest's blocking client over rustls, trusting the built-in
//! webpki roots, the system's roots (/etc/ssl/certs, `SSL_CERT_FILE`) when it has any, and a
//! private CA given with `HttpOptions::ca_file`. It honours HTTP_PROXY/HTTPS_PROXY/NO_PROXY and
//! resolves with hickory, so no NSS is needed in an initramfs.

use crate::error::{error_chain, FetchError};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

/// Longest wait between two tries ("matches curl" in coreos-installer; shorter here, an
/// installer is usually watched by a person).
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Small files (version.txt, signatures) are read whole; anything larger is not one of them.
const SMALL_FILE_LIMIT: u64 = 1 << 20;

/// How patient the client is with a server.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Tries after the first, for a request and for each interruption of a body.
    pub retries: u32,
    /// A connection that sends nothing for this long, or whose rate stays below `min_speed`
    /// over this long, is dropped and resumed (curl's --speed-time).
    pub stall_timeout: Duration,
    /// Bytes per second a body must average over `stall_timeout` (curl's --speed-limit).
    pub min_speed: u64,
    /// Extra trusted CA certificates (PEM) for HTTPS mirrors behind a private CA.
    pub ca_file: Option<PathBuf>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            retries: 5,
            stall_timeout: Duration::from_secs(30),
            min_speed: 1024,
            ca_file: None,
        }
    }
}

/// The shared HTTP client: cheap to clone (one connection pool), so readers own their copy.
#[derive(Clone)]
pub struct HttpClient {
    client: Client,
    options: HttpOptions,
}

/// Why one try failed, and whether another try may help.
enum TryError {
    Retry(FetchError),
    Fatal(FetchError),
}

impl HttpClient {
    /// `user_agent` names the program ("coreos-install/0.1.0"), so mirrors can tell installs
    /// from updates.
    pub fn new(user_agent: &str, options: HttpOptions) -> Result<Self, FetchError> {
        let mut builder = Client::builder()
            .user_agent(user_agent)
            .connect_timeout(options.stall_timeout)
            // Per read of a body, and until the headers arrive: a stall, not a deadline.
            .timeout(options.stall_timeout);
        if let Some(path) = &options.ca_file {
            let ca_err = |reason: String| FetchError::CaFile {
                path: path.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_err(error_chain(&e)))?;
            if certs.is_empty() {
                return Err(ca_err("no PEM certificate in it".into()));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder
            .build()
            .map_err(|e| FetchError::Client(error_chain(&e)))?;
        Ok(HttpClient { client, options })
    }

    pub fn options(&self) -> &HttpOptions {
        &self.options
    }

    pub fn retries(&self) -> u32 {
        self.options.retries
    }

    /// The delay before try number `attempt` (1-based): 1 s, 2 s, 4 s, ... capped.
    pub fn backoff(attempt: u32) -> Duration {
        let d = Duration::from_secs(1u64 << attempt.saturating_sub(1).min(16));
        d.min(MAX_BACKOFF)
    }

    /// GET `url` whole; retries connect errors, timeouts and 408/429/5xx.
    /// `Ok(None)` means 404/410 (absent), which callers may treat as an answer.
    pub fn open(&self, url: &str) -> Result<Option<Response>, FetchError> {
        self.with_retries(url, || self.client.get(url))
    }

    /// One try of GET `url` from byte `start` on, with `If-Range` the entity tag or date the
    /// download started with, so a changed file comes back whole (200) instead of as a spliced
    /// range. The caller counts the tries: `Err((true, e))` is worth another.
    pub(crate) fn try_range(
        &self,
        url: &str,
        start: u64,
        if_range: Option<&str>,
    ) -> Result<Option<Response>, (bool, FetchError)> {
        let mut req = self
            .client
            .get(url)
            .header(reqwest::header::RANGE, format!("bytes={start}-"));
        if let Some(v) = if_range {
            req = req.header(reqwest::header::IF_RANGE, v);
        }
        try_send(url, req).map_err(|e| match e {
            TryError::Retry(e) => (true, e),
            TryError::Fatal(e) => (false, e),
        })
    }

    fn with_retries(
        &self,
        url: &str,
        request: impl Fn() -> RequestBuilder,
    ) -> Result<Option<Response>, FetchError> {
        let mut attempt = 0;
        loop {
            match try_send(url, request()) {
                Ok(r) => return Ok(r),
                Err(TryError::Fatal(e)) => return Err(e),
                Err(TryError::Retry(e)) => {
                    attempt += 1;
                    if attempt > self.options.retries {
                        return Err(FetchError::GaveUp {
                            tries: attempt,
                            last: Box::new(e),
                        });
                    }
                    let wait = Self::backoff(attempt);
                    tracing::warn!(
                        "{e}; retrying in {}s ({attempt}/{})",
                        wait.as_secs(),
                        self.options.retries
                    );
                    std::thread::sleep(wait);
                }
            }
        }
    }

    /// A small file read whole (version.txt, a signature); `Ok(None)` when the server says 404.
    pub fn get_optional(&self, url: &str) -> Result<Option<Vec<u8>>, FetchError> {
        let mut attempt = 0;
        loop {
            let Some(resp) = self.open(url)? else {
                return Ok(None);
            };
            let mut body = Vec::new();
            match resp.take(SMALL_FILE_LIMIT + 1).read_to_end(&mut body) {
                Ok(_) if body.len() as u64 > SMALL_FILE_LIMIT => {
                    return Err(FetchError::TooLong {
                        url: url.to_string(),
                        length: SMALL_FILE_LIMIT,
                    })
                }
                Ok(_) => return Ok(Some(body)),
                Err(e) => {
                    let e = FetchError::Request {
                        url: url.to_string(),
                        reason: format!("reading the body: {}", io_reason(&e)),
                    };
                    attempt += 1;
                    if attempt > self.options.retries {
                        return Err(FetchError::GaveUp {
                            tries: attempt,
                            last: Box::new(e),
                        });
                    }
                    tracing::warn!("{e}; retrying");
                    std::thread::sleep(Self::backoff(attempt));
                }
            }
        }
    }

    /// A small file that must exist.
    pub fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        self.get_optional(url)?.ok_or_else(|| FetchError::NotFound {
            url: url.to_string(),
        })
    }
}

fn try_send(url: &str, req: RequestBuilder) -> Result<Option<Response>, TryError> {
    let resp = req.send().map_err(|e| {
        TryError::Retry(FetchError::Request {
            url: url.to_string(),
            reason: error_chain(&e),
        })
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(Some(resp));
    }
    if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
        return Ok(None);
    }
    let e = FetchError::Status {
        url: url.to_string(),
        status: status.as_u16(),
    };
    if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        Err(TryError::Retry(e))
    } else {
        Err(TryError::Fatal(e))
    }
}

/// The reason inside an I/O error from a body read (reqwest wraps its own error in it).
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.get_ref() {
        Some(inner) => error_chain(inner),
        None => e.to_string(),
    }
}
