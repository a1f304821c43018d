//! Everything that talks to AWS: credentials per account and one adapter per service.
//!
//! The engine sees AWS only through [`PolicyBackend`]: locate a resource, read its policy, write it,
//! delete it.

mod account;
mod calls;
mod credentials;
mod ecr;
mod error;
mod iam;
mod kms;
mod policies;
mod s3;

pub use account::{AccountAccess, AssumeRole};
pub use calls::{ApiCall, CallLog, CallOutcome};
pub use credentials::{Connector, ConnectorOptions};
pub use error::{AwsError, AwsErrorKind};
pub use policies::{AwsPolicies, PolicyBackend, TargetRef};
