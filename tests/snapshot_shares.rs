//! RDS snapshot sharing against the AWS emulator (moto, multi-account): unencrypted and encrypted
//! (customer managed key) shares, someone else's share left alone, automated snapshots copied for
//! sharing, the 20-account quota, `latestOf` following a new snapshot, and KMS grants.

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use support::{DATA_ACCOUNT, Moto, accounts_yaml};
use xacct::aws::{AwsPolicies, AwsSnapshots, Connector};
use xacct::engine::{AccountDirectory, Engine, EngineSettings, Operation, ShareInput, ShareReport};
use xacct::policy::PolicyDocument;

struct Rig {
    _moto: Moto,
    connector: Arc<Connector>,
    rds: aws_sdk_rds::Client,
    kms: aws_sdk_kms::Client,
    engine: Engine,
    accounts: AccountDirectory,
}

async fn rig() -> Rig {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let config = connector
        .session(&support::access("setup", DATA_ACCOUNT))
        .await
        .unwrap();
    let rds = connector.rds_client(&config, "us-east-1");
    let kms = connector.kms_client(&config, "us-east-1");
    let engine = Engine::new(
        Arc::new(AwsPolicies::new(connector.clone())),
        EngineSettings::default(),
    )
    .with_snapshots(Arc::new(AwsSnapshots::new(connector.clone())));
    let (accounts, _) = support::manifests(&accounts_yaml());
    Rig {
        _moto: moto,
        connector,
        rds,
        kms,
        engine,
        accounts,
    }
}

impl Rig {
    async fn instance(&self, id: &str, key: Option<&str>) {
        support::db_instance(&self.rds, id, key, None).await;
    }

    async fn snapshot(&self, instance: &str, id: &str) {
        self.rds
            .create_db_snapshot()
            .db_instance_identifier(instance)
            .db_snapshot_identifier(id)
            .send()
            .await
            .expect("create snapshot");
    }

    async fn shared_with(&self, id: &str) -> Vec<String> {
        let out = self
            .rds
            .describe_db_snapshot_attributes()
            .db_snapshot_identifier(id)
            .send()
            .await
            .unwrap();
        let mut values: Vec<String> = out
            .db_snapshot_attributes_result()
            .unwrap()
            .db_snapshot_attributes()
            .iter()
            .filter(|a| a.attribute_name() == Some("restore"))
            .flat_map(|a| a.attribute_values().to_vec())
            .collect();
        values.sort();
        values
    }

    async fn share_with(&self, id: &str, accounts: &[&str]) {
        let values: Vec<String> = accounts.iter().map(|s| s.to_string()).collect();
        self.rds
            .modify_db_snapshot_attribute()
            .db_snapshot_identifier(id)
            .attribute_name("restore")
            .set_values_to_add(Some(values))
            .send()
            .await
            .unwrap();
    }

    async fn run(&self, share: Value, operation: Operation, dry_run: bool) -> ShareReport {
        let share = serde_json::from_value(share).expect("valid SnapshotShare");
        let input = ShareInput {
            share,
            origin: "test".into(),
        };
        self.engine
            .run_shares(&self.accounts, &[input], operation, dry_run)
            .await
            .remove(0)
    }
}

fn share(spec: Value) -> Value {
    json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "SnapshotShare", "metadata": {"name": "orders-to-analytics", "namespace": "data"}, "spec": spec})
}

fn reason(report: &ShareReport) -> (&str, &str) {
    let c = report.ready().expect("Ready");
    (c.status, c.reason.as_str())
}

#[tokio::test]
async fn an_unencrypted_snapshot_is_shared_and_someone_elses_share_stays() {
    let r = rig().await;
    r.instance("orders", None).await;
    r.snapshot("orders", "orders-1").await;
    r.share_with("orders-1", &["333333333333"]).await; // shared by someone else, before xacct
    let spec = share(
        json!({"source": {"account": "data-prod", "dbSnapshotIdentifier": "orders-1"}, "targets": [{"accountId": "111111111111"}]}),
    );

    let plan = r.run(spec.clone(), Operation::Apply, true).await;
    assert_eq!(reason(&plan), ("False", "Pending"), "{plan:?}");
    assert_eq!(
        r.shared_with("orders-1").await,
        vec!["333333333333"],
        "a plan writes nothing"
    );

    let applied = r.run(spec.clone(), Operation::Apply, false).await;
    assert_eq!(reason(&applied), ("True", "Shared"), "{applied:?}");
    assert_eq!(
        r.shared_with("orders-1").await,
        vec!["111111111111", "333333333333"]
    );
    assert_eq!(applied.targets[0].key_access, "NotEncrypted");

    r.connector.calls().reset();
    let again = r.run(spec.clone(), Operation::Apply, false).await;
    assert_eq!(reason(&again), ("True", "Converged"));
    assert_eq!(
        r.connector.calls().count("ModifyDBSnapshotAttribute"),
        0,
        "converged: no write"
    );

    let deleted = r.run(spec, Operation::Delete, false).await;
    assert_eq!(reason(&deleted), ("False", "Unshared"), "{deleted:?}");
    assert_eq!(
        r.shared_with("orders-1").await,
        vec!["333333333333"],
        "only what this share added is removed"
    );
}

#[tokio::test]
async fn an_encrypted_snapshot_gets_key_policy_access_and_foreign_key_statements_survive() {
    let r = rig().await;
    let key = support::create_key(&r.kms).await;
    let before = support::key_policy(&r.kms, key.key_id()).await;
    r.instance("orders", Some(key.key_id())).await;
    r.snapshot("orders", "orders-1").await;
    let spec = share(
        json!({"source": {"account": "data-prod", "dbSnapshotIdentifier": "orders-1"},
                            "targets": [{"accountId": "111111111111"}, {"accountId": "444444444444"}]}),
    );
    let applied = r.run(spec.clone(), Operation::Apply, false).await;
    assert_eq!(reason(&applied), ("True", "Shared"), "{applied:?}");
    assert!(applied.targets.iter().all(|t| t.key_access == "KeyPolicy"));

    let policy = support::key_policy(&r.kms, key.key_id()).await;
    let doc: Value = serde_json::from_str(&policy).unwrap();
    let statements = doc["Statement"].as_array().unwrap();
    for s in PolicyDocument::parse(&before).unwrap().statements {
        assert!(
            statements.contains(&Value::Object(s.as_json().clone())),
            "the key's own statement stays: {policy}"
        );
    }
    for account in ["111111111111", "444444444444"] {
        // Both target accounts' statements differ only in their principal: they are shared.
        let root = json!(format!("arn:aws:iam::{account}:root"));
        let ours: Vec<&Value> = statements
            .iter()
            .filter(|s| {
                let aws = &s["Principal"]["AWS"];
                *aws == root || aws.as_array().is_some_and(|a| a.contains(&root))
            })
            .collect();
        assert_eq!(
            ours.len(),
            2,
            "Use and Grants statements for {account}: {policy}"
        );
        let actions: Vec<String> = ours
            .iter()
            .flat_map(|s| s["Action"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        for needed in [
            "kms:CreateGrant",
            "kms:DescribeKey",
            "kms:Decrypt",
            "kms:ReEncrypt*",
            "kms:GenerateDataKey*",
        ] {
            assert!(
                actions.iter().any(|a| a == needed),
                "{needed} for {account}"
            );
        }
    }
    assert_eq!(
        r.shared_with("orders-1").await,
        vec!["111111111111", "444444444444"]
    );

    let deleted = r.run(spec, Operation::Delete, false).await;
    assert_eq!(reason(&deleted), ("False", "Unshared"), "{deleted:?}");
    let after = support::key_policy(&r.kms, key.key_id()).await;
    assert!(
        PolicyDocument::parse(&after)
            .unwrap()
            .same_meaning(&PolicyDocument::parse(&before).unwrap()),
        "{after}"
    );
    assert!(r.shared_with("orders-1").await.is_empty());
}

#[tokio::test]
async fn kms_grant_mode_creates_and_revokes_one_grant_per_account() {
    let r = rig().await;
    let key = support::create_key(&r.kms).await;
    r.instance("orders", Some(key.key_id())).await;
    r.snapshot("orders", "orders-1").await;
    let spec = share(
        json!({"source": {"account": "data-prod", "dbSnapshotIdentifier": "orders-1"},
                            "targets": [{"accountId": "111111111111"}], "kms": {"mode": "Grant"}}),
    );
    let applied = r.run(spec.clone(), Operation::Apply, false).await;
    assert_eq!(reason(&applied), ("True", "Shared"), "{applied:?}");
    let grants = r
        .kms
        .list_grants()
        .key_id(key.key_id())
        .send()
        .await
        .unwrap()
        .grants
        .unwrap_or_default();
    assert_eq!(grants.len(), 1);
    assert_eq!(
        grants[0].grantee_principal(),
        Some("arn:aws:iam::111111111111:root")
    );
    r.connector.calls().reset();
    assert_eq!(
        reason(&r.run(spec.clone(), Operation::Apply, false).await),
        ("True", "Converged")
    );
    assert_eq!(
        r.connector.calls().count("CreateGrant"),
        0,
        "the grant is found by name, not created again"
    );
    r.run(spec, Operation::Delete, false).await;
    assert!(
        r.kms
            .list_grants()
            .key_id(key.key_id())
            .send()
            .await
            .unwrap()
            .grants
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn automated_snapshots_need_and_get_a_copy() {
    let r = rig().await;
    let key = support::create_key(&r.kms).await;
    r.instance("orders", None).await; // moto makes an automated snapshot with the instance
    let without = share(
        json!({"source": {"account": "data-prod", "latestOf": {"dbInstanceIdentifier": "orders", "type": "automated"}},
                               "targets": [{"accountId": "111111111111"}]}),
    );
    let refused = r.run(without, Operation::Apply, false).await;
    assert_eq!(reason(&refused), ("False", "CopyRequired"), "{refused:?}");
    assert!(
        refused
            .ready()
            .unwrap()
            .message
            .contains("spec.copyForSharing.kmsKeyId")
    );

    let with = share(
        json!({"source": {"account": "data-prod", "latestOf": {"dbInstanceIdentifier": "orders", "type": "automated"}},
                            "targets": [{"accountId": "111111111111"}], "copyForSharing": {"kmsKeyId": key.key_id()}}),
    );
    let applied = r.run(with.clone(), Operation::Apply, false).await;
    assert_eq!(reason(&applied), ("True", "Shared"), "{applied:?}");
    let copy_arn = applied.snapshot_arn.clone().unwrap();
    let copy_id = copy_arn.rsplit(':').next().unwrap().to_string();
    assert!(copy_id.starts_with("xacct-"), "{copy_id}");
    assert!(
        applied
            .copied_from
            .as_deref()
            .unwrap()
            .contains(":snapshot:rds:orders"),
        "{:?}",
        applied.copied_from
    );
    assert_eq!(r.shared_with(&copy_id).await, vec!["111111111111"]);
    let tags = r
        .rds
        .list_tags_for_resource()
        .resource_name(&copy_arn)
        .send()
        .await
        .unwrap()
        .tag_list
        .unwrap_or_default();
    assert!(
        tags.iter().any(|t| t.key() == Some("xacct.dev/copy-of")),
        "the copy is tagged as the tool's"
    );

    r.connector.calls().reset();
    let again = r.run(with, Operation::Apply, false).await;
    assert_eq!(reason(&again), ("True", "Converged"), "{again:?}");
    assert_eq!(
        r.connector.calls().count("CopyDBSnapshot"),
        0,
        "the copy is reused"
    );
}

#[tokio::test]
async fn more_than_twenty_accounts_are_refused_before_anything_changes() {
    let r = rig().await;
    r.instance("orders", None).await;
    r.snapshot("orders", "orders-1").await;
    let others: Vec<String> = (0..15).map(|i| format!("3333333333{i:02}")).collect();
    let refs: Vec<&str> = others.iter().map(String::as_str).collect();
    r.share_with("orders-1", &refs).await;
    let targets: Vec<Value> = (0..6)
        .map(|i| json!({"accountId": format!("1111111111{i:02}")}))
        .collect();
    let spec = share(
        json!({"source": {"account": "data-prod", "dbSnapshotIdentifier": "orders-1"}, "targets": targets}),
    );
    let refused = r.run(spec, Operation::Apply, false).await;
    assert_eq!(
        reason(&refused),
        ("False", "ShareQuotaExceeded"),
        "{refused:?}"
    );
    assert_eq!(
        r.shared_with("orders-1").await.len(),
        15,
        "nothing was shared"
    );

    // 21 targets in one share never get past the CRD's rules.
    let targets: Vec<Value> = (0..21)
        .map(|i| json!({"accountId": format!("1111111111{i:02}")}))
        .collect();
    let spec = share(
        json!({"source": {"account": "data-prod", "dbSnapshotIdentifier": "orders-1"}, "targets": targets}),
    );
    let invalid = r.run(spec, Operation::Apply, false).await;
    assert_eq!(reason(&invalid), ("False", "InvalidSpec"), "{invalid:?}");
}

#[tokio::test]
async fn latest_of_moves_to_the_new_snapshot_and_unshares_only_its_own_old_share() {
    let r = rig().await;
    r.instance("orders", None).await;
    r.snapshot("orders", "orders-1").await;
    let spec = share(
        json!({"source": {"account": "data-prod", "latestOf": {"dbInstanceIdentifier": "orders"}}, "targets": [{"accountId": "111111111111"}]}),
    );
    assert_eq!(
        reason(&r.run(spec.clone(), Operation::Apply, false).await),
        ("True", "Shared")
    );
    assert_eq!(r.shared_with("orders-1").await, vec!["111111111111"]);
    r.share_with("orders-1", &["333333333333"]).await; // someone else shares the old one too

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // a later creation time
    r.snapshot("orders", "orders-2").await;
    let moved = r.run(spec, Operation::Apply, false).await;
    assert_eq!(reason(&moved), ("True", "Shared"), "{moved:?}");
    assert!(
        moved
            .snapshot_arn
            .as_deref()
            .unwrap()
            .ends_with(":orders-2")
    );
    assert_eq!(r.shared_with("orders-2").await, vec!["111111111111"]);
    assert_eq!(
        r.shared_with("orders-1").await,
        vec!["333333333333"],
        "the old share is undone, the other one stays"
    );
}

#[tokio::test]
async fn a_missing_snapshot_has_its_own_reason() {
    let r = rig().await;
    let spec = share(
        json!({"source": {"account": "data-prod", "dbSnapshotIdentifier": "nope"}, "targets": [{"accountId": "111111111111"}]}),
    );
    let report = r.run(spec, Operation::Apply, false).await;
    assert_eq!(reason(&report), ("False", "NotFound"), "{report:?}");
}

#[tokio::test]
async fn latest_of_with_copies_unshares_the_old_copy_and_delete_releases_every_kept_one() {
    let r = rig().await;
    let key = support::create_key(&r.kms).await;
    r.instance("orders", None).await; // moto's automated snapshot of the instance
    let spec = share(
        json!({"source": {"account": "data-prod", "latestOf": {"dbInstanceIdentifier": "orders", "type": "manual", "keep": 2}},
                            "targets": [{"accountId": "111111111111"}]}),
    );
    r.snapshot("orders", "orders-1").await;
    assert_eq!(
        reason(&r.run(spec.clone(), Operation::Apply, false).await),
        ("True", "Shared")
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    r.snapshot("orders", "orders-2").await;
    assert_eq!(
        reason(&r.run(spec.clone(), Operation::Apply, false).await),
        ("True", "Shared")
    );
    assert_eq!(
        r.shared_with("orders-1").await,
        vec!["111111111111"],
        "keep: 2 keeps the older one shared"
    );
    assert_eq!(r.shared_with("orders-2").await, vec!["111111111111"]);
    let deleted = r.run(spec, Operation::Delete, false).await;
    assert_eq!(reason(&deleted), ("False", "Unshared"), "{deleted:?}");
    assert!(
        r.shared_with("orders-1").await.is_empty() && r.shared_with("orders-2").await.is_empty(),
        "every kept snapshot is released"
    );

    // Automated snapshots are shared through copies; delete releases the copy. (moto takes one
    // automated snapshot per instance, so the copy of a superseded automated snapshot is released
    // by the same code as orders-1 above: every snapshot or copy outside `keep`.)
    let copies = share(
        json!({"source": {"account": "data-prod", "latestOf": {"dbInstanceIdentifier": "orders", "type": "automated"}},
                              "targets": [{"accountId": "111111111111"}], "copyForSharing": {"kmsKeyId": key.key_id()}}),
    );
    let first = r.run(copies.clone(), Operation::Apply, false).await;
    assert_eq!(reason(&first), ("True", "Shared"), "{first:?}");
    let first_copy = first
        .snapshot_arn
        .clone()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(r.shared_with(&first_copy).await, vec!["111111111111"]);
    let deleted = r.run(copies, Operation::Delete, false).await;
    assert_eq!(reason(&deleted), ("False", "Unshared"), "{deleted:?}");
    assert!(
        r.shared_with(&first_copy).await.is_empty(),
        "the copy is released on delete"
    );
}

#[tokio::test]
async fn key_access_is_revoked_even_for_an_account_someone_else_shared_the_snapshot_with() {
    let r = rig().await;
    let key = support::create_key(&r.kms).await;
    let before = support::key_policy(&r.kms, key.key_id()).await;
    r.instance("orders", Some(key.key_id())).await;
    r.snapshot("orders", "orders-1").await;
    r.share_with("orders-1", &["111111111111"]).await; // shared by someone else, without key access
    let spec = share(
        json!({"source": {"account": "data-prod", "dbSnapshotIdentifier": "orders-1"}, "targets": [{"accountId": "111111111111"}]}),
    );
    assert_eq!(
        reason(&r.run(spec.clone(), Operation::Apply, false).await),
        ("True", "Shared")
    );
    let with_access = support::key_policy(&r.kms, key.key_id()).await;
    assert!(
        with_access.contains("arn:aws:iam::111111111111:root"),
        "xacct gave the key access: {with_access}"
    );
    r.run(spec, Operation::Delete, false).await;
    let after = support::key_policy(&r.kms, key.key_id()).await;
    assert!(
        PolicyDocument::parse(&after)
            .unwrap()
            .same_meaning(&PolicyDocument::parse(&before).unwrap()),
        "the key access xacct gave is gone: {after}"
    );
    assert_eq!(
        r.shared_with("orders-1").await,
        vec!["111111111111"],
        "the other party's share stays"
    );
}

#[tokio::test]
async fn a_share_whose_namespace_is_no_longer_allowed_is_unshared_with_its_key_access() {
    let mut r = rig().await;
    let key = support::create_key(&r.kms).await;
    let before = support::key_policy(&r.kms, key.key_id()).await;
    r.instance("orders", Some(key.key_id())).await;
    r.snapshot("orders", "orders-1").await;
    let spec = share(
        json!({"source": {"account": "data-prod", "dbSnapshotIdentifier": "orders-1"}, "targets": [{"accountId": "111111111111"}],
               "deletionPolicy": "Retain"}),
    );
    let applied = r.run(spec.clone(), Operation::Apply, false).await;
    assert_eq!(reason(&applied), ("True", "Shared"), "{applied:?}");
    assert_eq!(r.shared_with("orders-1").await, vec!["111111111111"]);

    // The source account stops allowing the namespace: even with Retain (which is about deleting
    // the share), what it gave is taken back.
    let (withdrawn, _) = support::manifests(&accounts_yaml().replacen(
        "allowedNamespaces: [\"*\"]",
        "allowedNamespaces: [\"web\"]",
        1,
    ));
    r.accounts = withdrawn;
    let plan = r.run(spec.clone(), Operation::Apply, true).await;
    assert_eq!(reason(&plan), ("False", "NamespaceNotAllowed"), "{plan:?}");
    let message = &plan.ready().unwrap().message;
    assert!(message.contains("its access would be revoked"), "{message}");
    assert_eq!(
        r.shared_with("orders-1").await,
        vec!["111111111111"],
        "a plan writes nothing"
    );

    let revoked = r.run(spec.clone(), Operation::Apply, false).await;
    assert_eq!(
        reason(&revoked),
        ("False", "NamespaceNotAllowed"),
        "{revoked:?}"
    );
    let message = &revoked.ready().unwrap().message;
    assert!(
        message.contains("does not allow shares from namespace data")
            && message.contains("its access was revoked"),
        "{message}"
    );
    assert!(revoked.access_revoked && revoked.targets.is_empty());
    assert!(r.shared_with("orders-1").await.is_empty());
    let after = support::key_policy(&r.kms, key.key_id()).await;
    assert!(
        PolicyDocument::parse(&after)
            .unwrap()
            .same_meaning(&PolicyDocument::parse(&before).unwrap()),
        "the key policy is back to its own statements: {after}"
    );
}
