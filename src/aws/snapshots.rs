//! The narrow interface snapshot sharing uses: RDS snapshots and KMS keys and grants.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::account::AccountAccess;
use super::credentials::Connector;
use super::error::AwsError;
use super::kms::{self, KeyInfo};
use super::rds::{self, SnapshotInfo};

/// RDS snapshots and the KMS calls sharing them needs.
#[async_trait]
pub trait SnapshotBackend: Send + Sync {
    /// The snapshot, or `None` when it does not exist.
    async fn describe(
        &self,
        account: &AccountAccess,
        region: &str,
        cluster: bool,
        id: &str,
    ) -> Result<Option<SnapshotInfo>, AwsError>;
    /// Snapshots of an instance or cluster of one type.
    async fn list(
        &self,
        account: &AccountAccess,
        region: &str,
        cluster: bool,
        source: &str,
        snapshot_type: &str,
    ) -> Result<Vec<SnapshotInfo>, AwsError>;
    /// Accounts it is shared with.
    async fn shared_with(
        &self,
        account: &AccountAccess,
        region: &str,
        snap: &SnapshotInfo,
    ) -> Result<Vec<String>, AwsError>;
    /// Shares with and unshares from accounts.
    async fn modify_sharing(
        &self,
        account: &AccountAccess,
        region: &str,
        snap: &SnapshotInfo,
        add: &[String],
        remove: &[String],
    ) -> Result<(), AwsError>;
    /// Its tags.
    async fn tags(
        &self,
        account: &AccountAccess,
        region: &str,
        arn: &str,
    ) -> Result<BTreeMap<String, String>, AwsError>;
    /// Sets tags.
    async fn add_tags(
        &self,
        account: &AccountAccess,
        region: &str,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), AwsError>;
    /// Removes tags.
    async fn remove_tags(
        &self,
        account: &AccountAccess,
        region: &str,
        arn: &str,
        keys: &[String],
    ) -> Result<(), AwsError>;
    /// Copies a snapshot with a key.
    async fn copy(
        &self,
        account: &AccountAccess,
        region: &str,
        snap: &SnapshotInfo,
        target_id: &str,
        kms_key_id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<SnapshotInfo, AwsError>;
    /// A key's ARN, manager and state.
    async fn key_info(
        &self,
        account: &AccountAccess,
        region: &str,
        key: &str,
    ) -> Result<KeyInfo, AwsError>;
    /// The id of the grant named `name`, if any.
    async fn find_grant(
        &self,
        account: &AccountAccess,
        region: &str,
        key: &str,
        name: &str,
    ) -> Result<Option<String>, AwsError>;
    /// Creates a grant for `grantee`.
    async fn create_grant(
        &self,
        account: &AccountAccess,
        region: &str,
        key: &str,
        name: &str,
        grantee: &str,
    ) -> Result<String, AwsError>;
    /// Revokes a grant.
    async fn revoke_grant(
        &self,
        account: &AccountAccess,
        region: &str,
        key: &str,
        grant_id: &str,
    ) -> Result<(), AwsError>;
}

/// The real RDS and KMS, through a [`Connector`].
#[derive(Clone)]
pub struct AwsSnapshots {
    connector: Arc<Connector>,
}

impl AwsSnapshots {
    /// Snapshot calls with `connector`'s credentials.
    pub fn new(connector: Arc<Connector>) -> Self {
        AwsSnapshots { connector }
    }

    async fn rds(
        &self,
        account: &AccountAccess,
        region: &str,
    ) -> Result<aws_sdk_rds::Client, AwsError> {
        let config = self.connector.session(account).await?;
        Ok(self.connector.rds_client(&config, region))
    }

    async fn kms(
        &self,
        account: &AccountAccess,
        region: &str,
    ) -> Result<aws_sdk_kms::Client, AwsError> {
        let config = self.connector.session(account).await?;
        Ok(self.connector.kms_client(&config, region))
    }
}

#[async_trait]
impl SnapshotBackend for AwsSnapshots {
    async fn describe(
        &self,
        a: &AccountAccess,
        region: &str,
        cluster: bool,
        id: &str,
    ) -> Result<Option<SnapshotInfo>, AwsError> {
        rds::describe(&self.rds(a, region).await?, &a.account_id, cluster, id).await
    }
    async fn list(
        &self,
        a: &AccountAccess,
        region: &str,
        cluster: bool,
        source: &str,
        kind: &str,
    ) -> Result<Vec<SnapshotInfo>, AwsError> {
        rds::list(
            &self.rds(a, region).await?,
            &a.account_id,
            cluster,
            source,
            kind,
        )
        .await
    }
    async fn shared_with(
        &self,
        a: &AccountAccess,
        region: &str,
        snap: &SnapshotInfo,
    ) -> Result<Vec<String>, AwsError> {
        rds::shared_with(&self.rds(a, region).await?, &a.account_id, snap).await
    }
    async fn modify_sharing(
        &self,
        a: &AccountAccess,
        region: &str,
        snap: &SnapshotInfo,
        add: &[String],
        remove: &[String],
    ) -> Result<(), AwsError> {
        rds::modify_sharing(
            &self.rds(a, region).await?,
            &a.account_id,
            snap,
            add,
            remove,
        )
        .await
    }
    async fn tags(
        &self,
        a: &AccountAccess,
        region: &str,
        arn: &str,
    ) -> Result<BTreeMap<String, String>, AwsError> {
        rds::tags(&self.rds(a, region).await?, &a.account_id, arn).await
    }
    async fn add_tags(
        &self,
        a: &AccountAccess,
        region: &str,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), AwsError> {
        rds::add_tags(&self.rds(a, region).await?, &a.account_id, arn, tags).await
    }
    async fn remove_tags(
        &self,
        a: &AccountAccess,
        region: &str,
        arn: &str,
        keys: &[String],
    ) -> Result<(), AwsError> {
        rds::remove_tags(&self.rds(a, region).await?, &a.account_id, arn, keys).await
    }
    async fn copy(
        &self,
        a: &AccountAccess,
        region: &str,
        snap: &SnapshotInfo,
        target: &str,
        key: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<SnapshotInfo, AwsError> {
        rds::copy(
            &self.rds(a, region).await?,
            &a.account_id,
            snap,
            target,
            key,
            tags,
        )
        .await
    }
    async fn key_info(
        &self,
        a: &AccountAccess,
        region: &str,
        key: &str,
    ) -> Result<KeyInfo, AwsError> {
        kms::key_info(&self.kms(a, region).await?, &a.account_id, key).await
    }
    async fn find_grant(
        &self,
        a: &AccountAccess,
        region: &str,
        key: &str,
        name: &str,
    ) -> Result<Option<String>, AwsError> {
        kms::find_grant(&self.kms(a, region).await?, &a.account_id, key, name).await
    }
    async fn create_grant(
        &self,
        a: &AccountAccess,
        region: &str,
        key: &str,
        name: &str,
        grantee: &str,
    ) -> Result<String, AwsError> {
        kms::create_grant(
            &self.kms(a, region).await?,
            &a.account_id,
            key,
            name,
            grantee,
        )
        .await
    }
    async fn revoke_grant(
        &self,
        a: &AccountAccess,
        region: &str,
        key: &str,
        grant_id: &str,
    ) -> Result<(), AwsError> {
        kms::revoke_grant(&self.kms(a, region).await?, &a.account_id, key, grant_id).await
    }
}
