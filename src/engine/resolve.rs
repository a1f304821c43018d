//! From resources to what a grant means in AWS terms, with every check that needs no AWS call.

use std::collections::BTreeMap;

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::actions::check_action;
use super::error::{FieldError, GrantError};
use crate::api::patterns;
use crate::api::{
    AccessPreset, AwsAccount, CrossAccountGrant, DeletionPolicy, GranteeSide, ResourceKind,
    ResourceSpec,
};
use crate::aws::{AccountAccess, AssumeRole};
use crate::policy::{GrantOwner, account_root_arn, partition_for_region};

/// The region used when neither the grant nor its account names one.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The session name used when an AwsAccount does not set one.
pub const DEFAULT_SESSION_NAME: &str = "xacct";

/// Managed accounts by name; accounts that break the CRD's rules are kept apart with their errors.
#[derive(Debug, Clone, Default)]
pub struct AccountDirectory {
    accounts: BTreeMap<String, AwsAccount>,
    invalid: BTreeMap<String, Vec<FieldError>>,
}

impl AccountDirectory {
    /// A directory of `accounts` (by `metadata.name`).
    pub fn new(accounts: impl IntoIterator<Item = AwsAccount>) -> Self {
        let mut directory = AccountDirectory::default();
        for account in accounts {
            let name = account.metadata.name.clone().unwrap_or_default();
            match super::cel::validate(&account) {
                Ok(()) => {
                    directory.accounts.insert(name, account);
                }
                Err(errors) => {
                    directory.invalid.insert(
                        name,
                        errors
                            .iter()
                            .map(|e| FieldError::new(&e.field_path, &e.message))
                            .collect(),
                    );
                }
            }
        }
        directory
    }

    /// The valid account named `name`.
    pub fn get(&self, name: &str) -> Option<&AwsAccount> {
        self.accounts.get(name)
    }

    /// Sets an account apart as unusable, with what is wrong.
    pub fn mark_invalid(&mut self, name: &str, error: FieldError) {
        self.accounts.remove(name);
        self.invalid
            .entry(name.to_string())
            .or_default()
            .push(error);
    }

    /// Accounts that break the CRD's rules, with what is wrong.
    pub fn invalid(&self) -> impl Iterator<Item = (&String, &Vec<FieldError>)> {
        self.invalid.iter()
    }

    fn missing_account_message(&self, name: &str) -> String {
        match self.invalid.get(name) {
            Some(errors) => format!(
                "AwsAccount {name:?} is invalid: {}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            None => format!("there is no AwsAccount named {name:?}"),
        }
    }

    /// Every account.
    pub fn iter(&self) -> impl Iterator<Item = &AwsAccount> {
        self.accounts.values()
    }
}

/// How to reach an AwsAccount. The external id must already be resolved (the controller reads
/// `externalIdSecretRef` before calling this).
pub fn account_access(account: &AwsAccount) -> AccountAccess {
    AccountAccess {
        name: account.metadata.name.clone().unwrap_or_default(),
        account_id: account.spec.account_id.clone(),
        assume_role: account.spec.assume_role.as_ref().map(|r| AssumeRole {
            role_arn: r.role_arn.clone(),
            external_id: r.external_id.clone(),
            session_name: r
                .session_name
                .clone()
                .unwrap_or_else(|| DEFAULT_SESSION_NAME.to_string()),
        }),
    }
}

/// A grant that passed every check that needs no AWS call.
#[derive(Debug, Clone)]
pub struct ResolvedGrant {
    /// Owner of the grant's statements.
    pub owner: GrantOwner,
    /// The account that owns the resource.
    pub account: AccountAccess,
    /// The resource's region.
    pub region: String,
    /// The kind of resource.
    pub kind: ResourceKind,
    /// The resource as the grant names it.
    pub name: String,
    /// S3 only: the key prefix.
    pub prefix: Option<String>,
    /// The grantee account, when it is managed.
    pub grantee_account: Option<AccountAccess>,
    /// Whether xacct writes the grantee's identity policies too.
    pub grantee_side: GranteeSide,
    /// Principal ARNs (the grantee root when the grant names none; `*` for an organization), sorted;
    /// instance profiles are added once looked up.
    pub principals: Vec<String>,
    /// `instanceProfile/NAME` principals still to look up: (position in the spec, profile name).
    pub instance_profiles: Vec<(usize, String)>,
    /// Presets.
    pub access: Vec<AccessPreset>,
    /// Explicit actions.
    pub actions: Vec<String>,
    /// The grant's own condition block, with an organization grantee's conditions.
    pub conditions: BTreeMap<String, BTreeMap<String, Value>>,
    /// IamRole only: required external id.
    pub external_id: Option<String>,
    /// What deletion does.
    pub deletion_policy: DeletionPolicy,
}

/// Why a grant is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// To grant access: every check applies.
    Grant,
    /// To revoke access: the namespace allow-list does not apply.
    Revoke,
}

/// Checks a grant against its schema rules and the managed accounts, and resolves its references.
pub fn resolve_grant(
    grant: &CrossAccountGrant,
    accounts: &AccountDirectory,
    instance: &str,
    purpose: Purpose,
) -> Result<ResolvedGrant, GrantError> {
    let namespace = grant
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let name = grant.metadata.name.clone().unwrap_or_default();
    let spec = &grant.spec;
    if purpose == Purpose::Revoke {
        return resolve_for_revoke(grant, accounts, instance, &namespace, &name);
    }
    let mut errors = schema_errors(grant);
    if name.is_empty() {
        errors.push(FieldError::new("metadata.name", "a grant needs a name"));
    }

    let account = accounts.get(&spec.resource.account);
    if account.is_none() {
        errors.push(FieldError::new(
            "spec.resource.account",
            accounts.missing_account_message(&spec.resource.account),
        ));
    }
    let grantee_account = spec.grantee.account.as_ref().and_then(|n| accounts.get(n));
    let grantee_side = spec.effective_grantee_side();
    let organization = spec.grantee.organization.as_ref();
    let grantee_account_id = match (&spec.grantee.account_id, &spec.grantee.account) {
        _ if organization.is_some() => None,
        (Some(id), None) => Some(id.clone()),
        (None, Some(account_name)) => match grantee_account {
            Some(a) => Some(a.spec.account_id.clone()),
            None => {
                errors.push(FieldError::new(
                    "spec.grantee.account",
                    accounts.missing_account_message(account_name),
                ));
                None
            }
        },
        _ => None, // reported by the schema rule
    };
    // An ARN names its own region and account; they must agree with the rest of the spec.
    let key_arn = KeyArn::of(&spec.resource);
    if key_arn.as_ref().is_some_and(Option::is_none) {
        errors.push(FieldError::new(
            "spec.resource.name",
            "a key ARN looks like arn:aws:kms:REGION:ACCOUNT:key/ID",
        ));
    }
    let region = resource_region(
        &spec.resource,
        account.and_then(|a| a.spec.region.as_deref()),
    );
    if let Some(Some(arn)) = &key_arn {
        if spec
            .resource
            .region
            .as_ref()
            .is_some_and(|r| *r != arn.region)
        {
            errors.push(FieldError::new(
                "spec.resource.region",
                format!("the key ARN is in {}", arn.region),
            ));
        }
        if let Some(a) = account.filter(|a| a.spec.account_id != arn.account_id) {
            errors.push(FieldError::new(
                "spec.resource.name",
                format!(
                    "the key ARN is in account {}, but AwsAccount {} is {}",
                    arn.account_id, spec.resource.account, a.spec.account_id
                ),
            ));
        }
    }
    let partition = partition_for_region(&region);

    // The CRD schema's bounds, which an API server checks before any CEL rule runs.
    let bounds = [
        (
            "spec.grantee.principals",
            spec.grantee.principals.len(),
            patterns::MAX_PRINCIPALS as usize,
            "principals",
        ),
        (
            "spec.actions",
            spec.actions.len(),
            patterns::MAX_ACTIONS as usize,
            "actions",
        ),
        ("spec.access", spec.access.len(), 12, "presets"),
    ];
    for (field, count, max, what) in bounds {
        if count > max {
            errors.push(FieldError::new(
                field,
                format!("at most {max} {what}, found {count}"),
            ));
        }
    }
    for (i, p) in spec.grantee.principals.iter().enumerate() {
        if p.len() > patterns::MAX_PRINCIPAL_LEN as usize {
            errors.push(FieldError::new(
                format!("spec.grantee.principals[{i}]"),
                format!("at most {} characters", patterns::MAX_PRINCIPAL_LEN),
            ));
        }
    }
    for (i, a) in spec.actions.iter().enumerate() {
        if a.len() > 128 {
            errors.push(FieldError::new(
                format!("spec.actions[{i}]"),
                "at most 128 characters",
            ));
        }
    }
    for (i, action) in spec.actions.iter().enumerate() {
        if let Err(message) = check_action(spec.resource.kind, action) {
            errors.push(FieldError::new(format!("spec.actions[{i}]"), message));
        }
    }
    errors.extend(check_conditions(spec));
    if organization.is_some_and(|o| !o.paths.is_empty())
        && spec.resource.kind == ResourceKind::LambdaFunction
    {
        errors.push(FieldError::new(
            "spec.grantee.organization.paths",
            "a LambdaFunction grant can name an organization but not paths in it (Lambda's AddPermission takes aws:PrincipalOrgID only)",
        ));
    }

    let allow_public = account.is_some_and(|a| a.spec.allow_public_principals);
    let manage = grantee_side == GranteeSide::Manage;
    let mut principals = Vec::new();
    let mut instance_profiles = Vec::new();
    // A principal `*` the account does not consent to: refused once the spec is otherwise valid.
    let mut public_refused = None;
    if let Some(grantee) = &grantee_account_id {
        for (i, p) in spec.grantee.principals.iter().enumerate() {
            let field = format!("spec.grantee.principals[{i}]");
            if p == "*" && !allow_public {
                public_refused.get_or_insert(field);
                continue;
            }
            if let Some(profile) = p.strip_prefix(INSTANCE_PROFILE) {
                if spec.grantee.account.is_none() {
                    errors.push(FieldError::new(
                        field,
                        format!("{p} is looked up in the grantee account, so it needs grantee.account (a managed AwsAccount) instead of grantee.accountId"),
                    ));
                } else {
                    instance_profiles.push((i, profile.to_string()));
                }
                continue;
            }
            match principal_arn(p, grantee, partition, allow_public) {
                Ok(arn) if manage && identity_holder(&arn).is_none() => errors.push(FieldError::new(
                    field,
                    format!("{p} cannot be given an identity policy (only roles and users can); with granteeSide: Manage name roles or users, or set granteeSide: None"),
                )),
                Ok(arn) => principals.push(arn),
                Err(message) => errors.push(FieldError::new(field, message)),
            }
        }
        if principals.is_empty()
            && instance_profiles.is_empty()
            && errors.is_empty()
            && public_refused.is_none()
        {
            if manage {
                errors.push(FieldError::new(
                    "spec.grantee.principals",
                    "granteeSide is Manage, but no principals are named: the account root cannot be given an identity policy; name the roles or users that need access, or set granteeSide: None",
                ));
            } else {
                principals.push(account_root_arn(partition, grantee));
            }
        }
    }
    if organization.is_some() {
        // Anyone, narrowed by the organization's conditions (added below).
        principals.push("*".to_string());
    }
    principals.sort();
    principals.dedup();

    if !errors.is_empty() {
        return Err(GrantError::InvalidSpec(dedup(errors)));
    }
    let Some(account) = account.filter(|_| grantee_account_id.is_some() || organization.is_some())
    else {
        return Err(GrantError::InvalidSpec(vec![FieldError::new(
            "spec",
            "incomplete grant",
        )]));
    };
    // Revoking only removes xacct's own statements, so it is allowed even after the account stopped
    // allowing the namespace.
    if purpose == Purpose::Grant && !namespace_allowed(account, &namespace) {
        return Err(GrantError::NamespaceNotAllowed {
            field: "spec.resource.account",
            account: spec.resource.account.clone(),
            namespace,
        });
    }
    // Writing identity policies in the grantee account needs that account's consent too.
    if let (true, Some(grantee), Some(grantee_name)) =
        (manage, grantee_account, &spec.grantee.account)
        && !namespace_allowed(grantee, &namespace)
    {
        return Err(GrantError::NamespaceNotAllowed {
            field: "spec.grantee.account",
            account: grantee_name.clone(),
            namespace,
        });
    }
    if let Some(field) = public_refused {
        return Err(GrantError::PublicPrincipalNotAllowed {
            field,
            account: spec.resource.account.clone(),
        });
    }
    if let Some(org) = organization
        && !account.spec.allowed_organizations.contains(&org.id)
    {
        return Err(GrantError::OrganizationNotAllowed {
            account: spec.resource.account.clone(),
            organization: org.id.clone(),
        });
    }
    let mut conditions = spec.conditions.clone();
    if let Some(org) = organization {
        conditions
            .entry("StringEquals".into())
            .or_default()
            .insert(ORG_ID_KEY.into(), Value::String(org.id.clone()));
        if !org.paths.is_empty() {
            conditions
                .entry("ForAnyValue:StringLike".into())
                .or_default()
                .insert(ORG_PATHS_KEY.into(), serde_json::json!(org.paths));
        }
    }
    Ok(ResolvedGrant {
        owner: GrantOwner::new(instance, &namespace, &name),
        account: account_access(account),
        region,
        kind: spec.resource.kind,
        name: spec.resource.name.clone(),
        prefix: spec.resource.prefix.clone(),
        grantee_account: grantee_account.map(account_access),
        grantee_side,
        principals,
        instance_profiles,
        access: spec.access.clone(),
        actions: spec.actions.clone(),
        conditions,
        external_id: spec.external_id.clone(),
        deletion_policy: spec.deletion_policy,
    })
}

/// Revoking finds a grant's statements by their Sids, so it needs only where they are: the
/// account, the resource and its region. Nothing else about the grant (principals, grantee account,
/// schema rules, the namespace allow-list) may stand in the way of taking access away.
fn resolve_for_revoke(
    grant: &CrossAccountGrant,
    accounts: &AccountDirectory,
    instance: &str,
    namespace: &str,
    name: &str,
) -> Result<ResolvedGrant, GrantError> {
    let spec = &grant.spec;
    let Some(account) = accounts.get(&spec.resource.account) else {
        let message = accounts.missing_account_message(&spec.resource.account);
        return Err(GrantError::InvalidSpec(vec![FieldError::new(
            "spec.resource.account",
            message,
        )]));
    };
    let region = resource_region(&spec.resource, account.spec.region.as_deref());
    // The grantee side is revoked from the principals the spec names now; what it named before is
    // revoked from the places recorded in status. Principals that do not read are skipped.
    let grantee_account = spec.grantee.account.as_ref().and_then(|n| accounts.get(n));
    let grantee_side = spec.effective_grantee_side();
    let mut principals = Vec::new();
    let mut instance_profiles = Vec::new();
    if let (GranteeSide::Manage, Some(grantee)) = (grantee_side, grantee_account) {
        let partition = partition_for_region(&region);
        for (i, p) in spec.grantee.principals.iter().enumerate() {
            if let Some(profile) = p.strip_prefix(INSTANCE_PROFILE) {
                instance_profiles.push((i, profile.to_string()));
            } else if let Ok(arn) = principal_arn(p, &grantee.spec.account_id, partition, false) {
                principals.push(arn);
            }
        }
    }
    Ok(ResolvedGrant {
        owner: GrantOwner::new(instance, namespace, name),
        account: account_access(account),
        region,
        kind: spec.resource.kind,
        name: spec.resource.name.clone(),
        prefix: spec.resource.prefix.clone(),
        grantee_account: grantee_account.map(account_access),
        grantee_side,
        principals,
        instance_profiles,
        access: Vec::new(),
        actions: Vec::new(),
        conditions: BTreeMap::new(),
        external_id: None,
        deletion_policy: spec.deletion_policy,
    })
}

/// The region and account a KMS key ARN names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyArn {
    /// Its region.
    pub region: String,
    /// Its account id.
    pub account_id: String,
}

impl KeyArn {
    /// Reads `arn:PARTITION:kms:REGION:ACCOUNT:key/ID` (or `alias/NAME`).
    pub fn parse(arn: &str) -> Option<KeyArn> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        match parts.as_slice() {
            ["arn", _, "kms", region, account_id, _] if !region.is_empty() => Some(KeyArn {
                region: region.to_string(),
                account_id: account_id.to_string(),
            }),
            _ => None,
        }
    }

    /// For a KmsKey resource named by ARN, `Some` of what the ARN says (`Some(None)`: it does not
    /// read as a key ARN); `None` for any other resource or a key named by id or alias.
    pub fn of(resource: &ResourceSpec) -> Option<Option<KeyArn>> {
        (resource.kind == ResourceKind::KmsKey && resource.name.starts_with("arn:"))
            .then(|| KeyArn::parse(&resource.name))
    }
}

/// The region of the resource a grant names: a key ARN's own, else the resource's `region`, else
/// its account's (`account_region`), else the default.
pub fn resource_region(resource: &ResourceSpec, account_region: Option<&str>) -> String {
    KeyArn::of(resource)
        .flatten()
        .map(|arn| arn.region)
        .or_else(|| resource.region.clone())
        .unwrap_or_else(|| home_region(account_region))
}

/// An account's default region (`spec.region`), else the default.
pub fn home_region(account_region: Option<&str>) -> String {
    account_region.unwrap_or(DEFAULT_REGION).to_string()
}

/// Whether `account` lets grants of `namespace` expose its resources.
pub fn namespace_allowed(account: &AwsAccount, namespace: &str) -> bool {
    account
        .spec
        .allowed_namespaces
        .iter()
        .any(|n| n == "*" || n == namespace)
}

/// The CRD's own rules (the same CEL the API server runs), evaluated here so the CLI refuses what a
/// cluster would.
fn schema_errors(grant: &CrossAccountGrant) -> Vec<FieldError> {
    match super::cel::validate(grant) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| {
                FieldError::new(
                    if e.field_path.is_empty() {
                        "spec".to_string()
                    } else {
                        e.field_path.clone()
                    },
                    e.message.clone(),
                )
            })
            .collect(),
    }
}

/// The name of the role xacct creates in the endpoint's account to invoke a SageMaker endpoint:
/// readable, at most 64 characters, and distinct per instance, account, region and endpoint.
pub fn invoke_role_name(instance: &str, account_id: &str, region: &str, endpoint: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{instance}\n{account_id}\n{region}\n{endpoint}"));
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let readable: String = endpoint.chars().take(40).collect();
    format!("xacct-{readable}-{hash}")
}

/// How an instance profile principal is written.
const INSTANCE_PROFILE: &str = "instanceProfile/";

/// Which identity holds a principal's identity policy: a role (also for an assumed-role session)
/// or a user, by ARN; `None` for an account root or anyone.
pub fn identity_holder(principal_arn: &str) -> Option<(crate::api::PolicyKind, String)> {
    use crate::api::PolicyKind;
    let parts: Vec<&str> = principal_arn.splitn(6, ':').collect();
    let [_, partition, service, _, account, resource] = parts.as_slice() else {
        return None;
    };
    match (*service, resource.split_once('/')) {
        ("iam", Some(("role", _))) => {
            Some((PolicyKind::RoleInlinePolicy, principal_arn.to_string()))
        }
        ("iam", Some(("user", _))) => {
            Some((PolicyKind::UserInlinePolicy, principal_arn.to_string()))
        }
        ("sts", Some(("assumed-role", rest))) => {
            let role = rest.split('/').next().unwrap_or(rest);
            Some((
                PolicyKind::RoleInlinePolicy,
                format!("arn:{partition}:iam::{account}:role/{role}"),
            ))
        }
        _ => None,
    }
}

static PRINCIPAL_SHORT_RE: LazyLock<Regex> = LazyLock::new(|| compile(patterns::PRINCIPAL_SHORT));
static PRINCIPAL_ARN_RE: LazyLock<Regex> = LazyLock::new(|| compile(patterns::PRINCIPAL_ARN));

/// The patterns are constants covered by tests; a failure here is a bug in this crate.
fn compile(pattern: &str) -> Regex {
    Regex::new(pattern)
        .unwrap_or_else(|e| panic!("built-in pattern {pattern:?} does not compile: {e}"))
}

fn principal_arn(
    principal: &str,
    grantee: &str,
    partition: &str,
    allow_public: bool,
) -> Result<String, String> {
    if principal == "*" {
        return if allow_public {
            Ok("*".to_string())
        } else {
            Err("the principal \"*\" (anyone) is refused unless the resource's AwsAccount sets allowPublicPrincipals: true".into())
        };
    }
    if PRINCIPAL_SHORT_RE.is_match(principal) {
        return Ok(format!("arn:{partition}:iam::{grantee}:{principal}"));
    }
    if !PRINCIPAL_ARN_RE.is_match(principal) {
        return Err(format!(
            "{principal:?} is not an IAM role or user ARN, an account root ARN, an assumed-role session ARN, role/NAME, user/NAME or instanceProfile/NAME"
        ));
    }
    let account = principal.split(':').nth(4).unwrap_or_default();
    if account != grantee {
        return Err(format!(
            "{principal:?} is in account {account}, but the grantee account is {grantee}"
        ));
    }
    Ok(principal.to_string())
}

/// The condition key naming the caller's organization.
const ORG_ID_KEY: &str = "aws:PrincipalOrgID";
/// The condition key listing the caller's account's paths in its organization.
const ORG_PATHS_KEY: &str = "aws:PrincipalOrgPaths";

/// Conditions xacct adds itself; the grant's own block may not set the same operator and key.
fn reserved_conditions(
    spec: &crate::api::CrossAccountGrantSpec,
) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut reserved = Vec::new();
    if spec.resource.prefix.is_some() {
        reserved.push(("StringLike", "s3:prefix", "resource.prefix"));
    }
    if spec.access.contains(&AccessPreset::Grant) {
        reserved.push(("Bool", "kms:GrantIsForAWSResource", "the grant preset"));
    }
    if spec.external_id.is_some() {
        reserved.push(("StringEquals", "sts:ExternalId", "externalId"));
    }
    if spec.grantee.organization.is_some() {
        reserved.push(("StringEquals", ORG_ID_KEY, "grantee.organization"));
        reserved.push((
            "ForAnyValue:StringLike",
            ORG_PATHS_KEY,
            "grantee.organization.paths",
        ));
    }
    reserved
}

fn check_conditions(spec: &crate::api::CrossAccountGrantSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let reserved = reserved_conditions(spec);
    for (operator, keys) in &spec.conditions {
        let bare = operator
            .strip_prefix("ForAllValues:")
            .or_else(|| operator.strip_prefix("ForAnyValue:"))
            .unwrap_or(operator);
        if bare.is_empty() || !bare.chars().all(|c| c.is_ascii_alphanumeric()) {
            errors.push(FieldError::new(
                format!("spec.conditions.{operator}"),
                "not an IAM condition operator",
            ));
        }
        if keys.is_empty() {
            errors.push(FieldError::new(
                format!("spec.conditions.{operator}"),
                "names no condition key",
            ));
        }
        for (key, value) in keys {
            let field = format!("spec.conditions.{operator}.{key}");
            if let Some((_, _, by)) = reserved
                .iter()
                .find(|(op, k, _)| op == operator && k.eq_ignore_ascii_case(key))
            {
                errors.push(FieldError::new(
                    &field,
                    format!("is set by {by}; do not set it in conditions too"),
                ));
            }
            let scalar =
                |v: &Value| matches!(v, Value::String(_) | Value::Bool(_) | Value::Number(_));
            let ok = match value {
                Value::Array(items) => !items.is_empty() && items.iter().all(scalar),
                other => scalar(other),
            };
            if !ok {
                errors.push(FieldError::new(
                    &field,
                    "must be a string, number, boolean or a non-empty list of them",
                ));
            }
        }
    }
    errors
}

fn dedup(mut errors: Vec<FieldError>) -> Vec<FieldError> {
    let mut seen = std::collections::BTreeSet::new();
    errors.retain(|e| seen.insert((e.field.clone(), e.message.clone())));
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Reason;

    fn kms_grant(name: &str, region: Option<&str>) -> CrossAccountGrant {
        let mut resource = serde_json::json!({"account": "data", "kind": "KmsKey", "name": name});
        if let Some(region) = region {
            resource["region"] = serde_json::json!(region);
        }
        serde_json::from_value(serde_json::json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "CrossAccountGrant",
            "metadata": {"name": "g", "namespace": "ns"},
            "spec": {"resource": resource, "grantee": {"accountId": "111111111111"}, "access": ["decrypt"]}}))
        .expect("valid grant")
    }

    fn org_grant(grantee: serde_json::Value, conditions: serde_json::Value) -> CrossAccountGrant {
        serde_json::from_value(
            serde_json::json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "CrossAccountGrant",
            "metadata": {"name": "g", "namespace": "ns"},
            "spec": {"resource": {"account": "data", "kind": "S3Bucket", "name": "lake"},
                     "grantee": grantee, "access": ["read"], "conditions": conditions}}),
        )
        .expect("valid grant")
    }

    fn data_account(allowed_organizations: &[&str]) -> AccountDirectory {
        let account: AwsAccount = serde_json::from_value(serde_json::json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "AwsAccount",
            "metadata": {"name": "data"}, "spec": {"accountId": "222222222222", "allowedNamespaces": ["*"],
            "allowedOrganizations": allowed_organizations}}))
        .expect("valid account");
        AccountDirectory::new([account])
    }

    const ORG: &str = "o-a1b2c3d4e5";

    #[test]
    fn an_organization_grantee_is_anyone_with_the_organization_condition() {
        let accounts = data_account(&[ORG]);
        let grant = org_grant(
            serde_json::json!({"organization": {"id": ORG}}),
            serde_json::json!({"Bool": {"aws:SecureTransport": true}}),
        );
        let resolved = resolve_grant(&grant, &accounts, "default", Purpose::Grant)
            .expect("allowed: no allowPublicPrincipals needed");
        assert_eq!(resolved.principals, ["*"]);
        assert_eq!(resolved.grantee_side, GranteeSide::None);
        assert_eq!(
            serde_json::to_value(&resolved.conditions).ok(),
            Some(serde_json::json!({
                "Bool": {"aws:SecureTransport": true},
                "StringEquals": {"aws:PrincipalOrgID": ORG}
            }))
        );

        let path = format!("{ORG}/r-ab12/ou-ab12-11111111/");
        let narrowed = org_grant(
            serde_json::json!({"organization": {"id": ORG, "paths": [path]}}),
            serde_json::json!({}),
        );
        let resolved =
            resolve_grant(&narrowed, &accounts, "default", Purpose::Grant).expect("resolves");
        assert_eq!(
            resolved.conditions["ForAnyValue:StringLike"]["aws:PrincipalOrgPaths"],
            serde_json::json!([path])
        );
    }

    #[test]
    fn an_organization_the_account_does_not_list_is_refused() {
        let grant = org_grant(
            serde_json::json!({"organization": {"id": ORG}}),
            serde_json::json!({}),
        );
        for accounts in [data_account(&[]), data_account(&["o-zzzzzzzzzz"])] {
            let error = resolve_grant(&grant, &accounts, "default", Purpose::Grant)
                .expect_err("no consent");
            assert_eq!(error.reason(), Reason::OrganizationNotAllowed);
            assert!(
                error
                    .to_string()
                    .contains("AwsAccount data does not allow grants to organization o-a1b2c3d4e5"),
                "{error}"
            );
        }
        // Revoking needs no consent.
        let accounts = data_account(&[]);
        assert!(resolve_grant(&grant, &accounts, "default", Purpose::Revoke).is_ok());
    }

    #[test]
    fn an_organization_grantee_sets_its_condition_keys_alone() {
        let accounts = data_account(&[ORG]);
        let grant = org_grant(
            serde_json::json!({"organization": {"id": ORG}}),
            serde_json::json!({"StringEquals": {"aws:PrincipalOrgID": "o-zzzzzzzzzz"}}),
        );
        let error = resolve_grant(&grant, &accounts, "default", Purpose::Grant)
            .expect_err("the org condition is xacct's");
        assert!(
            error.to_string().contains(
                "spec.conditions.StringEquals.aws:PrincipalOrgID: is set by grantee.organization"
            ),
            "{error}"
        );
        // With principals, or a second kind of grantee, or a grantee side: the CRD's rules refuse it.
        for (grantee, side) in [
            (
                serde_json::json!({"organization": {"id": ORG}, "principals": ["role/x"]}),
                None,
            ),
            (
                serde_json::json!({"organization": {"id": ORG}, "accountId": "111111111111"}),
                None,
            ),
            (
                serde_json::json!({"organization": {"id": ORG}}),
                Some("Manage"),
            ),
            (serde_json::json!({"organization": {"id": "o-short"}}), None),
            (
                serde_json::json!({"organization": {"id": ORG, "paths": ["o-zzzzzzzzzz/r-ab12/"]}}),
                None,
            ),
        ] {
            let mut grant = org_grant(grantee.clone(), serde_json::json!({}));
            grant.spec.grantee_side =
                side.map(|s| serde_json::from_value(serde_json::json!(s)).expect("a grantee side"));
            let error = resolve_grant(&grant, &accounts, "default", Purpose::Grant)
                .expect_err("refused by a CRD rule");
            assert_eq!(error.reason(), Reason::InvalidSpec, "{grantee} {side:?}");
        }
    }

    #[test]
    fn a_key_arn_brings_its_region_and_must_be_in_the_account() {
        let account: AwsAccount = serde_json::from_value(serde_json::json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "AwsAccount",
            "metadata": {"name": "data"}, "spec": {"accountId": "222222222222", "region": "us-east-1", "allowedNamespaces": ["*"]}}))
        .expect("valid account");
        let accounts = AccountDirectory::new([account]);
        let resolved = resolve_grant(
            &kms_grant("arn:aws:kms:eu-west-1:222222222222:key/k", None),
            &accounts,
            "default",
            Purpose::Grant,
        )
        .expect("resolves");
        assert_eq!(resolved.region, "eu-west-1");
        let other = resolve_grant(
            &kms_grant("arn:aws:kms:eu-west-1:333333333333:key/k", None),
            &accounts,
            "default",
            Purpose::Grant,
        );
        assert!(
            other
                .unwrap_err()
                .to_string()
                .contains("the key ARN is in account 333333333333")
        );
        let clash = resolve_grant(
            &kms_grant(
                "arn:aws:kms:eu-west-1:222222222222:key/k",
                Some("us-east-1"),
            ),
            &accounts,
            "default",
            Purpose::Grant,
        );
        assert!(
            clash
                .unwrap_err()
                .to_string()
                .contains("spec.resource.region: the key ARN is in eu-west-1")
        );
    }

    #[test]
    fn principals_resolve_in_the_grantee_account() {
        let ok = |p: &str| principal_arn(p, "111111111111", "aws", false);
        assert_eq!(
            ok("role/JobRole"),
            Ok("arn:aws:iam::111111111111:role/JobRole".into())
        );
        assert_eq!(
            ok("user/ops/alice"),
            Ok("arn:aws:iam::111111111111:user/ops/alice".into())
        );
        assert_eq!(
            ok("arn:aws:iam::111111111111:root"),
            Ok("arn:aws:iam::111111111111:root".into())
        );
        assert!(ok("arn:aws:sts::111111111111:assumed-role/Job/session-1").is_ok());
        for bad in [
            "role/",
            "role/team/",
            "arn:aws:iam::111111111111:role/*",
            "arn:aws:iam::111111111111:role/Has Space",
            "arn:aws:sts::111111111111:assumed-role/Job",
            "arn:aws:s3:::bucket",
            "group/Admins",
            "111111111111",
        ] {
            assert!(ok(bad).is_err(), "{bad} should be refused");
        }
        assert!(
            ok("arn:aws:iam::333333333333:role/X")
                .unwrap_err()
                .contains("is in account 333333333333")
        );
        assert!(ok("*").is_err());
        assert_eq!(
            principal_arn("*", "111111111111", "aws", true),
            Ok("*".into())
        );
    }

    #[test]
    fn identity_policies_go_on_roles_and_users_only() {
        use crate::api::PolicyKind::{RoleInlinePolicy, UserInlinePolicy};
        let role = "arn:aws:iam::111111111111:role/team/Job";
        assert_eq!(
            identity_holder(role),
            Some((RoleInlinePolicy, role.to_string()))
        );
        assert_eq!(
            identity_holder("arn:aws:iam::111111111111:user/alice"),
            Some((
                UserInlinePolicy,
                "arn:aws:iam::111111111111:user/alice".to_string()
            ))
        );
        assert_eq!(
            identity_holder("arn:aws-cn:sts::111111111111:assumed-role/Job/session-1"),
            Some((
                RoleInlinePolicy,
                "arn:aws-cn:iam::111111111111:role/Job".to_string()
            ))
        );
        assert_eq!(identity_holder("arn:aws:iam::111111111111:root"), None);
        assert_eq!(identity_holder("*"), None);
    }

    #[test]
    fn invoke_role_names_are_stable_short_and_distinct() {
        let name = invoke_role_name("default", "222222222222", "us-east-1", "churn");
        assert_eq!(
            name,
            invoke_role_name("default", "222222222222", "us-east-1", "churn")
        );
        assert!(name.starts_with("xacct-churn-") && name.len() == "xacct-churn-".len() + 8);
        for other in [
            invoke_role_name("staging", "222222222222", "us-east-1", "churn"),
            invoke_role_name("default", "222222222222", "eu-west-1", "churn"),
        ] {
            assert_ne!(name, other);
        }
        let long = invoke_role_name("default", "222222222222", "us-east-1", &"e".repeat(63));
        assert!(long.len() <= 64, "{long}");
    }

    #[test]
    fn manage_needs_roles_or_users_in_a_managed_grantee_account() {
        let account = |name: &str, id: &str, allowed: &[&str]| -> AwsAccount {
            serde_json::from_value(serde_json::json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "AwsAccount",
                "metadata": {"name": name}, "spec": {"accountId": id, "allowedNamespaces": allowed}}))
            .expect("valid account")
        };
        let accounts = AccountDirectory::new([
            account("data", "222222222222", &["*"]),
            account("dev", "111111111111", &["other"]),
        ]);
        let grant = |grantee: serde_json::Value| -> CrossAccountGrant {
            serde_json::from_value(serde_json::json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "CrossAccountGrant",
                "metadata": {"name": "g", "namespace": "ns"},
                "spec": {"resource": {"account": "data", "kind": "S3Bucket", "name": "b"}, "grantee": grantee, "access": ["read"]}}))
            .expect("valid grant")
        };
        let error = |grantee| {
            resolve_grant(&grant(grantee), &accounts, "default", Purpose::Grant)
                .expect_err("refused")
                .to_string()
        };
        assert!(
            error(serde_json::json!({"account": "dev"}))
                .contains("the account root cannot be given an identity policy")
        );
        assert!(
            error(serde_json::json!({"account": "dev", "principals": ["role/Job"]})).contains(
                "spec.grantee.account: AwsAccount dev does not allow grants from namespace ns"
            )
        );
        assert!(error(serde_json::json!({"accountId": "111111111111", "principals": ["instanceProfile/web"]}))
            .contains("spec.grantee.principals[0]: instanceProfile/web is looked up in the grantee account"));
        // Without the grantee side, the other account's consent is not needed, nor principals.
        let mut none = grant(serde_json::json!({"account": "dev"}));
        none.spec.grantee_side = Some(GranteeSide::None);
        let resolved =
            resolve_grant(&none, &accounts, "default", Purpose::Grant).expect("resolves");
        assert_eq!(resolved.principals, ["arn:aws:iam::111111111111:root"]);
    }
}
