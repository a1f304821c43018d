//! Reconciling an AwsAccount: read the external id Secret if any, verify the account can be reached
//! with the expected identity, and hold deletion while grants still use the account.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Api, ResourceExt};

use super::conditions::{ConditionUpdate, READY, find, merge_condition};
use super::context::{Context, object_key};
use super::error::ControllerError;
use super::metrics::account_outcome;
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
    // How the verification ended, when the reconcile itself went through (set by `verify`).
    let ended = OnceLock::new();
    let result = finalizer(&api, ACCOUNT_FINALIZER, account, |event| async {
        match event {
            FinalizerEvent::Apply(a) => verify(&a, &ctx, &ended).await,
            FinalizerEvent::Cleanup(a) => release(&a, &ctx).await,
        }
    })
    .await
    .map_err(|e| ControllerError::Finalizer(e.to_string()));
    let outcome = match &result {
        Ok(_) => ended.get().copied().unwrap_or("success"),
        Err(_) => "error",
    };
    ctx.metrics.reconciled(KIND, outcome, started);
    result
}

#[tracing::instrument(skip_all, fields(kind = KIND, name = account.name_any()))]
async fn verify(
    account: &AwsAccount,
    ctx: &Context,
    ended: &OnceLock<&'static str>,
) -> Result<Action, ControllerError> {
    let name = account.name_any();
    let key = object_key(account);
    let previous = account.status.clone().unwrap_or_default();
    let mut resolved = account.clone();
    let secret = match account
        .spec
        .assume_role
        .as_ref()
        .and_then(|r| r.external_id_secret_ref.as_ref())
    {
        None => Ok(()),
        Some(selector) => match read_external_id(selector, ctx).await {
            Ok(id) => {
                if let Some(role) = resolved.spec.assume_role.as_mut() {
                    role.external_id = Some(id.clone());
                    role.external_id_secret_ref = None;
                }
                ctx.external_ids
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.clone(), id);
                Ok(())
            }
            Err(message) => Err(message),
        },
    };
    let (update, verified, action) = match secret {
        Err(message) => (
            failed("AssumeRoleFailed", message),
            false,
            Action::requeue(ctx.backoff.next_delay(&key)),
        ),
        Ok(()) => match ctx.connector.verify(&account_access(&resolved)).await {
            Ok(()) => {
                ctx.backoff.reset(&key);
                let message = format!(
                    "reached account {} with the expected identity",
                    account.spec.account_id
                );
                (
                    ConditionUpdate {
                        type_: READY,
                        status: "True",
                        reason: "Verified".into(),
                        message,
                    },
                    true,
                    Action::requeue(ctx.settings.resync),
                )
            }
            Err(e) => {
                let reason = if e.kind == AwsErrorKind::AccountMismatch {
                    "AccountMismatch"
                } else {
                    "AssumeRoleFailed"
                };
                (
                    failed(reason, e.to_string()),
                    false,
                    Action::requeue(ctx.backoff.next_delay(&key).min(ctx.settings.resync)),
                )
            }
        },
    };
    let _ = ended.set(account_outcome(update.status));
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
        verified_at: if verified {
            Some(now.to_string())
        } else {
            previous.verified_at.clone()
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
    Ok(action)
}

fn failed(reason: &str, message: String) -> ConditionUpdate {
    ConditionUpdate {
        type_: READY,
        status: "False",
        reason: reason.into(),
        message,
    }
}

/// The external id from its Secret. Errors name the Secret and key, never the value.
async fn read_external_id(selector: &SecretKeySelector, ctx: &Context) -> Result<String, String> {
    let namespace = selector
        .namespace
        .clone()
        .unwrap_or_else(|| ctx.settings.secrets_namespace.clone());
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let where_ = format!("Secret {namespace}/{} key {}", selector.name, selector.key);
    let secret = api
        .get(&selector.name)
        .await
        .map_err(|e| format!("cannot read {where_}: {e}"))?;
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&selector.key))
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(&selector.key))
                .map(|s| s.trim().to_string())
        })
        .ok_or_else(|| format!("{where_} does not exist"))?;
    if value.is_empty() {
        return Err(format!("{where_} is empty"));
    }
    Ok(value)
}

/// Lets the account go once no grant uses it.
#[tracing::instrument(skip_all, fields(kind = KIND, name = account.name_any()))]
async fn release(account: &AwsAccount, ctx: &Context) -> Result<Action, ControllerError> {
    let name = account.name_any();
    let mut users: Vec<String> = ctx
        .grants
        .state()
        .iter()
        .filter(|g| {
            g.spec.resource.account == name
                || g.spec.grantee.account.as_deref() == Some(name.as_str())
        })
        .map(|g| {
            format!(
                "CrossAccountGrant {}/{}",
                g.namespace().unwrap_or_default(),
                g.name_any()
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
