//! Reading manifests: files or directories of multi-document YAML (or JSON).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{API_VERSION, AwsAccount, CrossAccountGrant, SnapshotShare};
use crate::engine::{GrantInput, ShareInput};

/// Everything read from the manifests.
#[derive(Debug, Default)]
pub struct Manifests {
    /// AwsAccounts, with where each came from.
    pub accounts: Vec<(AwsAccount, String)>,
    /// CrossAccountGrants.
    pub grants: Vec<GrantInput>,
    /// SnapshotShares.
    pub shares: Vec<ShareInput>,
    /// Documents that could not be read as either.
    pub errors: Vec<ManifestError>,
}

/// A document that could not be used.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ManifestError {
    /// `file#document` (documents count from 1).
    pub origin: String,
    /// The resource, when its kind and name could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.resource {
            Some(r) => write!(f, "{} ({r}): {}", self.origin, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

/// Reads every `.yaml`, `.yml` and `.json` file under `paths` (directories recursively, in name
/// order). A path that cannot be read is an error of its own; other files are still read.
pub fn load(paths: &[PathBuf]) -> Manifests {
    let mut out = Manifests::default();
    let mut files = Vec::new();
    for path in paths {
        if let Err(message) = collect_files(path, &mut files) {
            out.errors.push(ManifestError {
                origin: path.display().to_string(),
                resource: None,
                message,
            });
        }
    }
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => read_documents(&file.display().to_string(), &text, &mut out),
            Err(e) => out.errors.push(ManifestError {
                origin: file.display().to_string(),
                resource: None,
                message: e.to_string(),
            }),
        }
    }
    reject_duplicates(&mut out);
    out
}

fn collect_files(path: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.is_file() {
        files.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("cannot list: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        let is_manifest = entry
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if entry.is_dir() {
            collect_files(&entry, files)?;
        } else if is_manifest {
            files.push(entry);
        }
    }
    Ok(())
}

/// Reads the documents of one file.
pub fn read_documents(file: &str, text: &str, out: &mut Manifests) {
    use serde::Deserialize;
    for (i, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let origin = format!("{file}#{}", i + 1);
        let value = match Value::deserialize(document) {
            Ok(Value::Null) => continue,
            Ok(v) => v,
            Err(e) => {
                out.errors.push(ManifestError {
                    origin,
                    resource: None,
                    message: format!("not valid YAML: {e}"),
                });
                // After a syntax error the rest of the stream cannot be trusted.
                break;
            }
        };
        read_object(&origin, value, out);
    }
}

fn read_object(origin: &str, value: Value, out: &mut Manifests) {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let namespace = value
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    let resource = name.as_ref().map(|n| match &namespace {
        Some(ns) => format!("{kind} {ns}/{n}"),
        None => format!("{kind} {n}"),
    });
    let error = |message: String| ManifestError {
        origin: origin.to_string(),
        resource: resource.clone(),
        message,
    };

    if kind == "List" && api_version == "v1" {
        for (j, item) in value
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            read_object(&format!("{origin}.items[{j}]"), item, out);
        }
        return;
    }
    if api_version != API_VERSION {
        out.errors.push(error(format!(
            "apiVersion: expected {API_VERSION}, found {api_version:?}"
        )));
        return;
    }
    if name.as_deref().unwrap_or_default().is_empty() {
        out.errors
            .push(error("metadata.name: required".to_string()));
        return;
    }
    match kind.as_str() {
        "AwsAccount" => match typed::<AwsAccount>(value) {
            Ok(account) => out.accounts.push((account, origin.to_string())),
            Err(message) => out.errors.push(error(message)),
        },
        "CrossAccountGrant" => match typed::<CrossAccountGrant>(value) {
            Ok(mut grant) => {
                // Manifests read without a namespace are in `default`, as kubectl would put them.
                grant
                    .metadata
                    .namespace
                    .get_or_insert_with(|| "default".to_string());
                out.grants.push(GrantInput::new(grant, origin.to_string()));
            }
            Err(message) => out.errors.push(error(message)),
        },
        "SnapshotShare" => match typed::<SnapshotShare>(value) {
            Ok(mut share) => {
                share
                    .metadata
                    .namespace
                    .get_or_insert_with(|| "default".to_string());
                out.shares.push(ShareInput {
                    share,
                    origin: origin.to_string(),
                });
            }
            Err(message) => out.errors.push(error(message)),
        },
        other => out.errors.push(error(format!(
            "kind: expected AwsAccount, CrossAccountGrant or SnapshotShare, found {other:?}"
        ))),
    }
}

/// Deserializes with the path of the offending field, refusing unknown fields and explicit nulls
/// in `spec` (an API server's CEL rules see a null where the typed object sees nothing).
fn typed<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    let mut nulls = Vec::new();
    if let Some(spec) = value.get("spec") {
        find_nulls(spec, "spec", &mut nulls);
    }
    if !nulls.is_empty() {
        return Err(nulls
            .iter()
            .map(|p| format!("{p}: null is not allowed; leave the field out"))
            .collect::<Vec<_>>()
            .join("; "));
    }
    let mut unknown = Vec::new();
    let mut note_unknown = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let result: Result<T, _> = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
        value,
        &mut note_unknown,
    ));
    let typed = result.map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    // metadata may carry anything (labels, annotations, managedFields...): only spec is checked.
    let unknown: Vec<String> = unknown
        .into_iter()
        .filter(|p| p.starts_with("spec"))
        .map(|p| bracket_indices(&p))
        .collect();
    if !unknown.is_empty() {
        return Err(unknown
            .iter()
            .map(|p| format!("{p}: unknown field"))
            .collect::<Vec<_>>()
            .join("; "));
    }
    Ok(typed)
}

/// `spec.targets.0.region` (serde_ignored's form) as `spec.targets[0].region`, like every other error.
fn bracket_indices(path: &str) -> String {
    let mut out = String::new();
    for (i, part) in path.split('.').enumerate() {
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if i > 0 {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

fn find_nulls(value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Null => out.push(path.to_string()),
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| find_nulls(v, &format!("{path}.{k}"), out)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| find_nulls(v, &format!("{path}[{i}]"), out)),
        _ => {}
    }
}

/// Keeps the first copy of each object declared more than once. An AwsAccount declared again with
/// the same spec is the same account (folders planned together, such as `examples/`, may each
/// carry the accounts they use): the copy is dropped silently. Any other copy is an error naming
/// both documents, and is ignored.
fn reject_duplicates(out: &mut Manifests) {
    let mut duplicates = Vec::new();
    let mut duplicate = |kind: &str, name: &str, origin: &str, first: &str, why: &str| {
        duplicates.push(ManifestError {
            origin: origin.to_string(),
            resource: Some(format!("{kind} {name}")),
            message: format!("declared twice{why}; this copy is ignored (the first is {first})"),
        });
    };

    let mut accounts: Vec<(AwsAccount, String)> = Vec::new();
    let mut account_index: BTreeMap<String, usize> = BTreeMap::new();
    for (account, origin) in std::mem::take(&mut out.accounts) {
        let name = account.metadata.name.clone().unwrap_or_default();
        match account_index.get(&name).map(|&i| &accounts[i]) {
            None => {
                account_index.insert(name, accounts.len());
                accounts.push((account, origin));
            }
            Some((first, _)) if first.spec == account.spec => {}
            Some((_, first_origin)) => duplicate(
                "AwsAccount",
                &name,
                &origin,
                first_origin,
                " with a different spec",
            ),
        }
    }
    out.accounts = accounts;

    let namespaced = |meta: &kube::api::ObjectMeta| {
        format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        )
    };
    let mut seen: BTreeMap<(&str, String), String> = BTreeMap::new();
    let mut keep_first = |kind: &'static str, name: String, origin: &str| {
        if let Some(first) = seen.get(&(kind, name.clone())) {
            duplicate(kind, &name, origin, first, "");
            return false;
        }
        seen.insert((kind, name), origin.to_string());
        true
    };
    out.grants.retain(|g| {
        keep_first(
            "CrossAccountGrant",
            namespaced(&g.grant.metadata),
            &g.origin,
        )
    });
    out.shares
        .retain(|s| keep_first("SnapshotShare", namespaced(&s.share.metadata), &s.origin));
    out.errors.extend(duplicates);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Manifests {
        let mut out = Manifests::default();
        read_documents("m.yaml", text, &mut out);
        out
    }

    #[test]
    fn reads_accounts_and_grants_from_one_stream() {
        let m = read(
            "apiVersion: xacct.dev/v1alpha1\nkind: AwsAccount\nmetadata: {name: data}\nspec: {accountId: '222222222222'}\n---\n\
             apiVersion: xacct.dev/v1alpha1\nkind: CrossAccountGrant\nmetadata: {name: g}\n\
             spec: {resource: {account: data, kind: S3Bucket, name: b}, grantee: {accountId: '111111111111'}, access: [read]}\n",
        );
        assert!(m.errors.is_empty(), "{:?}", m.errors);
        assert_eq!(m.accounts.len(), 1);
        assert_eq!(
            m.grants[0].grant.metadata.namespace.as_deref(),
            Some("default")
        );
        assert_eq!(m.grants[0].origin, "m.yaml#2");
    }

    #[test]
    fn errors_name_the_document_and_the_field() {
        let m = read(
            "apiVersion: xacct.dev/v1alpha1\nkind: CrossAccountGrant\nmetadata: {name: g, namespace: t}\n\
             spec: {resource: {account: data, kind: S3Bucket, name: b}, grantee: {accountId: '111111111111'}, access: [reed]}\n---\n\
             apiVersion: xacct.dev/v1alpha1\nkind: CrossAccountGrant\nmetadata: {name: h}\n\
             spec: {resource: {account: data, kind: S3Bucket, name: b, acount: x}, grantee: {accountId: '111111111111'}, access: [read]}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        );
        assert_eq!(m.errors.len(), 3, "{:?}", m.errors);
        assert!(
            m.errors[0].to_string().starts_with(
                "m.yaml#1 (CrossAccountGrant t/g): spec.access[0]: unknown variant `reed`"
            ),
            "{}",
            m.errors[0]
        );
        assert!(
            m.errors[1]
                .to_string()
                .contains("spec.resource.acount: unknown field"),
            "{}",
            m.errors[1]
        );
        assert!(
            m.errors[2]
                .to_string()
                .contains("apiVersion: expected xacct.dev/v1alpha1"),
            "{}",
            m.errors[2]
        );
    }

    #[test]
    fn explicit_nulls_in_spec_are_refused() {
        let m = read(
            "apiVersion: xacct.dev/v1alpha1\nkind: CrossAccountGrant\nmetadata: {name: g}\n\
             spec: {resource: {account: data, kind: S3Bucket, name: b, prefix: null}, grantee: {accountId: '111111111111'}, access: [read]}\n",
        );
        assert_eq!(m.errors.len(), 1);
        assert!(
            m.errors[0]
                .message
                .contains("spec.resource.prefix: null is not allowed"),
            "{}",
            m.errors[0]
        );
    }

    fn account(name: &str, namespaces: &str) -> String {
        format!(
            "# {name}, as one of the folders declares it\napiVersion: xacct.dev/v1alpha1\nkind: AwsAccount\n\
             metadata: {{name: {name}}}\nspec: {{accountId: '111111111111', allowedNamespaces: [{namespaces}]}}\n"
        )
    }

    /// Loads `files` (name, text) written in a temporary folder; origins are relative to it.
    fn load_files(files: &[(&str, String)]) -> Manifests {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let mut m = load(&[dir.path().to_path_buf()]);
        let prefix = format!("{}/", dir.path().display());
        for error in &mut m.errors {
            error.origin = error.origin.replace(&prefix, "");
            error.message = error.message.replace(&prefix, "");
        }
        m
    }

    #[test]
    fn the_same_account_in_two_files_is_one_account() {
        let m = load_files(&[
            ("a/accounts.yaml", account("workloads", "web, batch")),
            ("b/accounts.yaml", account("workloads", "web, batch")),
        ]);
        assert!(m.errors.is_empty(), "{:?}", m.errors);
        assert_eq!(m.accounts.len(), 1);
        assert!(
            m.accounts[0].1.ends_with("a/accounts.yaml#1"),
            "{}",
            m.accounts[0].1
        );
    }

    #[test]
    fn an_account_declared_twice_differently_is_an_error_naming_both_files() {
        let m = load_files(&[
            ("a/accounts.yaml", account("workloads", "web")),
            ("b/accounts.yaml", account("workloads", "web, batch")),
        ]);
        assert_eq!(m.accounts.len(), 1);
        assert!(
            m.accounts[0].1.ends_with("a/accounts.yaml#1"),
            "{}",
            m.accounts[0].1
        );
        let errors: Vec<String> = m.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                "b/accounts.yaml#1 (AwsAccount workloads): declared twice with a different spec; \
              this copy is ignored (the first is a/accounts.yaml#1)"
            ]
        );
    }

    #[test]
    fn a_grant_declared_twice_is_an_error_even_when_identical() {
        let grant = "apiVersion: xacct.dev/v1alpha1\nkind: CrossAccountGrant\nmetadata: {name: g, namespace: t}\n\
             spec: {resource: {account: data, kind: S3Bucket, name: b}, grantee: {accountId: '111111111111'}, access: [read]}\n";
        let m = load_files(&[("a.yaml", grant.into()), ("b.yaml", grant.into())]);
        assert_eq!(m.grants.len(), 1);
        let errors: Vec<String> = m.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                "b.yaml#1 (CrossAccountGrant t/g): declared twice; this copy is ignored (the first is a.yaml#1)"
            ]
        );
    }

    #[test]
    fn broken_yaml_is_an_error_not_a_crash() {
        let m = read("kind: [unclosed\n");
        assert_eq!(m.errors.len(), 1);
        assert!(m.errors[0].message.starts_with("not valid YAML"));
    }
}
