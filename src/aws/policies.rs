//! The narrow interface the engine uses: locate a resource, read, write and delete its policy.

use std::sync::Arc;

use async_trait::async_trait;

use super::account::AccountAccess;
use super::credentials::Connector;
use super::error::{AwsError, AwsErrorKind};
use super::identity::{self, Holder};
use super::s3::Encryption;
use super::{ecr, events, iam, inventory, kms, lambda, roles, s3, sagemaker, secrets, sns, sqs};
use crate::api::PolicyKind;
use crate::policy::partition_for_region;

/// A policy document xacct converges: a resource's policy, a role's trust policy, or xacct's
/// inline policy on a role or user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRef {
    /// The account that holds it.
    pub account: AccountAccess,
    /// Which kind of policy it is.
    pub kind: PolicyKind,
    /// Its region (IAM: the region the grant names, unused by IAM).
    pub region: String,
    /// The identifier the service's API takes (bucket, repository, key id, role or user name, queue
    /// URL, topic ARN, secret ARN).
    pub id: String,
    /// The ARN of what holds it: with the kind, the identity by which grants coalesce.
    pub arn: String,
    /// Roles xacct creates: the instance that creates (and may delete) the role.
    pub created_by: Option<String>,
}

/// Reads and writes policy documents, and looks up what grants name.
#[async_trait]
pub trait PolicyBackend: Send + Sync {
    /// Resolves what a grant names (a key alias, a role or user ARN with a path) to the identity of
    /// the policy of `kind` there.
    async fn locate(
        &self,
        account: &AccountAccess,
        kind: PolicyKind,
        region: &str,
        name: &str,
    ) -> Result<TargetRef, AwsError>;
    /// The policy text; `None` when there is none. `NotFound` when its holder is missing.
    async fn read(&self, target: &TargetRef) -> Result<Option<String>, AwsError>;
    /// Replaces the policy (creating the role, for roles xacct creates).
    async fn write(&self, target: &TargetRef, policy: &str) -> Result<(), AwsError>;
    /// Removes the policy (deleting the role, for roles xacct creates); only called when
    /// [`PolicyBackend::can_delete`] says so.
    async fn delete(&self, target: &TargetRef) -> Result<(), AwsError>;
    /// Whether this kind of policy can be removed (key and topic policies, and trust policies of
    /// existing roles, cannot).
    fn can_delete(&self, kind: PolicyKind) -> bool {
        !matches!(
            kind,
            PolicyKind::KmsKeyPolicy | PolicyKind::RoleTrustPolicy | PolicyKind::SnsTopicPolicy
        )
    }
    /// Characters used by the holder's other inline policies, which share its size quota with
    /// xacct's (identity policies only; 0 otherwise).
    async fn others_size(&self, _target: &TargetRef) -> Result<usize, AwsError> {
        Ok(0)
    }
    /// Whether the IAM role or user with this ARN exists in `account`; `None` when the ARN names
    /// neither (an account, a service) or this backend cannot tell.
    async fn principal_exists(
        &self,
        _account: &AccountAccess,
        _arn: &str,
    ) -> Result<Option<bool>, AwsError> {
        Ok(None)
    }
    /// The ARN of the role in an instance profile.
    async fn instance_profile_role(
        &self,
        account: &AccountAccess,
        profile: &str,
    ) -> Result<String, AwsError>;
    /// The ARN of a SageMaker endpoint; `NotFound` when it does not exist.
    async fn endpoint_arn(
        &self,
        account: &AccountAccess,
        region: &str,
        name: &str,
    ) -> Result<String, AwsError>;
    /// The KMS key a grantee's reads go through: the one an S3 bucket encrypts new objects with by
    /// default, or a secret's. `NoKmsKey` for other kinds.
    async fn encryption(&self, resource: &TargetRef) -> Result<Encryption, AwsError>;
    /// Every policy of `account` in `region` xacct may have written to, for garbage collection:
    /// bucket, repository, key, queue, topic, secret, function and event bus policies there, and
    /// with `iam` (once per account) every role's
    /// trust and inline policy and every user's inline policy. Roles named `xacct-…` are taken for
    /// roles `instance` created. Default: none.
    async fn inventory(
        &self,
        _account: &AccountAccess,
        _region: &str,
        _iam: bool,
        _instance: &str,
    ) -> Result<Vec<TargetRef>, AwsError> {
        Ok(Vec::new())
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

    async fn iam(&self, account: &AccountAccess) -> Result<aws_sdk_iam::Client, AwsError> {
        let config = self.connector.session(account).await?;
        Ok(self.connector.iam_client(&config))
    }
}

/// The IAM name and ARN of a role or user given by name (`Name`) or ARN (with a path).
fn iam_entity(partition: &str, account_id: &str, noun: &str, name: &str) -> (String, String) {
    if name.starts_with("arn:") {
        let id = name.rsplit('/').next().unwrap_or(name).to_string();
        (id, name.to_string())
    } else {
        (
            name.to_string(),
            format!("arn:{partition}:iam::{account_id}:{noun}/{name}"),
        )
    }
}

#[async_trait]
impl PolicyBackend for AwsPolicies {
    async fn principal_exists(
        &self,
        account: &AccountAccess,
        arn: &str,
    ) -> Result<Option<bool>, AwsError> {
        let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
        let (holder, name) = match resource.split_once('/') {
            Some(("role", path)) => (Holder::Role, path),
            Some(("user", path)) => (Holder::User, path),
            _ => return Ok(None),
        };
        // IAM's Get calls take the name without the path.
        let name = name.rsplit('/').next().unwrap_or(name);
        let config = self.connector.session(account).await?;
        let client = self.connector.iam_client(&config);
        identity::exists(&client, &account.account_id, holder, name)
            .await
            .map(Some)
    }

    async fn locate(
        &self,
        account: &AccountAccess,
        kind: PolicyKind,
        region: &str,
        name: &str,
    ) -> Result<TargetRef, AwsError> {
        let partition = partition_for_region(region);
        let account_id = &account.account_id;
        let (id, arn) = match kind {
            PolicyKind::S3BucketPolicy => {
                (name.to_string(), format!("arn:{partition}:s3:::{name}"))
            }
            PolicyKind::EcrRepositoryPolicy => (
                name.to_string(),
                format!("arn:{partition}:ecr:{region}:{account_id}:repository/{name}"),
            ),
            PolicyKind::RoleTrustPolicy
            | PolicyKind::RoleInlinePolicy
            | PolicyKind::InvokeRoleTrustPolicy
            | PolicyKind::InvokeRoleInlinePolicy => iam_entity(partition, account_id, "role", name),
            PolicyKind::UserInlinePolicy => iam_entity(partition, account_id, "user", name),
            PolicyKind::KmsKeyPolicy => {
                let config = self.connector.session(account).await?;
                let client = self.connector.kms_client(&config, region);
                kms::locate(&client, account_id, partition, region, name).await?
            }
            PolicyKind::SqsQueuePolicy => {
                // By name, or by ARN (as status records it).
                let name = name.rsplit(':').next().unwrap_or(name);
                let config = self.connector.session(account).await?;
                let client = self.connector.sqs_client(&config, region);
                let url = sqs::queue_url(&client, account_id, name).await?;
                (
                    url,
                    format!("arn:{partition}:sqs:{region}:{account_id}:{name}"),
                )
            }
            PolicyKind::SnsTopicPolicy => {
                let name = name.rsplit(':').next().unwrap_or(name);
                let arn = format!("arn:{partition}:sns:{region}:{account_id}:{name}");
                (arn.clone(), arn)
            }
            PolicyKind::SecretResourcePolicy => {
                let config = self.connector.session(account).await?;
                let client = self.connector.secrets_client(&config, region);
                let arn = secrets::describe(&client, account_id, name).await?.arn;
                (arn.clone(), arn)
            }
            PolicyKind::LambdaFunctionPolicy => {
                let config = self.connector.session(account).await?;
                let client = self.connector.lambda_client(&config, region);
                let arn = lambda::function_arn(&client, account_id, name).await?;
                (arn.clone(), arn)
            }
            PolicyKind::EventBusPolicy => {
                // By name, or by ARN (as status records it).
                let name = events::bus_name(name);
                let config = self.connector.session(account).await?;
                let client = self.connector.events_client(&config, region);
                let arn = events::bus_arn(&client, account_id, name).await?;
                (name.to_string(), arn)
            }
        };
        Ok(TargetRef {
            account: account.clone(),
            kind,
            region: region.to_string(),
            id,
            arn,
            created_by: None,
        })
    }

    async fn read(&self, t: &TargetRef) -> Result<Option<String>, AwsError> {
        let account_id = &t.account.account_id;
        match self.service(t).await? {
            Service::S3(c) => s3::read(&c, account_id, &t.id).await,
            Service::Ecr(c) => ecr::read(&c, account_id, &t.id).await,
            Service::Kms(c) => kms::read(&c, account_id, &t.id).await,
            Service::Trust(c) => iam::read(&c, account_id, &t.id).await,
            // A role xacct creates may not exist yet; a grantee's must.
            Service::Inline(c, holder) => {
                let must_exist = t.kind != PolicyKind::InvokeRoleInlinePolicy;
                identity::read(&c, account_id, holder, &t.id, must_exist).await
            }
            Service::CreatedRole(c) => roles::read_trust(&c, account_id, &t.id, creator(t)?).await,
            Service::Sqs(c) => sqs::read(&c, account_id, &t.id).await,
            Service::Sns(c) => sns::read(&c, account_id, &t.id).await,
            Service::Secrets(c) => secrets::read(&c, account_id, &t.id).await,
            Service::Lambda(c) => lambda::read(&c, account_id, &t.id).await,
            Service::Events(c) => events::read(&c, account_id, &t.id).await,
        }
    }

    async fn write(&self, t: &TargetRef, policy: &str) -> Result<(), AwsError> {
        let account_id = &t.account.account_id;
        match self.service(t).await? {
            Service::S3(c) => s3::write(&c, account_id, &t.id, policy).await,
            Service::Ecr(c) => ecr::write(&c, account_id, &t.id, policy).await,
            Service::Kms(c) => kms::write(&c, account_id, &t.id, policy).await,
            Service::Trust(c) => iam::write(&c, account_id, &t.id, policy).await,
            Service::Inline(c, holder) => {
                identity::write(&c, account_id, holder, &t.id, policy).await
            }
            Service::CreatedRole(c) => {
                roles::write_trust(&c, account_id, &t.id, creator(t)?, policy).await
            }
            Service::Sqs(c) => sqs::write(&c, account_id, &t.id, policy).await,
            Service::Sns(c) => sns::write(&c, account_id, &t.id, policy).await,
            Service::Secrets(c) => secrets::write(&c, account_id, &t.id, policy).await,
            Service::Lambda(c) => lambda::write(&c, account_id, &t.id, policy).await,
            Service::Events(c) => events::write(&c, account_id, &t.id, policy).await,
        }
    }

    async fn delete(&self, t: &TargetRef) -> Result<(), AwsError> {
        let account_id = &t.account.account_id;
        match self.service(t).await? {
            Service::S3(c) => s3::delete(&c, account_id, &t.id).await,
            Service::Ecr(c) => ecr::delete(&c, account_id, &t.id).await,
            Service::Inline(c, holder) => identity::delete(&c, account_id, holder, &t.id).await,
            Service::CreatedRole(c) => roles::delete(&c, account_id, &t.id, creator(t)?).await,
            Service::Sqs(c) => sqs::delete(&c, account_id, &t.id).await,
            Service::Secrets(c) => secrets::delete(&c, account_id, &t.id).await,
            Service::Lambda(c) => lambda::delete(&c, account_id, &t.id).await,
            Service::Events(c) => events::delete(&c, account_id, &t.id).await,
            Service::Kms(_) | Service::Trust(_) | Service::Sns(_) => Err(AwsError::new(
                AwsErrorKind::Other,
                "delete policy",
                account_id,
                format!("a {:?} cannot be deleted", t.kind),
            )),
        }
    }

    async fn others_size(&self, t: &TargetRef) -> Result<usize, AwsError> {
        let Service::Inline(client, holder) = self.service(t).await? else {
            return Ok(0);
        };
        match identity::others_size(&client, &t.account.account_id, holder, &t.id).await {
            // A role xacct has not created yet has no other policies.
            Err(e)
                if e.kind == AwsErrorKind::NotFound
                    && t.kind == PolicyKind::InvokeRoleInlinePolicy =>
            {
                Ok(0)
            }
            other => other,
        }
    }

    async fn instance_profile_role(
        &self,
        account: &AccountAccess,
        profile: &str,
    ) -> Result<String, AwsError> {
        let client = self.iam(account).await?;
        roles::instance_profile_role(&client, &account.account_id, profile).await
    }

    async fn endpoint_arn(
        &self,
        account: &AccountAccess,
        region: &str,
        name: &str,
    ) -> Result<String, AwsError> {
        let config = self.connector.session(account).await?;
        let client = self.connector.sagemaker_client(&config, region);
        sagemaker::endpoint_arn(&client, &account.account_id, name).await
    }

    async fn inventory(
        &self,
        account: &AccountAccess,
        region: &str,
        iam: bool,
        instance: &str,
    ) -> Result<Vec<TargetRef>, AwsError> {
        let config = self.connector.session(account).await?;
        let account_id = &account.account_id;
        let partition = partition_for_region(region);
        let target = |kind, id: String, arn: String| TargetRef {
            account: account.clone(),
            kind,
            region: region.to_string(),
            id,
            arn,
            created_by: None,
        };
        let mut found = Vec::new();
        let s3 = self.connector.s3_client(&config, region);
        for bucket in inventory::buckets(&s3, account_id, region).await? {
            let arn = format!("arn:{partition}:s3:::{bucket}");
            found.push(target(PolicyKind::S3BucketPolicy, bucket, arn));
        }
        let ecr = self.connector.ecr_client(&config, region);
        for repository in inventory::repositories(&ecr, account_id).await? {
            let arn = format!("arn:{partition}:ecr:{region}:{account_id}:repository/{repository}");
            found.push(target(PolicyKind::EcrRepositoryPolicy, repository, arn));
        }
        let kms = self.connector.kms_client(&config, region);
        for (key_id, arn) in inventory::keys(&kms, account_id).await? {
            found.push(target(PolicyKind::KmsKeyPolicy, key_id, arn));
        }
        let sqs = self.connector.sqs_client(&config, region);
        for url in inventory::queues(&sqs, account_id).await? {
            let name = url.rsplit('/').next().unwrap_or_default().to_string();
            let arn = format!("arn:{partition}:sqs:{region}:{account_id}:{name}");
            found.push(target(PolicyKind::SqsQueuePolicy, url, arn));
        }
        let sns = self.connector.sns_client(&config, region);
        for arn in inventory::topics(&sns, account_id).await? {
            found.push(target(PolicyKind::SnsTopicPolicy, arn.clone(), arn));
        }
        let secrets = self.connector.secrets_client(&config, region);
        for arn in inventory::secrets(&secrets, account_id).await? {
            found.push(target(PolicyKind::SecretResourcePolicy, arn.clone(), arn));
        }
        let lambda = self.connector.lambda_client(&config, region);
        for arn in inventory::functions(&lambda, account_id).await? {
            found.push(target(PolicyKind::LambdaFunctionPolicy, arn.clone(), arn));
        }
        let events = self.connector.events_client(&config, region);
        for (name, arn) in inventory::event_buses(&events, account_id).await? {
            found.push(target(PolicyKind::EventBusPolicy, name, arn));
        }
        if iam {
            let client = self.connector.iam_client(&config);
            for (role, arn) in inventory::roles(&client, account_id).await? {
                let created = role.starts_with("xacct-");
                let (trust, inline) = if created {
                    (
                        PolicyKind::InvokeRoleTrustPolicy,
                        PolicyKind::InvokeRoleInlinePolicy,
                    )
                } else {
                    (PolicyKind::RoleTrustPolicy, PolicyKind::RoleInlinePolicy)
                };
                for kind in [trust, inline] {
                    let mut t = target(kind, role.clone(), arn.clone());
                    t.created_by = created.then(|| instance.to_string());
                    found.push(t);
                }
            }
            for (user, arn) in inventory::users(&client, account_id).await? {
                found.push(target(PolicyKind::UserInlinePolicy, user, arn));
            }
        }
        Ok(found)
    }

    async fn encryption(&self, t: &TargetRef) -> Result<Encryption, AwsError> {
        let account_id = &t.account.account_id;
        let config = self.connector.session(&t.account).await?;
        let key = match t.kind {
            PolicyKind::S3BucketPolicy => {
                let s3 = self.connector.s3_client(&config, &t.region);
                s3::default_kms_key(&s3, account_id, &t.id).await?
            }
            PolicyKind::SecretResourcePolicy => {
                let client = self.connector.secrets_client(&config, &t.region);
                match secrets::describe(&client, account_id, &t.id)
                    .await?
                    .kms_key_id
                {
                    Some(key) => Some(key),
                    // No key named: Secrets Manager's AWS managed key.
                    None => return Ok(Encryption::AwsManagedKey),
                }
            }
            _ => None,
        };
        let Some(key) = key else {
            return Ok(Encryption::NoKmsKey);
        };
        if ["alias/aws/s3", "alias/aws/secretsmanager"]
            .iter()
            .any(|aws| key == *aws || key.ends_with(&format!(":{aws}")))
        {
            return Ok(Encryption::AwsManagedKey);
        }
        let kms = self.connector.kms_client(&config, &t.region);
        match kms::key_info(&kms, account_id, &key).await {
            Ok(info) if info.aws_managed => Ok(Encryption::AwsManagedKey),
            Ok(info) => Ok(Encryption::CustomerKey(info.arn)),
            // A key in another account may not be describable from here; its ARN is enough.
            Err(_) if key.starts_with("arn:") => Ok(Encryption::CustomerKey(key)),
            Err(e) => Err(e),
        }
    }
}

/// The instance that creates a role; every target of a role xacct creates carries it.
fn creator(t: &TargetRef) -> Result<&str, AwsError> {
    t.created_by.as_deref().ok_or_else(|| {
        AwsError::new(
            AwsErrorKind::Other,
            "iam:GetRole",
            &t.account.account_id,
            format!("no creating instance given for role {}", t.id),
        )
    })
}

/// A client of the service that holds a target's policy, acting in the target's account.
enum Service {
    S3(aws_sdk_s3::Client),
    Ecr(aws_sdk_ecr::Client),
    Kms(aws_sdk_kms::Client),
    /// The trust policy of an existing role.
    Trust(aws_sdk_iam::Client),
    /// xacct's inline policy on a role or user.
    Inline(aws_sdk_iam::Client, Holder),
    /// The trust policy of a role xacct creates (and deletes).
    CreatedRole(aws_sdk_iam::Client),
    Sqs(aws_sdk_sqs::Client),
    Sns(aws_sdk_sns::Client),
    Secrets(aws_sdk_secretsmanager::Client),
    Lambda(aws_sdk_lambda::Client),
    Events(aws_sdk_eventbridge::Client),
}

impl AwsPolicies {
    async fn service(&self, t: &TargetRef) -> Result<Service, AwsError> {
        let config = self.connector.session(&t.account).await?;
        let iam = || self.connector.iam_client(&config);
        Ok(match t.kind {
            PolicyKind::S3BucketPolicy => Service::S3(self.connector.s3_client(&config, &t.region)),
            PolicyKind::EcrRepositoryPolicy => {
                Service::Ecr(self.connector.ecr_client(&config, &t.region))
            }
            PolicyKind::KmsKeyPolicy => Service::Kms(self.connector.kms_client(&config, &t.region)),
            PolicyKind::RoleTrustPolicy => Service::Trust(iam()),
            PolicyKind::RoleInlinePolicy | PolicyKind::InvokeRoleInlinePolicy => {
                Service::Inline(iam(), Holder::Role)
            }
            PolicyKind::UserInlinePolicy => Service::Inline(iam(), Holder::User),
            PolicyKind::InvokeRoleTrustPolicy => Service::CreatedRole(iam()),
            PolicyKind::SqsQueuePolicy => {
                Service::Sqs(self.connector.sqs_client(&config, &t.region))
            }
            PolicyKind::SnsTopicPolicy => {
                Service::Sns(self.connector.sns_client(&config, &t.region))
            }
            PolicyKind::SecretResourcePolicy => {
                Service::Secrets(self.connector.secrets_client(&config, &t.region))
            }
            PolicyKind::LambdaFunctionPolicy => {
                Service::Lambda(self.connector.lambda_client(&config, &t.region))
            }
            PolicyKind::EventBusPolicy => {
                Service::Events(self.connector.events_client(&config, &t.region))
            }
        })
    }
}
