//! The committed CustomResourceDefinitions (`crds/xacct.dev_crds.yaml`) are exactly what the types
//! in src/api generate, and keep the facts users and tooling rely on (group, version, scope, short
//! names, status subresource, printer columns).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion,
};
use serde::Deserialize;

const CRDS_FILE: &str = "crds/xacct.dev_crds.yaml";
const REGENERATE: &str = "cargo run -q -- crds > crds/xacct.dev_crds.yaml";

fn committed() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(CRDS_FILE);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; generate it with `{REGENERATE}`",
            path.display()
        )
    })
}

/// The CRDs of the committed file, in file order.
fn committed_crds() -> Vec<CustomResourceDefinition> {
    let text = committed();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            CustomResourceDefinition::deserialize(doc)
                .unwrap_or_else(|e| panic!("{CRDS_FILE} holds a document that is not a CRD: {e}"))
        })
        .collect()
}

/// Both the generated CRDs and the committed ones, so the facts hold for what ships even if the
/// up-to-date check is the one failing.
fn crd_sources() -> Vec<(&'static str, Vec<CustomResourceDefinition>)> {
    vec![
        ("xacct::api::crds()", xacct::api::crds()),
        (CRDS_FILE, committed_crds()),
    ]
}

fn crd<'a>(crds: &'a [CustomResourceDefinition], kind: &str) -> &'a CustomResourceDefinition {
    crds.iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD of kind {kind}"))
}

fn only_version(crd: &CustomResourceDefinition) -> &CustomResourceDefinitionVersion {
    assert_eq!(
        crd.spec.versions.len(),
        1,
        "{}: expected exactly one version",
        crd.spec.names.kind
    );
    &crd.spec.versions[0]
}

#[test]
fn committed_crds_are_up_to_date() {
    let expected = xacct::cli::crds_yaml();
    let actual = committed();
    if actual != expected {
        let diff = similar::TextDiff::from_lines(&actual, &expected);
        let mut shown = diff
            .unified_diff()
            .context_radius(2)
            .header(CRDS_FILE, "generated from src/api")
            .to_string();
        if shown.len() > 4000 {
            let mut cut = 4000;
            while !shown.is_char_boundary(cut) {
                cut -= 1;
            }
            shown.truncate(cut);
            shown.push_str("\n[... diff truncated ...]\n");
        }
        panic!(
            "{CRDS_FILE} is out of date with the types in src/api.\nRegenerate it with:\n\n    {REGENERATE}\n\n{shown}"
        );
    }
}

#[test]
fn every_kind_is_present_in_a_stable_order() {
    for (source, crds) in crd_sources() {
        let kinds: Vec<&str> = crds.iter().map(|c| c.spec.names.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["AwsAccount", "CrossAccountGrant", "SnapshotShare"],
            "{source}"
        );
    }
}

#[test]
fn group_version_served_and_stored() {
    for (source, crds) in crd_sources() {
        for crd in &crds {
            let kind = &crd.spec.names.kind;
            assert_eq!(crd.spec.group, "xacct.dev", "{source}: {kind}");
            assert_eq!(crd.spec.group, xacct::api::GROUP, "{source}: {kind}");
            assert_eq!(
                crd.metadata.name.as_deref(),
                Some(format!("{}.xacct.dev", crd.spec.names.plural).as_str()),
                "{source}: {kind}"
            );
            let version = only_version(crd);
            assert_eq!(version.name, "v1alpha1", "{source}: {kind}");
            assert_eq!(version.name, xacct::api::VERSION, "{source}: {kind}");
            assert!(version.served, "{source}: {kind} v1alpha1 must be served");
            assert!(
                version.storage,
                "{source}: {kind} v1alpha1 must be the storage version"
            );
            assert!(
                version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .is_some(),
                "{source}: {kind} has no openAPIV3Schema"
            );
        }
    }
}

#[test]
fn status_subresource_is_enabled() {
    for (source, crds) in crd_sources() {
        for crd in &crds {
            let version = only_version(crd);
            assert!(
                version
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some(),
                "{source}: {} has no status subresource",
                crd.spec.names.kind
            );
        }
    }
}

#[test]
fn names_short_names_and_categories() {
    for (source, crds) in crd_sources() {
        let grant = crd(&crds, "CrossAccountGrant");
        assert_eq!(grant.spec.names.plural, "crossaccountgrants", "{source}");
        assert_eq!(
            grant.spec.names.short_names.as_deref(),
            Some(&["xag".to_string()][..]),
            "{source}"
        );
        assert_eq!(
            grant.spec.names.categories.as_deref(),
            Some(&["xacct".to_string()][..]),
            "{source}"
        );

        let share = crd(&crds, "SnapshotShare");
        assert_eq!(share.spec.names.plural, "snapshotshares", "{source}");
        assert_eq!(
            share.spec.names.short_names.as_deref(),
            Some(&["snapshare".to_string()][..]),
            "{source}"
        );

        let account = crd(&crds, "AwsAccount");
        assert_eq!(account.spec.names.plural, "awsaccounts", "{source}");
        assert_eq!(
            account.spec.names.short_names.as_deref(),
            Some(&["awsacct".to_string()][..]),
            "{source}"
        );
        assert_eq!(
            account.spec.names.categories.as_deref(),
            Some(&["xacct".to_string()][..]),
            "{source}"
        );
    }
}

#[test]
fn grants_are_namespaced_and_accounts_cluster_scoped() {
    for (source, crds) in crd_sources() {
        assert_eq!(
            crd(&crds, "CrossAccountGrant").spec.scope,
            "Namespaced",
            "{source}"
        );
        assert_eq!(
            crd(&crds, "SnapshotShare").spec.scope,
            "Namespaced",
            "{source}"
        );
        assert_eq!(crd(&crds, "AwsAccount").spec.scope, "Cluster", "{source}");
    }
}

#[test]
fn grant_printer_columns() {
    for (source, crds) in crd_sources() {
        let version = only_version(crd(&crds, "CrossAccountGrant"));
        let columns: Vec<(&str, &str, &str)> = version
            .additional_printer_columns
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|c| (c.name.as_str(), c.type_.as_str(), c.json_path.as_str()))
            .collect();
        assert_eq!(
            columns,
            [
                // The AwsAccount that owns the resource.
                ("Account", "string", ".spec.resource.account"),
                ("Kind", "string", ".spec.resource.kind"),
                ("Resource", "string", ".spec.resource.name"),
                // The grantee's AwsAccount name or its account id, whichever the grant sets (a
                // plain `.spec.grantee.accountId` left grants naming a managed grantee blank).
                ("Grantee", "string", ".spec.grantee['account','accountId']"),
                (
                    "Ready",
                    "string",
                    ".status.conditions[?(@.type==\"Ready\")].status"
                ),
                (
                    "Reason",
                    "string",
                    ".status.conditions[?(@.type==\"Ready\")].reason"
                ),
                ("Age", "date", ".metadata.creationTimestamp"),
            ],
            "{source}"
        );
    }
}

#[test]
fn account_printer_columns() {
    for (source, crds) in crd_sources() {
        let version = only_version(crd(&crds, "AwsAccount"));
        let names: Vec<&str> = version
            .additional_printer_columns
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["Account", "Region", "Ready", "Reason", "Age"],
            "{source}"
        );
    }
}

#[test]
fn the_crds_carry_cel_validation_rules() {
    // The CEL rules themselves are exercised in tests/crd_validation_rules.rs; here only that they
    // made it into what ships.
    for (source, crds) in crd_sources() {
        for crd in &crds {
            let schema = serde_json::to_string(&only_version(crd).schema).unwrap();
            assert!(
                schema.contains("x-kubernetes-validations"),
                "{source}: {} has no x-kubernetes-validations",
                crd.spec.names.kind
            );
        }
    }
}

/// The openAPIV3Schema node at `path` (property names, `[]` for list items) of `kind`'s CRD.
fn schema_node(kind: &str, path: &[&str]) -> serde_json::Value {
    let crds = xacct::api::crds();
    let version = only_version(crd(&crds, kind));
    let mut node = serde_json::to_value(
        version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .unwrap(),
    )
    .unwrap();
    for step in path {
        node = if *step == "[]" {
            node["items"].take()
        } else {
            node["properties"][*step].take()
        };
        assert!(!node.is_null(), "{kind}: no schema at {path:?}");
    }
    node
}

#[test]
fn values_walked_by_cel_rules_are_bounded() {
    // The API server estimates a rule's worst-case cost when the CRD is created and refuses rules
    // over budget. `matches` costs (string length x regex length), so lists whose items are
    // regex-matched in `all(...)` (actions, principals) and strings used to build a regex
    // (AwsAccount: `'^arn:aws-[a-z-]+:iam::' + self.accountId + ':'`) must be bounded.
    let mut missing = Vec::new();
    for (kind, path, bound) in [
        ("CrossAccountGrant", &["spec", "actions"][..], "maxItems"),
        (
            "CrossAccountGrant",
            &["spec", "actions", "[]"][..],
            "maxLength",
        ),
        (
            "CrossAccountGrant",
            &["spec", "grantee", "principals"][..],
            "maxItems",
        ),
        (
            "CrossAccountGrant",
            &["spec", "grantee", "principals", "[]"][..],
            "maxLength",
        ),
        ("AwsAccount", &["spec", "accountId"][..], "maxLength"),
        (
            "AwsAccount",
            &["spec", "assumeRole", "roleArn"][..],
            "maxLength",
        ),
    ] {
        if schema_node(kind, path).get(bound).is_none() {
            missing.push(format!("{kind} {}: {bound}", path.join(".")));
        }
    }
    assert!(
        missing.is_empty(),
        "unbounded values walked by CEL rules:\n{}",
        missing.join("\n")
    );
}

#[test]
fn snapshot_share_printer_columns() {
    for (source, crds) in crd_sources() {
        let version = only_version(crd(&crds, "SnapshotShare"));
        let names: Vec<&str> = version
            .additional_printer_columns
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["Source", "Targets", "Ready", "Reason", "Age"],
            "{source}"
        );
    }
}
