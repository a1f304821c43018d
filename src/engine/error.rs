//! Why a grant did not converge, sorted into the reasons a status and an event carry.

use std::fmt;

use thiserror::Error;

use super::Reason;
use crate::aws::{AwsError, AwsErrorKind};
use crate::policy::{Counted, SizeUnit};

/// One thing wrong with a field of a resource.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.grantee.principals[1]`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why a grant could not be converged. Nothing is written for a grant in error.
#[derive(Debug, Clone, Error)]
pub enum GrantError {
    /// The spec is wrong; waits for a change.
    #[error("{}", join(.0))]
    InvalidSpec(Vec<FieldError>),
    /// The resource's account does not list the grant's namespace in `allowedNamespaces`.
    #[error(
        "{field}: AwsAccount {account} does not allow grants from namespace {namespace} (spec.allowedNamespaces)"
    )]
    NamespaceNotAllowed {
        /// The field naming the account.
        field: &'static str,
        /// The AwsAccount.
        account: String,
        /// The grant's namespace.
        namespace: String,
    },
    /// A principal is `*` (anyone), and the resource's account does not set
    /// `allowPublicPrincipals`.
    #[error(
        "{field}: the principal \"*\" (anyone) is refused: AwsAccount {account} does not set allowPublicPrincipals: true"
    )]
    PublicPrincipalNotAllowed {
        /// The field naming `*`.
        field: String,
        /// The resource's AwsAccount.
        account: String,
    },
    /// The grantee is an organization the resource's account does not list in
    /// `allowedOrganizations`.
    #[error(
        "spec.grantee.organization.id: AwsAccount {account} does not allow grants to organization {organization} (spec.allowedOrganizations)"
    )]
    OrganizationNotAllowed {
        /// The resource's AwsAccount.
        account: String,
        /// The organization's id.
        organization: String,
    },
    /// An AWS call failed.
    #[error("{0}")]
    Aws(#[from] AwsError),
    /// The merged policy would be over the service's limit.
    #[error(
        "the policy of {target} would be {size} {unit}, over the limit of {limit}; nothing was written"
    )]
    PolicyTooLarge {
        /// The resource's ARN.
        target: String,
        /// The merged document's size.
        size: usize,
        /// The limit.
        limit: usize,
        /// What is counted.
        unit: SizeUnit,
    },
    /// The merged policy would be over one of the service's count quotas (SQS's).
    #[error(
        "the policy of {target} would have {count} {counted}, over the limit of {limit}; nothing was written"
    )]
    PolicyOverQuota {
        /// The resource's ARN.
        target: String,
        /// What is counted.
        counted: Counted,
        /// How many the merged document has.
        count: usize,
        /// The quota.
        limit: usize,
    },
    /// AWS refused to write a policy because it does not know a principal in it.
    #[error("{0}")]
    PrincipalNotFound(Box<PrincipalRefusal>),
    /// The policy now on the resource cannot be read as a policy; xacct will not rewrite it.
    #[error("the current policy of {target} cannot be read ({reason}); nothing was written")]
    UnreadablePolicy {
        /// The resource's ARN.
        target: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// AWS refusing a policy for a principal it does not know, with the candidates.
#[derive(Debug, Clone, Error)]
#[error("{error}; {}{}", candidates(.added), looked_up(.found))]
pub struct PrincipalRefusal {
    /// AWS's refusal.
    pub error: AwsError,
    /// The principals the refused document added to the policy: the candidates.
    pub added: Vec<String>,
    /// What looking the candidates up in their accounts (the managed ones) found.
    pub found: Vec<String>,
}

impl GrantError {
    /// The status/event reason for this error.
    pub fn reason(&self) -> Reason {
        match self {
            GrantError::InvalidSpec(_) => Reason::InvalidSpec,
            GrantError::NamespaceNotAllowed { .. } => Reason::NamespaceNotAllowed,
            GrantError::PublicPrincipalNotAllowed { .. } => Reason::PublicPrincipalNotAllowed,
            GrantError::OrganizationNotAllowed { .. } => Reason::OrganizationNotAllowed,
            GrantError::PolicyTooLarge { .. } | GrantError::PolicyOverQuota { .. } => {
                Reason::PolicyTooLarge
            }
            GrantError::UnreadablePolicy { .. } => Reason::UnreadablePolicy,
            GrantError::PrincipalNotFound(_) => Reason::PrincipalNotFound,
            GrantError::Aws(e) => match e.kind {
                AwsErrorKind::NotFound => Reason::NotFound,
                AwsErrorKind::AccessDenied => Reason::AccessDenied,
                AwsErrorKind::Throttled => Reason::Throttled,
                AwsErrorKind::Unavailable => Reason::AwsUnavailable,
                AwsErrorKind::InvalidPolicy => Reason::PolicyRejected,
                AwsErrorKind::PrincipalNotFound => Reason::PrincipalNotFound,
                AwsErrorKind::AssumeRoleFailed | AwsErrorKind::AccountMismatch => {
                    Reason::AccountNotReady
                }
                AwsErrorKind::Other => Reason::AwsError,
            },
        }
    }

    /// Whether an account refused its consent to the grant (its namespace, a public principal):
    /// the statements the grant wrote are then taken away, not left in place as for a bad spec.
    pub fn withdraws_consent(&self) -> bool {
        self.reason().withdraws_consent()
    }

    /// Whether a retry later may succeed without a change to the spec.
    pub fn is_transient(&self) -> bool {
        match self {
            GrantError::Aws(e) => e.kind.is_transient(),
            _ => false,
        }
    }
}

/// Which principals a refusal for an unknown principal may be about.
fn candidates(added: &[String]) -> String {
    match added {
        [] => "the write adds no principal: one already in the policy may have been deleted".into(),
        added => format!(
            "the principal(s) this write adds: {} (a role or user that does not exist, or one created moments ago that IAM has not propagated yet)",
            added.join(", ")
        ),
    }
}

fn looked_up(found: &[String]) -> String {
    if found.is_empty() {
        String::new()
    } else {
        format!("; {}", found.join("; "))
    }
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
