//! RDS snapshots: describe, share (the `restore` attribute), tag, copy.

use std::collections::BTreeMap;

use aws_sdk_rds::Client;
use aws_sdk_rds::types::Tag;

use super::error::AwsError;

const INSTANCE_NOT_FOUND: &[&str] = &[
    "DBSnapshotNotFound",
    "DBSnapshotNotFoundFault",
    "DBInstanceNotFound",
    "DBInstanceNotFoundFault",
];
const CLUSTER_NOT_FOUND: &[&str] = &[
    "DBClusterSnapshotNotFoundFault",
    "DBClusterSnapshotNotFound",
    "DBClusterNotFoundFault",
    "DBClusterNotFound",
];

/// A DB instance or DB cluster snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// A cluster snapshot (else an instance snapshot).
    pub cluster: bool,
    /// Identifier.
    pub id: String,
    /// ARN.
    pub arn: String,
    /// The instance or cluster it is a snapshot of.
    pub source: String,
    /// `available`, `creating`, ...
    pub status: String,
    /// `manual` or `automated` (or `shared`, `public`, `awsbackup`).
    pub snapshot_type: String,
    /// Whether it is encrypted.
    pub encrypted: bool,
    /// Its KMS key, when encrypted.
    pub kms_key_id: Option<String>,
    /// Creation time (seconds since the epoch).
    pub created: i64,
}

fn not_found(cluster: bool) -> &'static [&'static str] {
    if cluster {
        CLUSTER_NOT_FOUND
    } else {
        INSTANCE_NOT_FOUND
    }
}

fn instance_info(s: &aws_sdk_rds::types::DbSnapshot) -> SnapshotInfo {
    SnapshotInfo {
        cluster: false,
        id: s.db_snapshot_identifier().unwrap_or_default().to_string(),
        arn: s.db_snapshot_arn().unwrap_or_default().to_string(),
        source: s.db_instance_identifier().unwrap_or_default().to_string(),
        status: s.status().unwrap_or_default().to_string(),
        snapshot_type: s.snapshot_type().unwrap_or_default().to_string(),
        encrypted: s.encrypted().unwrap_or(false),
        kms_key_id: s.kms_key_id().map(str::to_string),
        created: s.snapshot_create_time().map_or(0, |t| t.secs()),
    }
}

fn cluster_info(s: &aws_sdk_rds::types::DbClusterSnapshot) -> SnapshotInfo {
    SnapshotInfo {
        cluster: true,
        id: s
            .db_cluster_snapshot_identifier()
            .unwrap_or_default()
            .to_string(),
        arn: s.db_cluster_snapshot_arn().unwrap_or_default().to_string(),
        source: s.db_cluster_identifier().unwrap_or_default().to_string(),
        status: s.status().unwrap_or_default().to_string(),
        snapshot_type: s.snapshot_type().unwrap_or_default().to_string(),
        encrypted: s.storage_encrypted().unwrap_or(false),
        kms_key_id: s.kms_key_id().map(str::to_string),
        created: s.snapshot_create_time().map_or(0, |t| t.secs()),
    }
}

/// The snapshot `id`, or `None` when it does not exist.
pub(super) async fn describe(
    client: &Client,
    account_id: &str,
    cluster: bool,
    id: &str,
) -> Result<Option<SnapshotInfo>, AwsError> {
    let found = if cluster {
        client
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier(id)
            .send()
            .await
            .map(|o| o.db_cluster_snapshots().first().map(cluster_info))
            .map_err(|e| {
                AwsError::from_sdk(
                    &e,
                    "rds:DescribeDBClusterSnapshots",
                    account_id,
                    CLUSTER_NOT_FOUND,
                )
            })
    } else {
        client
            .describe_db_snapshots()
            .db_snapshot_identifier(id)
            .send()
            .await
            .map(|o| o.db_snapshots().first().map(instance_info))
            .map_err(|e| {
                AwsError::from_sdk(
                    &e,
                    "rds:DescribeDBSnapshots",
                    account_id,
                    INSTANCE_NOT_FOUND,
                )
            })
    };
    match found {
        Err(e) if e.kind == super::AwsErrorKind::NotFound => Ok(None),
        other => other,
    }
}

/// Snapshots of an instance or cluster of one type (`manual` or `automated`).
pub(super) async fn list(
    client: &Client,
    account_id: &str,
    cluster: bool,
    source: &str,
    snapshot_type: &str,
) -> Result<Vec<SnapshotInfo>, AwsError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let next = if cluster {
            let page = client
                .describe_db_cluster_snapshots()
                .db_cluster_identifier(source)
                .snapshot_type(snapshot_type)
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| {
                    AwsError::from_sdk(
                        &e,
                        "rds:DescribeDBClusterSnapshots",
                        account_id,
                        CLUSTER_NOT_FOUND,
                    )
                })?;
            out.extend(page.db_cluster_snapshots().iter().map(cluster_info));
            page.marker().map(str::to_string)
        } else {
            let page = client
                .describe_db_snapshots()
                .db_instance_identifier(source)
                .snapshot_type(snapshot_type)
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| {
                    AwsError::from_sdk(
                        &e,
                        "rds:DescribeDBSnapshots",
                        account_id,
                        INSTANCE_NOT_FOUND,
                    )
                })?;
            out.extend(page.db_snapshots().iter().map(instance_info));
            page.marker().map(str::to_string)
        };
        // A page marker that does not move would loop forever: stop on it.
        if next.is_none() || next == marker {
            return Ok(out);
        }
        marker = next;
    }
}

/// Accounts the snapshot is shared with (the `restore` attribute).
pub(super) async fn shared_with(
    client: &Client,
    account_id: &str,
    snap: &SnapshotInfo,
) -> Result<Vec<String>, AwsError> {
    let values = if snap.cluster {
        let out = client
            .describe_db_cluster_snapshot_attributes()
            .db_cluster_snapshot_identifier(&snap.id)
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk(
                    &e,
                    "rds:DescribeDBClusterSnapshotAttributes",
                    account_id,
                    CLUSTER_NOT_FOUND,
                )
            })?;
        out.db_cluster_snapshot_attributes_result()
            .map(|r| {
                r.db_cluster_snapshot_attributes()
                    .iter()
                    .filter(|a| a.attribute_name() == Some("restore"))
                    .flat_map(|a| a.attribute_values().to_vec())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        let out = client
            .describe_db_snapshot_attributes()
            .db_snapshot_identifier(&snap.id)
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk(
                    &e,
                    "rds:DescribeDBSnapshotAttributes",
                    account_id,
                    INSTANCE_NOT_FOUND,
                )
            })?;
        out.db_snapshot_attributes_result()
            .map(|r| {
                r.db_snapshot_attributes()
                    .iter()
                    .filter(|a| a.attribute_name() == Some("restore"))
                    .flat_map(|a| a.attribute_values().to_vec())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut values: Vec<String> = values;
    values.sort();
    values.dedup();
    Ok(values)
}

/// Adds and removes accounts of the `restore` attribute (never `all`).
pub(super) async fn modify_sharing(
    client: &Client,
    account_id: &str,
    snap: &SnapshotInfo,
    add: &[String],
    remove: &[String],
) -> Result<(), AwsError> {
    if add.is_empty() && remove.is_empty() {
        return Ok(());
    }
    let add = (!add.is_empty()).then(|| add.to_vec());
    let remove = (!remove.is_empty()).then(|| remove.to_vec());
    if snap.cluster {
        client
            .modify_db_cluster_snapshot_attribute()
            .db_cluster_snapshot_identifier(&snap.id)
            .attribute_name("restore")
            .set_values_to_add(add)
            .set_values_to_remove(remove)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                AwsError::from_sdk(
                    &e,
                    "rds:ModifyDBClusterSnapshotAttribute",
                    account_id,
                    not_found(true),
                )
            })
    } else {
        client
            .modify_db_snapshot_attribute()
            .db_snapshot_identifier(&snap.id)
            .attribute_name("restore")
            .set_values_to_add(add)
            .set_values_to_remove(remove)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                AwsError::from_sdk(
                    &e,
                    "rds:ModifyDBSnapshotAttribute",
                    account_id,
                    not_found(false),
                )
            })
    }
}

/// The tags of a snapshot.
pub(super) async fn tags(
    client: &Client,
    account_id: &str,
    arn: &str,
) -> Result<BTreeMap<String, String>, AwsError> {
    let out = client
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .map_err(|e| {
            AwsError::from_sdk(
                &e,
                "rds:ListTagsForResource",
                account_id,
                INSTANCE_NOT_FOUND,
            )
        })?;
    Ok(out
        .tag_list()
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect())
}

/// Sets tags (others stay).
pub(super) async fn add_tags(
    client: &Client,
    account_id: &str,
    arn: &str,
    tags: &BTreeMap<String, String>,
) -> Result<(), AwsError> {
    if tags.is_empty() {
        return Ok(());
    }
    let tags: Vec<Tag> = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    client
        .add_tags_to_resource()
        .resource_name(arn)
        .set_tags(Some(tags))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            AwsError::from_sdk(&e, "rds:AddTagsToResource", account_id, INSTANCE_NOT_FOUND)
        })
}

/// Removes tags by key.
pub(super) async fn remove_tags(
    client: &Client,
    account_id: &str,
    arn: &str,
    keys: &[String],
) -> Result<(), AwsError> {
    if keys.is_empty() {
        return Ok(());
    }
    client
        .remove_tags_from_resource()
        .resource_name(arn)
        .set_tag_keys(Some(keys.to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            AwsError::from_sdk(
                &e,
                "rds:RemoveTagsFromResource",
                account_id,
                INSTANCE_NOT_FOUND,
            )
        })
}

/// Copies `snap` to `target_id`, encrypted with `kms_key_id`, tagged.
pub(super) async fn copy(
    client: &Client,
    account_id: &str,
    snap: &SnapshotInfo,
    target_id: &str,
    kms_key_id: &str,
    tags: &BTreeMap<String, String>,
) -> Result<SnapshotInfo, AwsError> {
    let tags: Vec<Tag> = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    let copied = if snap.cluster {
        client
            .copy_db_cluster_snapshot()
            .source_db_cluster_snapshot_identifier(&snap.id)
            .target_db_cluster_snapshot_identifier(target_id)
            .kms_key_id(kms_key_id)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk(
                    &e,
                    "rds:CopyDBClusterSnapshot",
                    account_id,
                    CLUSTER_NOT_FOUND,
                )
            })?
            .db_cluster_snapshot()
            .map(cluster_info)
    } else {
        client
            .copy_db_snapshot()
            .source_db_snapshot_identifier(&snap.id)
            .target_db_snapshot_identifier(target_id)
            .kms_key_id(kms_key_id)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk(&e, "rds:CopyDBSnapshot", account_id, INSTANCE_NOT_FOUND)
            })?
            .db_snapshot()
            .map(instance_info)
    };
    copied.ok_or_else(|| {
        AwsError::new(
            super::AwsErrorKind::Other,
            "rds:CopyDBSnapshot",
            account_id,
            "the copy returned no snapshot",
        )
    })
}
