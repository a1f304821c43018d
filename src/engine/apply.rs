//! Applying a plan: per target, re-read just before writing and merge again if the policy changed
//! since it was planned, so a concurrent writer's statements are not lost.

use futures::stream::{self, StreamExt};

use super::Engine;
use super::error::{GrantError, PrincipalRefusal};
use super::plan::{Plan, TargetPlan};
use crate::api::PolicyKind;
use crate::aws::AwsErrorKind;
use crate::policy::{ChangeKind, Merged, WriteDecision};

/// When a target is written: creating a role comes first, deleting one last.
fn wave_of(t: &TargetPlan) -> usize {
    match (t.target.kind, t.decision()) {
        (PolicyKind::InvokeRoleTrustPolicy, WriteDecision::Put) => 0,
        (PolicyKind::InvokeRoleTrustPolicy, WriteDecision::Delete) => 2,
        _ => 1,
    }
}

impl Engine {
    /// Carries out a plan; every target ends up with `applied` or `error` set. A role xacct
    /// creates is created before its inline policy is written, and deleted after it is removed.
    pub async fn apply(&self, mut plan: Plan) -> Plan {
        let mut targets: Vec<(usize, TargetPlan)> = std::mem::take(&mut plan.targets)
            .into_iter()
            .enumerate()
            .collect();
        let mut done = Vec::with_capacity(targets.len());
        for wave in 0..3 {
            let (now, later): (Vec<_>, Vec<_>) =
                targets.into_iter().partition(|(_, t)| wave_of(t) == wave);
            targets = later;
            let applied: Vec<(usize, TargetPlan)> = stream::iter(now)
                .map(|(i, target)| async move { (i, self.apply_target(target).await) })
                .buffered(self.settings.concurrency.max(1))
                .collect()
                .await;
            done.extend(applied);
        }
        done.sort_by_key(|(i, _)| *i);
        plan.targets = done.into_iter().map(|(_, t)| t).collect();
        plan
    }

    async fn apply_target(&self, mut plan: TargetPlan) -> TargetPlan {
        if plan.error.is_some() {
            return plan;
        }
        if plan.decision() == WriteDecision::Unchanged {
            plan.applied = Some(WriteDecision::Unchanged);
            return plan;
        }
        let _only_writer = self.locks.lock(&plan.target.arn).await;
        match self.write_converged(&mut plan).await {
            Ok(decision) => plan.applied = Some(decision),
            Err(e) => {
                tracing::warn!(
                    policy = %plan.target.arn,
                    account = %plan.target.account.account_id,
                    grants = %grants(&plan, None),
                    error = %e,
                    "policy write failed"
                );
                plan.error = Some(naming_principals(e, &plan));
            }
        }
        plan
    }

    /// Re-reads just before writing and, when the policy changed since it was planned, merges
    /// again on what is there now, so that a concurrent writer's statements are kept. S3, ECR and
    /// IAM have no conditional write, so the window between this read and the write remains; it
    /// is as short as one call (reading again until two reads agree would not shorten it).
    async fn write_converged(&self, plan: &mut TargetPlan) -> Result<WriteDecision, GrantError> {
        let now = self.read_document(&plan.target).await?;
        let unchanged = match (&now, &plan.current) {
            (None, None) => true,
            (Some(a), Some(b)) => a.same_meaning(b),
            _ => false,
        };
        if !unchanged {
            tracing::info!(policy = %plan.target.arn, "policy changed since it was read; merging again");
            let (merged, size) =
                self.merge_target(plan, now.as_ref(), &plan.owners, &plan.desired)?;
            plan.current = now;
            plan.merged = Some(merged);
            plan.size = size;
        }
        let Some(merged) = &plan.merged else {
            return Ok(WriteDecision::Unchanged);
        };
        let written = match merged.decision {
            WriteDecision::Unchanged => None,
            WriteDecision::Put => {
                self.backend
                    .write(&plan.target, &merged.document.to_compact_string())
                    .await?;
                Some("wrote policy")
            }
            WriteDecision::Delete => {
                self.backend.delete(&plan.target).await?;
                Some("deleted policy")
            }
        };
        match written {
            // Every AWS write of a policy, in one line: which policy, for which grants, what changed.
            Some(what) => tracing::info!(
                policy = %plan.target.arn,
                policy_kind = ?plan.target.kind,
                account = %plan.target.account.account_id,
                region = %plan.target.region,
                grants = %grants(plan, Some(merged)),
                changes = %changes(merged),
                "{what}"
            ),
            None => tracing::debug!(policy = %plan.target.arn, "already converged"),
        }
        Ok(merged.decision)
    }
}

/// A refusal for an unknown principal, with the principals the refused document added (those of
/// the grants whose statements it wrote): the candidates.
fn naming_principals(e: GrantError, plan: &TargetPlan) -> GrantError {
    match e {
        GrantError::Aws(error) if error.kind == AwsErrorKind::PrincipalNotFound => {
            let before = plan
                .current
                .as_ref()
                .map(|d| d.aws_principals())
                .unwrap_or_default();
            let added = plan
                .merged
                .as_ref()
                .map(|m| m.document.aws_principals())
                .unwrap_or_default()
                .difference(&before)
                .cloned()
                .collect();
            GrantError::PrincipalNotFound(Box::new(PrincipalRefusal {
                error,
                added,
                found: Vec::new(),
            }))
        }
        other => other,
    }
}

/// The grants a write is for, `namespace/name`, comma-separated: those whose statements change,
/// else (a write for another reason, or before the merge) every grant in scope.
fn grants(plan: &TargetPlan, merged: Option<&Merged>) -> String {
    let mut names: Vec<String> = merged
        .map(|m| {
            m.changes
                .iter()
                .map(|c| format!("{}/{}", c.owner.namespace, c.owner.name))
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names = plan
            .owners
            .iter()
            .chain(&plan.released)
            .map(|o| format!("{}/{}", o.namespace, o.name))
            .collect();
    }
    names.sort();
    names.dedup();
    names.join(", ")
}

/// What a write changes, e.g. `added XacctAb12Read, XacctAb12List; removed XacctCd34Read`.
fn changes(merged: &Merged) -> String {
    let mut parts = Vec::new();
    for (kind, word) in [
        (ChangeKind::Added, "added"),
        (ChangeKind::Changed, "changed"),
        (ChangeKind::Removed, "removed"),
    ] {
        let sids: Vec<&str> = merged
            .changes
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| c.sid.as_str())
            .collect();
        if !sids.is_empty() {
            parts.push(format!("{word} {}", sids.join(", ")));
        }
    }
    if parts.is_empty() {
        "no statement of a grant changed".into()
    } else {
        parts.join("; ")
    }
}
