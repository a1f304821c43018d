//! Prometheus metrics. Labels are bounded categories (kinds, outcomes, reasons, operation names),
//! never error text.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::{Arc, RwLock};

use super::conditions::{READY, find};
use super::index::GrantIndex;
use crate::aws::CallLog;
use crate::engine::{Reason, Report};

/// Labels of the reconcile counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `CrossAccountGrant`, `SnapshotShare` or `AwsAccount`.
    pub kind: &'static str,
    /// `success`; `waiting` (a grant waiting for its AwsAccounts or the caches); `failed` (the
    /// object ended not Ready for another reason: AWS refused, a bad spec, an account that cannot be
    /// reached); `error` (the reconcile itself failed: a Kubernetes API call, a revocation that
    /// must be retried).
    pub outcome: String,
}

/// The outcome of a grant reconcile that went through, from the `Ready` condition it left:
/// `success` when Ready (or, mode Observe, `Pending`: the differences are reported, which is its
/// job), `waiting` for `AccountNotReady`, else `failed` (see [`Reason::metric_outcome`]).
pub fn grant_outcome(status: &str, reason: &str) -> &'static str {
    if status == "True" {
        return "success";
    }
    Reason::parse(reason).map_or("failed", Reason::metric_outcome)
}

/// Labels with just the kind.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `CrossAccountGrant` or `AwsAccount`.
    pub kind: &'static str,
}

/// Labels of the drift counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DriftLabels {
    /// `found` or `corrected`.
    pub event: &'static str,
}

/// Every metric of the controller.
#[derive(Debug)]
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    durations: Family<KindLabels, Histogram>,
    drift: Family<DriftLabels, Counter>,
    gc_removed: Counter,
    engine_runs: Counter,
    policy_sizes: PolicySizes,
}

impl Metrics {
    /// Metrics reading AWS calls from `calls` and grant states from `grants` at scrape time.
    pub fn new(calls: CallLog, grants: Arc<RwLock<GrantIndex>>) -> Self {
        let mut registry = Registry::with_prefix("xacct");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by kind and outcome",
            reconciles.clone(),
        );
        let durations = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 14))
        });
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration by kind",
            durations.clone(),
        );
        let drift = Family::<DriftLabels, Counter>::default();
        registry.register(
            "drift",
            "Drift found and corrected in grants' statements",
            drift.clone(),
        );
        let gc_removed = Counter::default();
        registry.register(
            "gc_removed_statements",
            "Statements of grants that no longer exist removed by garbage collection",
            gc_removed.clone(),
        );
        let engine_runs = Counter::default();
        registry.register(
            "engine_runs",
            "Engine runs: one per run on a resource, plus grants run alone and Observe plans",
            engine_runs.clone(),
        );
        registry.register_collector(Box::new(AwsCalls(calls)));
        registry.register_collector(Box::new(GrantStates(grants)));
        let policy_sizes = PolicySizes::default();
        registry.register_collector(Box::new(policy_sizes.clone()));
        Metrics {
            registry,
            reconciles,
            durations,
            drift,
            gc_removed,
            engine_runs,
            policy_sizes,
        }
    }

    /// Counts one engine run.
    pub fn engine_run(&self) {
        self.engine_runs.inc();
    }

    /// Counts one reconcile and its duration.
    pub fn reconciled(&self, kind: &'static str, outcome: &str, started: Instant) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind,
                outcome: outcome.to_string(),
            })
            .inc();
        self.durations
            .get_or_create(&KindLabels { kind })
            .observe(started.elapsed().as_secs_f64());
    }

    /// Counts drift found (and corrected, when it was).
    pub fn drift(&self, corrected: bool) {
        self.drift
            .get_or_create(&DriftLabels { event: "found" })
            .inc();
        if corrected {
            self.drift
                .get_or_create(&DriftLabels { event: "corrected" })
                .inc();
        }
    }

    /// Records the size of each policy `report` says is in AWS now: merged without a change, or
    /// written; a policy deleted is forgotten.
    pub fn policy_sizes(&self, report: &Report) {
        let mut sizes = self
            .policy_sizes
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for t in report.targets.iter().filter(|t| t.error.is_none()) {
            let key = (t.account.clone(), t.kind.clone(), t.arn.clone());
            match (&t.size, t.action, t.done) {
                (_, "delete", true) => {
                    sizes.remove(&key);
                }
                (Some(size), "none", _) | (Some(size), _, true) => {
                    sizes.insert(key, size.ratio());
                }
                _ => {}
            }
        }
    }

    /// Counts statements removed by garbage collection.
    pub fn gc_removed(&self, statements: u64) {
        self.gc_removed.inc_by(statements);
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    service: String,
    operation: String,
    outcome: &'static str,
}

/// AWS API call attempts by service, operation and outcome, from the connector's call log.
#[derive(Debug)]
struct AwsCalls(CallLog);

impl prometheus_client::collector::Collector for AwsCalls {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let family = Family::<CallLabels, Counter>::default();
        for (call, count) in self.0.snapshot() {
            let labels = CallLabels {
                service: call.service,
                operation: call.operation,
                outcome: call.outcome.as_str(),
            };
            family.get_or_create(&labels).inc_by(count);
        }
        let metric = encoder.encode_descriptor(
            "aws_api_calls",
            "AWS API call attempts (retries included) by service, operation and outcome (throttled counted apart)",
            None,
            family.metric_type(),
        )?;
        family.encode(metric)
    }
}

/// Labels of the policy size gauge: bounded by accounts and kinds of policy, never one per policy.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SizeLabels {
    account: String,
    kind: String,
}

/// Each policy's size as a share of its limit, by (account, kind, ARN), as the last run on it
/// found; exposed as the fullest policy of each account and kind.
#[derive(Debug, Clone, Default)]
struct PolicySizes(Arc<Mutex<HashMap<PolicyOf, f64>>>);

/// A policy by account, kind and ARN.
type PolicyOf = (String, String, String);

impl prometheus_client::collector::Collector for PolicySizes {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut fullest: BTreeMap<(&str, &str), f64> = BTreeMap::new();
        let sizes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for ((account, kind, _), ratio) in sizes.iter() {
            let max = fullest.entry((account, kind)).or_insert(0.0);
            *max = max.max(*ratio);
        }
        let family = Family::<SizeLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        for ((account, kind), ratio) in fullest {
            family
                .get_or_create(&SizeLabels {
                    account: account.into(),
                    kind: kind.into(),
                })
                .set(ratio);
        }
        drop(sizes);
        let metric = encoder.encode_descriptor(
            "policy_size_ratio",
            "Size of the fullest policy of each account and kind against its limit (0 to 1)",
            None,
            family.metric_type(),
        )?;
        family.encode(metric)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadyLabels {
    ready: String,
}

/// Grants by their Ready status, from the controller's cache.
#[derive(Debug)]
struct GrantStates(Arc<RwLock<GrantIndex>>);

impl prometheus_client::collector::Collector for GrantStates {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let family = Family::<ReadyLabels, Gauge>::default();
        let mut counts = [0i64; 3];
        let index = self.0.read().unwrap_or_else(|e| e.into_inner());
        index.for_each_status(|status| {
            let slot = match find(&status.conditions, READY).map(|c| c.status.as_str()) {
                Some("True") => 0,
                Some("False") => 1,
                _ => 2,
            };
            counts[slot] += 1;
        });
        drop(index);
        for (ready, count) in ["True", "False", "Unknown"].into_iter().zip(counts) {
            family
                .get_or_create(&ReadyLabels {
                    ready: ready.into(),
                })
                .set(count);
        }
        let metric = encoder.encode_descriptor(
            "grants",
            "Grants by Ready status",
            None,
            family.metric_type(),
        )?;
        family.encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PolicySize;
    use crate::controller::fixtures::{report, target_report};
    use crate::engine::TargetReport;

    #[test]
    fn a_grant_that_ends_not_ready_is_counted_as_failed_unless_it_waits_for_an_account() {
        assert_eq!(grant_outcome("True", "Applied"), "success");
        assert_eq!(grant_outcome("True", "Converged"), "success");
        assert_eq!(grant_outcome("False", "Pending"), "success");
        assert_eq!(grant_outcome("False", "AccountNotReady"), "waiting");
        for reason in ["AccessDenied", "InvalidSpec", "Throttled", "PolicyRejected"] {
            assert_eq!(grant_outcome("False", reason), "failed", "{reason}");
        }
        assert_eq!(grant_outcome("Unknown", "Unknown"), "failed");
    }

    #[test]
    fn reconciles_are_exposed_by_kind_and_outcome() {
        let metrics = Metrics::new(CallLog::default(), Arc::default());
        let started = Instant::now();
        metrics.reconciled(
            "CrossAccountGrant",
            grant_outcome("False", "AccessDenied"),
            started,
        );
        metrics.reconciled(
            "CrossAccountGrant",
            grant_outcome("True", "Applied"),
            started,
        );
        metrics.reconciled(
            "CrossAccountGrant",
            grant_outcome("True", "Converged"),
            started,
        );
        let text = metrics.encode();
        assert!(
            text.contains(r#"xacct_reconciles_total{kind="CrossAccountGrant",outcome="failed"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"xacct_reconciles_total{kind="CrossAccountGrant",outcome="success"} 2"#
            ),
            "{text}"
        );
    }

    /// `action` on the policy `arn` of `account`, `used` bytes of 1,000.
    fn policy(
        account: &str,
        arn: &str,
        used: u32,
        action: &'static str,
        done: bool,
    ) -> TargetReport {
        TargetReport {
            arn: arn.into(),
            account: account.into(),
            size: Some(PolicySize {
                used,
                limit: 1000,
                unit: "bytes".into(),
            }),
            ..target_report("any", action, done)
        }
    }

    #[test]
    fn the_policy_size_gauge_shows_the_fullest_policy_of_each_account_and_kind() {
        let metrics = Metrics::new(CallLog::default(), Arc::default());
        metrics.policy_sizes(&report(vec![
            policy("data", "arn:aws:s3:::a", 250, "none", false),
            policy("data", "arn:aws:s3:::b", 850, "put", true),
            policy("ml", "arn:aws:s3:::c", 100, "put", true),
            // Planned, not written (Observe): not what AWS holds.
            policy("ml", "arn:aws:s3:::d", 990, "put", false),
        ]));
        let text = metrics.encode();
        let gauge = |account: &str| {
            format!(r#"xacct_policy_size_ratio{{account="{account}",kind="S3BucketPolicy"}} "#)
        };
        assert!(text.contains(&format!("{}0.85", gauge("data"))), "{text}");
        assert!(text.contains(&format!("{}0.1\n", gauge("ml"))), "{text}");
        // The fullest one deleted: the next fullest.
        metrics.policy_sizes(&report(vec![policy(
            "data",
            "arn:aws:s3:::b",
            0,
            "delete",
            true,
        )]));
        let text = metrics.encode();
        assert!(text.contains(&format!("{}0.25", gauge("data"))), "{text}");
        assert_eq!(
            text.matches("xacct_policy_size_ratio{").count(),
            2,
            "{text}"
        );
    }
}
