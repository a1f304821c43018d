//! Argo CD's health checks for xacct's kinds (deploy/argocd/): the scripts in argocd-cm.yaml and the
//! README are the health-*.lua files, and they say what each status the controller writes means.
//! The statuses come from the controller itself (`controller::run_with` against the kube emulator
//! and the AWS emulator); the scripts run under Lua 5.1, as in Argo CD, through
//! tests/support/argocd_health.py (lupa, in `.venv`).

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use kube::Api;
use serde_json::{Value, json};
use support::DEV_ACCOUNT;
use support::controller::{Harness, create, merge_spec};
use support::fixtures::{AccountFixture, GrantFixture, ShareFixture};
use support::kube_api::eventually;
use support::process::{python, root};
use xacct::api::SnapshotShare;

const GRANT: &str = "deploy/argocd/health-crossaccountgrant.lua";
const ACCOUNT: &str = "deploy/argocd/health-awsaccount.lua";
const SHARE: &str = "deploy/argocd/health-snapshotshare.lua";
const ARGOCD_CM: &str = "deploy/argocd/argocd-cm.yaml";

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The health of each object under its script: (status, message).
fn health(cases: &[(&str, &Value)]) -> Vec<(String, String)> {
    let input: Vec<Value> = cases
        .iter()
        .map(|(script, object)| {
            json!({"script": root().join(script).display().to_string(), "object": object})
        })
        .collect();
    let mut child = Command::new(python())
        .arg(root().join("tests/support/argocd_health.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the health scripts failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    results
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_string(),
                r["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn argocd_cm_and_the_readme_hold_the_script_files() {
    let cm: Value = serde_norway::from_str(&read(ARGOCD_CM)).expect("argocd-cm.yaml is YAML");
    let data = cm["data"].as_object().expect("data");
    let expected = [
        ("CrossAccountGrant", GRANT),
        ("AwsAccount", ACCOUNT),
        ("SnapshotShare", SHARE),
    ];
    assert_eq!(data.len(), expected.len(), "{:?}", data.keys());
    for (kind, file) in expected {
        let key = format!("resource.customizations.health.xacct.dev_{kind}");
        assert_eq!(
            data.get(&key).and_then(Value::as_str),
            Some(read(file).as_str()),
            "{ARGOCD_CM} {key} is not {file}"
        );
    }
    assert!(
        read("README.md").contains(&format!("```yaml\n{}```\n", read(ARGOCD_CM))),
        "README.md does not show {ARGOCD_CM} as it is"
    );
}

/// An object as the API server serves it (what Argo CD reads).
fn object<K: serde::Serialize>(k: &K) -> Value {
    serde_json::to_value(k).unwrap()
}

/// `object` with its Ready condition replaced: for the reasons the emulators cannot produce on
/// demand (throttling, an unreachable AWS, no result), on a status the controller wrote.
fn with_ready(object: &Value, status: &str, reason: &str) -> Value {
    let mut object = object.clone();
    for c in object["status"]["conditions"].as_array_mut().unwrap() {
        if c["type"] == "Ready" {
            c["status"] = json!(status);
            c["reason"] = json!(reason);
        }
    }
    object
}

fn ready_reason(object: &Value) -> Option<(String, String)> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// Waits until `name`'s object, as JSON, satisfies `done`; returns it.
async fn wait<K>(api: &Api<K>, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(30, what, || async {
        let o = object(&api.get(name).await.ok()?);
        done(&o).then_some(o)
    })
    .await
}

fn ready_is(status: &'static str, reasons: &'static [&'static str]) -> impl Fn(&Value) -> bool {
    move |o| {
        ready_reason(o).is_some_and(|(s, r)| s == status && reasons.contains(&r.as_str()))
            && o["status"]["observedGeneration"] == o["metadata"]["generation"]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_of_what_the_controller_writes() {
    let mut h = Harness::builder()
        .bare_bucket("lake")
        .bare_bucket("observed")
        .bare_bucket("drifting")
        .prepare()
        .await;
    h.orders_snapshot().await;
    h.run();

    let accounts = h.accounts();
    let grants = h.grants("batch");
    let forbidden = h.grants("other");
    let shares: Api<SnapshotShare> = Api::namespaced(h.client.clone(), "batch");

    create(
        &accounts,
        &AccountFixture::data_prod().allowed(&["batch"]).build(),
    )
    .await;
    // Its external id Secret does not exist: AssumeRoleFailed.
    let locked = AccountFixture::new("locked", DEV_ACCOUNT)
        .allowed(&["batch"])
        .external_id_secret("absent", "externalId");
    create(&accounts, &locked.build()).await;

    let grant = |name: &str| GrantFixture::new("batch", name);
    create(&grants, &grant("converged").bucket("lake").build()).await;
    create(&grants, &grant("missing").bucket("no-such-bucket").build()).await;
    create(&grants, &grant("waiting").account("locked").build()).await;
    create(
        &grants,
        &grant("observing").bucket("observed").observe().build(),
    )
    .await;
    create(&grants, &grant("drifting").bucket("drifting").build()).await;
    create(
        &forbidden,
        &GrantFixture::new("other", "forbidden")
            .bucket("lake")
            .build(),
    )
    .await;
    create(&shares, &ShareFixture::new("batch", "orders").build()).await;
    let absent = ShareFixture::new("batch", "no-snapshot").snapshot("no-such-snapshot");
    create(&shares, &absent.build()).await;

    // Observe after Enforce: converged, then someone takes the statements out (drift).
    wait(
        &grants,
        "drifting",
        "drifting Applied",
        ready_is("True", &["Applied", "Converged"]),
    )
    .await;
    merge_spec(&grants, "drifting", json!({"mode": "Observe"})).await;
    wait(
        &grants,
        "drifting",
        "drifting observed Converged",
        ready_is("True", &["Converged"]),
    )
    .await;
    h.s3.delete_bucket_policy()
        .bucket("drifting")
        .send()
        .await
        .unwrap();
    let drifting = wait(&grants, "drifting", "Drifted=True", |o| {
        o["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Drifted" && c["status"] == "True")
        })
    })
    .await;
    assert_eq!(
        ready_reason(&drifting),
        Some(("False".into(), "Pending".into()))
    );

    let converged = wait(
        &grants,
        "converged",
        "converged Ready",
        ready_is("True", &["Applied", "Converged"]),
    )
    .await;
    let missing = wait(
        &grants,
        "missing",
        "missing NotFound",
        ready_is("False", &["NotFound"]),
    )
    .await;
    let waiting = wait(
        &grants,
        "waiting",
        "waiting AccountNotReady",
        ready_is("False", &["AccountNotReady"]),
    )
    .await;
    let observing = wait(
        &grants,
        "observing",
        "observing Pending",
        ready_is("False", &["Pending"]),
    )
    .await;
    let refused = wait(
        &forbidden,
        "forbidden",
        "forbidden NamespaceNotAllowed",
        ready_is("False", &["NamespaceNotAllowed"]),
    )
    .await;
    let verified = wait(
        &accounts,
        "data-prod",
        "data-prod Verified",
        ready_is("True", &["Verified"]),
    )
    .await;
    let locked = wait(
        &accounts,
        "locked",
        "locked AssumeRoleFailed",
        ready_is("False", &["AssumeRoleFailed"]),
    )
    .await;
    let shared = wait(
        &shares,
        "orders",
        "orders Shared",
        ready_is("True", &["Shared", "Converged"]),
    )
    .await;
    let no_snapshot = wait(
        &shares,
        "no-snapshot",
        "no-snapshot NotFound",
        ready_is("False", &["NotFound"]),
    )
    .await;

    // Edits the controller has not seen yet: stop it, then change the specs.
    h.stop().await;
    merge_spec(&grants, "converged", json!({"access": ["readWrite"]})).await;
    merge_spec(
        &accounts,
        "data-prod",
        json!({"allowedNamespaces": ["batch", "web"]}),
    )
    .await;
    merge_spec(
        &shares,
        "orders",
        json!({"targets": [{"accountId": "333333333333"}]}),
    )
    .await;
    let edited_grant = object(&grants.get("converged").await.unwrap());
    let edited_account = object(&accounts.get("data-prod").await.unwrap());
    let edited_share = object(&shares.get("orders").await.unwrap());
    for edited in [&edited_grant, &edited_account, &edited_share] {
        assert_eq!(edited["metadata"]["generation"], json!(2), "{edited}");
        assert_eq!(edited["status"]["observedGeneration"], json!(1), "{edited}");
        assert_eq!(ready_reason(edited).map(|r| r.0), Some("True".into()));
    }
    let fresh = json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "CrossAccountGrant",
                       "metadata": {"name": "new", "namespace": "batch", "generation": 1}, "spec": {}});

    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (GRANT, converged.clone(), "Healthy", ""),
        (GRANT, missing.clone(), "Degraded", "NotFound: "),
        (GRANT, refused, "Degraded", "NamespaceNotAllowed: "),
        (GRANT, waiting, "Progressing", "AccountNotReady: "),
        // Retried by xacct on its own.
        (
            GRANT,
            with_ready(&missing, "False", "Throttled"),
            "Progressing",
            "Throttled: ",
        ),
        (
            GRANT,
            with_ready(&missing, "False", "AwsUnavailable"),
            "Progressing",
            "AwsUnavailable: ",
        ),
        (
            GRANT,
            with_ready(&converged, "Unknown", "Unknown"),
            "Progressing",
            "Unknown",
        ),
        // Observe: xacct waits for someone else (Suspended); drift it saw is Degraded.
        (
            GRANT,
            observing,
            "Suspended",
            "Observe mode (xacct never writes): Pending: ",
        ),
        (
            GRANT,
            drifting,
            "Degraded",
            "Observe mode, drift: DriftDetected: ",
        ),
        (
            GRANT,
            edited_grant,
            "Progressing",
            "waiting for xacct to reconcile generation 2",
        ),
        (GRANT, fresh, "Progressing", "waiting for xacct"),
        (ACCOUNT, verified, "Healthy", "Verified: "),
        (ACCOUNT, locked.clone(), "Degraded", "AssumeRoleFailed: "),
        (
            ACCOUNT,
            with_ready(&locked, "False", "InUse"),
            "Progressing",
            "InUse: ",
        ),
        (
            ACCOUNT,
            edited_account,
            "Progressing",
            "waiting for xacct to verify generation 2",
        ),
        (SHARE, shared, "Healthy", ""),
        (SHARE, no_snapshot.clone(), "Degraded", ""),
        (
            SHARE,
            with_ready(&no_snapshot, "False", "CopyInProgress"),
            "Progressing",
            "CopyInProgress",
        ),
        (
            SHARE,
            edited_share,
            "Progressing",
            "waiting for xacct to reconcile generation 2",
        ),
    ];
    let results = health(
        &cases
            .iter()
            .map(|(script, object, _, _)| (*script, object))
            .collect::<Vec<_>>(),
    );
    let mut wrong = Vec::new();
    for ((script, object, status, message), (got, said)) in cases.iter().zip(&results) {
        if got != status || !said.starts_with(message) {
            wrong.push(format!(
                "{script} on {} {:?}: {got} {said:?}, expected {status} {message:?}…",
                object["metadata"]["name"],
                ready_reason(object)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
