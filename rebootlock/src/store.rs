//! Where the semaphore lives: one key with a revision that compare-and-swap checks.

/// etcd v2's `modifiedIndex` or v3's `mod_revision` of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revision(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Unreachable(String),
    /// The endpoint answers, but not with the API that was chosen.
    #[error("{0}")]
    WrongApi(String),
    #[error("{0}")]
    Protocol(String),
}

pub trait Store {
    /// The key's value and revision, or `None` when it does not exist.
    fn get(&self) -> Result<Option<(String, Revision)>, StoreError>;
    /// Create the key; `false` when it already exists.
    fn create(&self, value: &str) -> Result<bool, StoreError>;
    /// Replace the value if the key is still at `prev`; `false` when another writer came first.
    fn swap(&self, value: &str, prev: Revision) -> Result<bool, StoreError>;
}

/// What both etcd stores start from: the endpoints without a trailing `/`, the key without a
/// leading one (v2 adds its own; v3 keys are plain bytes, locksmith's v2 key without it), and
/// an HTTP client whose timeouts keep a dead endpoint from stalling a reboot decision.
pub(crate) fn connect(
    endpoints: &[String],
    key: &str,
) -> Result<(Vec<String>, String, reqwest::blocking::Client), StoreError> {
    let http = reqwest::blocking::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(|e| StoreError::Unreachable(format!("HTTP client: {e}")))?;
    let endpoints = endpoints
        .iter()
        .map(|e| e.trim_end_matches('/').to_string())
        .collect();
    Ok((endpoints, key.trim_start_matches('/').to_string(), http))
}
