//! The reasons of the `Ready` condition of grants and shares, in one place with what each means
//! for whoever reacts to it: the CLI's exit status, the controller's next look, events and
//! metrics.

use std::fmt;

use serde::{Serialize, Serializer};

/// Declares [`Reason`] once: each variant's name is the reason a status and an event carry, and
/// [`Reason::ALL`] lists them all.
macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// The reason of a grant's or share's `Ready` condition.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $($(#[$doc])* $name,)*
        }

        impl Reason {
            /// Every reason.
            pub const ALL: &'static [Reason] = &[$(Reason::$name,)*];

            /// The CamelCase name a status and an event carry.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => stringify!($name),)*
                }
            }
        }
    };
}

reasons! {
    /// Statements written in this run.
    Applied,
    /// Nothing to change.
    Converged,
    /// A snapshot share was written.
    Shared,
    /// A plan: statements would change.
    Pending,
    /// Statements removed (deleting).
    Revoked,
    /// A plan of a deletion: statements would be removed.
    RevokePending,
    /// Deleted with `deletionPolicy: Retain`: statements handed over, left in place.
    Retained,
    /// A share's snapshot and key access taken back.
    Unshared,
    /// A plan of unsharing.
    UnsharePending,
    /// A snapshot copy is being made.
    CopyInProgress,
    /// The snapshot is not available yet.
    SnapshotNotAvailable,
    /// A field of the spec is wrong.
    InvalidSpec,
    /// An account's `allowedNamespaces` does not list the namespace.
    NamespaceNotAllowed,
    /// The principal `*` without the account's `allowPublicPrincipals`.
    PublicPrincipalNotAllowed,
    /// An organization grantee the resource's account does not list in `allowedOrganizations`.
    OrganizationNotAllowed,
    /// An automated snapshot must be copied first, and the share does not allow it.
    CopyRequired,
    /// A snapshot cannot be shared with more accounts.
    ShareQuotaExceeded,
    /// The snapshot's key cannot be shared (an AWS managed key).
    KeyUnusable,
    /// Something the grant names does not exist.
    NotFound,
    /// The managed role lacks a permission.
    AccessDenied,
    /// AWS throttled the calls.
    Throttled,
    /// AWS did not answer.
    AwsUnavailable,
    /// AWS refused the document.
    PolicyRejected,
    /// AWS refused the document because it does not know a principal the grant names: one that
    /// does not exist, or one created moments ago that IAM has not propagated yet.
    PrincipalNotFound,
    /// The merged policy would be over the service's limit.
    PolicyTooLarge,
    /// The current policy is not a policy xacct can read.
    UnreadablePolicy,
    /// The account cannot be reached (AssumeRole failed, or another account's credentials).
    AccountNotReady,
    /// Any other AWS refusal.
    AwsError,
    /// The engine cannot do this (no RDS access).
    NotSupported,
    /// No result.
    Unknown,
}

/// What a reason asks of whoever reacts to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Done, or a plan of what would be done: not an error.
    Settled,
    /// Waiting for AWS to finish something: looked at again soon, not an error.
    Waiting,
    /// Waits for a change of the object or its accounts (a spec to fix, consent to give): no
    /// retry with backoff, only the resync.
    NeedsChange,
    /// A failure that may pass by itself: retried with backoff.
    Retry,
}

impl Reason {
    /// The reason named `name` (as a status carries it), if it is one of these.
    pub fn parse(name: &str) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| r.as_str() == name)
    }

    /// What the reason asks for.
    pub fn class(self) -> Class {
        use Reason::*;
        match self {
            Applied | Converged | Shared | Pending | Revoked | RevokePending | Retained
            | Unshared | UnsharePending => Class::Settled,
            CopyInProgress | SnapshotNotAvailable => Class::Waiting,
            InvalidSpec
            | NamespaceNotAllowed
            | PublicPrincipalNotAllowed
            | OrganizationNotAllowed
            | CopyRequired => Class::NeedsChange,
            ShareQuotaExceeded | KeyUnusable | NotFound | AccessDenied | Throttled
            | AwsUnavailable | PolicyRejected | PrincipalNotFound | PolicyTooLarge
            | UnreadablePolicy | AccountNotReady | AwsError | NotSupported | Unknown => {
                Class::Retry
            }
        }
    }

    /// Whether the object failed (a CLI run exits 1; the controller warns).
    pub fn is_failure(self) -> bool {
        matches!(self.class(), Class::NeedsChange | Class::Retry)
    }

    /// Whether an account refused its consent: what the object was given is taken back.
    pub fn withdraws_consent(self) -> bool {
        matches!(
            self,
            Reason::NamespaceNotAllowed
                | Reason::PublicPrincipalNotAllowed
                | Reason::OrganizationNotAllowed
        )
    }

    /// Whether AWS refused a whole document for a reason one grant's statements may cause.
    pub fn may_be_one_grants_fault(self) -> bool {
        matches!(
            self,
            Reason::PolicyRejected | Reason::PrincipalNotFound | Reason::AwsError
        )
    }

    /// The outcome label of `xacct_reconciles_total` for an object left with this reason.
    pub fn metric_outcome(self) -> &'static str {
        match self {
            Reason::AccountNotReady => "waiting",
            r if r.class() == Class::Waiting => "waiting",
            r if r.is_failure() => "failed",
            _ => "success",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for Reason {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<String> for Reason {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_serialize_as_their_names() {
        assert_eq!(
            serde_json::to_value(Reason::PublicPrincipalNotAllowed).ok(),
            Some(serde_json::json!("PublicPrincipalNotAllowed"))
        );
        assert_eq!(Reason::NotFound.to_string(), "NotFound");
        assert!(Reason::InvalidSpec == "InvalidSpec");
        for &reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(Reason::parse("DriftDetected"), None);
    }

    #[test]
    fn each_reason_has_one_class_and_outcome() {
        assert_eq!(Reason::Pending.class(), Class::Settled);
        assert!(!Reason::Pending.is_failure());
        assert_eq!(Reason::CopyInProgress.metric_outcome(), "waiting");
        assert_eq!(Reason::AccountNotReady.metric_outcome(), "waiting");
        assert_eq!(Reason::AccountNotReady.class(), Class::Retry);
        assert_eq!(Reason::InvalidSpec.class(), Class::NeedsChange);
        assert_eq!(Reason::Throttled.metric_outcome(), "failed");
        assert_eq!(Reason::Converged.metric_outcome(), "success");
        assert!(Reason::NamespaceNotAllowed.withdraws_consent());
        assert!(Reason::OrganizationNotAllowed.withdraws_consent());
        assert_eq!(Reason::OrganizationNotAllowed.class(), Class::NeedsChange);
        assert!(!Reason::InvalidSpec.withdraws_consent());
    }
}
