//! Secrets Manager resource policies.

use aws_sdk_secretsmanager::Client;

use super::error::AwsError;

const NOT_FOUND: &[&str] = &["ResourceNotFoundException"];

/// What xacct needs to know of a secret: its full ARN (with the suffix Secrets Manager adds) and
/// the KMS key it is encrypted with (`None`: the AWS managed key `aws/secretsmanager`).
pub(super) struct SecretInfo {
    pub(super) arn: String,
    pub(super) kms_key_id: Option<String>,
}

/// Looks the secret `id` (a name or an ARN) up.
pub(super) async fn describe(
    client: &Client,
    account_id: &str,
    id: &str,
) -> Result<SecretInfo, AwsError> {
    let out = client
        .describe_secret()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| {
            AwsError::from_sdk(&e, "secretsmanager:DescribeSecret", account_id, NOT_FOUND)
        })?;
    Ok(SecretInfo {
        arn: out.arn().unwrap_or(id).to_string(),
        kms_key_id: out.kms_key_id().map(str::to_string),
    })
}

pub(super) async fn read(
    client: &Client,
    account_id: &str,
    arn: &str,
) -> Result<Option<String>, AwsError> {
    let out = client
        .get_resource_policy()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            AwsError::from_sdk(
                &e,
                "secretsmanager:GetResourcePolicy",
                account_id,
                NOT_FOUND,
            )
        })?;
    Ok(out
        .resource_policy()
        .filter(|p| !p.trim().is_empty())
        .map(str::to_string))
}

/// Writes the policy with `BlockPublicPolicy`: Secrets Manager then refuses a document that would
/// let anyone outside the account in (a principal `*` not narrowed by an organization, say).
pub(super) async fn write(
    client: &Client,
    account_id: &str,
    arn: &str,
    policy: &str,
) -> Result<(), AwsError> {
    client
        .put_resource_policy()
        .secret_id(arn)
        .resource_policy(policy)
        .block_public_policy(true)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            AwsError::from_sdk(
                &e,
                "secretsmanager:PutResourcePolicy",
                account_id,
                NOT_FOUND,
            )
        })
}

pub(super) async fn delete(client: &Client, account_id: &str, arn: &str) -> Result<(), AwsError> {
    client
        .delete_resource_policy()
        .secret_id(arn)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            AwsError::from_sdk(
                &e,
                "secretsmanager:DeleteResourcePolicy",
                account_id,
                NOT_FOUND,
            )
        })
}
