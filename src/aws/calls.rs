//! A record of every AWS API call, through an SDK interceptor (for tests, benchmarks and metrics).
//!
//! Every attempt is counted, retries included, as the caller saw it: a call the SDK retried after
//! a throttle counts one `Throttled` and one `Success`. Counting only the final outcome would hide
//! every throttle the retries absorbed, which is what an operator needs to see before they fail.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use super::error::is_throttling_code;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CallOutcome {
    /// A 2xx answer.
    Success,
    /// Throttled (429, 503, or a throttling error code, such as IAM's `Throttling` in a 400).
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

/// Counts of API calls (each attempt, retries included), shared by every client a
/// [`crate::aws::Connector`] builds.
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

    fn read_after_attempt(
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
                if (200..300).contains(&status) {
                    CallOutcome::Success
                } else if status == 429
                    || status == 503
                    || error_code(response).is_some_and(|c| is_throttling_code(&c))
                {
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

/// AWS's error code in an error response: the `x-amzn-errortype` header (JSON protocols), else
/// `__type` or `code` in a JSON body, else `<Code>` in an XML body (S3, and the query protocols of
/// IAM and STS, whose throttling errors are 400s with the code in the body only). The body is in
/// memory by the time an attempt ends, the SDK having read it to parse the error.
fn error_code(response: &HttpResponse) -> Option<String> {
    if let Some(error_type) = response.headers().get("x-amzn-errortype") {
        return error_type.split(':').next().map(str::to_string);
    }
    let body = std::str::from_utf8(response.body().bytes()?)
        .ok()?
        .trim_start();
    if body.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(body).ok()?;
        let code = json.get("__type").or_else(|| json.get("code"))?.as_str()?;
        return code.rsplit('#').next().map(str::to_string);
    }
    let start = body.find("<Code>")? + "<Code>".len();
    let end = body[start..].find("</Code>")? + start;
    Some(body[start..end].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::body::SdkBody;

    fn response(status: u16, body: &'static str) -> HttpResponse {
        HttpResponse::new(status.try_into().expect("a status"), SdkBody::from(body))
    }

    #[test]
    fn error_codes_come_from_the_header_or_a_json_or_xml_body() {
        let mut kms = response(
            400,
            r#"{"__type":"com.amazon.coral.availability#ThrottlingException","message":"Rate exceeded"}"#,
        );
        assert_eq!(error_code(&kms).as_deref(), Some("ThrottlingException"));
        kms.headers_mut().insert(
            "x-amzn-errortype",
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/",
        );
        assert_eq!(error_code(&kms).as_deref(), Some("ThrottlingException"));
        let iam = response(
            400,
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
        );
        assert_eq!(error_code(&iam).as_deref(), Some("Throttling"));
        let s3 = response(404, "<Error><Code>NoSuchBucketPolicy</Code></Error>");
        assert_eq!(error_code(&s3).as_deref(), Some("NoSuchBucketPolicy"));
        assert_eq!(error_code(&response(500, "")), None);
        assert_eq!(error_code(&response(400, "{not json")), None);
    }
}
