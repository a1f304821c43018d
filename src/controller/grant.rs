//! Reconciling a CrossAccountGrant: finalizer first, then the engine (the CLI's code path) for this
//! grant and the other grants on its resource (see [`super::coalesce`]), then status, events and
//! the next check.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Api, ResourceExt};

use super::coalesce::{self, GrantResult, ResourceKey, resource_key, result_id};
use super::conditions::{ConditionUpdate, DRIFTED, READY, find, is_ready, merge_condition};
use super::context::{Context, object_key};
use super::error::ControllerError;
use super::metrics::grant_outcome;
use crate::api::{
    CrossAccountGrant, CrossAccountGrantStatus, DeletionPolicy, GrantMode, GrantedTarget,
    GranteeSide, PolicyKind, PolicyLocation, ResourceKind,
};
use crate::engine::{DEFAULT_REGION, GrantInput, GrantReport, Operation, Placement};

/// Held while a grant may have statements in AWS.
pub const GRANT_FINALIZER: &str = "xacct.dev/revoke";
const KIND: &str = "CrossAccountGrant";

/// Reconciles one grant.
pub async fn reconcile(
    grant: Arc<CrossAccountGrant>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    let started = Instant::now();
    let namespace = grant.namespace().unwrap_or_else(|| "default".into());
    let api: Api<CrossAccountGrant> = Api::namespaced(ctx.client.clone(), &namespace);
    // How the grant ended up, when the reconcile itself went through (set by `apply`).
    let ended = OnceLock::new();
    let result = finalizer(&api, GRANT_FINALIZER, grant, |event| async {
        match event {
            FinalizerEvent::Apply(g) => apply(&g, &ctx, &ended).await,
            FinalizerEvent::Cleanup(g) => cleanup(&g, &ctx).await,
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

/// The engine's input for `grant`.
pub(super) fn input(grant: &CrossAccountGrant) -> GrantInput {
    let origin = format!(
        "{KIND} {}/{}",
        grant.namespace().unwrap_or_default(),
        grant.name_any()
    );
    GrantInput::new(grant.clone(), origin)
}

/// What one reconcile found, before it is written to status.
struct Outcome {
    ready: ConditionUpdate,
    drifted: Option<ConditionUpdate>,
    targets: Vec<GrantedTarget>,
    role_arn: Option<String>,
    action: Action,
}

#[tracing::instrument(skip_all, fields(kind = KIND, namespace = grant.namespace().unwrap_or_default(), name = grant.name_any()))]
async fn apply(
    grant: &CrossAccountGrant,
    ctx: &Context,
    ended: &OnceLock<&'static str>,
) -> Result<Action, ControllerError> {
    if !ctx.accounts_synced() {
        let _ = ended.set("waiting");
        return Ok(Action::requeue(std::time::Duration::from_millis(500)));
    }
    let previous = grant.status.clone().unwrap_or_default();
    // Both accounts a grant writes in must be ready: the resource's, and the grantee's when
    // xacct writes the grantee side there.
    let grantee_account = grant
        .spec
        .grantee
        .account
        .as_deref()
        .filter(|_| grant.spec.effective_grantee_side() == GranteeSide::Manage);
    let not_ready = ctx
        .account_not_ready(&grant.spec.resource.account)
        .or_else(|| grantee_account.and_then(|a| ctx.account_not_ready(a)));
    let outcome = match not_ready {
        Some((message, again)) => Outcome {
            ready: ConditionUpdate {
                type_: READY,
                status: "False",
                reason: "AccountNotReady".into(),
                message,
            },
            drifted: None,
            targets: previous.targets.clone(),
            role_arn: previous.role_arn.clone(),
            // The account's readiness changing brings the grant back, but that trigger comes from
            // another watch than the account cache read here, and may arrive first: look again
            // soon (with backoff, up to `again`) rather than only at the resync.
            action: Action::requeue(ctx.backoff.next_delay(&object_key(grant)).min(again)),
        },
        None => match converge(grant, &previous, ctx).await {
            Ok(outcome) => outcome,
            Err(wait) => {
                // Waiting for grants on its resource to get their finalizer, to be converged with
                // them; its status is left as it is.
                let _ = ended.set("waiting");
                return Ok(Action::requeue(wait));
            }
        },
    };
    let _ = ended.set(grant_outcome(outcome.ready.status, &outcome.ready.reason));
    if outcome.ready.status == "False"
        && find(&previous.conditions, READY).is_none_or(|c| c.reason != outcome.ready.reason)
    {
        ctx.publish(
            grant,
            EventType::Warning,
            &outcome.ready.reason,
            &outcome.ready.message,
        )
        .await;
    }
    let generation = grant.metadata.generation;
    let now = ctx.now();
    let mut conditions = merge_condition(&previous.conditions, outcome.ready, generation, now);
    if let Some(drifted) = outcome.drifted {
        conditions = merge_condition(&conditions, drifted, generation, now);
    }
    let status = CrossAccountGrantStatus {
        observed_generation: generation,
        conditions,
        targets: outcome.targets,
        role_arn: outcome.role_arn,
    };
    ctx.write_status(
        Api::namespaced(ctx.client.clone(), &grant.namespace().unwrap_or_default()),
        grant,
        Some(&previous),
        status,
    )
    .await?;
    Ok(outcome.action)
}

/// What converging the grant found; `Err(how long)` while it waits for peers (see
/// [`coalesce::Converged::Wait`]).
async fn converge(
    grant: &CrossAccountGrant,
    previous: &CrossAccountGrantStatus,
    ctx: &Context,
) -> Result<Outcome, std::time::Duration> {
    let observe = grant.spec.mode == GrantMode::Observe;
    let (result, written) = match coalesce::converge(grant, ctx).await {
        coalesce::Converged::Done(result, written) => (result, written),
        coalesce::Converged::Wait(wait) => return Err(wait),
    };
    // The policies status records, and those a run that included this grant at an earlier
    // generation wrote its statements to (status may not record them yet).
    let mut known = previous.targets.clone();
    for target in written {
        let place = placement(&target, ctx);
        if !known.iter().any(|k| placement(k, ctx) == place) {
            known.push(target);
        }
    }
    let Some(result) = result else {
        let ready = ConditionUpdate {
            type_: READY,
            status: "Unknown",
            reason: "Unknown".into(),
            message: "no result".into(),
        };
        return Ok(Outcome {
            ready,
            drifted: None,
            targets: known,
            role_arn: previous.role_arn.clone(),
            action: Action::requeue(ctx.settings.resync),
        });
    };
    let GrantResult {
        report: result,
        changes: changed,
        at,
        started,
    } = *result;
    // In step with the other grants the run checked.
    let resync = coalesce::next_check(ctx.settings.resync, started.elapsed());
    let ready = result.ready().map_or_else(
        || ConditionUpdate {
            type_: READY,
            status: "Unknown",
            reason: "Unknown".into(),
            message: String::new(),
        },
        |c| ConditionUpdate {
            type_: READY,
            status: c.status,
            reason: c.reason.to_string(),
            message: c.message.clone(),
        },
    );
    let key = object_key(grant);
    if result.targets.is_empty() || (ready.status == "False" && !observe) {
        // Failed: keep the targets we know of (they may hold statements to revoke later).
        // A bad spec is not retried with backoff: it comes back on a spec change, on its account's
        // change, or at the resync (without AWS calls), the last because the account trigger may
        // arrive before the account cache has the change.
        let action = match ready.reason.as_str() {
            "InvalidSpec" | "NamespaceNotAllowed" => Action::requeue(resync),
            _ => Action::requeue(ctx.backoff.next_delay(&key).min(ctx.settings.resync)),
        };
        return Ok(Outcome {
            ready,
            drifted: None,
            targets: known,
            role_arn: previous.role_arn.clone(),
            action,
        });
    }
    ctx.backoff.reset(&key);
    let target_arn = result
        .targets
        .iter()
        .map(|t| t.arn.as_str())
        .collect::<Vec<_>>()
        .join(", ");

    let was_converged =
        previous.observed_generation == grant.metadata.generation && is_ready(&previous.conditions);
    let was_drifted = find(&previous.conditions, DRIFTED).is_some_and(|c| c.status == "True");
    let drifted = if observe {
        if result.changes > 0 && (was_converged || was_drifted) {
            let message = format!("the policy of {target_arn} differs from this grant: {changed}");
            // Counted and announced once per episode of drift, not on every resync.
            if !was_drifted {
                ctx.metrics.drift(false);
                ctx.publish(grant, EventType::Warning, "DriftDetected", &message)
                    .await;
            }
            Some(ConditionUpdate {
                type_: DRIFTED,
                status: "True",
                reason: "DriftDetected".into(),
                message,
            })
        } else if was_drifted {
            Some(ConditionUpdate {
                type_: DRIFTED,
                status: "False",
                reason: "NoDrift".into(),
                message: "the policy matches again".into(),
            })
        } else {
            None
        }
    } else if result.changes > 0 && was_converged {
        ctx.metrics.drift(true);
        let message = format!("restored this grant's statements in {target_arn}: {changed}");
        ctx.publish(grant, EventType::Normal, "DriftCorrected", &message)
            .await;
        Some(ConditionUpdate {
            type_: DRIFTED,
            status: "False",
            reason: "DriftCorrected".into(),
            message,
        })
    } else {
        if result.changes > 0 {
            ctx.publish(
                grant,
                EventType::Normal,
                "Applied",
                &format!("wrote to {target_arn}: {changed}"),
            )
            .await;
        }
        None
    };

    let mut targets = if observe {
        known.clone()
    } else {
        result
            .targets
            .iter()
            .map(|t| {
                let place = Placement {
                    location: t.location.clone(),
                    region: t.region.clone(),
                };
                let last_applied = if result.changes > 0 {
                    Some(at.to_string())
                } else {
                    known
                        .iter()
                        .find(|p| placement(p, ctx) == place)
                        .and_then(|p| p.last_applied.clone())
                };
                GrantedTarget {
                    arn: t.arn.clone(),
                    resource: grant.spec.resource.clone(),
                    policy: Some(t.location.clone()),
                    region: Some(t.region.clone()),
                    sids: t.sids.clone(),
                    last_applied,
                }
            })
            .collect()
    };
    if !observe {
        // The grant moved (another resource, other principals): revoke what it left behind.
        let current: BTreeSet<Placement> = targets.iter().map(|t| placement(t, ctx)).collect();
        let mut left: BTreeMap<ResourceKey, Vec<GrantedTarget>> = BTreeMap::new();
        for t in known
            .iter()
            .filter(|t| !current.contains(&placement(t, ctx)))
        {
            left.entry(resource_key(&t.resource, ctx))
                .or_default()
                .push(t.clone());
        }
        for (resource, group) in left {
            let places = group.iter().map(|t| placement(t, ctx)).collect();
            let arns = group
                .iter()
                .map(|t| t.arn.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            // Not while a run on that resource is in flight: one that began before the grant moved
            // may still write its statements there.
            let revoked = {
                let _one_run_per_resource = ctx.coalescer.lock(&resource).await;
                revoke(grant, places, false, ctx).await
            };
            match revoked {
                Ok(()) => {
                    ctx.publish(
                        grant,
                        EventType::Normal,
                        "Revoked",
                        &format!("removed its statements from {arns}"),
                    )
                    .await
                }
                Err(message) => {
                    ctx.publish(grant, EventType::Warning, "RevokeFailed", &message)
                        .await;
                    targets.extend(group);
                }
            }
        }
    }
    let role_arn = if observe {
        previous.role_arn.clone()
    } else {
        result.role_arn.clone()
    };
    Ok(Outcome {
        ready,
        drifted,
        targets,
        role_arn,
        // In step with the other grants the run checked.
        action: Action::requeue(resync),
    })
}

/// Where a target's statements were written. Status written before it recorded the policy names
/// the resource's own policy (a key by its ARN, not an alias that may have moved).
fn placement(target: &GrantedTarget, ctx: &Context) -> Placement {
    let resource = &target.resource;
    let location = target.policy.clone().unwrap_or_else(|| PolicyLocation {
        account: resource.account.clone(),
        kind: PolicyKind::of_resource(resource.kind),
        name: if resource.kind == ResourceKind::KmsKey && target.arn.starts_with("arn:") {
            target.arn.clone()
        } else {
            resource.name.clone()
        },
    });
    let region = target
        .region
        .clone()
        .or_else(|| resource.region.clone())
        .or_else(|| {
            ctx.account_directory()
                .get(&resource.account)
                .and_then(|a| a.spec.region.clone())
        })
        .unwrap_or_else(|| DEFAULT_REGION.to_string());
    Placement { location, region }
}

/// Revokes the grant's statements from `places`, and from where its spec says when `spec_places`.
/// A policy whose holder no longer exists counts as revoked.
async fn revoke(
    grant: &CrossAccountGrant,
    places: Vec<Placement>,
    spec_places: bool,
    ctx: &Context,
) -> Result<(), String> {
    // What was written is taken away even from a grant now set to Retain (it moved elsewhere).
    delete(
        grant,
        places,
        spec_places,
        DeletionPolicy::Delete,
        "Revoked",
        ctx,
    )
    .await
}

/// Hands the grant's statements over (deleted with `deletionPolicy: Retain`), in `places` and
/// where its spec says.
async fn release(
    grant: &CrossAccountGrant,
    places: Vec<Placement>,
    ctx: &Context,
) -> Result<(), String> {
    delete(grant, places, true, DeletionPolicy::Retain, "Retained", ctx).await
}

async fn delete(
    grant: &CrossAccountGrant,
    places: Vec<Placement>,
    spec_places: bool,
    policy: DeletionPolicy,
    done: &str,
    ctx: &Context,
) -> Result<(), String> {
    let mut input = input(grant);
    input.written = places;
    input.spec_places = spec_places;
    input.grant.spec.deletion_policy = policy;
    let report = ctx
        .engine
        .run(&ctx.account_directory(), &[input], Operation::Delete, false)
        .await;
    match report.grants.first().and_then(GrantReport::ready) {
        // Anything else (an account that is missing or not readable yet) is retried: the
        // statements may still be there.
        Some(c) if c.reason == done => Ok(()),
        Some(c) => Err(format!("{}: {}", c.reason, c.message)),
        None => Err("no result".into()),
    }
}

#[tracing::instrument(skip_all, fields(kind = KIND, namespace = grant.namespace().unwrap_or_default(), name = grant.name_any()))]
async fn cleanup(grant: &CrossAccountGrant, ctx: &Context) -> Result<Action, ControllerError> {
    if !ctx.accounts_synced() {
        return Err(ControllerError::Finalizer(
            "the AwsAccount cache is not synced yet".into(),
        ));
    }
    let id = result_id(grant);
    if grant.spec.mode == GrantMode::Observe {
        ctx.coalescer.discard(&id);
        tracing::info!("mode Observe: leaving AWS as it is");
        return Ok(Action::await_change());
    }
    // After any run on its resource in flight (which may include this grant, begun before the
    // deletion): runs that begin later see it being deleted and leave it out.
    let _one_run_per_resource = ctx
        .coalescer
        .lock(&resource_key(&grant.spec.resource, ctx))
        .await;
    // Retain hands the statements over (left in place, no longer xacct's); Delete removes them.
    let hand_over = grant.spec.deletion_policy == DeletionPolicy::Retain;
    let previous = grant.status.clone().unwrap_or_default();
    let mut places: Vec<Placement> = Vec::new();
    // Kept until revoked: a retry needs them again.
    for target in previous.targets.iter().chain(&ctx.coalescer.written(&id)) {
        let place = placement(target, ctx);
        if !places.contains(&place) {
            places.push(place);
        }
    }
    let result = if hand_over {
        release(grant, places, ctx).await
    } else {
        revoke(grant, places, true, ctx).await
    };
    match result {
        Ok(()) => {
            ctx.coalescer.discard(&id);
            let (reason, note) = if hand_over {
                (
                    "Retained",
                    "left this grant's statements in place, handed over (no longer xacct's)",
                )
            } else {
                ("Revoked", "removed this grant's statements")
            };
            ctx.publish(grant, EventType::Normal, reason, note).await;
            Ok(Action::await_change())
        }
        Err(message) => {
            ctx.publish(grant, EventType::Warning, "RevokeFailed", &message)
                .await;
            Err(ControllerError::Finalizer(format!(
                "revoking {}: {message}",
                object_key(grant)
            )))
        }
    }
}
