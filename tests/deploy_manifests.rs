//! The ways to install the controller: the Helm chart (`charts/xacct`), the kustomize base
//! (`deploy/`) and the image (`Dockerfile`).
//!
//! - The CRDs they ship are the ones the types generate.
//! - `kubectl kustomize deploy/` builds offline and its objects keep the contract: the restricted
//!   security context, the probes on the metrics port, settings the real command line accepts,
//!   and RBAC granting exactly the Kubernetes API calls `xacct run` makes (listed below), with no
//!   Secret readable cluster-wide.
//! - The chart's values match values.schema.json, its templates use only declared values, and the
//!   static part of its templates (RBAC rules, security context, probes) is the kustomize base's.
//!   With a `helm` binary on PATH the chart is also linted and rendered, and the rendered objects
//!   are held to the same contract; without one, that check says so and is skipped.
//! - With checkov in `.venv` (scripts/setup-emulators.sh installs it), the kustomize output (and the
//!   rendered chart, with helm) has no finding that is not waived, with a reason, by a
//!   `checkov.io/skipN: CKV_K8S_NN=reason` annotation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use clap::{CommandFactory, Parser};
use serde::Deserialize;
use serde_json::{Value, json};
use xacct::cli::{Cli, Command as XacctCommand};

const NAMESPACE: &str = "xacct-system";
const CHART: &str = "charts/xacct";
const CHART_CRDS: &str = "charts/xacct/crds/xacct.dev_crds.yaml";
const KUSTOMIZE_CRDS: &str = "deploy/crds/xacct.dev_crds.yaml";
const REGENERATE: &str = "cargo run -q -- crds > crds/xacct.dev_crds.yaml && \
     cp crds/xacct.dev_crds.yaml charts/xacct/crds/xacct.dev_crds.yaml && \
     cp crds/xacct.dev_crds.yaml deploy/crds/xacct.dev_crds.yaml";

/// The contract: every Kubernetes API request `xacct run` makes, as RBAC (API group, resource,
/// verb; `core` is the core group), with where it comes from. The RBAC of both ways of installing
/// must grant exactly these. A change in src/ that makes another call must be added here and to
/// deploy/rbac.yaml and charts/xacct/templates/{clusterrole,role}.yaml.
const CLUSTER_WIDE_CALLS: &str = "
xacct.dev      crossaccountgrants         list    watcher feeding the index (controller/mod.rs; all namespaces or --namespace), check_crds
xacct.dev      crossaccountgrants         watch   watcher feeding the index
xacct.dev      crossaccountgrants         patch   run.rs: JSON patch of the finalizer xacct.dev/revoke
xacct.dev      crossaccountgrants/status  patch   run.rs finish, write_status: patch_status, server-side apply
xacct.dev      snapshotshares             list    watcher + reflector (controller/mod.rs; all namespaces or --namespace)
xacct.dev      snapshotshares             watch   watcher + reflector
xacct.dev      snapshotshares             patch   kube-runtime finalizer (share.rs)
xacct.dev      snapshotshares/status      patch   share.rs: patch_status, server-side apply
xacct.dev      awsaccounts                list    watchers + reflector (accounts and the index, readiness changes for shares), check_crds
xacct.dev      awsaccounts                watch   watchers + reflector
xacct.dev      awsaccounts                patch   kube-runtime finalizer: JSON patch of xacct.dev/in-use
xacct.dev      awsaccounts/status         patch   account.rs write_status: patch_status, server-side apply
events.k8s.io  events                     create  kube-runtime Recorder::publish (the object's namespace; `default` for accounts)
";

/// Namespaced calls, in the controller's own namespace (POD_NAMESPACE).
const OWN_NAMESPACE_CALLS: &str = "
coordination.k8s.io  leases   get     kube-lease-manager (leader.rs, --leader-elect)
coordination.k8s.io  leases   create  kube-lease-manager
coordination.k8s.io  leases   patch   kube-lease-manager: acquire, renew, release
core                 secrets  get     account.rs read_external_id: spec.assumeRole.externalIdSecretRef
";

/// The `Api<T>` types src/ may use; one more means a new kind of call (update the contract).
const KNOWN_API_TYPES: &[&str] = &["CrossAccountGrant", "SnapshotShare", "AwsAccount", "Secret"];

/// kube `Api` methods src/ may call, beyond the generic names (get, list, patch...).
const KNOWN_SPECIFIC_API_METHODS: &[&str] = &["patch_status", "list_metadata"];

/// Environment variables the container may set besides the command line's own.
/// (The AWS SDK's own variables, `AWS_*`, are allowed too.)
const OTHER_ENV: &[&str] = &["XACCT_LOG"];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every non-empty document of a YAML stream.
fn yaml_documents(text: &str, origin: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .enumerate()
        .map(|(i, doc)| {
            Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{origin}: document {} is not valid YAML: {e}", i + 1))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

fn yaml_value(text: &str, origin: &str) -> Value {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("{origin} is not valid YAML: {e}"))
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// Whether a program is on PATH (it starts at all).
fn installed(program: &str, args: &[&str]) -> bool {
    match Command::new(program).args(args).output() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => panic!("cannot run {program}: {e}"),
    }
}

fn str_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The objects of one way of installing, looked up by kind.
struct Install {
    origin: String,
    docs: Vec<Value>,
}

impl Install {
    fn new(origin: &str, docs: Vec<Value>) -> Install {
        Install {
            origin: origin.to_string(),
            docs,
        }
    }

    fn all(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|d| d["kind"] == kind).collect()
    }

    fn one(&self, kind: &str) -> &Value {
        let found = self.all(kind);
        assert_eq!(
            found.len(),
            1,
            "{}: expected exactly one {kind}, found {}",
            self.origin,
            found.len()
        );
        found[0]
    }

    fn kinds(&self) -> BTreeSet<String> {
        self.docs
            .iter()
            .map(|d| d["kind"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

fn kustomize_output() -> Option<&'static str> {
    static OUTPUT: OnceLock<Option<String>> = OnceLock::new();
    OUTPUT
        .get_or_init(|| {
            if !installed("kubectl", &["version", "--client"]) {
                return None;
            }
            let out = run("kubectl", &["kustomize", "deploy/"]);
            assert!(
                out.status.success(),
                "`kubectl kustomize deploy/` failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(String::from_utf8(out.stdout).expect("kustomize prints UTF-8"))
        })
        .as_deref()
}

fn kustomize_install() -> Option<Install> {
    match kustomize_output() {
        Some(text) => Some(Install::new(
            "kubectl kustomize deploy/",
            yaml_documents(text, "kubectl kustomize deploy/"),
        )),
        None => {
            println!(
                "SKIPPED: kubectl is not installed, so `kubectl kustomize deploy/` cannot be checked"
            );
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The contract, applied to the objects of one way of installing
// ---------------------------------------------------------------------------------------------

struct Expect {
    leader_elect: bool,
    namespace_object: bool,
    crds: bool,
    network_policy: bool,
    service_monitor: bool,
    secret_names: Vec<String>,
}

fn check_install(install: &Install, expect: &Expect) {
    let origin = &install.origin;
    let mut kinds: BTreeSet<&str> = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
    ]
    .into();
    if expect.namespace_object {
        kinds.insert("Namespace");
    }
    if expect.crds {
        kinds.insert("CustomResourceDefinition");
    }
    if expect.network_policy {
        kinds.insert("NetworkPolicy");
    }
    if expect.service_monitor {
        kinds.insert("ServiceMonitor");
    }
    let kinds: BTreeSet<String> = kinds.into_iter().map(String::from).collect();
    assert_eq!(install.kinds(), kinds, "{origin}: the kinds of objects");

    if expect.namespace_object {
        let ns = install.one("Namespace");
        assert_eq!(ns["metadata"]["name"], NAMESPACE, "{origin}");
        assert_eq!(
            ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted",
            "{origin}: the namespace enforces the restricted Pod Security Standard"
        );
    }
    if expect.crds {
        let names: BTreeSet<String> = install
            .all("CustomResourceDefinition")
            .iter()
            .map(|c| {
                c["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        let expected: BTreeSet<String> = xacct::api::crds()
            .iter()
            .map(|c| c.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, expected, "{origin}: the CRDs");
    }
    for doc in &install.docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        let cluster_scoped = matches!(
            kind,
            "Namespace" | "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding"
        );
        if !cluster_scoped {
            assert_eq!(
                doc["metadata"]["namespace"], NAMESPACE,
                "{origin}: {kind} {} must be in {NAMESPACE}",
                doc["metadata"]["name"]
            );
        }
    }

    let deployment = install.one("Deployment");
    let service_account = check_deployment(origin, deployment, expect.leader_elect);
    let sa = install.one("ServiceAccount");
    assert_eq!(
        sa["metadata"]["name"], service_account,
        "{origin}: the Deployment runs as the ServiceAccount installed with it"
    );
    check_rbac(install, &service_account, &expect.secret_names);
    check_service(install, deployment);
    if expect.network_policy {
        check_network_policy(install, deployment);
    }
}

/// Checks the Deployment; returns the name of its ServiceAccount.
fn check_deployment(origin: &str, deployment: &Value, leader_elect: bool) -> String {
    let pod = &deployment["spec"]["template"]["spec"];
    let replicas = deployment["spec"]["replicas"].as_u64().unwrap_or(1);
    let strategy = &deployment["spec"]["strategy"]["type"];
    if leader_elect {
        assert_eq!(strategy, "RollingUpdate", "{origin}: with a Lease");
    } else {
        assert_eq!(
            replicas, 1,
            "{origin}: more than one replica needs --leader-elect"
        );
        assert_eq!(
            strategy, "Recreate",
            "{origin}: without a Lease two Pods must never act at once"
        );
    }

    // The Pod's security context: the restricted profile, user 65532 (distroless nonroot).
    let pod_sc = &pod["securityContext"];
    assert_eq!(pod_sc["runAsNonRoot"], true, "{origin}: pod runAsNonRoot");
    assert_eq!(pod_sc["runAsUser"], 65532, "{origin}: pod runAsUser");
    assert_eq!(
        pod_sc["seccompProfile"]["type"], "RuntimeDefault",
        "{origin}: pod seccompProfile"
    );
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_ne!(pod[host], true, "{origin}: {host}");
    }
    assert!(
        pod["volumes"].is_null(),
        "{origin}: the controller needs no volume (read-only root, no hostPath)"
    );

    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "{origin}: one container");
    assert!(
        pod["initContainers"].is_null(),
        "{origin}: no init container"
    );
    let container = &containers[0];
    let sc = &container["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true, "{origin}: runAsNonRoot");
    assert_eq!(sc["runAsUser"], 65532, "{origin}: runAsUser");
    assert_eq!(
        sc["allowPrivilegeEscalation"], false,
        "{origin}: allowPrivilegeEscalation"
    );
    assert_eq!(
        sc["readOnlyRootFilesystem"], true,
        "{origin}: readOnlyRootFilesystem"
    );
    assert_ne!(sc["privileged"], true, "{origin}: privileged");
    assert_eq!(
        sc["capabilities"]["drop"],
        json!(["ALL"]),
        "{origin}: capabilities"
    );
    assert!(
        sc["capabilities"]["add"].is_null(),
        "{origin}: no capability added"
    );
    assert_eq!(
        sc["seccompProfile"]["type"], "RuntimeDefault",
        "{origin}: seccompProfile"
    );

    // Port and probes.
    let ports = container["ports"].as_array().expect("ports");
    let metrics = ports
        .iter()
        .find(|p| p["name"] == "metrics")
        .unwrap_or_else(|| panic!("{origin}: no port named metrics"));
    assert_eq!(metrics["containerPort"], 8080, "{origin}: metrics port");
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{origin}: {probe} path");
        assert!(
            get["port"] == "metrics" || get["port"] == 8080,
            "{origin}: {probe} port is {}",
            get["port"]
        );
    }
    assert!(
        !container["resources"]["requests"].is_null()
            && !container["resources"]["limits"]["memory"].is_null(),
        "{origin}: resource requests and a memory limit"
    );
    check_command_line(origin, container, leader_elect);

    pod["serviceAccountName"]
        .as_str()
        .unwrap_or_else(|| panic!("{origin}: no serviceAccountName"))
        .to_string()
}

/// The container's args and environment are accepted by the real command line, as `xacct run`.
fn check_command_line(origin: &str, container: &Value, leader_elect: bool) {
    let args = str_list(&container["args"]);
    assert_eq!(
        args.first().map(String::as_str),
        Some("run"),
        "{origin}: args {args:?} must start with `run`"
    );
    assert!(
        container["command"].is_null(),
        "{origin}: the image's ENTRYPOINT /xacct is used"
    );

    // env name → (long flag, whether it takes a value), from clap itself.
    let cli = Cli::command();
    let run = cli.find_subcommand("run").expect("a `run` subcommand");
    let mut flags: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for arg in cli.get_arguments().chain(run.get_arguments()) {
        if let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) {
            flags.insert(
                env.to_string_lossy().into_owned(),
                (long.to_string(), arg.get_action().takes_values()),
            );
        }
    }

    let mut argv: Vec<String> = vec!["xacct".into()];
    argv.extend(args.iter().cloned());
    let mut seen = BTreeSet::new();
    for env in container["env"].as_array().cloned().unwrap_or_default() {
        let name = env["name"].as_str().unwrap_or_default().to_string();
        assert!(seen.insert(name.clone()), "{origin}: env {name} set twice");
        if let Some(field) = env["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            let expected = match name.as_str() {
                "POD_NAME" => "metadata.name",
                "POD_NAMESPACE" => "metadata.namespace",
                other => panic!("{origin}: unexpected downward API variable {other}"),
            };
            assert_eq!(field, expected, "{origin}: {name}");
            continue;
        }
        let value = env["value"]
            .as_str()
            .unwrap_or_else(|| panic!("{origin}: env {name} has no string value"));
        match flags.get(&name) {
            Some((long, true)) => argv.push(format!("--{long}={value}")),
            Some((long, false)) => {
                if value == "true" {
                    argv.push(format!("--{long}"));
                }
            }
            None => assert!(
                OTHER_ENV.contains(&name.as_str()) || name.starts_with("AWS_"),
                "{origin}: env {name} is read by nothing (the command line's variables: {:?})",
                flags.keys().collect::<Vec<_>>()
            ),
        }
    }
    for name in ["POD_NAME", "POD_NAMESPACE"] {
        assert!(
            seen.contains(name),
            "{origin}: {name} must come from the downward API"
        );
    }

    let cli = Cli::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("{origin}: the command line refuses {argv:?}:\n{e}"));
    match cli.command {
        XacctCommand::Run(run) => {
            assert_eq!(
                run.metrics_addr.port(),
                8080,
                "{origin}: /metrics, /healthz and /readyz on the probed port"
            );
            assert_eq!(run.leader_elect, leader_elect, "{origin}: --leader-elect");
        }
        other => panic!("{origin}: args parse as {other:?}, not `run`"),
    }
}

/// (API group, resource, verb) triples a list of rules grants.
fn grants(origin: &str, rules: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules.as_array().cloned().unwrap_or_default() {
        assert!(
            rule["nonResourceURLs"].is_null(),
            "{origin}: no nonResourceURLs"
        );
        for group in str_list(&rule["apiGroups"]) {
            for resource in str_list(&rule["resources"]) {
                for verb in str_list(&rule["verbs"]) {
                    for word in [&group, &resource, &verb] {
                        assert!(!word.contains('*'), "{origin}: wildcard in rule {rule}");
                    }
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

/// Fails naming what is granted but never used, and what is used but not granted.
fn assert_grants(
    origin: &str,
    role: &str,
    granted: BTreeSet<(String, String, String)>,
    table: &str,
) {
    let expected = contract(table);
    let extra: Vec<_> = granted.difference(&expected).collect();
    let missing: Vec<_> = expected.difference(&granted).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{origin}: the {role} must grant exactly the calls `xacct run` makes (the contract in \
         tests/deploy_manifests.rs).\nGranted but not used: {extra:?}\nUsed but not granted: {missing:?}"
    );
}

fn contract(table: &str) -> BTreeSet<(String, String, String)> {
    table
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut words = line.split_whitespace();
            let mut next = || words.next().expect("group, resource, verb").to_string();
            let group = next();
            let group = if group == "core" {
                String::new()
            } else {
                group
            };
            (group, next(), next())
        })
        .collect()
}

fn check_rbac(install: &Install, service_account: &str, secret_names: &[String]) {
    let origin = &install.origin;
    let subject =
        json!([{"kind": "ServiceAccount", "name": service_account, "namespace": NAMESPACE}]);

    let cluster_role = install.one("ClusterRole");
    let cluster_rules = &cluster_role["rules"];
    for rule in cluster_rules.as_array().cloned().unwrap_or_default() {
        assert!(
            !str_list(&rule["resources"]).iter().any(|r| r == "secrets"),
            "{origin}: the ClusterRole must grant nothing on Secrets: {rule}"
        );
        assert!(
            rule["resourceNames"].is_null(),
            "{origin}: ClusterRole rule {rule}"
        );
    }
    assert_grants(
        origin,
        "ClusterRole",
        grants(origin, cluster_rules),
        CLUSTER_WIDE_CALLS,
    );
    let binding = install.one("ClusterRoleBinding");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role["metadata"]["name"]}),
        "{origin}: ClusterRoleBinding"
    );
    assert_eq!(
        binding["subjects"], subject,
        "{origin}: ClusterRoleBinding subjects"
    );

    let role = install.one("Role");
    assert_eq!(role["metadata"]["namespace"], NAMESPACE, "{origin}: Role");
    assert_grants(
        origin,
        "Role",
        grants(origin, &role["rules"]),
        OWN_NAMESPACE_CALLS,
    );
    for rule in role["rules"].as_array().cloned().unwrap_or_default() {
        let names = str_list(&rule["resourceNames"]);
        if str_list(&rule["resources"]).iter().any(|r| r == "secrets") {
            assert_eq!(
                names, secret_names,
                "{origin}: the Secrets the controller may read"
            );
        } else {
            assert!(names.is_empty(), "{origin}: Role rule {rule}");
        }
    }
    let binding = install.one("RoleBinding");
    assert_eq!(binding["metadata"]["namespace"], NAMESPACE, "{origin}");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}),
        "{origin}: RoleBinding"
    );
    assert_eq!(
        binding["subjects"], subject,
        "{origin}: RoleBinding subjects"
    );
}

fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels[k] == *v))
}

fn check_service(install: &Install, deployment: &Value) {
    let origin = &install.origin;
    let service = install.one("Service");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert!(
        selects(&service["spec"]["selector"], pod_labels),
        "{origin}: the Service selects the controller's Pods"
    );
    assert!(
        selects(&deployment["spec"]["selector"]["matchLabels"], pod_labels),
        "{origin}: the Deployment selects its Pods"
    );
    let ports = service["spec"]["ports"].as_array().expect("service ports");
    assert!(
        ports
            .iter()
            .any(|p| p["name"] == "metrics" && p["targetPort"] == "metrics"),
        "{origin}: the Service exposes the metrics port"
    );
}

fn check_network_policy(install: &Install, deployment: &Value) {
    let origin = &install.origin;
    let policy = install.one("NetworkPolicy");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert!(
        selects(&policy["spec"]["podSelector"]["matchLabels"], pod_labels),
        "{origin}: the NetworkPolicy applies to the controller's Pods"
    );
    assert_eq!(
        policy["spec"]["ingress"],
        json!([{"ports": [{"port": "metrics", "protocol": "TCP"}]}]),
        "{origin}: only the metrics port is let in"
    );
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn shipped_crds_are_the_generated_ones() {
    let expected = xacct::cli::crds_yaml();
    for file in [CHART_CRDS, KUSTOMIZE_CRDS] {
        let actual = read(file);
        if actual != expected {
            let diff = similar::TextDiff::from_lines(&actual, &expected);
            let mut shown = diff
                .unified_diff()
                .context_radius(2)
                .header(file, "generated from src/api")
                .to_string();
            if shown.len() > 3000 {
                let mut cut = 3000;
                while !shown.is_char_boundary(cut) {
                    cut -= 1;
                }
                shown.truncate(cut);
                shown.push_str("\n[... diff truncated ...]\n");
            }
            panic!(
                "{file} is out of date with the types in src/api.\nRegenerate the CRDs and their \
                 copies with:\n\n    {REGENERATE}\n\n{shown}"
            );
        }
    }
    let entries: Vec<String> = std::fs::read_dir(root().join("charts/xacct/crds"))
        .expect("charts/xacct/crds")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries,
        ["xacct.dev_crds.yaml"],
        "charts/xacct/crds holds the CRDs only"
    );
}

#[test]
fn kustomize_base_keeps_the_contract() {
    let Some(install) = kustomize_install() else {
        return;
    };
    check_install(
        &install,
        &Expect {
            leader_elect: false,
            namespace_object: true,
            crds: true,
            network_policy: true,
            service_monitor: false,
            secret_names: vec![],
        },
    );
    let image = install.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        image,
        format!("xacct:{}", env!("CARGO_PKG_VERSION")),
        "deploy/: the image is the crate's version"
    );
}

/// src/ makes only the kinds of Kubernetes calls the contract above lists (a tripwire: a new
/// `Api<T>` type or a kube-specific `Api` method means RBAC must be looked at again).
#[test]
fn the_contract_covers_the_api_types_the_code_uses() {
    let types = regex::Regex::new(r"\bApi(?:::)?<\s*([A-Za-z_][A-Za-z0-9_]*)\s*>").unwrap();
    let methods = regex::Regex::new(
        r"\.(patch_status|replace_status|get_status|patch_metadata|get_metadata|get_metadata_opt|get_opt|list_metadata|watch_metadata|patch_subresource|replace_subresource|create_subresource|get_subresource|delete_collection|patch_scale|replace_scale|get_scale|evict|entry_api)\s*\(",
    )
    .unwrap();
    let mut files = vec![root().join("src")];
    let mut found_types = BTreeSet::new();
    let mut found_methods = BTreeSet::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("src dir") {
                files.push(entry.expect("entry").path());
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("source file");
            for c in types.captures_iter(&text) {
                // A one-letter name is a generic parameter (`Api<K>`), not a kind.
                if c[1].len() > 1 {
                    found_types.insert((c[1].to_string(), path.clone()));
                }
            }
            for c in methods.captures_iter(&text) {
                found_methods.insert((c[1].to_string(), path.clone()));
            }
        }
    }
    let found: BTreeSet<&str> = found_types.iter().map(|(t, _)| t.as_str()).collect();
    assert!(
        found.contains("Secret") && found.contains("CrossAccountGrant"),
        "the tripwire no longer sees the controller's Api types: {found:?}"
    );
    for (ty, path) in &found_types {
        assert!(
            KNOWN_API_TYPES.contains(&ty.as_str()),
            "{}: Api<{ty}> is a Kubernetes call the RBAC contract does not list; add it to \
             tests/deploy_manifests.rs, deploy/rbac.yaml and charts/xacct/templates/",
            path.display()
        );
    }
    for (method, path) in &found_methods {
        assert!(
            KNOWN_SPECIFIC_API_METHODS.contains(&method.as_str()),
            "{}: Api::{method} is a Kubernetes call the RBAC contract does not list; add it to \
             tests/deploy_manifests.rs, deploy/rbac.yaml and charts/xacct/templates/",
            path.display()
        );
    }
}

#[test]
fn chart_metadata_and_dockerfile() {
    let chart = yaml_value(&read("charts/xacct/Chart.yaml"), "Chart.yaml");
    assert_eq!(chart["apiVersion"], "v2", "Chart.yaml apiVersion");
    assert_eq!(chart["name"], "xacct", "Chart.yaml name");
    assert_eq!(
        chart["appVersion"],
        env!("CARGO_PKG_VERSION"),
        "Chart.yaml appVersion is the crate's version"
    );

    let dockerfile = read("Dockerfile");
    let from: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    assert_eq!(from.len(), 2, "Dockerfile: a build and a runtime stage");
    let builder = from[0];
    let rust = builder
        .strip_prefix("rust:")
        .and_then(|s| s.split('-').next())
        .unwrap_or_else(|| panic!("Dockerfile: build stage {builder:?} is not rust:VERSION-..."));
    let needed = read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("Cargo.toml rust-version");
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    assert!(
        version(rust) >= version(&needed),
        "Dockerfile: rust:{rust} is older than rust-version {needed}"
    );
    assert!(
        dockerfile.contains("cargo build --release --locked --bin xacct"),
        "Dockerfile: the locked release build of the binary"
    );
    assert_eq!(
        from[1].trim(),
        "gcr.io/distroless/cc-debian12:nonroot",
        "Dockerfile: runtime image (glibc for aws-lc-rs, no shell, nonroot)"
    );
    for line in [
        "USER 65532:65532",
        "ENTRYPOINT [\"/xacct\"]",
        "CMD [\"run\"]",
    ] {
        assert!(
            dockerfile.lines().any(|l| l.trim() == line),
            "Dockerfile: no `{line}`"
        );
    }
    let dockerignore = read(".dockerignore");
    let ignored: BTreeSet<&str> = dockerignore.lines().map(str::trim).collect();
    for path in ["target", ".venv", ".git"] {
        assert!(ignored.contains(path), ".dockerignore: {path}");
    }
}

// --- values.schema.json ------------------------------------------------------------------------

/// A small JSON Schema validator: the keywords values.schema.json uses, and no others (an unknown
/// keyword fails, so the schema cannot silently say more than is checked here).
fn validate(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    const KEYWORDS: &[&str] = &[
        "$schema",
        "title",
        "description",
        "type",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "enum",
        "minimum",
        "maximum",
        "minLength",
        "pattern",
    ];
    let schema = schema.as_object().expect("a schema is an object");
    for key in schema.keys() {
        assert!(
            KEYWORDS.contains(&key.as_str()),
            "values.schema.json at {path}: keyword {key} is not checked by this test"
        );
    }
    if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        let ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "null" => value.is_null(),
            other => panic!("values.schema.json at {path}: unknown type {other}"),
        };
        if !ok {
            errors.push(format!("{path}: {value} is not of type {ty}"));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            errors.push(format!("{path}: {value} is not one of {options:?}"));
        }
    }
    if let Some(n) = value.as_f64() {
        let min = schema.get("minimum").and_then(Value::as_f64);
        if min.is_some_and(|min| n < min) {
            errors.push(format!("{path}: {n} is below the minimum {min:?}"));
        }
        let max = schema.get("maximum").and_then(Value::as_f64);
        if max.is_some_and(|max| n > max) {
            errors.push(format!("{path}: {n} is above the maximum {max:?}"));
        }
    }
    if let Some(s) = value.as_str() {
        let min = schema.get("minLength").and_then(Value::as_u64);
        if min.is_some_and(|min| (s.chars().count() as u64) < min) {
            errors.push(format!("{path}: {s:?} is shorter than {min:?}"));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            let re = regex::Regex::new(pattern).expect("a valid pattern");
            if !re.is_match(s) {
                errors.push(format!("{path}: {s:?} does not match {pattern}"));
            }
        }
    }
    if let Some(object) = value.as_object() {
        for key in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = key.as_str().expect("required names");
            if !object.contains_key(key) {
                errors.push(format!("{path}: {key} is required"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (key, item) in object {
            let item_path = format!("{path}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(sub) => validate(sub, item, &item_path, errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        errors.push(format!("{item_path}: not allowed by the schema"))
                    }
                    Some(sub @ Value::Object(_)) => validate(sub, item, &item_path, errors),
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            validate(items, item, &format!("{path}[{i}]"), errors);
        }
    }
}

fn chart_schema() -> Value {
    serde_json::from_str(&read("charts/xacct/values.schema.json"))
        .unwrap_or_else(|e| panic!("charts/xacct/values.schema.json is not JSON: {e}"))
}

fn chart_values() -> Value {
    yaml_value(
        &read("charts/xacct/values.yaml"),
        "charts/xacct/values.yaml",
    )
}

fn errors_of(values: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    validate(&chart_schema(), values, "values", &mut errors);
    errors
}

#[test]
fn chart_values_match_their_schema() {
    let schema = chart_schema();
    let values = chart_values();
    assert_eq!(schema["type"], "object");
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown top-level values (typos) are refused"
    );
    let errors = errors_of(&values);
    assert!(
        errors.is_empty(),
        "values.yaml does not match values.schema.json:\n{}",
        errors.join("\n")
    );

    // Every top-level value is declared and typed, and every declared one has a default.
    let declared: BTreeSet<&String> = schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .filter(|k| *k != "global")
        .collect();
    let defaults: BTreeSet<&String> = values.as_object().expect("values").keys().collect();
    assert_eq!(
        declared, defaults,
        "values.schema.json and values.yaml declare the same top-level keys"
    );
    for key in &declared {
        assert!(
            schema["properties"][key.as_str()]["type"].is_string(),
            "values.schema.json: {key} has no type"
        );
    }
    for key in schema["required"].as_array().expect("required") {
        assert!(
            values.get(key.as_str().unwrap_or_default()).is_some(),
            "required {key} has a default"
        );
    }

    // The default settings are accepted by the command line (the Deployment passes them as env).
    let setting = |key: &str| match &values[key] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let argv = [
        "xacct".to_string(),
        "run".to_string(),
        format!("--instance-id={}", setting("instanceId")),
        format!("--resync-period={}", setting("resyncPeriod")),
        format!("--concurrency={}", setting("concurrency")),
        format!("--debounce={}", setting("debounce")),
        format!("--trust-policy-limit={}", setting("trustPolicyLimit")),
        format!("--log-format={}", setting("logFormat")),
        format!("--max-attempts={}", values["aws"]["maxAttempts"]),
        format!(
            "--call-timeout={}",
            values["aws"]["callTimeout"].as_str().unwrap_or_default()
        ),
        format!(
            "--principal-wait={}",
            values["aws"]["principalWait"].as_str().unwrap_or_default()
        ),
        format!(
            "--lease-name={}",
            values["leaderElection"]["leaseName"]
                .as_str()
                .unwrap_or_default()
        ),
        format!(
            "--lease-duration={}",
            values["leaderElection"]["leaseDuration"]
        ),
    ];
    if let Err(e) = Cli::try_parse_from(&argv) {
        panic!("values.yaml: the command line refuses the defaults {argv:?}:\n{e}");
    }

    // The schema does refuse what it should.
    let refused = |change: &dyn Fn(&mut Value), what: &str| {
        let mut bad = chart_values();
        change(&mut bad);
        assert!(
            !errors_of(&bad).is_empty(),
            "values.schema.json accepts {what}"
        );
    };
    refused(
        &|v| v["replicaCount"] = json!("two"),
        "a string replicaCount",
    );
    refused(&|v| v["logFormat"] = json!("xml"), "logFormat xml");
    refused(&|v| v["imageTypo"] = json!({}), "an unknown top-level key");
    refused(
        &|v| {
            v.as_object_mut().unwrap().remove("image");
        },
        "no image",
    );
    refused(
        &|v| v["image"]["digest"] = json!("latest"),
        "a digest that is not sha256:...",
    );
    refused(
        &|v| v["instanceId"] = json!("no spaces"),
        "an instance id the CLI refuses",
    );
    refused(&|v| v["concurrency"] = json!(0), "concurrency 0");
    refused(
        &|v| v["debounce"] = json!("soon"),
        "a debounce that is not a duration",
    );
    refused(&|v| v["aws"]["maxAttempts"] = json!(0), "no attempt at all");
    refused(
        &|v| v["aws"]["callTimeout"] = json!("forever"),
        "a call timeout that is not a duration",
    );
    refused(
        &|v| v["aws"]["principalWait"] = json!("a while"),
        "a principal wait that is not a duration",
    );
    refused(
        &|v| v["trustPolicyLimit"] = json!(5000),
        "a trust policy limit over 4096",
    );
    refused(
        &|v| v["externalIdSecrets"] = json!("one"),
        "externalIdSecrets as a string",
    );
    refused(
        &|v| v["serviceMonitor"]["enabled"] = json!("yes"),
        "a string boolean",
    );
}

#[test]
fn chart_templates_use_only_declared_values() {
    let values = chart_values();
    let reference =
        regex::Regex::new(r"\.Values\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)")
            .unwrap();
    let dir = root().join("charts/xacct/templates");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("templates") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("template");
        for c in reference.captures_iter(&text) {
            let mut node = &values;
            for part in c[1].split('.') {
                node = node.get(part).unwrap_or_else(|| {
                    panic!(
                        "{}: .Values.{} is not in values.yaml",
                        path.display(),
                        &c[1]
                    )
                });
            }
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} value references found");
}

/// The chart's templates with every template action taken out: the static skeleton, which holds
/// the RBAC rules, security contexts, probes and ports.
fn skeleton(relative: &str) -> Value {
    let text = read(relative);
    let comments = regex::Regex::new(r"(?s)\{\{-?\s*/\*.*?\*/\s*-?\}\}").unwrap();
    let text = comments.replace_all(&text, "");
    let action = regex::Regex::new(r"\{\{.*?\}\}").unwrap();
    let mut lines = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("{{")
            && trimmed.ends_with("}}")
            && action.replace_all(trimmed, "").trim().is_empty()
        {
            continue; // an action alone on its line (if, with, end, include | nindent, toYaml)
        }
        lines.push(action.replace_all(line, "TEMPLATED").into_owned());
    }
    let docs = yaml_documents(&lines.join("\n"), relative);
    assert_eq!(docs.len(), 1, "{relative}: one object");
    docs.into_iter().next().unwrap()
}

#[test]
fn chart_templates_keep_the_kustomize_rbac_and_security_context() {
    let Some(install) = kustomize_install() else {
        return;
    };
    let cluster_role = skeleton("charts/xacct/templates/clusterrole.yaml");
    assert_eq!(
        cluster_role["rules"],
        install.one("ClusterRole")["rules"],
        "the chart's ClusterRole rules are deploy/'s"
    );
    let mut role = skeleton("charts/xacct/templates/role.yaml");
    for rule in role["rules"].as_array_mut().expect("rules") {
        // Templated from values.externalIdSecrets.
        rule.as_object_mut().unwrap().remove("resourceNames");
    }
    assert_eq!(
        role["rules"],
        install.one("Role")["rules"],
        "the chart's Role rules are deploy/'s"
    );

    let chart = skeleton("charts/xacct/templates/deployment.yaml");
    let base = install.one("Deployment");
    let chart_pod = &chart["spec"]["template"]["spec"];
    let base_pod = &base["spec"]["template"]["spec"];
    assert_eq!(
        chart_pod["securityContext"], base_pod["securityContext"],
        "pod securityContext"
    );
    for field in [
        "securityContext",
        "livenessProbe",
        "readinessProbe",
        "ports",
    ] {
        assert_eq!(
            chart_pod["containers"][0][field], base_pod["containers"][0][field],
            "the chart's container {field} is deploy/'s"
        );
    }
    let waived = |deployment: &Value| -> BTreeSet<String> {
        deployment["metadata"]["annotations"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.starts_with("checkov.io/skip"))
            .map(|(_, v)| {
                v.as_str()
                    .unwrap_or_default()
                    .split('=')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(waived(&chart), waived(base), "the same checkov waivers");
}

// --- helm (only where a helm binary is installed) -----------------------------------------------

fn helm_template(extra: &[&str]) -> Result<String, String> {
    let mut args = vec![
        "template",
        "xacct",
        CHART,
        "--namespace",
        NAMESPACE,
        "--include-crds",
    ];
    args.extend_from_slice(extra);
    let out = run("helm", &args);
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).expect("helm prints UTF-8"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn chart_renders_with_helm() {
    if !installed("helm", &["version"]) {
        println!(
            "SKIPPED: no `helm` binary on PATH, so the chart is not linted or rendered here (its \
             schema, value references and static skeleton are checked by the other tests)"
        );
        return;
    }
    let lint = run("helm", &["lint", "--strict", CHART]);
    assert!(
        lint.status.success(),
        "helm lint --strict {CHART}:\n{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    let single = helm_template(&[]).unwrap_or_else(|e| panic!("helm template: {e}"));
    let install = Install::new(
        "helm template (defaults)",
        yaml_documents(&single, "helm template"),
    );
    check_install(
        &install,
        &Expect {
            leader_elect: false,
            namespace_object: false,
            crds: true,
            network_policy: true,
            service_monitor: false,
            secret_names: vec![],
        },
    );

    let ha = helm_template(&[
        "--set",
        "replicaCount=2",
        "--set",
        "externalIdSecrets={ext-a,ext-b}",
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "aws.endpointUrl=http://aws.test:4566",
    ])
    .unwrap_or_else(|e| panic!("helm template (2 replicas): {e}"));
    let install = Install::new(
        "helm template (2 replicas)",
        yaml_documents(&ha, "helm template"),
    );
    check_install(
        &install,
        &Expect {
            leader_elect: true,
            namespace_object: false,
            crds: true,
            network_policy: true,
            service_monitor: true,
            secret_names: vec!["ext-a".into(), "ext-b".into()],
        },
    );
    let monitor = install.one("ServiceMonitor");
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"], "metrics",
        "the ServiceMonitor scrapes the metrics port"
    );
    let env = &install.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .expect("env")
            .contains(&json!({"name": "AWS_ENDPOINT_URL", "value": "http://aws.test:4566"})),
        "AWS_ENDPOINT_URL when set"
    );
    assert!(
        !single.contains("AWS_ENDPOINT_URL"),
        "no AWS_ENDPOINT_URL unless set"
    );

    let leader = helm_template(&["--set", "leaderElection.enabled=true"])
        .unwrap_or_else(|e| panic!("helm template (leader election): {e}"));
    let install = Install::new(
        "helm template (leader election, 1 replica)",
        yaml_documents(&leader, "helm template"),
    );
    check_install(
        &install,
        &Expect {
            leader_elect: true,
            namespace_object: false,
            crds: true,
            network_policy: true,
            service_monitor: false,
            secret_names: vec![],
        },
    );

    assert!(
        helm_template(&["--set", "logFormat=xml"]).is_err(),
        "the schema refuses logFormat=xml at render time"
    );
    if let Some(checkov) = checkov() {
        scan(&checkov, &single, "helm template (defaults)");
    }
}

// --- checkov (only where .venv has it) ----------------------------------------------------------

fn checkov() -> Option<PathBuf> {
    let path = root().join(".venv/bin/checkov");
    path.exists().then_some(path)
}

/// Runs checkov offline on manifests; every finding must be waived with a reason.
fn scan(checkov: &Path, manifests: &str, origin: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("manifests.yaml");
    std::fs::write(&file, manifests).expect("write manifests");
    let out = Command::new(checkov)
        .arg("--file")
        .arg(&file)
        .args([
            "--framework",
            "kubernetes",
            "--skip-download",
            "--output",
            "json",
        ])
        .current_dir(dir.path())
        .output()
        .expect("checkov runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "checkov on {origin} printed no JSON report ({e}); status {}:\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let summary = &report["summary"];
    println!(
        "checkov {} on {origin}: {summary}",
        summary["checkov_version"].as_str().unwrap_or("?")
    );
    assert!(
        summary["resource_count"].as_u64().unwrap_or(0) >= 8,
        "checkov on {origin} saw too few resources: {summary}"
    );
    assert_eq!(
        summary["parsing_errors"], 0,
        "checkov on {origin}: {summary}"
    );
    let failed: Vec<String> = report["results"]["failed_checks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| format!("{} {} ({})", c["check_id"], c["check_name"], c["resource"]))
        .collect();
    assert!(
        failed.is_empty(),
        "checkov findings on {origin}; fix them, or waive one with a reason in a \
         `checkov.io/skipN: \"CKV_K8S_NN=reason\"` annotation of the object:\n{}",
        failed.join("\n")
    );
    for skipped in report["results"]["skipped_checks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let reason = skipped["check_result"]["suppress_comment"]
            .as_str()
            .unwrap_or_default();
        assert!(
            reason.len() > 20 && reason != "No comment provided",
            "checkov on {origin}: {} is waived without a reason",
            skipped["check_id"]
        );
    }
    assert!(
        out.status.success(),
        "checkov on {origin}: status {}",
        out.status
    );
}

#[test]
fn checkov_finds_nothing_unwaived_in_the_kustomize_base() {
    let Some(checkov) = checkov() else {
        println!(
            "SKIPPED: .venv/bin/checkov is not installed (scripts/setup-emulators.sh installs it)"
        );
        return;
    };
    let Some(manifests) = kustomize_output() else {
        println!("SKIPPED: kubectl is not installed, so there is no kustomize output to scan");
        return;
    };
    scan(&checkov, manifests, "kubectl kustomize deploy/");
}
