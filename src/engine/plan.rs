//! Planning: resolve grants, locate and read each target once, merge, check sizes.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use futures::stream::{self, StreamExt};

use super::error::GrantError;
use super::resolve::{AccountDirectory, Purpose, ResolvedGrant, resolve_grant};
use super::statements::grant_statements;
use super::{Engine, GrantInput, Operation};
use crate::api::{DeletionPolicy, ResourceKind};
use crate::aws::{AwsError, TargetRef};
use crate::policy::{
    GrantOwner, Merged, OwnershipScope, PolicyDocument, SizeLimit, Statement, WriteDecision,
    is_unique_id, merge,
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

/// What happens to a grant.
#[derive(Debug, Clone)]
pub enum GrantState {
    /// It converges on this target (ARN) with these statements.
    Planned {
        /// Owner of its statements.
        owner: GrantOwner,
        /// The target's ARN.
        target: String,
        /// The target's region.
        region: String,
        /// Sids it wants there (none when deleting).
        sids: Vec<String>,
    },
    /// `deletionPolicy: Retain` on delete: nothing is touched.
    Retained,
    /// It cannot be converged; nothing is written for it.
    Failed(GrantError),
}

/// The plan for one policy: every grant on it converged in one read-modify-write.
#[derive(Debug, Clone)]
pub struct TargetPlan {
    /// The resource.
    pub target: TargetRef,
    /// Grants in scope on it.
    pub owners: Vec<GrantOwner>,
    /// The statements they want.
    pub desired: Vec<Statement>,
    /// The policy as read (`None`: no policy).
    pub current: Option<PolicyDocument>,
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
    /// Every target touched, in ARN order.
    pub targets: Vec<TargetPlan>,
}

/// Identifies a resource as grants name it: account, kind, region, name.
type LocationKey = (String, ResourceKind, String, String);

fn location_key(g: &ResolvedGrant) -> LocationKey {
    (
        g.account.name.clone(),
        g.kind,
        g.region.clone(),
        g.name.clone(),
    )
}

/// The grants on one target and the statements they want there.
struct TargetGroup {
    target: TargetRef,
    members: Vec<Member>,
}

/// One grant on a target, with the statements it wants there.
struct Member {
    grant: ResolvedGrant,
    /// When the grant was created (RFC 3339), for "newest first" when a policy overflows.
    created: Option<String>,
    /// Its position in the input, the tie-breaker.
    index: usize,
    desired: Vec<Statement>,
}

impl Engine {
    /// Resolves the grants, reads each target once, and merges; writes nothing.
    pub async fn plan(
        &self,
        accounts: &AccountDirectory,
        inputs: &[GrantInput],
        operation: Operation,
    ) -> Plan {
        let purpose = match operation {
            Operation::Apply => Purpose::Grant,
            Operation::Delete => Purpose::Revoke,
        };
        let mut grants = Vec::with_capacity(inputs.len());
        let mut resolved: Vec<(usize, ResolvedGrant)> = Vec::new();
        for (index, input) in inputs.iter().enumerate() {
            let meta = &input.grant.metadata;
            let name = format!(
                "{}/{}",
                meta.namespace.as_deref().unwrap_or("default"),
                meta.name.as_deref().unwrap_or("")
            );
            let state =
                match resolve_grant(&input.grant, accounts, &self.settings.instance_id, purpose) {
                    Ok(g)
                        if operation == Operation::Delete
                            && g.deletion_policy == DeletionPolicy::Retain =>
                    {
                        GrantState::Retained
                    }
                    Ok(g) => {
                        resolved.push((index, g));
                        GrantState::Retained // replaced below once the target is known
                    }
                    Err(e) => GrantState::Failed(e),
                };
            grants.push(PlannedGrant {
                name,
                origin: input.origin.clone(),
                state,
            });
        }

        // Locate each distinct resource once; grants naming the same resource differently
        // (a key by alias and by id) meet again under the resource's ARN.
        let mut locations: BTreeMap<LocationKey, Result<TargetRef, AwsError>> = BTreeMap::new();
        for (_, g) in &resolved {
            if let Entry::Vacant(slot) = locations.entry(location_key(g)) {
                slot.insert(
                    self.backend
                        .locate(&g.account, g.kind, &g.region, &g.name)
                        .await,
                );
            }
        }

        let mut by_target: BTreeMap<(String, String), TargetGroup> = BTreeMap::new();
        for (index, g) in resolved {
            let target = match locations.get(&location_key(&g)) {
                Some(Ok(t)) => t.clone(),
                Some(Err(e)) => {
                    grants[index].state = GrantState::Failed(GrantError::Aws(e.clone()));
                    continue;
                }
                None => continue,
            };
            let desired = match operation {
                Operation::Delete => Vec::new(),
                Operation::Apply => match grant_statements(&g, &target) {
                    Ok(s) => s,
                    Err(e) => {
                        let field = super::FieldError::new("spec.conditions", e.to_string());
                        grants[index].state =
                            GrantState::Failed(GrantError::InvalidSpec(vec![field]));
                        continue;
                    }
                },
            };
            grants[index].state = GrantState::Planned {
                owner: g.owner.clone(),
                target: target.arn.clone(),
                region: target.region.clone(),
                sids: desired
                    .iter()
                    .filter_map(|s| s.sid().map(str::to_string))
                    .collect(),
            };
            let created = inputs[index]
                .grant
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string());
            by_target
                .entry((target.account.account_id.clone(), target.arn.clone()))
                .or_insert_with(|| TargetGroup {
                    target: target.clone(),
                    members: Vec::new(),
                })
                .members
                .push(Member {
                    grant: g,
                    created,
                    index,
                    desired,
                });
        }

        let targets: Vec<TargetPlan> = stream::iter(by_target.into_values())
            .map(|group| self.plan_target(group))
            .buffered(self.settings.concurrency.max(1))
            .collect()
            .await;
        Plan {
            operation,
            grants,
            targets,
        }
    }

    async fn plan_target(&self, group: TargetGroup) -> TargetPlan {
        let TargetGroup {
            target,
            mut members,
        } = group;
        let mut notes = Vec::new();
        if target.kind == ResourceKind::EcrRepository
            && members.iter().any(|m| !m.grant.grantee_managed)
        {
            notes.push(
                "ecr:GetAuthorizationToken cannot be granted by a repository policy: the grantee's principals also need it \
                 in an identity policy in their own account (Resource \"*\")"
                    .to_string(),
            );
        }
        let mut plan = TargetPlan {
            target,
            owners: Vec::new(),
            desired: Vec::new(),
            current: None,
            merged: None,
            error: None,
            size: None,
            notes,
            applied: None,
            excluded: Vec::new(),
        };
        match self.read_document(&plan.target).await {
            Ok(current) => plan.current = current,
            Err(e) => {
                plan.error = Some(e);
                plan.owners = members.iter().map(|m| m.grant.owner.clone()).collect();
                return plan;
            }
        }
        plan.notes
            .extend(orphaned_principal_notes(plan.current.as_ref()));
        // Oldest first, so that when the policy overflows the newest grants are the ones left out
        // (deterministic: creation time, then input order).
        members.sort_by(|a, b| a.created.cmp(&b.created).then(a.index.cmp(&b.index)));
        loop {
            plan.owners = members.iter().map(|m| m.grant.owner.clone()).collect();
            plan.desired = members
                .iter()
                .flat_map(|m| m.desired.iter().cloned())
                .collect();
            match self.merge_target(
                &plan.target,
                plan.current.as_ref(),
                &plan.owners,
                &plan.desired,
            ) {
                Ok((merged, size)) => {
                    plan.merged = Some(merged);
                    plan.size = size;
                    return plan;
                }
                // A grant left out is out of scope: its statements (if any) stay as they are.
                Err(e @ GrantError::PolicyTooLarge { .. }) if members.len() > 1 => {
                    // A grant that does not fit even alone goes first, whatever its age; then the newest.
                    let alone_too_large = |m: &Member| {
                        let owner = std::slice::from_ref(&m.grant.owner);
                        self.merge_target(&plan.target, plan.current.as_ref(), owner, &m.desired)
                            .is_err()
                    };
                    let position = members
                        .iter()
                        .position(alone_too_large)
                        .unwrap_or(members.len() - 1);
                    let left_out = members.remove(position);
                    plan.notes.push(format!(
                        "{} is left out: the policy would be over its size limit with it",
                        left_out.grant.owner.display_name()
                    ));
                    plan.excluded.push((left_out.grant.owner, e));
                }
                Err(e) => {
                    plan.error = Some(e);
                    return plan;
                }
            }
        }
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
        target: &TargetRef,
        current: Option<&PolicyDocument>,
        owners: &[GrantOwner],
        desired: &[Statement],
    ) -> Result<(Merged, Option<(usize, SizeLimit)>), GrantError> {
        let scope = OwnershipScope::new(owners);
        let mut merged =
            merge(current, &scope, desired).map_err(|e| GrantError::UnreadablePolicy {
                target: target.arn.clone(),
                reason: e.to_string(),
            })?;
        if merged.decision == WriteDecision::Delete && !self.backend.can_delete(target.kind) {
            // Key and trust policies always exist: write the document without our statements.
            merged.decision = WriteDecision::Put;
        }
        if merged.decision != WriteDecision::Put {
            return Ok((merged, None));
        }
        let limit = self.size_limit(target.kind);
        let text = merged.document.to_compact_string();
        match limit.check(&text) {
            Ok(size) => Ok((merged, Some((size, limit)))),
            Err(size) => Err(GrantError::PolicyTooLarge {
                target: target.arn.clone(),
                size,
                limit: limit.max,
                unit: limit.unit,
            }),
        }
    }

    fn size_limit(&self, kind: ResourceKind) -> SizeLimit {
        match kind {
            ResourceKind::S3Bucket => SizeLimit::S3_BUCKET,
            ResourceKind::EcrRepository => SizeLimit::ECR_REPOSITORY,
            ResourceKind::KmsKey => SizeLimit::KMS_KEY,
            ResourceKind::IamRole => SizeLimit {
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
