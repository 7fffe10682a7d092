//! The semaphore value as locksmith keeps it (`lock/semaphore.go`): `{"semaphore":N,"max":M,
//! "holders":[...]}`, holders sorted, created as `{"semaphore":1,"max":1,"holders":null}`.
//! `semaphore` counts free slots; taking one is refused when it is not above zero, checked
//! before whether the holder already has one, exactly as locksmith checks.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Semaphore {
    pub semaphore: i64,
    pub max: i64,
    /// `null` until the first lock (Go's nil slice), `[]` once emptied again.
    pub holders: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SemaphoreError {
    /// locksmith: "semaphore is at N".
    #[error("semaphore is at {0}: every reboot slot is taken")]
    NoSlot(i64),
    /// locksmith: "holder exists".
    #[error("holder exists: {0} already holds a reboot slot")]
    HolderExists(String),
    /// locksmith: "holder does not exist".
    #[error("holder does not exist: {0} holds no reboot slot")]
    NoSuchHolder(String),
}

impl Default for Semaphore {
    /// What locksmith creates when the key is absent: one slot.
    fn default() -> Semaphore {
        Semaphore {
            semaphore: 1,
            max: 1,
            holders: None,
        }
    }
}

impl Semaphore {
    pub fn holders(&self) -> &[String] {
        self.holders.as_deref().unwrap_or_default()
    }

    pub fn lock(&mut self, holder: &str) -> Result<(), SemaphoreError> {
        if self.semaphore <= 0 {
            return Err(SemaphoreError::NoSlot(self.semaphore));
        }
        let holders = self.holders.get_or_insert_with(Vec::new);
        match holders.binary_search_by(|h| h.as_str().cmp(holder)) {
            Ok(_) => return Err(SemaphoreError::HolderExists(holder.into())),
            Err(at) => holders.insert(at, holder.into()),
        }
        self.semaphore -= 1;
        Ok(())
    }

    pub fn unlock(&mut self, holder: &str) -> Result<(), SemaphoreError> {
        let holders = self.holders.get_or_insert_with(Vec::new);
        match holders.binary_search_by(|h| h.as_str().cmp(holder)) {
            Ok(at) => {
                holders.remove(at);
            }
            Err(_) => return Err(SemaphoreError::NoSuchHolder(holder.into())),
        }
        self.semaphore += 1;
        Ok(())
    }

    /// locksmith's `SetMax`: the free count moves by the change, so current holders keep
    /// their slots (a lower max can leave the semaphore below zero until they unlock).
    pub fn set_max(&mut self, max: i64) {
        let diff = self.max - max;
        self.semaphore -= diff;
        self.max = max;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_semaphore_is_locksmiths() {
        assert_eq!(
            serde_json::to_string(&Semaphore::default()).unwrap(),
            r#"{"semaphore":1,"max":1,"holders":null}"#
        );
    }

    /// locksmith's semaphore rules, as its `semaphore_test.go` exercises them.
    #[test]
    fn lock_unlock_and_set_max_as_locksmith() {
        let mut s = Semaphore::default();
        s.lock("b").unwrap();
        assert_eq!(s.lock("c"), Err(SemaphoreError::NoSlot(0)));
        s.set_max(3);
        assert_eq!((s.semaphore, s.max), (2, 3));
        assert_eq!(s.lock("b"), Err(SemaphoreError::HolderExists("b".into())));
        s.lock("c").unwrap();
        s.lock("a").unwrap();
        assert_eq!(s.holders(), ["a", "b", "c"], "kept sorted");
        assert_eq!(s.semaphore, 0);
        // A lower max with three holders: below zero until two unlock.
        s.set_max(1);
        assert_eq!((s.semaphore, s.max), (-2, 1));
        assert_eq!(s.lock("d"), Err(SemaphoreError::NoSlot(-2)));
        assert_eq!(s.unlock("d"), Err(SemaphoreError::NoSuchHolder("d".into())));
        for h in ["b", "a", "c"] {
            s.unlock(h).unwrap();
        }
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"semaphore":1,"max":1,"holders":[]}"#
        );
    }

    #[test]
    fn reads_what_locksmith_writes() {
        let s: Semaphore =
            serde_json::from_str(r#"{"semaphore":0,"max":2,"holders":["a1","b2"]}"#).unwrap();
        assert_eq!(
            (s.semaphore, s.max, s.holders()),
            (0, 2, &["a1".to_string(), "b2".into()][..])
        );
    }
}
