//! A record of every AWS API call, through an SDK interceptor (for tests, benchmarks and metrics).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CallOutcome {
    /// A 2xx answer.
    Success,
    /// Throttled (429, 503, or a throttling error type).
    Throttled,
    /// Any other error answer or no answer.
    Error,
}

impl CallOutcome {
    /// A short label.
    pub fn as_str(&self) -> &'static str {
        match self {
            CallOutcome::Success => "success",
            CallOutcome::Throttled => "throttled",
            CallOutcome::Error => "error",
        }
    }
}

/// One API operation (service and operation name, as the SDK names them).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiCall {
    /// e.g. `S3`.
    pub service: String,
    /// e.g. `PutBucketPolicy`.
    pub operation: String,
    /// How it ended.
    pub outcome: CallOutcome,
}

/// Counts of API calls, shared by every client a [`crate::aws::Connector`] builds.
#[derive(Debug, Clone, Default)]
pub struct CallLog {
    counts: Arc<Mutex<BTreeMap<ApiCall, u64>>>,
}

impl CallLog {
    /// Counts so far.
    pub fn snapshot(&self) -> BTreeMap<ApiCall, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Calls of one operation so far, whatever their outcome.
    pub fn count(&self, operation: &str) -> u64 {
        self.snapshot()
            .iter()
            .filter(|(call, _)| call.operation == operation)
            .map(|(_, n)| n)
            .sum()
    }

    /// Calls whose operation name starts with one of `prefixes` (e.g. `Put`, `Set`, `Update`, `Delete`).
    pub fn count_matching(&self, prefixes: &[&str]) -> u64 {
        self.snapshot()
            .iter()
            .filter(|(call, _)| prefixes.iter().any(|p| call.operation.starts_with(p)))
            .map(|(_, n)| n)
            .sum()
    }

    /// Forgets every count.
    pub fn reset(&self) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.clear();
        }
    }

    fn record(&self, call: ApiCall) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(call).or_default() += 1;
        }
    }
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "xacct-call-log"
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_string(), m.name().to_string()))
            .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
        let outcome = match context.response() {
            Some(response) => {
                let status = response.status().as_u16();
                let error_type = response
                    .headers()
                    .get("x-amzn-errortype")
                    .unwrap_or_default();
                if (200..300).contains(&status) {
                    CallOutcome::Success
                } else if status == 429 || status == 503 || error_type.contains("Throttl") {
                    CallOutcome::Throttled
                } else {
                    CallOutcome::Error
                }
            }
            None => CallOutcome::Error,
        };
        self.record(ApiCall {
            service,
            operation,
            outcome,
        });
        Ok(())
    }
}
