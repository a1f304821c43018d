//! Per-object exponential backoff with jitter, for failures that may pass by themselves, and
//! since when each object has been failing in the same way.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// Failure counts by object key.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
    /// When each object started failing with its current failure (its generation and reason).
    since: Mutex<HashMap<String, (String, Timestamp)>>,
}

impl Backoff {
    /// Delays start at `base`, double per consecutive failure, and stop growing at `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
            since: Mutex::new(HashMap::new()),
        }
    }

    /// When `key` started failing with `failure` (what it fails with: a generation and a
    /// reason, say), `now` if it was failing otherwise or not at all. Kept until [`Backoff::reset`].
    pub fn failing_since(&self, key: &str, failure: &str, now: Timestamp) -> Timestamp {
        let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
        let entry = since
            .entry(key.to_string())
            .or_insert_with(|| (failure.to_string(), now));
        if entry.0 != failure {
            *entry = (failure.to_string(), now);
        }
        entry.1
    }

    /// The delay before retrying `key` after one more failure: exponential, capped, with ±20% jitter
    /// so that many objects failing together do not retry together.
    pub fn next_delay(&self, key: &str) -> Duration {
        let attempt = {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            let n = failures.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let exponential = self.base.saturating_mul(1u32 << (attempt - 1).min(16));
        let capped = exponential.min(self.max);
        capped.mul_f64(0.8 + 0.4 * fastrand::f64())
    }

    /// Forgets `key`'s failures (after a success).
    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        self.since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_with_jitter_up_to_the_cap_and_reset() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let delays: Vec<Duration> = (0..10).map(|_| backoff.next_delay("a")).collect();
        for (i, d) in delays.iter().enumerate().take(5) {
            let nominal = Duration::from_secs(1 << i);
            assert!(
                *d >= nominal.mul_f64(0.8) && *d <= nominal.mul_f64(1.2),
                "attempt {i}: {d:?}"
            );
        }
        assert!(delays[9] <= Duration::from_secs(72) && delays[9] >= Duration::from_secs(48));
        assert!(
            backoff.next_delay("b") <= Duration::from_millis(1200),
            "keys are independent"
        );
        backoff.reset("a");
        assert!(backoff.next_delay("a") <= Duration::from_millis(1200));
    }

    #[test]
    fn an_object_fails_since_its_first_failure_of_the_same_kind() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let t = |s| Timestamp::from_second(s).expect("a time");
        assert_eq!(
            backoff.failing_since("a", "1/PrincipalNotFound", t(100)),
            t(100)
        );
        assert_eq!(
            backoff.failing_since("a", "1/PrincipalNotFound", t(160)),
            t(100)
        );
        assert_eq!(
            backoff.failing_since("b", "1/PrincipalNotFound", t(160)),
            t(160)
        );
        // Another generation (or reason) starts again.
        assert_eq!(
            backoff.failing_since("a", "2/PrincipalNotFound", t(170)),
            t(170)
        );
        backoff.reset("a");
        assert_eq!(
            backoff.failing_since("a", "2/PrincipalNotFound", t(200)),
            t(200)
        );
    }
}
