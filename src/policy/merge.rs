//! The merge: replace the statements of the grants in scope, keep every other statement as it was.

use std::collections::{BTreeMap, BTreeSet};

use super::compact::{compact, expand};
use super::document::{PolicyDocument, Statement};
use super::error::PolicyError;
use super::ownership::{GrantOwner, OwnershipScope};

/// What a converging write must do to a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteDecision {
    /// The policy already means what it should: no call.
    Unchanged,
    /// Write the merged document.
    Put,
    /// Nothing is left in the policy and only xacct's statements were in it: delete the policy.
    Delete,
}

/// How one owned statement changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeKind {
    /// A statement that is missing.
    Added,
    /// A statement whose meaning differs from what its grant wants.
    Changed,
    /// A statement whose grant no longer wants it (or a duplicate).
    Removed,
}

/// One owned statement that a write adds, changes or removes.
#[derive(Debug, Clone)]
pub struct StatementChange {
    /// The statement's Sid.
    pub sid: String,
    /// The grant that owns it.
    pub owner: GrantOwner,
    /// Added, changed or removed.
    pub kind: ChangeKind,
    /// The statement now in the policy.
    pub before: Option<Statement>,
    /// The statement the policy should have.
    pub after: Option<Statement>,
}

/// The result of a merge.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The document the policy should be.
    pub document: PolicyDocument,
    /// What to do about it.
    pub decision: WriteDecision,
    /// Owned statements that change, in Sid order.
    pub changes: Vec<StatementChange>,
}

/// Merges the desired statements of the grants in `scope` into `current`.
///
/// Statements owned by a grant in scope are replaced in place by the desired statement of the same
/// Sid (or removed); desired statements not yet present are appended. Every other statement, and
/// every other top-level member, is kept exactly. Each desired statement must carry a Sid owned by a
/// grant in scope.
pub fn merge(
    current: Option<&PolicyDocument>,
    scope: &OwnershipScope,
    desired: &[Statement],
) -> Result<Merged, PolicyError> {
    let mut wanted: BTreeMap<String, (&GrantOwner, &Statement)> = BTreeMap::new();
    for statement in desired {
        let owner = scope.owner_of(statement.sid()).ok_or_else(|| {
            PolicyError::Malformed(format!(
                "desired statement {:?} is not owned by a grant in scope",
                statement.sid()
            ))
        })?;
        let sid = statement.sid().unwrap_or_default().to_string();
        if wanted.insert(sid.clone(), (owner, statement)).is_some() {
            return Err(PolicyError::Malformed(format!(
                "two desired statements share the Sid {sid}"
            )));
        }
    }

    let base = current.cloned().unwrap_or_default();
    let mut statements = Vec::with_capacity(base.statements.len() + wanted.len());
    let mut placed = BTreeSet::new();
    let mut changes = Vec::new();
    for statement in &base.statements {
        let Some(owner) = scope.owner_of(statement.sid()) else {
            statements.push(statement.clone());
            continue;
        };
        let sid = statement.sid().unwrap_or_default().to_string();
        match wanted.get(&sid) {
            Some((_, want)) if !placed.contains(&sid) => {
                statements.push((*want).clone());
                placed.insert(sid.clone());
                if !statement.same_meaning(want) {
                    changes.push(change(
                        sid,
                        owner,
                        ChangeKind::Changed,
                        Some(statement),
                        Some(want),
                    ));
                }
            }
            _ => changes.push(change(
                sid,
                owner,
                ChangeKind::Removed,
                Some(statement),
                None,
            )),
        }
    }
    for (sid, (owner, want)) in &wanted {
        if !placed.contains(sid) {
            statements.push((*want).clone());
            changes.push(change(
                sid.clone(),
                owner,
                ChangeKind::Added,
                None,
                Some(want),
            ));
        }
    }
    changes.sort_by(|a, b| a.sid.cmp(&b.sid).then(a.kind.cmp(&b.kind)));

    let decision = if changes.is_empty() {
        WriteDecision::Unchanged
    } else if statements.is_empty() {
        WriteDecision::Delete
    } else {
        WriteDecision::Put
    };
    Ok(Merged {
        document: PolicyDocument { statements, ..base },
        decision,
        changes,
    })
}

/// Converges a policy for the grants of `instance` in `scope` (wanting `desired`) and hands over
/// the statements of those in `released`: shared statements are expanded into one statement per
/// grant, the released grants' statements renamed, the merge run, and the result compacted (when
/// `compaction`; otherwise every grant's statements are written on their own). When
/// nothing changes for these grants the document is returned as it is (never rewritten for layout
/// alone).
pub fn converge(
    current: Option<&PolicyDocument>,
    instance: &str,
    compaction: bool,
    scope: &OwnershipScope,
    released: &OwnershipScope,
    desired: &[Statement],
) -> Result<Merged, PolicyError> {
    let expanded = match current {
        Some(doc) => Some(expand(doc, instance, &scope.with(released), desired)?),
        None => None,
    };
    // Statements handed over first: they are then nobody's, and the merge keeps them.
    let handed_over = match &expanded {
        Some(doc) if !released.is_empty() => Some(release(doc, released)?),
        _ => None,
    };
    let base = handed_over
        .as_ref()
        .map(|r| &r.document)
        .or(expanded.as_ref());
    let mut merged = merge(base, scope, desired)?;
    if let Some(handed_over) = handed_over.filter(|r| r.decision == WriteDecision::Put) {
        merged.changes.extend(handed_over.changes);
        if merged.decision == WriteDecision::Unchanged {
            merged.decision = WriteDecision::Put;
        }
    }
    match merged.decision {
        WriteDecision::Put if compaction => merged.document = compact(&merged.document, instance)?,
        WriteDecision::Put => {}
        WriteDecision::Unchanged => {
            if let Some(doc) = current {
                merged.document = doc.clone();
            }
        }
        WriteDecision::Delete => {}
    }
    Ok(merged)
}

/// What a statement's Sid starts with once xacct handed it over.
pub const RELEASED_SID_PREFIX: &str = "Retained";

/// Hands over the statements of the grants in `scope`: the same statements, their Sids no longer
/// carrying xacct's marker (`Xacct…` becomes `Retained…`), so that xacct never changes or removes
/// them again. What `deletionPolicy: Retain` does when a grant is deleted.
pub fn release(current: &PolicyDocument, scope: &OwnershipScope) -> Result<Merged, PolicyError> {
    let mut statements = Vec::with_capacity(current.statements.len());
    let mut changes = Vec::new();
    for statement in &current.statements {
        let Some(owner) = scope.owner_of(statement.sid()) else {
            statements.push(statement.clone());
            continue;
        };
        let sid = statement.sid().unwrap_or_default();
        let released_sid = format!(
            "{RELEASED_SID_PREFIX}{}",
            sid.strip_prefix(super::ownership::SID_PREFIX)
                .unwrap_or(sid)
        );
        let mut json = statement.as_json().clone();
        json.insert("Sid".into(), serde_json::Value::String(released_sid));
        let released = Statement::from_json(serde_json::Value::Object(json))?;
        changes.push(change(
            sid.to_string(),
            owner,
            ChangeKind::Changed,
            Some(statement),
            Some(&released),
        ));
        statements.push(released);
    }
    let decision = if changes.is_empty() {
        WriteDecision::Unchanged
    } else {
        WriteDecision::Put
    };
    Ok(Merged {
        document: PolicyDocument {
            statements,
            ..current.clone()
        },
        decision,
        changes,
    })
}

fn change(
    sid: String,
    owner: &GrantOwner,
    kind: ChangeKind,
    before: Option<&Statement>,
    after: Option<&Statement>,
) -> StatementChange {
    StatementChange {
        sid,
        owner: owner.clone(),
        kind,
        before: before.cloned(),
        after: after.cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owner(name: &str) -> GrantOwner {
        GrantOwner::new("default", "team", name)
    }

    fn statement(sid: &str, action: &str) -> Statement {
        Statement::from_json(json!({"Sid": sid, "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"}, "Action": action, "Resource": "*"}))
            .expect("valid statement")
    }

    fn foreign() -> Statement {
        Statement::from_json(json!({"Sid": "ConsoleEdit", "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket", "Resource": "arn:aws:s3:::b"}))
            .expect("valid statement")
    }

    #[test]
    fn adds_owned_statements_and_keeps_foreign_ones() {
        let g = owner("g");
        let current = PolicyDocument {
            statements: vec![foreign()],
            ..PolicyDocument::new()
        };
        let merged = merge(
            Some(&current),
            &OwnershipScope::new([&g]),
            &[statement(&g.sid("Use"), "kms:Decrypt")],
        )
        .expect("merges");
        assert_eq!(merged.decision, WriteDecision::Put);
        assert_eq!(merged.document.statements[0], foreign());
        assert_eq!(merged.document.statements.len(), 2);
        assert_eq!(merged.changes.len(), 1);
        assert_eq!(merged.changes[0].kind, ChangeKind::Added);
    }

    #[test]
    fn converged_policy_needs_no_write_even_when_formatted_differently() {
        let g = owner("g");
        let written = Statement::from_json(json!({"Resource": ["*"], "Action": ["KMS:decrypt"], "Principal": {"AWS": "111111111111"}, "Effect": "Allow", "Sid": g.sid("Use")})).expect("valid");
        let current = PolicyDocument {
            statements: vec![foreign(), written],
            ..PolicyDocument::new()
        };
        let merged = merge(
            Some(&current),
            &OwnershipScope::new([&g]),
            &[statement(&g.sid("Use"), "kms:Decrypt")],
        )
        .expect("merges");
        assert_eq!(merged.decision, WriteDecision::Unchanged);
        assert!(merged.changes.is_empty());
    }

    #[test]
    fn changes_in_place_and_removes_what_is_no_longer_wanted() {
        let g = owner("g");
        let current = PolicyDocument {
            statements: vec![
                statement(&g.sid("Use"), "kms:Encrypt"),
                foreign(),
                statement(&g.sid("Grants"), "kms:CreateGrant"),
            ],
            ..PolicyDocument::new()
        };
        let merged = merge(
            Some(&current),
            &OwnershipScope::new([&g]),
            &[statement(&g.sid("Use"), "kms:Decrypt")],
        )
        .expect("merges");
        assert_eq!(merged.decision, WriteDecision::Put);
        assert_eq!(
            merged.document.statements,
            vec![statement(&g.sid("Use"), "kms:Decrypt"), foreign()]
        );
        let kinds: Vec<_> = merged.changes.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, vec![ChangeKind::Removed, ChangeKind::Changed]);
    }

    #[test]
    fn statements_of_grants_out_of_scope_are_kept() {
        let (g, other) = (owner("g"), owner("other"));
        let current = PolicyDocument {
            statements: vec![statement(&other.sid("Use"), "kms:Decrypt")],
            ..PolicyDocument::new()
        };
        let merged = merge(Some(&current), &OwnershipScope::new([&g]), &[]).expect("merges");
        assert_eq!(merged.decision, WriteDecision::Unchanged);
        assert_eq!(merged.document, current);
    }

    #[test]
    fn deletes_only_when_nothing_foreign_remains() {
        let g = owner("g");
        let only_ours = PolicyDocument {
            statements: vec![statement(&g.sid("Use"), "kms:Decrypt")],
            ..PolicyDocument::new()
        };
        let merged = merge(Some(&only_ours), &OwnershipScope::new([&g]), &[]).expect("merges");
        assert_eq!(merged.decision, WriteDecision::Delete);

        let shared = PolicyDocument {
            statements: vec![statement(&g.sid("Use"), "kms:Decrypt"), foreign()],
            ..PolicyDocument::new()
        };
        let merged = merge(Some(&shared), &OwnershipScope::new([&g]), &[]).expect("merges");
        assert_eq!(merged.decision, WriteDecision::Put);
        assert_eq!(merged.document.statements, vec![foreign()]);
    }

    #[test]
    fn nothing_to_do_on_a_missing_policy_is_unchanged() {
        let g = owner("g");
        let merged = merge(None, &OwnershipScope::new([&g]), &[]).expect("merges");
        assert_eq!(merged.decision, WriteDecision::Unchanged);
    }

    #[test]
    fn duplicated_owned_statements_are_collapsed() {
        let g = owner("g");
        let s = statement(&g.sid("Use"), "kms:Decrypt");
        let current = PolicyDocument {
            statements: vec![s.clone(), s.clone()],
            ..PolicyDocument::new()
        };
        let merged = merge(
            Some(&current),
            &OwnershipScope::new([&g]),
            std::slice::from_ref(&s),
        )
        .expect("merges");
        assert_eq!(merged.decision, WriteDecision::Put);
        assert_eq!(merged.document.statements, vec![s]);
    }

    #[test]
    fn desired_statements_must_be_owned_by_the_scope() {
        let g = owner("g");
        assert!(merge(None, &OwnershipScope::new([&g]), &[foreign()]).is_err());
    }

    #[test]
    fn release_renames_only_the_released_grants_statements_and_keeps_their_meaning() {
        let (kept, gone) = (owner("kept"), owner("gone"));
        let current = PolicyDocument {
            statements: vec![
                statement("Foreign", "s3:GetObject"),
                statement(&gone.sid("Objects"), "s3:GetObject"),
                statement(&kept.sid("Objects"), "s3:PutObject"),
            ],
            ..PolicyDocument::new()
        };
        let released = release(&current, &OwnershipScope::new([&gone])).expect("released");
        assert_eq!(released.decision, WriteDecision::Put);
        let sids: Vec<&str> = released
            .document
            .statements
            .iter()
            .filter_map(|s| s.sid())
            .collect();
        let renamed = format!(
            "Retained{}",
            &gone.sid("Objects")[crate::policy::SID_PREFIX.len()..]
        );
        assert_eq!(
            sids,
            ["Foreign", renamed.as_str(), kept.sid("Objects").as_str()]
        );
        let without_sid = |s: &Statement| {
            let mut json = s.as_json().clone();
            json.remove("Sid");
            json
        };
        assert_eq!(
            without_sid(&released.document.statements[1]),
            without_sid(&current.statements[1])
        );
        // Handed over: no grant of xacct's owns it any more, so nothing changes it again.
        let scope = OwnershipScope::new([&gone, &kept]);
        assert!(scope.owner_of(Some(&renamed)).is_none());
        let again = release(&released.document, &OwnershipScope::new([&gone])).expect("released");
        assert_eq!(again.decision, WriteDecision::Unchanged);
    }
}
