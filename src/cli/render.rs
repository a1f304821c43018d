//! Text and JSON output of a report.

use std::fmt::Write;

use serde_json::{Value, json};

use super::manifests::ManifestError;
use crate::engine::{ChangeReport, Report, ShareReport, TargetReport};
use crate::policy::ChangeKind;

/// The report as JSON, with snapshot shares under `shares` and manifest errors under `errors`.
pub fn json(report: &Report, shares: &[ShareReport], errors: &[ManifestError]) -> String {
    let mut value = serde_json::to_value(report).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("shares".into(), json!(shares));
        map.insert("errors".into(), json!(errors));
    }
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// The report for people, like a code review.
pub fn text(report: &Report, shares: &[ShareReport], errors: &[ManifestError]) -> String {
    let mut out = String::new();
    for error in errors {
        let _ = writeln!(out, "error: {error}");
    }
    if !errors.is_empty() {
        out.push('\n');
    }
    // Targets come in account order: one heading per account, so both sides of a grant show
    // where each is written.
    let mut account = None;
    for target in &report.targets {
        if account != Some(&target.account_id) {
            let _ = writeln!(
                out,
                "== account {} ({})\n",
                target.account, target.account_id
            );
            account = Some(&target.account_id);
        }
        target_text(&mut out, target);
    }
    if !shares.is_empty() {
        shares_text(&mut out, shares, report.dry_run);
    }
    let _ = writeln!(out, "Grants:");
    for grant in &report.grants {
        let (status, reason, message) = grant.ready().map_or(("Unknown", "", ""), |c| {
            (c.status, c.reason.as_str(), c.message.as_str())
        });
        let _ = writeln!(
            out,
            "  {} ({}): Ready={status} {reason}: {message}",
            grant.name, grant.origin
        );
    }
    out.push_str(&summary(report, shares, errors));
    out
}

/// How a listed policy ended: what its heading says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Failed,
    UpToDate,
    /// A change planned, not carried out (a plan, or an Observe grant's policy in an apply).
    Planned,
    Done,
}

fn outcome(t: &TargetReport) -> Outcome {
    match (t.action, t.done, &t.error) {
        (_, _, Some(_)) => Outcome::Failed,
        ("none", _, None) => Outcome::UpToDate,
        (_, false, None) => Outcome::Planned,
        (_, true, None) => Outcome::Done,
    }
}

/// The last line: every count is of things listed above it (the policies under the account
/// headings and the key policies of snapshot shares, the grants, the shares, the manifest errors).
fn summary(report: &Report, shares: &[ShareReport], errors: &[ManifestError]) -> String {
    let policies: Vec<Outcome> = report
        .targets
        .iter()
        .chain(shares.iter().flat_map(|s| &s.key_policies))
        .map(outcome)
        .collect();
    let count = |o: Outcome| policies.iter().filter(|p| **p == o).count();
    let (planned, done) = (count(Outcome::Planned), count(Outcome::Done));
    let plural = |n: usize| if n == 1 { "policy" } else { "policies" };
    let mut parts = Vec::new();
    if report.dry_run {
        parts.push(format!("{planned} {} to change", plural(planned)));
    } else {
        parts.push(format!("{done} {} changed", plural(done)));
        if planned > 0 {
            parts.push(format!("{planned} planned only (not written)"));
        }
    }
    parts.push(format!("{} up to date", count(Outcome::UpToDate)));
    parts.push(format!("{} failed", count(Outcome::Failed)));
    let mut line = parts.join(", ");
    let failed_grants = report
        .grants
        .iter()
        .filter(|g| {
            g.ready()
                .is_none_or(|c| c.status != "True" && c.reason.is_failure())
        })
        .count();
    line.push_str(&format!(
        "; {} grant(s), {failed_grants} failed",
        report.grants.len()
    ));
    if !shares.is_empty() {
        let failed = shares.iter().filter(|s| s.failed()).count();
        let waiting = shares.iter().filter(|s| s.waiting()).count();
        line.push_str(&format!(
            "; {} snapshot share(s), {failed} failed",
            shares.len()
        ));
        if waiting > 0 {
            line.push_str(&format!(", {waiting} waiting for AWS"));
        }
    }
    let name = if report.dry_run {
        "Plan"
    } else if report.operation == "delete" {
        "Delete"
    } else {
        "Apply"
    };
    format!("\n{name}: {line}; {} manifest error(s).\n", errors.len())
}

fn target_text(out: &mut String, t: &TargetReport) {
    // Per target, not per run: an apply also plans grants in Observe mode, which never write.
    let what = match outcome(t) {
        Outcome::Failed => "FAILED".to_string(),
        Outcome::UpToDate => "up to date".to_string(),
        Outcome::Planned => format!("would {}", t.action),
        Outcome::Done if t.action == "put" => "written".to_string(),
        Outcome::Done => "deleted".to_string(),
    };
    let _ = writeln!(
        out,
        "{} ({} in {} {}): {what}",
        t.arn, t.kind, t.account, t.account_id
    );
    let _ = writeln!(out, "  grants: {}", t.grants.join(", "));
    for change in &t.changes {
        change_text(out, change);
    }
    if let Some(size) = &t.size {
        let _ = writeln!(out, "  size: {} of {} {}", size.used, size.limit, size.unit);
    }
    for note in &t.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    if let Some(e) = &t.error {
        let _ = writeln!(out, "  error ({}): {}", e.reason, e.message);
    }
    out.push('\n');
}

fn change_text(out: &mut String, c: &ChangeReport) {
    let (mark, word) = match c.change {
        ChangeKind::Added => ('+', "add"),
        ChangeKind::Changed => ('~', "change"),
        ChangeKind::Removed => ('-', "remove"),
    };
    let _ = writeln!(out, "  {mark} {word} {} (grant {})", c.sid, c.grant);
    let pretty = |v: &Option<Value>| {
        v.as_ref()
            .map(|v| serde_json::to_string_pretty(v).unwrap_or_default())
            .unwrap_or_default()
    };
    let (before, after) = (pretty(&c.before), pretty(&c.after));
    let diff = similar::TextDiff::from_lines(&before, &after);
    for change in diff.iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => '-',
            similar::ChangeTag::Insert => '+',
            similar::ChangeTag::Equal => ' ',
        };
        let _ = write!(out, "      {sign} {}", change.value());
        if !change.value().ends_with('\n') {
            out.push('\n');
        }
    }
}

fn shares_text(out: &mut String, shares: &[ShareReport], dry_run: bool) {
    let _ = writeln!(out, "Snapshot shares:");
    for share in shares {
        let (status, reason, message) = share.ready().map_or(("Unknown", "", ""), |c| {
            (c.status, c.reason.as_str(), c.message.as_str())
        });
        let _ = writeln!(
            out,
            "  {} ({}): Ready={status} {reason}: {message}",
            share.name, share.origin
        );
        if let Some(arn) = &share.snapshot_arn {
            let _ = writeln!(out, "    snapshot: {arn}");
        }
        if let Some(from) = &share.copied_from {
            let _ = writeln!(out, "    copied from: {from}");
        }
        for step in &share.steps {
            let _ = writeln!(out, "    {} {step}", if dry_run { "would" } else { "did:" });
        }
        for target in &share.targets {
            let _ = writeln!(
                out,
                "    account {}: key access {}",
                target.account_id, target.key_access
            );
        }
    }
    out.push('\n');
    for policy in shares.iter().flat_map(|s| &s.key_policies) {
        target_text(out, policy);
    }
}
