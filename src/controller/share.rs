//! Reconciling a SnapshotShare: finalizer, the engine's sharing for this share alone, status,
//! events (`Copied`, `Shared`, `Unshared`), and the next check.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Api, ResourceExt};

use super::conditions::{ConditionUpdate, READY, find, merge_condition};
use super::context::{Context, object_key, synced};
use super::error::ControllerError;
use crate::api::{SnapshotShare, SnapshotShareStatus};
use crate::engine::{Operation, Reason, ShareInput, ShareReport};

/// Held while a share may have shared snapshots or given key access.
pub const SHARE_FINALIZER: &str = "xacct.dev/unshare";
const KIND: &str = "SnapshotShare";

/// Reconciles one share.
pub async fn reconcile(
    share: Arc<SnapshotShare>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    let started = Instant::now();
    let api: Api<SnapshotShare> = Api::namespaced(
        ctx.client.clone(),
        &share.namespace().unwrap_or_else(|| "default".into()),
    );
    let result = finalizer(&api, SHARE_FINALIZER, share, |event| async {
        match event {
            FinalizerEvent::Apply(s) => apply(&s, &ctx).await,
            FinalizerEvent::Cleanup(s) => cleanup(&s, &ctx).await,
        }
    })
    .await
    .map_err(|e| ControllerError::Finalizer(e.to_string()));
    ctx.metrics.reconciled(
        KIND,
        if result.is_ok() { "success" } else { "error" },
        started,
    );
    result
}

fn input(share: &SnapshotShare) -> ShareInput {
    ShareInput {
        share: share.clone(),
        origin: object_key(share),
    }
}

#[tracing::instrument(skip_all, fields(kind = KIND, namespace = share.namespace().unwrap_or_default(), name = share.name_any()))]
async fn apply(share: &SnapshotShare, ctx: &Context) -> Result<Action, ControllerError> {
    if !synced(&ctx.accounts) {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let previous = share.status.clone().unwrap_or_default();
    let (update, report, action) =
        if let Some((message, again)) = ctx.account_not_ready(&share.spec.source.account) {
            let update = ConditionUpdate::ready("False", Reason::AccountNotReady.as_str(), message);
            (update, None, Action::requeue(again))
        } else {
            let report = ctx
                .engine
                .run_shares(
                    &ctx.account_directory(),
                    &[input(share)],
                    Operation::Apply,
                    false,
                )
                .await
                .remove(0);
            let update = ConditionUpdate::reported(report.ready());
            let reason = report.ready().map_or(Reason::Unknown, |c| c.reason);
            let action =
                Action::requeue(ctx.next_look(&object_key(share), reason, ctx.settings.resync));
            (update, Some(report), action)
        };
    if let Some(report) = &report {
        publish_steps(ctx, share, report).await;
    }
    if update.status == "False"
        && !matches!(
            update.reason.as_str(),
            "CopyInProgress" | "SnapshotNotAvailable"
        )
        && find(&previous.conditions, READY).is_none_or(|c| c.reason != update.reason)
    {
        ctx.publish(share, EventType::Warning, &update.reason, &update.message)
            .await;
    }
    let status = SnapshotShareStatus {
        observed_generation: share.metadata.generation,
        conditions: merge_condition(
            &previous.conditions,
            update,
            share.metadata.generation,
            ctx.now(),
        ),
        snapshot_arn: report
            .as_ref()
            .and_then(|r| r.snapshot_arn.clone())
            .or(previous.snapshot_arn.clone()),
        copied_from: report
            .as_ref()
            .map_or(previous.copied_from.clone(), |r| r.copied_from.clone()),
        targets: report
            .as_ref()
            .filter(|r| !r.targets.is_empty() || r.access_revoked)
            .map_or(previous.targets.clone(), |r| r.targets.clone()),
    };
    ctx.write_status(
        Api::namespaced(ctx.client.clone(), &share.namespace().unwrap_or_default()),
        share,
        Some(&previous),
        status,
    )
    .await?;
    Ok(action)
}

async fn publish_steps(ctx: &Context, share: &SnapshotShare, report: &ShareReport) {
    for step in &report.steps {
        let reason = if step.starts_with("copied") {
            "Copied"
        } else if step.starts_with("unshared") {
            "Unshared"
        } else if step.starts_with("shared") {
            "Shared"
        } else {
            "KeyAccess"
        };
        ctx.publish(share, EventType::Normal, reason, step).await;
    }
}

#[tracing::instrument(skip_all, fields(kind = KIND, namespace = share.namespace().unwrap_or_default(), name = share.name_any()))]
async fn cleanup(share: &SnapshotShare, ctx: &Context) -> Result<Action, ControllerError> {
    if !synced(&ctx.accounts) {
        return Err(ControllerError::Finalizer(
            "the AwsAccount cache is not synced yet".into(),
        ));
    }
    let report = ctx
        .engine
        .run_shares(
            &ctx.account_directory(),
            &[input(share)],
            Operation::Delete,
            false,
        )
        .await
        .remove(0);
    publish_steps(ctx, share, &report).await;
    match report.ready() {
        Some(c)
            if matches!(
                c.reason,
                Reason::Unshared | Reason::Retained | Reason::InvalidSpec
            ) =>
        {
            Ok(Action::await_change())
        }
        Some(c) => {
            ctx.publish(share, EventType::Warning, "UnshareFailed", &c.message)
                .await;
            Err(ControllerError::Finalizer(format!(
                "unsharing {}: {}: {}",
                object_key(share),
                c.reason,
                c.message
            )))
        }
        None => Err(ControllerError::Finalizer(format!(
            "unsharing {}: no result",
            object_key(share)
        ))),
    }
}
