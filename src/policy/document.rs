//! Policy documents as read from and written to AWS.
//!
//! Statements are kept as the JSON objects they were read as, so a statement xacct does not own is
//! written back with exactly its content (key order and whitespace aside). Meaning is compared
//! through [`crate::policy::CanonicalDocument`].

use serde_json::{Map, Value};

use super::canonical::{CanonicalDocument, CanonicalStatement};
use super::error::PolicyError;

/// The policy language version xacct writes in new documents.
pub const DEFAULT_VERSION: &str = "2012-10-17";

/// One policy statement, as a JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement(Map<String, Value>);

impl Statement {
    /// Wraps a JSON object, checking that it reads as a statement.
    pub fn from_json(value: Value) -> Result<Self, PolicyError> {
        match value {
            Value::Object(map) => {
                let statement = Statement(map);
                statement.canonical()?;
                Ok(statement)
            }
            other => Err(PolicyError::Malformed(format!(
                "a statement must be an object, found {other}"
            ))),
        }
    }

    /// The statement's Sid, if it has a string one.
    pub fn sid(&self) -> Option<&str> {
        self.0.get("Sid").and_then(Value::as_str)
    }

    /// The statement as JSON.
    pub fn as_json(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The statement's meaning, for comparison.
    pub fn canonical(&self) -> Result<CanonicalStatement, PolicyError> {
        CanonicalStatement::from_json(&self.0)
    }

    /// Same meaning (Sid included) as `other`.
    pub fn same_meaning(&self, other: &Statement) -> bool {
        matches!((self.canonical(), other.canonical()), (Ok(a), Ok(b)) if a == b)
    }
}

/// A policy document: Version, Id, statements, and any other top-level member kept as it was.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDocument {
    /// `Version`, absent when the document had none.
    pub version: Option<String>,
    /// The statements in document order.
    pub statements: Vec<Statement>,
    /// Other top-level members (`Id`, ...), kept as they were.
    pub other: Map<String, Value>,
}

impl PolicyDocument {
    /// An empty document of the default version.
    pub fn new() -> Self {
        PolicyDocument {
            version: Some(DEFAULT_VERSION.to_string()),
            statements: Vec::new(),
            other: Map::new(),
        }
    }

    /// Parses policy JSON in any valid form (`Statement` as an object or a list).
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| PolicyError::NotJson(e.to_string()))?;
        Self::from_json(value)
    }

    /// Reads a parsed JSON value as a policy document.
    pub fn from_json(value: Value) -> Result<Self, PolicyError> {
        let Value::Object(mut map) = value else {
            return Err(PolicyError::Malformed(
                "a policy document must be a JSON object".into(),
            ));
        };
        let version = match map.remove("Version") {
            None => None,
            Some(Value::String(v)) => Some(v),
            Some(other) => {
                return Err(PolicyError::Malformed(format!(
                    "Version must be a string, found {other}"
                )));
            }
        };
        let statements = match map.remove("Statement") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(Statement::from_json)
                .collect::<Result<_, _>>()?,
            Some(single @ Value::Object(_)) => vec![Statement::from_json(single)?],
            Some(other) => {
                return Err(PolicyError::Malformed(format!(
                    "Statement must be an object or a list, found {other}"
                )));
            }
        };
        Ok(PolicyDocument {
            version,
            statements,
            other: map,
        })
    }

    /// The document as a JSON value.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        if let Some(version) = &self.version {
            map.insert("Version".into(), Value::String(version.clone()));
        }
        for (k, v) in &self.other {
            map.insert(k.clone(), v.clone());
        }
        map.insert(
            "Statement".into(),
            Value::Array(
                self.statements
                    .iter()
                    .map(|s| Value::Object(s.0.clone()))
                    .collect(),
            ),
        );
        Value::Object(map)
    }

    /// Compact JSON, as xacct writes it (and as size limits are measured).
    pub fn to_compact_string(&self) -> String {
        self.to_json().to_string()
    }

    /// Indented JSON, for people.
    pub fn to_pretty_string(&self) -> String {
        serde_json::to_string_pretty(&self.to_json()).unwrap_or_else(|_| self.to_compact_string())
    }

    /// The document's meaning, for comparison.
    pub fn canonical(&self) -> Result<CanonicalDocument, PolicyError> {
        CanonicalDocument::new(self)
    }

    /// Same meaning as `other` (statement order, duplicates aside, formatting aside).
    pub fn same_meaning(&self, other: &PolicyDocument) -> bool {
        matches!((self.canonical(), other.canonical()), (Ok(a), Ok(b)) if a == b)
    }

    /// The AWS principals its statements name in `Principal`, in canonical form (statements that
    /// cannot be read are skipped).
    pub fn aws_principals(&self) -> std::collections::BTreeSet<String> {
        self.statements
            .iter()
            .filter_map(|s| s.canonical().ok())
            .filter_map(|c| c.principal)
            .flat_map(|p| p.get("AWS").cloned().unwrap_or_default())
            .collect()
    }
}

impl Default for PolicyDocument {
    fn default() -> Self {
        Self::new()
    }
}
