//! Crash consistency: `xacct apply` is killed with SIGKILL in the middle of a batch across many
//! bucket policies (some written, some not), then run again. Every policy converges, with each
//! grant's statements exactly once (compacted where two grants differ only in principal) and every
//! foreign statement kept; a delete then leaves only the
//! foreign statements. Runs the real binary against the AWS emulator (moto).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{DATA_ACCOUNT, DEV_ACCOUNT, Moto, accounts_yaml, clients};
use xacct::policy::GrantOwner;

const BUCKETS: usize = 40;

fn bucket(i: usize) -> String {
    format!("crash-{i:02}")
}

/// Two grants per bucket, so a policy holds several owners' statements.
fn manifests(dir: &Path) {
    let mut yaml = accounts_yaml();
    for i in 0..BUCKETS {
        for (who, prefix) in [("reader", "in/"), ("writer", "out/")] {
            yaml.push_str(&format!(
                "---\napiVersion: xacct.dev/v1alpha1\nkind: CrossAccountGrant\nmetadata: {{name: {who}-{i:02}, namespace: batch}}\nspec:\n  resource: {{account: data-prod, kind: S3Bucket, name: {}, prefix: {prefix}}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [role/{who}]}}\n  access: [read]\n",
                bucket(i)
            ));
        }
    }
    std::fs::write(dir.join("grants.yaml"), yaml).unwrap();
}

fn xacct(moto: &Moto, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xacct"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // One target at a time, so that a kill lands between targets of the batch.
        .env("XACCT_CONCURRENCY", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in moto.env() {
        command.env(k, v);
    }
    command
}

/// Sids of each bucket's policy, in order (foreign ones included).
async fn policies(s3: &aws_sdk_s3::Client) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for i in 0..BUCKETS {
        let policy = s3
            .get_bucket_policy()
            .bucket(bucket(i))
            .send()
            .await
            .ok()
            .and_then(|o| o.policy);
        let sids = policy
            .map(|p| support::sids(&p).into_iter().flatten().collect())
            .unwrap_or_default();
        out.insert(bucket(i), sids);
    }
    out
}

fn ours(sids: &[String]) -> usize {
    sids.iter().filter(|s| s.starts_with("Xacct")).count()
}

/// How many statements of bucket `i`'s policy hold the access of its reader and its writer grant
/// (a statement both share, compacted, counts for both).
fn held(sids: &[String], i: usize) -> [usize; 2] {
    ["reader", "writer"].map(|who| {
        let owner = GrantOwner::new("default", "batch", &format!("{who}-{i:02}"));
        sids.iter().filter(|s| support::held_by(s, &owner)).count()
    })
}

fn index(bucket: &str) -> usize {
    bucket["crash-".len()..].parse().unwrap()
}

#[tokio::test]
async fn a_killed_apply_converges_on_the_next_run_without_duplicates_or_orphans() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let s3 = clients(&connector, DATA_ACCOUNT).await.s3;
    for i in 0..BUCKETS {
        s3.create_bucket().bucket(bucket(i)).send().await.unwrap();
        let foreign = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Foreign", "Effect": "Deny",
            "Principal": "*", "Action": "s3:DeleteBucket", "Resource": format!("arn:aws:s3:::{}", bucket(i))}]});
        s3.put_bucket_policy()
            .bucket(bucket(i))
            .policy(foreign.to_string())
            .send()
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    manifests(dir.path());
    let file = dir.path().join("grants.yaml");
    let file = file.to_str().unwrap();

    // Kill the apply once it has written some policies but not all. How far a run gets in a given
    // time depends on the machine, so the kill waits for the first policy written (targets are
    // written in ARN order: crash-00 first).
    let mut child = xacct(&moto, &["apply", "-f", file]).spawn().unwrap();
    let started = Instant::now();
    loop {
        let first = s3.get_bucket_policy().bucket(bucket(0)).send().await;
        let first = first.ok().and_then(|o| o.policy).unwrap_or_default();
        if ours(
            &support::sids(&first)
                .into_iter()
                .flatten()
                .collect::<Vec<_>>(),
        ) > 0
        {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "apply finished before a written policy was seen"
        );
        assert!(started.elapsed() < Duration::from_secs(60), "no write seen");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let after_kill = policies(&s3).await;
    let written = after_kill.values().filter(|sids| ours(sids) > 0).count();
    assert!(
        (1..BUCKETS).contains(&written),
        "the kill landed mid-batch: {written} of {BUCKETS} policies written"
    );
    for (bucket, sids) in &after_kill {
        assert_eq!(
            sids.iter().filter(|s| *s == "Foreign").count(),
            1,
            "{bucket}: {sids:?}"
        );
        // A policy is written whole or not at all.
        assert!(
            matches!(held(sids, index(bucket)), [0, 0] | [3, 3]),
            "{bucket}: {sids:?}"
        );
    }

    // The next run converges everything, and a third changes nothing.
    let status = xacct(&moto, &["apply", "-f", file]).status().unwrap();
    assert!(status.success());
    let converged = policies(&s3).await;
    for (bucket, sids) in &converged {
        let mut unique = sids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            sids.len(),
            "{bucket}: duplicated Sids {sids:?}"
        );
        assert_eq!(
            held(sids, index(bucket)),
            [3, 3],
            "{bucket}: two grants, List+Bucket+Objects each: {sids:?}"
        );
        // The bucket-level statement (same actions, resource and conditions) is shared.
        assert_eq!(ours(sids), 5, "{bucket}: {sids:?}");
        assert!(sids.contains(&"Foreign".to_string()), "{bucket}: {sids:?}");
    }
    let plan = xacct(&moto, &["plan", "-f", file]).status().unwrap();
    assert_eq!(
        plan.code(),
        Some(0),
        "nothing left to change after convergence"
    );

    // Delete leaves only what was not xacct's: no orphaned statement.
    let status = xacct(&moto, &["delete", "-f", file]).status().unwrap();
    assert!(status.success());
    for (bucket, sids) in policies(&s3).await {
        assert_eq!(sids, ["Foreign"], "{bucket}");
    }
}
