//! Property tests for the policy merge and the canonical comparison it relies on.
//!
//! Cases are built from a pool of grants (all of instance `default`, plus one grant of another
//! instance with the same namespace and name as the first), a random subset of which is in scope.
//! Each statement of the current document is generated with a label saying who owns it, so the
//! properties judge the merge against the generator, not against the crate's own ownership code.

use std::collections::BTreeSet;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::{Map, Number, Value, json};
use xacct::policy::{
    ChangeKind, GrantOwner, OwnershipScope, PolicyDocument, Statement, WriteDecision,
    instance_sid_prefix, merge,
};

const INSTANCE: &str = "default";
/// Grants of instance `default`, as (namespace, name). Any subset of them is in scope.
const POOL: [(&str, &str); 5] = [
    ("team", "alpha"),
    ("team", "beta"),
    ("ops", "alpha"),
    ("team-a", "b"),
    ("team", "a-b"),
];
/// One more grant, never in scope: instance `other`, same namespace and name as `POOL[0]`.
const GRANTS: usize = POOL.len() + 1;
const PURPOSES: [&str; 4] = ["Objects", "Bucket", "Use", "Key2"];
/// An action name no generator produces, for the sensitivity check.
const CHANGED_ACTION: &str = "xacctprop:ChangedAction";

fn owner(grant: usize) -> GrantOwner {
    match POOL.get(grant) {
        Some((namespace, name)) => GrantOwner::new(INSTANCE, namespace, name),
        None => GrantOwner::new("other", POOL[0].0, POOL[0].1),
    }
}

// ---------------------------------------------------------------------------------------------
// Statement bodies
// ---------------------------------------------------------------------------------------------

fn string_or_list(s: BoxedStrategy<String>) -> BoxedStrategy<Value> {
    prop_oneof![
        s.clone().prop_map(Value::String),
        vec(s, 1..4).prop_map(|v| Value::Array(v.into_iter().map(Value::String).collect())),
    ]
    .boxed()
}

fn account() -> BoxedStrategy<String> {
    prop_oneof![
        Just("111111111111".to_string()),
        Just("222222222222".to_string()),
        "[0-9]{12}",
    ]
    .boxed()
}

fn aws_principal() -> BoxedStrategy<String> {
    prop_oneof![
        Just("*".to_string()),
        account(),
        account().prop_map(|a| format!("arn:aws:iam::{a}:root")),
        (account(), "[A-Za-z][A-Za-z0-9+=,.@_-]{0,10}")
            .prop_map(|(a, r)| format!("arn:aws:iam::{a}:role/{r}")),
        "(AROA|AIDA)[A-Z0-9]{16,17}",
    ]
    .boxed()
}

fn service_principal() -> BoxedStrategy<String> {
    select(vec![
        "ecs-tasks.amazonaws.com",
        "lambda.amazonaws.com",
        "cloudtrail.amazonaws.com",
        "s3.amazonaws.com",
    ])
    .prop_map(str::to_string)
    .boxed()
}

fn principal() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(json!("*")),
        string_or_list(aws_principal()).prop_map(|v| json!({ "AWS": v })),
        string_or_list(service_principal()).prop_map(|v| json!({ "Service": v })),
        (
            string_or_list(aws_principal()),
            string_or_list(service_principal())
        )
            .prop_map(|(a, s)| json!({ "AWS": a, "Service": s })),
        Just(json!({ "Federated": "arn:aws:iam::111111111111:oidc-provider/oidc.example.com" })),
    ]
    .boxed()
}

fn action() -> BoxedStrategy<String> {
    select(vec![
        "s3:GetObject",
        "s3:PutObject",
        "s3:ListBucket",
        "s3:*",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "sts:AssumeRole",
        "ecr:BatchGetImage",
        "*",
    ])
    .prop_map(str::to_string)
    .boxed()
}

fn resource() -> BoxedStrategy<String> {
    prop_oneof![
        Just("*".to_string()),
        "[a-z][a-z0-9-]{0,8}".prop_map(|b| format!("arn:aws:s3:::{b}")),
        "[a-z][a-z0-9-]{0,8}".prop_map(|b| format!("arn:aws:s3:::{b}/*")),
        (account(), "[a-f0-9]{8}").prop_map(|(a, k)| format!("arn:aws:kms:eu-west-1:{a}:key/{k}")),
    ]
    .boxed()
}

fn condition_scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        "[A-Za-z0-9:/*.-]{0,12}".prop_map(Value::String),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        short_decimal().prop_map(Value::Number),
    ]
    .boxed()
}

/// A decimal with few digits, such as `-12.5`. (Arbitrary `f64`s do not survive a JSON round trip:
/// see `condition_numbers_survive_a_json_round_trip`.)
fn short_decimal() -> BoxedStrategy<Number> {
    (-1_000_000i64..1_000_000, 1..4i32)
        .prop_filter_map("finite", |(n, k)| {
            Number::from_f64(n as f64 / 10f64.powi(k))
        })
        .boxed()
}

fn condition() -> BoxedStrategy<Value> {
    let values = prop_oneof![
        condition_scalar(),
        vec(condition_scalar(), 1..4).prop_map(Value::Array),
    ];
    // Keys are distinct even ignoring case: IAM ANDs the keys of an operator.
    let keys = btree_map(
        select(vec![
            "aws:SourceAccount",
            "aws:PrincipalOrgID",
            "kms:ViaService",
            "aws:SecureTransport",
            "s3:prefix",
        ]),
        values,
        1..3,
    );
    btree_map(
        select(vec![
            "StringEquals",
            "StringLike",
            "Bool",
            "NumericLessThan",
            "ArnLike",
        ]),
        keys,
        1..3,
    )
    .prop_map(|ops| {
        Value::Object(
            ops.into_iter()
                .map(|(op, keys)| {
                    let keys: Map<String, Value> =
                        keys.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                    (op.to_string(), Value::Object(keys))
                })
                .collect(),
        )
    })
    .boxed()
}

/// A statement without its Sid. Always has `Action` or `NotAction`.
fn body() -> BoxedStrategy<Map<String, Value>> {
    (
        select(vec!["Allow", "Deny"]),
        prop::option::of((any::<bool>(), principal())),
        (any::<bool>(), string_or_list(action())),
        prop::option::of((any::<bool>(), string_or_list(resource()))),
        prop::option::weighted(0.3, condition()),
        any::<bool>(),
    )
        .prop_map(
            |(effect, principal, action, resource, condition, reverse)| {
                let mut members: Vec<(String, Value)> = vec![("Effect".into(), json!(effect))];
                if let Some((not, p)) = principal {
                    let key = if not { "NotPrincipal" } else { "Principal" };
                    members.push((key.into(), p));
                }
                let (not, a) = action;
                members.push((if not { "NotAction" } else { "Action" }.into(), a));
                if let Some((not, r)) = resource {
                    members.push((if not { "NotResource" } else { "Resource" }.into(), r));
                }
                if let Some(c) = condition {
                    members.push(("Condition".into(), c));
                }
                if reverse {
                    members.reverse();
                }
                members.into_iter().collect()
            },
        )
        .boxed()
}

fn with_sid(body: &Map<String, Value>, sid: Option<&str>, sid_first: bool) -> Statement {
    let mut map = Map::new();
    let sid = sid.map(|s| ("Sid".to_string(), Value::String(s.to_string())));
    if sid_first {
        map.extend(sid.clone());
    }
    map.extend(body.iter().map(|(k, v)| (k.clone(), v.clone())));
    if !sid_first {
        map.extend(sid);
    }
    Statement::from_json(Value::Object(map)).expect("generated statements are valid")
}

// ---------------------------------------------------------------------------------------------
// Meaning-preserving rewrites
// ---------------------------------------------------------------------------------------------

struct Bits<'a> {
    bits: &'a [bool],
    at: usize,
}

impl Bits<'_> {
    fn next(&mut self) -> bool {
        let bit = self.bits.get(self.at % self.bits.len().max(1)).copied();
        self.at += 1;
        bit.unwrap_or(false)
    }
}

/// A one-element list as its bare element, and a bare value as a one-element list.
fn toggle_list(value: Value, bit: bool) -> Value {
    if !bit {
        return value;
    }
    match value {
        Value::Array(mut items) if items.len() == 1 => items.remove(0),
        Value::Array(items) => Value::Array(items),
        scalar @ (Value::String(_) | Value::Bool(_) | Value::Number(_)) => {
            Value::Array(vec![scalar])
        }
        other => other,
    }
}

fn recase(s: &str, bits: &mut Bits) -> String {
    match (bits.next(), bits.next()) {
        (true, true) => s.to_ascii_uppercase(),
        (true, false) => s.to_ascii_lowercase(),
        _ => s.to_string(),
    }
}

fn recase_actions(value: &Value, bits: &mut Bits) -> Value {
    match value {
        Value::String(s) => Value::String(recase(s, bits)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| recase_actions(v, bits)).collect())
        }
        other => other.clone(),
    }
}

fn principal_variant(value: &Value, bits: &mut Bits) -> Value {
    match value {
        Value::String(s) if s == "*" => {
            if bits.next() {
                json!({ "AWS": toggle_list(json!("*"), bits.next()) })
            } else {
                value.clone()
            }
        }
        Value::Object(kinds) => {
            let only_star = kinds.len() == 1
                && matches!(kinds.get("AWS"), Some(v) if v == &json!("*") || v == &json!(["*"]));
            if only_star && bits.next() {
                return json!("*");
            }
            Value::Object(
                kinds
                    .iter()
                    .map(|(k, v)| (k.clone(), toggle_list(v.clone(), bits.next())))
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

fn condition_value_variant(value: &Value, bits: &mut Bits) -> Value {
    let scalar = |v: &Value, bits: &mut Bits| match v {
        Value::Bool(b) if bits.next() => Value::String(b.to_string()),
        Value::Number(n) if bits.next() => Value::String(n.to_string()),
        other => other.clone(),
    };
    let value = match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| scalar(v, bits)).collect()),
        other => scalar(other, bits),
    };
    toggle_list(value, bits.next())
}

fn condition_variant(value: &Value, bits: &mut Bits) -> Value {
    let Value::Object(ops) = value else {
        return value.clone();
    };
    Value::Object(
        ops.iter()
            .map(|(op, keys)| {
                let Value::Object(keys) = keys else {
                    return (op.clone(), keys.clone());
                };
                let keys = keys
                    .iter()
                    .map(|(k, v)| (recase(k, bits), condition_value_variant(v, bits)))
                    .collect();
                (op.clone(), Value::Object(keys))
            })
            .collect(),
    )
}

/// The same statement written differently: lists and bare values swapped, action names and
/// condition keys re-cased, `"*"` and `{"AWS":"*"}` swapped, booleans and numbers in conditions as
/// strings, members in another order.
fn reformat(statement: &Map<String, Value>, bits: &[bool]) -> Map<String, Value> {
    let mut bits = Bits { bits, at: 0 };
    let mut members: Vec<(String, Value)> = statement
        .iter()
        .map(|(k, v)| {
            let v = match k.as_str() {
                "Action" | "NotAction" => {
                    let recased = recase_actions(v, &mut bits);
                    toggle_list(recased, bits.next())
                }
                "Resource" | "NotResource" => toggle_list(v.clone(), bits.next()),
                "Principal" | "NotPrincipal" => principal_variant(v, &mut bits),
                "Condition" => condition_variant(v, &mut bits),
                _ => v.clone(),
            };
            (k.clone(), v)
        })
        .collect();
    if bits.next() {
        members.reverse();
    }
    members.into_iter().collect()
}

fn reformat_statement(statement: &Statement, bits: &[bool]) -> Statement {
    Statement::from_json(Value::Object(reformat(statement.as_json(), bits)))
        .expect("a reformatted statement is valid")
}

// ---------------------------------------------------------------------------------------------
// Merge cases
// ---------------------------------------------------------------------------------------------

/// A Sid that no grant owns, some of them deliberately close to owned ones.
#[derive(Debug, Clone)]
enum ForeignSid {
    None,
    Plain(String),
    /// A grant's prefix followed by something that is not a purpose (or nothing).
    AfterPrefix(usize, String),
    /// The instance prefix, a grant tag of no grant in the pool, a purpose.
    UnknownGrant(String, usize),
    /// `Xacct` and a tag of another instance.
    OtherInstancePrefix(String),
}

impl ForeignSid {
    fn resolve(&self) -> Option<String> {
        match self {
            ForeignSid::None => None,
            ForeignSid::Plain(s) => Some(s.clone()),
            ForeignSid::AfterPrefix(grant, suffix) => {
                Some(format!("{}{suffix}", owner(*grant).sid_prefix()))
            }
            ForeignSid::UnknownGrant(tag, purpose) => Some(format!(
                "{}{tag}{}",
                instance_sid_prefix(INSTANCE),
                PURPOSES[*purpose]
            )),
            ForeignSid::OtherInstancePrefix(rest) => {
                Some(format!("{}{rest}", instance_sid_prefix("another")))
            }
        }
    }
}

fn foreign_sid() -> BoxedStrategy<ForeignSid> {
    prop_oneof![
        2 => Just(ForeignSid::None),
        2 => "[A-Za-z0-9]{1,12}".prop_map(ForeignSid::Plain),
        1 => "\\PC{0,12}".prop_map(ForeignSid::Plain),
        3 => (
            0..GRANTS,
            "|[a-z0-9][A-Za-z0-9]{0,5}|[A-Z][a-z]{0,4}[-_ .:][A-Za-z0-9]{0,3}|[-_ ][A-Z][a-z]{0,4}"
        )
            .prop_map(|(g, s)| ForeignSid::AfterPrefix(g, s)),
        1 => ("[0-9a-f]{16}", 0..PURPOSES.len()).prop_map(|(t, p)| ForeignSid::UnknownGrant(t, p)),
        1 => "[0-9a-f]{16}[A-Z][a-z]{1,5}".prop_map(ForeignSid::OtherInstancePrefix),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
enum Item {
    Foreign(ForeignSid, Map<String, Value>, bool),
    Owned(usize, usize, Map<String, Value>, bool),
}

fn item() -> BoxedStrategy<Item> {
    prop_oneof![
        (foreign_sid(), body(), any::<bool>()).prop_map(|(s, b, f)| Item::Foreign(s, b, f)),
        (0..GRANTS, 0..PURPOSES.len(), body(), any::<bool>())
            .prop_map(|(g, p, b, f)| Item::Owned(g, p, b, f)),
    ]
    .boxed()
}

/// What a grant in scope wants for one purpose.
#[derive(Debug, Clone)]
enum Want {
    Absent,
    Fresh(Map<String, Value>, bool),
    /// The first current statement of that Sid written differently (or the body, if there is none).
    SameAsCurrent(Map<String, Value>, Vec<bool>),
}

fn want() -> BoxedStrategy<Want> {
    prop_oneof![
        3 => Just(Want::Absent),
        1 => (body(), any::<bool>()).prop_map(|(b, f)| Want::Fresh(b, f)),
        2 => (body(), vec(any::<bool>(), 1..32)).prop_map(|(b, bits)| Want::SameAsCurrent(b, bits)),
    ]
    .boxed()
}

/// Who owns a statement of the current document, as the generator made it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Label {
    Foreign,
    Owned(usize),
}

#[derive(Debug)]
struct Case {
    in_scope: [bool; GRANTS],
    current: Option<PolicyDocument>,
    /// One label per statement of `current`.
    labels: Vec<Label>,
    desired: Vec<Statement>,
    /// Sids of desired statements written as a same-meaning copy of the current statement.
    same_as_current: BTreeSet<String>,
}

impl Case {
    fn owners_in_scope(&self) -> Vec<GrantOwner> {
        (0..GRANTS)
            .filter(|g| self.in_scope[*g])
            .map(owner)
            .collect()
    }

    fn scope(&self) -> OwnershipScope {
        OwnershipScope::new(&self.owners_in_scope())
    }

    fn current_statements(&self) -> &[Statement] {
        self.current
            .as_ref()
            .map(|d| d.statements.as_slice())
            .unwrap_or_default()
    }

    fn in_scope_label(&self, label: Label) -> bool {
        matches!(label, Label::Owned(g) if self.in_scope[g])
    }

    /// Every Sid a grant in scope can have in these cases.
    fn in_scope_sids(&self) -> BTreeSet<String> {
        self.owners_in_scope()
            .iter()
            .flat_map(|o| PURPOSES.map(|p| o.sid(p)))
            .collect()
    }

    /// The current statements that are not owned by a grant in scope, in order.
    fn expected_kept(&self) -> Vec<&Statement> {
        self.current_statements()
            .iter()
            .zip(&self.labels)
            .filter(|(_, l)| !self.in_scope_label(**l))
            .map(|(s, _)| s)
            .collect()
    }
}

fn case() -> impl Strategy<Value = Case> {
    (
        vec(any::<bool>(), POOL.len()),
        vec(item(), 0..10),
        prop::bool::weighted(0.1),
        (
            prop::option::of(select(vec!["2012-10-17", "2008-10-17"])),
            prop::option::of("[a-z0-9-]{1,10}"),
        ),
        vec(want(), POOL.len() * PURPOSES.len())
            .prop_map(|w| w.into_iter().enumerate().collect::<Vec<_>>())
            .prop_shuffle(),
    )
        .prop_map(|(mask, items, absent, (version, id), wants)| {
            let mut in_scope = [false; GRANTS];
            in_scope[..POOL.len()].copy_from_slice(&mask);
            let (current, labels) = if absent {
                (None, Vec::new())
            } else {
                let mut statements = Vec::new();
                let mut labels = Vec::new();
                for item in &items {
                    match item {
                        Item::Foreign(sid, body, first) => {
                            statements.push(with_sid(body, sid.resolve().as_deref(), *first));
                            labels.push(Label::Foreign);
                        }
                        Item::Owned(g, p, body, first) => {
                            statements.push(with_sid(
                                body,
                                Some(&owner(*g).sid(PURPOSES[*p])),
                                *first,
                            ));
                            labels.push(Label::Owned(*g));
                        }
                    }
                }
                let mut other = Map::new();
                if let Some(id) = id {
                    other.insert("Id".into(), json!(id));
                }
                let doc = PolicyDocument {
                    version: version.map(str::to_string),
                    statements,
                    other,
                };
                (Some(doc), labels)
            };
            let mut desired = Vec::new();
            let mut same_as_current = BTreeSet::new();
            for (slot, want) in wants {
                let (g, p) = (slot / PURPOSES.len(), slot % PURPOSES.len());
                if !in_scope[g] {
                    continue;
                }
                let sid = owner(g).sid(PURPOSES[p]);
                match want {
                    Want::Absent => {}
                    Want::Fresh(body, first) => desired.push(with_sid(&body, Some(&sid), first)),
                    Want::SameAsCurrent(body, bits) => {
                        let existing = current
                            .iter()
                            .flat_map(|d| &d.statements)
                            .find(|s| s.sid() == Some(sid.as_str()));
                        match existing {
                            Some(s) => {
                                desired.push(reformat_statement(s, &bits));
                                same_as_current.insert(sid);
                            }
                            None => desired.push(with_sid(&body, Some(&sid), true)),
                        }
                    }
                }
            }
            Case {
                in_scope,
                current,
                labels,
                desired,
                same_as_current,
            }
        })
}

/// A document of 1..6 statements (with or without Sids) and meaning-preserving rewrite bits.
fn document_and_bits() -> impl Strategy<Value = (PolicyDocument, Vec<Vec<bool>>)> {
    (
        vec(
            (
                prop_oneof![
                    Just(None),
                    "[A-Za-z0-9]{1,8}".prop_map(Some),
                    (0..GRANTS, 0..PURPOSES.len())
                        .prop_map(|(g, p)| Some(owner(g).sid(PURPOSES[p]))),
                ],
                body(),
                any::<bool>(),
            ),
            1..6,
        ),
        vec(vec(any::<bool>(), 1..48), 6),
    )
        .prop_map(|(statements, bits)| {
            let statements = statements
                .iter()
                .map(|(sid, body, first)| with_sid(body, sid.as_deref(), *first))
                .collect();
            (
                PolicyDocument {
                    statements,
                    ..PolicyDocument::new()
                },
                bits,
            )
        })
}

/// Replaces one action name of the statement with one it does not have.
fn change_one_action(statement: &Statement, which: Index) -> Statement {
    let mut map = statement.as_json().clone();
    let key = if map.contains_key("Action") {
        "Action"
    } else {
        "NotAction"
    };
    let value = map
        .get_mut(key)
        .expect("every generated statement has actions");
    match value {
        Value::Array(items) => {
            let i = which.index(items.len());
            items[i] = json!(CHANGED_ACTION);
        }
        other => *other = json!(CHANGED_ACTION),
    }
    Statement::from_json(Value::Object(map)).expect("still valid")
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // Failures are reported with their minimal input; no regression files next to the tests.
        failure_persistence: None,
        ..ProptestConfig::with_cases(256)
    }
}

proptest! {
    #![proptest_config(config())]

    /// 1. Every statement not owned by a grant in scope is in the merged document, unchanged and
    /// in the same relative order; nothing else that is not ours appears. Top-level members stay.
    #[test]
    fn foreign_statements_are_preserved_in_order(case in case()) {
        let merged = merge(case.current.as_ref(), &case.scope(), &case.desired).expect("merges");
        let ours = case.in_scope_sids();
        let kept: Vec<&Statement> = merged
            .document
            .statements
            .iter()
            .filter(|s| !s.sid().is_some_and(|sid| ours.contains(sid)))
            .collect();
        prop_assert_eq!(kept, case.expected_kept());
        if let Some(current) = &case.current {
            prop_assert_eq!(&merged.document.version, &current.version);
            prop_assert_eq!(&merged.document.other, &current.other);
        }
    }

    /// 2. Every desired statement is in the merged document exactly once, and it is the only
    /// statement of its Sid; no other statement of a grant in scope remains.
    #[test]
    fn desired_statements_are_present_exactly_once(case in case()) {
        let scope = case.scope();
        let merged = merge(case.current.as_ref(), &scope, &case.desired).expect("merges");
        let statements = &merged.document.statements;
        for wanted in &case.desired {
            prop_assert_eq!(statements.iter().filter(|s| *s == wanted).count(), 1);
            prop_assert_eq!(statements.iter().filter(|s| s.sid() == wanted.sid()).count(), 1);
        }
        let ours = case.in_scope_sids();
        for statement in statements {
            let owned = statement.sid().is_some_and(|sid| ours.contains(sid));
            prop_assert_eq!(owned, scope.owner_of(statement.sid()).is_some());
            if owned {
                prop_assert!(case.desired.contains(statement), "left over: {:?}", statement);
            }
        }
    }

    /// 3. Merging again, into the merged document or into its compact JSON read back, changes
    /// nothing. A first merge without changes leaves the meaning as it was.
    #[test]
    fn merging_is_idempotent(case in case()) {
        let scope = case.scope();
        let merged = merge(case.current.as_ref(), &scope, &case.desired).expect("merges");
        prop_assert_eq!(merged.decision == WriteDecision::Unchanged, merged.changes.is_empty());
        if merged.decision == WriteDecision::Unchanged {
            let before = case.current.clone().unwrap_or_default();
            prop_assert!(merged.document.same_meaning(&before));
        }

        let again = merge(Some(&merged.document), &scope, &case.desired).expect("merges");
        prop_assert_eq!(again.decision, WriteDecision::Unchanged);
        prop_assert!(again.changes.is_empty(), "changes: {:?}", again.changes);
        prop_assert_eq!(&again.document, &merged.document);

        let text = merged.document.to_compact_string();
        let read_back = PolicyDocument::parse(&text).expect("own output parses");
        let again = merge(Some(&read_back), &scope, &case.desired).expect("merges");
        prop_assert_eq!(again.decision, WriteDecision::Unchanged, "read back from {}", text);
        prop_assert!(again.changes.is_empty(), "changes: {:?}", again.changes);
    }

    /// 4. Merging nothing removes every statement of the grants in scope and keeps the rest;
    /// the policy is deleted only when nothing is left and something was removed.
    #[test]
    fn merging_nothing_removes_ours_only(case in case()) {
        let scope = case.scope();
        let merged = merge(case.current.as_ref(), &scope, &[]).expect("merges");
        let statements = &merged.document.statements;
        let ours = case.in_scope_sids();
        for statement in statements {
            prop_assert!(scope.owner_of(statement.sid()).is_none());
            prop_assert!(!statement.sid().is_some_and(|sid| ours.contains(sid)));
        }
        prop_assert_eq!(statements.iter().collect::<Vec<_>>(), case.expected_kept());

        let removed = case.labels.iter().filter(|l| case.in_scope_label(**l)).count();
        prop_assert_eq!(merged.changes.len(), removed);
        prop_assert!(merged.changes.iter().all(|c| c.kind == ChangeKind::Removed));
        prop_assert_eq!(
            merged.decision == WriteDecision::Delete,
            statements.is_empty() && !merged.changes.is_empty()
        );
        if case.labels.iter().any(|l| !case.in_scope_label(*l)) {
            prop_assert_ne!(merged.decision, WriteDecision::Delete);
        }
    }

    /// 5. The canonical comparison ignores statement order and how a statement is written, and
    /// sees a changed action name.
    #[test]
    fn canonical_comparison_ignores_form_and_sees_actions(
        (doc, bits) in document_and_bits(),
        order in Just((0..6).collect::<Vec<usize>>()).prop_shuffle(),
        target in any::<Index>(),
        element in any::<Index>(),
    ) {
        let statements: Vec<Statement> = order
            .iter()
            .filter(|i| **i < doc.statements.len())
            .map(|i| reformat_statement(&doc.statements[*i], &bits[*i]))
            .collect();
        let variant = PolicyDocument { statements, ..doc.clone() };
        prop_assert!(doc.same_meaning(&variant), "{} vs {}", doc.to_compact_string(), variant.to_compact_string());
        prop_assert_eq!(doc.canonical().expect("reads"), variant.canonical().expect("reads"));
        for (i, statement) in doc.statements.iter().enumerate() {
            prop_assert!(statement.same_meaning(&reformat_statement(statement, &bits[i])));
        }

        let mut changed = variant.clone();
        let i = target.index(changed.statements.len());
        changed.statements[i] = change_one_action(&changed.statements[i], element);
        prop_assert!(!changed.statements[i].same_meaning(&variant.statements[i]));
        prop_assert!(!doc.same_meaning(&changed), "{} vs {}", doc.to_compact_string(), changed.to_compact_string());
        prop_assert!(!variant.same_meaning(&changed));
    }

    /// 6. Statements of grants out of scope are kept exactly and in order, though their Sids
    /// share the instance prefix of the grants in scope.
    #[test]
    fn statements_of_grants_out_of_scope_are_kept(case in case()) {
        let merged = merge(case.current.as_ref(), &case.scope(), &case.desired).expect("merges");
        let prefix = instance_sid_prefix(INSTANCE);
        let expected: Vec<&Statement> = case
            .current_statements()
            .iter()
            .zip(&case.labels)
            .filter(|(_, l)| matches!(l, Label::Owned(g) if !case.in_scope[*g]))
            .map(|(s, _)| s)
            .collect();
        let theirs: BTreeSet<String> = (0..GRANTS)
            .filter(|g| !case.in_scope[*g])
            .flat_map(|g| PURPOSES.map(|p| owner(g).sid(p)))
            .collect();
        for statement in &expected {
            let sid = statement.sid().expect("owned statements have Sids");
            prop_assert!(sid.starts_with(&prefix) || sid.starts_with(&instance_sid_prefix("other")));
        }
        let kept: Vec<&Statement> = merged
            .document
            .statements
            .iter()
            .filter(|s| s.sid().is_some_and(|sid| theirs.contains(sid)))
            .collect();
        prop_assert_eq!(kept, expected);
    }

    /// 7. The reported changes match what the merge did: a missing statement is Added, one
    /// written differently with the same meaning is not reported, every extra or unwanted
    /// statement of ours is Removed; changes come in Sid order.
    #[test]
    fn reported_changes_match(case in case()) {
        let merged = merge(case.current.as_ref(), &case.scope(), &case.desired).expect("merges");
        let count = |sid: &str, kind: ChangeKind| {
            merged.changes.iter().filter(|c| c.sid == sid && c.kind == kind).count()
        };
        let present = |sid: &str| {
            case.current_statements().iter().filter(|s| s.sid() == Some(sid)).count()
        };
        for sid in case.in_scope_sids() {
            let wanted = case.desired.iter().find(|d| d.sid() == Some(sid.as_str()));
            let n = present(&sid);
            match wanted {
                None => {
                    prop_assert_eq!(count(&sid, ChangeKind::Removed), n);
                    prop_assert_eq!(count(&sid, ChangeKind::Added) + count(&sid, ChangeKind::Changed), 0);
                }
                Some(_) if n == 0 => {
                    prop_assert_eq!(count(&sid, ChangeKind::Added), 1);
                    prop_assert_eq!(count(&sid, ChangeKind::Changed) + count(&sid, ChangeKind::Removed), 0);
                }
                Some(_) => {
                    prop_assert_eq!(count(&sid, ChangeKind::Added), 0);
                    prop_assert_eq!(count(&sid, ChangeKind::Removed), n - 1);
                    if case.same_as_current.contains(&sid) {
                        prop_assert_eq!(count(&sid, ChangeKind::Changed), 0);
                    }
                }
            }
        }
        let order: Vec<(&String, ChangeKind)> = merged.changes.iter().map(|c| (&c.sid, c.kind)).collect();
        let mut sorted = order.clone();
        sorted.sort();
        prop_assert_eq!(order, sorted);
        for change in &merged.changes {
            prop_assert!(case.in_scope[(0..GRANTS).find(|g| owner(*g) == change.owner).expect("a pool grant")]);
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// A statement with a number in a Condition, written out as compact JSON and read back, has the
    /// same meaning as before.
    ///
    /// Ignored: fails today. serde_json is built without `float_roundtrip`, so some numbers read
    /// back one ULP off (`5.299801721049145e-56` reads as `5.299801721049144e-56`), the canonical
    /// text of the value differs, and a desired statement holding such a number is `Changed` on
    /// every merge against the policy as read back (fixed by serde_json's float_roundtrip).
    #[test]
    fn condition_numbers_survive_a_json_round_trip(
        x in any::<f64>().prop_filter_map("finite", Number::from_f64),
    ) {
        let owner = owner(0);
        let wanted = Statement::from_json(json!({
            "Sid": owner.sid("Use"),
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": "*",
            "Condition": {"NumericLessThan": {"s3:max-keys": x}},
        }))
        .expect("valid");
        let doc = PolicyDocument { statements: vec![wanted.clone()], ..PolicyDocument::new() };
        let read_back = PolicyDocument::parse(&doc.to_compact_string()).expect("parses");
        prop_assert!(read_back.statements[0].same_meaning(&wanted), "{}", doc.to_compact_string());
        let merged = merge(Some(&read_back), &OwnershipScope::new([&owner]), &[wanted]).expect("merges");
        prop_assert_eq!(merged.decision, WriteDecision::Unchanged);
    }
}
