//! Per-object exponential backoff with jitter, for failures that may pass by themselves.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Failure counts by object key.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Delays start at `base`, double per consecutive failure, and stop growing at `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
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
}
