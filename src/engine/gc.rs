//! Garbage collection: statements carrying this instance's marker whose grant no longer exists
//! (its finalizer removed by hand, say) are found in every managed account and removed.

use std::collections::BTreeSet;

use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::plan::{Plan, TargetPlan};
use super::resolve::{AccountDirectory, account_access, home_region};
use super::{Engine, Operation};
use crate::api::{CrossAccountGrant, PolicyKind, SnapshotShare};
use crate::aws::TargetRef;
use crate::policy::{GrantOwner, PolicyDocument, WriteDecision, owner_ids};

/// What a garbage collection found and did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    /// True when nothing was written (`--dry-run`).
    pub dry_run: bool,
    /// How many policies were looked at.
    pub scanned: usize,
    /// Policies holding statements of grants that no longer exist.
    pub orphans: Vec<OrphanReport>,
    /// What could not be looked at or cleaned (the rest was).
    pub errors: Vec<String>,
}

/// One policy with orphaned statements.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrphanReport {
    /// ARN of what holds the policy.
    pub arn: String,
    /// Which policy.
    pub kind: PolicyKind,
    /// The AwsAccount.
    pub account: String,
    /// The orphaned statements' Sids.
    pub sids: Vec<String>,
    /// Whether they were removed (false in a dry run or on error).
    pub removed: bool,
}

impl GcReport {
    /// How many orphaned statements were found.
    pub fn statements(&self) -> usize {
        self.orphans.iter().map(|o| o.sids.len()).sum()
    }
}

/// The ids of every grant that exists: the grants themselves, and the key policy
/// statements of snapshot shares (one synthetic grant per share and target account, in the spec
/// or still in the status).
pub fn live_owners(
    instance: &str,
    grants: &[CrossAccountGrant],
    shares: &[SnapshotShare],
) -> BTreeSet<String> {
    let mut live = BTreeSet::new();
    for grant in grants {
        let namespace = grant.metadata.namespace.as_deref().unwrap_or("default");
        let name = grant.metadata.name.as_deref().unwrap_or_default();
        live.insert(GrantOwner::new(instance, namespace, name).id().to_string());
    }
    for share in shares {
        let namespace = share.metadata.namespace.as_deref().unwrap_or("default");
        let name = share.metadata.name.as_deref().unwrap_or_default();
        let accounts = share
            .spec
            .targets
            .iter()
            .map(|t| t.account_id.clone())
            .chain(
                share
                    .status
                    .iter()
                    .flat_map(|s| s.targets.iter().map(|t| t.account_id.clone())),
            );
        for account in accounts {
            let synthetic = super::snapshot::key_grant_name(name, &account);
            live.insert(
                GrantOwner::new(instance, namespace, &synthetic)
                    .id()
                    .to_string(),
            );
        }
    }
    live
}

impl Engine {
    /// Finds, in every managed account (its region and `regions`), the statements of this
    /// instance whose grant is not in `live`, and unless `dry_run` removes them (re-reading each
    /// policy before writing, like apply). Statements of other instances, handed-over statements
    /// (`Retained…`) and everything else are never touched.
    pub async fn gc(
        &self,
        accounts: &AccountDirectory,
        live: &BTreeSet<String>,
        regions: &BTreeSet<String>,
        dry_run: bool,
    ) -> GcReport {
        let instance = self.settings.instance_id.clone();
        let mut report = GcReport {
            dry_run,
            ..GcReport::default()
        };
        let mut found: Vec<TargetRef> = Vec::new();
        for account in accounts.iter() {
            let access = account_access(account);
            let home = home_region(account.spec.region.as_deref());
            let mut all: BTreeSet<String> = regions.clone();
            all.insert(home.clone());
            for region in all {
                match self
                    .backend
                    .inventory(&access, &region, region == home, &instance)
                    .await
                {
                    Ok(targets) => found.extend(targets),
                    Err(e) => report.errors.push(e.to_string()),
                }
            }
        }
        report.scanned = found.len();

        let read: Vec<(TargetRef, Result<Option<PolicyDocument>, String>)> = stream::iter(found)
            .map(|target| async move {
                let doc = self.read_document(&target).await.map_err(|e| e.to_string());
                (target, doc)
            })
            .buffered(self.settings.concurrency.max(1))
            .collect()
            .await;
        let mut targets = Vec::new();
        for (target, doc) in read {
            let current = match doc {
                Ok(Some(doc)) => doc,
                Ok(None) => continue,
                Err(e) => {
                    report.errors.push(e);
                    continue;
                }
            };
            // A shared statement holding an orphan's principals is listed once.
            let mut orphans: BTreeSet<String> = BTreeSet::new();
            let mut sids = Vec::new();
            for sid in current.statements.iter().filter_map(|s| s.sid()) {
                let gone: Vec<String> = owner_ids(&instance, sid)
                    .into_iter()
                    .filter(|id| !live.contains(id))
                    .collect();
                if !gone.is_empty() && !sids.iter().any(|s| s == sid) {
                    sids.push(sid.to_string());
                }
                orphans.extend(gone);
            }
            if orphans.is_empty() {
                continue;
            }
            report.orphans.push(OrphanReport {
                arn: target.arn.clone(),
                kind: target.kind,
                account: target.account.name.clone(),
                sids,
                removed: false,
            });
            let owners: Vec<GrantOwner> = orphans
                .iter()
                .map(|p| GrantOwner::orphan(&instance, p))
                .collect();
            let mut plan = TargetPlan::new(target);
            plan.current = Some(current);
            match self.merge_target(&plan, plan.current.as_ref(), &owners, &[]) {
                Ok((merged, _)) => {
                    plan.owners = owners;
                    plan.merged = Some(merged);
                    targets.push(plan);
                }
                Err(e) => report.errors.push(e.to_string()),
            }
        }
        if dry_run || targets.is_empty() {
            return report;
        }
        let applied = self
            .apply(Plan {
                operation: Operation::Delete,
                grants: Vec::new(),
                targets,
            })
            .await;
        for t in applied.targets {
            let key = (t.target.arn.as_str(), t.target.kind);
            let done =
                t.error.is_none() && t.applied.is_some_and(|d| d != WriteDecision::Unchanged);
            if let Some(e) = &t.error {
                report.errors.push(e.to_string());
            }
            if let Some(o) = report
                .orphans
                .iter_mut()
                .find(|o| (o.arn.as_str(), o.kind) == key)
            {
                o.removed = done;
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn live_owners_hold_grants_and_each_share_target_in_spec_or_status() {
        let grant: CrossAccountGrant = serde_json::from_value(json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "CrossAccountGrant",
            "metadata": {"name": "g", "namespace": "batch"},
            "spec": {"resource": {"account": "data", "kind": "S3Bucket", "name": "b"}, "grantee": {"accountId": "111111111111"}, "access": ["read"]}}))
        .expect("valid grant");
        let share: SnapshotShare = serde_json::from_value(json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "SnapshotShare",
            "metadata": {"name": "orders", "namespace": "data"},
            "spec": {"source": {"account": "data", "dbSnapshotIdentifier": "orders-1"}, "targets": [{"accountId": "111111111111"}]},
            "status": {"targets": [{"accountId": "333333333333", "keyAccess": "KeyPolicy"}]}}))
        .expect("valid share");
        let live = live_owners("default", &[grant], &[share]);
        let expected: BTreeSet<String> = [
            GrantOwner::new("default", "batch", "g"),
            GrantOwner::new("default", "data", "SnapshotShare:orders:111111111111"),
            // Still being unshared: its key policy statements are not orphans yet.
            GrantOwner::new("default", "data", "SnapshotShare:orders:333333333333"),
        ]
        .iter()
        .map(|o| o.id().to_string())
        .collect();
        assert_eq!(live, expected);
        assert!(live_owners("other", &[], &[]).is_empty());
    }
}
