//! IAM role trust policies (who may assume the role).

use aws_sdk_iam::Client;

use super::error::AwsError;

const NOT_FOUND: &[&str] = &["NoSuchEntity"];

pub(super) async fn read(
    client: &Client,
    account_id: &str,
    role: &str,
) -> Result<Option<String>, AwsError> {
    let out = client
        .get_role()
        .role_name(role)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&e, "iam:GetRole", account_id, NOT_FOUND))?;
    let Some(encoded) = out.role().and_then(|r| r.assume_role_policy_document()) else {
        return Ok(None);
    };
    super::identity::decode(encoded, "iam:GetRole", account_id).map(Some)
}

pub(super) async fn write(
    client: &Client,
    account_id: &str,
    role: &str,
    policy: &str,
) -> Result<(), AwsError> {
    client
        .update_assume_role_policy()
        .role_name(role)
        .policy_document(policy)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| AwsError::from_sdk(&e, "iam:UpdateAssumeRolePolicy", account_id, NOT_FOUND))
}
