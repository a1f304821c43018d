//! `SnapshotShare`: an RDS DB or cluster snapshot shared with other accounts, with its KMS key.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, DeletionPolicy};
use super::patterns::{ACCOUNT_ID, REGION, matches};

/// Shares an RDS snapshot (and access to its KMS key) with other accounts (namespaced).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "xacct.dev",
    version = "v1alpha1",
    kind = "SnapshotShare",
    namespaced,
    shortname = "snapshare",
    category = "xacct",
    status = "SnapshotShareStatus",
    cel,
    printcolumn = r#"{"name":"Source","type":"string","jsonPath":".status.snapshotArn"}"#,
    printcolumn = r#"{"name":"Targets","type":"string","jsonPath":".spec.targets[*].accountId"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotShareSpec {
    /// The snapshot to share.
    pub source: SnapshotSource,
    /// Accounts to share with (AWS allows 20 per manual snapshot).
    #[schemars(length(min = 1, max = 20))]
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 20").message("share with 1 to 20 accounts (AWS's limit per snapshot)"))]
    #[x_kube(validation = Rule::new("self.all(t, self.exists_one(u, u.accountId == t.accountId))").message("each target account may appear once"))]
    pub targets: Vec<ShareTarget>,
    /// How target accounts get the KMS key access an encrypted snapshot needs.
    #[serde(default)]
    pub kms: KmsAccess,
    /// Copy the snapshot with this customer managed key and share the copy: needed for automated
    /// snapshots and for snapshots encrypted with the AWS managed `aws/rds` key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_for_sharing: Option<CopyForSharing>,
    /// Delete: unshare and revoke key access. Retain: leave AWS as it is.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Which snapshot.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.dbSnapshotIdentifier) ? 1 : 0) + (has(self.dbClusterSnapshotIdentifier) ? 1 : 0) + (has(self.latestOf) ? 1 : 0) == 1").message("set exactly one of dbSnapshotIdentifier, dbClusterSnapshotIdentifier and latestOf"))]
pub struct SnapshotSource {
    /// The AwsAccount that owns the snapshot.
    #[schemars(length(max = 253))]
    pub account: String,
    /// A DB instance snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub db_snapshot_identifier: Option<String>,
    /// An Aurora DB cluster snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub db_cluster_snapshot_identifier: Option<String>,
    /// Follow the newest snapshot of an instance or cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_of: Option<LatestOf>,
    /// Region of the snapshot; default: the account's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(matches(REGION)).message("region must look like us-east-1"))]
    pub region: Option<String>,
}

/// The newest snapshot of an instance or a cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.dbInstanceIdentifier) != has(self.dbClusterIdentifier)").message("set exactly one of dbInstanceIdentifier and dbClusterIdentifier"))]
pub struct LatestOf {
    /// The DB instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub db_instance_identifier: Option<String>,
    /// The DB cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub db_cluster_identifier: Option<String>,
    /// Manual or automated snapshots (automated ones need `copyForSharing`).
    #[serde(default, rename = "type")]
    pub snapshot_type: SnapshotType,
    /// How many of the newest snapshots stay shared (older ones this share shared are unshared).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 20))]
    pub keep: u32,
}

fn one() -> u32 {
    1
}

/// Kinds of snapshot `latestOf` follows.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SnapshotType {
    /// Manual snapshots.
    #[default]
    Manual,
    /// Automated snapshots (copied before sharing).
    Automated,
}

/// An account to share with.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ShareTarget {
    /// The 12-digit account id.
    #[schemars(length(max = 12))]
    #[x_kube(validation = Rule::new(matches(ACCOUNT_ID)).message("accountId must be a 12-digit AWS account id"))]
    pub account_id: String,
}

/// KMS access for encrypted snapshots.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KmsAccess {
    /// KeyPolicy: a statement in the key policy (merged like every grant). Grant: a KMS grant per target.
    #[serde(default)]
    pub mode: KmsMode,
}

/// How key access is given.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum KmsMode {
    /// A statement in the key policy.
    #[default]
    KeyPolicy,
    /// A KMS grant per target account.
    Grant,
}

/// The copy made for sharing.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CopyForSharing {
    /// A customer managed key in the source account (id, ARN or alias/NAME).
    #[schemars(length(min = 1, max = 2048))]
    pub kms_key_id: String,
}

/// Observed state of a share.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotShareStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// ARN of the snapshot shared (the copy, when one was made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_arn: Option<String>,
    /// The snapshot it was copied from, when it is a copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<String>,
    /// Per target account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<ShareTargetStatus>,
}

/// One target account's state.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ShareTargetStatus {
    /// The account.
    pub account_id: String,
    /// The snapshot shared with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_arn: Option<String>,
    /// `NotEncrypted`, `KeyPolicy`, `Grant` or `Pending`.
    pub key_access: String,
}
