//! Roles xacct creates itself (to invoke a SageMaker endpoint) and instance profiles.

use aws_sdk_iam::Client;
use aws_sdk_iam::types::Tag;

use super::error::{AwsError, AwsErrorKind};
use super::identity::{self, Holder, NO_SUCH_ENTITY, POLICY_NAME};

/// The tag marking a role xacct created; its value is the instance id.
pub const CREATED_BY_TAG: &str = "xacct.dev/created-by";

/// The trust policy of a role xacct creates; `None` when the role does not exist (yet). A role of
/// that name that this instance did not create is refused, never taken over.
pub(super) async fn read_trust(
    client: &Client,
    account_id: &str,
    role: &str,
    instance: &str,
) -> Result<Option<String>, AwsError> {
    let out = match client.get_role().role_name(role).send().await {
        Ok(out) => out,
        Err(e) => {
            let e = AwsError::from_sdk(&e, "iam:GetRole", account_id, NO_SUCH_ENTITY);
            return if e.kind == AwsErrorKind::NotFound {
                Ok(None)
            } else {
                Err(e)
            };
        }
    };
    let Some(found) = out.role() else {
        return Ok(None);
    };
    let ours = found
        .tags()
        .iter()
        .any(|t| t.key() == CREATED_BY_TAG && t.value() == instance);
    if !ours {
        return Err(AwsError::new(
            AwsErrorKind::Other,
            "iam:GetRole",
            account_id,
            format!(
                "the role {role:?} exists but was not created by this xacct instance (no tag {CREATED_BY_TAG}={instance}); xacct will not take it over"
            ),
        ));
    }
    found
        .assume_role_policy_document()
        .map(|d| identity::decode(d, "iam:GetRole", account_id))
        .transpose()
}

/// Sets the trust policy, creating the role (tagged as this instance's) when it does not exist.
pub(super) async fn write_trust(
    client: &Client,
    account_id: &str,
    role: &str,
    instance: &str,
    policy: &str,
) -> Result<(), AwsError> {
    let updated = client
        .update_assume_role_policy()
        .role_name(role)
        .policy_document(policy)
        .send()
        .await
        .map_err(|e| {
            AwsError::from_sdk(&e, "iam:UpdateAssumeRolePolicy", account_id, NO_SUCH_ENTITY)
        });
    match updated {
        Ok(_) => Ok(()),
        Err(e) if e.kind == AwsErrorKind::NotFound => {
            let tag = Tag::builder()
                .key(CREATED_BY_TAG)
                .value(instance)
                .build()
                .map_err(|e| {
                    AwsError::new(
                        AwsErrorKind::Other,
                        "iam:CreateRole",
                        account_id,
                        e.to_string(),
                    )
                })?;
            client
                .create_role()
                .role_name(role)
                .assume_role_policy_document(policy)
                .description(
                    "Created by xacct: assumed by other accounts to invoke a SageMaker endpoint",
                )
                .tags(tag)
                .send()
                .await
                .map_err(|e| {
                    AwsError::from_sdk(&e, "iam:CreateRole", account_id, NO_SUCH_ENTITY)
                })?;
            await_visible(client, account_id, role).await
        }
        Err(e) => Err(e),
    }
}

/// How many times a role just created is read back before xacct gives up waiting for IAM.
const VISIBLE_READS: u32 = 10;
/// The pause between those reads.
const VISIBLE_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// IAM is eventually consistent: reads a role just created back (`iam:GetRole`) until IAM returns
/// it, so that nothing is written to it and its ARN is not handed out before IAM knows it. A role
/// IAM still does not return after [`VISIBLE_READS`] reads fails the write as `NotFound`, tried
/// again on the next run.
async fn await_visible(client: &Client, account_id: &str, role: &str) -> Result<(), AwsError> {
    let mut read = 1;
    loop {
        let Err(e) = client.get_role().role_name(role).send().await else {
            return Ok(());
        };
        let e = AwsError::from_sdk(&e, "iam:GetRole", account_id, NO_SUCH_ENTITY);
        if e.kind != AwsErrorKind::NotFound || read == VISIBLE_READS {
            return Err(e);
        }
        read += 1;
        tokio::time::sleep(VISIBLE_PAUSE).await;
    }
}

/// Deletes a role this instance created, with xacct's inline policy. A role that is gone counts as
/// deleted. A role someone attached other policies or instance profiles to is not deleted, and
/// their policies stay: it is handed over (see [`hand_over`]).
pub(super) async fn delete(
    client: &Client,
    account_id: &str,
    role: &str,
    instance: &str,
) -> Result<(), AwsError> {
    if read_trust(client, account_id, role, instance)
        .await?
        .is_none()
    {
        return Ok(());
    }
    let mut foreign: Vec<String> =
        identity::inline_policy_names(client, account_id, Holder::Role, role)
            .await?
            .into_iter()
            .filter(|p| p != POLICY_NAME)
            .map(|p| format!("inline policy {p}"))
            .collect();
    let attached = client
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .map_err(|e| {
            AwsError::from_sdk(
                &e,
                "iam:ListAttachedRolePolicies",
                account_id,
                NO_SUCH_ENTITY,
            )
        })?;
    foreign.extend(
        attached
            .attached_policies()
            .iter()
            .map(|p| format!("managed policy {}", p.policy_arn().unwrap_or("?"))),
    );
    let profiles = client
        .list_instance_profiles_for_role()
        .role_name(role)
        .send()
        .await
        .map_err(|e| {
            AwsError::from_sdk(
                &e,
                "iam:ListInstanceProfilesForRole",
                account_id,
                NO_SUCH_ENTITY,
            )
        })?;
    foreign.extend(
        profiles
            .instance_profiles()
            .iter()
            .map(|p| format!("instance profile {}", p.instance_profile_name())),
    );
    if !foreign.is_empty() {
        return hand_over(client, account_id, role, &foreign).await;
    }
    identity::delete(client, account_id, Holder::Role, role).await?;
    match client.delete_role().role_name(role).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = AwsError::from_sdk(&e, "iam:DeleteRole", account_id, NO_SUCH_ENTITY);
            if e.kind == AwsErrorKind::NotFound {
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}

/// The trust policy a role handed over gets: nobody may assume it.
const LOCKED_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"RevokedByXacct","Effect":"Deny","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;
/// The created-by tag's value on a role handed over: no instance takes it back.
const HANDED_OVER: &str = "handed-over";

/// Hands over a role xacct created but someone else now uses (`foreign`: what they attached):
/// its last grant is gone, so nobody may assume it any more (the trust policy denies everyone),
/// xacct's inline policy goes, and the role is no longer tagged as xacct's, so no instance deletes
/// it or takes it back. Their policies stay; deleting the role is theirs to do.
async fn hand_over(
    client: &Client,
    account_id: &str,
    role: &str,
    foreign: &[String],
) -> Result<(), AwsError> {
    client
        .update_assume_role_policy()
        .role_name(role)
        .policy_document(LOCKED_TRUST)
        .send()
        .await
        .map_err(|e| {
            AwsError::from_sdk(&e, "iam:UpdateAssumeRolePolicy", account_id, NO_SUCH_ENTITY)
        })?;
    identity::delete(client, account_id, Holder::Role, role).await?;
    let tag = Tag::builder()
        .key(CREATED_BY_TAG)
        .value(HANDED_OVER)
        .build()
        .map_err(|e| {
            AwsError::new(
                AwsErrorKind::Other,
                "iam:TagRole",
                account_id,
                e.to_string(),
            )
        })?;
    client
        .tag_role()
        .role_name(role)
        .tags(tag)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&e, "iam:TagRole", account_id, NO_SUCH_ENTITY))?;
    tracing::warn!(
        account_id,
        role,
        attached = %foreign.join(", "),
        "kept the role xacct created for its last grant: others use it; nobody may assume it now, and it is no longer xacct's"
    );
    Ok(())
}

/// The ARN of the role in an instance profile.
pub(super) async fn instance_profile_role(
    client: &Client,
    account_id: &str,
    profile: &str,
) -> Result<String, AwsError> {
    let out = client
        .get_instance_profile()
        .instance_profile_name(profile)
        .send()
        .await
        .map_err(|e| {
            let mut e =
                AwsError::from_sdk(&e, "iam:GetInstanceProfile", account_id, NO_SUCH_ENTITY);
            if e.kind == AwsErrorKind::NotFound {
                e.message = format!("the instance profile {profile:?} does not exist");
            }
            e
        })?;
    out.instance_profile()
        .and_then(|p| p.roles().first())
        .map(|r| r.arn().to_string())
        .ok_or_else(|| {
            AwsError::new(
                AwsErrorKind::NotFound,
                "iam:GetInstanceProfile",
                account_id,
                format!("the instance profile {profile:?} has no role"),
            )
        })
}
