//! AWS API call counts by operation, from xacct's call log, the controller's /metrics or the naive
//! script, and how they compare with the minimum.

use std::collections::BTreeMap;

use xacct::aws::{ApiCall, CallOutcome};

use super::capacity::thousands;

/// Calls of one operation: answered with success, and with an error (a policy that does not
/// exist yet is an error answer to a read, and still a read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// 2xx answers.
    pub ok: u64,
    /// Error or throttling answers.
    pub failed: u64,
}

impl Count {
    /// Every call.
    pub fn total(&self) -> u64 {
        self.ok + self.failed
    }
}

/// Counts by `(service, operation)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calls(pub BTreeMap<(String, String), Count>);

/// Reads of a policy (one per target is the minimum).
const READS: &[&str] = &[
    "GetBucketPolicy",
    "GetRepositoryPolicy",
    "GetKeyPolicy",
    "GetRole",
];
/// Writes of a policy (one per changed target is the minimum).
const WRITES: &[&str] = &[
    "PutBucketPolicy",
    "SetRepositoryPolicy",
    "PutKeyPolicy",
    "UpdateAssumeRolePolicy",
    "DeleteBucketPolicy",
    "DeleteRepositoryPolicy",
];

impl Calls {
    /// From a connector's call log.
    pub fn from_log(snapshot: &BTreeMap<ApiCall, u64>) -> Calls {
        let mut calls = Calls::default();
        for (call, n) in snapshot {
            calls.add(
                &call.service,
                &call.operation,
                call.outcome == CallOutcome::Success,
                *n,
            );
        }
        calls
    }

    /// From the controller's `xacct_aws_api_calls_total` metric.
    pub fn from_metrics(text: &str) -> Calls {
        let mut calls = Calls::default();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("xacct_aws_api_calls_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            let label = |name: &str| {
                labels
                    .split(',')
                    .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
                    .map(|v| v.trim_end_matches('"').to_string())
                    .unwrap_or_default()
            };
            let n: f64 = value.trim().parse().unwrap_or(0.0);
            calls.add(
                &label("service"),
                &label("operation"),
                label("outcome") == "success",
                n as u64,
            );
        }
        calls
    }

    /// From the naive script's `[service, operation, outcome, count]` rows.
    pub fn from_rows(rows: &serde_json::Value) -> Calls {
        let mut calls = Calls::default();
        for row in rows.as_array().into_iter().flatten() {
            calls.add(
                row[0].as_str().unwrap_or_default(),
                row[1].as_str().unwrap_or_default(),
                row[2].as_str() == Some("success"),
                row[3].as_u64().unwrap_or(0),
            );
        }
        calls
    }

    fn add(&mut self, service: &str, operation: &str, ok: bool, n: u64) {
        let count = self
            .0
            .entry((service.to_string(), operation.to_string()))
            .or_default();
        if ok {
            count.ok += n;
        } else {
            count.failed += n;
        }
    }

    /// What was counted after `earlier`.
    pub fn since(&self, earlier: &Calls) -> Calls {
        let mut out = Calls::default();
        for (key, count) in &self.0 {
            let before = earlier.0.get(key).copied().unwrap_or_default();
            let delta = Count {
                ok: count.ok.saturating_sub(before.ok),
                failed: count.failed.saturating_sub(before.failed),
            };
            if delta.total() > 0 {
                out.0.insert(key.clone(), delta);
            }
        }
        out
    }

    /// Every call.
    pub fn total(&self) -> u64 {
        self.0.values().map(Count::total).sum()
    }

    /// Policy reads.
    pub fn reads(&self) -> u64 {
        self.matching(READS)
    }

    /// Policy writes.
    pub fn writes(&self) -> u64 {
        self.matching(WRITES)
    }

    fn matching(&self, operations: &[&str]) -> u64 {
        self.0
            .iter()
            .filter(|((_, op), _)| operations.contains(&op.as_str()))
            .map(|(_, c)| c.total())
            .sum()
    }

    /// Calls of one operation.
    pub fn get(&self, service: &str, operation: &str) -> Count {
        self.0
            .get(&(service.to_string(), operation.to_string()))
            .copied()
            .unwrap_or_default()
    }
}

/// Whether an operation is a policy read, a policy write, or something else.
pub fn class(operation: &str) -> &'static str {
    if READS.contains(&operation) {
        "read"
    } else if WRITES.contains(&operation) {
        "write"
    } else {
        "other"
    }
}

/// `n` with thousands separators, and the failed calls in parentheses when there are any.
pub fn show(count: Count) -> String {
    let total = thousands(count.total());
    if count.failed > 0 {
        format!("{total} ({} errors)", thousands(count.failed))
    } else {
        total
    }
}
