//! Canonical forms: two policies mean the same when their canonical forms are equal.
//!
//! What is folded: a value and a one-element list; `"*"` and `{"AWS":"*"}` as principals; a bare
//! 12-digit account and its `:root` ARN; the case of action names and condition keys (IAM treats
//! both case-insensitively); booleans and numbers written as strings in conditions; statement
//! order and exact duplicates. What is kept: Sid (ownership depends on it), resource ARNs and
//! principal ARNs as written (both are case-sensitive), everything else by value.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::document::PolicyDocument;
use super::error::PolicyError;
use super::principal::canonical_aws_principal;

/// Principal kind (`AWS`, `Service`, `Federated`, `CanonicalUser`) → values.
pub type PrincipalSet = BTreeMap<String, BTreeSet<String>>;
/// Condition operator → key (lower case) → the value sets written for that key. IAM treats keys
/// case-insensitively, so `aws:SourceAccount` and `AWS:SourceAccount` under one operator are the
/// same key tested twice (both must match), which is not the union of their values: each spelling
/// keeps its own value set.
pub type ConditionSet = BTreeMap<String, BTreeMap<String, BTreeSet<BTreeSet<String>>>>;

/// A statement reduced to its meaning.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct CanonicalStatement {
    /// Statement id.
    pub sid: Option<String>,
    /// `Allow` or `Deny`.
    pub effect: String,
    /// `Principal`.
    pub principal: Option<PrincipalSet>,
    /// `NotPrincipal`.
    pub not_principal: Option<PrincipalSet>,
    /// `Action`, lower case.
    pub action: Option<BTreeSet<String>>,
    /// `NotAction`, lower case.
    pub not_action: Option<BTreeSet<String>>,
    /// `Resource`.
    pub resource: Option<BTreeSet<String>>,
    /// `NotResource`.
    pub not_resource: Option<BTreeSet<String>>,
    /// `Condition`; empty when absent.
    pub condition: ConditionSet,
    /// Members IAM does not define, as canonical JSON text.
    pub other: BTreeMap<String, String>,
}

impl CanonicalStatement {
    /// Reduces a statement object to its meaning.
    pub fn from_json(map: &Map<String, Value>) -> Result<Self, PolicyError> {
        let mut out = CanonicalStatement {
            sid: None,
            effect: String::new(),
            principal: None,
            not_principal: None,
            action: None,
            not_action: None,
            resource: None,
            not_resource: None,
            condition: ConditionSet::new(),
            other: BTreeMap::new(),
        };
        let mut effect = None;
        for (key, value) in map {
            match key.as_str() {
                "Sid" => out.sid = Some(string(value, "Sid")?),
                "Effect" => effect = Some(string(value, "Effect")?),
                "Principal" => out.principal = Some(principals(value, "Principal")?),
                "NotPrincipal" => out.not_principal = Some(principals(value, "NotPrincipal")?),
                "Action" => out.action = Some(lowercase(strings(value, "Action")?)),
                "NotAction" => out.not_action = Some(lowercase(strings(value, "NotAction")?)),
                "Resource" => out.resource = Some(strings(value, "Resource")?),
                "NotResource" => out.not_resource = Some(strings(value, "NotResource")?),
                "Condition" => out.condition = conditions(value)?,
                _ => {
                    out.other.insert(key.clone(), canonical_json(value));
                }
            }
        }
        out.effect =
            effect.ok_or_else(|| PolicyError::Malformed("a statement has no Effect".into()))?;
        Ok(out)
    }
}

/// A document reduced to its meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalDocument {
    /// `Version` (policy variables are only expanded in 2012-10-17, so it is part of the meaning).
    pub version: Option<String>,
    /// Other top-level members, as canonical JSON text.
    pub other: BTreeMap<String, String>,
    /// Statements, sorted, without exact duplicates.
    pub statements: Vec<CanonicalStatement>,
}

impl CanonicalDocument {
    /// Reduces a document to its meaning.
    pub fn new(doc: &PolicyDocument) -> Result<Self, PolicyError> {
        let statements: BTreeSet<CanonicalStatement> = doc
            .statements
            .iter()
            .map(|s| s.canonical())
            .collect::<Result<_, _>>()?;
        Ok(CanonicalDocument {
            version: doc.version.clone(),
            other: doc
                .other
                .iter()
                .map(|(k, v)| (k.clone(), canonical_json(v)))
                .collect(),
            statements: statements.into_iter().collect(),
        })
    }
}

fn string(value: &Value, field: &str) -> Result<String, PolicyError> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| PolicyError::Malformed(format!("{field} must be a string")))
}

/// A string or a list of strings, as a set.
fn strings(value: &Value, field: &str) -> Result<BTreeSet<String>, PolicyError> {
    match value {
        Value::String(s) => Ok(BTreeSet::from([s.clone()])),
        Value::Array(items) => items.iter().map(|item| string(item, field)).collect(),
        _ => Err(PolicyError::Malformed(format!(
            "{field} must be a string or a list of strings"
        ))),
    }
}

fn lowercase(set: BTreeSet<String>) -> BTreeSet<String> {
    set.into_iter().map(|s| s.to_ascii_lowercase()).collect()
}

fn principals(value: &Value, field: &str) -> Result<PrincipalSet, PolicyError> {
    match value {
        Value::String(s) if s == "*" => Ok(PrincipalSet::from([(
            "AWS".to_string(),
            BTreeSet::from(["*".to_string()]),
        )])),
        Value::Object(map) => {
            let mut out = PrincipalSet::new();
            for (kind, values) in map {
                let mut set = strings(values, field)?;
                if kind == "AWS" {
                    set = set
                        .into_iter()
                        .map(|p| canonical_aws_principal(&p))
                        .collect();
                }
                out.entry(kind.clone()).or_default().extend(set);
            }
            Ok(out)
        }
        _ => Err(PolicyError::Malformed(format!(
            "{field} must be \"*\" or an object"
        ))),
    }
}

fn conditions(value: &Value) -> Result<ConditionSet, PolicyError> {
    let Value::Object(operators) = value else {
        return Err(PolicyError::Malformed("Condition must be an object".into()));
    };
    let mut out = ConditionSet::new();
    for (operator, keys) in operators {
        let Value::Object(keys) = keys else {
            return Err(PolicyError::Malformed(format!(
                "Condition operator {operator} must map keys to values"
            )));
        };
        let entry = out.entry(operator.clone()).or_default();
        for (key, values) in keys {
            entry
                .entry(key.to_ascii_lowercase())
                .or_default()
                .insert(condition_values(values, operator)?);
        }
    }
    out.retain(|_, keys| !keys.is_empty());
    Ok(out)
}

fn condition_values(value: &Value, operator: &str) -> Result<BTreeSet<String>, PolicyError> {
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(PolicyError::Malformed(format!(
            "Condition values under {operator} must be strings, numbers or booleans"
        ))),
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        other => Ok(BTreeSet::from([one(other)?])),
    }
}

/// JSON text with object keys sorted, so equal values give equal text.
fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let ordered: BTreeMap<&String, Value> =
                    map.iter().map(|(k, v)| (k, sorted(v))).collect();
                Value::Object(ordered.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::super::document::PolicyDocument;
    use serde_json::json;

    fn same(a: serde_json::Value, b: serde_json::Value) -> bool {
        let a = PolicyDocument::from_json(a).expect("a parses");
        let b = PolicyDocument::from_json(b).expect("b parses");
        a.same_meaning(&b)
    }

    #[test]
    fn single_values_and_lists_are_the_same() {
        assert!(same(
            json!({"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:role/R"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}),
            json!({"Version":"2012-10-17","Statement":[{"Resource":["arn:aws:s3:::b/*"],"Action":["s3:getobject"],"Principal":{"AWS":["arn:aws:iam::111111111111:role/R"]},"Effect":"Allow"}]}),
        ));
    }

    #[test]
    fn star_principal_forms_are_the_same_and_bare_accounts_mean_root() {
        assert!(same(
            json!({"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}]}),
            json!({"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"*"}]}),
        ));
        assert!(same(
            json!({"Statement":[{"Effect":"Allow","Principal":{"AWS":"111111111111"},"Action":"kms:Decrypt","Resource":"*"}]}),
            json!({"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:Decrypt","Resource":"*"}]}),
        ));
    }

    #[test]
    fn statement_order_and_duplicates_do_not_matter() {
        let a = json!({"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"});
        let b = json!({"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::1:root"},"NotAction":"s3:*","NotResource":"arn:aws:s3:::x"});
        assert!(same(
            json!({"Statement":[a.clone(), b.clone()]}),
            json!({"Statement":[b.clone(), a.clone(), a]})
        ));
    }

    #[test]
    fn condition_values_fold_types_and_key_case() {
        assert!(same(
            json!({"Statement":[{"Effect":"Allow","Action":"kms:CreateGrant","Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":true}}}]}),
            json!({"Statement":[{"Effect":"Allow","Action":"kms:CreateGrant","Resource":"*","Condition":{"Bool":{"KMS:GrantIsForAwsResource":["true"]}}}]}),
        ));
    }

    #[test]
    fn keys_differing_only_in_case_are_both_tested_not_merged() {
        assert!(!same(
            json!({"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"aws:SourceAccount":"111111111111","AWS:SourceAccount":"222222222222"}}}]}),
            json!({"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"aws:SourceAccount":["111111111111","222222222222"]}}}]}),
        ));
    }

    #[test]
    fn account_roots_compare_across_partitions() {
        // In an aws-cn policy a bare account id means arn:aws-cn:iam::ID:root.
        assert!(same(
            json!({"Statement":[{"Effect":"Allow","Principal":{"AWS":"111111111111"},"Action":"kms:Decrypt","Resource":"*"}]}),
            json!({"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws-cn:iam::111111111111:root"},"Action":"kms:Decrypt","Resource":"*"}]}),
        ));
    }

    #[test]
    fn differences_in_meaning_are_seen() {
        let base = json!({"Statement":[{"Sid":"A","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:role/R"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]});
        for changed in [
            json!({"Statement":[{"Sid":"B","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:role/R"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}),
            json!({"Statement":[{"Sid":"A","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111111111111:role/R"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}),
            json!({"Statement":[{"Sid":"A","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:role/r"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}),
            json!({"Statement":[{"Sid":"A","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:role/R"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::B/*"}]}),
            json!({"Statement":[{"Sid":"A","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:role/R"},"NotAction":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}),
            json!({"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:role/R"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}),
        ] {
            assert!(
                !same(base.clone(), changed.clone()),
                "should differ: {changed}"
            );
        }
    }

    #[test]
    fn unique_id_principals_and_federated_principals_are_read() {
        let doc = PolicyDocument::from_json(json!({"Statement":[
            {"Effect":"Allow","Principal":{"AWS":["AROAEXAMPLEID1234567","111111111111"]},"Action":"sts:AssumeRole"},
            {"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::1:oidc-provider/x"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"x:aud":"sts.amazonaws.com"}}}
        ]})).expect("parses");
        assert_eq!(doc.statements.len(), 2);
    }

    #[test]
    fn malformed_documents_are_refused() {
        for bad in [
            json!([]),
            json!({"Statement":"nope"}),
            json!({"Statement":[{"Action":"s3:GetObject"}]}),
            json!({"Statement":[{"Effect":"Allow","Action":7}]}),
            json!({"Statement":[{"Effect":"Allow","Principal":["x"]}]}),
            json!({"Statement":[{"Effect":"Allow","Condition":{"StringEquals":"x"}}]}),
        ] {
            assert!(
                PolicyDocument::from_json(bad.clone()).is_err(),
                "should be refused: {bad}"
            );
        }
        assert!(PolicyDocument::parse("{not json").is_err());
    }
}
