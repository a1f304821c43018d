//! One run on one resource key: every grant there converged in one engine run (one read and at
//! most one write per policy), those leaving it revoked in the same write, then each grant's status
//! and events.
//!
//! In order: the finalizer is added to each grant lacking it (before any AWS write); grants whose
//! accounts are not Ready are reported as such; the engine runs once for the others (mode Enforce)
//! and for the grants leaving the key (deleted, or moved: their statements are removed); grants in
//! mode Observe are planned after that, never written. Where AWS refused a document written for
//! several grants, each of them is run alone, and one that AWS refuses alone is left out of the
//! batch (its status says `PolicyRejected`) until its spec changes. Then status (only when it
//! changed) and events; a deleted grant's finalizer goes once no place of it is left.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::Instrument;

use super::conditions::{READY, find, merge_condition};
use super::context::{Context, object_key};
use super::error::ControllerError;
use super::index::{Leaving, ResourceKey, Tracked};
use super::metrics::grant_outcome;
use super::queue::PolicyRun;
use super::verdict::{self, Next, Note, Verdict};
use crate::api::{
    CrossAccountGrant, DeletionPolicy, GrantMode, GrantedTarget, GranteeSide, PolicyKind,
    PolicyLocation, ResourceKind,
};
use crate::engine::{GrantInput, GrantReport, Operation, Placement, Reason, Report};

/// Held while a grant may have statements in AWS.
pub const GRANT_FINALIZER: &str = "xacct.dev/revoke";
const KIND: &str = "CrossAccountGrant";

/// Runs the key of `run`.
pub async fn reconcile(run: Arc<PolicyRun>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    let key = run.key.clone();
    let span = tracing::info_span!("run", resource = %key);
    run_key(&key, &ctx).instrument(span).await
}

async fn run_key(key: &ResourceKey, ctx: &Context) -> Result<Action, ControllerError> {
    let started = Instant::now();
    let input = ctx.index().run_input(key);
    if input.is_empty() {
        return Ok(Action::await_change());
    }
    let mut next = ctx.settings.resync;
    let mut later = |d: Duration| next = next.min(d);

    // The finalizer before any write: a grant without it could be deleted with its statements left.
    let mut wanted = Vec::with_capacity(input.wanted.len());
    for tracked in input.wanted {
        if has_finalizer(&tracked.grant) {
            wanted.push(tracked);
            continue;
        }
        match add_finalizer(&tracked.grant, ctx).await {
            Ok(()) => wanted.push(tracked),
            Err(e) => {
                tracing::warn!(grant = %object_key(&*tracked.grant), error = %e, "could not add the finalizer");
                ctx.metrics.reconciled(KIND, "error", started);
                later(ctx.retry_soon(&object_key(&*tracked.grant)));
            }
        }
    }

    let sorted = Sorted::new(wanted, input.leaving, ctx);

    // Until their places are recorded, the grants this run may write are not clean elsewhere.
    let writing: Vec<Arc<CrossAccountGrant>> = sorted
        .enforced
        .iter()
        .chain(&sorted.alone)
        .map(|t| t.grant.clone())
        .collect();
    ctx.index_mut()
        .begin_run(key, writing.iter().map(|g| g.as_ref()));
    let (touched, run_next) = converge(key, ctx, started, sorted).await;
    ctx.index_mut()
        .end_run(key, writing.iter().map(|g| g.as_ref()));
    later(run_next);
    for grant in touched {
        finish(&grant, ctx).await?;
    }
    Ok(Action::requeue(next))
}

/// The grants of a run, by what happens to them.
#[derive(Default)]
struct Sorted {
    /// Accounts not Ready: reported, not written (why, and when to look again).
    waiting: Vec<(Tracked, String, Duration)>,
    /// Written together in one engine run.
    enforced: Vec<Tracked>,
    /// Written each in an engine run of its own (AWS refused a document with its statements).
    alone: Vec<Tracked>,
    /// Mode Observe: planned, never written.
    observed: Vec<Tracked>,
    /// Revoked (or handed over) in the engine run of the enforced ones.
    leaving: Vec<Leaving>,
    /// Leaving with nothing to revoke here (deleted in mode Observe, or nothing left).
    done: Vec<Leaving>,
}

impl Sorted {
    fn new(wanted: Vec<Tracked>, leaving: Vec<Leaving>, ctx: &Context) -> Self {
        let mut sorted = Sorted::default();
        for tracked in wanted {
            if let Some((message, again)) = not_ready(&tracked.grant, ctx) {
                sorted.waiting.push((tracked, message, again));
            } else if tracked.grant.spec.mode == GrantMode::Observe {
                sorted.observed.push(tracked);
            } else if refused(&tracked) {
                sorted.alone.push(tracked);
            } else {
                sorted.enforced.push(tracked);
            }
        }
        for l in leaving {
            let observed = l.deleted && l.tracked.grant.spec.mode == GrantMode::Observe;
            if !observed && (l.spec_places || !l.tracked.here.is_empty()) {
                sorted.leaving.push(l);
            } else {
                sorted.done.push(l);
            }
        }
        sorted
    }
}

/// Runs the engine on `inputs` (never writing when `dry_run`), counted.
async fn engine_run(
    ctx: &Context,
    directory: &crate::engine::AccountDirectory,
    inputs: &[GrantInput],
    dry_run: bool,
) -> Arc<Report> {
    let report = ctx
        .engine
        .run(directory, inputs, Operation::Apply, dry_run)
        .await;
    ctx.metrics.engine_run();
    ctx.metrics.policy_sizes(&report);
    Arc::new(report)
}

/// The engine runs of the key and what they mean for each grant; returns the grants touched and
/// when to look again.
async fn converge(
    key: &ResourceKey,
    ctx: &Context,
    started: Instant,
    sorted: Sorted,
) -> (Vec<Arc<CrossAccountGrant>>, Duration) {
    let Sorted {
        waiting,
        enforced,
        mut alone,
        observed,
        leaving,
        done,
    } = sorted;
    let mut next = ctx.settings.resync;
    let mut later = |d: Duration| next = next.min(d);
    // One engine run for the grants written here and those leaving.
    let directory = ctx.account_directory();
    let mut inputs: Vec<GrantInput> = enforced.iter().map(|t| grant_input(t, ctx)).collect();
    inputs.extend(leaving.iter().map(|l| leaving_input(l, ctx)));
    let mut results: Vec<(Tracked, Option<GrantReport>, Arc<Report>)> = Vec::new();
    let mut leaving_results = Vec::new();
    if !inputs.is_empty() {
        let report = engine_run(ctx, &directory, &inputs, false).await;
        let together = if enforced.len() > 1 {
            refused_together(&report)
        } else {
            BTreeSet::new()
        };
        let mut reports = report.grants.iter().cloned();
        for tracked in enforced {
            let mine = reports.next();
            if mine.as_ref().is_some_and(|m| together.contains(&m.name)) {
                alone.push(tracked);
            } else {
                results.push((tracked, mine, report.clone()));
            }
        }
        for l in leaving {
            leaving_results.push((l, reports.next()));
        }
        if !together.is_empty() {
            tracing::warn!(
                grants = together.len(),
                "AWS refused a policy written for several grants at once; running them one by one"
            );
        }
    }
    // Each alone: the one at fault fails by itself.
    for tracked in alone {
        let report = engine_run(ctx, &directory, &[grant_input(&tracked, ctx)], false).await;
        let mine = report.grants.first().cloned();
        results.push((tracked, mine, report));
    }
    // Observe: planned against the policies as they are now, never written.
    if !observed.is_empty() {
        let inputs: Vec<GrantInput> = observed.iter().map(|t| grant_input(t, ctx)).collect();
        let report = engine_run(ctx, &directory, &inputs, true).await;
        let mut reports = report.grants.iter().cloned();
        for tracked in observed {
            results.push((tracked, reports.next(), report.clone()));
        }
    }
    let at = ctx.now().to_string();

    let mut touched: Vec<Arc<CrossAccountGrant>> = Vec::new();
    for (tracked, message, again) in waiting {
        let grant = tracked.grant.clone();
        let verdict = verdict::waiting(&tracked.status, &tracked.here, message);
        later(again.min(ctx.retry_soon(&object_key(&*grant))));
        settle(&grant, verdict, key, ctx, started).await;
        touched.push(grant);
    }
    for (tracked, mine, report) in results {
        let grant = tracked.grant.clone();
        let verdict = verdict::judge(
            &grant,
            &tracked.status,
            &tracked.here,
            &report,
            mine.as_ref(),
            &at,
        );
        let mut verdict = patience(&grant, verdict, ctx);
        if !verdict.stale.is_empty() {
            // Other principals: what the old ones had here goes.
            let stale = std::mem::take(&mut verdict.stale);
            let failed = revoke_stale(&tracked, stale, &directory, ctx).await;
            if !failed.is_empty() {
                verdict.here.extend(failed);
                verdict.next = Next::Retry;
            }
        }
        later(next_look(&grant, verdict.next, ctx));
        settle(&grant, verdict, key, ctx, started).await;
        touched.push(grant);
    }
    for (leaving, report) in leaving_results {
        if !left(&leaving, report.as_ref(), key, ctx).await {
            later(ctx.retry_soon(&key.to_string()));
        }
        touched.push(leaving.tracked.grant.clone());
    }
    for leaving in done {
        if leaving.tracked.grant.spec.mode == GrantMode::Observe {
            tracing::info!(grant = %object_key(&*leaving.tracked.grant), "mode Observe: leaving AWS as it is");
        }
        forget_here(&leaving, key, ctx);
        touched.push(leaving.tracked.grant.clone());
    }
    (touched, next)
}

/// The engine's input for a grant wanting the key, with the places its status records there
/// (revoked too when an account withdrew its consent).
fn grant_input(tracked: &Tracked, ctx: &Context) -> GrantInput {
    let mut input = GrantInput::new((*tracked.grant).clone(), object_key(&*tracked.grant));
    input.written = places_of(&tracked.here, ctx);
    input
}

/// The engine's input for a grant leaving the key: removed from its places there (and where its
/// spec says, for the key its spec names); handed over instead when deleted with Retain.
fn leaving_input(leaving: &Leaving, ctx: &Context) -> GrantInput {
    let tracked = &leaving.tracked;
    let mut input = grant_input(tracked, ctx);
    input.spec_places = leaving.spec_places;
    input.leaving = true;
    if !leaving.deleted {
        // What it wrote here is taken away even from a grant now set to Retain: it moved.
        input.grant.spec.deletion_policy = DeletionPolicy::Delete;
    }
    input
}

/// Records what the run found for a grant wanting the key: its status in the index, its events
/// and its metrics.
async fn settle(
    grant: &CrossAccountGrant,
    verdict: Verdict,
    key: &ResourceKey,
    ctx: &Context,
    started: Instant,
) {
    let generation = grant.metadata.generation;
    let now = ctx.now();
    let outcome = match verdict.next {
        Next::Awaiting => "waiting",
        _ => grant_outcome(verdict.ready.status, &verdict.ready.reason),
    };
    if let Some(corrected) = verdict.drift {
        ctx.metrics.drift(corrected);
    }
    let here = verdict.here;
    let role_arn = verdict.role_arn;
    let ready = verdict.ready;
    let drifted = verdict.drifted;
    // A grant changed during the run: its places here are recorded, its next run says the rest.
    let current = {
        let mut index = ctx.index_mut();
        let current = index.is_current(grant);
        index.update_status(grant, key, here, |status| {
            if !current {
                return;
            }
            let mut conditions = merge_condition(&status.conditions, ready, generation, now);
            if let Some(drifted) = drifted {
                conditions = merge_condition(&conditions, drifted, generation, now);
            }
            status.conditions = conditions;
            status.observed_generation = generation;
            status.role_arn = role_arn;
        });
        current
    };
    if current {
        publish(grant, &verdict.notes, ctx).await;
    }
    ctx.metrics.reconciled(KIND, outcome, started);
}

async fn publish(grant: &CrossAccountGrant, notes: &[Note], ctx: &Context) {
    let span = tracing::info_span!(
        "grant",
        kind = KIND,
        namespace = grant.namespace().unwrap_or_default(),
        name = grant.name_any()
    );
    for note in notes {
        ctx.publish(grant, note.type_, &note.reason, &note.message)
            .instrument(span.clone())
            .await;
    }
}

/// What a grant leaving the key came to; `false` when its statements there must be revoked again.
async fn left(
    leaving: &Leaving,
    report: Option<&GrantReport>,
    key: &ResourceKey,
    ctx: &Context,
) -> bool {
    let (done, note) = revocation(report, &leaving.tracked.here, !leaving.deleted);
    if done {
        forget_here(leaving, key, ctx);
    }
    publish(&leaving.tracked.grant, note.as_slice(), ctx).await;
    done
}

/// Whether the engine removed (or handed over) a grant's statements from `places`, and the event
/// saying so: `Revoked` naming them when the grant `moved` (its deletion is said once, when its
/// finalizer goes), `RevokeFailed` with the reason.
fn revocation(
    report: Option<&GrantReport>,
    places: &[GrantedTarget],
    moved: bool,
) -> (bool, Option<Note>) {
    let ready = report.and_then(GrantReport::ready);
    match ready {
        Some(c) if matches!(c.reason, Reason::Revoked | Reason::Retained) => {
            let note = (moved && !places.is_empty()).then(|| {
                let arns: Vec<&str> = places.iter().map(|t| t.arn.as_str()).collect();
                let message = format!(
                    "removed its statements from {}, which its spec no longer names",
                    arns.join(", ")
                );
                Note::new(EventType::Normal, "Revoked", message)
            });
            (true, note)
        }
        other => {
            let message = other.map_or("no result".to_string(), |c| {
                format!("{}: {}", c.reason, c.message)
            });
            (
                false,
                Some(Note::new(EventType::Warning, "RevokeFailed", message)),
            )
        }
    }
}

/// The grant has nothing left on `key` (and, its spec's key, where its spec says).
fn forget_here(leaving: &Leaving, key: &ResourceKey, ctx: &Context) {
    let grant = &leaving.tracked.grant;
    let mut index = ctx.index_mut();
    index.update_status(grant, key, Vec::new(), |_| {});
    if leaving.spec_places {
        index.spec_cleaned(grant);
    }
}

/// After the run: a deleted grant with nothing left loses its finalizer; a live one gets its
/// status written when it changed.
async fn finish(grant: &CrossAccountGrant, ctx: &Context) -> Result<(), ControllerError> {
    let api: Api<CrossAccountGrant> =
        Api::namespaced(ctx.client.clone(), &grant.namespace().unwrap_or_default());
    if grant.metadata.deletion_timestamp.is_some() {
        if ctx.index().clean(grant) && has_finalizer(grant) {
            remove_finalizer(grant, &api).await?;
            let (reason, note) = match (grant.spec.mode, grant.spec.deletion_policy) {
                (GrantMode::Observe, _) => ("Released", "mode Observe: AWS was left as it is"),
                (_, DeletionPolicy::Retain) => (
                    "Retained",
                    "left this grant's statements in place, handed over (no longer xacct's)",
                ),
                (_, DeletionPolicy::Delete) => ("Revoked", "removed this grant's statements"),
            };
            publish(grant, &[Note::new(EventType::Normal, reason, note)], ctx).await;
        }
        return Ok(());
    }
    // Another run may change the status meanwhile: written until the latest is.
    loop {
        let unwritten = ctx.index().unwritten_status(grant);
        let Some((version, status)) = unwritten else {
            return Ok(());
        };
        ctx.write_status(api.clone(), grant, None, status).await?;
        ctx.index_mut().status_written(grant, version);
    }
}

/// Why a grant's accounts cannot be written in yet, and when to look again: the resource's, and
/// the grantee's when xacct writes the grantee side there.
fn not_ready(grant: &CrossAccountGrant, ctx: &Context) -> Option<(String, Duration)> {
    let grantee = grant
        .spec
        .grantee
        .account
        .as_deref()
        .filter(|_| grant.spec.effective_grantee_side() == GranteeSide::Manage);
    ctx.account_not_ready(&grant.spec.resource.account)
        .or_else(|| grantee.and_then(|a| ctx.account_not_ready(a)))
}

fn next_look(grant: &CrossAccountGrant, next: Next, ctx: &Context) -> Duration {
    let key = object_key(grant);
    match next {
        Next::As(reason) => ctx.next_look(&key, reason, ctx.settings.resync),
        Next::Retry | Next::Awaiting => ctx.retry_soon(&key),
        Next::AtResync => ctx.settings.resync,
    }
}

/// A grant AWS refused for a principal it does not know is tried again soon while
/// `--principal-wait` lasts, counted from its first such refusal at this generation.
fn patience(grant: &CrossAccountGrant, verdict: Verdict, ctx: &Context) -> Verdict {
    if verdict.ready.reason != Reason::PrincipalNotFound.as_str() {
        return verdict;
    }
    let failure = format!(
        "{}/{}",
        grant.metadata.generation.unwrap_or_default(),
        verdict.ready.reason
    );
    let now = ctx.now();
    let since = ctx.backoff.failing_since(&object_key(grant), &failure, now);
    verdict::unknown_principal(verdict, since, now, ctx.engine.settings().principal_wait)
}

/// Revokes the grant's statements from `stale` (places on the key it no longer wants, its
/// principals changed); returns those where that failed.
async fn revoke_stale(
    tracked: &Tracked,
    stale: Vec<GrantedTarget>,
    directory: &crate::engine::AccountDirectory,
    ctx: &Context,
) -> Vec<GrantedTarget> {
    let leaving = Leaving {
        tracked: Tracked {
            here: stale,
            ..tracked.clone()
        },
        deleted: false,
        spec_places: false,
    };
    let report = engine_run(ctx, directory, &[leaving_input(&leaving, ctx)], false).await;
    let (done, note) = revocation(report.grants.first(), &leaving.tracked.here, true);
    publish(&tracked.grant, note.as_slice(), ctx).await;
    if done {
        Vec::new()
    } else {
        leaving.tracked.here
    }
}

/// The places `targets` name, each once.
fn places_of(targets: &[GrantedTarget], ctx: &Context) -> Vec<Placement> {
    let mut places: Vec<Placement> = Vec::new();
    for target in targets {
        let place = placement(target, ctx);
        if !places.contains(&place) {
            places.push(place);
        }
    }
    places
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
        .unwrap_or_else(|| ctx.key_of(resource).region);
    Placement { location, region }
}

/// Whether AWS refused a policy with the grant's statements at its current generation, as its
/// status says: it runs alone, outside the batch, until its spec changes.
fn refused(tracked: &Tracked) -> bool {
    let status = &tracked.status;
    status.observed_generation == tracked.grant.metadata.generation
        && find(&status.conditions, READY).is_some_and(|c| {
            c.status == "False"
                && Reason::parse(&c.reason).is_some_and(Reason::may_be_one_grants_fault)
        })
}

/// Grants (`namespace/name`) on a policy that AWS refused to write for a reason one of them may
/// have caused (not throttling, not access denied), where the document held several grants.
pub fn refused_together(report: &Report) -> BTreeSet<String> {
    report
        .targets
        .iter()
        .filter(|t| t.grants.len() > 1 && t.action != "none" && !t.done)
        .filter(|t| {
            t.error
                .as_ref()
                .is_some_and(|e| !e.transient && e.reason.may_be_one_grants_fault())
        })
        .flat_map(|t| t.grants.iter().cloned())
        .collect()
}

fn has_finalizer(grant: &CrossAccountGrant) -> bool {
    grant.finalizers().iter().any(|f| f == GRANT_FINALIZER)
}

/// Adds the finalizer (the patch fails if the finalizers changed meanwhile), and tells the index
/// the grant has it.
async fn add_finalizer(grant: &CrossAccountGrant, ctx: &Context) -> Result<(), kube::Error> {
    let api: Api<CrossAccountGrant> =
        Api::namespaced(ctx.client.clone(), &grant.namespace().unwrap_or_default());
    let patch = match &grant.metadata.finalizers {
        None => serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [GRANT_FINALIZER]},
        ]),
        Some(list) => serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": list},
            {"op": "add", "path": "/metadata/finalizers/-", "value": GRANT_FINALIZER},
        ]),
    };
    let updated = patch_finalizers(grant, &api, patch).await?;
    ctx.index_mut().apply_grant(updated);
    Ok(())
}

/// Removes the finalizer: the grant is gone.
async fn remove_finalizer(
    grant: &CrossAccountGrant,
    api: &Api<CrossAccountGrant>,
) -> Result<(), kube::Error> {
    let Some(position) = grant.finalizers().iter().position(|f| f == GRANT_FINALIZER) else {
        return Ok(());
    };
    let patch = serde_json::json!([
        {"op": "test", "path": format!("/metadata/finalizers/{position}"), "value": GRANT_FINALIZER},
        {"op": "remove", "path": format!("/metadata/finalizers/{position}")},
    ]);
    match patch_finalizers(grant, api, patch).await {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Applies a JSON patch of the grant's finalizers (its `test` operation makes it fail when they
/// changed since the grant was read).
async fn patch_finalizers(
    grant: &CrossAccountGrant,
    api: &Api<CrossAccountGrant>,
    patch: serde_json::Value,
) -> Result<CrossAccountGrant, kube::Error> {
    let patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(kube::Error::SerdeError)?;
    api.patch(
        &grant.name_any(),
        &PatchParams::default(),
        &Patch::Json::<()>(patch),
    )
    .await
}
