//! KMS key policies (the policy named `default`, the only one KMS has).

use aws_sdk_kms::Client;
use aws_sdk_kms::types::KeyState;

use super::error::{AwsError, AwsErrorKind};

const NOT_FOUND: &[&str] = &["NotFoundException"];
const POLICY_NAME: &str = "default";

/// Key id and key ARN of what a grant names: a key id, a key ARN, `alias/NAME` or an alias ARN.
pub(super) async fn locate(
    client: &Client,
    account_id: &str,
    partition: &str,
    region: &str,
    name: &str,
) -> Result<(String, String), AwsError> {
    if let Some(key_id) = name
        .strip_prefix("arn:")
        .and_then(|_| name.split_once(":key/"))
        .map(|(_, id)| id)
    {
        return Ok((key_id.to_string(), name.to_string()));
    }
    if !name.starts_with("alias/") && !name.starts_with("arn:") {
        return Ok((
            name.to_string(),
            format!("arn:{partition}:kms:{region}:{account_id}:key/{name}"),
        ));
    }
    // Aliases are resolved by KMS; the key they point to is the target.
    let out = client
        .describe_key()
        .key_id(name)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&e, "kms:DescribeKey", account_id, NOT_FOUND))?;
    let meta = out.key_metadata().ok_or_else(|| {
        AwsError::new(
            AwsErrorKind::Other,
            "kms:DescribeKey",
            account_id,
            format!("no metadata for key {name}"),
        )
    })?;
    if meta.key_state() == Some(&KeyState::PendingDeletion) {
        return Err(AwsError::new(
            AwsErrorKind::NotFound,
            "kms:DescribeKey",
            account_id,
            format!("key {name} is pending deletion"),
        ));
    }
    let arn = meta.arn().map(str::to_string).unwrap_or_else(|| {
        format!(
            "arn:{partition}:kms:{region}:{account_id}:key/{}",
            meta.key_id()
        )
    });
    Ok((meta.key_id().to_string(), arn))
}

pub(super) async fn read(
    client: &Client,
    account_id: &str,
    key_id: &str,
) -> Result<Option<String>, AwsError> {
    client
        .get_key_policy()
        .key_id(key_id)
        .policy_name(POLICY_NAME)
        .send()
        .await
        .map(|out| out.policy().map(str::to_string))
        .map_err(|e| AwsError::from_sdk(&e, "kms:GetKeyPolicy", account_id, NOT_FOUND))
}

pub(super) async fn write(
    client: &Client,
    account_id: &str,
    key_id: &str,
    policy: &str,
) -> Result<(), AwsError> {
    client
        .put_key_policy()
        .key_id(key_id)
        .policy_name(POLICY_NAME)
        .policy(policy)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| AwsError::from_sdk(&e, "kms:PutKeyPolicy", account_id, NOT_FOUND))
}
