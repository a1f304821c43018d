//! The narrow interface the engine uses: locate a resource, read, write and delete its policy.

use std::sync::Arc;

use async_trait::async_trait;

use super::account::AccountAccess;
use super::credentials::Connector;
use super::error::AwsError;
use super::{ecr, iam, kms, s3};
use crate::api::ResourceKind;
use crate::policy::partition_for_region;

/// A resource whose policy xacct converges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRef {
    /// The account that owns it.
    pub account: AccountAccess,
    /// What kind of resource it is.
    pub kind: ResourceKind,
    /// Its region (IAM: the account's region, unused).
    pub region: String,
    /// The identifier the service's API takes (bucket, repository, key id, role name).
    pub id: String,
    /// Its ARN: the identity by which grants on the same resource are coalesced.
    pub arn: String,
}

/// Reads and writes resource policies.
#[async_trait]
pub trait PolicyBackend: Send + Sync {
    /// Resolves what a grant names (a key alias, say) to the resource's identity.
    async fn locate(
        &self,
        account: &AccountAccess,
        kind: ResourceKind,
        region: &str,
        name: &str,
    ) -> Result<TargetRef, AwsError>;
    /// The policy text; `None` when the resource has no policy. `NotFound` when the resource is missing.
    async fn read(&self, target: &TargetRef) -> Result<Option<String>, AwsError>;
    /// Replaces the policy.
    async fn write(&self, target: &TargetRef, policy: &str) -> Result<(), AwsError>;
    /// Removes the policy; only called when [`PolicyBackend::can_delete`] says so.
    async fn delete(&self, target: &TargetRef) -> Result<(), AwsError>;
    /// Whether this kind of policy can be removed (key and trust policies cannot).
    fn can_delete(&self, kind: ResourceKind) -> bool {
        matches!(kind, ResourceKind::S3Bucket | ResourceKind::EcrRepository)
    }
}

/// The real AWS services, through a [`Connector`].
#[derive(Clone)]
pub struct AwsPolicies {
    connector: Arc<Connector>,
}

impl AwsPolicies {
    /// Adapters using `connector`'s credentials.
    pub fn new(connector: Arc<Connector>) -> Self {
        AwsPolicies { connector }
    }
}

#[async_trait]
impl PolicyBackend for AwsPolicies {
    async fn locate(
        &self,
        account: &AccountAccess,
        kind: ResourceKind,
        region: &str,
        name: &str,
    ) -> Result<TargetRef, AwsError> {
        let partition = partition_for_region(region);
        let (id, arn) = match kind {
            ResourceKind::S3Bucket => (name.to_string(), format!("arn:{partition}:s3:::{name}")),
            ResourceKind::EcrRepository => (
                name.to_string(),
                format!(
                    "arn:{partition}:ecr:{region}:{}:repository/{name}",
                    account.account_id
                ),
            ),
            ResourceKind::IamRole => (
                name.to_string(),
                format!("arn:{partition}:iam::{}:role/{name}", account.account_id),
            ),
            ResourceKind::KmsKey => {
                let config = self.connector.session(account).await?;
                let client = self.connector.kms_client(&config, region);
                kms::locate(&client, &account.account_id, partition, region, name).await?
            }
        };
        Ok(TargetRef {
            account: account.clone(),
            kind,
            region: region.to_string(),
            id,
            arn,
        })
    }

    async fn read(&self, t: &TargetRef) -> Result<Option<String>, AwsError> {
        let config = self.connector.session(&t.account).await?;
        let account_id = &t.account.account_id;
        match t.kind {
            ResourceKind::S3Bucket => {
                s3::read(
                    &self.connector.s3_client(&config, &t.region),
                    account_id,
                    &t.id,
                )
                .await
            }
            ResourceKind::EcrRepository => {
                ecr::read(
                    &self.connector.ecr_client(&config, &t.region),
                    account_id,
                    &t.id,
                )
                .await
            }
            ResourceKind::KmsKey => {
                kms::read(
                    &self.connector.kms_client(&config, &t.region),
                    account_id,
                    &t.id,
                )
                .await
            }
            ResourceKind::IamRole => {
                iam::read(&self.connector.iam_client(&config), account_id, &t.id).await
            }
        }
    }

    async fn write(&self, t: &TargetRef, policy: &str) -> Result<(), AwsError> {
        let config = self.connector.session(&t.account).await?;
        let account_id = &t.account.account_id;
        match t.kind {
            ResourceKind::S3Bucket => {
                s3::write(
                    &self.connector.s3_client(&config, &t.region),
                    account_id,
                    &t.id,
                    policy,
                )
                .await
            }
            ResourceKind::EcrRepository => {
                ecr::write(
                    &self.connector.ecr_client(&config, &t.region),
                    account_id,
                    &t.id,
                    policy,
                )
                .await
            }
            ResourceKind::KmsKey => {
                kms::write(
                    &self.connector.kms_client(&config, &t.region),
                    account_id,
                    &t.id,
                    policy,
                )
                .await
            }
            ResourceKind::IamRole => {
                iam::write(
                    &self.connector.iam_client(&config),
                    account_id,
                    &t.id,
                    policy,
                )
                .await
            }
        }
    }

    async fn delete(&self, t: &TargetRef) -> Result<(), AwsError> {
        let config = self.connector.session(&t.account).await?;
        let account_id = &t.account.account_id;
        match t.kind {
            ResourceKind::S3Bucket => {
                s3::delete(
                    &self.connector.s3_client(&config, &t.region),
                    account_id,
                    &t.id,
                )
                .await
            }
            ResourceKind::EcrRepository => {
                ecr::delete(
                    &self.connector.ecr_client(&config, &t.region),
                    account_id,
                    &t.id,
                )
                .await
            }
            ResourceKind::KmsKey | ResourceKind::IamRole => Err(AwsError::new(
                super::AwsErrorKind::Other,
                "delete policy",
                account_id,
                format!("a {:?} policy cannot be deleted", t.kind),
            )),
        }
    }
}
