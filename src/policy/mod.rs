//! The IAM policy document model: parsing every valid JSON form, comparison by meaning, statement
//! ownership (Sid markers), the merge that replaces only owned statements, compaction of statements
//! that differ only in their principals, size limits and other quotas (SQS counts statements).
//!
//! Pure: nothing here does I/O.

mod canonical;
mod compact;
mod document;
mod error;
mod merge;
mod ownership;
mod principal;
mod quota;
mod size;

pub use canonical::{CanonicalDocument, CanonicalStatement};
pub use compact::{compact, expand, owner_ids};
pub use document::{PolicyDocument, Statement};
pub use error::PolicyError;
pub use merge::{
    ChangeKind, Merged, RELEASED_SID_PREFIX, StatementChange, WriteDecision, converge, merge,
    release,
};
pub use ownership::{GrantOwner, OwnershipScope, SID_PREFIX, hex_digest, instance_sid_prefix};
pub use principal::{account_root_arn, is_unique_id, partition_for_region};
pub use quota::{CountQuotas, Counted, OverQuota};
pub use size::{SizeLimit, SizeUnit};
