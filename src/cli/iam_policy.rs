//! `xacct iam-policy`: the IAM policies of the role xacct assumes in each managed account.
//!
//! Two documents: the role's permissions (identity) policy, built from [`PERMISSIONS`] for the
//! resource kinds in use, and its trust policy, which lets the controller's own role assume it
//! (with an `sts:ExternalId` condition when the AwsAccount sets `spec.assumeRole.externalId`).

use std::fmt::Write;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value, json};

use super::Output;
use crate::api::ResourceKind;
use crate::api::patterns::{EXTERNAL_ID, PRINCIPAL_ARN};
use crate::policy::{PolicyDocument, PolicyError, Statement};

/// The controller role ARN used when none is given: AWS's documentation account and a name that
/// says what to do with it.
pub const PLACEHOLDER_CONTROLLER_ROLE_ARN: &str =
    "arn:aws:iam::111122223333:role/PLACEHOLDER-xacct-controller";

/// The permissions of one resource kind: one statement of the permissions policy.
#[derive(Debug, Clone, Copy)]
pub struct KindPermissions {
    /// The resource kind (`spec.resource.kind` of a grant).
    pub kind: ResourceKind,
    /// The name on the command line (`--kinds`).
    pub name: &'static str,
    /// Sid of the statement (IAM Sids are letters and digits only).
    pub sid: &'static str,
    /// Every action xacct calls for this kind (the SDK operation of the same name), with why.
    pub actions: &'static [(&'static str, &'static str)],
    /// The statement's Resource; `{partition}` is replaced by the controller role's partition.
    pub resource: &'static str,
    /// Why the Resource is this wide.
    pub resource_note: &'static str,
}

/// What the role xacct assumes in a managed account must be allowed to do, per resource kind.
///
/// This is the one list of those permissions: exactly the calls of `src/aws/{s3,ecr,kms,iam}.rs`,
/// which are made with the managed account's credentials. The other AWS calls xacct makes are STS
/// calls: `sts:AssumeRole` is made with the controller's own credentials (the trust policy, and the
/// controller role's own identity policy, allow it), and `sts:GetCallerIdentity` needs no
/// permission. `tests/iam_policy.rs` runs every kind against the AWS emulator and fails when a call
/// is missing here, or when an action here is never called.
pub const PERMISSIONS: &[KindPermissions] = &[
    KindPermissions {
        kind: ResourceKind::S3Bucket,
        name: "s3",
        sid: "XacctS3BucketPolicies",
        actions: &[
            (
                "s3:GetBucketPolicy",
                "read a bucket policy (plan, apply, and the re-read before each write)",
            ),
            ("s3:PutBucketPolicy", "write the merged bucket policy"),
            (
                "s3:DeleteBucketPolicy",
                "remove a bucket policy left empty, when only xacct's statements were in it",
            ),
        ],
        resource: "arn:{partition}:s3:::*",
        resource_note: "bucket ARNs name no account, and S3 lets only identities of the bucket owner's account read, write or delete a bucket policy, so this reaches the account's own buckets only",
    },
    KindPermissions {
        kind: ResourceKind::EcrRepository,
        name: "ecr",
        sid: "XacctEcrRepositoryPolicies",
        actions: &[
            ("ecr:GetRepositoryPolicy", "read a repository policy"),
            (
                "ecr:SetRepositoryPolicy",
                "write the merged repository policy",
            ),
            (
                "ecr:DeleteRepositoryPolicy",
                "remove a repository policy left empty, when only xacct's statements were in it",
            ),
        ],
        resource: "arn:{partition}:ecr:*:*:repository/*",
        resource_note: "repositories only, in any region (a grant may name any region); replace the account `*` with the account id, or `repository/*` with the repositories grants may name, to narrow it further",
    },
    KindPermissions {
        kind: ResourceKind::KmsKey,
        name: "kms",
        sid: "XacctKmsKeyPolicies",
        actions: &[
            (
                "kms:DescribeKey",
                "resolve a grant's alias/NAME or alias ARN to its key (grants naming a key id or key ARN make no such call)",
            ),
            ("kms:GetKeyPolicy", "read the key policy"),
            ("kms:PutKeyPolicy", "write the merged key policy"),
        ],
        resource: "arn:{partition}:kms:*:*:key/*",
        resource_note: "keys only, in any region: KMS authorizes DescribeKey by alias against the key the alias points to, so alias resolution needs no `*` (alias ARNs in Resource only govern alias operations); the key policy must also let IAM policies of the account grant access (the default key policy's root statement), or name the role itself",
    },
    KindPermissions {
        kind: ResourceKind::IamRole,
        name: "iam",
        sid: "XacctIamRoleTrustPolicies",
        actions: &[
            ("iam:GetRole", "read a role's trust policy"),
            (
                "iam:UpdateAssumeRolePolicy",
                "write the merged trust policy",
            ),
        ],
        resource: "arn:{partition}:iam::*:role/*",
        resource_note: "roles only; rewriting a trust policy decides who may assume that role, so narrow `role/*` to the roles grants may name (a path such as `role/shared/*`) so that it reaches neither this role nor other privileged roles",
    },
];

/// Kinds named on the command line that this command refuses, and why.
const NOT_COVERED: &[(&str, &str)] = &[
    (
        "rds",
        "RDS snapshot sharing (SnapshotShare) is not covered by xacct iam-policy yet: the permissions of its RDS and KMS calls are not in its table",
    ),
    (
        "sagemaker",
        "SageMaker is not implemented in xacct yet, so the role xacct assumes needs no sagemaker: permission",
    ),
];

/// Parses one `--kinds` value: `s3`, `ecr`, `kms`, `iam` (or the ResourceKind's own name).
pub fn parse_kind(value: &str) -> Result<ResourceKind, String> {
    let wanted = value.trim().to_ascii_lowercase();
    if let Some(p) = PERMISSIONS
        .iter()
        .find(|p| p.name == wanted || format!("{:?}", p.kind).to_ascii_lowercase() == wanted)
    {
        return Ok(p.kind);
    }
    let known = PERMISSIONS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ");
    match NOT_COVERED.iter().find(|(name, _)| *name == wanted) {
        Some((_, why)) => Err(format!("{why} (implemented kinds: {known})")),
        None => Err(format!(
            "unknown resource kind (implemented kinds: {known})"
        )),
    }
}

static PRINCIPAL_ARN_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(PRINCIPAL_ARN).unwrap_or_else(|e| panic!("built-in pattern does not compile: {e}"))
});
static EXTERNAL_ID_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(EXTERNAL_ID).unwrap_or_else(|e| panic!("built-in pattern does not compile: {e}"))
});

/// Parses `--controller-role-arn`: an IAM role ARN (a user or account root ARN is accepted too).
pub fn parse_controller_arn(value: &str) -> Result<String, String> {
    if PRINCIPAL_ARN_RE.is_match(value) && !value.contains(":sts::") {
        Ok(value.to_string())
    } else {
        Err("use the ARN of the IAM role xacct runs as, like arn:aws:iam::111122223333:role/xacct-controller".into())
    }
}

/// Parses `--external-id` (the rule AWS and the AwsAccount CRD apply).
pub fn parse_external_id(value: &str) -> Result<String, String> {
    if EXTERNAL_ID_RE.is_match(value) {
        Ok(value.to_string())
    } else {
        Err("an external id is 2 to 1224 characters of letters, digits and +=,.@:/-".into())
    }
}

/// The two policies and what goes with them.
#[derive(Debug, Clone)]
pub struct IamPolicies {
    /// The kinds covered, in table order.
    pub kinds: Vec<&'static KindPermissions>,
    /// The permissions policy of the role xacct assumes in each managed account.
    pub permissions: PolicyDocument,
    /// That role's trust policy.
    pub trust: PolicyDocument,
    /// What to know when using them.
    pub notes: Vec<String>,
}

/// Builds both policies for `kinds` (all implemented kinds when empty).
pub fn build(
    kinds: &[ResourceKind],
    controller_role_arn: &str,
    external_id: Option<&str>,
) -> Result<IamPolicies, PolicyError> {
    let selected: Vec<&'static KindPermissions> = PERMISSIONS
        .iter()
        .filter(|p| kinds.is_empty() || kinds.contains(&p.kind))
        .collect();
    let partition = controller_role_arn.split(':').nth(1).unwrap_or("aws");

    let mut permissions = PolicyDocument::new();
    for p in &selected {
        let actions: Vec<&str> = p.actions.iter().map(|(action, _)| *action).collect();
        permissions.statements.push(Statement::from_json(json!({
            "Sid": p.sid,
            "Effect": "Allow",
            "Action": actions,
            "Resource": p.resource.replace("{partition}", partition),
        }))?);
    }

    let mut assume = Map::new();
    assume.insert("Sid".into(), json!("XacctControllerAssumesThisRole"));
    assume.insert("Effect".into(), json!("Allow"));
    assume.insert("Principal".into(), json!({"AWS": controller_role_arn}));
    assume.insert("Action".into(), json!("sts:AssumeRole"));
    if let Some(id) = external_id {
        assume.insert(
            "Condition".into(),
            json!({"StringEquals": {"sts:ExternalId": id}}),
        );
    }
    let mut trust = PolicyDocument::new();
    trust
        .statements
        .push(Statement::from_json(Value::Object(assume))?);

    let mut notes = vec![
        "Attach the permissions policy to the role each AwsAccount names in spec.assumeRole.roleArn (one role per managed account; this document fits every one). An AwsAccount without assumeRole is reached with the controller's own credentials: attach the permissions policy to the controller's role instead.".to_string(),
        format!(
            "The controller's role ({controller_role_arn}) also needs sts:AssumeRole on those roles in its own identity policy when it is in another account: cross-account AssumeRole needs both sides."
        ),
        "sts:GetCallerIdentity (the account check after AssumeRole) needs no permission.".to_string(),
    ];
    if external_id.is_some() {
        notes.push("Set the same external id in each AwsAccount's spec.assumeRole.externalId (or externalIdSecretRef for the controller).".into());
    }
    if controller_role_arn == PLACEHOLDER_CONTROLLER_ROLE_ARN {
        notes.push(format!(
            "{PLACEHOLDER_CONTROLLER_ROLE_ARN} is a placeholder: pass --controller-role-arn with the role xacct runs as (its IRSA or Pod Identity role, say)."
        ));
    }
    for p in &selected {
        notes.push(format!(
            "{} ({}): {}.",
            p.sid,
            p.resource.replace("{partition}", partition),
            p.resource_note
        ));
    }
    Ok(IamPolicies {
        kinds: selected,
        permissions,
        trust,
        notes,
    })
}

/// The policies as one JSON object.
pub fn json(policies: &IamPolicies) -> Value {
    let actions: Map<String, Value> = policies
        .kinds
        .iter()
        .flat_map(|p| p.actions.iter())
        .map(|(action, why)| (action.to_string(), json!(why)))
        .collect();
    json!({
        "kinds": policies.kinds.iter().map(|p| p.name).collect::<Vec<_>>(),
        "permissionsPolicy": policies.permissions.to_json(),
        "trustPolicy": policies.trust.to_json(),
        "actions": actions,
        "notes": policies.notes,
    })
}

/// The policies for people: each document labelled, then why each action is there, then notes.
pub fn text(policies: &IamPolicies) -> String {
    let mut out = String::new();
    let kinds: Vec<&str> = policies.kinds.iter().map(|p| p.name).collect();
    let _ = writeln!(
        out,
        "# Permissions policy of the role xacct assumes in each managed account (kinds: {})",
        kinds.join(", ")
    );
    let _ = writeln!(out, "{}", policies.permissions.to_pretty_string());
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "# Trust policy of that role: the controller's role may assume it"
    );
    let _ = writeln!(out, "{}", policies.trust.to_pretty_string());
    let _ = writeln!(out);
    let _ = writeln!(out, "# Why each action");
    for p in &policies.kinds {
        for (action, why) in p.actions {
            let _ = writeln!(out, "#   {action}: {why}");
        }
    }
    let _ = writeln!(out, "# Notes");
    for note in &policies.notes {
        let _ = writeln!(out, "#   - {note}");
    }
    out
}

/// Runs `xacct iam-policy`; returns the exit status.
pub fn run(
    kinds: &[ResourceKind],
    controller_role_arn: &str,
    external_id: Option<&str>,
    output: Output,
) -> i32 {
    match build(kinds, controller_role_arn, external_id) {
        Ok(policies) => {
            match output {
                Output::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&json(&policies)).unwrap_or_default()
                ),
                Output::Text => print!("{}", text(&policies)),
            }
            0
        }
        Err(e) => {
            eprintln!("xacct iam-policy: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_kind_has_exactly_one_entry() {
        for kind in [
            ResourceKind::S3Bucket,
            ResourceKind::EcrRepository,
            ResourceKind::KmsKey,
            ResourceKind::IamRole,
        ] {
            // Exhaustive: a new ResourceKind does not compile here until it is listed above and
            // given its permissions in PERMISSIONS.
            match kind {
                ResourceKind::S3Bucket
                | ResourceKind::EcrRepository
                | ResourceKind::KmsKey
                | ResourceKind::IamRole => {}
            }
            assert_eq!(
                PERMISSIONS.iter().filter(|p| p.kind == kind).count(),
                1,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn actions_belong_to_their_service_and_sids_are_iam_sids() {
        for p in PERMISSIONS {
            for (action, _) in p.actions {
                assert!(action.starts_with(&format!("{}:", p.name)), "{action}");
                assert!(!action.contains('*'), "{action}: no wildcards");
            }
            assert!(p.sid.chars().all(|c| c.is_ascii_alphanumeric()));
            assert!(p.resource != "*", "{}", p.sid);
        }
    }

    #[test]
    fn kinds_parse_and_unimplemented_ones_are_refused() {
        assert_eq!(parse_kind("s3"), Ok(ResourceKind::S3Bucket));
        assert_eq!(parse_kind("KmsKey"), Ok(ResourceKind::KmsKey));
        assert!(parse_kind("rds").unwrap_err().contains("not covered"));
        assert!(
            parse_kind("sagemaker")
                .unwrap_err()
                .contains("SageMaker is not implemented")
        );
        assert!(parse_kind("sqs").unwrap_err().contains("unknown"));
    }

    #[test]
    fn partition_follows_the_controller_role() {
        let p = build(
            &[ResourceKind::S3Bucket],
            "arn:aws-cn:iam::111122223333:role/x",
            None,
        )
        .unwrap();
        assert_eq!(
            p.permissions.to_json()["Statement"][0]["Resource"],
            json!("arn:aws-cn:s3:::*")
        );
        assert!(parse_controller_arn("arn:aws:sts::111122223333:assumed-role/x/y").is_err());
        assert!(parse_controller_arn(PLACEHOLDER_CONTROLLER_ROLE_ARN).is_ok());
    }
}
