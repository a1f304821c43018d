//! What a run did (or would do), per target and per grant, with the status conditions a
//! Kubernetes status would carry. Serializes as the CLI's `-o json`.

use serde::Serialize;
use serde_json::Value;

use super::error::GrantError;
use super::plan::{GrantState, Plan, PlannedTarget, TargetPlan};
use super::{Operation, Reason};
use crate::api::PolicySize;
use crate::policy::{ChangeKind, GrantOwner, RELEASED_SID_PREFIX, SizeLimit, WriteDecision};

/// The result of a plan, apply or delete.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `apply` or `delete`.
    pub operation: &'static str,
    /// True for `plan`: nothing was written.
    pub dry_run: bool,
    /// Per policy.
    pub targets: Vec<TargetReport>,
    /// Per grant, in input order.
    pub grants: Vec<GrantReport>,
}

/// One policy.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    /// The resource's ARN.
    pub arn: String,
    /// The AwsAccount's name.
    pub account: String,
    /// Its account id.
    pub account_id: String,
    /// Resource kind.
    pub kind: String,
    /// `none`, `put` or `delete`.
    pub action: &'static str,
    /// Whether the action was carried out (false in a plan and on error).
    pub done: bool,
    /// Grants (`namespace/name`) converged here.
    pub grants: Vec<String>,
    /// Owned statements added, changed or removed.
    pub changes: Vec<ChangeReport>,
    /// The document's size after the run against the service's limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<PolicySize>,
    /// Things worth knowing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
}

/// A statement change.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeReport {
    /// The statement's Sid.
    pub sid: String,
    /// The grant owning it.
    pub grant: String,
    /// added, changed or removed.
    pub change: ChangeKind,
    /// The statement before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The statement after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// An error with its status reason.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorReport {
    /// Status/event reason.
    pub reason: Reason,
    /// What is wrong.
    pub message: String,
    /// Whether trying again later may succeed without changing anything.
    pub transient: bool,
}

impl From<&GrantError> for ErrorReport {
    fn from(e: &GrantError) -> Self {
        ErrorReport {
            reason: e.reason(),
            message: e.to_string(),
            transient: e.is_transient(),
        }
    }
}

/// One grant.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantReport {
    /// `namespace/name`.
    pub name: String,
    /// Where it came from.
    pub origin: String,
    /// Every policy it has statements in after this run (the resource's first, then the grantee
    /// side), with the Sids it owns there; empty when it failed or was retained.
    pub targets: Vec<PlannedTarget>,
    /// SageMakerEndpoint grants: the role the grantee assumes to invoke the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// How many of its statements change.
    pub changes: usize,
    /// The conditions its Kubernetes status would carry.
    pub conditions: Vec<ConditionReport>,
}

/// A `metav1.Condition`, without the timestamps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionReport {
    /// Condition type, `Ready`.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// `True` or `False`.
    pub status: &'static str,
    /// CamelCase reason.
    pub reason: Reason,
    /// For people.
    pub message: String,
}

impl GrantReport {
    /// The `Ready` condition.
    pub fn ready(&self) -> Option<&ConditionReport> {
        self.conditions.iter().find(|c| c.type_ == "Ready")
    }
}

impl Report {
    /// A report of a plan that was not applied.
    pub fn from_plan(plan: &Plan) -> Self {
        Self::build(plan, true)
    }

    /// A report of an applied plan.
    pub fn from_applied(plan: &Plan) -> Self {
        Self::build(plan, false)
    }

    /// Whether anything failed.
    pub fn has_errors(&self) -> bool {
        self.targets.iter().any(|t| t.error.is_some())
            || self.grants.iter().any(|g| {
                g.ready()
                    .is_some_and(|c| c.status != "True" && c.reason.is_failure())
            })
    }

    /// Whether anything would change (or changed).
    pub fn has_changes(&self) -> bool {
        self.targets
            .iter()
            .any(|t| t.action != "none" && t.error.is_none())
    }

    fn build(plan: &Plan, dry_run: bool) -> Self {
        let targets: Vec<TargetReport> = plan.targets.iter().map(target_report).collect();
        let grants = plan
            .grants
            .iter()
            .map(|g| {
                let (targets, role_arn, changes, ready) = match &g.state {
                    GrantState::Failed(e) => (Vec::new(), None, 0, failed(e)),
                    GrantState::Planned {
                        owner,
                        targets,
                        role_arn,
                        retained,
                        withdrawn,
                        operation,
                    } => planned_grant(
                        plan,
                        *operation,
                        owner,
                        targets,
                        role_arn,
                        *retained,
                        withdrawn.as_ref(),
                        dry_run,
                    ),
                };
                GrantReport {
                    name: g.name.clone(),
                    origin: g.origin.clone(),
                    targets,
                    role_arn,
                    changes,
                    conditions: vec![ready],
                }
            })
            .collect();
        Report {
            operation: match plan.operation {
                Operation::Apply => "apply",
                Operation::Delete => "delete",
            },
            dry_run,
            targets,
            grants,
        }
    }
}

/// A planned grant's report: the policies it has statements in after the run, its role, how many
/// of its statements change, and its Ready condition.
#[allow(clippy::too_many_arguments)]
fn planned_grant(
    plan: &Plan,
    operation: Operation,
    owner: &GrantOwner,
    targets: &[PlannedTarget],
    role_arn: &Option<String>,
    retained: bool,
    withdrawn: Option<&GrantError>,
    dry_run: bool,
) -> (Vec<PlannedTarget>, Option<String>, usize, ConditionReport) {
    // Each of its places with the plan of that policy, when there is one.
    let placed: Vec<(&PlannedTarget, Option<&TargetPlan>)> = targets
        .iter()
        .map(|planned| {
            let policy = plan.targets.iter().find(|t| {
                t.target.arn == planned.arn
                    && t.target.kind == planned.location.kind
                    && (t.owners.contains(owner) || t.released.contains(owner))
            });
            (planned, policy)
        })
        .collect();
    let plans: Vec<&TargetPlan> = placed.iter().filter_map(|(_, t)| *t).collect();
    let changes = plans
        .iter()
        .filter_map(|t| t.merged.as_ref())
        .flat_map(|m| &m.changes)
        .filter(|c| &c.owner == owner)
        .count();
    if let Some(refusal) = withdrawn {
        let (left, ready) = withdrawn_condition(refusal, owner, targets, &plans, dry_run);
        return (left, None, changes, ready);
    }
    let ready = match plans.iter().find_map(|t| t.error.as_ref()) {
        Some(e) => failed(e),
        None if plans.len() < targets.len() => condition(
            "Unknown",
            Reason::Unknown,
            "no plan for one of its targets".into(),
        ),
        None if retained => condition(
            "False",
            Reason::Retained,
            format!(
                "deletionPolicy is Retain: its {changes} statement(s) {} left in place and handed over (their Sids now start with {RELEASED_SID_PREFIX}, so xacct no longer changes them)",
                if dry_run { "would be" } else { "were" }
            ),
        ),
        None => grant_condition(operation, dry_run, &plans, owner),
    };
    let targets = placed
        .into_iter()
        .map(|(planned, policy)| PlannedTarget {
            size: policy.and_then(|t| t.size).map(policy_size),
            ..planned.clone()
        })
        .collect();
    (targets, role_arn.clone(), changes, ready)
}

/// A measured size as reports and the grant's status carry it.
fn policy_size((used, limit): (usize, SizeLimit)) -> PolicySize {
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    PolicySize {
        used: clamp(used),
        limit: clamp(limit.max),
        unit: limit.unit.to_string(),
    }
}

fn target_report(t: &TargetPlan) -> TargetReport {
    let decision = t.applied.unwrap_or_else(|| t.decision());
    TargetReport {
        arn: t.target.arn.clone(),
        account: t.target.account.name.clone(),
        account_id: t.target.account.account_id.clone(),
        kind: format!("{:?}", t.target.kind),
        action: if t.error.is_some() && t.merged.is_none() {
            "none"
        } else {
            action_name(decision)
        },
        done: t.applied.is_some() && t.error.is_none(),
        grants: t.owners.iter().map(|o| o.display_name()).collect(),
        changes: t
            .merged
            .iter()
            .flat_map(|m| &m.changes)
            .map(|c| ChangeReport {
                sid: c.sid.clone(),
                grant: c.owner.display_name(),
                change: c.kind,
                before: c.before.as_ref().map(|s| redacted(s.as_json())),
                after: c.after.as_ref().map(|s| redacted(s.as_json())),
            })
            .collect(),
        size: t.size.map(policy_size),
        notes: t.notes.clone(),
        error: t.error.as_ref().map(ErrorReport::from),
    }
}

fn action_name(decision: WriteDecision) -> &'static str {
    match decision {
        WriteDecision::Unchanged => "none",
        WriteDecision::Put => "put",
        WriteDecision::Delete => "delete",
    }
}

/// The policies a grant is planned on, named for messages, and where its statements change.
struct PolicyChanges {
    /// Every policy, `A, B and C`.
    everywhere: String,
    /// The policies where its statements change, with how many.
    changed: Vec<(usize, String)>,
}

impl PolicyChanges {
    /// `owner`'s changes on `plans` (one per target, in order).
    fn of(plans: &[&TargetPlan], owner: &GrantOwner) -> Self {
        let name = |t: &TargetPlan| {
            // A role's trust and inline policy share its ARN: the kind tells them apart.
            if plans
                .iter()
                .filter(|p| p.target.arn == t.target.arn)
                .count()
                > 1
            {
                format!("{} ({:?})", t.target.arn, t.target.kind)
            } else {
                t.target.arn.clone()
            }
        };
        let everywhere = match plans {
            [] => "no policy".to_string(),
            _ => and_list(plans.iter().map(|t| name(t)).collect()),
        };
        let changed = plans
            .iter()
            .filter_map(|t| {
                let n = t
                    .merged
                    .iter()
                    .flat_map(|m| &m.changes)
                    .filter(|c| &c.owner == owner)
                    .count();
                (n > 0).then(|| (n, name(t)))
            })
            .collect();
        PolicyChanges {
            everywhere,
            changed,
        }
    }

    /// "3 statement(s) {verb} A and 2 {preposition} B": each number is the statements changed in
    /// the policy it names.
    fn per_policy(&self, verb: &str, preposition: &str) -> String {
        and_list(
            self.changed
                .iter()
                .enumerate()
                .map(|(i, (n, arn))| match i {
                    0 => format!("{n} statement(s) {verb} {arn}"),
                    _ => format!("{n} {preposition} {arn}"),
                })
                .collect(),
        )
    }
}

/// The Ready condition of a grant planned or converged on `plans` (one per target, in order),
/// with a count per policy.
fn grant_condition(
    operation: Operation,
    dry_run: bool,
    plans: &[&TargetPlan],
    owner: &GrantOwner,
) -> ConditionReport {
    let changes = PolicyChanges::of(plans, owner);
    let everywhere = &changes.everywhere;
    match (operation, dry_run, changes.changed.is_empty()) {
        (Operation::Apply, _, true) => condition(
            "True",
            Reason::Converged,
            format!("its statements in {everywhere} are as declared"),
        ),
        (Operation::Apply, true, false) => condition(
            "False",
            Reason::Pending,
            format!("{} would change", changes.per_policy("in", "in")),
        ),
        (Operation::Apply, false, false) => condition(
            "True",
            Reason::Applied,
            format!("{} written", changes.per_policy("in", "in")),
        ),
        (Operation::Delete, _, true) => condition(
            "False",
            Reason::Revoked,
            format!("it has no statements in {everywhere}"),
        ),
        (Operation::Delete, true, false) => condition(
            "False",
            Reason::RevokePending,
            changes.per_policy("would be removed from", "from"),
        ),
        (Operation::Delete, false, false) => condition(
            "False",
            Reason::Revoked,
            changes.per_policy("removed from", "from"),
        ),
    }
}

/// `A`, `A and B`, `A, B and C`.
fn and_list(mut items: Vec<String>) -> String {
    match items.pop() {
        None => String::new(),
        Some(last) if items.is_empty() => last,
        Some(last) => format!("{} and {last}", items.join(", ")),
    }
}

/// The condition of a grant an account no longer consents to, whose statements this run removes
/// (or would), and the policies that still hold them: those whose revocation failed.
fn withdrawn_condition(
    refusal: &GrantError,
    owner: &GrantOwner,
    targets: &[PlannedTarget],
    plans: &[&TargetPlan],
    dry_run: bool,
) -> (Vec<PlannedTarget>, ConditionReport) {
    let failures: Vec<(&PlannedTarget, &GrantError)> = targets
        .iter()
        .filter_map(|planned| {
            plans
                .iter()
                .find(|t| t.target.arn == planned.arn && t.target.kind == planned.location.kind)
                .and_then(|t| t.error.as_ref())
                .map(|e| (planned, e))
        })
        .collect();
    let changes = PolicyChanges::of(plans, owner);
    let message = if !dry_run && !failures.is_empty() {
        let errors = failures
            .iter()
            .map(|(t, e)| format!("{}: {e}", t.arn))
            .collect::<Vec<_>>()
            .join("; ");
        format!(
            "{refusal}; its access is being revoked, but removing its statements failed ({errors}) and is retried"
        )
    } else if changes.changed.is_empty() {
        format!("{refusal}; it has no access: no statement of it is left in AWS")
    } else if dry_run {
        let removed = changes.per_policy("removed from", "from");
        format!("{refusal}; its access would be revoked: {removed}")
    } else {
        let removed = changes.per_policy("removed from", "from");
        format!("{refusal}; its access was revoked: {removed}")
    };
    let left = if dry_run {
        Vec::new()
    } else {
        failures.iter().map(|(t, _)| (*t).clone()).collect()
    };
    (left, condition("False", refusal.reason(), message))
}

fn failed(e: &GrantError) -> ConditionReport {
    condition("False", e.reason(), e.to_string())
}

fn condition(status: &'static str, reason: Reason, message: String) -> ConditionReport {
    ConditionReport {
        type_: "Ready",
        status,
        reason,
        message,
    }
}

/// A statement for display, with external ids masked: they are shared secrets of sorts, and the
/// report goes to terminals and CI logs.
fn redacted(statement: &serde_json::Map<String, Value>) -> Value {
    let mut statement = statement.clone();
    if let Some(Value::Object(operators)) = statement.get_mut("Condition") {
        for keys in operators.values_mut() {
            if let Value::Object(keys) = keys {
                for (key, value) in keys.iter_mut() {
                    if key.eq_ignore_ascii_case("sts:ExternalId") {
                        *value = Value::String("(redacted)".into());
                    }
                }
            }
        }
    }
    Value::Object(statement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ids_are_masked_in_reports() {
        let statement = serde_json::json!({"Sid": "X", "Effect": "Allow", "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "s3cr3t", "aws:PrincipalAccount": "111111111111"}}});
        let Value::Object(map) = statement else {
            unreachable!("an object literal")
        };
        let shown = redacted(&map).to_string();
        assert!(
            !shown.contains("s3cr3t")
                && shown.contains("(redacted)")
                && shown.contains("111111111111"),
            "{shown}"
        );
    }
}
