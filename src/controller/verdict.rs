//! What one run's report means for one grant wanting the run's key: its conditions, the places its
//! status records there, the events to publish and when to look again. Pure: the run does the I/O.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::events::EventType;

use super::conditions::{ConditionUpdate, DRIFTED, READY, find, is_ready};
use crate::api::{
    CrossAccountGrant, CrossAccountGrantStatus, GrantMode, GrantedTarget, PolicySize,
};
use crate::engine::{GrantReport, Reason, Report};

/// An event to publish about the grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Normal or Warning.
    pub type_: EventType,
    /// CamelCase reason.
    pub reason: String,
    /// For people.
    pub message: String,
}

impl Note {
    /// A note of `type_` with `reason` and `message`.
    pub fn new(type_: EventType, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Note {
            type_,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// When to look at the grant again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// As its reason says ([`Reason::class`]).
    As(Reason),
    /// Soon, with backoff: something is left to undo.
    Retry,
    /// Soon, with backoff: waiting for AWS to catch up (a principal IAM may not have propagated
    /// yet); not a failure yet.
    Awaiting,
    /// At the resync, or when the grant or its accounts change.
    AtResync,
}

/// A grant AWS refused for a principal it does not know, refused since `since` (at this
/// generation): tried again soon with growing waits until `wait` has passed, then reported as
/// failed and looked at again only at the resync or on a change. The message says until when (a
/// time that does not move, so that retries write no status).
pub fn unknown_principal(
    mut verdict: Verdict,
    since: Timestamp,
    now: Timestamp,
    wait: Duration,
) -> Verdict {
    let until = since
        .checked_add(SignedDuration::try_from(wait).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX);
    let until = Timestamp::from_second(until.as_second()).unwrap_or(until);
    let wait_text = humantime::format_duration(wait);
    if now < until {
        verdict.ready.message = format!(
            "{}; trying again with growing waits until {until} (--principal-wait {wait_text})",
            verdict.ready.message
        );
        verdict.next = Next::Awaiting;
    } else {
        verdict.ready.message = format!(
            "{}; still refused after {wait_text} (--principal-wait): tried again only at the resync or when the grant changes",
            verdict.ready.message
        );
        verdict.next = Next::AtResync;
    }
    verdict
}

/// What the run decided for the grant.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Its Ready condition.
    pub ready: ConditionUpdate,
    /// Its Drifted condition, when it changes.
    pub drifted: Option<ConditionUpdate>,
    /// The places its status records on the run's key.
    pub here: Vec<GrantedTarget>,
    /// Places on the run's key it had and no longer wants (other principals): to revoke.
    pub stale: Vec<GrantedTarget>,
    /// Its role (SageMakerEndpoint grants).
    pub role_arn: Option<String>,
    /// Events to publish.
    pub notes: Vec<Note>,
    /// Drift seen: `Some(corrected)`.
    pub drift: Option<bool>,
    /// When to look again.
    pub next: Next,
}

/// Judges `report` (the engine's for `grant`, in the run's `run` report; `None`: none came) for a
/// grant whose status was `previous` and which had `here` on the run's key; `at` is the run's end.
pub fn judge(
    grant: &CrossAccountGrant,
    previous: &CrossAccountGrantStatus,
    here: &[GrantedTarget],
    run: &Report,
    report: Option<&GrantReport>,
    at: &str,
) -> Verdict {
    let observe = grant.spec.mode == GrantMode::Observe;
    let Some(report) = report else {
        return keeping(
            previous,
            here,
            ConditionUpdate::reported(None),
            Reason::Unknown,
        );
    };
    let (status, reason) = report
        .ready()
        .map_or(("Unknown", Reason::Unknown), |c| (c.status, c.reason));
    let mut ready = ConditionUpdate::reported(report.ready());
    if reason == Reason::Converged && !observe {
        // Found as an earlier run of this generation left it: the condition stays as it is, so a
        // resync writes no status.
        let kept = find(&previous.conditions, READY).filter(|c| {
            c.status == "True" && previous.observed_generation == grant.metadata.generation
        });
        if let Some(kept) = kept {
            ready.reason = kept.reason.clone();
            ready.message = kept.message.clone();
        }
    }
    let mut verdict = keeping(previous, here, ready, reason);
    let new_reason = find(&previous.conditions, READY).is_none_or(|c| c.reason != reason.as_str());
    if reason.withdraws_consent() && !observe {
        // The engine removed its statements wherever it could; what it reports is where that
        // failed, retried with backoff.
        verdict.here = granted_targets(grant, report, here, None);
        verdict.role_arn = None;
        if report.changes > 0 && !new_reason {
            // A new reason is announced with its message below; this says it when the
            // revocation comes later (it failed at first).
            let message = format!("{}: {}", reason.as_str(), verdict.ready.message);
            verdict
                .notes
                .push(Note::new(EventType::Warning, "AccessRevoked", message));
        }
        if !verdict.here.is_empty() {
            verdict.next = Next::Retry;
        }
    } else if report.targets.is_empty() || (status == "False" && !observe) {
        // Failed (or nothing to do): what it has here stays until it converges. A bad spec says
        // so: deleting access on a typo would be worse.
        if reason == Reason::InvalidSpec && !observe {
            verdict.ready.message = format!("{}; {}", verdict.ready.message, left_in_place(here));
        }
    } else {
        let changed = changes_text(run, report);
        let (drifted, drift, note) = drift(grant, previous, report.changes, &changed);
        verdict.drifted = drifted;
        verdict.drift = drift;
        verdict.notes.extend(note);
        if !observe {
            let written_at = (report.changes > 0).then(|| at.to_string());
            let current = granted_targets(grant, report, here, written_at);
            verdict.stale = here
                .iter()
                .filter(|t| !current.iter().any(|c| same_place(c, t)))
                .cloned()
                .collect();
            verdict.here = current;
            verdict.role_arn = report.role_arn.clone();
        }
    }
    if let Some(note) = announce(previous, &verdict.ready) {
        verdict.notes.insert(0, note);
    }
    verdict
}

/// The verdict for a grant whose accounts are not Ready (`message` says which): what it has here
/// stays, unwritten.
pub fn waiting(
    previous: &CrossAccountGrantStatus,
    here: &[GrantedTarget],
    message: String,
) -> Verdict {
    let ready = ConditionUpdate::ready("False", Reason::AccountNotReady.as_str(), message);
    let notes = announce(previous, &ready).into_iter().collect();
    Verdict {
        notes,
        ..keeping(previous, here, ready, Reason::AccountNotReady)
    }
}

/// A verdict that sets `ready` and keeps the rest as `previous` and `here` say.
fn keeping(
    previous: &CrossAccountGrantStatus,
    here: &[GrantedTarget],
    ready: ConditionUpdate,
    reason: Reason,
) -> Verdict {
    Verdict {
        ready,
        drifted: None,
        here: here.to_vec(),
        stale: Vec::new(),
        role_arn: previous.role_arn.clone(),
        notes: Vec::new(),
        drift: None,
        next: Next::As(reason),
    }
}

/// The Warning event a failure gets once per change of reason.
fn announce(previous: &CrossAccountGrantStatus, ready: &ConditionUpdate) -> Option<Note> {
    let new_reason = find(&previous.conditions, READY).is_none_or(|c| c.reason != ready.reason);
    (ready.status == "False" && new_reason).then(|| {
        Note::new(
            EventType::Warning,
            ready.reason.clone(),
            ready.message.clone(),
        )
    })
}

/// The Drifted condition, whether drift was seen (`Some(corrected)`), and the event.
fn drift(
    grant: &CrossAccountGrant,
    previous: &CrossAccountGrantStatus,
    changes: usize,
    changed: &str,
) -> (Option<ConditionUpdate>, Option<bool>, Option<Note>) {
    let generation = grant.metadata.generation;
    let was_converged =
        previous.observed_generation == generation && is_ready(&previous.conditions);
    let was_drifted = find(&previous.conditions, DRIFTED).is_some_and(|c| c.status == "True");
    let condition = |status, reason: &str, message: String| ConditionUpdate {
        type_: DRIFTED,
        status,
        reason: reason.into(),
        message,
    };
    if grant.spec.mode == GrantMode::Observe {
        if changes > 0 && (was_converged || was_drifted) {
            let message = format!("this grant's statements differ in {changed}");
            // Counted and announced once per episode of drift, not on every resync.
            let note = (!was_drifted)
                .then(|| Note::new(EventType::Warning, "DriftDetected", message.clone()));
            let drift = (!was_drifted).then_some(false);
            (
                Some(condition("True", "DriftDetected", message)),
                drift,
                note,
            )
        } else if was_drifted {
            let update = condition("False", "NoDrift", "the policy matches again".into());
            (Some(update), None, None)
        } else {
            (None, None, None)
        }
    } else if changes > 0 && was_converged {
        let message = format!("restored this grant's statements in {changed}");
        let note = Note::new(EventType::Normal, "DriftCorrected", message.clone());
        let update = condition("False", "DriftCorrected", message);
        (Some(update), Some(true), Some(note))
    } else if changes > 0 {
        let note = Note::new(
            EventType::Normal,
            "Applied",
            format!("wrote its statements in {changed}"),
        );
        (None, None, Some(note))
    } else {
        (None, None, None)
    }
}

/// Whether two targets name the same policy in the same region.
pub fn same_place(a: &GrantedTarget, b: &GrantedTarget) -> bool {
    a.arn == b.arn && a.policy == b.policy && a.region == b.region
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
                size: shown_size(
                    before.and_then(|k| k.size.as_ref()),
                    t.size.as_ref(),
                    written_at.is_some(),
                ),
                last_applied,
                generation,
            }
        })
        .collect()
}

/// The policy size a grant's status shows: the size measured now when the status is written
/// anyway or the policy moved to another tenth of its limit (or to another limit), else the one
/// shown before, so that other grants' changes to a shared policy do not rewrite the status of
/// every grant on it. The gauge `xacct_policy_size_ratio` follows every change.
fn shown_size(
    shown: Option<&PolicySize>,
    now: Option<&PolicySize>,
    rewritten: bool,
) -> Option<PolicySize> {
    let tenth = |s: &PolicySize| (s.ratio() * 10.0).floor() as u64;
    match (shown, now) {
        (Some(shown), Some(now))
            if !rewritten
                && shown.limit == now.limit
                && shown.unit == now.unit
                && tenth(shown) == tenth(now) =>
        {
            Some(shown.clone())
        }
        (shown, now) => now.or(shown).cloned(),
    }
}

/// What changed for `grant` in `report`, in a few words: each policy it changed, once, with its
/// Sids there by kind of change (`arn (added A, B; removed C)`).
pub fn changes_text(report: &Report, grant: &GrantReport) -> String {
    let policies: Vec<String> = report
        .targets
        .iter()
        .filter_map(|t| {
            let mut by_kind: std::collections::BTreeMap<String, Vec<&str>> =
                std::collections::BTreeMap::new();
            for c in t.changes.iter().filter(|c| c.grant == grant.name) {
                let sids = by_kind
                    .entry(format!("{:?}", c.change).to_lowercase())
                    .or_default();
                if !sids.contains(&c.sid.as_str()) {
                    sids.push(&c.sid);
                }
            }
            (!by_kind.is_empty()).then(|| {
                let kinds: Vec<String> = by_kind
                    .iter()
                    .map(|(kind, sids)| format!("{kind} {}", sids.join(", ")))
                    .collect();
                format!("{} ({})", t.arn, kinds.join("; "))
            })
        })
        .collect();
    if policies.is_empty() {
        "no statement changes".into()
    } else {
        policies.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Condition;
    use crate::aws::{AwsError, AwsErrorKind};
    use crate::controller::fixtures::{self, granted, place};
    use crate::engine::{ChangeReport, ConditionReport, GrantError, TargetReport};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const AT: &str = "2027-01-15T08:00:00Z";

    /// The grant `batch/a` on `lake`, at generation 2, in `mode`.
    fn grant(mode: GrantMode) -> CrossAccountGrant {
        let mut g = fixtures::grant("a", "lake");
        g.metadata.generation = Some(2);
        g.spec.mode = mode;
        g
    }

    fn grant_report(reason: Reason, status: &'static str, changes: usize) -> GrantReport {
        GrantReport {
            name: "batch/a".into(),
            origin: String::new(),
            targets: vec![place("lake")],
            role_arn: None,
            changes,
            conditions: vec![ConditionReport {
                type_: "Ready",
                status,
                reason,
                message: "what the engine says".into(),
            }],
        }
    }

    /// `action` on `lake`'s policy holding `grants` (`batch/<g>`), failed with `error` if any.
    fn target(
        grants: &[&str],
        action: &'static str,
        done: bool,
        error: Option<AwsErrorKind>,
    ) -> TargetReport {
        TargetReport {
            grants: grants.iter().map(|g| format!("batch/{g}")).collect(),
            changes: vec![change("XacctA", crate::policy::ChangeKind::Added)],
            error: error.map(|kind| {
                let error = AwsError::new(kind, "s3:PutBucketPolicy", "222222222222", "no");
                (&GrantError::Aws(error)).into()
            }),
            ..fixtures::target_report("lake", action, done)
        }
    }

    fn change(sid: &str, change: crate::policy::ChangeKind) -> ChangeReport {
        ChangeReport {
            sid: sid.into(),
            grant: "batch/a".into(),
            change,
            before: None,
            after: None,
        }
    }

    fn status(reason: &str, ready: &str, generation: i64) -> CrossAccountGrantStatus {
        CrossAccountGrantStatus {
            observed_generation: Some(generation),
            conditions: vec![Condition {
                type_: READY.into(),
                status: ready.into(),
                reason: reason.into(),
                message: String::new(),
                observed_generation: Some(generation),
                last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            }],
            targets: vec![granted("lake", generation)],
            role_arn: None,
        }
    }

    /// `judge` for a grant whose places on the key are those `previous` records.
    fn judged(
        g: &CrossAccountGrant,
        previous: &CrossAccountGrantStatus,
        targets: Vec<TargetReport>,
        report: &GrantReport,
    ) -> Verdict {
        judge(
            g,
            previous,
            &previous.targets,
            &fixtures::report(targets),
            Some(report),
            AT,
        )
    }

    #[test]
    fn a_first_write_is_announced_as_applied_and_recorded_with_its_time_and_generation() {
        let g = grant(GrantMode::Enforce);
        let report = grant_report(Reason::Applied, "True", 2);
        let v = judged(
            &g,
            &Default::default(),
            vec![target(&["a"], "put", true, None)],
            &report,
        );
        assert_eq!(v.ready.reason, "Applied");
        assert_eq!(v.notes.len(), 1);
        assert_eq!(v.notes[0].reason, "Applied");
        assert_eq!(
            v.notes[0].message,
            "wrote its statements in arn:aws:s3:::lake (added XacctA)"
        );
        assert_eq!(v.here.len(), 1);
        assert_eq!(v.here[0].last_applied.as_deref(), Some(AT));
        assert_eq!(v.here[0].generation, Some(2));
        assert_eq!((v.drift, v.next), (None, Next::As(Reason::Applied)));
    }

    #[test]
    fn a_converged_grant_with_changes_was_drifted_and_corrected() {
        let g = grant(GrantMode::Enforce);
        let previous = status("Converged", "True", 2);
        let report = grant_report(Reason::Applied, "True", 1);
        let v = judged(
            &g,
            &previous,
            vec![target(&["a"], "put", true, None)],
            &report,
        );
        assert_eq!(v.drift, Some(true));
        assert_eq!(v.notes[0].reason, "DriftCorrected");
        assert_eq!(
            v.drifted.as_ref().map(|d| d.reason.as_str()),
            Some("DriftCorrected")
        );
    }

    #[test]
    fn a_steady_check_changes_nothing_it_records() {
        let g = grant(GrantMode::Enforce);
        let previous = status("Converged", "True", 2);
        let report = grant_report(Reason::Converged, "True", 0);
        let v = judged(&g, &previous, vec![], &report);
        assert!(v.notes.is_empty() && v.drifted.is_none());
        assert_eq!(v.here, previous.targets, "no new time: nothing to write");
    }

    #[test]
    fn a_check_after_a_write_keeps_the_applied_condition_until_the_generation_changes() {
        let mut g = grant(GrantMode::Enforce);
        let previous = status("Applied", "True", 2);
        let report = grant_report(Reason::Converged, "True", 0);
        let v = judged(&g, &previous, vec![], &report);
        assert_eq!(v.ready.reason, "Applied", "no status write at a resync");
        g.metadata.generation = Some(3);
        let v = judged(&g, &previous, vec![], &report);
        assert_eq!(
            v.ready.reason, "Converged",
            "a new generation found in place"
        );
    }

    #[test]
    fn other_principals_leave_the_old_places_to_revoke() {
        let g = grant(GrantMode::Enforce);
        let previous = CrossAccountGrantStatus {
            targets: vec![granted("lake", 1), granted("old-role", 1)],
            ..status("Converged", "True", 1)
        };
        let report = grant_report(Reason::Applied, "True", 1);
        let v = judged(&g, &previous, vec![], &report);
        assert_eq!(v.stale.len(), 1);
        assert_eq!(v.stale[0].arn, "arn:aws:s3:::old-role");
        assert_eq!(v.here.len(), 1);
    }

    #[test]
    fn an_invalid_spec_keeps_its_places_and_says_which_generation_they_hold() {
        let g = grant(GrantMode::Enforce);
        let previous = status("Converged", "True", 1);
        let mut report = grant_report(Reason::InvalidSpec, "False", 0);
        report.targets.clear();
        let v = judged(&g, &previous, vec![], &report);
        assert_eq!(v.here, previous.targets);
        assert!(v.ready.message.ends_with(
            "the statements written for generation 1 are left in place until the spec is fixed or the grant deleted"
        ), "{}", v.ready.message);
        assert_eq!(v.notes[0].type_, EventType::Warning);
        assert_eq!(v.notes[0].reason, "InvalidSpec");
        // Said once: the same reason again publishes nothing.
        let again = CrossAccountGrantStatus {
            ..status("InvalidSpec", "False", 2)
        };
        let v = judged(&g, &again, vec![], &report);
        assert!(v.notes.is_empty());
    }

    #[test]
    fn withdrawn_consent_keeps_only_where_removal_failed_and_retries_there() {
        let g = grant(GrantMode::Enforce);
        let previous = status("NamespaceNotAllowed", "False", 2);
        let mut report = grant_report(Reason::NamespaceNotAllowed, "False", 2);
        let v = judged(&g, &previous, vec![], &report);
        assert_eq!(v.next, Next::Retry, "a place is left");
        assert_eq!(
            v.notes[0].reason, "AccessRevoked",
            "the later revocation is said"
        );
        report.targets.clear();
        let v = judged(&g, &previous, vec![], &report);
        assert!(v.here.is_empty());
        assert_eq!(v.next, Next::As(Reason::NamespaceNotAllowed));
    }

    #[test]
    fn observe_reports_drift_once_and_never_records_places() {
        let g = grant(GrantMode::Observe);
        let previous = CrossAccountGrantStatus {
            targets: Vec::new(),
            ..status("Converged", "True", 2)
        };
        let report = grant_report(Reason::Pending, "False", 2);
        let v = judged(&g, &previous, vec![], &report);
        assert_eq!(v.drift, Some(false));
        assert_eq!(
            v.notes
                .iter()
                .map(|n| n.reason.as_str())
                .collect::<Vec<_>>(),
            ["Pending", "DriftDetected"]
        );
        assert!(v.here.is_empty());
    }

    #[test]
    fn the_changes_text_names_each_changed_policy_once_with_its_sids_once() {
        let mut bucket = target(&["a"], "put", true, None);
        bucket.changes = vec![
            change("XacctShared1", crate::policy::ChangeKind::Changed),
            change("XacctShared1", crate::policy::ChangeKind::Changed),
            change("XacctB", crate::policy::ChangeKind::Added),
        ];
        let mut role = target(&["a"], "none", true, None);
        role.arn = "arn:aws:iam::111111111111:role/reader".into();
        role.changes.clear();
        let a = grant_report(Reason::Applied, "True", 3);
        assert_eq!(
            changes_text(&fixtures::report(vec![bucket, role]), &a),
            "arn:aws:s3:::lake (added XacctB; changed XacctShared1)"
        );
        let mut b = a;
        b.name = "batch/b".into();
        assert_eq!(
            changes_text(
                &fixtures::report(vec![target(&["a"], "put", true, None)]),
                &b
            ),
            "no statement changes"
        );
    }

    #[test]
    fn only_a_refused_write_shared_by_several_grants_sets_them_apart() {
        use super::super::run::refused_together;
        // A write of `action` on a policy holding `grants`, failed with `error`.
        let refused = |grants: &[&str], action, error| {
            refused_together(&fixtures::report(vec![target(
                grants,
                action,
                false,
                Some(error),
            )]))
        };
        assert_eq!(
            refused(&["a", "b"], "put", AwsErrorKind::InvalidPolicy),
            std::collections::BTreeSet::from(["batch/a".to_string(), "batch/b".to_string()])
        );
        // One grant: alone it would fail the same.
        assert!(refused(&["a"], "put", AwsErrorKind::InvalidPolicy).is_empty());
        // Throttling, access denied: not one grant's fault.
        assert!(refused(&["a", "b"], "put", AwsErrorKind::Throttled).is_empty());
        assert!(refused(&["a", "b"], "put", AwsErrorKind::AccessDenied).is_empty());
        // A policy that could not be read was never written.
        assert!(refused(&["a", "b"], "none", AwsErrorKind::Other).is_empty());
        // Written: nothing refused.
        let written = refused_together(&fixtures::report(vec![target(
            &["a", "b"],
            "put",
            true,
            None,
        )]));
        assert!(written.is_empty());
    }

    #[test]
    fn a_status_shows_a_new_size_only_when_written_anyway_or_in_another_tenth_of_the_limit() {
        let size = |used| PolicySize {
            used,
            limit: 20_480,
            unit: "bytes".into(),
        };
        let shown = size(8_300); // 40 %
        // Another grant's statement added: the same tenth, not worth a status write.
        assert_eq!(
            shown_size(Some(&shown), Some(&size(9_000)), false),
            Some(shown.clone())
        );
        // Written anyway: the size of now.
        assert_eq!(
            shown_size(Some(&shown), Some(&size(9_000)), true),
            Some(size(9_000))
        );
        // Past a tenth (here 80 %, the suggested alert), every grant on it shows it.
        assert_eq!(
            shown_size(Some(&shown), Some(&size(16_400)), false),
            Some(size(16_400))
        );
        // Another limit (a trust policy quota raised), or first seen.
        let raised = PolicySize {
            limit: 4_096,
            ..size(1_000)
        };
        assert_eq!(
            shown_size(Some(&size(1_000)), Some(&raised), false),
            Some(raised.clone())
        );
        assert_eq!(shown_size(None, Some(&raised), false), Some(raised.clone()));
        // Not measured this time (the policy could not be read): what was shown stays.
        assert_eq!(shown_size(Some(&shown), None, false), Some(shown.clone()));
    }

    #[test]
    fn an_unknown_principal_is_awaited_until_the_wait_is_over_then_failed() {
        let refused = |message: &str| Verdict {
            ready: ConditionUpdate::ready("False", "PrincipalNotFound", message.into()),
            ..keeping(
                &CrossAccountGrantStatus::default(),
                &[],
                ConditionUpdate::ready("False", "", String::new()),
                Reason::PrincipalNotFound,
            )
        };
        let t = |s| Timestamp::from_second(s).expect("a time");
        let wait = Duration::from_secs(300);
        let v = unknown_principal(refused("refused"), t(1_000), t(1_120), wait);
        assert_eq!(v.next, Next::Awaiting);
        assert!(
            v.ready.message.starts_with("refused; trying again")
                && v.ready.message.contains(&t(1_300).to_string()),
            "{}",
            v.ready.message
        );
        // The same message at every retry: no status write for it.
        let again = unknown_principal(refused("refused"), t(1_000), t(1_250), wait);
        assert_eq!(again.ready.message, v.ready.message);
        let over = unknown_principal(refused("refused"), t(1_000), t(1_300), wait);
        assert_eq!(over.next, Next::AtResync);
        assert!(
            over.ready.message.contains("still refused after 5m"),
            "{}",
            over.ready.message
        );
        assert_eq!(over.ready.reason, "PrincipalNotFound");
    }
}
