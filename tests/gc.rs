//! `xacct gc` against the AWS emulator (moto, multi-account): statements of grants that are in no
//! manifest any more (both sides: the bucket policy and the grantee role's inline policy) are
//! listed by `--dry-run` and removed by `gc`; statements of live grants, of another instance,
//! handed-over (`Retained…`) and foreign ones stay; an unreadable manifest stops it.

mod support;

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};
use support::fixtures::GrantFixture;
use support::{
    DATA_ACCOUNT, DEV_ACCOUNT, Moto, accounts_yaml, clients, create_role, held_by, role_policy,
    sids,
};
use xacct::aws::INLINE_POLICY_NAME;
use xacct::policy::GrantOwner;

fn xacct(moto: &Moto, args: &[&str]) -> Output {
    let mut command = support::xacct_command(moto, args);
    command.output().expect("xacct runs")
}

/// Read access to `prefix` of the bucket lake for role/JobRole of the dev account (both sides).
fn grant(name: &str, prefix: &str) -> String {
    GrantFixture::new("batch", name)
        .bucket("lake")
        .prefix(prefix)
        .manage("dev", &["role/JobRole"])
        .yaml()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

async fn bucket_sids(s3: &aws_sdk_s3::Client) -> Vec<String> {
    let policy = s3
        .get_bucket_policy()
        .bucket("lake")
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    sids(&policy).into_iter().flatten().collect()
}

#[tokio::test]
async fn gc_removes_only_the_statements_of_grants_that_are_gone() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    let dev = clients(&connector, DEV_ACCOUNT).await;
    data.s3.create_bucket().bucket("lake").send().await.unwrap();
    create_role(&dev.iam, "JobRole", "ecs-tasks.amazonaws.com").await;

    let dir = tempfile::tempdir().unwrap();
    let both = write(
        dir.path(),
        "both.yaml",
        &format!(
            "{}{}{}",
            accounts_yaml(),
            grant("kept", "in/"),
            grant("gone", "out/")
        ),
    );
    let out = xacct(&moto, &["apply", "-f", &both]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Someone else's statements: a foreign one, another instance's, one handed over.
    let other = GrantOwner::new("staging", "batch", "gone").sid("Objects");
    let handed_over = format!(
        "Retained{}",
        &GrantOwner::new("default", "batch", "old").sid("Objects")["Xacct".len()..]
    );
    let mut doc: Value = serde_json::from_str(
        &data
            .s3
            .get_bucket_policy()
            .bucket("lake")
            .send()
            .await
            .unwrap()
            .policy
            .unwrap(),
    )
    .unwrap();
    for sid in ["Foreign", other.as_str(), handed_over.as_str()] {
        doc["Statement"].as_array_mut().unwrap().push(json!({"Sid": sid, "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{DEV_ACCOUNT}:root")}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::lake/x/*"}));
    }
    data.s3
        .put_bucket_policy()
        .bucket("lake")
        .policy(doc.to_string())
        .send()
        .await
        .unwrap();
    let before = bucket_sids(&data.s3).await;
    let gone = GrantOwner::new("default", "batch", "gone");
    let kept = GrantOwner::new("default", "batch", "kept");
    // Two statements of each grant differ (prefixes), a third is shared by both (same principal).
    let gone_sids: Vec<String> = before
        .iter()
        .filter(|s| held_by(s, &gone))
        .cloned()
        .collect();
    assert_eq!(gone_sids.len(), 3, "{before:?}");
    assert_eq!(
        gone_sids.iter().filter(|s| held_by(s, &kept)).count(),
        1,
        "{before:?}"
    );

    // The grant "gone" is deleted without its finalizer running: only "kept" is in the manifests.
    let only_kept = write(
        dir.path(),
        "kept.yaml",
        &format!("{}{}", accounts_yaml(), grant("kept", "in/")),
    );
    let dry = xacct(&moto, &["gc", "-f", &only_kept, "--dry-run", "-o", "json"]);
    assert_eq!(
        dry.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let report: Value = serde_json::from_slice(&dry.stdout).unwrap();
    let mut listed: Vec<(String, String)> = report["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap().to_string(),
                o["arn"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            (
                "RoleInlinePolicy".to_string(),
                format!("arn:aws:iam::{DEV_ACCOUNT}:role/JobRole")
            ),
            (
                "S3BucketPolicy".to_string(),
                "arn:aws:s3:::lake".to_string()
            ),
        ]
    );
    assert_eq!(
        bucket_sids(&data.s3).await,
        before,
        "a dry run writes nothing"
    );

    // A manifest that cannot be read stops it: the grants in it would count as gone.
    let broken = write(
        dir.path(),
        "broken.yaml",
        "kind: CrossAccountGrant\nspec: [",
    );
    let refused = xacct(&moto, &["gc", "-f", &only_kept, &broken]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("nothing was looked at"));
    assert_eq!(bucket_sids(&data.s3).await, before);

    let out = xacct(&moto, &["gc", "-f", &only_kept]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("removed 3 statement(s)"), "{text}");
    let after = bucket_sids(&data.s3).await;
    assert!(!after.iter().any(|s| held_by(s, &gone)), "{after:?}");
    assert_eq!(after.iter().filter(|s| held_by(s, &kept)).count(), 3);
    // Everyone else's statements are as they were.
    let others = |sids: &[String]| -> Vec<String> {
        sids.iter()
            .filter(|s| !held_by(s, &gone) && !held_by(s, &kept))
            .cloned()
            .collect()
    };
    assert_eq!(others(&after), others(&before));
    assert_eq!(others(&after).len(), 3);
    let role = role_policy(&dev.iam, "JobRole", INLINE_POLICY_NAME)
        .await
        .unwrap();
    let role_sids: Vec<String> = sids(&role).into_iter().flatten().collect();
    assert!(
        role_sids.iter().all(|s| kept.owns(s)) && role_sids.len() == 3,
        "{role_sids:?}"
    );

    // Nothing is left to collect.
    let again = xacct(&moto, &["gc", "-f", &only_kept, "--dry-run"]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
}

/// The statements of grants on a queue, a topic and a secret that are in no manifest any more are
/// found and removed too; the foreign ones and SNS's default policy stay.
#[tokio::test]
async fn gc_finds_orphans_on_queues_topics_and_secrets() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    let url = data
        .sqs
        .create_queue()
        .queue_name("jobs")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let topic = data
        .sns
        .create_topic()
        .name("events")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    data.secrets
        .create_secret()
        .name("password")
        .secret_string("not-a-secret")
        .send()
        .await
        .unwrap();
    let default_topic_policy = data
        .sns
        .get_topic_attributes()
        .topic_arn(&topic)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove("Policy")
        .unwrap();
    let on = |name: &str, kind: &str, resource: &str, access: &str| {
        GrantFixture::new("apps", name)
            .resource(kind, resource)
            .access(&[access])
            .yaml()
    };
    let dir = tempfile::tempdir().unwrap();
    let all = write(
        dir.path(),
        "all.yaml",
        &format!(
            "{}{}{}{}",
            accounts_yaml(),
            on("sends", "SqsQueue", "jobs", "send"),
            on("publishes", "SnsTopic", "events", "publish"),
            on("reads", "Secret", "password", "read"),
        ),
    );
    let out = xacct(&moto, &["apply", "-f", &all]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Every grant is gone without its finalizer running: the manifests hold only the accounts.
    let none = write(dir.path(), "none.yaml", &accounts_yaml());
    let dry = xacct(&moto, &["gc", "-f", &none, "--dry-run", "-o", "json"]);
    assert_eq!(
        dry.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let report: Value = serde_json::from_slice(&dry.stdout).unwrap();
    let kinds: std::collections::BTreeSet<String> = report["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["kind"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        kinds,
        ["SecretResourcePolicy", "SnsTopicPolicy", "SqsQueuePolicy"]
            .map(String::from)
            .into(),
        "{report:#}"
    );

    let out = xacct(&moto, &["gc", "-f", &none]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let queue_policy = data
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
        .send()
        .await
        .unwrap()
        .attributes
        .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::Policy))
        .unwrap_or_default();
    assert!(!queue_policy.contains("Xacct"), "{queue_policy}");
    let topic_policy = data
        .sns
        .get_topic_attributes()
        .topic_arn(&topic)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove("Policy")
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&topic_policy).unwrap(),
        serde_json::from_str::<Value>(&default_topic_policy).unwrap()
    );
    let secret_policy = data
        .secrets
        .get_resource_policy()
        .secret_id("password")
        .send()
        .await
        .unwrap()
        .resource_policy
        .unwrap_or_default();
    assert!(!secret_policy.contains("Xacct"), "{secret_policy}");
}
