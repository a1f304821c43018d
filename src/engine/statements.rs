//! The statements a grant wants in its resource's policy.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::actions::{ActionGroup, groups_of_explicit, preset_actions};
use super::resolve::ResolvedGrant;
use crate::api::ResourceKind;
use crate::aws::TargetRef;
use crate::policy::{PolicyError, Statement};

/// S3 actions that take the `s3:prefix` condition key (listing).
const S3_LIST_ACTIONS: &[&str] = &["s3:ListBucket", "s3:ListBucketVersions"];

/// The grant's statements for `target`, each with a Sid the grant owns, in Sid order.
/// Fails only when the grant's condition block does not read as IAM conditions.
pub fn grant_statements(
    grant: &ResolvedGrant,
    target: &TargetRef,
) -> Result<Vec<Statement>, PolicyError> {
    let mut groups: BTreeMap<ActionGroup, BTreeSet<&str>> = BTreeMap::new();
    for preset in &grant.access {
        for (group, actions) in preset_actions(*preset) {
            groups
                .entry(group)
                .or_default()
                .extend(actions.iter().copied());
        }
    }
    for action in &grant.actions {
        for group in groups_of_explicit(grant.kind, action) {
            groups.entry(*group).or_default().insert(action.as_str());
        }
    }

    let mut statements = Vec::new();
    for (group, actions) in groups {
        match (grant.kind, group) {
            (ResourceKind::S3Bucket, ActionGroup::S3Bucket) => match &grant.prefix {
                Some(prefix) => {
                    let (list, other): (Vec<&str>, Vec<&str>) = actions
                        .iter()
                        .partition(|a| S3_LIST_ACTIONS.iter().any(|l| l.eq_ignore_ascii_case(a)));
                    if !list.is_empty() {
                        let prefix_condition = (
                            "StringLike",
                            "s3:prefix",
                            json!([prefix, format!("{prefix}*")]),
                        );
                        statements.push(build(
                            grant,
                            "List",
                            &list,
                            Some(json!(target.arn)),
                            Some(prefix_condition),
                        )?);
                    }
                    if !other.is_empty() {
                        statements.push(build(
                            grant,
                            "Bucket",
                            &other,
                            Some(json!(target.arn)),
                            None,
                        )?);
                    }
                }
                None => statements.push(build(
                    grant,
                    "Bucket",
                    &vec_of(&actions),
                    Some(json!(target.arn)),
                    None,
                )?),
            },
            (ResourceKind::S3Bucket, _) => {
                let objects = format!("{}/{}*", target.arn, grant.prefix.as_deref().unwrap_or(""));
                statements.push(build(
                    grant,
                    "Objects",
                    &vec_of(&actions),
                    Some(json!(objects)),
                    None,
                )?);
            }
            (ResourceKind::EcrRepository, _) => {
                statements.push(build(grant, "Repository", &vec_of(&actions), None, None)?)
            }
            (ResourceKind::KmsKey, ActionGroup::KmsGrants) => {
                let aws_only = ("Bool", "kms:GrantIsForAWSResource", json!("true"));
                statements.push(build(
                    grant,
                    "Grants",
                    &vec_of(&actions),
                    Some(json!("*")),
                    Some(aws_only),
                )?);
            }
            (ResourceKind::KmsKey, _) => statements.push(build(
                grant,
                "Use",
                &vec_of(&actions),
                Some(json!("*")),
                None,
            )?),
            (ResourceKind::IamRole, _) => {
                let external_id = grant
                    .external_id
                    .as_ref()
                    .map(|id| ("StringEquals", "sts:ExternalId", json!(id)));
                statements.push(build(
                    grant,
                    "Assume",
                    &vec_of(&actions),
                    None,
                    external_id,
                )?);
            }
        }
    }
    statements.sort_by(|a, b| a.sid().cmp(&b.sid()));
    Ok(statements)
}

fn vec_of<'a>(set: &BTreeSet<&'a str>) -> Vec<&'a str> {
    set.iter().copied().collect()
}

fn one_or_many<S: AsRef<str>>(items: &[S]) -> Value {
    match items {
        [one] => json!(one.as_ref()),
        many => Value::Array(many.iter().map(|s| json!(s.as_ref())).collect()),
    }
}

fn build(
    grant: &ResolvedGrant,
    purpose: &str,
    actions: &[&str],
    resource: Option<Value>,
    own_condition: Option<(&str, &str, Value)>,
) -> Result<Statement, PolicyError> {
    let mut map = Map::new();
    map.insert("Sid".into(), json!(grant.owner.sid(purpose)));
    map.insert("Effect".into(), json!("Allow"));
    map.insert(
        "Principal".into(),
        json!({ "AWS": one_or_many(&grant.principals) }),
    );
    map.insert("Action".into(), one_or_many(actions));
    if let Some(resource) = resource {
        map.insert("Resource".into(), resource);
    }
    let mut condition = Map::new();
    for (operator, keys) in &grant.conditions {
        let keys: Map<String, Value> = keys.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        condition.insert(operator.clone(), Value::Object(keys));
    }
    if let Some((operator, key, value)) = own_condition {
        let entry = condition
            .entry(operator.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(keys) = entry {
            keys.insert(key.to_string(), value);
        }
    }
    if !condition.is_empty() {
        map.insert("Condition".into(), Value::Object(condition));
    }
    Statement::from_json(Value::Object(map))
}
