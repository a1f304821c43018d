//! Builders for the objects tests create (kube-rs controller-rs's `fixtures.rs` pattern): a
//! `CrossAccountGrant`, an `AwsAccount` or a `SnapshotShare` with the defaults the tests share,
//! changed only where a test says so, and built as the typed object (for the controller's API),
//! as JSON, or as a YAML document (for the CLI's manifests).
//!
//! ```ignore
//! let grant = GrantFixture::new("batch", "reader").bucket("lake").observe().build();
//! let account = AccountFixture::data_prod().allowed(&["batch"]).build();
//! let yaml = GrantFixture::new("batch", "job").bucket("lake").manage("dev", &["role/JobA"]).yaml();
//! ```

use serde_json::{Value, json};
use xacct::api::{AwsAccount, CrossAccountGrant, SnapshotShare};

use super::{DATA_ACCOUNT, DEV_ACCOUNT};

const API_VERSION: &str = "xacct.dev/v1alpha1";

/// The role xacct assumes in `account_id` in these tests.
pub fn manager_role(account_id: &str) -> Value {
    json!({"roleArn": format!("arn:aws:iam::{account_id}:role/xacct-manager")})
}

/// Merges the keys of `extra` (an object) into `into` (an object), replacing those it has.
fn merge(into: &mut Value, extra: Value) {
    match (into, extra) {
        (Value::Object(into), Value::Object(extra)) => into.extend(extra),
        (_, extra) => panic!("not a JSON object: {extra}"),
    }
}

/// One YAML document, with the `---` that separates it from the ones before it.
fn yaml_document(value: &Value) -> String {
    format!(
        "---\n{}",
        serde_norway::to_string(value).expect("a fixture serializes to YAML")
    )
}

fn object<K: serde::de::DeserializeOwned>(kind: &str, value: Value) -> K {
    serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("the {kind} fixture does not deserialize: {e}\n{value:#}"))
}

/// A `CrossAccountGrant`. By default: read access to the S3 bucket `lake` of the account
/// `data-prod`, for the principal `role/<name>` of [`DEV_ACCOUNT`] (by account id).
#[derive(Clone, Debug)]
pub struct GrantFixture {
    metadata: Value,
    spec: Value,
}

impl GrantFixture {
    pub fn new(namespace: &str, name: &str) -> GrantFixture {
        GrantFixture {
            metadata: json!({"name": name, "namespace": namespace}),
            spec: json!({
                "resource": {"account": "data-prod", "kind": "S3Bucket", "name": "lake"},
                "grantee": {"accountId": DEV_ACCOUNT, "principals": [format!("role/{name}")]},
                "access": ["read"],
            }),
        }
    }

    /// On the S3 bucket `name`.
    pub fn bucket(self, name: &str) -> GrantFixture {
        self.resource("S3Bucket", name)
    }

    /// On the resource `name` of `kind` (`S3Bucket`, `EcrRepository`, `KmsKey`, ...).
    pub fn resource(mut self, kind: &str, name: &str) -> GrantFixture {
        self.spec["resource"]["kind"] = json!(kind);
        self.spec["resource"]["name"] = json!(name);
        self
    }

    /// On a resource of the AwsAccount `account` (`data-prod` by default).
    pub fn account(mut self, account: &str) -> GrantFixture {
        self.spec["resource"]["account"] = json!(account);
        self
    }

    /// Only under `prefix` of the bucket.
    pub fn prefix(mut self, prefix: &str) -> GrantFixture {
        self.spec["resource"]["prefix"] = json!(prefix);
        self
    }

    /// For these principals of the grantee (whichever way it is named).
    pub fn principals(mut self, principals: &[&str]) -> GrantFixture {
        self.spec["grantee"]["principals"] = json!(principals);
        self
    }

    /// For principals of the account with this id (the default is [`DEV_ACCOUNT`]), whose side
    /// xacct does not manage.
    pub fn grantee_id(mut self, account_id: &str) -> GrantFixture {
        let principals = self.spec["grantee"]["principals"].take();
        self.spec["grantee"] = json!({"accountId": account_id, "principals": principals});
        self
    }

    /// For `principals` of the AwsAccount `account`, whose side (the principals' identity
    /// policies) xacct manages too.
    pub fn manage(mut self, account: &str, principals: &[&str]) -> GrantFixture {
        self.spec["grantee"] = json!({"account": account, "principals": principals});
        self
    }

    /// With these access levels (`read` by default).
    pub fn access(mut self, access: &[&str]) -> GrantFixture {
        self.spec["access"] = json!(access);
        self
    }

    /// `spec.mode: Observe`.
    pub fn observe(self) -> GrantFixture {
        self.extra(json!({"mode": "Observe"}))
    }

    /// `spec.deletionPolicy: Retain`.
    pub fn retain(self) -> GrantFixture {
        self.extra(json!({"deletionPolicy": "Retain"}))
    }

    /// Other fields of the spec, set as given (top-level keys replace the fixture's).
    pub fn extra(mut self, extra: Value) -> GrantFixture {
        merge(&mut self.spec, extra);
        self
    }

    /// A label.
    pub fn label(mut self, key: &str, value: &str) -> GrantFixture {
        self.metadata["labels"][key] = json!(value);
        self
    }

    /// Other metadata fields (`uid`, `generation`, `resourceVersion`, `finalizers`...), as the
    /// API server would serve them.
    pub fn metadata(mut self, extra: Value) -> GrantFixture {
        merge(&mut self.metadata, extra);
        self
    }

    /// The spec alone.
    pub fn spec(&self) -> Value {
        self.spec.clone()
    }

    pub fn value(&self) -> Value {
        json!({"apiVersion": API_VERSION, "kind": "CrossAccountGrant",
               "metadata": self.metadata, "spec": self.spec})
    }

    pub fn build(&self) -> CrossAccountGrant {
        object("CrossAccountGrant", self.value())
    }

    /// A YAML document for the CLI's manifests (starting with `---`).
    pub fn yaml(&self) -> String {
        yaml_document(&self.value())
    }
}

/// A manifest document of a grant whose spec is given as YAML (indented by two spaces), for specs
/// no builder says more clearly.
pub fn grant_yaml(namespace: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: {API_VERSION}\nkind: CrossAccountGrant\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}\n"
    )
}

/// An `AwsAccount`: by default in `us-east-1`, reached by assuming its `xacct-manager` role, and
/// allowing grants from every namespace.
#[derive(Clone, Debug)]
pub struct AccountFixture {
    metadata: Value,
    spec: Value,
    status: Option<Value>,
}

impl AccountFixture {
    pub fn new(name: &str, account_id: &str) -> AccountFixture {
        AccountFixture {
            metadata: json!({"name": name}),
            spec: json!({"accountId": account_id, "region": "us-east-1",
                         "allowedNamespaces": ["*"], "assumeRole": manager_role(account_id)}),
            status: None,
        }
    }

    /// `data-prod`, the account of [`DATA_ACCOUNT`] that owns the resources.
    pub fn data_prod() -> AccountFixture {
        AccountFixture::new("data-prod", DATA_ACCOUNT)
    }

    /// `dev`, the account of [`DEV_ACCOUNT`] whose workloads get access.
    pub fn dev() -> AccountFixture {
        AccountFixture::new("dev", DEV_ACCOUNT)
    }

    /// Grants allowed from these namespaces only.
    pub fn allowed(mut self, namespaces: &[&str]) -> AccountFixture {
        self.spec["allowedNamespaces"] = json!(namespaces);
        self
    }

    /// No `assumeRole`: the tool's own credentials, which act in another account than this one
    /// in the emulator (so it never verifies).
    pub fn no_assume_role(mut self) -> AccountFixture {
        self.spec.as_object_mut().unwrap().remove("assumeRole");
        self
    }

    /// The external id comes from the Secret `name` (in the secrets namespace), key `key`.
    pub fn external_id_secret(mut self, name: &str, key: &str) -> AccountFixture {
        self.spec["assumeRole"]["externalIdSecretRef"] = json!({"name": name, "key": key});
        self
    }

    /// `spec.allowPublicPrincipals: true`.
    pub fn allow_public_principals(self) -> AccountFixture {
        self.extra(json!({"allowPublicPrincipals": true}))
    }

    /// No `spec.region`.
    pub fn no_region(mut self) -> AccountFixture {
        self.spec.as_object_mut().unwrap().remove("region");
        self
    }

    /// Other fields of the spec, set as given.
    pub fn extra(mut self, extra: Value) -> AccountFixture {
        merge(&mut self.spec, extra);
        self
    }

    /// Other metadata fields.
    pub fn metadata(mut self, extra: Value) -> AccountFixture {
        merge(&mut self.metadata, extra);
        self
    }

    /// As the controller leaves it once verified: generation 1, `Ready=True Verified`.
    pub fn verified(mut self) -> AccountFixture {
        self.metadata["generation"] = json!(1);
        self.status = Some(json!({"conditions": [{"type": "Ready", "status": "True",
            "reason": "Verified", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}));
        self
    }

    pub fn value(&self) -> Value {
        let mut value = json!({"apiVersion": API_VERSION, "kind": "AwsAccount",
                               "metadata": self.metadata, "spec": self.spec});
        if let Some(status) = &self.status {
            value["status"] = status.clone();
        }
        value
    }

    pub fn build(&self) -> AwsAccount {
        object("AwsAccount", self.value())
    }

    /// A YAML document for the CLI's manifests (starting with `---`).
    pub fn yaml(&self) -> String {
        yaml_document(&self.value())
    }
}

/// A `SnapshotShare` of the RDS snapshot `orders-1` of `data-prod` with [`DEV_ACCOUNT`].
#[derive(Clone, Debug)]
pub struct ShareFixture {
    metadata: Value,
    spec: Value,
}

impl ShareFixture {
    pub fn new(namespace: &str, name: &str) -> ShareFixture {
        ShareFixture {
            metadata: json!({"name": name, "namespace": namespace}),
            spec: json!({"source": {"account": "data-prod", "dbSnapshotIdentifier": "orders-1"},
                         "targets": [{"accountId": DEV_ACCOUNT}]}),
        }
    }

    /// Of the DB snapshot `identifier`.
    pub fn snapshot(mut self, identifier: &str) -> ShareFixture {
        self.spec["source"]["dbSnapshotIdentifier"] = json!(identifier);
        self
    }

    /// With these accounts (by id).
    pub fn targets(mut self, account_ids: &[&str]) -> ShareFixture {
        self.spec["targets"] = account_ids
            .iter()
            .map(|id| json!({"accountId": id}))
            .collect();
        self
    }

    /// Other fields of the spec, set as given.
    pub fn extra(mut self, extra: Value) -> ShareFixture {
        merge(&mut self.spec, extra);
        self
    }

    pub fn value(&self) -> Value {
        json!({"apiVersion": API_VERSION, "kind": "SnapshotShare",
               "metadata": self.metadata, "spec": self.spec})
    }

    pub fn build(&self) -> SnapshotShare {
        object("SnapshotShare", self.value())
    }

    /// A YAML document for the CLI's manifests (starting with `---`).
    pub fn yaml(&self) -> String {
        yaml_document(&self.value())
    }
}
