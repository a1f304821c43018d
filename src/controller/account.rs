//! Reconciling an AwsAccount: read the external id Secret if any, verify the account can be reached
//! with the expected identity, and hold deletion while grants still use the account.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Api, ResourceExt};
use thiserror::Error;

use super::conditions::{ConditionUpdate, READY, find, merge_condition};
use super::context::{Context, object_key, with_external_id};
use super::error::ControllerError;
use crate::api::{AwsAccount, AwsAccountStatus, SecretKeySelector};
use crate::aws::AwsErrorKind;
use crate::engine::account_access;

/// Held while grants use the account.
pub const ACCOUNT_FINALIZER: &str = "xacct.dev/in-use";
const KIND: &str = "AwsAccount";

/// Reconciles one account.
pub async fn reconcile(
    account: Arc<AwsAccount>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    let started = Instant::now();
    let api: Api<AwsAccount> = Api::all(ctx.client.clone());
    // A reconcile that went through records how the verification ended (`verify`, after its
    // status is written; `release`); one that failed is recorded here.
    let result = finalizer(&api, ACCOUNT_FINALIZER, account, |event| async {
        match event {
            FinalizerEvent::Apply(a) => verify(&a, &ctx, started).await,
            FinalizerEvent::Cleanup(a) => {
                let action = release(&a, &ctx).await?;
                ctx.metrics.reconciled(KIND, "success", started);
                Ok(action)
            }
        }
    })
    .await
    .map_err(|e| ControllerError::Finalizer(e.to_string()));
    if result.is_err() {
        ctx.metrics.reconciled(KIND, "error", started);
    }
    result
}

#[tracing::instrument(skip_all, fields(kind = KIND, name = account.name_any()))]
async fn verify(
    account: &AwsAccount,
    ctx: &Context,
    started: Instant,
) -> Result<Action, ControllerError> {
    let key = object_key(account);
    let previous = account.status.clone().unwrap_or_default();
    let reached = match with_secret(account, ctx).await {
        Ok(resolved) => ctx
            .connector
            .verify(&account_access(&resolved))
            .await
            .map_err(|e| match e.kind {
                AwsErrorKind::AccountMismatch => failed("AccountMismatch", e.to_string()),
                _ => failed("AssumeRoleFailed", e.to_string()),
            }),
        Err(e) => Err(failed("AssumeRoleFailed", e.to_string())),
    };
    let verified = reached.is_ok();
    let (update, action) = match reached {
        Ok(()) => {
            ctx.backoff.reset(&key);
            let message = format!(
                "reached account {} with the expected identity",
                account.spec.account_id
            );
            let update = ConditionUpdate::ready("True", "Verified", message);
            (update, Action::requeue(ctx.settings.resync))
        }
        Err(update) => (update, Action::requeue(ctx.retry_soon(&key))),
    };
    if update.status == "False"
        && find(&previous.conditions, READY).is_none_or(|c| c.reason != update.reason)
    {
        ctx.publish(account, EventType::Warning, &update.reason, &update.message)
            .await;
    }
    let now = ctx.now();
    let status = AwsAccountStatus {
        conditions: merge_condition(
            &previous.conditions,
            update,
            account.metadata.generation,
            now,
        ),
        // When it became verified at this generation: a resync that verifies it again leaves
        // status as it is (no write, no watch event for every watcher of accounts).
        verified_at: match previous.verified_at.clone() {
            Some(at) if verified && still_verified(&previous, account.metadata.generation) => {
                Some(at)
            }
            _ if verified => Some(now.to_string()),
            before => before,
        },
        observed_generation: account.metadata.generation,
    };
    ctx.write_status(
        Api::all(ctx.client.clone()),
        account,
        account.status.as_ref(),
        status,
    )
    .await?;
    let outcome = if verified { "success" } else { "failed" };
    ctx.metrics.reconciled(KIND, outcome, started);
    Ok(action)
}

/// Whether `previous` says the account was verified at `generation`.
fn still_verified(previous: &AwsAccountStatus, generation: Option<i64>) -> bool {
    previous.observed_generation == generation
        && find(&previous.conditions, READY).is_some_and(|c| c.status == "True")
}

fn failed(reason: &str, message: String) -> ConditionUpdate {
    ConditionUpdate::ready("False", reason, message)
}

/// Why the external id could not be read from its Secret: which Secret, which key, what is wrong.
/// Never holds the value.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("external id Secret {namespace}/{name}, key {key}: {problem}")]
pub struct ExternalIdError {
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
    /// The key that should hold the external id.
    pub key: String,
    /// What is wrong.
    pub problem: SecretProblem,
}

/// What is wrong with an external id Secret.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SecretProblem {
    /// The API server has no such Secret.
    #[error("the Secret does not exist")]
    NotFound,
    /// The controller's service account may not read the Secret.
    #[error("the controller may not read the Secret (forbidden: {0})")]
    Forbidden(String),
    /// The Secret exists without the key.
    #[error("the Secret has no such key ({})", keys_of(.0))]
    KeyMissing(Vec<String>),
    /// The key holds nothing (or only blanks).
    #[error("the value is empty")]
    Empty,
    /// The key's value is not UTF-8 text.
    #[error("the value is not UTF-8 text")]
    NotText,
    /// The API server refused the read for another reason.
    #[error("the API server answered {code} {reason}: {message}")]
    Refused {
        /// HTTP status code.
        code: u16,
        /// The Status reason (`Unauthorized`, `InternalError`...).
        reason: String,
        /// The Status message.
        message: String,
    },
    /// The API server could not be reached, or its answer not read.
    #[error("the Secret could not be read: {0}")]
    Unreadable(String),
}

fn keys_of(keys: &[String]) -> String {
    if keys.is_empty() {
        "it has no keys".to_string()
    } else {
        format!("its keys: {}", keys.join(", "))
    }
}

impl SecretProblem {
    /// The problem a failed `get` of the Secret stands for.
    pub fn from_kube(error: &kube::Error) -> Self {
        match error {
            kube::Error::Api(status) => match status.code {
                404 => Self::NotFound,
                403 => Self::Forbidden(if status.message.is_empty() {
                    status.reason.clone()
                } else {
                    status.message.clone()
                }),
                code => Self::Refused {
                    code,
                    reason: status.reason.clone(),
                    message: status.message.clone(),
                },
            },
            other => Self::Unreadable(other.to_string()),
        }
    }
}

/// The external id in `secret` under `key` (`data` first, then `stringData`), trimmed.
pub fn external_id_in(secret: &Secret, key: &str) -> Result<String, SecretProblem> {
    let value = match secret.data.as_ref().and_then(|d| d.get(key)) {
        Some(bytes) => String::from_utf8(bytes.0.clone()).map_err(|_| SecretProblem::NotText)?,
        None => match secret.string_data.as_ref().and_then(|d| d.get(key)) {
            Some(text) => text.clone(),
            None => {
                let mut keys: Vec<String> = secret
                    .data
                    .iter()
                    .flat_map(|d| d.keys())
                    .chain(secret.string_data.iter().flat_map(|d| d.keys()))
                    .cloned()
                    .collect();
                keys.sort();
                keys.dedup();
                return Err(SecretProblem::KeyMissing(keys));
            }
        },
    };
    let value = value.trim();
    if value.is_empty() {
        return Err(SecretProblem::Empty);
    }
    Ok(value.to_string())
}

/// The account with the external id its Secret holds, when it names one (kept for the engine's
/// account directory too).
async fn with_secret(account: &AwsAccount, ctx: &Context) -> Result<AwsAccount, ExternalIdError> {
    let selector = account
        .spec
        .assume_role
        .as_ref()
        .and_then(|r| r.external_id_secret_ref.as_ref());
    let Some(selector) = selector else {
        return Ok(account.clone());
    };
    let id = read_external_id(selector, ctx).await?;
    ctx.external_ids
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(account.name_any(), id.clone());
    Ok(with_external_id(account.clone(), id))
}

/// The external id from its Secret. Errors name the Secret and key, never the value.
async fn read_external_id(
    selector: &SecretKeySelector,
    ctx: &Context,
) -> Result<String, ExternalIdError> {
    let namespace = selector
        .namespace
        .clone()
        .unwrap_or_else(|| ctx.settings.secrets_namespace.clone());
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let located = |problem| ExternalIdError {
        namespace: namespace.clone(),
        name: selector.name.clone(),
        key: selector.key.clone(),
        problem,
    };
    let secret = api
        .get(&selector.name)
        .await
        .map_err(|e| located(SecretProblem::from_kube(&e)))?;
    external_id_in(&secret, &selector.key).map_err(located)
}

/// Lets the account go once no grant uses it.
#[tracing::instrument(skip_all, fields(kind = KIND, name = account.name_any()))]
async fn release(account: &AwsAccount, ctx: &Context) -> Result<Action, ControllerError> {
    let name = account.name_any();
    let mut users: Vec<String> = ctx
        .index()
        .naming(&name)
        .iter()
        .map(|g| {
            format!(
                "CrossAccountGrant {}/{}",
                g.namespace.as_deref().unwrap_or_default(),
                g.name
            )
        })
        .collect();
    users.extend(
        ctx.shares
            .state()
            .iter()
            .filter(|s| s.spec.source.account == name)
            .map(|s| {
                format!(
                    "SnapshotShare {}/{}",
                    s.namespace().unwrap_or_default(),
                    s.name_any()
                )
            }),
    );
    if users.is_empty() {
        ctx.external_ids
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&name);
        return Ok(Action::await_change());
    }
    let message = format!(
        "deletion waits for {} resource(s) that use this account: {}",
        users.len(),
        users.join(", ")
    );
    let previous = account.status.clone().unwrap_or_default();
    let status = AwsAccountStatus {
        conditions: merge_condition(
            &previous.conditions,
            failed("InUse", message.clone()),
            account.metadata.generation,
            ctx.now(),
        ),
        ..previous
    };
    ctx.write_status(
        Api::all(ctx.client.clone()),
        account,
        account.status.as_ref(),
        status,
    )
    .await?;
    Err(ControllerError::AccountInUse(message))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use kube::core::Status;

    use super::*;

    fn secret(data: &[(&str, &[u8])], string_data: &[(&str, &str)]) -> Secret {
        Secret {
            data: (!data.is_empty()).then(|| {
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                    .collect::<BTreeMap<_, _>>()
            }),
            string_data: (!string_data.is_empty()).then(|| {
                string_data
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>()
            }),
            ..Secret::default()
        }
    }

    fn error(problem: SecretProblem) -> String {
        ExternalIdError {
            namespace: "xacct-system".into(),
            name: "prod-external-id".into(),
            key: "externalId".into(),
            problem,
        }
        .to_string()
    }

    #[test]
    fn the_value_is_read_from_data_then_string_data_and_trimmed() {
        assert_eq!(
            external_id_in(&secret(&[("externalId", b" abc\n")], &[]), "externalId"),
            Ok("abc".to_string())
        );
        assert_eq!(
            external_id_in(&secret(&[], &[("externalId", "def")]), "externalId"),
            Ok("def".to_string())
        );
    }

    #[test]
    fn each_problem_reads_as_words_naming_the_secret_and_key() {
        let missing_key =
            external_id_in(&secret(&[("token", b"x")], &[("other", "y")]), "externalId")
                .unwrap_err();
        assert_eq!(
            error(missing_key),
            "external id Secret xacct-system/prod-external-id, key externalId: \
             the Secret has no such key (its keys: other, token)"
        );
        let no_keys = external_id_in(&secret(&[], &[]), "externalId").unwrap_err();
        assert_eq!(no_keys, SecretProblem::KeyMissing(vec![]));
        assert!(error(no_keys).ends_with("the Secret has no such key (it has no keys)"));
        let empty = external_id_in(&secret(&[("externalId", b"  \n")], &[]), "externalId");
        assert_eq!(
            error(empty.unwrap_err()),
            "external id Secret xacct-system/prod-external-id, key externalId: the value is empty"
        );
        let binary = external_id_in(&secret(&[("externalId", &[0xff, 0xfe])], &[]), "externalId");
        assert_eq!(binary, Err(SecretProblem::NotText));
    }

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        let mut status = Status::failure(message, reason);
        status.code = code;
        kube::Error::Api(status.boxed())
    }

    #[test]
    fn api_errors_are_said_in_words_not_dumped() {
        let not_found = SecretProblem::from_kube(&api_error(
            404,
            "NotFound",
            "secrets \"prod-external-id\" not found",
        ));
        assert_eq!(not_found, SecretProblem::NotFound);
        assert_eq!(
            error(not_found),
            "external id Secret xacct-system/prod-external-id, key externalId: the Secret does not exist"
        );
        let forbidden = error(SecretProblem::from_kube(&api_error(
            403,
            "Forbidden",
            "secrets \"prod-external-id\" is forbidden: User \"system:serviceaccount:xacct-system:xacct\" cannot get resource \"secrets\"",
        )));
        assert!(
            forbidden.contains("the controller may not read the Secret (forbidden: secrets"),
            "{forbidden}"
        );
        let refused = error(SecretProblem::from_kube(&api_error(
            500,
            "InternalError",
            "etcd timed out",
        )));
        assert!(
            refused.ends_with("the API server answered 500 InternalError: etcd timed out"),
            "{refused}"
        );
        for text in [forbidden, refused] {
            assert!(
                !text.contains("Status {") && !text.contains("Some("),
                "{text}"
            );
        }
    }
}
