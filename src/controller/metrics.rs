//! Prometheus metrics. Labels are bounded categories (kinds, outcomes, reasons, operation names),
//! never error text.

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
use crate::engine::Reason;

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

/// The outcome of an AwsAccount verification that went through: `success` when Ready, else
/// `failed`.
pub fn account_outcome(status: &str) -> &'static str {
    if status == "True" {
        "success"
    } else {
        "failed"
    }
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
        Metrics {
            registry,
            reconciles,
            durations,
            drift,
            gc_removed,
            engine_runs,
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
        assert_eq!(account_outcome("True"), "success");
        assert_eq!(account_outcome("False"), "failed");
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
}
