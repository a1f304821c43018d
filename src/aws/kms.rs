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

/// What the snapshot sharing needs to know about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's ARN.
    pub arn: String,
    /// Managed by AWS (`aws/rds`...): its policy cannot be changed, so it cannot be shared.
    pub aws_managed: bool,
    /// Pending deletion (or disabled).
    pub unusable: Option<String>,
}

pub(super) async fn key_info(
    client: &Client,
    account_id: &str,
    key: &str,
) -> Result<KeyInfo, AwsError> {
    let out = client
        .describe_key()
        .key_id(key)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&e, "kms:DescribeKey", account_id, NOT_FOUND))?;
    let meta = out.key_metadata().ok_or_else(|| {
        AwsError::new(
            AwsErrorKind::Other,
            "kms:DescribeKey",
            account_id,
            format!("no metadata for key {key}"),
        )
    })?;
    let unusable = match meta.key_state() {
        Some(KeyState::PendingDeletion) => Some("pending deletion".to_string()),
        Some(KeyState::Disabled) => Some("disabled".to_string()),
        _ => None,
    };
    Ok(KeyInfo {
        arn: meta.arn().unwrap_or(meta.key_id()).to_string(),
        aws_managed: meta.key_manager() == Some(&aws_sdk_kms::types::KeyManagerType::Aws),
        unusable,
    })
}

/// The id of the grant named `name` on `key`, if any.
pub(super) async fn find_grant(
    client: &Client,
    account_id: &str,
    key: &str,
    name: &str,
) -> Result<Option<String>, AwsError> {
    let mut marker = None;
    loop {
        let out = client
            .list_grants()
            .key_id(key)
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e, "kms:ListGrants", account_id, NOT_FOUND))?;
        if let Some(g) = out.grants().iter().find(|g| g.name() == Some(name)) {
            return Ok(g.grant_id().map(str::to_string));
        }
        marker = out.next_marker().map(str::to_string);
        if !out.truncated() || marker.is_none() {
            return Ok(None);
        }
    }
}

/// Creates the grant RDS needs for `grantee` (an account root ARN) to copy and restore a snapshot.
pub(super) async fn create_grant(
    client: &Client,
    account_id: &str,
    key: &str,
    name: &str,
    grantee: &str,
) -> Result<String, AwsError> {
    use aws_sdk_kms::types::GrantOperation as Op;
    let operations = [
        Op::Decrypt,
        Op::DescribeKey,
        Op::CreateGrant,
        Op::ReEncryptFrom,
        Op::ReEncryptTo,
        Op::GenerateDataKey,
        Op::GenerateDataKeyWithoutPlaintext,
    ];
    let out = client
        .create_grant()
        .key_id(key)
        .name(name)
        .grantee_principal(grantee)
        .set_operations(Some(operations.to_vec()))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&e, "kms:CreateGrant", account_id, NOT_FOUND))?;
    Ok(out.grant_id().unwrap_or_default().to_string())
}

pub(super) async fn revoke_grant(
    client: &Client,
    account_id: &str,
    key: &str,
    grant_id: &str,
) -> Result<(), AwsError> {
    client
        .revoke_grant()
        .key_id(key)
        .grant_id(grant_id)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| AwsError::from_sdk(&e, "kms:RevokeGrant", account_id, NOT_FOUND))
}
