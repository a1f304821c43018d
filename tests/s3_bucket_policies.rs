//! S3 bucket policies against the AWS emulator (moto, multi-account): the design notes' scenario of
//! a bucket in the data account read by another account's EC2 instance role, Batch job role, ECS
//! task role and a user.

mod support;

use std::sync::Arc;

use serde_json::json;
use support::{DATA_ACCOUNT, DEV_ACCOUNT, Moto, accounts_yaml, clients, manifests, sids};
use xacct::aws::AwsPolicies;
use xacct::engine::{Engine, EngineSettings, Operation};
use xacct::policy::{PolicyDocument, Statement};

const BUCKET: &str = "lake-bucket";

fn foreign_statement() -> serde_json::Value {
    json!({
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [format!("arn:aws:s3:::{BUCKET}"), format!("arn:aws:s3:::{BUCKET}/*")],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}
    })
}

fn grants_yaml() -> String {
    format!(
        "{accounts}
---
apiVersion: xacct.dev/v1alpha1
kind: CrossAccountGrant
metadata: {{name: batch-job-reads-lake, namespace: batch}}
spec:
  resource: {{account: data-prod, kind: S3Bucket, name: {BUCKET}, prefix: shared/}}
  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [role/BatchJobRole]}}
  access: [read]
---
apiVersion: xacct.dev/v1alpha1
kind: CrossAccountGrant
metadata: {{name: ecs-task-reads-writes-lake, namespace: apps}}
spec:
  resource: {{account: data-prod, kind: S3Bucket, name: {BUCKET}}}
  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [\"arn:aws:iam::{DEV_ACCOUNT}:role/EcsTaskRole\"]}}
  access: [readWrite]
---
apiVersion: xacct.dev/v1alpha1
kind: CrossAccountGrant
metadata: {{name: ec2-reads-lake, namespace: apps}}
spec:
  resource: {{account: data-prod, kind: S3Bucket, name: {BUCKET}}}
  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [role/Ec2InstanceRole]}}
  access: [read]
  actions: [\"s3:GetObjectTagging\"]
---
apiVersion: xacct.dev/v1alpha1
kind: CrossAccountGrant
metadata: {{name: analyst-reads-lake, namespace: apps}}
spec:
  resource: {{account: data-prod, kind: S3Bucket, name: {BUCKET}}}
  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [user/analyst]}}
  access: [read]
  conditions: {{IpAddress: {{\"aws:SourceIp\": [\"203.0.113.0/24\"]}}}}
",
        accounts = accounts_yaml()
    )
}

fn engine(connector: &Arc<xacct::aws::Connector>) -> Engine {
    Engine::new(
        Arc::new(AwsPolicies::new(connector.clone())),
        EngineSettings::default(),
    )
}

async fn bucket_policy(s3: &aws_sdk_s3::Client) -> Option<String> {
    match s3.get_bucket_policy().bucket(BUCKET).send().await {
        Ok(out) => out.policy().map(str::to_string),
        Err(_) => None,
    }
}

async fn put_policy(s3: &aws_sdk_s3::Client, statements: Vec<serde_json::Value>) {
    let doc = json!({"Version": "2012-10-17", "Statement": statements});
    s3.put_bucket_policy()
        .bucket(BUCKET)
        .policy(doc.to_string())
        .send()
        .await
        .expect("put bucket policy");
}

fn has_statement(policy: &str, wanted: &serde_json::Value) -> bool {
    let wanted = Statement::from_json(wanted.clone()).expect("valid statement");
    PolicyDocument::parse(policy)
        .expect("parses")
        .statements
        .iter()
        .any(|s| s.same_meaning(&wanted))
}

#[tokio::test]
async fn grants_converge_in_one_write_keep_foreign_statements_and_revoke_cleanly() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    data.s3
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
    put_policy(&data.s3, vec![foreign_statement()]).await;
    let (accounts, grants) = manifests(&grants_yaml());
    let engine = engine(&connector);

    connector.calls().reset();
    let report = engine
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    assert!(
        !report.has_errors(),
        "{}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    // Four grants on one bucket: one read to plan, one re-read before writing, one write.
    assert_eq!(connector.calls().count("GetBucketPolicy"), 2);
    assert_eq!(connector.calls().count("PutBucketPolicy"), 1);
    // One AssumeRole into the data account for the whole run (credentials are cached).
    assert_eq!(connector.calls().count("AssumeRole"), 1);
    for grant in &report.grants {
        let ready = grant.ready().expect("Ready condition");
        assert_eq!(
            (ready.status, ready.reason.as_str()),
            ("True", "Applied"),
            "{}",
            grant.name
        );
    }

    let policy = bucket_policy(&data.s3).await.expect("a policy");
    assert!(
        has_statement(&policy, &foreign_statement()),
        "foreign statement kept: {policy}"
    );
    let owned: Vec<_> = sids(&policy)
        .into_iter()
        .flatten()
        .filter(|s| s.starts_with("Xacct"))
        .collect();
    // batch (with a prefix): List (prefix-conditioned), Bucket (GetBucketLocation), Objects; the
    // other three (no prefix): one Access statement each, naming the bucket and its objects.
    assert_eq!(owned.len(), 3 + 3, "{policy}");
    let doc: serde_json::Value = serde_json::from_str(&policy).unwrap();
    let both = json!([
        format!("arn:aws:s3:::{BUCKET}"),
        format!("arn:aws:s3:::{BUCKET}/*")
    ]);
    for principal in ["role/EcsTaskRole", "role/Ec2InstanceRole", "user/analyst"] {
        let statements: Vec<_> = doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| {
                s["Principal"]["AWS"] == json!(format!("arn:aws:iam::{DEV_ACCOUNT}:{principal}"))
            })
            .collect();
        assert_eq!(statements.len(), 1, "{principal}: {policy}");
        assert!(
            statements[0]["Sid"].as_str().unwrap().ends_with("Access"),
            "{principal}: {policy}"
        );
        assert_eq!(statements[0]["Resource"], both, "{principal}: {policy}");
    }
    let batch_objects = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["Principal"]["AWS"] == json!(format!("arn:aws:iam::{DEV_ACCOUNT}:role/BatchJobRole"))
                && s["Resource"].as_str().is_some_and(|r| r.ends_with('*'))
        })
        .expect("batch object statement");
    assert_eq!(
        batch_objects["Resource"],
        json!(format!("arn:aws:s3:::{BUCKET}/shared/*"))
    );
    let analyst = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["Principal"]["AWS"] == json!(format!("arn:aws:iam::{DEV_ACCOUNT}:user/analyst"))
        })
        .expect("analyst statement");
    assert_eq!(
        analyst["Condition"]["IpAddress"]["aws:SourceIp"],
        json!(["203.0.113.0/24"])
    );

    // Converged: a second apply reads once and writes nothing.
    connector.calls().reset();
    let again = engine
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    assert!(!again.has_errors());
    assert_eq!(connector.calls().count("GetBucketPolicy"), 1);
    assert_eq!(connector.calls().count_matching(&["Put", "Delete"]), 0);
    assert_eq!(
        connector.calls().count("AssumeRole"),
        0,
        "cached credentials are reused"
    );
    assert!(
        again
            .grants
            .iter()
            .all(|g| g.ready().unwrap().reason == "Converged")
    );

    // Delete revokes every owned statement and keeps the foreign one (so the policy stays).
    let deleted = engine
        .run(&accounts, &grants, Operation::Delete, false)
        .await;
    assert!(!deleted.has_errors());
    let policy = bucket_policy(&data.s3)
        .await
        .expect("policy kept for the foreign statement");
    assert_eq!(
        sids(&policy),
        vec![Some("DenyInsecureTransport".to_string())]
    );
    assert!(has_statement(&policy, &foreign_statement()));
}

#[tokio::test]
async fn a_policy_holding_only_owned_statements_is_deleted_on_revoke() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    data.s3
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
    let (accounts, grants) = manifests(&grants_yaml());
    let engine = engine(&connector);

    assert!(
        !engine
            .run(&accounts, &grants, Operation::Apply, false)
            .await
            .has_errors()
    );
    assert!(bucket_policy(&data.s3).await.is_some());
    let deleted = engine
        .run(&accounts, &grants, Operation::Delete, false)
        .await;
    assert!(!deleted.has_errors());
    assert_eq!(deleted.targets[0].action, "delete");
    assert_eq!(bucket_policy(&data.s3).await, None);
}

#[tokio::test]
async fn drift_is_planned_and_corrected_without_touching_statements_added_meanwhile() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    data.s3
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
    let (accounts, grants) = manifests(&grants_yaml());
    let engine = engine(&connector);
    assert!(
        !engine
            .run(&accounts, &grants, Operation::Apply, false)
            .await
            .has_errors()
    );

    // Someone edits the policy in the console: drops one of our statements, adds their own.
    let policy = bucket_policy(&data.s3).await.unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&policy).unwrap();
    let statements = doc["Statement"].as_array_mut().unwrap();
    let removed = statements.remove(0);
    statements.push(foreign_statement());
    put_policy(&data.s3, statements.clone()).await;

    let plan = engine.run(&accounts, &grants, Operation::Apply, true).await;
    assert!(plan.has_changes());
    let changes = &plan.targets[0].changes;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].sid, removed["Sid"].as_str().unwrap());
    assert_eq!(changes[0].change, xacct::policy::ChangeKind::Added);
    let pending: Vec<_> = plan
        .grants
        .iter()
        .filter(|g| g.ready().unwrap().reason == "Pending")
        .collect();
    assert_eq!(pending.len(), 1);

    let applied = engine
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    assert!(!applied.has_errors());
    let policy = bucket_policy(&data.s3).await.unwrap();
    assert!(has_statement(&policy, &removed), "restored");
    assert!(
        has_statement(&policy, &foreign_statement()),
        "console statement kept"
    );
    assert!(
        !engine
            .run(&accounts, &grants, Operation::Apply, true)
            .await
            .has_changes()
    );
}

#[tokio::test]
async fn a_statement_added_between_plan_and_write_survives() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    data.s3
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
    let (accounts, grants) = manifests(&grants_yaml());
    let engine = engine(&connector);

    let plan = engine.plan(&accounts, &grants, Operation::Apply).await;
    put_policy(&data.s3, vec![foreign_statement()]).await; // a concurrent writer
    let applied = engine.apply(plan).await;
    assert!(applied.targets.iter().all(|t| t.error.is_none()));
    let policy = bucket_policy(&data.s3).await.unwrap();
    assert!(has_statement(&policy, &foreign_statement()), "{policy}");
    // The foreign statement, batch's List, Bucket and Objects, one Access per other grant.
    assert_eq!(sids(&policy).len(), 1 + 3 + 3, "{policy}");
}

#[tokio::test]
async fn a_missing_bucket_fails_its_grant_alone() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    data.s3
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
    let yaml = format!(
        "{}
---
apiVersion: xacct.dev/v1alpha1
kind: CrossAccountGrant
metadata: {{name: ghost, namespace: apps}}
spec:
  resource: {{account: data-prod, kind: S3Bucket, name: no-such-bucket}}
  grantee: {{accountId: \"{DEV_ACCOUNT}\"}}
  access: [read]
",
        grants_yaml()
    );
    let (accounts, grants) = manifests(&yaml);
    let report = engine(&connector)
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    let ghost = report
        .grants
        .iter()
        .find(|g| g.name == "apps/ghost")
        .unwrap();
    let ready = ghost.ready().unwrap();
    assert_eq!((ready.status, ready.reason.as_str()), ("False", "NotFound"));
    assert!(
        ready.message.contains("GetBucketPolicy"),
        "{}",
        ready.message
    );
    assert_eq!(
        report
            .grants
            .iter()
            .filter(|g| g.ready().unwrap().reason == "Applied")
            .count(),
        4
    );
    assert!(report.has_errors());
    assert!(bucket_policy(&data.s3).await.is_some());
}

#[tokio::test]
async fn a_foreign_statement_naming_a_deleted_role_is_kept_and_noted() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    data.s3
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
    // What AWS shows once the role a statement named was deleted: its unique id.
    let orphan = json!({"Sid": "OldPipeline", "Effect": "Allow", "Principal": {"AWS": "AROAEXAMPLEDELETED123"}, "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{BUCKET}/*")});
    put_policy(&data.s3, vec![orphan.clone()]).await;
    let (accounts, grants) = manifests(&grants_yaml());
    let engine = engine(&connector);

    let plan = engine.run(&accounts, &grants, Operation::Apply, true).await;
    let notes = &plan.targets[0].notes;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("\"OldPipeline\"") && n.contains("AROAEXAMPLEDELETED123")),
        "{notes:?}"
    );
    assert!(
        !engine
            .run(&accounts, &grants, Operation::Apply, false)
            .await
            .has_errors()
    );
    assert!(
        has_statement(&bucket_policy(&data.s3).await.unwrap(), &orphan),
        "the statement is not ours to fix"
    );
}

#[tokio::test]
async fn a_grant_that_would_overflow_the_policy_is_left_out_and_the_others_converge() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    data.s3
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
    put_policy(&data.s3, vec![foreign_statement()]).await;
    let huge: Vec<String> = (0..1500)
        .map(|i| format!("10.{}.{}.0/24", i / 250, i % 250))
        .collect();
    let yaml = format!(
        "{}
---
apiVersion: xacct.dev/v1alpha1
kind: CrossAccountGrant
metadata: {{name: a-small-one, namespace: apps}}
spec:
  resource: {{account: data-prod, kind: S3Bucket, name: {BUCKET}}}
  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [role/Reader]}}
  access: [read]
---
apiVersion: xacct.dev/v1alpha1
kind: CrossAccountGrant
metadata: {{name: b-huge-one, namespace: apps}}
spec:
  resource: {{account: data-prod, kind: S3Bucket, name: {BUCKET}}}
  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [role/Other]}}
  access: [read]
  conditions: {{IpAddress: {{\"aws:SourceIp\": {huge:?}}}}}
",
        accounts_yaml()
    );
    let (accounts, grants) = manifests(&yaml);
    let report = engine(&connector)
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    let ready = |name: &str| {
        report
            .grants
            .iter()
            .find(|g| g.name == name)
            .and_then(|g| g.ready())
            .map(|c| c.reason.as_str())
            .unwrap()
    };
    assert_eq!(ready("apps/a-small-one"), "Applied");
    assert_eq!(
        ready("apps/b-huge-one"),
        "PolicyTooLarge",
        "the grant that does not fit (the newest: last in the input)"
    );
    assert!(
        report.targets[0]
            .notes
            .iter()
            .any(|n| n.contains("apps/b-huge-one is left out")),
        "{:?}",
        report.targets[0].notes
    );
    let policy = bucket_policy(&data.s3).await.unwrap();
    assert_eq!(
        sids(&policy).len(),
        1 + 1,
        "the foreign statement and the small grant's one: {policy}"
    );
    assert!(has_statement(&policy, &foreign_statement()));
}
