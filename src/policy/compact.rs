//! Compaction: statements of several grants that differ only in their principals become one
//! statement naming all of those principals, so that many more grants fit under a policy's size
//! limit.
//!
//! A shared statement's Sid says which grant wants which principal: `Xacct` + instance tag +
//! `Group` + 6 hex digits naming the statement's shape (its meaning without Sid and principals) +
//! 2 hex digits numbering statements of one shape (`00` unless principals' hashes collide) + one
//! 10-character entry per grant and principal (the 7 base-62 digits of the grant's id, then 3
//! hashing the principal). Any run can therefore take one grant's principals out of a shared
//! statement without knowing the other grants (the controller converging one grant, the CLI given
//! some manifests, garbage collection), and a principal that two grants name stays until neither
//! does. Principals whose hashes collide are never put in one statement, so every entry names
//! exactly one principal. Shared statements written before (`Shared` instead of `Group`, entries of
//! the grant's 16 hex digits and 5 hex digits hashing the principal) are read the same way and
//! written in today's form at the policy's next change.
//!
//! The merge works on one statement per grant and shape: [`expand`] turns shared statements back
//! into those (named by the Sid the grant wants for that shape, when it wants it), the merge runs as
//! for any policy, and [`compact`] groups the result again. A grant alone with its shape keeps its
//! plain statement, named by purpose.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::canonical::CanonicalStatement;
use super::document::{PolicyDocument, Statement};
use super::error::PolicyError;
use super::ownership::{
    GRANT_TAG_LEN, OwnershipScope, SHAPE_MARK, SHAPE_TAG_LEN, SHORT_TAG_LEN, base62, digest,
    hex_digest, instance_sid_prefix, lower_hex, owner_id_of, shape_sid, short_tag,
};
use super::principal::canonical_aws_principal;

/// What follows the instance tag in a shared statement's Sid.
const GROUP_MARK: &str = "Group";
/// Hex digits numbering the statements of one shape.
const BIN_TAG_LEN: usize = 2;

/// How a shared statement's Sid names its members: today's form, or the one written before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryForm {
    /// `Group…`: the grant's 7 base-62 id digits, 3 base-62 digits hashing the principal.
    Base62,
    /// `Shared…` (read, never written): the grant's 16 hex digits, 5 hex digits for the principal.
    Hex,
}

impl EntryForm {
    fn principal_tag_len(self) -> usize {
        match self {
            EntryForm::Base62 => 3,
            EntryForm::Hex => 5,
        }
    }

    fn grant_tag_len(self) -> usize {
        match self {
            EntryForm::Base62 => SHORT_TAG_LEN,
            EntryForm::Hex => GRANT_TAG_LEN,
        }
    }

    fn entry_len(self) -> usize {
        self.grant_tag_len() + self.principal_tag_len()
    }

    fn is_entry_text(self, s: &str) -> bool {
        match self {
            EntryForm::Base62 => s.bytes().all(|b| b.is_ascii_alphanumeric()),
            EntryForm::Hex => lower_hex(s),
        }
    }

    /// The tag of a principal (canonical form) in this form's entries.
    fn principal_tag(self, canonical: &str) -> String {
        match self {
            EntryForm::Base62 => {
                let hash = digest(&[canonical]);
                let first = u64::from_be_bytes(hash[..8].try_into().unwrap_or_default());
                base62(first, self.principal_tag_len())
            }
            EntryForm::Hex => hex_digest(&[canonical])[..self.principal_tag_len()].to_string(),
        }
    }
}

/// The members a shared statement's Sid names: each member's id and principal tag.
struct Entries {
    form: EntryForm,
    members: Vec<(String, String)>,
}

/// A statement's meaning without its Sid and principals: what grants must agree on to share it.
type Shape = CanonicalStatement;

/// The ids of the grants of `instance` that own the statement `sid`: one for a plain statement,
/// every member for a shared one, none for anyone else's.
pub fn owner_ids(instance: &str, sid: &str) -> Vec<String> {
    if let Some(id) = owner_id_of(instance, sid) {
        return vec![id];
    }
    let instance_prefix = instance_sid_prefix(instance);
    let mut owners: Vec<String> = shared_entries(&instance_prefix, sid)
        .map(|e| e.members)
        .unwrap_or_default()
        .into_iter()
        .map(|(owner, _)| owner)
        .collect();
    owners.sort();
    owners.dedup();
    owners
}

/// Replaces the shared statements of `instance` in `doc` by one statement per grant and shape, so
/// that the merge sees each grant's statements alone. A grant in `scope` gets, for a shape it wants,
/// the Sid of its desired statement of that shape; any other gets a Sid naming it by id and the
/// shape (`shape_sid`), which the merge removes when the grant is in scope and keeps otherwise.
/// A principal no entry claims (added by hand, or a deleted role that AWS shows by its unique id)
/// goes with the statement's members in scope, so converging any of them corrects it; with none in
/// scope, it stays with the first member.
pub fn expand(
    doc: &PolicyDocument,
    instance: &str,
    scope: &OwnershipScope,
    desired: &[Statement],
) -> Result<PolicyDocument, PolicyError> {
    let instance_prefix = instance_sid_prefix(instance);
    let mut wanted_sid: BTreeMap<(String, Shape), String> = BTreeMap::new();
    for statement in desired {
        let (Some(owner), Some((shape, _))) = (scope.owner_of(statement.sid()), split(statement)?)
        else {
            continue;
        };
        let sid = statement.sid().unwrap_or_default().to_string();
        wanted_sid.insert((owner.id().to_string(), shape), sid);
    }

    // Each expanded statement takes the place of the first shared statement it came from.
    enum Slot {
        Kept(Statement),
        Expanded(usize),
    }
    let mut slots = Vec::with_capacity(doc.statements.len());
    let mut expanded: Vec<((String, Shape), &Statement, Vec<String>)> = Vec::new();
    let mut index_of: BTreeMap<(String, Shape), usize> = BTreeMap::new();
    for statement in &doc.statements {
        let entries = statement
            .sid()
            .and_then(|sid| shared_entries(&instance_prefix, sid));
        let (Some(entries), Some((shape, principals))) = (entries, split(statement)?) else {
            slots.push(Slot::Kept(statement.clone()));
            continue;
        };
        let members: BTreeSet<&str> = entries
            .members
            .iter()
            .map(|(owner, _)| owner.as_str())
            .collect();
        let in_scope: Vec<&str> = members
            .iter()
            .copied()
            .filter(|m| scope.contains_id(m))
            .collect();
        for principal in principals {
            let tag = entries
                .form
                .principal_tag(&canonical_aws_principal(&principal));
            let mut claimed: Vec<&str> = entries
                .members
                .iter()
                .filter(|(_, t)| *t == tag)
                .map(|(owner, _)| owner.as_str())
                .collect();
            if claimed.is_empty() {
                claimed = if in_scope.is_empty() {
                    members.iter().take(1).copied().collect()
                } else {
                    in_scope.clone()
                };
            }
            for owner in claimed {
                let key = (owner.to_string(), shape.clone());
                let at = *index_of.entry(key.clone()).or_insert_with(|| {
                    slots.push(Slot::Expanded(expanded.len()));
                    expanded.push((key, statement, Vec::new()));
                    expanded.len() - 1
                });
                let list = &mut expanded[at].2;
                if !list.contains(&principal) {
                    list.push(principal.clone());
                }
            }
        }
    }

    let mut statements = Vec::with_capacity(slots.len());
    for slot in slots {
        match slot {
            Slot::Kept(statement) => statements.push(statement),
            Slot::Expanded(i) => {
                let ((owner, shape), template, principals) = &expanded[i];
                let sid = wanted_sid
                    .get(&(owner.clone(), shape.clone()))
                    .cloned()
                    .unwrap_or_else(|| shape_sid(owner, &shape_tag(shape)));
                statements.push(with_principals(template, &sid, principals)?);
            }
        }
    }
    Ok(PolicyDocument {
        statements,
        ..doc.clone()
    })
}

/// Groups the plain statements of `instance` that differ only in their principals into shared
/// statements, in place of the first of them. A shape only one grant has stays a plain statement
/// (one, when it had several), unless it only came out of [`expand`] under a shape-named Sid: then it
/// stays shared, so that the grant finds it under the Sid it wants. Everything else is kept as it is.
pub fn compact(doc: &PolicyDocument, instance: &str) -> Result<PolicyDocument, PolicyError> {
    struct Member {
        index: usize,
        owner: String,
        principals: Vec<String>,
        shape_named: bool,
    }
    let instance_prefix = instance_sid_prefix(instance);
    // Keyed by shape and whether the principals are `*`: anyone (narrowed by the shape's
    // conditions, an organization's say) shares a statement only with anyone.
    let mut groups: BTreeMap<(Shape, bool), Vec<Member>> = BTreeMap::new();
    for (index, statement) in doc.statements.iter().enumerate() {
        let Some(sid) = statement.sid() else { continue };
        let Some(owner) = owner_id_of(instance, sid) else {
            continue;
        };
        let Some((shape, principals)) = split(statement)? else {
            continue;
        };
        let anyone = principals.iter().any(|p| p == "*");
        // A grant's part of a shared statement, named by shape (by its id, or before ids by the
        // grant's 16 hex digits).
        let shape_named = sid.ends_with(&format!("{SHAPE_MARK}{}", shape_tag(&shape)));
        groups.entry((shape, anyone)).or_default().push(Member {
            index,
            owner,
            principals,
            shape_named,
        });
    }

    // What replaces each statement: `None` keeps it, an empty list removes it.
    let mut replaced: BTreeMap<usize, Vec<Statement>> = BTreeMap::new();
    for ((shape, _), members) in groups {
        let owners: BTreeSet<&str> = members.iter().map(|m| m.owner.as_str()).collect();
        let first = &doc.statements[members[0].index];
        let named = members.iter().find(|m| !m.shape_named);
        let statements = match named {
            Some(named) if owners.len() == 1 => {
                if members.len() == 1 {
                    continue;
                }
                let mut principals = Vec::new();
                for m in &members {
                    for p in &m.principals {
                        if !principals.contains(p) {
                            principals.push(p.clone());
                        }
                    }
                }
                let statement = &doc.statements[named.index];
                vec![with_principals(
                    statement,
                    statement.sid().unwrap_or_default(),
                    &principals,
                )?]
            }
            _ => {
                let units = members.iter().flat_map(|m| {
                    m.principals
                        .iter()
                        .map(move |p| (p.as_str(), m.owner.as_str()))
                });
                let shared = shared_statements(first, &instance_prefix, &shape, units)?;
                // Plain statements stay when sharing would not make the policy smaller (each
                // principal hash colliding, say); shape-named ones are always shared again.
                let plain = members.iter().map(|m| &doc.statements[m.index]);
                if named.is_some()
                    && members.iter().all(|m| !m.shape_named)
                    && size(shared.iter()) >= size(plain)
                {
                    continue;
                }
                shared
            }
        };
        replaced.insert(members[0].index, statements);
        for m in &members[1..] {
            replaced.insert(m.index, Vec::new());
        }
    }
    let mut statements = Vec::with_capacity(doc.statements.len());
    for (index, statement) in doc.statements.iter().enumerate() {
        match replaced.remove(&index) {
            Some(instead) => statements.extend(instead),
            None => statements.push(statement.clone()),
        }
    }
    Ok(PolicyDocument {
        statements,
        ..doc.clone()
    })
}

/// The shared statements holding these (principal, owner) pairs: one, unless two principals' tags
/// collide, which never share a statement.
fn shared_statements<'a>(
    template: &Statement,
    instance_prefix: &str,
    shape: &Shape,
    units: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<Statement>, PolicyError> {
    #[derive(Default)]
    struct Bin {
        /// Principal tag → the canonical principal it names here.
        tags: BTreeMap<String, String>,
        principals: Vec<String>,
        entries: BTreeSet<String>,
    }
    let mut units: Vec<(String, &str, &str)> = units
        .map(|(p, owner)| (canonical_aws_principal(p), p, owner))
        .collect();
    units.sort();
    units.dedup_by(|a, b| a.0 == b.0 && a.2 == b.2);
    let mut bins: Vec<Bin> = Vec::new();
    for (canonical, written, owner) in units {
        let tag = EntryForm::Base62.principal_tag(&canonical);
        let fits = |bin: &Bin| bin.tags.get(&tag).is_none_or(|c| *c == canonical);
        let at = match bins.iter().position(fits) {
            Some(at) => at,
            None => {
                bins.push(Bin::default());
                bins.len() - 1
            }
        };
        let bin = &mut bins[at];
        if bin.tags.insert(tag.clone(), canonical).is_none() {
            bin.principals.push(written.to_string());
        }
        let grant_tag = &owner[instance_prefix.len()..];
        bin.entries.insert(format!("{grant_tag}{tag}"));
    }
    let shape_tag = shape_tag(shape);
    bins.into_iter()
        .enumerate()
        .map(|(n, bin)| {
            let entries: String = bin.entries.into_iter().collect();
            let sid = format!("{instance_prefix}{GROUP_MARK}{shape_tag}{n:02x}{entries}");
            with_principals(template, &sid, &bin.principals)
        })
        .collect()
}

/// The entries of a shared Sid of the instance whose Sids start with `instance_prefix`, in
/// either form. `None` when `sid` is not one.
fn shared_entries(instance_prefix: &str, sid: &str) -> Option<Entries> {
    let rest = sid.strip_prefix(instance_prefix)?;
    let (form, rest) = match rest.strip_prefix(GROUP_MARK) {
        Some(rest) => (EntryForm::Base62, rest),
        None => (EntryForm::Hex, rest.strip_prefix(SHAPE_MARK)?),
    };
    let head = rest.get(..SHAPE_TAG_LEN + BIN_TAG_LEN)?;
    let entries = &rest[head.len()..];
    let len = form.entry_len();
    if !lower_hex(head)
        || entries.is_empty()
        || entries.len() % len != 0
        || !form.is_entry_text(entries)
    {
        return None;
    }
    let grant = form.grant_tag_len();
    let members = (0..entries.len() / len)
        .map(|i| {
            let entry = &entries[i * len..(i + 1) * len];
            let id = match form {
                EntryForm::Base62 => entry[..grant].to_string(),
                EntryForm::Hex => short_tag(&entry[..grant]),
            };
            (format!("{instance_prefix}{id}"), entry[grant..].to_string())
        })
        .collect();
    Some(Entries { form, members })
}

/// A statement's shape and its AWS principals as written; `None` when it names principals some
/// other way (a service, `NotPrincipal`), which are never compacted.
fn split(statement: &Statement) -> Result<Option<(Shape, Vec<String>)>, PolicyError> {
    let json = statement.as_json();
    if json.contains_key("NotPrincipal") {
        return Ok(None);
    }
    let principals = match json.get("Principal") {
        Some(Value::String(s)) if s == "*" => vec![s.clone()],
        Some(Value::Object(map)) if map.len() == 1 => match map.get("AWS") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => {
                let strings: Option<Vec<String>> = items
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect();
                match strings {
                    Some(strings) if !strings.is_empty() => strings,
                    _ => return Ok(None),
                }
            }
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let mut shape = statement.canonical()?;
    shape.sid = None;
    shape.principal = None;
    Ok(Some((shape, principals)))
}

/// `template` with another Sid and these AWS principals.
fn with_principals(
    template: &Statement,
    sid: &str,
    principals: &[String],
) -> Result<Statement, PolicyError> {
    let mut json: Map<String, Value> = template.as_json().clone();
    json.insert("Sid".into(), Value::String(sid.to_string()));
    let aws = match principals {
        [one] => Value::String(one.clone()),
        many => Value::Array(many.iter().cloned().map(Value::String).collect()),
    };
    json.insert("Principal".into(), serde_json::json!({ "AWS": aws }));
    Statement::from_json(Value::Object(json))
}

/// The statements' size as written (compact JSON).
fn size<'a>(statements: impl Iterator<Item = &'a Statement>) -> usize {
    statements
        .map(|s| Value::Object(s.as_json().clone()).to_string().len())
        .sum()
}

fn shape_tag(shape: &Shape) -> String {
    // Serializing sorted maps and sets is deterministic, so the tag is stable across runs.
    let text = serde_json::to_string(shape).unwrap_or_default();
    hex_digest(&[&text])[..SHAPE_TAG_LEN].to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::policy::{GrantOwner, WriteDecision, converge};

    const INSTANCE: &str = "default";

    fn owner(name: &str) -> GrantOwner {
        GrantOwner::new(INSTANCE, "team", name)
    }

    fn read(owner: &GrantOwner, principals: &[&str]) -> Statement {
        Statement::from_json(json!({"Sid": owner.sid("Objects"), "Effect": "Allow",
            "Principal": {"AWS": principals}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}))
        .expect("valid statement")
    }

    fn foreign() -> Statement {
        Statement::from_json(json!({"Sid": "Console", "Effect": "Deny", "Principal": "*",
            "Action": "s3:DeleteBucket", "Resource": "arn:aws:s3:::b"}))
        .expect("valid statement")
    }

    fn role(n: usize) -> String {
        format!("arn:aws:iam::111111111111:role/r{n}")
    }

    /// Converges the grants in `scope`, wanting `desired`, on `current` (compaction on).
    fn run(
        current: Option<&PolicyDocument>,
        scope: OwnershipScope,
        desired: &[Statement],
    ) -> crate::policy::Merged {
        converge(
            current,
            INSTANCE,
            true,
            &scope,
            &OwnershipScope::default(),
            desired,
        )
        .expect("converges")
    }

    /// Converges `owners` (each wanting read for its principals) on `current`.
    fn apply(
        current: Option<&PolicyDocument>,
        grants: &[(&GrantOwner, Vec<String>)],
    ) -> PolicyDocument {
        let owners: Vec<&GrantOwner> = grants.iter().map(|(o, _)| *o).collect();
        let desired: Vec<Statement> = grants
            .iter()
            .map(|(o, ps)| read(o, &ps.iter().map(String::as_str).collect::<Vec<_>>()))
            .collect();
        let merged = run(current, OwnershipScope::new(owners), &desired);
        merged.document
    }

    fn revoke(current: &PolicyDocument, gone: &GrantOwner) -> crate::policy::Merged {
        run(Some(current), OwnershipScope::new([gone]), &[])
    }

    /// Who may read, as (principal) set, from the document's meaning.
    fn readers(doc: &PolicyDocument) -> BTreeSet<String> {
        doc.statements
            .iter()
            .filter(|s| s.as_json().get("Effect") == Some(&json!("Allow")))
            .flat_map(|s| {
                split(s)
                    .expect("valid")
                    .map(|(_, ps)| ps)
                    .unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn grants_that_differ_only_in_principals_share_one_statement() {
        let (a, b, c) = (owner("a"), owner("b"), owner("c"));
        let start = PolicyDocument {
            statements: vec![foreign()],
            ..PolicyDocument::new()
        };
        let doc = apply(
            Some(&start),
            &[
                (&a, vec![role(1)]),
                (&b, vec![role(2), role(3)]),
                (&c, vec![role(1)]),
            ],
        );
        assert_eq!(doc.statements.len(), 2, "{}", doc.to_pretty_string());
        assert_eq!(doc.statements[0], foreign());
        let shared = &doc.statements[1];
        let sid = shared.sid().expect("sid");
        let mut members = owner_ids(INSTANCE, sid);
        members.sort();
        let mut expected = vec![a.id().to_string(), b.id().to_string(), c.id().to_string()];
        expected.sort();
        assert_eq!(members, expected);
        assert_eq!(readers(&doc), BTreeSet::from([role(1), role(2), role(3)]));
        // Smaller than the three statements it replaces.
        let plain = PolicyDocument {
            statements: vec![
                foreign(),
                read(&a, &[&role(1)]),
                read(&b, &[&role(2), &role(3)]),
                read(&c, &[&role(1)]),
            ],
            ..PolicyDocument::new()
        };
        assert!(doc.to_compact_string().len() < plain.to_compact_string().len());
    }

    #[test]
    fn a_converged_shared_statement_needs_no_write_for_any_member() {
        let (a, b) = (owner("a"), owner("b"));
        let doc = apply(None, &[(&a, vec![role(1)]), (&b, vec![role(2)])]);
        for (o, ps) in [(&a, vec![role(1)]), (&b, vec![role(2)])] {
            let merged = run(
                Some(&doc),
                OwnershipScope::new([o]),
                &[read(o, &ps.iter().map(String::as_str).collect::<Vec<_>>())],
            );
            assert_eq!(merged.decision, WriteDecision::Unchanged, "{}", o.name);
            assert!(merged.changes.is_empty());
            assert_eq!(merged.document, doc);
        }
    }

    #[test]
    fn revoking_one_grant_takes_only_its_principals_out() {
        let (a, b, c) = (owner("a"), owner("b"), owner("c"));
        let start = PolicyDocument {
            statements: vec![foreign()],
            ..PolicyDocument::new()
        };
        // a and c both name role 1: it stays until neither does.
        let doc = apply(
            Some(&start),
            &[
                (&a, vec![role(1), role(4)]),
                (&b, vec![role(2)]),
                (&c, vec![role(1)]),
            ],
        );
        let merged = revoke(&doc, &a);
        assert_eq!(merged.decision, WriteDecision::Put);
        assert_eq!(merged.changes.len(), 1);
        assert_eq!(merged.changes[0].owner, a);
        assert_eq!(merged.changes[0].kind, crate::policy::ChangeKind::Removed);
        let after = merged.document;
        assert_eq!(after.statements[0], foreign());
        assert_eq!(readers(&after), BTreeSet::from([role(1), role(2)]));
        let merged = revoke(&after, &c);
        assert_eq!(readers(&merged.document), BTreeSet::from([role(2)]));
        // b alone keeps a shared statement naming it, which it converges on without a write.
        let left = merged.document;
        let sid = left.statements[1].sid().expect("sid");
        assert_eq!(owner_ids(INSTANCE, sid), vec![b.id().to_string()]);
        let again = run(
            Some(&left),
            OwnershipScope::new([&b]),
            &[read(&b, &[&role(2)])],
        );
        assert_eq!(again.decision, WriteDecision::Unchanged);
        let merged = revoke(&left, &b);
        assert_eq!(merged.document.statements, vec![foreign()]);
    }

    #[test]
    fn a_lone_grant_keeps_its_plain_statement() {
        let a = owner("a");
        let doc = apply(None, &[(&a, vec![role(1)])]);
        assert_eq!(doc.statements, vec![read(&a, &[&role(1)])]);
    }

    #[test]
    fn a_principal_added_by_hand_goes_when_a_member_is_converged() {
        let (a, b, other) = (owner("a"), owner("b"), owner("other"));
        let doc = apply(None, &[(&a, vec![role(1)]), (&b, vec![role(2)])]);
        let mut json = doc.statements[0].as_json().clone();
        json.insert(
            "Principal".into(),
            json!({"AWS": [role(1), role(2), role(99)]}),
        );
        let tampered = PolicyDocument {
            statements: vec![Statement::from_json(Value::Object(json)).expect("valid")],
            ..PolicyDocument::new()
        };
        // Converging a grant that is not a member leaves the statement alone.
        let merged = run(Some(&tampered), OwnershipScope::new([&other]), &[]);
        assert_eq!(merged.decision, WriteDecision::Unchanged);
        // Converging a member takes the stranger out.
        let merged = run(
            Some(&tampered),
            OwnershipScope::new([&a]),
            &[read(&a, &[&role(1)])],
        );
        assert_eq!(merged.decision, WriteDecision::Put);
        assert_eq!(
            readers(&merged.document),
            BTreeSet::from([role(1), role(2)])
        );
    }

    #[test]
    fn principals_whose_tags_collide_never_share_a_statement() {
        // Find two roles whose principal tags collide (3 base-62 digits: a few hundred tries).
        let tag = |n| EntryForm::Base62.principal_tag(&canonical_aws_principal(&role(n)));
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let (x, y) = (0..1_000_000)
            .find_map(|n| seen.insert(tag(n), n).map(|m| (m, n)))
            .expect("a collision");
        let (a, b) = (owner("a"), owner("b"));
        let doc = apply(None, &[(&a, vec![role(x)]), (&b, vec![role(y)])]);
        assert_eq!(doc.statements.len(), 2, "{}", doc.to_pretty_string());
        for s in &doc.statements {
            assert_eq!(split(s).expect("valid").expect("aws principals").1.len(), 1);
        }
        let merged = revoke(&doc, &a);
        assert_eq!(readers(&merged.document), BTreeSet::from([role(y)]));
    }

    #[test]
    fn retained_grants_are_handed_over_out_of_shared_statements() {
        let (a, b) = (owner("a"), owner("b"));
        let doc = apply(None, &[(&a, vec![role(1)]), (&b, vec![role(2)])]);
        let merged = converge(
            Some(&doc),
            INSTANCE,
            true,
            &OwnershipScope::default(),
            &OwnershipScope::new([&a]),
            &[],
        )
        .expect("converges");
        assert_eq!(merged.decision, WriteDecision::Put);
        let after = merged.document;
        assert_eq!(readers(&after), BTreeSet::from([role(1), role(2)]));
        let retained: Vec<&Statement> = after
            .statements
            .iter()
            .filter(|s| s.sid().is_some_and(|sid| sid.starts_with("Retained")))
            .collect();
        assert_eq!(retained.len(), 1);
        assert_eq!(
            split(retained[0]).expect("valid").expect("aws").1,
            vec![role(1)]
        );
        // b's statement no longer names a's principal, and revoking b leaves the handed-over one.
        let merged = revoke(&after, &b);
        assert_eq!(readers(&merged.document), BTreeSet::from([role(1)]));
    }

    #[test]
    fn statements_of_other_instances_and_other_principal_kinds_are_not_compacted() {
        let mine = owner("a");
        let theirs = GrantOwner::new("other", "team", "a");
        let service = Statement::from_json(json!({"Sid": owner("svc").sid("Objects"), "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}))
        .expect("valid");
        let start = PolicyDocument {
            statements: vec![read(&theirs, &[&role(2)]), service.clone()],
            ..PolicyDocument::new()
        };
        let doc = apply(Some(&start), &[(&mine, vec![role(1)])]);
        assert_eq!(
            doc.statements,
            vec![
                read(&theirs, &[&role(2)]),
                service,
                read(&mine, &[&role(1)])
            ]
        );
    }

    #[test]
    fn anyone_shares_a_statement_only_with_anyone() {
        // Two organization grants (anyone, narrowed by the same condition: here, none) and a grant
        // of one role with the same shape: the first two share a statement naming `*`, the role
        // keeps its own; revoking one of the two leaves `*` to the other.
        let (a, b, c) = (owner("a"), owner("b"), owner("c"));
        let anyone = || vec!["*".to_string()];
        let doc = apply(None, &[(&a, anyone()), (&b, anyone()), (&c, vec![role(1)])]);
        assert_eq!(doc.statements.len(), 2, "{doc:?}");
        let shared: Vec<&Statement> = doc
            .statements
            .iter()
            .filter(|s| split(s).ok().flatten().is_some_and(|(_, ps)| ps == ["*"]))
            .collect();
        assert_eq!(shared.len(), 1, "{doc:?}");
        let sid = shared[0].sid().unwrap_or_default();
        let members = owner_ids(INSTANCE, sid);
        assert!(members.contains(&a.id().to_string()) && members.contains(&b.id().to_string()));
        assert!(!members.contains(&c.id().to_string()));

        let after = revoke(&doc, &a).document;
        assert_eq!(readers(&after), BTreeSet::from(["*".to_string(), role(1)]));
        let after = revoke(&after, &b).document;
        assert_eq!(readers(&after), BTreeSet::from([role(1)]));
        let after = revoke(&after, &c).document;
        assert!(after.statements.is_empty());
    }

    #[test]
    fn shared_sids_are_recognised_only_whole() {
        let (a, b) = (owner("a"), owner("b"));
        let doc = apply(None, &[(&a, vec![role(1)]), (&b, vec![role(2)])]);
        let sid = doc.statements[0].sid().expect("sid").to_string();
        assert!(sid.chars().all(|c| c.is_ascii_alphanumeric()), "{sid}");
        assert_eq!(owner_ids(INSTANCE, &sid).len(), 2);
        assert!(owner_ids("other", &sid).is_empty());
        assert!(owner_ids(INSTANCE, &sid[..sid.len() - 1]).is_empty());
        assert!(owner_ids(INSTANCE, &format!("{sid}X")).is_empty());
        assert!(owner_ids(INSTANCE, &sid.to_uppercase()).is_empty());
    }

    /// `doc` with its one shared statement's Sid written as before ids: `Shared`, each member's
    /// 16 hex digits and 5 hex digits hashing its principal.
    fn in_hex_form(doc: &PolicyDocument, members: &[(&GrantOwner, String)]) -> PolicyDocument {
        let shared = &doc.statements[0];
        let (shape, _) = split(shared).expect("valid").expect("aws principals");
        let instance = instance_sid_prefix(INSTANCE);
        let entries: String = members
            .iter()
            .map(|(o, p)| {
                let grant = &o.sid_prefix()[instance.len()..];
                let principal = EntryForm::Hex.principal_tag(&canonical_aws_principal(p));
                format!("{grant}{principal}")
            })
            .collect();
        let sid = format!("{instance}{SHAPE_MARK}{}00{entries}", shape_tag(&shape));
        let principals: Vec<String> = members.iter().map(|(_, p)| p.clone()).collect();
        PolicyDocument {
            statements: vec![with_principals(shared, &sid, &principals).expect("valid")],
            ..PolicyDocument::new()
        }
    }

    #[test]
    fn shared_statements_written_before_ids_are_read_and_rewritten_at_the_next_change() {
        let (a, b, c) = (owner("a"), owner("b"), owner("c"));
        let now = apply(None, &[(&a, vec![role(1)]), (&b, vec![role(2)])]);
        let before = in_hex_form(&now, &[(&a, role(1)), (&b, role(2))]);
        let sid = before.statements[0].sid().expect("sid").to_string();
        assert!(sid.contains("Shared") && !sid.contains("Group"), "{sid}");
        let mut members = owner_ids(INSTANCE, &sid);
        members.sort();
        let mut expected = vec![a.id().to_string(), b.id().to_string()];
        expected.sort();
        assert_eq!(members, expected);
        // A member that is converged finds its access there: nothing to write, kept as it is.
        let same = run(
            Some(&before),
            OwnershipScope::new([&a]),
            &[read(&a, &[&role(1)])],
        );
        assert_eq!(same.decision, WriteDecision::Unchanged);
        assert_eq!(same.document, before);
        // The next change writes today's form, with every member's access.
        let grown = apply(Some(&before), &[(&c, vec![role(3)])]);
        assert_eq!(grown.statements.len(), 1, "{}", grown.to_pretty_string());
        let sid = grown.statements[0].sid().expect("sid");
        assert!(sid.contains("Group"), "{sid}");
        assert_eq!(owner_ids(INSTANCE, sid).len(), 3);
        assert_eq!(readers(&grown), BTreeSet::from([role(1), role(2), role(3)]));
        // Revoking a member of the old form takes out only its principal.
        let merged = revoke(&before, &a);
        assert_eq!(readers(&merged.document), BTreeSet::from([role(2)]));
        let left = merged.document.statements[0].sid().expect("sid");
        assert_eq!(owner_ids(INSTANCE, left), vec![b.id().to_string()]);
    }

    #[test]
    fn an_entry_is_ten_characters_per_grant_and_principal() {
        let grants: Vec<GrantOwner> = (0..5).map(|n| owner(&format!("g{n}"))).collect();
        let two = apply(
            None,
            &[(&grants[0], vec![role(0)]), (&grants[1], vec![role(1)])],
        );
        let all: Vec<(&GrantOwner, Vec<String>)> = grants
            .iter()
            .enumerate()
            .map(|(n, o)| (o, vec![role(n)]))
            .collect();
        let five = apply(None, &all);
        let len = |d: &PolicyDocument| d.statements[0].sid().expect("sid").len();
        assert_eq!(len(&five) - len(&two), 3 * 10);
    }
}
