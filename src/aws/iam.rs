//! IAM role trust policies (who may assume the role).

use aws_sdk_iam::Client;

use super::error::{AwsError, AwsErrorKind};

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
    // IAM returns policy documents URL-encoded (RFC 3986).
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .map(|s| Some(s.into_owned()))
        .map_err(|e| {
            AwsError::new(
                AwsErrorKind::Other,
                "iam:GetRole",
                account_id,
                format!("trust policy of {role} is not UTF-8: {e}"),
            )
        })
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
