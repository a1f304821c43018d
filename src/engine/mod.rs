//! Desired state from resources → a plan (a diff per target) → apply (coalesced per target,
//! re-read before write). Used by the CLI and the controller alike.

pub mod actions;
mod apply;
mod cel;
mod error;
mod gc;
mod locks;
mod placements;
mod plan;
mod principals;
mod reason;
mod report;
mod resolve;
mod snapshot;
mod statements;

use std::sync::Arc;

pub use error::{FieldError, GrantError};
pub use gc::{GcReport, OrphanReport, live_owners};
pub use plan::{GrantState, Plan, PlannedGrant, PlannedTarget, TargetPlan};
pub use reason::{Class, Reason};
pub use report::{ChangeReport, ConditionReport, GrantReport, Report, TargetReport};
pub use resolve::{
    AccountDirectory, DEFAULT_REGION, KeyArn, Purpose, ResolvedGrant, account_access, home_region,
    identity_holder, invoke_role_name, namespace_allowed, resolve_grant, resource_region,
};
pub use snapshot::{ShareInput, ShareReport, copy_identifier};
pub use statements::{
    GranteeExtras, grantee_statements, invoke_role_statements, resource_statements,
};

use crate::api::{CrossAccountGrant, PolicyLocation};
use crate::aws::{PolicyBackend, SnapshotBackend};
use crate::policy::SizeLimit;

/// What a run does to the grants it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Make the grants' statements present and current.
    Apply,
    /// Remove the grants' statements (except `deletionPolicy: Retain`).
    Delete,
}

/// A grant and where it came from (a manifest file and document, or a cluster object).
#[derive(Debug, Clone)]
pub struct GrantInput {
    /// The grant.
    pub grant: CrossAccountGrant,
    /// Where it came from, for messages.
    pub origin: String,
    /// Deleting: policies the grant wrote statements to before (from its status), revoked too.
    pub written: Vec<Placement>,
    /// Deleting: whether the places the spec names now are revoked (`false`: only `written`).
    pub spec_places: bool,
    /// Its statements are removed whatever the run's operation (a grant being deleted, or leaving
    /// the places in `written`), in the same write as the other grants on those policies.
    pub leaving: bool,
}

impl GrantInput {
    /// A grant to apply or delete where its spec says.
    pub fn new(grant: CrossAccountGrant, origin: impl Into<String>) -> Self {
        GrantInput {
            grant,
            origin: origin.into(),
            written: Vec::new(),
            spec_places: true,
            leaving: false,
        }
    }
}

/// A policy document a grant has statements in, as its status records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Placement {
    /// The account, the kind of policy and its holder.
    pub location: PolicyLocation,
    /// The region the statements were written in.
    pub region: String,
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Instance id: part of every Sid, so several installations can share accounts.
    pub instance_id: String,
    /// IAM trust policy size quota of the managed accounts (2,048 unless raised, at most 4,096).
    pub trust_policy_limit: usize,
    /// How many targets are read and written at once.
    pub concurrency: usize,
    /// Whether statements of several grants that differ only in their principals are merged into
    /// shared statements (see [`crate::policy::compact`]).
    pub compaction: bool,
    /// How long a grant that AWS refuses for a principal it does not know is tried again (IAM
    /// takes seconds, sometimes minutes, to make a new role or user known to other services);
    /// after that it is reported as failed.
    pub principal_wait: std::time::Duration,
}

/// [`EngineSettings::principal_wait`] unless configured (`--principal-wait`).
pub const DEFAULT_PRINCIPAL_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            instance_id: "default".into(),
            trust_policy_limit: SizeLimit::IAM_TRUST_DEFAULT.max,
            concurrency: 8,
            compaction: true,
            principal_wait: DEFAULT_PRINCIPAL_WAIT,
        }
    }
}

/// Converges resource policies to what the grants want.
#[derive(Clone)]
pub struct Engine {
    backend: Arc<dyn PolicyBackend>,
    snapshots: Option<Arc<dyn SnapshotBackend>>,
    settings: EngineSettings,
    locks: Arc<locks::TargetLocks>,
}

impl Engine {
    /// An engine acting through `backend`.
    pub fn new(backend: Arc<dyn PolicyBackend>, settings: EngineSettings) -> Self {
        Engine {
            backend,
            snapshots: None,
            settings,
            locks: Arc::default(),
        }
    }

    /// The same engine, able to share RDS snapshots through `snapshots`.
    pub fn with_snapshots(mut self, snapshots: Arc<dyn SnapshotBackend>) -> Self {
        self.snapshots = Some(snapshots);
        self
    }

    /// The settings in use.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Plans and, unless `dry_run`, applies; returns what was (or would be) done.
    pub async fn run(
        &self,
        accounts: &AccountDirectory,
        grants: &[GrantInput],
        operation: Operation,
        dry_run: bool,
    ) -> Report {
        let plan = self.plan(accounts, grants, operation).await;
        if dry_run {
            Report::from_plan(&plan)
        } else {
            let mut applied = self.apply(plan).await;
            self.look_up_refused_principals(accounts, &mut applied)
                .await;
            Report::from_applied(&applied)
        }
    }
}
