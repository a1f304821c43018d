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
        let account_id = &t.account.account_id;
        match self.service(t).await? {
            Service::S3(c) => s3::read(&c, account_id, &t.id).await,
            Service::Ecr(c) => ecr::read(&c, account_id, &t.id).await,
            Service::Kms(c) => kms::read(&c, account_id, &t.id).await,
            Service::Iam(c) => iam::read(&c, account_id, &t.id).await,
        }
    }

    async fn write(&self, t: &TargetRef, policy: &str) -> Result<(), AwsError> {
        let account_id = &t.account.account_id;
        match self.service(t).await? {
            Service::S3(c) => s3::write(&c, account_id, &t.id, policy).await,
            Service::Ecr(c) => ecr::write(&c, account_id, &t.id, policy).await,
            Service::Kms(c) => kms::write(&c, account_id, &t.id, policy).await,
            Service::Iam(c) => iam::write(&c, account_id, &t.id, policy).await,
        }
    }

    async fn delete(&self, t: &TargetRef) -> Result<(), AwsError> {
        let account_id = &t.account.account_id;
        match self.service(t).await? {
            Service::S3(c) => s3::delete(&c, account_id, &t.id).await,
            Service::Ecr(c) => ecr::delete(&c, account_id, &t.id).await,
            Service::Kms(_) | Service::Iam(_) => Err(AwsError::new(
                super::AwsErrorKind::Other,
                "delete policy",
                account_id,
                format!("a {:?} policy cannot be deleted", t.kind),
            )),
        }
    }
}

/// A client of the service that holds a target's policy, acting in the target's account.
enum Service {
    S3(aws_sdk_s3::Client),
    Ecr(aws_sdk_ecr::Client),
    Kms(aws_sdk_kms::Client),
    Iam(aws_sdk_iam::Client),
}

impl AwsPolicies {
    async fn service(&self, t: &TargetRef) -> Result<Service, AwsError> {
        let config = self.connector.session(&t.account).await?;
        Ok(match t.kind {
            ResourceKind::S3Bucket => Service::S3(self.connector.s3_client(&config, &t.region)),
            ResourceKind::EcrRepository => {
                Service::Ecr(self.connector.ecr_client(&config, &t.region))
            }
            ResourceKind::KmsKey => Service::Kms(self.connector.kms_client(&config, &t.region)),
            ResourceKind::IamRole => Service::Iam(self.connector.iam_client(&config)),
        })
    }
}
