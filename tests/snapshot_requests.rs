//! Snapshot sharing paths the AWS emulator cannot model, checked at the request level against an
//! in-memory backend that records every call: moto reports the `aws/rds` key as customer managed
//! (real AWS: AWS managed, so snapshots encrypted with it cannot be shared), and gives encrypted
//! snapshots without a key the placeholder key id `default_kms_key_id`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::json;
use xacct::api::{AwsAccount, SnapshotShare};
use xacct::aws::{
    AccountAccess, AwsError, AwsErrorKind, KeyInfo, PolicyBackend, SnapshotBackend, SnapshotInfo,
    TargetRef,
};
use xacct::engine::{AccountDirectory, Engine, EngineSettings, Operation, ShareInput};

const AWS_RDS_KEY: &str = "arn:aws:kms:us-east-1:222222222222:key/aws-rds-managed";
const SHARE_KEY: &str = "arn:aws:kms:us-east-1:222222222222:key/share-key";

#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<String>>,
    snapshots: Mutex<BTreeMap<String, SnapshotInfo>>,
    shared: Mutex<BTreeMap<String, Vec<String>>>,
    tags: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    policies: Mutex<BTreeMap<String, String>>,
}

impl Fake {
    fn log(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

fn snapshot(id: &str, kind: &str, key: Option<&str>) -> SnapshotInfo {
    SnapshotInfo {
        cluster: false,
        id: id.into(),
        arn: format!("arn:aws:rds:us-east-1:222222222222:snapshot:{id}"),
        source: "orders".into(),
        status: "available".into(),
        snapshot_type: kind.into(),
        encrypted: key.is_some(),
        kms_key_id: key.map(str::to_string),
        created: 1,
    }
}

#[async_trait]
impl SnapshotBackend for Fake {
    async fn describe(
        &self,
        _: &AccountAccess,
        _: &str,
        _: bool,
        id: &str,
    ) -> Result<Option<SnapshotInfo>, AwsError> {
        Ok(self.snapshots.lock().unwrap().get(id).cloned())
    }
    async fn list(
        &self,
        _: &AccountAccess,
        _: &str,
        _: bool,
        _: &str,
        kind: &str,
    ) -> Result<Vec<SnapshotInfo>, AwsError> {
        Ok(self
            .snapshots
            .lock()
            .unwrap()
            .values()
            .filter(|s| s.snapshot_type == kind)
            .cloned()
            .collect())
    }
    async fn shared_with(
        &self,
        _: &AccountAccess,
        _: &str,
        snap: &SnapshotInfo,
    ) -> Result<Vec<String>, AwsError> {
        Ok(self
            .shared
            .lock()
            .unwrap()
            .get(&snap.id)
            .cloned()
            .unwrap_or_default())
    }
    async fn modify_sharing(
        &self,
        _: &AccountAccess,
        _: &str,
        snap: &SnapshotInfo,
        add: &[String],
        remove: &[String],
    ) -> Result<(), AwsError> {
        self.log(format!(
            "ModifyDBSnapshotAttribute {} +{add:?} -{remove:?}",
            snap.id
        ));
        let mut shared = self.shared.lock().unwrap();
        let list = shared.entry(snap.id.clone()).or_default();
        list.extend(add.iter().cloned());
        list.retain(|a| !remove.contains(a));
        Ok(())
    }
    async fn tags(
        &self,
        _: &AccountAccess,
        _: &str,
        arn: &str,
    ) -> Result<BTreeMap<String, String>, AwsError> {
        Ok(self
            .tags
            .lock()
            .unwrap()
            .get(arn)
            .cloned()
            .unwrap_or_default())
    }
    async fn add_tags(
        &self,
        _: &AccountAccess,
        _: &str,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), AwsError> {
        self.tags
            .lock()
            .unwrap()
            .entry(arn.into())
            .or_default()
            .extend(tags.clone());
        Ok(())
    }
    async fn remove_tags(
        &self,
        _: &AccountAccess,
        _: &str,
        arn: &str,
        keys: &[String],
    ) -> Result<(), AwsError> {
        if let Some(t) = self.tags.lock().unwrap().get_mut(arn) {
            t.retain(|k, _| !keys.contains(k));
        }
        Ok(())
    }
    async fn copy(
        &self,
        _: &AccountAccess,
        _: &str,
        snap: &SnapshotInfo,
        target: &str,
        key: &str,
        _: &BTreeMap<String, String>,
    ) -> Result<SnapshotInfo, AwsError> {
        self.log(format!("CopyDBSnapshot {} -> {target} with {key}", snap.id));
        let copy = snapshot(target, "manual", Some(key));
        self.snapshots
            .lock()
            .unwrap()
            .insert(target.into(), copy.clone());
        Ok(copy)
    }
    async fn key_info(&self, _: &AccountAccess, _: &str, key: &str) -> Result<KeyInfo, AwsError> {
        let arn = if key == "alias/share-key" {
            SHARE_KEY.to_string()
        } else {
            key.to_string()
        };
        Ok(KeyInfo {
            arn,
            aws_managed: key == AWS_RDS_KEY,
            unusable: None,
        })
    }
    async fn find_grant(
        &self,
        _: &AccountAccess,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<Option<String>, AwsError> {
        Ok(None)
    }
    async fn create_grant(
        &self,
        _: &AccountAccess,
        _: &str,
        key: &str,
        _: &str,
        grantee: &str,
    ) -> Result<String, AwsError> {
        self.log(format!("CreateGrant {key} {grantee}"));
        Ok("g-1".into())
    }
    async fn revoke_grant(
        &self,
        _: &AccountAccess,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<(), AwsError> {
        Ok(())
    }
}

#[async_trait]
impl PolicyBackend for Fake {
    async fn locate(
        &self,
        account: &AccountAccess,
        kind: xacct::api::PolicyKind,
        region: &str,
        name: &str,
    ) -> Result<TargetRef, AwsError> {
        Ok(TargetRef {
            account: account.clone(),
            kind,
            region: region.into(),
            id: name.into(),
            arn: name.into(),
            created_by: None,
        })
    }
    async fn instance_profile_role(&self, _: &AccountAccess, p: &str) -> Result<String, AwsError> {
        Err(AwsError::new(
            AwsErrorKind::Other,
            "GetInstanceProfile",
            "222222222222",
            format!("not used by snapshot shares: {p}"),
        ))
    }
    async fn endpoint_arn(&self, _: &AccountAccess, _: &str, e: &str) -> Result<String, AwsError> {
        Err(AwsError::new(
            AwsErrorKind::Other,
            "DescribeEndpoint",
            "222222222222",
            format!("not used by snapshot shares: {e}"),
        ))
    }
    async fn encryption(&self, t: &TargetRef) -> Result<xacct::aws::Encryption, AwsError> {
        Err(AwsError::new(
            AwsErrorKind::Other,
            "GetBucketEncryption",
            "222222222222",
            format!("not used by snapshot shares: {}", t.arn),
        ))
    }
    async fn read(&self, t: &TargetRef) -> Result<Option<String>, AwsError> {
        Ok(self.policies.lock().unwrap().get(&t.arn).cloned())
    }
    async fn write(&self, t: &TargetRef, policy: &str) -> Result<(), AwsError> {
        self.log(format!("PutKeyPolicy {}", t.arn));
        self.policies
            .lock()
            .unwrap()
            .insert(t.arn.clone(), policy.into());
        Ok(())
    }
    async fn delete(&self, t: &TargetRef) -> Result<(), AwsError> {
        Err(AwsError::new(
            AwsErrorKind::Other,
            "delete",
            "222222222222",
            format!("cannot delete {}", t.arn),
        ))
    }
}

fn setup() -> (Arc<Fake>, Engine, AccountDirectory) {
    let fake = Arc::new(Fake::default());
    fake.snapshots.lock().unwrap().insert(
        "orders-1".into(),
        snapshot("orders-1", "manual", Some(AWS_RDS_KEY)),
    );
    let engine = Engine::new(fake.clone(), EngineSettings::default()).with_snapshots(fake.clone());
    let account: AwsAccount = serde_json::from_value(json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "AwsAccount", "metadata": {"name": "data-prod"},
        "spec": {"accountId": "222222222222", "allowedNamespaces": ["*"]}})).unwrap();
    (fake, engine, AccountDirectory::new([account]))
}

fn input(copy: bool) -> ShareInput {
    let mut spec = json!({"source": {"account": "data-prod", "dbSnapshotIdentifier": "orders-1"}, "targets": [{"accountId": "111111111111"}]});
    if copy {
        spec["copyForSharing"] = json!({"kmsKeyId": "alias/share-key"});
    }
    let share: SnapshotShare = serde_json::from_value(
        json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "SnapshotShare",
        "metadata": {"name": "s", "namespace": "data"}, "spec": spec}),
    )
    .unwrap();
    ShareInput {
        share,
        origin: "test".into(),
    }
}

#[tokio::test]
async fn a_snapshot_on_the_aws_managed_key_is_refused_without_copy_for_sharing() {
    let (fake, engine, accounts) = setup();
    let report = engine
        .run_shares(&accounts, &[input(false)], Operation::Apply, false)
        .await
        .remove(0);
    let ready = report.ready().unwrap();
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        ("False", "CopyRequired")
    );
    assert!(
        ready.message.contains("AWS managed key")
            && ready.message.contains("spec.copyForSharing.kmsKeyId"),
        "{}",
        ready.message
    );
    assert!(
        fake.calls().is_empty(),
        "nothing was written: {:?}",
        fake.calls()
    );
}

#[tokio::test]
async fn with_copy_for_sharing_the_copy_on_the_customer_key_is_shared_never_the_original() {
    let (fake, engine, accounts) = setup();
    let report = engine
        .run_shares(&accounts, &[input(true)], Operation::Apply, false)
        .await
        .remove(0);
    assert_eq!(report.ready().unwrap().reason, "Shared", "{report:?}");
    let calls = fake.calls();
    assert!(
        calls[0].starts_with("CopyDBSnapshot orders-1 -> xacct-") && calls[0].ends_with(SHARE_KEY),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c == &format!("PutKeyPolicy {SHARE_KEY}")),
        "the share key, not aws/rds, gets the statement: {calls:?}"
    );
    let share = calls
        .iter()
        .find(|c| c.starts_with("ModifyDBSnapshotAttribute"))
        .unwrap();
    assert!(
        share.contains("xacct-") && share.contains("111111111111"),
        "{share}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("ModifyDBSnapshotAttribute orders-1")),
        "the original is never shared"
    );
    let key_policy_index = calls
        .iter()
        .position(|c| c.starts_with("PutKeyPolicy"))
        .unwrap();
    let share_index = calls
        .iter()
        .position(|c| c.starts_with("ModifyDBSnapshotAttribute"))
        .unwrap();
    assert!(
        key_policy_index < share_index,
        "key access comes before the share: {calls:?}"
    );
}
