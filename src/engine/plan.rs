//! Planning: resolve grants, find every policy each one needs statements in (the resource's, the
//! grantee roles' and users', a SageMaker invocation role's), read each policy once, merge, check
//! sizes. A grant that cannot be converged everywhere is converged nowhere.

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt};

use super::error::{FieldError, GrantError};
use super::placements::{Lookups, planned_target};
use super::resolve::{AccountDirectory, Purpose, ResolvedGrant, resolve_grant};
use super::{Engine, GrantInput, Operation};
use crate::api::{DeletionPolicy, PolicyKind, PolicyLocation, PolicySize, ResourceKind};
use crate::aws::{AwsErrorKind, TargetRef};
use crate::policy::{
    CountQuotas, GrantOwner, Merged, OwnershipScope, PolicyDocument, PolicyError, SizeLimit,
    Statement, WriteDecision, converge, is_unique_id,
};

/// A grant as planned.
#[derive(Debug, Clone)]
pub struct PlannedGrant {
    /// `namespace/name`.
    pub name: String,
    /// Where it came from.
    pub origin: String,
    /// What happens to it.
    pub state: GrantState,
}

/// One policy a grant has statements in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedTarget {
    /// The ARN of what holds the policy.
    pub arn: String,
    /// The account, kind of policy and holder.
    pub location: PolicyLocation,
    /// The region.
    pub region: String,
    /// Sids the grant wants there (none when deleting).
    pub sids: Vec<String>,
    /// The policy's size after the run (none where it was not merged, or is deleted).
    pub size: Option<PolicySize>,
}

/// What happens to a grant.
#[derive(Debug, Clone)]
pub enum GrantState {
    /// It converges on these policies.
    Planned {
        /// Owner of its statements.
        owner: GrantOwner,
        /// Every policy it has (or had) statements in: the resource's first.
        targets: Vec<PlannedTarget>,
        /// SageMakerEndpoint grants: the role the grantee assumes.
        role_arn: Option<String>,
        /// Deleting with `deletionPolicy: Retain`: its statements are handed over, not removed.
        retained: bool,
        /// Applying a grant an account no longer consents to (see
        /// [`GrantError::withdraws_consent`]): the refusal; its statements are removed instead.
        withdrawn: Option<GrantError>,
        /// What happens to it: the run's operation, or `Delete` for a grant leaving
        /// ([`GrantInput::leaving`]) or whose consent was withdrawn.
        operation: Operation,
    },
    /// It cannot be converged; nothing is written for it.
    Failed(GrantError),
}

/// The plan for one policy: every grant on it converged in one read-modify-write.
#[derive(Debug, Clone)]
pub struct TargetPlan {
    /// The policy.
    pub target: TargetRef,
    /// Grants in scope on it.
    pub owners: Vec<GrantOwner>,
    /// Grants whose statements are handed over here (deleted with `deletionPolicy: Retain`).
    pub released: Vec<GrantOwner>,
    /// The statements they want.
    pub desired: Vec<Statement>,
    /// The policy as read (`None`: no policy).
    pub current: Option<PolicyDocument>,
    /// Size used by the holder's other inline policies (identity policies share one quota).
    pub reserved: usize,
    /// The merge; `None` when the target failed.
    pub merged: Option<Merged>,
    /// Why the target cannot be converged.
    pub error: Option<GrantError>,
    /// The merged document's size and the limit, when a write is planned.
    pub size: Option<(usize, SizeLimit)>,
    /// Things a reader should know (not errors).
    pub notes: Vec<String>,
    /// After apply: what was done (`Unchanged` when nothing needed doing). `None` in a plan.
    pub applied: Option<WriteDecision>,
    /// Grants left out because the policy would overflow with them (newest first); nothing is
    /// written for them.
    pub excluded: Vec<(GrantOwner, GrantError)>,
}

impl TargetPlan {
    /// The plan of a target before it is read.
    pub fn new(target: TargetRef) -> Self {
        TargetPlan {
            target,
            owners: Vec::new(),
            released: Vec::new(),
            desired: Vec::new(),
            current: None,
            reserved: 0,
            merged: None,
            error: None,
            size: None,
            notes: Vec::new(),
            applied: None,
            excluded: Vec::new(),
        }
    }

    /// What converging this target takes.
    pub fn decision(&self) -> WriteDecision {
        self.merged
            .as_ref()
            .map_or(WriteDecision::Unchanged, |m| m.decision)
    }
}

/// A plan for a set of grants.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What the run does.
    pub operation: Operation,
    /// Every grant given, in input order.
    pub grants: Vec<PlannedGrant>,
    /// Every target touched, in account, kind and ARN order.
    pub targets: Vec<TargetPlan>,
}

/// Identifies a policy document: account id, kind of policy, ARN of its holder.
pub(super) type TargetKey = (String, PolicyKind, String);

pub(super) fn target_key(t: &TargetRef) -> TargetKey {
    (t.account.account_id.clone(), t.kind, t.arn.clone())
}

/// The grants on one target and the statements they want there.
struct TargetGroup {
    target: TargetRef,
    members: Vec<Member>,
    notes: BTreeSet<String>,
}

/// One grant on a target, with the statements it wants there.
struct Member {
    owner: GrantOwner,
    /// When the grant was created (RFC 3339), for "newest first" when a policy overflows.
    created: Option<String>,
    /// Its position in the input: the grant's identity in this plan, and the tie-breaker.
    index: usize,
    desired: Vec<Statement>,
    /// Its statements are handed over (`deletionPolicy: Retain` on delete), not merged.
    release: bool,
    /// Its statements are removed (deleting, or its consent withdrawn); never left out for size.
    revoke: bool,
}

/// A policy as read, and the size its holder's other inline policies use.
type ReadTarget = (Option<PolicyDocument>, usize);

impl Engine {
    /// Resolves the grants, reads each policy once, and merges; writes nothing.
    pub async fn plan(
        &self,
        accounts: &AccountDirectory,
        inputs: &[GrantInput],
        operation: Operation,
    ) -> Plan {
        let operation_of = |input: &GrantInput| {
            if input.leaving {
                Operation::Delete
            } else {
                operation
            }
        };
        let mut grants = Vec::with_capacity(inputs.len());
        let mut resolved: Vec<(usize, ResolvedGrant, Option<GrantError>)> = Vec::new();
        for (index, input) in inputs.iter().enumerate() {
            let meta = &input.grant.metadata;
            let name = format!(
                "{}/{}",
                meta.namespace.as_deref().unwrap_or("default"),
                meta.name.as_deref().unwrap_or("")
            );
            // A resolved grant's state is known once its targets are.
            let instance = &self.settings.instance_id;
            let purpose = match operation_of(input) {
                Operation::Apply => Purpose::Grant,
                Operation::Delete => Purpose::Revoke,
            };
            let state = match resolve_grant(&input.grant, accounts, instance, purpose) {
                Ok(g) => {
                    resolved.push((index, g, None));
                    None
                }
                // An account withdrew its consent: what the grant wrote there is taken away.
                Err(e) if e.withdraws_consent() => {
                    match resolve_grant(&input.grant, accounts, instance, Purpose::Revoke) {
                        Ok(g) => {
                            resolved.push((index, g, Some(e)));
                            None
                        }
                        Err(_) => Some(GrantState::Failed(e)),
                    }
                }
                Err(e) => Some(GrantState::Failed(e)),
            };
            grants.push((name, input.origin.clone(), state));
        }

        let mut lookups = Lookups::default();
        let mut groups: BTreeMap<TargetKey, TargetGroup> = BTreeMap::new();
        for (index, mut g, withdrawn) in resolved {
            let input = &inputs[index];
            let grant_operation = if withdrawn.is_some() {
                Operation::Delete
            } else {
                operation_of(input)
            };
            let placed = match self
                .placements(&mut lookups, accounts, &mut g, input, grant_operation)
                .await
            {
                Ok(placed) => placed,
                Err(e) => {
                    grants[index].2 = Some(GrantState::Failed(e));
                    continue;
                }
            };
            // Deleting a grant set to Retain hands its statements over instead of removing them.
            let release = grant_operation == Operation::Delete
                && withdrawn.is_none()
                && g.deletion_policy == DeletionPolicy::Retain;
            let revoke = grant_operation == Operation::Delete && !release;
            let role_arn = (g.kind == ResourceKind::SageMakerEndpoint && withdrawn.is_none())
                .then(|| placed.first().map(|p| p.target.arn.clone()))
                .flatten();
            grants[index].2 = Some(GrantState::Planned {
                owner: g.owner.clone(),
                targets: placed.iter().map(planned_target).collect(),
                role_arn,
                retained: release,
                withdrawn,
                operation: grant_operation,
            });
            let created = input
                .grant
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string());
            for p in placed {
                let group = groups
                    .entry(target_key(&p.target))
                    .or_insert_with(|| TargetGroup {
                        target: p.target.clone(),
                        members: Vec::new(),
                        notes: BTreeSet::new(),
                    });
                group.notes.extend(p.note);
                group.members.push(Member {
                    owner: g.owner.clone(),
                    created: created.clone(),
                    index,
                    desired: p.desired,
                    release,
                    revoke,
                });
            }
        }

        let read: Vec<(TargetGroup, Result<ReadTarget, GrantError>)> =
            stream::iter(groups.into_values())
                .map(|group| async move {
                    // A policy only revoked from reads as a deletion does (a holder gone is fine).
                    let read_as = if group.members.iter().all(|m| m.revoke) {
                        Operation::Delete
                    } else {
                        operation
                    };
                    let result = self.read_target(&group.target, read_as).await;
                    (group, result)
                })
                .buffered(self.settings.concurrency.max(1))
                .collect()
                .await;

        // Applying, a grant one of whose policies cannot be read is left out of all of them; one
        // whose statements are being removed is still removed wherever that can be done.
        let mut failed: BTreeMap<usize, GrantError> = BTreeMap::new();
        if operation == Operation::Apply {
            for (group, result) in &read {
                if let Err(e) = result {
                    for m in group.members.iter().filter(|m| !m.revoke) {
                        failed.entry(m.index).or_insert_with(|| e.clone());
                    }
                }
            }
        }
        let mut targets = Vec::with_capacity(read.len());
        let mut members_of = Vec::with_capacity(read.len());
        for (group, result) in read {
            let mut plan = TargetPlan::new(group.target);
            plan.owners = group.members.iter().map(|m| m.owner.clone()).collect();
            plan.notes = group.notes.into_iter().collect();
            match result {
                Ok((current, reserved)) => {
                    plan.notes
                        .extend(orphaned_principal_notes(current.as_ref()));
                    plan.current = current;
                    plan.reserved = reserved;
                }
                Err(e) => plan.error = Some(e),
            }
            targets.push(plan);
            members_of.push(group.members);
        }
        self.merge_all(&mut targets, &mut members_of, &mut failed);
        for (index, e) in failed {
            grants[index].2 = Some(GrantState::Failed(e));
        }
        let grants = grants
            .into_iter()
            .map(|(name, origin, state)| PlannedGrant {
                name,
                origin,
                // Every resolved grant got its state above.
                state: state.unwrap_or_else(|| {
                    GrantState::Failed(GrantError::InvalidSpec(vec![FieldError::new(
                        "spec",
                        "not planned",
                    )]))
                }),
            })
            .collect();
        Plan {
            operation,
            grants,
            targets,
        }
    }

    /// Merges every readable target. A grant that overflows one policy is left out of all of
    /// them (recorded in `failed`), and the others are merged again without it.
    fn merge_all(
        &self,
        targets: &mut [TargetPlan],
        members_of: &mut [Vec<Member>],
        failed: &mut BTreeMap<usize, GrantError>,
    ) {
        // Targets that could not be read are not merged.
        let readable: Vec<bool> = targets.iter().map(|t| t.error.is_none()).collect();
        loop {
            let mut left_out_now = false;
            for ((plan, members), _) in targets
                .iter_mut()
                .zip(members_of.iter_mut())
                .zip(&readable)
                .filter(|(_, readable)| **readable)
            {
                members.retain(|m| !failed.contains_key(&m.index));
                // Oldest first, so that when the policy overflows the newest grants are the ones
                // left out (deterministic: creation time, then input order).
                members.sort_by(|a, b| a.created.cmp(&b.created).then(a.index.cmp(&b.index)));
                plan.error = None;
                plan.merged = None;
                plan.size = None;
                if let Some((index, owner, e)) = self.plan_target(plan, members) {
                    plan.notes.push(format!(
                        "{} is left out: the policy would be over a limit with it ({e})",
                        owner.display_name()
                    ));
                    plan.excluded.push((owner, e.clone()));
                    failed.insert(index, e);
                    left_out_now = true;
                }
            }
            if !left_out_now {
                return;
            }
        }
    }

    /// Merges one target's members; when the policy overflows, returns the one grant to leave out
    /// (one that does not fit even alone, else the newest).
    fn plan_target(
        &self,
        plan: &mut TargetPlan,
        members: &[Member],
    ) -> Option<(usize, GrantOwner, GrantError)> {
        let (released, merged): (Vec<&Member>, Vec<&Member>) =
            members.iter().partition(|m| m.release);
        plan.owners = merged.iter().map(|m| m.owner.clone()).collect();
        plan.released = released.iter().map(|m| m.owner.clone()).collect();
        plan.desired = merged
            .iter()
            .flat_map(|m| m.desired.iter().cloned())
            .collect();
        match self.merge_target(plan, plan.current.as_ref(), &plan.owners, &plan.desired) {
            Ok((merged, size)) => {
                plan.merged = Some(merged);
                plan.size = size;
                None
            }
            Err(e @ (GrantError::PolicyTooLarge { .. } | GrantError::PolicyOverQuota { .. })) => {
                let alone_too_large = |m: &&Member| {
                    let owner = std::slice::from_ref(&m.owner);
                    self.merge_target(plan, plan.current.as_ref(), owner, &m.desired)
                        .is_err()
                };
                // Removing statements never makes a policy larger: only a grant being added can be
                // left out.
                let adding: Vec<&Member> = members.iter().filter(|m| !m.revoke).collect();
                let left_out = adding
                    .iter()
                    .copied()
                    .find(alone_too_large)
                    .or(adding.last().copied())?;
                Some((left_out.index, left_out.owner.clone(), e))
            }
            Err(e) => {
                plan.error = Some(e);
                None
            }
        }
    }

    /// Reads a target's policy and, for identity policies, the size its holder's other inline
    /// policies use. Revoking, a holder that is gone has no policy.
    async fn read_target(
        &self,
        target: &TargetRef,
        operation: Operation,
    ) -> Result<ReadTarget, GrantError> {
        let current = match self.read_document(target).await {
            Err(GrantError::Aws(e))
                if operation == Operation::Delete && e.kind == AwsErrorKind::NotFound =>
            {
                return Ok((None, 0));
            }
            other => other?,
        };
        let reserved = if target.kind.is_identity() && operation == Operation::Apply {
            self.backend.others_size(target).await?
        } else {
            0
        };
        Ok((current, reserved))
    }

    /// Reads and parses a target's policy.
    pub(super) async fn read_document(
        &self,
        target: &TargetRef,
    ) -> Result<Option<PolicyDocument>, GrantError> {
        let text = self.backend.read(target).await?;
        match text {
            None => Ok(None),
            Some(text) if text.trim().is_empty() => Ok(None),
            Some(text) => {
                PolicyDocument::parse(&text)
                    .map(Some)
                    .map_err(|e| GrantError::UnreadablePolicy {
                        target: target.arn.clone(),
                        reason: e.to_string(),
                    })
            }
        }
    }

    /// Merges and checks the result against the service's size limit.
    pub(super) fn merge_target(
        &self,
        plan: &TargetPlan,
        current: Option<&PolicyDocument>,
        owners: &[GrantOwner],
        desired: &[Statement],
    ) -> Result<(Merged, Option<(usize, SizeLimit)>), GrantError> {
        let target = &plan.target;
        let unreadable = |e: PolicyError| GrantError::UnreadablePolicy {
            target: target.arn.clone(),
            reason: e.to_string(),
        };
        let mut merged = converge(
            current,
            &self.settings.instance_id,
            // A Lambda function policy holds one principal per statement (AddPermission).
            self.settings.compaction && target.kind != PolicyKind::LambdaFunctionPolicy,
            &OwnershipScope::new(owners),
            &OwnershipScope::new(&plan.released),
            desired,
        )
        .map_err(unreadable)?;
        if merged.decision == WriteDecision::Delete && !self.backend.can_delete(target.kind) {
            // Key and trust policies always exist: write the document without our statements.
            merged.decision = WriteDecision::Put;
        }
        let after = match merged.decision {
            WriteDecision::Delete => None,
            WriteDecision::Unchanged => current,
            WriteDecision::Put => Some(&merged.document),
        };
        let Some(after) = after else {
            return Ok((merged, None));
        };
        let limit = self.size_limit(target.kind);
        // Identity policies share their holder's quota with its other inline policies.
        let size = limit.measure(&after.to_compact_string()) + plan.reserved;
        // Taking statements away never makes a policy larger: a revocation is never refused for
        // size, even where the policy is already over the limit (a quota lowered, say).
        if merged.decision == WriteDecision::Put && !desired.is_empty() && size > limit.max {
            return Err(GrantError::PolicyTooLarge {
                target: target.arn.clone(),
                size,
                limit: limit.max,
                unit: limit.unit,
            });
        }
        let quotas = (target.kind == PolicyKind::SqsQueuePolicy).then_some(CountQuotas::SQS_QUEUE);
        if merged.decision == WriteDecision::Put
            && !desired.is_empty()
            && let Some(over) = quotas.and_then(|q| q.exceeded(after))
        {
            return Err(GrantError::PolicyOverQuota {
                target: target.arn.clone(),
                counted: over.counted,
                count: over.count,
                limit: over.limit,
            });
        }
        Ok((merged, Some((size, limit))))
    }

    fn size_limit(&self, kind: PolicyKind) -> SizeLimit {
        match kind {
            PolicyKind::S3BucketPolicy => SizeLimit::S3_BUCKET,
            PolicyKind::EcrRepositoryPolicy => SizeLimit::ECR_REPOSITORY,
            PolicyKind::KmsKeyPolicy => SizeLimit::KMS_KEY,
            PolicyKind::SqsQueuePolicy => SizeLimit::SQS_QUEUE,
            PolicyKind::SnsTopicPolicy => SizeLimit::SNS_TOPIC,
            PolicyKind::SecretResourcePolicy => SizeLimit::SECRET,
            PolicyKind::LambdaFunctionPolicy => SizeLimit::LAMBDA_FUNCTION,
            PolicyKind::EventBusPolicy => SizeLimit::EVENT_BUS,
            PolicyKind::RoleInlinePolicy | PolicyKind::InvokeRoleInlinePolicy => {
                SizeLimit::IAM_ROLE_INLINE
            }
            PolicyKind::UserInlinePolicy => SizeLimit::IAM_USER_INLINE,
            PolicyKind::RoleTrustPolicy | PolicyKind::InvokeRoleTrustPolicy => SizeLimit {
                max: self
                    .settings
                    .trust_policy_limit
                    .min(SizeLimit::IAM_TRUST_MAX),
                ..SizeLimit::IAM_TRUST_DEFAULT
            },
        }
    }
}

fn orphaned_principal_notes(current: Option<&PolicyDocument>) -> Vec<String> {
    let Some(doc) = current else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    for statement in &doc.statements {
        let Ok(canonical) = statement.canonical() else {
            continue;
        };
        let ids: Vec<&String> = [&canonical.principal, &canonical.not_principal]
            .into_iter()
            .flatten()
            .flat_map(|p| p.get("AWS").into_iter().flatten())
            .filter(|p| is_unique_id(p))
            .collect();
        if !ids.is_empty() {
            notes.push(format!(
                "statement {} names {} (a deleted role or user, shown by its unique id); AWS may refuse to save this policy \
                 until that principal is removed or replaced, and xacct does not edit statements it does not own",
                statement.sid().map_or_else(|| "without Sid".to_string(), |s| format!("{s:?}")),
                ids.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    notes
}
