//! xacct's inline identity policies on IAM roles and users: one policy, named [`POLICY_NAME`], per
//! role or user. Other inline policies and attached managed policies are never touched.

use aws_sdk_iam::Client;

use super::error::{AwsError, AwsErrorKind};

/// The name of xacct's inline policy on every role and user it writes to.
pub const POLICY_NAME: &str = "xacct";
pub(super) const NO_SUCH_ENTITY: &[&str] = &["NoSuchEntity"];

/// Whether the policy sits on a role or a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Holder {
    Role,
    User,
}

/// IAM returns policy documents URL-encoded (RFC 3986).
pub(super) fn decode(encoded: &str, operation: &str, account_id: &str) -> Result<String, AwsError> {
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|e| {
            AwsError::new(
                AwsErrorKind::Other,
                operation,
                account_id,
                format!("policy document is not UTF-8: {e}"),
            )
        })
}

/// Turns "not found" into `None`.
fn found<T>(result: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind == AwsErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the role or user exists.
pub(super) async fn exists(
    client: &Client,
    account_id: &str,
    holder: Holder,
    name: &str,
) -> Result<bool, AwsError> {
    let result = match holder {
        Holder::Role => client
            .get_role()
            .role_name(name)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk(&e, "iam:GetRole", account_id, NO_SUCH_ENTITY)),
        Holder::User => client
            .get_user()
            .user_name(name)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk(&e, "iam:GetUser", account_id, NO_SUCH_ENTITY)),
    };
    Ok(found(result)?.is_some())
}

/// One inline policy's document; `None` when the holder has no inline policy of that name.
async fn get_inline(
    client: &Client,
    account_id: &str,
    holder: Holder,
    name: &str,
    policy: &str,
) -> Result<Option<String>, AwsError> {
    let (operation, result) = match holder {
        Holder::Role => (
            "iam:GetRolePolicy",
            client
                .get_role_policy()
                .role_name(name)
                .policy_name(policy)
                .send()
                .await
                .map(|o| o.policy_document().to_string())
                .map_err(|e| {
                    AwsError::from_sdk(&e, "iam:GetRolePolicy", account_id, NO_SUCH_ENTITY)
                }),
        ),
        Holder::User => (
            "iam:GetUserPolicy",
            client
                .get_user_policy()
                .user_name(name)
                .policy_name(policy)
                .send()
                .await
                .map(|o| o.policy_document().to_string())
                .map_err(|e| {
                    AwsError::from_sdk(&e, "iam:GetUserPolicy", account_id, NO_SUCH_ENTITY)
                }),
        ),
    };
    found(result)?
        .map(|encoded| decode(&encoded, operation, account_id))
        .transpose()
}

/// xacct's inline policy on a role or user. `NotFound` when the role or user does not exist (IAM
/// says `NoSuchEntity` for a missing policy and a missing holder alike, so a miss is checked).
pub(super) async fn read(
    client: &Client,
    account_id: &str,
    holder: Holder,
    name: &str,
    must_exist: bool,
) -> Result<Option<String>, AwsError> {
    if let Some(document) = get_inline(client, account_id, holder, name, POLICY_NAME).await? {
        return Ok(Some(document));
    }
    if must_exist && !exists(client, account_id, holder, name).await? {
        let (noun, operation) = match holder {
            Holder::Role => ("role", "iam:GetRole"),
            Holder::User => ("user", "iam:GetUser"),
        };
        return Err(AwsError::new(
            AwsErrorKind::NotFound,
            operation,
            account_id,
            format!("the IAM {noun} {name:?} does not exist"),
        ));
    }
    Ok(None)
}

pub(super) async fn write(
    client: &Client,
    account_id: &str,
    holder: Holder,
    name: &str,
    policy: &str,
) -> Result<(), AwsError> {
    match holder {
        Holder::Role => client
            .put_role_policy()
            .role_name(name)
            .policy_name(POLICY_NAME)
            .policy_document(policy)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk(&e, "iam:PutRolePolicy", account_id, NO_SUCH_ENTITY)),
        Holder::User => client
            .put_user_policy()
            .user_name(name)
            .policy_name(POLICY_NAME)
            .policy_document(policy)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk(&e, "iam:PutUserPolicy", account_id, NO_SUCH_ENTITY)),
    }
}

/// Removes xacct's inline policy; one already gone (or a holder already gone) counts as removed.
pub(super) async fn delete(
    client: &Client,
    account_id: &str,
    holder: Holder,
    name: &str,
) -> Result<(), AwsError> {
    let result = match holder {
        Holder::Role => client
            .delete_role_policy()
            .role_name(name)
            .policy_name(POLICY_NAME)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                AwsError::from_sdk(&e, "iam:DeleteRolePolicy", account_id, NO_SUCH_ENTITY)
            }),
        Holder::User => client
            .delete_user_policy()
            .user_name(name)
            .policy_name(POLICY_NAME)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                AwsError::from_sdk(&e, "iam:DeleteUserPolicy", account_id, NO_SUCH_ENTITY)
            }),
    };
    found(result).map(|_| ())
}

/// Names of the holder's inline policies.
pub(super) async fn inline_policy_names(
    client: &Client,
    account_id: &str,
    holder: Holder,
    name: &str,
) -> Result<Vec<String>, AwsError> {
    let mut names = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let (page, next) = match holder {
            Holder::Role => {
                let out = client
                    .list_role_policies()
                    .role_name(name)
                    .set_marker(marker.clone())
                    .send()
                    .await
                    .map_err(|e| {
                        AwsError::from_sdk(&e, "iam:ListRolePolicies", account_id, NO_SUCH_ENTITY)
                    })?;
                let next = out.is_truncated().then(|| out.marker().map(str::to_string));
                (out.policy_names, next.flatten())
            }
            Holder::User => {
                let out = client
                    .list_user_policies()
                    .user_name(name)
                    .set_marker(marker.clone())
                    .send()
                    .await
                    .map_err(|e| {
                        AwsError::from_sdk(&e, "iam:ListUserPolicies", account_id, NO_SUCH_ENTITY)
                    })?;
                let next = out.is_truncated().then(|| out.marker().map(str::to_string));
                (out.policy_names, next.flatten())
            }
        };
        names.extend(page);
        match next {
            Some(m) => marker = Some(m),
            None => return Ok(names),
        }
    }
}

/// Characters (whitespace not counted, as IAM counts them) of the holder's inline policies other
/// than xacct's: they share the holder's quota with it.
pub(super) async fn others_size(
    client: &Client,
    account_id: &str,
    holder: Holder,
    name: &str,
) -> Result<usize, AwsError> {
    let mut total = 0;
    for policy in inline_policy_names(client, account_id, holder, name).await? {
        if policy == POLICY_NAME {
            continue;
        }
        if let Some(doc) = get_inline(client, account_id, holder, name, &policy).await? {
            total += doc.chars().filter(|c| !c.is_whitespace()).count();
        }
    }
    Ok(total)
}
