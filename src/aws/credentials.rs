//! Credentials per account: the SDK's default chain for the tool itself, `sts:AssumeRole` into each
//! managed account, cached and refreshed before expiry, with the account checked.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{
    ProvideCredentials, SharedCredentialsProvider, error::CredentialsError, future,
};
use aws_smithy_runtime::client::retries::RetryPartition;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::region::Region;
use tokio::sync::{Mutex, OnceCell};

use super::account::{AccountAccess, AssumeRole};
use super::calls::CallLog;
use super::error::{AwsError, AwsErrorKind};
use super::retry::RetryBudget;

/// The region used for STS and as a last resort when neither resource nor account names one.
pub const FALLBACK_REGION: &str = "us-east-1";
/// Refresh assumed-role credentials this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// How long one attempt of an AWS call may take, from sending the request to the end of the
/// answer. An attempt that takes longer is abandoned and retried like a dropped connection (within
/// the [`RetryBudget`]). Without it, a
/// connection left open without an answer would hold a run, or a grant's reconcile and the lock on
/// its resource, forever (`tests/fault_injection.rs`). Policy calls answer in well under a second;
/// this leaves room for a slow IAM.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Options for [`Connector::new`]; the defaults take everything from the SDK's default chain.
#[derive(Debug, Clone, Default)]
pub struct ConnectorOptions {
    /// Send every call here instead of AWS (emulators). `AWS_ENDPOINT_URL` does the same.
    pub endpoint_url: Option<String>,
    /// Use these credentials instead of the default chain (emulators and tests).
    pub credentials: Option<Credentials>,
    /// The tool's own region, instead of the default chain's.
    pub region: Option<String>,
    /// Attempts per call and the bound on a whole call.
    pub retry: RetryBudget,
}

/// Hands out SDK configuration acting in a given account; one per process.
pub struct Connector {
    base: SdkConfig,
    calls: CallLog,
    /// Shared by every client: the retry settings the SDK keeps per partition (no retry quota).
    retry_partition: RetryPartition,
    /// One cell per account, so a slow AssumeRole into one account holds up no other account.
    sessions: Mutex<HashMap<AccountAccess, Arc<OnceCell<Arc<SdkConfig>>>>>,
}

impl Connector {
    /// Loads the tool's own credentials and settings from the SDK's default chain.
    pub async fn new(options: ConnectorOptions) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(url) = &options.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(credentials) = options.credentials {
            loader = loader.credentials_provider(credentials);
        }
        if let Some(region) = options.region {
            loader = loader.region(Region::new(region));
        }
        // Merged with the SDK's defaults (its connect timeout stays).
        loader = loader
            .retry_config(options.retry.retry_config())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .operation_timeout(options.retry.call_timeout)
                    .build(),
            );
        let mut base = loader.load().await;
        if base.region().is_none() {
            base = base
                .into_builder()
                .region(Region::new(FALLBACK_REGION))
                .build();
        }
        Connector {
            base,
            calls: CallLog::default(),
            retry_partition: RetryBudget::partition(),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The same connector with each attempt of a call limited to `timeout` instead of
    /// [`ATTEMPT_TIMEOUT`] (tests).
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        let timeouts = self
            .base
            .timeout_config()
            .map(TimeoutConfig::to_builder)
            .unwrap_or_default()
            .operation_attempt_timeout(timeout)
            .build();
        self.base = self.base.into_builder().timeout_config(timeouts).build();
        self
    }

    /// How long one attempt of a call may take.
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.base
            .timeout_config()
            .and_then(TimeoutConfig::operation_attempt_timeout)
    }

    /// Every call made through clients of this connector.
    pub fn calls(&self) -> &CallLog {
        &self.calls
    }

    /// Whether calls go to a custom endpoint (an emulator) rather than AWS.
    pub fn has_custom_endpoint(&self) -> bool {
        self.base.endpoint_url().is_some()
    }

    /// SDK configuration whose credentials act in `account` (verified once, then cached).
    pub async fn session(&self, account: &AccountAccess) -> Result<Arc<SdkConfig>, AwsError> {
        let cell = self
            .sessions
            .lock()
            .await
            .entry(account.clone())
            .or_default()
            .clone();
        let config = cell
            .get_or_try_init(|| async {
                let config = match &account.assume_role {
                    Some(role) => self.assume(account, role).await?,
                    None => {
                        self.check_identity(&self.base, account).await?;
                        self.base.clone()
                    }
                };
                Ok::<_, AwsError>(Arc::new(config))
            })
            .await?;
        Ok(config.clone())
    }

    /// Checks afresh that `account` can be reached: AssumeRole (when configured), then
    /// `sts:GetCallerIdentity` with the resulting credentials, whose account must be `account_id`.
    /// On success the fresh credentials replace any cached ones.
    pub async fn verify(&self, account: &AccountAccess) -> Result<(), AwsError> {
        let config = match &account.assume_role {
            Some(role) => self.assume(account, role).await?,
            None => self.base.clone(),
        };
        self.check_identity(&config, account).await?;
        let fresh = OnceCell::new_with(Some(Arc::new(config)));
        self.sessions
            .lock()
            .await
            .insert(account.clone(), Arc::new(fresh));
        Ok(())
    }

    async fn assume(
        &self,
        account: &AccountAccess,
        role: &AssumeRole,
    ) -> Result<SdkConfig, AwsError> {
        let provider = AssumeRoleProvider {
            sts: self.sts_client(&self.base),
            account_id: account.account_id.clone(),
            role: role.clone(),
            cached: Arc::new(Mutex::new(None)),
        };
        // Assume once now so a wrong role or account fails here, with a clear error.
        provider.fetch().await?;
        Ok(self
            .base
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build())
    }

    /// `sts:GetCallerIdentity` with `config`'s credentials must answer `account`'s id.
    async fn check_identity(
        &self,
        config: &SdkConfig,
        account: &AccountAccess,
    ) -> Result<(), AwsError> {
        let operation = "sts:GetCallerIdentity";
        let identity = self
            .sts_client(config)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, operation, &account.account_id, &[]))?;
        match identity.account() {
            Some(id) if id == account.account_id => Ok(()),
            other => {
                let how = if account.assume_role.is_some() {
                    "the assumed role's credentials".to_string()
                } else {
                    format!(
                        "AwsAccount {} has no assumeRole, so the tool's own credentials are used, but they",
                        account.name
                    )
                };
                Err(AwsError::new(
                    AwsErrorKind::AccountMismatch,
                    operation,
                    &account.account_id,
                    format!(
                        "{how} act in account {} instead of {}",
                        other.unwrap_or("(unknown)"),
                        account.account_id
                    ),
                ))
            }
        }
    }

    /// An STS client on `config`, recording its calls.
    pub fn sts_client(&self, config: &SdkConfig) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(config)
                .retry_partition(self.retry_partition.clone())
                .interceptor(self.calls.clone())
                .build(),
        )
    }

    /// An S3 client for `region`.
    pub fn s3_client(&self, config: &SdkConfig, region: &str) -> aws_sdk_s3::Client {
        let builder = aws_sdk_s3::config::Builder::from(config)
            .region(Region::new(region.to_string()))
            .retry_partition(self.retry_partition.clone())
            .force_path_style(self.has_custom_endpoint())
            .interceptor(self.calls.clone());
        aws_sdk_s3::Client::from_conf(builder.build())
    }

    /// An ECR client for `region`.
    pub fn ecr_client(&self, config: &SdkConfig, region: &str) -> aws_sdk_ecr::Client {
        let builder = aws_sdk_ecr::config::Builder::from(config)
            .region(Region::new(region.to_string()))
            .retry_partition(self.retry_partition.clone())
            .interceptor(self.calls.clone());
        aws_sdk_ecr::Client::from_conf(builder.build())
    }

    /// A KMS client for `region`.
    pub fn kms_client(&self, config: &SdkConfig, region: &str) -> aws_sdk_kms::Client {
        let builder = aws_sdk_kms::config::Builder::from(config)
            .region(Region::new(region.to_string()))
            .retry_partition(self.retry_partition.clone())
            .interceptor(self.calls.clone());
        aws_sdk_kms::Client::from_conf(builder.build())
    }

    /// An RDS client for `region`.
    pub fn rds_client(&self, config: &SdkConfig, region: &str) -> aws_sdk_rds::Client {
        let builder = aws_sdk_rds::config::Builder::from(config)
            .region(Region::new(region.to_string()))
            .retry_partition(self.retry_partition.clone())
            .interceptor(self.calls.clone());
        aws_sdk_rds::Client::from_conf(builder.build())
    }

    /// A SageMaker client for `region`.
    pub fn sagemaker_client(&self, config: &SdkConfig, region: &str) -> aws_sdk_sagemaker::Client {
        let builder = aws_sdk_sagemaker::config::Builder::from(config)
            .region(Region::new(region.to_string()))
            .retry_partition(self.retry_partition.clone())
            .interceptor(self.calls.clone());
        aws_sdk_sagemaker::Client::from_conf(builder.build())
    }

    /// An SQS client for `region`.
    pub fn sqs_client(&self, config: &SdkConfig, region: &str) -> aws_sdk_sqs::Client {
        let builder = aws_sdk_sqs::config::Builder::from(config)
            .region(Region::new(region.to_string()))
            .retry_partition(self.retry_partition.clone())
            .interceptor(self.calls.clone());
        aws_sdk_sqs::Client::from_conf(builder.build())
    }

    /// An SNS client for `region`.
    pub fn sns_client(&self, config: &SdkConfig, region: &str) -> aws_sdk_sns::Client {
        let builder = aws_sdk_sns::config::Builder::from(config)
            .region(Region::new(region.to_string()))
            .retry_partition(self.retry_partition.clone())
            .interceptor(self.calls.clone());
        aws_sdk_sns::Client::from_conf(builder.build())
    }

    /// A Secrets Manager client for `region`.
    pub fn secrets_client(
        &self,
        config: &SdkConfig,
        region: &str,
    ) -> aws_sdk_secretsmanager::Client {
        let builder = aws_sdk_secretsmanager::config::Builder::from(config)
            .region(Region::new(region.to_string()))
            .retry_partition(self.retry_partition.clone())
            .interceptor(self.calls.clone());
        aws_sdk_secretsmanager::Client::from_conf(builder.build())
    }

    /// A Lambda client for `region`.
    pub fn lambda_client(&self, config: &SdkConfig, region: &str) -> aws_sdk_lambda::Client {
        let builder = aws_sdk_lambda::config::Builder::from(config)
            .region(Region::new(region.to_string()))
            .retry_partition(self.retry_partition.clone())
            .interceptor(self.calls.clone());
        aws_sdk_lambda::Client::from_conf(builder.build())
    }

    /// An EventBridge client for `region`.
    pub fn events_client(&self, config: &SdkConfig, region: &str) -> aws_sdk_eventbridge::Client {
        let builder = aws_sdk_eventbridge::config::Builder::from(config)
            .region(Region::new(region.to_string()))
            .retry_partition(self.retry_partition.clone())
            .interceptor(self.calls.clone());
        aws_sdk_eventbridge::Client::from_conf(builder.build())
    }

    /// An IAM client (IAM is global).
    pub fn iam_client(&self, config: &SdkConfig) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::config::Builder::from(config)
                .retry_partition(self.retry_partition.clone())
                .interceptor(self.calls.clone())
                .build(),
        )
    }
}

/// Credentials from `sts:AssumeRole`, checked to act in the expected account and cached until
/// shortly before they expire.
#[derive(Clone)]
struct AssumeRoleProvider {
    sts: aws_sdk_sts::Client,
    account_id: String,
    role: AssumeRole,
    cached: Arc<Mutex<Option<Credentials>>>,
}

impl std::fmt::Debug for AssumeRoleProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssumeRoleProvider")
            .field("account_id", &self.account_id)
            .field("role", &self.role)
            .finish()
    }
}

impl AssumeRoleProvider {
    async fn fetch(&self) -> Result<Credentials, AwsError> {
        let mut cached = self.cached.lock().await;
        if let Some(creds) = cached.as_ref() {
            let fresh = creds
                .expiry()
                .is_none_or(|exp| exp > SystemTime::now() + REFRESH_BEFORE_EXPIRY);
            if fresh {
                return Ok(creds.clone());
            }
        }
        let operation = "sts:AssumeRole";
        let mut request = self
            .sts
            .assume_role()
            .role_arn(&self.role.role_arn)
            .role_session_name(&self.role.session_name);
        if let Some(external_id) = &self.role.external_id {
            request = request.external_id(external_id);
        }
        let out = request.send().await.map_err(|e| {
            let mut err = AwsError::from_sdk(&e, operation, &self.account_id, &[]);
            if !err.kind.is_transient() {
                err.kind = AwsErrorKind::AssumeRoleFailed;
            }
            err.message = format!("could not assume {}: {}", self.role.role_arn, err.message);
            err
        })?;
        let assumed_account = out
            .assumed_role_user()
            .and_then(|u| u.arn().split(':').nth(4))
            .unwrap_or_default();
        if assumed_account != self.account_id {
            return Err(AwsError::new(
                AwsErrorKind::AccountMismatch,
                operation,
                &self.account_id,
                format!(
                    "assuming {} gave credentials in account {assumed_account:?}",
                    self.role.role_arn
                ),
            ));
        }
        let c = out.credentials().ok_or_else(|| {
            AwsError::new(
                AwsErrorKind::AssumeRoleFailed,
                operation,
                &self.account_id,
                "AssumeRole returned no credentials",
            )
        })?;
        let expiry = SystemTime::try_from(*c.expiration()).ok();
        let creds = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expiry,
            "xacct-assume-role",
        );
        *cached = Some(creds.clone());
        Ok(creds)
    }
}

impl ProvideCredentials for AssumeRoleProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.fetch().await.map_err(CredentialsError::provider_error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_attempt_has_a_timeout_and_the_sdk_connect_timeout_stays() {
        let options = ConnectorOptions {
            endpoint_url: Some("http://127.0.0.1:9".into()),
            credentials: Some(Credentials::new("a", "b", None, None, "test")),
            region: Some("us-east-1".into()),
            retry: RetryBudget {
                max_attempts: 6,
                call_timeout: Duration::from_secs(42),
            },
        };
        let connector = Connector::new(options).await;
        assert_eq!(connector.attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        let timeouts = connector.base.timeout_config().expect("timeouts");
        assert_eq!(timeouts.operation_timeout(), Some(Duration::from_secs(42)));
        let retry = connector.base.retry_config().expect("retry config");
        assert_eq!(retry.max_attempts(), 6);
        assert!(
            connector
                .base
                .timeout_config()
                .and_then(TimeoutConfig::connect_timeout)
                .is_some()
        );
        let short = connector.with_attempt_timeout(Duration::from_millis(500));
        assert_eq!(short.attempt_timeout(), Some(Duration::from_millis(500)));
    }
}
