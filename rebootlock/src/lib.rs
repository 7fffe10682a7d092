//! locksmith's reboot lock: a counting semaphore in one etcd key that machines of a fleet take
//! a slot of before rebooting into an update and give back once the new slot is marked good,
//! so at most `max` machines are down at once. The key, the JSON and the compare-and-swap are
//! locksmith's (`coreos.com/updateengine/rebootlock/semaphore`, holder = machine-id), so
//! `locksmithctl` and our tools see one lock.
//!
//! - `semaphore`: the value and its rules;
//! - `store`: a key with a revision; `etcd_v2`: etcd's v2 keys API, locksmith's; `etcd_v3`: the
//!   v3 API (etcd 3.6+ has no v2), the same key and JSON;
//! - `RebootLock`: read, change, compare-and-swap, again when another machine came first.

#![forbid(unsafe_code)]

pub mod etcd_v2;
pub mod etcd_v3;
pub mod semaphore;
pub mod store;

pub use semaphore::{Semaphore, SemaphoreError};
pub use store::{Revision, Store, StoreError};

use std::time::Duration;

/// locksmith's key for the default group.
pub const DEFAULT_KEY: &str = "coreos.com/updateengine/rebootlock/semaphore";
/// How often a compare-and-swap that lost a race is tried again before giving up.
const SWAP_TRIES: u32 = 50;

/// The key of `group`'s semaphore (`LOCKSMITHD_GROUP`), or the default one.
pub fn key_for_group(group: Option<&str>) -> String {
    match group.filter(|g| !g.is_empty()) {
        None => DEFAULT_KEY.to_string(),
        Some(g) => format!(
            "coreos.com/updateengine/rebootlock/groups/{}/semaphore",
            query_escape(g)
        ),
    }
}

/// Go's `url.QueryEscape`, which locksmith applies to a group name: unreserved bytes
/// (`A-Z a-z 0-9 - _ . ~`) stay, a space becomes `+`, every other byte `%XX`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Semaphore(#[from] SemaphoreError),
    #[error("the semaphore's value is not locksmith's JSON ({0})")]
    Value(String),
    #[error("{SWAP_TRIES} compare-and-swaps in a row lost to other writers; try again")]
    Contended,
}

pub struct RebootLock<S> {
    store: S,
}

impl<S: Store> RebootLock<S> {
    pub fn new(store: S) -> Self {
        RebootLock { store }
    }

    /// The semaphore, created as locksmith creates it when absent.
    pub fn status(&self) -> Result<Semaphore, LockError> {
        Ok(self.current()?.0)
    }

    fn current(&self) -> Result<(Semaphore, Revision), LockError> {
        loop {
            if let Some((value, rev)) = self.store.get()? {
                let sem = serde_json::from_str(&value)
                    .map_err(|e| LockError::Value(format!("{e}: {value:?}")))?;
                return Ok((sem, rev));
            }
            // Absent: create it (another machine may do so first; either way, read again).
            let initial = serde_json::to_string(&Semaphore::default()).expect("plain struct");
            self.store.create(&initial)?;
        }
    }

    /// Apply `change` with compare-and-swap, reading again whenever another writer came first.
    /// A refusal by the semaphore's rules is returned as it is, with nothing written.
    pub fn update(
        &self,
        change: impl Fn(&mut Semaphore) -> Result<(), SemaphoreError>,
    ) -> Result<Semaphore, LockError> {
        for attempt in 0..SWAP_TRIES {
            let (mut sem, rev) = self.current()?;
            change(&mut sem)?;
            let value = serde_json::to_string(&sem).expect("plain struct");
            if self.store.swap(&value, rev)? {
                return Ok(sem);
            }
            tracing::debug!("compare-and-swap lost to another writer (try {attempt})");
            std::thread::sleep(Duration::from_millis(5 * u64::from(attempt + 1)));
        }
        Err(LockError::Contended)
    }

    pub fn lock(&self, holder: &str) -> Result<Semaphore, LockError> {
        self.update(|s| s.lock(holder))
    }

    pub fn unlock(&self, holder: &str) -> Result<Semaphore, LockError> {
        self.update(|s| s.unlock(holder))
    }

    /// Returns the old max and the semaphore after the change.
    pub fn set_max(&self, max: i64) -> Result<(i64, Semaphore), LockError> {
        let old = std::cell::Cell::new(0);
        let sem = self.update(|s| {
            old.set(s.max);
            s.set_max(max);
            Ok(())
        })?;
        Ok((old.get(), sem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_keys_are_locksmiths() {
        assert_eq!(key_for_group(None), DEFAULT_KEY);
        assert_eq!(key_for_group(Some("")), DEFAULT_KEY);
        assert_eq!(
            key_for_group(Some("web front/1*~")),
            "coreos.com/updateengine/rebootlock/groups/web+front%2F1%2A~/semaphore"
        );
    }
}
