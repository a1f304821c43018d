//! Fuzzing of the policy document parser: arbitrary JSON trees (deep nesting, odd types, policy
//! shaped or not) and arbitrary strings never make it panic, and whatever it accepts also merges
//! (with an empty ownership scope, which must keep every statement) and round-trips through compact
//! JSON with the same meaning.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Number, Value, json};
use xacct::policy::{OwnershipScope, PolicyDocument, merge};

/// Strings that mean something to a policy, and some that mean nothing.
fn policy_string() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "2012-10-17",
            "2008-10-17",
            "Allow",
            "Deny",
            "allow",
            "*",
            "s3:GetObject",
            "s3:*",
            "arn:aws:s3:::bucket/*",
            "arn:aws:iam::111111111111:root",
            "111111111111",
            "AIDAEXAMPLEUNIQUEID1",
            "StringEquals",
            "ForAnyValue:StringLike",
            "aws:SourceIp",
            "Xacctbb9a036018a9f2e1313274Bucket",
            "",
            " ",
            "\u{0}",
            "é🦀",
        ])
        .prop_map(str::to_string),
        any::<String>(),
    ]
}

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number().prop_map(Value::Number),
        policy_string().prop_map(Value::String),
    ]
}

/// Any JSON tree, keys drawn from policy words and anything.
fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(policy_key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn policy_key() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "Version",
            "Id",
            "Statement",
            "Sid",
            "Effect",
            "Principal",
            "NotPrincipal",
            "AWS",
            "Service",
            "Federated",
            "Action",
            "NotAction",
            "Resource",
            "NotResource",
            "Condition",
            "StringEquals",
            "aws:SourceIp",
        ])
        .prop_map(str::to_string),
        any::<String>(),
    ]
}

/// A value that is one of a field's usual shapes (a string or a list of strings) or anything.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => policy_string().prop_map(Value::String),
        3 => vec(policy_string(), 0..4).prop_map(|v| json!(v)),
        1 => any_json(),
    ]
}

fn principal() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("*")),
        btree_map(
            select(vec!["AWS", "Service", "Federated", "CanonicalUser", "aws"]),
            field_value(),
            0..3
        )
        .prop_map(|m| json!(m)),
        any_json(),
    ]
}

fn condition() -> impl Strategy<Value = Value> {
    prop_oneof![
        btree_map(
            policy_string(),
            btree_map(policy_string(), field_value(), 0..3),
            0..3
        )
        .prop_map(|m| json!(m)),
        any_json(),
    ]
}

/// A statement: usual members with usual or odd values, sometimes a stray member.
fn statement() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(field_value()),
        proptest::option::of(prop_oneof![
            Just(json!("Allow")),
            Just(json!("Deny")),
            any_json()
        ]),
        proptest::option::of(principal()),
        proptest::option::of(field_value()),
        proptest::option::of(field_value()),
        proptest::option::of(field_value()),
        proptest::option::of(condition()),
        proptest::option::of((policy_key(), any_json())),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                sid,
                effect,
                principal,
                action,
                resource,
                not_resource,
                condition,
                extra,
                not_action,
                not_principal,
            )| {
                let mut m = Map::new();
                let mut put = |k: &str, v: Option<Value>| {
                    if let Some(v) = v {
                        m.insert(k.to_string(), v);
                    }
                };
                put("Sid", sid);
                put("Effect", effect);
                put(
                    if not_principal {
                        "NotPrincipal"
                    } else {
                        "Principal"
                    },
                    principal,
                );
                put(if not_action { "NotAction" } else { "Action" }, action);
                put("Resource", resource);
                put("NotResource", not_resource);
                put("Condition", condition);
                if let Some((k, v)) = extra {
                    m.insert(k, v);
                }
                Value::Object(m)
            },
        )
}

/// A document: Version, Statement as an object or a list, sometimes Id or stray members.
fn document() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(prop_oneof![
            3 => Just(json!("2012-10-17")),
            1 => leaf()
        ]),
        prop_oneof![
            1 => statement().prop_map(Some),
            4 => vec(statement(), 0..5).prop_map(|v| Some(Value::Array(v))),
            1 => any_json().prop_map(Some),
            1 => Just(None),
        ],
        proptest::option::of(any_json()),
    )
        .prop_map(|(version, statements, id)| {
            let mut m = Map::new();
            if let Some(v) = version {
                m.insert("Version".into(), v);
            }
            if let Some(s) = statements {
                m.insert("Statement".into(), s);
            }
            if let Some(id) = id {
                m.insert("Id".into(), id);
            }
            Value::Object(m)
        })
}

/// `value` inside `depth` arrays or single-member objects.
fn nested(value: Value, depth: usize, objects: bool) -> Value {
    (0..depth).fold(value, |v, i| {
        if objects && i % 2 == 0 {
            json!({ "Condition": v })
        } else {
            json!([v])
        }
    })
}

/// Parses `text`; whatever parses must merge (an empty scope keeps every statement) and round-trip.
fn check(text: &str) -> Result<(), TestCaseError> {
    let Ok(doc) = PolicyDocument::parse(text) else {
        return Ok(());
    };
    let merged = merge(Some(&doc), &OwnershipScope::default(), &[]);
    let merged = merged.map_err(|e| TestCaseError::fail(format!("merge failed: {e} on {text}")))?;
    prop_assert!(
        merged.changes.is_empty(),
        "an empty scope changed statements of {}",
        text
    );
    prop_assert_eq!(&merged.document.statements, &doc.statements);
    let compact = doc.to_compact_string();
    let again = PolicyDocument::parse(&compact);
    prop_assert!(
        again.is_ok(),
        "{} parsed, but its compact form {} does not: {:?}",
        text,
        compact,
        again.err()
    );
    let again = again.unwrap();
    prop_assert!(
        again.same_meaning(&doc),
        "{} does not round-trip: {} (canonical: {:?})",
        text,
        compact,
        doc.canonical().err()
    );
    prop_assert!(doc.same_meaning(&again));
    prop_assert!(merged.document.same_meaning(&doc));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn policy_shaped_json_never_panics_and_round_trips(value in document()) {
        check(&value.to_string())?;
        check(&serde_json::to_string_pretty(&value).unwrap())?;
    }

    #[test]
    fn any_json_never_panics(value in any_json()) {
        check(&value.to_string())?;
        // The same tree as the statement list, and as a single statement.
        check(&json!({"Version": "2012-10-17", "Statement": value.clone()}).to_string())?;
        check(&json!({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": value}]}).to_string())?;
    }

    #[test]
    fn deep_nesting_never_panics(depth in 0usize..300, objects in any::<bool>(), leaf in leaf()) {
        let deep = nested(leaf, depth, objects);
        check(&deep.to_string())?;
        check(&json!({"Statement": deep.clone()}).to_string())?;
        check(&json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Principal": {"AWS": deep.clone()}}}).to_string())?;
        check(&json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"k": deep}}}}).to_string())?;
    }

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        check(&text)?;
    }

    #[test]
    fn spliced_json_never_panics(value in document(), cut in any::<prop::sample::Index>(), insert in policy_string()) {
        // Valid JSON with a piece cut out or pasted in: mostly invalid, sometimes valid and odd.
        let text = value.to_string();
        let at = cut.index(text.len() + 1);
        let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        check(&format!("{}{}{}", &text[..at], insert, &text[at..]))?;
        check(&text[..at])?;
    }
}

/// Hand-picked odd inputs, kept as regressions.
#[test]
fn odd_inputs_do_not_panic() {
    for text in [
        "",
        "null",
        "[]",
        "{}",
        "\"Statement\"",
        "{\"Statement\": null}",
        "{\"Statement\": []}",
        "{\"Statement\": [null]}",
        "{\"Statement\": [[]]}",
        "{\"Statement\": {}}",
        "{\"Version\": 1}",
        "{\"Version\": \"2012-10-17\", \"Version\": \"2008-10-17\"}",
        "{\"Statement\": {\"Effect\": \"Allow\", \"Action\": [], \"Resource\": []}}",
        "{\"Statement\": {\"Effect\": \"Allow\", \"Principal\": {\"AWS\": []}, \"Action\": \"*\"}}",
        "{\"Statement\": {\"Effect\": \"Allow\", \"Action\": \"*\", \"Condition\": {\"StringEquals\": {}}}}",
        "{\"Statement\": {\"Effect\": \"Allow\", \"Action\": \"*\", \"Condition\": {\"StringEquals\": {\"k\": [[[[1]]]]}}}}",
        "{\"Statement\": {\"Effect\": \"Allow\", \"Action\": 1e400}}",
        "{\"Statement\": {\"Effect\": \"Allow\", \"Action\": -0.0}}",
        "{\"Statement\": {\"Effect\": \"Allow\", \"Action\": 18446744073709551615}}",
        "{\"Statement\": {\"Effect\": \"Allow\", \"Action\": \"\\ud800\"}}",
        "\u{feff}{}",
    ] {
        check(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    check(&deep).unwrap();
    let deep_objects = format!(
        "{{\"Statement\": {{\"Effect\": \"Allow\", \"Action\": \"*\", \"Condition\": {}1{}}}}}",
        "{\"a\":".repeat(100_000),
        "}".repeat(100_000)
    );
    check(&deep_objects).unwrap();
}
