//! One writer per policy at a time within a process: reconciles of different grants on the same
//! bucket are serialized from the re-read to the write, so they never lose each other's statements,
//! while different policies proceed in parallel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// Locks keyed by target ARN.
#[derive(Debug, Default)]
pub struct TargetLocks {
    locks: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

impl TargetLocks {
    /// Waits for, then holds, the lock of `arn` until the guard is dropped.
    pub async fn lock(&self, arn: &str) -> OwnedMutexGuard<()> {
        let lock = {
            // A poisoned map only means another task panicked while inserting; the map is still usable.
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(arn.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_same_target_is_serialized_and_others_are_not() {
        let locks = Arc::new(TargetLocks::default());
        let held = locks.lock("arn:a").await;
        let other = tokio::time::timeout(Duration::from_millis(50), locks.lock("arn:b")).await;
        assert!(other.is_ok(), "another target is free");
        let same = tokio::time::timeout(Duration::from_millis(50), locks.lock("arn:a")).await;
        assert!(same.is_err(), "the same target waits");
        drop(held);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), locks.lock("arn:a"))
                .await
                .is_ok()
        );
    }
}
