//! How hard xacct tries one AWS call: enough attempts to ride out throttling, a bound on the whole
//! call so that a dead endpoint still fails in bounded time.
//!
//! The SDK's standard retry mode (exponential backoff with full jitter, at most
//! [`MAX_BACKOFF`] between attempts, AWS's `x-amz-retry-after` honoured up to that), with more
//! attempts than its default 3: at 30% throttling about 3% of calls fail three times, so one `apply`
//! of a few thousand calls would fail. Like Terraform's AWS provider (25 attempts, no retry quota),
//! the SDK's retry quota (a token bucket that stops retrying once a few hundred retries failed) is
//! off: under sustained throttling it would fail calls that the next attempt would have completed,
//! and the attempt count and the call timeout already bound the work.

use std::time::Duration;

use aws_smithy_runtime::client::retries::{RetryPartition, TokenBucket};
use aws_smithy_types::retry::RetryConfig;

/// Attempts per call, the first included, unless configured (`--max-attempts`).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// The longest one call may take, every attempt and wait included, unless configured
/// (`--call-timeout`).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest wait between two attempts (the SDK's default).
pub const MAX_BACKOFF: Duration = Duration::from_secs(20);
/// The first wait's upper bound (the SDK's default); it doubles at each attempt.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);

/// How many attempts a call gets and how long it may take in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudget {
    /// Attempts per call, the first included (1: no retry).
    pub max_attempts: u32,
    /// The longest one call may take, every attempt and wait included. A call cut short fails as
    /// unavailable (`AwsUnavailable`), whatever its attempts said.
    pub call_timeout: Duration,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }
}

impl RetryBudget {
    /// The SDK retry configuration of this budget.
    pub fn retry_config(&self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.max_attempts.max(1))
            .with_initial_backoff(INITIAL_BACKOFF)
            .with_max_backoff(MAX_BACKOFF)
    }

    /// The retry partition every client shares: no retry quota.
    pub fn partition() -> RetryPartition {
        RetryPartition::custom("xacct")
            .token_bucket(TokenBucket::unlimited())
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_sets_the_sdk_attempts_and_backoff() {
        let config = RetryBudget {
            max_attempts: 7,
            call_timeout: Duration::from_secs(5),
        }
        .retry_config();
        assert_eq!(config.max_attempts(), 7);
        assert_eq!(config.max_backoff(), MAX_BACKOFF);
        assert_eq!(config.initial_backoff(), INITIAL_BACKOFF);
        assert_eq!(RetryBudget::default().retry_config().max_attempts(), 10);
    }
}
