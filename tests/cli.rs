//! The `xacct` binary end to end against the AWS emulator: exit statuses, output, bad input.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::{DATA_ACCOUNT, Moto, clients, sids};

fn xacct(moto: &Moto, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut command = support::xacct_command(moto, args);
    for (k, v) in extra_env {
        command.env(k, v);
    }
    command.output().expect("xacct runs")
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const GOOD_GRANT: &str = "apiVersion: xacct.dev/v1alpha1
kind: CrossAccountGrant
metadata: {name: reads-lake, namespace: batch}
spec:
  resource: {account: data-prod, kind: S3Bucket, name: lake-bucket}
  grantee: {accountId: \"111111111111\", principals: [role/JobRole]}
  access: [read]
";

fn accounts(allowed: &str) -> String {
    format!(
        "apiVersion: xacct.dev/v1alpha1
kind: AwsAccount
metadata: {{name: data-prod}}
spec:
  accountId: \"{DATA_ACCOUNT}\"
  assumeRole: {{roleArn: \"arn:aws:iam::{DATA_ACCOUNT}:role/xacct-manager\", externalId: ext-DoNotLeak-4711}}
  allowedNamespaces: [{allowed}]
"
    )
}

async fn setup_bucket(moto: &Moto) -> aws_sdk_s3::Client {
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    data.s3
        .create_bucket()
        .bucket("lake-bucket")
        .send()
        .await
        .unwrap();
    data.s3
}

async fn bucket_sids(s3: &aws_sdk_s3::Client) -> Vec<Option<String>> {
    match s3.get_bucket_policy().bucket("lake-bucket").send().await {
        Ok(out) => sids(out.policy().unwrap()),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn plan_exit_status_is_2_with_changes_then_0_once_applied() {
    let moto = Moto::start();
    let s3 = setup_bucket(&moto).await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "accounts.yaml", &accounts("batch"));
    std::fs::create_dir(dir.path().join("grants")).unwrap();
    write(&dir.path().join("grants"), "lake.yaml", GOOD_GRANT);
    let path = dir.path().to_str().unwrap();

    let plan = xacct(&moto, &["plan", "-f", path], &[]);
    assert_eq!(
        plan.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("arn:aws:s3:::lake-bucket")
            && text.contains("would put")
            && text.contains("+ add Xacct"),
        "{text}"
    );
    assert!(bucket_sids(&s3).await.is_empty(), "plan writes nothing");

    let apply = xacct(&moto, &["apply", "-f", path, "-o", "json"], &[]);
    assert_eq!(
        apply.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&apply.stdout)
    );
    let report = json_of(&apply);
    assert_eq!(report["grants"][0]["conditions"][0]["type"], "Ready");
    assert_eq!(report["grants"][0]["conditions"][0]["status"], "True");
    assert_eq!(report["grants"][0]["conditions"][0]["reason"], "Applied");
    assert_eq!(report["targets"][0]["done"], true);
    // A read grant without a prefix: one statement on the bucket and its objects.
    assert_eq!(bucket_sids(&s3).await.len(), 1);

    let again = xacct(&moto, &["plan", "-f", path, "-o", "json"], &[]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(
        json_of(&again)["grants"][0]["conditions"][0]["reason"],
        "Converged"
    );

    let delete = xacct(&moto, &["delete", "-f", path], &[]);
    assert_eq!(
        delete.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&delete.stdout)
    );
    assert!(bucket_sids(&s3).await.is_empty());
}

#[tokio::test]
async fn bad_grants_get_field_errors_and_no_writes_while_good_ones_converge() {
    let moto = Moto::start();
    let s3 = setup_bucket(&moto).await;
    let dir = tempfile::tempdir().unwrap();
    let bad = |name: &str, namespace: &str, spec: &str| {
        format!(
            "---\napiVersion: xacct.dev/v1alpha1\nkind: CrossAccountGrant\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}\n"
        )
    };
    let manifests = [
        accounts("batch"),
        format!("---\n{GOOD_GRANT}"),
        bad(
            "unknown-account",
            "batch",
            "  resource: {account: nope, kind: S3Bucket, name: lake-bucket}\n  grantee: {accountId: \"111111111111\"}\n  access: [read]",
        ),
        bad(
            "bad-arn",
            "batch",
            "  resource: {account: data-prod, kind: S3Bucket, name: lake-bucket}\n  grantee: {accountId: \"111111111111\", principals: [\"arn:aws:iam::111111111111:group/Devs\"]}\n  access: [read]",
        ),
        bad(
            "other-account-arn",
            "batch",
            "  resource: {account: data-prod, kind: S3Bucket, name: lake-bucket}\n  grantee: {accountId: \"111111111111\", principals: [\"arn:aws:iam::333333333333:role/X\"]}\n  access: [read]",
        ),
        bad(
            "wrong-service",
            "batch",
            "  resource: {account: data-prod, kind: S3Bucket, name: lake-bucket}\n  grantee: {accountId: \"111111111111\"}\n  actions: [\"ecr:BatchGetImage\"]",
        ),
        bad(
            "public",
            "batch",
            "  resource: {account: data-prod, kind: S3Bucket, name: lake-bucket}\n  grantee: {accountId: \"111111111111\", principals: [\"*\"]}\n  access: [read]",
        ),
        bad(
            "no-bucket",
            "batch",
            "  resource: {account: data-prod, kind: S3Bucket, name: missing-bucket}\n  grantee: {accountId: \"111111111111\"}\n  access: [read]",
        ),
        bad(
            "forbidden-namespace",
            "web",
            "  resource: {account: data-prod, kind: S3Bucket, name: lake-bucket}\n  grantee: {accountId: \"111111111111\"}\n  access: [read]",
        ),
        bad(
            "short-account",
            "batch",
            "  resource: {account: data-prod, kind: S3Bucket, name: lake-bucket}\n  grantee: {accountId: \"11111111111\"}\n  access: [read]",
        ),
    ];
    write(dir.path(), "all.yaml", &manifests.concat());
    let path = dir.path().join("all.yaml");

    let apply = xacct(
        &moto,
        &["apply", "-f", path.to_str().unwrap(), "-o", "json"],
        &[],
    );
    assert_eq!(apply.status.code(), Some(1), "errors make the run fail");
    let report = json_of(&apply);
    let ready = |name: &str| {
        let grant = report["grants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .unwrap_or_else(|| panic!("{name} in report"));
        let c = &grant["conditions"][0];
        assert!(
            grant["origin"].as_str().unwrap().contains("all.yaml#"),
            "origin names the manifest: {grant}"
        );
        (
            c["status"].as_str().unwrap().to_string(),
            c["reason"].as_str().unwrap().to_string(),
            c["message"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(ready("batch/reads-lake").1, "Applied");
    let expectations = [
        (
            "batch/unknown-account",
            "InvalidSpec",
            "spec.resource.account: there is no AwsAccount named \"nope\"",
        ),
        ("batch/bad-arn", "InvalidSpec", "spec.grantee.principals"),
        (
            "batch/other-account-arn",
            "InvalidSpec",
            "spec.grantee.principals[0]: \"arn:aws:iam::333333333333:role/X\" is in account 333333333333",
        ),
        (
            "batch/wrong-service",
            "InvalidSpec",
            "spec.actions[0]: \"ecr:BatchGetImage\" is a ecr action",
        ),
        (
            "batch/public",
            "PublicPrincipalNotAllowed",
            "spec.grantee.principals[0]: the principal \"*\" (anyone) is refused: AwsAccount data-prod does not set allowPublicPrincipals: true; it has no access: no statement of it is left in AWS",
        ),
        ("batch/no-bucket", "NotFound", "GetBucketPolicy"),
        (
            "web/forbidden-namespace",
            "NamespaceNotAllowed",
            "does not allow grants from namespace web",
        ),
        (
            "batch/short-account",
            "InvalidSpec",
            "accountId must be a 12-digit AWS account id",
        ),
    ];
    for (name, reason, message) in expectations {
        let (status, got_reason, got_message) = ready(name);
        assert_eq!(
            (status.as_str(), got_reason.as_str()),
            ("False", reason),
            "{name}: {got_message}"
        );
        assert!(
            got_message.contains(message),
            "{name}: {got_message:?} should contain {message:?}"
        );
    }
    // Only the good grant's one statement (no prefix: bucket and objects together) was written.
    let written = bucket_sids(&s3).await;
    assert_eq!(written.len(), 1, "{written:?}");

    // The text output names the manifest and the field too.
    let plan = xacct(&moto, &["plan", "-f", path.to_str().unwrap()], &[]);
    assert_eq!(plan.status.code(), Some(1));
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("batch/wrong-service (")
            && text.contains("all.yaml#6")
            && text.contains("spec.actions[0]"),
        "{text}"
    );
}

#[tokio::test]
async fn malformed_manifests_are_reported_by_file_and_field() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &accounts("\"*\""));
    write(
        dir.path(),
        "typo.yaml",
        &GOOD_GRANT.replace("access:", "acess:"),
    );
    write(
        dir.path(),
        "broken.yaml",
        "apiVersion: xacct.dev/v1alpha1\nkind: [\n",
    );
    let out = xacct(&moto, &["plan", "-f", dir.path().to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("broken.yaml#1: not valid YAML"), "{text}");
    assert!(
        text.contains(
            "typo.yaml#1 (CrossAccountGrant batch/reads-lake): spec.acess: unknown field"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn credentials_and_external_ids_never_appear_in_output_or_logs() {
    let moto = Moto::start();
    let _s3 = setup_bucket(&moto).await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "all.yaml",
        &format!("{}---\n{GOOD_GRANT}", accounts("batch")),
    );
    let secret = "SecretKeyDoNotLeak0123456789";
    for args in [
        vec!["plan", "-o", "json"],
        vec!["apply"],
        vec!["apply", "-o", "json"],
    ] {
        let mut full = args.clone();
        full.extend(["-f", dir.path().to_str().unwrap()]);
        let out = xacct(
            &moto,
            &full,
            &[("AWS_SECRET_ACCESS_KEY", secret), ("XACCT_LOG", "trace")],
        );
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.code() == Some(0) || out.status.code() == Some(2),
            "{all}"
        );
        assert!(!all.is_empty());
        for leak in [secret, "ext-DoNotLeak-4711"] {
            assert!(!all.contains(leak), "{leak} leaked by {args:?}");
        }
    }
}

#[test]
fn crds_subcommand_prints_both_definitions() {
    let out = Command::new(env!("CARGO_BIN_EXE_xacct"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("name: crossaccountgrants.xacct.dev")
            && text.contains("name: awsaccounts.xacct.dev")
    );
}

#[tokio::test]
async fn snapshot_shares_go_through_plan_apply_and_delete() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let config = connector
        .session(&support::access("setup", DATA_ACCOUNT))
        .await
        .unwrap();
    let rds = connector.rds_client(&config, "us-east-1");
    support::db_instance(&rds, "orders", None, Some("orders-1")).await;
    let dir = tempfile::tempdir().unwrap();
    let share = "apiVersion: xacct.dev/v1alpha1
kind: SnapshotShare
metadata: {name: orders-to-analytics, namespace: batch}
spec:
  source: {account: data-prod, dbSnapshotIdentifier: orders-1}
  targets: [{accountId: \"111111111111\"}]
";
    write(
        dir.path(),
        "all.yaml",
        &format!("{}---\n{share}", accounts("batch")),
    );
    let path = dir.path().to_str().unwrap();

    let plan = xacct(&moto, &["plan", "-f", path], &[]);
    assert_eq!(
        plan.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("would share orders-1 with 111111111111")
    );
    let apply = xacct(&moto, &["apply", "-f", path, "-o", "json"], &[]);
    assert_eq!(
        apply.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&apply.stdout)
    );
    let report = json_of(&apply);
    assert_eq!(report["shares"][0]["conditions"][0]["reason"], "Shared");
    assert_eq!(
        report["shares"][0]["targets"][0]["keyAccess"],
        "NotEncrypted"
    );
    assert_eq!(
        xacct(&moto, &["plan", "-f", path], &[]).status.code(),
        Some(0),
        "converged"
    );
    let delete = xacct(&moto, &["delete", "-f", path, "-o", "json"], &[]);
    assert_eq!(delete.status.code(), Some(0));
    assert_eq!(
        json_of(&delete)["shares"][0]["conditions"][0]["reason"],
        "Unshared"
    );
    let attrs = rds
        .describe_db_snapshot_attributes()
        .db_snapshot_identifier("orders-1")
        .send()
        .await
        .unwrap();
    let shared: Vec<String> = attrs
        .db_snapshot_attributes_result()
        .unwrap()
        .db_snapshot_attributes()
        .iter()
        .flat_map(|a| a.attribute_values().to_vec())
        .collect();
    assert!(shared.is_empty(), "{shared:?}");
}

#[tokio::test]
async fn apply_of_a_grant_whose_namespace_is_no_longer_allowed_removes_its_statements() {
    let moto = Moto::start();
    let s3 = setup_bucket(&moto).await;
    let foreign = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Sid": "Foreign", "Effect": "Deny",
        "Principal": "*", "Action": "s3:DeleteBucket", "Resource": "arn:aws:s3:::lake-bucket"}]});
    s3.put_bucket_policy()
        .bucket("lake-bucket")
        .policy(foreign.to_string())
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "accounts.yaml", &accounts("batch"));
    write(dir.path(), "grant.yaml", GOOD_GRANT);
    let path = dir.path().to_str().unwrap();
    let apply = xacct(&moto, &["apply", "-f", path], &[]);
    assert_eq!(apply.status.code(), Some(0));
    // The foreign statement and the grant's one (no prefix: bucket and objects together).
    assert_eq!(bucket_sids(&s3).await.len(), 2);

    // The account no longer allows the namespace: plan shows the removal and writes nothing.
    write(dir.path(), "accounts.yaml", &accounts("web"));
    let plan = xacct(&moto, &["plan", "-f", path], &[]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(
        plan.status.code(),
        Some(1),
        "a refused grant is an error: {text}"
    );
    assert!(
        text.contains("- remove Xacct") && text.contains("its access would be revoked"),
        "{text}"
    );
    assert_eq!(bucket_sids(&s3).await.len(), 2, "plan writes nothing");

    let apply = xacct(&moto, &["apply", "-f", path, "-o", "json"], &[]);
    assert_eq!(apply.status.code(), Some(1));
    let report = json_of(&apply);
    let ready = &report["grants"][0]["conditions"][0];
    assert_eq!(ready["reason"], "NamespaceNotAllowed");
    assert!(
        ready["message"]
            .as_str()
            .is_some_and(|m| m.contains("its access was revoked: 1 statement(s) removed")),
        "{ready}"
    );
    assert_eq!(report["grants"][0]["targets"], serde_json::json!([]));
    assert_eq!(bucket_sids(&s3).await, [Some("Foreign".to_string())]);

    // Nothing left: a second apply writes nothing and says so.
    let again = xacct(&moto, &["apply", "-f", path, "-o", "json"], &[]);
    let ready = &json_of(&again)["grants"][0]["conditions"][0];
    assert!(
        ready["message"]
            .as_str()
            .is_some_and(|m| m.contains("it has no access: no statement of it is left in AWS")),
        "{ready}"
    );
}
