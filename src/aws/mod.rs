//! Everything that talks to AWS: credentials per account and one adapter per service.
//!
//! The engine sees AWS only through [`PolicyBackend`]: locate a resource, read its policy, write it,
//! delete it.

mod account;
mod calls;
mod credentials;
mod ecr;
mod error;
mod events;
mod iam;
mod identity;
mod inventory;
mod kms;
mod lambda;
mod policies;
mod rds;
mod retry;
mod roles;
mod s3;
mod sagemaker;
mod secrets;
mod snapshots;
mod sns;
mod sqs;

pub use account::{AccountAccess, AssumeRole};
pub use calls::{ApiCall, CallLog, CallOutcome};
pub use credentials::{ATTEMPT_TIMEOUT, Connector, ConnectorOptions};
pub use error::{AwsError, AwsErrorKind};
pub use identity::POLICY_NAME as INLINE_POLICY_NAME;
pub use kms::KeyInfo;
pub use policies::{AwsPolicies, PolicyBackend, TargetRef};
pub use rds::SnapshotInfo;
pub use retry::{DEFAULT_CALL_TIMEOUT, DEFAULT_MAX_ATTEMPTS, RetryBudget};
pub use roles::CREATED_BY_TAG;
pub use s3::Encryption;
pub use snapshots::{AwsSnapshots, SnapshotBackend};
