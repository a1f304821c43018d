//! `CrossAccountGrant`: access for principals of one account to a resource of another.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, DeletionPolicy};
use super::patterns::{
    ACCOUNT_ID, ACTION, EXTERNAL_ID, MAX_ACTIONS, MAX_PRINCIPAL_LEN, MAX_PRINCIPALS,
    ORGANIZATION_ID, ORGANIZATION_PATH, PRINCIPAL_ARN, PRINCIPAL_SHORT, REGION, all_match, matches,
};

/// Access to one resource in a managed account for principals of another account (namespaced).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "xacct.dev",
    version = "v1alpha1",
    kind = "CrossAccountGrant",
    namespaced,
    shortname = "xag",
    category = "xacct",
    status = "CrossAccountGrantStatus",
    cel,
    printcolumn = r#"{"name":"Account","type":"string","jsonPath":".spec.resource.account"}"#,
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".spec.resource.kind"}"#,
    printcolumn = r#"{"name":"Resource","type":"string","jsonPath":".spec.resource.name"}"#,
    // `grantee.account` or `grantee.accountId`, whichever is set (the CEL rule below makes it
    // exactly one): a JSONPath union, whose results the API server's table printer concatenates,
    // missing keys skipped, and of which it shows the first.
    printcolumn = r#"{"name":"Grantee","type":"string","jsonPath":".spec.grantee['account','accountId']"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("size(self.access) > 0 || size(self.actions) > 0").message("set access (presets) or actions (or both)"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'S3Bucket' || self.access.all(a, a in ['read', 'write', 'readWrite'])").message("access presets for S3Bucket are read, write and readWrite"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'EcrRepository' || self.access.all(a, a in ['pull', 'push', 'pullPush'])").message("access presets for EcrRepository are pull, push and pullPush"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'KmsKey' || self.access.all(a, a in ['decrypt', 'encrypt', 'encryptDecrypt', 'grant', 'describe'])").message("access presets for KmsKey are decrypt, encrypt, encryptDecrypt, grant and describe"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'IamRole' || self.access.all(a, a == 'assume')").message("the access preset for IamRole is assume"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'SqsQueue' || self.access.all(a, a in ['send', 'consume'])").message("access presets for SqsQueue are send and consume"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'SnsTopic' || self.access.all(a, a in ['publish', 'subscribe'])").message("access presets for SnsTopic are publish and subscribe"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'Secret' || self.access.all(a, a == 'read')").message("the access preset for Secret is read"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'EventBus' || self.access.all(a, a == 'putEvents')").message("the access preset for EventBus is putEvents"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'EventBus' || self.actions.all(a, a.startsWith('events:'))").message("actions on an EventBus must start with events:"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'LambdaFunction' || self.access.all(a, a == 'invoke')").message("the access preset for LambdaFunction is invoke"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'LambdaFunction' || self.actions.all(a, a.startsWith('lambda:'))").message("actions on a LambdaFunction must start with lambda:"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'LambdaFunction' || !has(self.conditions) || size(self.conditions) == 0").message("a LambdaFunction grant takes no conditions: Lambda's AddPermission has no parameter for them"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'SqsQueue' || self.actions.all(a, a.startsWith('sqs:'))").message("actions on an SqsQueue must start with sqs:"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'SnsTopic' || self.actions.all(a, a.startsWith('sns:'))").message("actions on an SnsTopic must start with sns:"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'Secret' || self.actions.all(a, a.startsWith('secretsmanager:'))").message("actions on a Secret must start with secretsmanager:"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'S3Bucket' || self.actions.all(a, a.startsWith('s3:'))").message("actions on an S3Bucket must start with s3:"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'EcrRepository' || self.actions.all(a, a.startsWith('ecr:'))").message("actions on an EcrRepository must start with ecr:"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'KmsKey' || self.actions.all(a, a.startsWith('kms:'))").message("actions on a KmsKey must start with kms:"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'IamRole' || self.actions.all(a, a.startsWith('sts:'))").message("actions on an IamRole must start with sts:"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'SageMakerEndpoint' || self.access.all(a, a == 'invoke')").message("the access preset for SageMakerEndpoint is invoke"))]
#[x_kube(validation = Rule::new("self.resource.kind != 'SageMakerEndpoint' || self.actions.all(a, a.startsWith('sagemaker:InvokeEndpoint'))").message("actions on a SageMakerEndpoint are sagemaker:InvokeEndpoint, sagemaker:InvokeEndpointAsync and sagemaker:InvokeEndpointWithResponseStream"))]
#[x_kube(validation = Rule::new("!has(self.externalId) || self.resource.kind == 'IamRole' || self.resource.kind == 'SageMakerEndpoint'").message("externalId applies to IamRole and SageMakerEndpoint grants only"))]
#[x_kube(validation = Rule::new("!has(self.grantee.organization) || !has(self.granteeSide) || self.granteeSide == 'None'").message("an organization grantee has no grantee side: granteeSide must be None"))]
#[x_kube(validation = Rule::new("!has(self.granteeSide) || self.granteeSide == 'None' || has(self.grantee.account)").message("granteeSide: Manage needs grantee.account (the grantee's AwsAccount): xacct can only write identity policies in an account it manages"))]
pub struct CrossAccountGrantSpec {
    /// The resource to share, in a managed account.
    pub resource: ResourceSpec,
    /// Who gets access.
    pub grantee: GranteeSpec,
    /// Access presets; which ones apply depends on `resource.kind`.
    #[serde(default)]
    #[schemars(length(max = 12))]
    pub access: Vec<AccessPreset>,
    /// Explicit IAM actions, of the resource's service (`s3:`, `ecr:`, `kms:`, `sts:`, `sagemaker:`,
    /// `sqs:`, `sns:`, `secretsmanager:`, `lambda:`, `events:`).
    #[serde(default)]
    #[schemars(length(max = MAX_ACTIONS), inner(length(max = 128)))]
    #[x_kube(validation = Rule::new(all_match(ACTION)).message("each action must look like service:Action"))]
    pub actions: Vec<String>,
    /// An IAM Condition block (operator → key → value or list of values) added to every statement of
    /// this grant.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "condition_block_schema")]
    pub conditions: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// IamRole and SageMakerEndpoint only: the external id callers must present when they assume the
    /// role (an `sts:ExternalId` condition in its trust policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1224))]
    #[x_kube(validation = Rule::new(matches(EXTERNAL_ID)).message("externalId must be 2 to 1224 characters of letters, digits and +=,.@:/-"))]
    pub external_id: Option<String>,
    /// Delete: revoke on delete. Retain: leave the statements in place on delete, handed over
    /// (their Sids renamed from `Xacct…` to `Retained…`, so that xacct never touches them again).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Enforce: converge and correct drift. Observe: never write; report drift.
    #[serde(default)]
    pub mode: GrantMode,
    /// Whether xacct also writes the grantee's half: an inline identity policy on each grantee role or
    /// user allowing the same access. Default: `Manage` when `grantee.account` names a managed
    /// AwsAccount, `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grantee_side: Option<GranteeSide>,
}

impl CrossAccountGrantSpec {
    /// The grantee side in effect: the one set, or `Manage` for a managed grantee account.
    pub fn effective_grantee_side(&self) -> GranteeSide {
        self.grantee_side
            .unwrap_or(if self.grantee.account.is_some() {
                GranteeSide::Manage
            } else {
                GranteeSide::None
            })
    }
}

/// Whether xacct writes the grantee account's identity policies too.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum GranteeSide {
    /// Give each grantee role or user an inline policy allowing the access (statements owned per
    /// grant; nothing else on the role or user is touched).
    Manage,
    /// Only the resource's side; the grantee account grants its principals access itself.
    None,
}

/// Whether xacct writes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum GrantMode {
    /// Converge the policy and correct drift.
    #[default]
    Enforce,
    /// Only compare, report drift (`Drifted` condition, event, metric), never write.
    Observe,
}

/// The resource a grant exposes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.prefix) || self.kind == 'S3Bucket'").message("prefix applies to S3Bucket only"))]
pub struct ResourceSpec {
    /// Name of the `AwsAccount` that owns the resource.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("account must be the name of an AwsAccount"))]
    pub account: String,
    /// The kind of resource.
    pub kind: ResourceKind,
    /// Bucket name, repository name, key id / key ARN / alias/NAME, role name, endpoint name, queue
    /// name, topic name, or secret name / ARN.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("size(self) > 0").message("name must not be empty"))]
    pub name: String,
    /// Region of the resource; default: the account's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(matches(REGION)).message("region must look like us-east-1"))]
    pub region: Option<String>,
    /// S3 only: limit object access, and listing, to keys under this prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    #[x_kube(validation = Rule::new("size(self) > 0 && !self.contains('*') && !self.contains('?')").message("prefix must be non-empty and without wildcards"))]
    pub prefix: Option<String>,
}

/// Kinds of resource a grant can expose.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum ResourceKind {
    /// An S3 bucket (bucket policy).
    S3Bucket,
    /// An ECR repository (repository policy).
    EcrRepository,
    /// A KMS key (key policy).
    KmsKey,
    /// An IAM role (trust policy: switch role).
    IamRole,
    /// A SageMaker endpoint: invoked through a role xacct manages in the endpoint's account.
    SageMakerEndpoint,
    /// An SQS queue (queue policy).
    SqsQueue,
    /// An SNS topic (topic policy).
    SnsTopic,
    /// A Secrets Manager secret (resource policy).
    Secret,
    /// A Lambda function (function policy, written statement by statement).
    LambdaFunction,
    /// An EventBridge event bus (bus policy).
    EventBus,
}

/// Who gets access.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.accountId) ? 1 : 0) + (has(self.account) ? 1 : 0) + (has(self.organization) ? 1 : 0) == 1").message("set exactly one of grantee.accountId, grantee.account and grantee.organization"))]
#[x_kube(validation = Rule::new("!has(self.organization) || size(self.principals) == 0").message("an organization grantee names no principals: every principal of the organization (or of its paths) is granted"))]
pub struct GranteeSpec {
    /// The grantee's 12-digit account id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 12))]
    #[x_kube(validation = Rule::new(matches(ACCOUNT_ID)).message("accountId must be a 12-digit AWS account id"))]
    pub account_id: Option<String>,
    /// Name of the grantee's `AwsAccount`, when that account is managed too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub account: Option<String>,
    /// IAM principals in the grantee account: full ARNs, `role/NAME`, `user/NAME`, or
    /// `instanceProfile/NAME` (the role of an EC2 instance profile, looked up in the grantee account,
    /// which must then be a managed AwsAccount). Empty: the account root (the whole account, subject
    /// to its own IAM policies).
    #[serde(default)]
    #[schemars(length(max = MAX_PRINCIPALS), inner(length(max = MAX_PRINCIPAL_LEN)))]
    #[x_kube(validation = Rule::new(format!("self.all(p, p == '*' || p.matches('{PRINCIPAL_ARN}') || p.matches('{PRINCIPAL_SHORT}'))")).message("each principal must be an IAM role or user ARN, arn:aws:iam::ACCOUNT:root, an assumed-role session ARN, role/NAME, user/NAME or instanceProfile/NAME"))]
    pub principals: Vec<String>,
    /// Every principal of an AWS Organization (or of some of its OUs) instead of one account's: the
    /// resource's policy names the principal `*` with an `aws:PrincipalOrgID` condition (and
    /// `aws:PrincipalOrgPaths` when paths are given). The resource's AwsAccount must list the
    /// organization in `allowedOrganizations`. No grantee side is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<OrganizationSpec>,
}

/// An AWS Organization, optionally narrowed to some of its organizational units.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.paths) || self.paths.all(p, p.startsWith(self.id + '/'))").message("each path must start with the organization's id"))]
pub struct OrganizationSpec {
    /// The organization's id (`o-` and 10 to 32 lowercase letters or digits).
    #[schemars(length(max = 34))]
    #[x_kube(validation = Rule::new(matches(ORGANIZATION_ID)).message("organization id must look like o-a1b2c3d4e5"))]
    pub id: String,
    /// Only principals of accounts under these paths (`aws:PrincipalOrgPaths`, matched with
    /// `StringLike`): `o-ID/r-ROOT/ou-…/` (a trailing `*` also takes the OUs below). Empty: the
    /// whole organization.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(length(max = 512)))]
    #[x_kube(validation = Rule::new(all_match(ORGANIZATION_PATH)).message("each path must look like o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/ (optionally ending with *)"))]
    pub paths: Vec<String>,
}

/// Named bundles of actions.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum AccessPreset {
    /// S3: get objects, list the bucket. Secret: get its value, describe it.
    Read,
    /// S3: put and delete objects, multipart uploads.
    Write,
    /// S3: read and write.
    ReadWrite,
    /// ECR: pull images.
    Pull,
    /// ECR: push images.
    Push,
    /// ECR: pull and push.
    PullPush,
    /// KMS: decrypt.
    Decrypt,
    /// KMS: encrypt and generate data keys.
    Encrypt,
    /// KMS: encrypt and decrypt.
    EncryptDecrypt,
    /// KMS: create grants for AWS services (`kms:GrantIsForAWSResource`).
    Grant,
    /// KMS: describe the key.
    Describe,
    /// IAM role: `sts:AssumeRole`.
    Assume,
    /// SageMaker endpoint: `InvokeEndpoint`, `InvokeEndpointAsync`, `InvokeEndpointWithResponseStream`.
    /// Lambda function: `InvokeFunction`.
    Invoke,
    /// SQS queue: send messages.
    Send,
    /// SQS queue: receive, delete and change the visibility of messages.
    Consume,
    /// SNS topic: publish.
    Publish,
    /// SNS topic: subscribe an endpoint of the grantee's account.
    Subscribe,
    /// EventBridge event bus: put events.
    PutEvents,
}

/// Observed state of a grant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CrossAccountGrantStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (and `Drifted` when drift was seen).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Where this grant's statements are. Always written, empty too, so that a status update
    /// clears places whose statements were removed (whatever the patch semantics).
    #[serde(default)]
    pub targets: Vec<GrantedTarget>,
    /// SageMakerEndpoint grants: the role the grantee assumes to invoke the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// One policy a grant has statements in.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GrantedTarget {
    /// ARN of the resource, role or user whose policy holds the statements.
    pub arn: String,
    /// The resource as the grant named it.
    pub resource: ResourceSpec,
    /// Exactly which policy holds the statements (absent in status written before xacct managed
    /// identity policies: then it is the resource's own policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyLocation>,
    /// The region the statements were written in, so they can be revoked there even after the
    /// grant or its account names another region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Sids of this grant's own statements there. Where grants' statements differ only in their
    /// principals they share statements instead (compaction), whose Sid (`Xacct…Group…`) lists
    /// each member by the 7 letters and digits of its `id`.
    #[serde(default)]
    pub sids: Vec<String>,
    /// The policy's size against its service's limit, as of the last check; refreshed with the
    /// grant's status, and at least whenever the policy crosses a tenth of its limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<PolicySize>,
    /// When the statements were last written or confirmed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied: Option<String>,
    /// The grant's generation whose statements these are (what an invalid spec leaves in place).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

/// A policy document's size against its service's limit, in the unit the service counts.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PolicySize {
    /// Its size (xacct's statements and everyone else's).
    pub used: u32,
    /// The service's limit.
    pub limit: u32,
    /// What is counted: `bytes`, `characters` or `non-whitespace characters`.
    pub unit: String,
}

impl PolicySize {
    /// `used` as a share of `limit` (0 when the limit is 0).
    pub fn ratio(&self) -> f64 {
        if self.limit == 0 {
            0.0
        } else {
            f64::from(self.used) / f64::from(self.limit)
        }
    }
}

/// One policy document xacct writes statements into.
#[derive(
    KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "camelCase")]
pub struct PolicyLocation {
    /// The AwsAccount that holds it.
    pub account: String,
    /// Which kind of policy.
    pub kind: PolicyKind,
    /// What the service calls its holder: bucket, repository, key ARN, role or user name.
    pub name: String,
}

/// The kinds of policy document xacct writes statements into.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum PolicyKind {
    /// An S3 bucket policy.
    S3BucketPolicy,
    /// An ECR repository policy.
    EcrRepositoryPolicy,
    /// A KMS key policy.
    KmsKeyPolicy,
    /// The trust policy of an existing IAM role.
    RoleTrustPolicy,
    /// xacct's inline identity policy on an IAM role.
    RoleInlinePolicy,
    /// xacct's inline identity policy on an IAM user.
    UserInlinePolicy,
    /// The trust policy of a role xacct creates (and deletes) to invoke a SageMaker endpoint.
    InvokeRoleTrustPolicy,
    /// xacct's inline policy on such a role.
    InvokeRoleInlinePolicy,
    /// An SQS queue policy.
    SqsQueuePolicy,
    /// An SNS topic policy.
    SnsTopicPolicy,
    /// A Secrets Manager secret's resource policy.
    SecretResourcePolicy,
    /// A Lambda function's policy.
    LambdaFunctionPolicy,
    /// An EventBridge event bus's policy.
    EventBusPolicy,
}

impl PolicyKind {
    /// The policy a grant on `kind` writes on the resource's side.
    pub fn of_resource(kind: ResourceKind) -> PolicyKind {
        match kind {
            ResourceKind::S3Bucket => PolicyKind::S3BucketPolicy,
            ResourceKind::EcrRepository => PolicyKind::EcrRepositoryPolicy,
            ResourceKind::KmsKey => PolicyKind::KmsKeyPolicy,
            ResourceKind::IamRole => PolicyKind::RoleTrustPolicy,
            ResourceKind::SageMakerEndpoint => PolicyKind::InvokeRoleTrustPolicy,
            ResourceKind::SqsQueue => PolicyKind::SqsQueuePolicy,
            ResourceKind::SnsTopic => PolicyKind::SnsTopicPolicy,
            ResourceKind::Secret => PolicyKind::SecretResourcePolicy,
            ResourceKind::LambdaFunction => PolicyKind::LambdaFunctionPolicy,
            ResourceKind::EventBus => PolicyKind::EventBusPolicy,
        }
    }

    /// Whether the document is an identity policy (statements without a Principal).
    pub fn is_identity(self) -> bool {
        matches!(
            self,
            PolicyKind::RoleInlinePolicy
                | PolicyKind::UserInlinePolicy
                | PolicyKind::InvokeRoleInlinePolicy
        )
    }
}

fn condition_block_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "description": "IAM Condition block: operator (StringEquals, ...) to condition key to value(s).",
        "additionalProperties": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true
        }
    })
}
