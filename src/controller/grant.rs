//! Reconciling a CrossAccountGrant: finalizer first, then the engine (the CLI's code path) for this
//! grant and the other grants on its resource (see [`super::coalesce`]), then status, events and
//! the next check.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
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
use crate::engine::{GrantInput, GrantReport, Operation, Placement, Reason};

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
    // A reconcile that went through records how the grant ended up where that is known (`apply`,
    // after its status is written; `cleanup`); one that failed is recorded here.
    let result = finalizer(&api, GRANT_FINALIZER, grant, |event| async {
        match event {
            FinalizerEvent::Apply(g) => apply(&g, &ctx, started).await,
            FinalizerEvent::Cleanup(g) => {
                let action = cleanup(&g, &ctx).await?;
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

/// The engine's input for `grant`, with the places its status records: where its statements are
/// removed from when an account withdraws its consent.
pub(super) fn input(grant: &CrossAccountGrant, ctx: &Context) -> GrantInput {
    let origin = format!(
        "{KIND} {}/{}",
        grant.namespace().unwrap_or_default(),
        grant.name_any()
    );
    let mut input = GrantInput::new(grant.clone(), origin);
    input.written = recorded_places(grant, ctx);
    input
}

/// The places `grant`'s status records.
fn recorded_places(grant: &CrossAccountGrant, ctx: &Context) -> Vec<Placement> {
    places_of(grant.status.iter().flat_map(|s| &s.targets), ctx)
}

/// The places `targets` name, each once.
fn places_of<'a>(
    targets: impl IntoIterator<Item = &'a GrantedTarget>,
    ctx: &Context,
) -> Vec<Placement> {
    let mut places: Vec<Placement> = Vec::new();
    for target in targets {
        let place = placement(target, ctx);
        if !places.contains(&place) {
            places.push(place);
        }
    }
    places
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
    started: Instant,
) -> Result<Action, ControllerError> {
    if !ctx.accounts_synced() {
        ctx.metrics.reconciled(KIND, "waiting", started);
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
        Some((message, again)) => {
            // What it left on another resource is revoked even while it cannot be converged.
            let targets = revoke_moved(grant, previous.targets.clone(), ctx).await;
            let delay = ctx.backoff.next_delay(&object_key(grant));
            Outcome {
                ready: ConditionUpdate {
                    type_: READY,
                    status: "False",
                    reason: "AccountNotReady".into(),
                    message,
                },
                drifted: None,
                targets,
                role_arn: previous.role_arn.clone(),
                // The account's readiness changing brings the grant back, but that trigger comes
                // from another watch than the account cache read here, and may arrive first: look
                // again soon (with backoff, up to `again`) rather than only at the resync.
                action: Action::requeue(delay.min(again)),
            }
        }
        None => match converge(grant, &previous, ctx).await {
            Ok(outcome) => outcome,
            Err(wait) => {
                // Waiting for grants on its resource to get their finalizer, to be converged with
                // them; its status is left as it is.
                ctx.metrics.reconciled(KIND, "waiting", started);
                return Ok(Action::requeue(wait));
            }
        },
    };
    let ended = grant_outcome(outcome.ready.status, &outcome.ready.reason);
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
    ctx.metrics.reconciled(KIND, ended, started);
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
    let reason = result.ready().map_or(Reason::Unknown, |c| c.reason);
    let key = object_key(grant);
    let generation = grant.metadata.generation;
    if reason.withdraws_consent() && !observe {
        // The engine removed its statements from every place it wants and status records; what
        // remains in `result.targets` is where that failed, retried with backoff.
        let mut targets = granted_targets(grant, &result, &known, None);
        let recorded = recorded_places(grant, ctx);
        let unrecorded: Vec<GrantedTarget> = known
            .into_iter()
            .filter(|t| !recorded.contains(&placement(t, ctx)))
            .collect();
        targets.extend(revoke_places(grant, unrecorded, ctx).await);
        // A new reason is announced with its message by `apply`; this says it when the
        // revocation comes later (it failed at first, or a peer's run did it).
        let announced = find(&previous.conditions, READY).is_none_or(|c| c.reason != ready.reason);
        if result.changes > 0 && !announced {
            let message = format!("{}: {}", ready.reason, ready.message);
            ctx.publish(grant, EventType::Warning, "AccessRevoked", &message)
                .await;
        }
        let action = if targets.is_empty() {
            ctx.next_look(&key, reason, resync)
        } else {
            ctx.retry_soon(&key)
        };
        return Ok(Outcome {
            ready,
            drifted: None,
            targets,
            role_arn: None,
            action,
        });
    }
    if result.targets.is_empty() || (ready.status == "False" && !observe) {
        let action = ctx.next_look(&key, reason, resync);
        if observe || reason == Reason::InvalidSpec {
            // A bad spec keeps what was written: deleting access on a typo would be worse.
            let mut ready = ready;
            if !observe {
                ready.message = format!("{}; {}", ready.message, left_in_place(&known));
            }
            return Ok(Outcome {
                ready,
                drifted: None,
                targets: known,
                role_arn: previous.role_arn.clone(),
                action,
            });
        }
        // Failed where its spec points now (a missing resource, a full policy, AWS refusing):
        // what it left on another resource is revoked all the same; what it has on this one stays
        // until it converges there.
        let targets = revoke_moved(grant, known, ctx).await;
        return Ok(Outcome {
            ready,
            drifted: None,
            targets,
            role_arn: previous.role_arn.clone(),
            action,
        });
    }
    ctx.backoff.reset(&key);

    let was_converged =
        previous.observed_generation == generation && is_ready(&previous.conditions);
    let was_drifted = find(&previous.conditions, DRIFTED).is_some_and(|c| c.status == "True");
    let drifted = if observe {
        if result.changes > 0 && (was_converged || was_drifted) {
            let message = format!("this grant's statements differ in {changed}");
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
        let message = format!("restored this grant's statements in {changed}");
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
                &format!("wrote its statements in {changed}"),
            )
            .await;
        }
        None
    };

    let targets = if observe {
        known
    } else {
        let written_at = (result.changes > 0).then(|| at.to_string());
        let current = granted_targets(grant, &result, &known, written_at);
        // The grant moved (another resource, other principals): revoke what it left behind.
        let places: BTreeSet<Placement> = current.iter().map(|t| placement(t, ctx)).collect();
        let left: Vec<GrantedTarget> = known
            .into_iter()
            .filter(|t| !places.contains(&placement(t, ctx)))
            .collect();
        let mut targets = current;
        targets.extend(revoke_places(grant, left, ctx).await);
        targets
    };
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

/// What an invalid spec leaves in AWS, for its message.
fn left_in_place(known: &[GrantedTarget]) -> String {
    let generation = known.iter().filter_map(|t| t.generation).max();
    match (known.is_empty(), generation) {
        (true, _) => "nothing was written for it".into(),
        (false, Some(n)) => format!(
            "the statements written for generation {n} are left in place until the spec is fixed or the grant deleted"
        ),
        (false, None) => "the statements written before are left in place until the spec is fixed or the grant deleted".into(),
    }
}

/// Status targets for the policies the engine reports the grant in, with when each was last
/// written (`written_at`, else as `known` says) and the generation whose statements it holds.
fn granted_targets(
    grant: &CrossAccountGrant,
    result: &GrantReport,
    known: &[GrantedTarget],
    written_at: Option<String>,
) -> Vec<GrantedTarget> {
    result
        .targets
        .iter()
        .map(|t| {
            let before = known.iter().find(|k| {
                k.policy.as_ref() == Some(&t.location) && k.region.as_deref() == Some(&t.region)
            });
            let (last_applied, generation) = match &written_at {
                Some(at) => (Some(at.clone()), grant.metadata.generation),
                None => (
                    before.and_then(|k| k.last_applied.clone()),
                    before
                        .and_then(|k| k.generation)
                        .or(grant.metadata.generation),
                ),
            };
            GrantedTarget {
                arn: t.arn.clone(),
                resource: before
                    .map_or_else(|| grant.spec.resource.clone(), |k| k.resource.clone()),
                policy: Some(t.location.clone()),
                region: Some(t.region.clone()),
                sids: t.sids.clone(),
                last_applied,
                generation,
            }
        })
        .collect()
}

/// Revokes what `known` holds on another resource than the grant's spec names now; returns what
/// still holds statements (what stays, and where revoking failed).
async fn revoke_moved(
    grant: &CrossAccountGrant,
    known: Vec<GrantedTarget>,
    ctx: &Context,
) -> Vec<GrantedTarget> {
    let here = resource_key(&grant.spec.resource, ctx);
    let (stay, left): (Vec<_>, Vec<_>) = known
        .into_iter()
        .partition(|t| resource_key(&t.resource, ctx) == here);
    let mut targets = stay;
    targets.extend(revoke_places(grant, left, ctx).await);
    targets
}

/// Revokes the grant's statements from `left`, one resource at a time, with an event for each;
/// returns the places where that failed (they still hold statements, retried later).
async fn revoke_places(
    grant: &CrossAccountGrant,
    left: Vec<GrantedTarget>,
    ctx: &Context,
) -> Vec<GrantedTarget> {
    let mut by_resource: BTreeMap<ResourceKey, Vec<GrantedTarget>> = BTreeMap::new();
    for t in left {
        by_resource
            .entry(resource_key(&t.resource, ctx))
            .or_default()
            .push(t);
    }
    let mut failed = Vec::new();
    for (resource, group) in by_resource {
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
                    &format!("removed its statements from {arns}, which its spec no longer names"),
                )
                .await
            }
            Err(message) => {
                ctx.publish(grant, EventType::Warning, "RevokeFailed", &message)
                    .await;
                failed.extend(group);
            }
        }
    }
    failed
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
        .unwrap_or_else(|| resource_key(resource, ctx).region);
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
    let mut input = input(grant, ctx);
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
    // Kept until revoked: a retry needs them again.
    let places = places_of(
        previous.targets.iter().chain(&ctx.coalescer.written(&id)),
        ctx,
    );
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
