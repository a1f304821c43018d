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
