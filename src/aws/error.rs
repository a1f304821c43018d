//! AWS errors, sorted into the categories the engine and the controller act on.

use std::fmt;

use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::result::SdkError;
use thiserror::Error;

/// The category of an AWS failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AwsErrorKind {
    /// The resource (bucket, repository, key, role) does not exist.
    NotFound,
    /// The caller may not do this.
    AccessDenied,
    /// AWS asked us to slow down.
    Throttled,
    /// AWS did not answer, or answered 5xx.
    Unavailable,
    /// AWS refused the policy document (syntax, size).
    InvalidPolicy,
    /// AWS refused the policy document because it does not know a principal it names: one that
    /// does not exist, or one created seconds ago that IAM has not propagated yet.
    PrincipalNotFound,
    /// `sts:AssumeRole` into the account failed.
    AssumeRoleFailed,
    /// The credentials act in another account than the AwsAccount says.
    AccountMismatch,
    /// Anything else.
    Other,
}

impl AwsErrorKind {
    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        matches!(self, AwsErrorKind::Throttled | AwsErrorKind::Unavailable)
    }
}

/// A failed AWS call, naming the operation and the account.
#[derive(Debug, Clone, Error)]
#[error("{operation} in account {account_id} failed ({kind}{code}): {message}", code = self.code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
pub struct AwsError {
    /// Category.
    pub kind: AwsErrorKind,
    /// The API operation, e.g. `s3:PutBucketPolicy`.
    pub operation: String,
    /// The account the call was made in.
    pub account_id: String,
    /// AWS's error code, when it gave one.
    pub code: Option<String>,
    /// AWS's message, or what went wrong.
    pub message: String,
}

impl AwsError {
    /// An error of a known kind that did not come from an SDK call.
    pub fn new(
        kind: AwsErrorKind,
        operation: &str,
        account_id: &str,
        message: impl Into<String>,
    ) -> Self {
        AwsError {
            kind,
            operation: operation.into(),
            account_id: account_id.into(),
            code: None,
            message: message.into(),
        }
    }

    /// Classifies an SDK error; `not_found_codes` are the service's codes for a missing resource.
    pub fn from_sdk<E, R>(
        err: &SdkError<E, R>,
        operation: &str,
        account_id: &str,
        not_found_codes: &[&str],
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        let (kind, code, message) = match err {
            SdkError::ServiceError(service) => {
                let e = service.err();
                let code = e.code().map(str::to_string);
                let message = e.message().unwrap_or("no message").to_string();
                let kind = match classify(code.as_deref(), not_found_codes) {
                    AwsErrorKind::InvalidPolicy if names_unknown_principal(&message) => {
                        AwsErrorKind::PrincipalNotFound
                    }
                    kind => kind,
                };
                (kind, code, message)
            }
            SdkError::TimeoutError(_) => (AwsErrorKind::Unavailable, None, "timed out".to_string()),
            SdkError::DispatchFailure(_) => (
                AwsErrorKind::Unavailable,
                None,
                format!("could not reach AWS: {}", source_chain(err)),
            ),
            SdkError::ResponseError(_) => (
                AwsErrorKind::Unavailable,
                None,
                "unreadable response".to_string(),
            ),
            other => (AwsErrorKind::Other, None, source_chain(other)),
        };
        AwsError {
            kind,
            operation: operation.into(),
            account_id: account_id.into(),
            code,
            message,
        }
    }
}

/// Whether an AWS error code says "slow down" (each service has its own).
pub(crate) fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "SlowDown"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "ProvisionedThroughputExceededException"
    )
}

/// Whether a policy refusal's message says a principal is unknown, in the words of S3 and IAM
/// ("Invalid principal in policy"), KMS ("one or more invalid principals"), ECR ("Principal not
/// found"), SNS ("PrincipalNotFound"), Secrets Manager ("unsupported principal") and Lambda ("The
/// provided principal was invalid"). SQS says only
/// "Invalid value for the parameter Policy": its refusals stay `PolicyRejected`.
pub(crate) fn names_unknown_principal(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "invalid principal",
        "principal not found",
        // SNS: "Invalid parameter: Policy Error: PrincipalNotFound".
        "principalnotfound",
        // Secrets Manager: "This resource policy contains an unsupported principal."
        "unsupported principal",
        // Lambda: "The provided principal was invalid. Please check the principal and try again."
        "principal was invalid",
    ]
    .iter()
    .any(|words| message.contains(words))
}

fn classify(code: Option<&str>, not_found_codes: &[&str]) -> AwsErrorKind {
    let Some(code) = code else {
        return AwsErrorKind::Other;
    };
    if not_found_codes.contains(&code) {
        return AwsErrorKind::NotFound;
    }
    match code {
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "SignatureDoesNotMatch"
        | "UnrecognizedClientException" => AwsErrorKind::AccessDenied,
        c if is_throttling_code(c) => AwsErrorKind::Throttled,
        "InternalError"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "KMSInternalException"
        | "ServerException"
        | "ServiceFailure" => AwsErrorKind::Unavailable,
        "MalformedPolicy"
        | "MalformedPolicyDocument"
        | "MalformedPolicyDocumentException"
        | "InvalidParameterException"
        // SNS and SQS refusing the Policy attribute.
        | "InvalidParameter"
        | "InvalidAttributeValue"
        // Lambda refusing AddPermission's statement.
        | "InvalidParameterValueException"
        | "LimitExceeded"
        | "PolicyLengthExceededException" => AwsErrorKind::InvalidPolicy,
        _ => AwsErrorKind::Other,
    }
}

fn source_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl fmt::Display for AwsErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AwsErrorKind::NotFound => "not found",
            AwsErrorKind::AccessDenied => "access denied",
            AwsErrorKind::Throttled => "throttled",
            AwsErrorKind::Unavailable => "unavailable",
            AwsErrorKind::InvalidPolicy => "policy refused",
            AwsErrorKind::PrincipalNotFound => "principal not found",
            AwsErrorKind::AssumeRoleFailed => "assume role failed",
            AwsErrorKind::AccountMismatch => "account mismatch",
            AwsErrorKind::Other => "error",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_sort_into_categories() {
        assert_eq!(
            classify(Some("NoSuchBucket"), &["NoSuchBucket"]),
            AwsErrorKind::NotFound
        );
        assert_eq!(
            classify(Some("AccessDenied"), &[]),
            AwsErrorKind::AccessDenied
        );
        assert_eq!(classify(Some("SlowDown"), &[]), AwsErrorKind::Throttled);
        assert_eq!(
            classify(Some("ThrottlingException"), &[]),
            AwsErrorKind::Throttled
        );
        assert_eq!(
            classify(Some("RequestLimitExceeded"), &[]),
            AwsErrorKind::Throttled
        );
        assert_eq!(
            classify(Some("MalformedPolicy"), &[]),
            AwsErrorKind::InvalidPolicy
        );
        assert_eq!(
            classify(Some("InternalError"), &[]),
            AwsErrorKind::Unavailable
        );
        assert_eq!(classify(Some("Whatever"), &[]), AwsErrorKind::Other);
        // A refused principal is told apart by the message, each service's words.
        for message in [
            "Invalid principal in policy",
            "Invalid principal in policy: \"AWS\":\"arn:aws:iam::111111111111:role/New\"",
            "Policy contains a statement with one or more invalid principals.",
            "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Principal not found'",
            "Invalid parameter: Policy Error: PrincipalNotFound",
            "This resource policy contains an unsupported principal.",
            "The provided principal was invalid. Please check the principal and try again.",
        ] {
            assert!(names_unknown_principal(message), "{message}");
        }
        for message in [
            "Policies must be valid JSON and the first byte must be '{'",
            "Policy has invalid action",
            "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided'",
        ] {
            assert!(!names_unknown_principal(message), "{message}");
        }
        assert_eq!(classify(None, &[]), AwsErrorKind::Other);
    }
}
