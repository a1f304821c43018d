//! `AwsAccount`: an AWS account xacct may act in, and how to reach it.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::Condition;
use super::patterns::{
    ACCOUNT_ID, EXTERNAL_ID, ORGANIZATION_ID, REGION, ROLE_ARN, SESSION_NAME, all_match, matches,
};

/// An AWS account that xacct may change policies in (cluster-scoped).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "xacct.dev",
    version = "v1alpha1",
    kind = "AwsAccount",
    shortname = "awsacct",
    category = "xacct",
    status = "AwsAccountStatus",
    cel,
    printcolumn = r#"{"name":"Account","type":"string","jsonPath":".spec.accountId"}"#,
    printcolumn = r#"{"name":"Region","type":"string","jsonPath":".spec.region"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.assumeRole) || self.assumeRole.roleArn.startsWith('arn:aws:iam::' + self.accountId + ':') || self.assumeRole.roleArn.matches('^arn:aws-[a-z-]+:iam::' + self.accountId + ':')").message("assumeRole.roleArn must be a role in accountId"))]
pub struct AwsAccountSpec {
    /// The 12-digit AWS account id.
    #[schemars(length(max = 12))]
    #[x_kube(validation = Rule::new(matches(ACCOUNT_ID)).message("accountId must be a 12-digit AWS account id"))]
    pub account_id: String,
    /// How to reach the account. Omitted: the tool's own credentials, which must be in `accountId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role: Option<AssumeRoleSpec>,
    /// The default region of this account's resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(matches(REGION)).message("region must look like us-east-1"))]
    pub region: Option<String>,
    /// Namespaces whose grants may change this account's policies (`*` for all): expose its
    /// resources, or write the grantee side on its roles and users. Empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000), inner(length(max = 63)))]
    pub allowed_namespaces: Vec<String>,
    /// Whether grants may name the principal `*` (anyone) on this account's resources.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_public_principals: bool,
    /// AWS Organizations (ids) whose principals grants may give access to this account's resources
    /// (`grantee.organization`). Empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 34)))]
    #[x_kube(validation = Rule::new(all_match(ORGANIZATION_ID)).message("each organization id must look like o-a1b2c3d4e5"))]
    pub allowed_organizations: Vec<String>,
}

/// The role xacct assumes to act in the account.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.externalId) && has(self.externalIdSecretRef))").message("set externalId or externalIdSecretRef, not both"))]
pub struct AssumeRoleSpec {
    /// ARN of the role to assume, in this account.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new(matches(ROLE_ARN)).message("roleArn must be an IAM role ARN like arn:aws:iam::222222222222:role/xacct-manager"))]
    pub role_arn: String,
    /// The external id the role's trust policy requires, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1224))]
    #[x_kube(validation = Rule::new(matches(EXTERNAL_ID)).message("externalId must be 2 to 1224 characters of letters, digits and +=,.@:/-"))]
    pub external_id: Option<String>,
    /// Read the external id from a Secret instead (the controller only; the value never appears in
    /// status, events or logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id_secret_ref: Option<SecretKeySelector>,
    /// The role session name (default `xacct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new(matches(SESSION_NAME)).message("sessionName must be 2 to 64 characters of letters, digits and +=,.@_-"))]
    pub session_name: Option<String>,
}

/// A key of a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// The Secret's name.
    #[schemars(length(max = 253))]
    pub name: String,
    /// The Secret's namespace (default: the controller's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub namespace: Option<String>,
    /// The key holding the external id.
    #[schemars(length(max = 253))]
    pub key: String,
}

/// What xacct last saw of the account.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AwsAccountStatus {
    /// `Ready` with reason `Verified`, `AssumeRoleFailed` or `AccountMismatch`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// When the account was last reached with the expected identity (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
    /// The generation the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
