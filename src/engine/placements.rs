//! Where a grant's statements go: the resource's own policy (for a SageMaker endpoint, the trust
//! and inline policy of the role xacct creates), the grantee roles' and users' inline policies, and
//! (deleting) the places its status records, with the AWS lookups that takes, made once per plan.

use std::collections::BTreeMap;

use super::error::{FieldError, GrantError};
use super::plan::{PlannedTarget, target_key};
use super::resolve::{
    AccountDirectory, ResolvedGrant, account_access, identity_holder, invoke_role_name,
};
use super::statements::{
    GranteeExtras, grantee_statements, invoke_role_statements, resource_statements,
};
use super::{Engine, GrantInput, Operation};
use crate::api::{GranteeSide, PolicyKind, PolicyLocation, ResourceKind};
use crate::aws::{AccountAccess, AwsError, AwsErrorKind, Encryption, TargetRef};
use crate::policy::{PolicyError, Statement};

/// Identifies a policy as grants name it: account, kind, region, name.
type LocationKey = (String, PolicyKind, String, String);

/// Where one grant puts statements, and what a reader should know about it.
pub(super) struct Placed {
    pub(super) target: TargetRef,
    pub(super) desired: Vec<Statement>,
    pub(super) note: Option<String>,
}

/// AWS lookups made once per plan, whatever number of grants need them.
#[derive(Default)]
pub(super) struct Lookups {
    located: BTreeMap<LocationKey, Result<TargetRef, AwsError>>,
    profiles: BTreeMap<(String, String), Result<String, AwsError>>,
    endpoints: BTreeMap<(String, String, String), Result<String, AwsError>>,
    resource_keys: BTreeMap<String, Result<Encryption, AwsError>>,
}

impl Engine {
    /// Every policy a grant has statements in (or, deleting, had): the resource's own policy (for
    /// a SageMaker endpoint, the trust and inline policy of the role xacct creates), then with
    /// `granteeSide: Manage` each grantee role's or user's inline policy, then (deleting) the
    /// places its status records.
    pub(super) async fn placements(
        &self,
        lookups: &mut Lookups,
        accounts: &AccountDirectory,
        g: &mut ResolvedGrant,
        input: &GrantInput,
        operation: Operation,
    ) -> Result<Vec<Placed>, GrantError> {
        let applying = operation == Operation::Apply;
        self.resolve_instance_profiles(lookups, g, applying).await?;
        let mut placed: Vec<Placed> = Vec::new();
        if applying || input.spec_places {
            let statements_error = |e: PolicyError| {
                GrantError::InvalidSpec(vec![FieldError::new("spec.conditions", e.to_string())])
            };
            let (kind, name) = match g.kind {
                ResourceKind::SageMakerEndpoint => (
                    PolicyKind::InvokeRoleTrustPolicy,
                    invoke_role_name(
                        &self.settings.instance_id,
                        &g.account.account_id,
                        &g.region,
                        &g.name,
                    ),
                ),
                kind => (PolicyKind::of_resource(kind), g.name.clone()),
            };
            if let Some(resource) = self
                .locate(lookups, &g.account, kind, &g.region, &name, applying)
                .await?
            {
                let resource_arn = resource.arn.clone();
                let desired = if applying {
                    resource_statements(g, &resource_arn).map_err(statements_error)?
                } else {
                    Vec::new()
                };
                let mut extras = GranteeExtras::default();
                let mut note = None;
                if applying
                    && g.grantee_side == GranteeSide::Manage
                    && matches!(g.kind, ResourceKind::S3Bucket | ResourceKind::Secret)
                {
                    (extras.resource_key, note) = self.resource_key(lookups, &resource).await?;
                }
                if applying
                    && g.kind == ResourceKind::EcrRepository
                    && g.grantee_side == GranteeSide::None
                {
                    note = Some(
                        "ecr:GetAuthorizationToken cannot be granted by a repository policy: the grantee's principals also need it \
                         in an identity policy in their own account (Resource \"*\")"
                            .to_string(),
                    );
                }
                placed.push(Placed {
                    target: resource,
                    desired,
                    note,
                });
                if g.kind == ResourceKind::SageMakerEndpoint {
                    let desired = if applying {
                        let endpoint = self.endpoint_arn(lookups, g).await?;
                        invoke_role_statements(g, &endpoint).map_err(statements_error)?
                    } else {
                        Vec::new()
                    };
                    if let Some(inline) = self
                        .locate(
                            lookups,
                            &g.account,
                            PolicyKind::InvokeRoleInlinePolicy,
                            &g.region,
                            &name,
                            applying,
                        )
                        .await?
                    {
                        placed.push(Placed {
                            target: inline,
                            desired,
                            note: None,
                        });
                    }
                }
                if let (GranteeSide::Manage, Some(grantee)) =
                    (g.grantee_side, g.grantee_account.clone())
                {
                    for principal in &g.principals {
                        let Some((kind, holder)) = identity_holder(principal) else {
                            continue;
                        };
                        let Some(target) = self
                            .locate(lookups, &grantee, kind, &g.region, &holder, applying)
                            .await?
                        else {
                            continue;
                        };
                        let desired = if applying {
                            grantee_statements(g, &resource_arn, &extras)
                                .map_err(statements_error)?
                        } else {
                            Vec::new()
                        };
                        placed.push(Placed {
                            target,
                            desired,
                            note: None,
                        });
                    }
                }
            }
        }
        if !applying {
            for written in &input.written {
                let location = &written.location;
                // An account no longer managed cannot be reached: nothing can be revoked there.
                let Some(account) = accounts.get(&location.account) else {
                    continue;
                };
                let account = account_access(account);
                let Some(target) = self
                    .locate(
                        lookups,
                        &account,
                        location.kind,
                        &written.region,
                        &location.name,
                        false,
                    )
                    .await?
                else {
                    continue;
                };
                if !placed
                    .iter()
                    .any(|p| target_key(&p.target) == target_key(&target))
                {
                    placed.push(Placed {
                        target,
                        desired: Vec::new(),
                        note: None,
                    });
                }
            }
        }
        Ok(placed)
    }

    /// Looks up `instanceProfile/NAME` principals to their roles. Revoking, a profile that is gone
    /// is skipped: there is no role left to revoke from through it.
    async fn resolve_instance_profiles(
        &self,
        lookups: &mut Lookups,
        g: &mut ResolvedGrant,
        applying: bool,
    ) -> Result<(), GrantError> {
        let profiles = std::mem::take(&mut g.instance_profiles);
        let Some(grantee) = g.grantee_account.clone() else {
            return Ok(());
        };
        for (i, profile) in profiles {
            let key = (grantee.account_id.clone(), profile.clone());
            if !lookups.profiles.contains_key(&key) {
                let result = self.backend.instance_profile_role(&grantee, &profile).await;
                lookups.profiles.insert(key.clone(), result);
            }
            match lookups.profiles.get(&key) {
                Some(Ok(role)) => g.principals.push(role.clone()),
                // Not InvalidSpec: creating the profile later makes the grant good, so it is
                // retried like a missing role.
                Some(Err(e)) if applying => {
                    let mut e = e.clone();
                    e.message = format!("spec.grantee.principals[{i}]: {}", e.message);
                    return Err(GrantError::Aws(e));
                }
                _ => {}
            }
        }
        g.principals.sort();
        g.principals.dedup();
        Ok(())
    }

    /// Locates a policy once per plan. Revoking, one whose holder is gone is `None`: it holds no
    /// statements any more.
    async fn locate(
        &self,
        lookups: &mut Lookups,
        account: &AccountAccess,
        kind: PolicyKind,
        region: &str,
        name: &str,
        applying: bool,
    ) -> Result<Option<TargetRef>, GrantError> {
        let key = (
            account.name.clone(),
            kind,
            region.to_string(),
            name.to_string(),
        );
        if !lookups.located.contains_key(&key) {
            let mut located = self.backend.locate(account, kind, region, name).await;
            if let Ok(t) = &mut located
                && matches!(
                    kind,
                    PolicyKind::InvokeRoleTrustPolicy | PolicyKind::InvokeRoleInlinePolicy
                )
            {
                t.created_by = Some(self.settings.instance_id.clone());
            }
            lookups.located.insert(key.clone(), located);
        }
        match lookups.located.get(&key) {
            Some(Ok(t)) => Ok(Some(t.clone())),
            Some(Err(e)) if !applying && e.kind == AwsErrorKind::NotFound => Ok(None),
            Some(Err(e)) => Err(GrantError::Aws(e.clone())),
            None => Ok(None),
        }
    }

    async fn endpoint_arn(
        &self,
        lookups: &mut Lookups,
        g: &ResolvedGrant,
    ) -> Result<String, GrantError> {
        let key = (
            g.account.account_id.clone(),
            g.region.clone(),
            g.name.clone(),
        );
        if !lookups.endpoints.contains_key(&key) {
            let result = self
                .backend
                .endpoint_arn(&g.account, &g.region, &g.name)
                .await;
            lookups.endpoints.insert(key.clone(), result);
        }
        match lookups.endpoints.get(&key) {
            Some(Ok(arn)) => Ok(arn.clone()),
            Some(Err(e)) => Err(GrantError::Aws(e.clone())),
            None => Err(GrantError::InvalidSpec(vec![FieldError::new(
                "spec.resource.name",
                "endpoint not looked up",
            )])),
        }
    }

    /// The customer managed key the grantee side needs `kms:Decrypt` on (a bucket's default key, a
    /// secret's key), and a note for the reader.
    async fn resource_key(
        &self,
        lookups: &mut Lookups,
        resource: &TargetRef,
    ) -> Result<(Option<String>, Option<String>), GrantError> {
        if !lookups.resource_keys.contains_key(&resource.arn) {
            let result = self.backend.encryption(resource).await;
            lookups.resource_keys.insert(resource.arn.clone(), result);
        }
        let (what, aws_key) = match resource.kind {
            PolicyKind::SecretResourcePolicy => ("the secret is encrypted", "aws/secretsmanager"),
            _ => ("the bucket encrypts objects", "aws/s3"),
        };
        match lookups.resource_keys.get(&resource.arn) {
            Some(Ok(Encryption::CustomerKey(key))) => Ok((
                Some(key.clone()),
                Some(format!(
                    "{what} with the KMS key {key}: the grantee roles and users get kms:Decrypt on it; \
                     its key policy must allow them too (a KmsKey grant on that key)"
                )),
            )),
            Some(Ok(Encryption::AwsManagedKey)) => Ok((
                None,
                Some(format!(
                    "{what} with the AWS managed key {aws_key}, which other accounts cannot use: \
                     it cannot be read across accounts; use a customer managed key"
                )),
            )),
            Some(Ok(Encryption::NoKmsKey)) | None => Ok((None, None)),
            Some(Err(e)) => Err(GrantError::Aws(e.clone())),
        }
    }
}

pub(super) fn planned_target(p: &Placed) -> PlannedTarget {
    PlannedTarget {
        arn: p.target.arn.clone(),
        location: PolicyLocation {
            account: p.target.account.name.clone(),
            kind: p.target.kind,
            // A key by its ARN, so that it is found again even if an alias moves; queues, topics
            // and secrets by their ARNs (the id of a queue is its URL).
            name: match p.target.kind {
                PolicyKind::KmsKeyPolicy
                | PolicyKind::SqsQueuePolicy
                | PolicyKind::SnsTopicPolicy
                | PolicyKind::SecretResourcePolicy
                | PolicyKind::LambdaFunctionPolicy
                | PolicyKind::EventBusPolicy => p.target.arn.clone(),
                _ => p.target.id.clone(),
            },
        },
        region: p.target.region.clone(),
        sids: p
            .desired
            .iter()
            .filter_map(|s| s.sid().map(str::to_string))
            .collect(),
        size: None,
    }
}
