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
            (c.status, c.reason, c.message.as_str())
        });
        let _ = writeln!(
            out,
            "  {} ({}): Ready={status} {reason}: {message}",
            grant.name, grant.origin
        );
    }
    let changed = report
        .targets
        .iter()
        .filter(|t| t.action != "none" && t.error.is_none())
        .count();
    let failed = report.targets.iter().filter(|t| t.error.is_some()).count();
    let bad_grants = report
        .grants
        .iter()
        .filter(|g| g.targets.is_empty() && g.ready().is_some_and(|c| c.reason != "Retained"))
        .count();
    let verb = if report.dry_run {
        "to change"
    } else {
        "changed"
    };
    let _ = writeln!(
        out,
        "\n{}: {changed} polic{} {verb}, {} unchanged, {failed} failed; {bad_grants} grant(s) not converged, {} manifest error(s).",
        if report.dry_run {
            "Plan"
        } else if report.operation == "delete" {
            "Delete"
        } else {
            "Apply"
        },
        if changed == 1 { "y" } else { "ies" },
        report.targets.len() - changed - failed,
        errors.len()
    );
    out
}

fn target_text(out: &mut String, t: &TargetReport) {
    // Per target, not per run: an apply also plans grants in Observe mode, which never write.
    let what = match (t.action, t.done, &t.error) {
        (_, _, Some(_)) => "FAILED".to_string(),
        ("none", _, None) => "up to date".to_string(),
        (action, false, None) => format!("would {action}"),
        ("put", true, None) => "written".to_string(),
        (_, true, None) => "deleted".to_string(),
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
        let _ = writeln!(out, "  size: {} of {} {}", size.size, size.limit, size.unit);
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
            (c.status, c.reason, c.message.as_str())
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
