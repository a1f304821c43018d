//! S3 bucket policies.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;

use super::error::AwsError;

const NOT_FOUND: &[&str] = &["NoSuchBucket"];

pub(super) async fn read(
    client: &Client,
    account_id: &str,
    bucket: &str,
) -> Result<Option<String>, AwsError> {
    match client.get_bucket_policy().bucket(bucket).send().await {
        Ok(out) => Ok(out.policy().map(str::to_string)),
        // The SDK does not model NoSuchBucketPolicy as a typed error: match the code.
        Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("NoSuchBucketPolicy") => {
            Ok(None)
        }
        Err(e) => Err(AwsError::from_sdk(
            &e,
            "s3:GetBucketPolicy",
            account_id,
            NOT_FOUND,
        )),
    }
}

pub(super) async fn write(
    client: &Client,
    account_id: &str,
    bucket: &str,
    policy: &str,
) -> Result<(), AwsError> {
    client
        .put_bucket_policy()
        .bucket(bucket)
        .policy(policy)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| AwsError::from_sdk(&e, "s3:PutBucketPolicy", account_id, NOT_FOUND))
}

pub(super) async fn delete(
    client: &Client,
    account_id: &str,
    bucket: &str,
) -> Result<(), AwsError> {
    client
        .delete_bucket_policy()
        .bucket(bucket)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| AwsError::from_sdk(&e, "s3:DeleteBucketPolicy", account_id, NOT_FOUND))
}

/// How a resource encrypts what a grantee reads (a bucket's objects by default, a secret's value),
/// as far as a cross-account caller is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    /// No KMS key involved (SSE-S3, or no default encryption).
    NoKmsKey,
    /// An AWS managed key (`aws/s3`, `aws/secretsmanager`), which other accounts cannot use.
    AwsManagedKey,
    /// A customer managed key (its ARN, or the id the resource names).
    CustomerKey(String),
}

/// The KMS key a bucket's default encryption names, if any.
pub(super) async fn default_kms_key(
    client: &Client,
    account_id: &str,
    bucket: &str,
) -> Result<Option<String>, AwsError> {
    let out = match client.get_bucket_encryption().bucket(bucket).send().await {
        Ok(out) => out,
        Err(e)
            if e.as_service_error().and_then(|s| s.code())
                == Some("ServerSideEncryptionConfigurationNotFoundError") =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(AwsError::from_sdk(
                &e,
                "s3:GetBucketEncryption",
                account_id,
                NOT_FOUND,
            ));
        }
    };
    let by_default = out
        .server_side_encryption_configuration()
        .into_iter()
        .flat_map(|c| c.rules())
        .filter_map(|r| r.apply_server_side_encryption_by_default())
        .find(|d| d.sse_algorithm().as_str().starts_with("aws:kms"));
    Ok(by_default.map(|d| d.kms_master_key_id().unwrap_or("alias/aws/s3").to_string()))
}
