//! A concurrent writer: another client keeps adding its own statements to a bucket policy (read,
//! add, write, like a script or the console) while xacct converges grants on the same policy. Each
//! xacct run is planned, then applied after a pause in which the other client writes, so a tool
//! writing what it planned would lose every one of those additions; xacct re-reads just before
//! writing and merges again.
//!
//! S3 bucket policies have no conditional write, so one window remains: an addition that lands
//! between xacct's last read and its write is lost (and xacct's own statements can be lost the
//! same way to the other client, which the next run restores). The test counts both and prints
//! them; it asserts that every addition made during the plan-to-apply pauses survives (what the
//! re-read guarantees) and that losses stay within what the window allows.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{DATA_ACCOUNT, DEV_ACCOUNT, Moto, accounts_yaml, clients, held_by, manifests};
use tokio::sync::Mutex;
use xacct::aws::AwsPolicies;
use xacct::engine::{Engine, EngineSettings, Operation};
use xacct::policy::GrantOwner;

const BUCKET: &str = "busy-lake";
const RUNS: usize = 15;
/// The other client keeps at most this many of its statements (removing its oldest), so that the
/// policy stays under S3's 20 KB.
const KEEP: usize = 30;

/// What the other client did: each addition with when its write returned, and the additions it
/// found missing later (lost: it did not remove them itself).
#[derive(Default)]
struct Writer {
    added: Vec<(String, Instant)>,
    lost: Vec<String>,
}

async fn policy_doc(s3: &aws_sdk_s3::Client) -> Value {
    let text = s3
        .get_bucket_policy()
        .bucket(BUCKET)
        .send()
        .await
        .ok()
        .and_then(|o| o.policy)
        .unwrap_or_else(|| json!({"Version": "2012-10-17", "Statement": []}).to_string());
    serde_json::from_str(&text).expect("policy JSON")
}

fn sids(doc: &Value) -> BTreeSet<String> {
    doc["Statement"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|s| s["Sid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_additions_during_convergence_survive() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let s3 = clients(&connector, DATA_ACCOUNT).await.s3;
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();

    // The other client: read, add one statement, write; every 40 ms (about two per pause).
    let writer = Arc::new(Mutex::new(Writer::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let task = {
        let (s3, writer, stop) = (s3.clone(), writer.clone(), stop.clone());
        tokio::spawn(async move {
            let mut live: Vec<String> = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut doc = policy_doc(&s3).await;
                let present = sids(&doc);
                let (kept, lost): (Vec<String>, Vec<String>) =
                    live.into_iter().partition(|sid| present.contains(sid));
                live = kept;
                writer.lock().await.lost.extend(lost);
                let statements = doc["Statement"].as_array_mut().unwrap();
                if live.len() >= KEEP {
                    let oldest = live.remove(0);
                    statements.retain(|s| s["Sid"] != json!(oldest));
                }
                let sid = format!("Other{n:04}");
                statements.push(json!({"Sid": sid, "Effect": "Allow", "Principal": {"AWS": "333333333333"},
                    "Action": "s3:GetBucketLocation", "Resource": format!("arn:aws:s3:::{BUCKET}")}));
                if s3
                    .put_bucket_policy()
                    .bucket(BUCKET)
                    .policy(doc.to_string())
                    .send()
                    .await
                    .is_ok()
                {
                    writer
                        .lock()
                        .await
                        .added
                        .push((sid.clone(), Instant::now()));
                    live.push(sid);
                    n += 1;
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            live
        })
    };

    // xacct converges one more grant per run: plan, a pause in which the other client writes,
    // then apply (which re-reads).
    let engine = Engine::new(
        Arc::new(AwsPolicies::new(connector.clone())),
        EngineSettings::default(),
    );
    let mut yaml = accounts_yaml();
    let mut pauses = Vec::new();
    for i in 0..RUNS {
        yaml.push_str(&format!(
            "---\napiVersion: xacct.dev/v1alpha1\nkind: CrossAccountGrant\nmetadata: {{name: g{i:02}, namespace: batch}}\nspec:\n  resource: {{account: data-prod, kind: S3Bucket, name: {BUCKET}}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [role/R{i:02}]}}\n  access: [read]\n"
        ));
        let (accounts, grants) = manifests(&yaml);
        let plan = engine.plan(&accounts, &grants, Operation::Apply).await;
        // Wait until the other client has written at least once since the plan's read.
        let paused = Instant::now();
        let before = writer.lock().await.added.len();
        while writer.lock().await.added.len() == before && paused.elapsed() < Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        pauses.push((paused, Instant::now()));
        let applied = engine.apply(plan).await;
        let errors: Vec<_> = applied
            .targets
            .iter()
            .filter_map(|t| t.error.as_ref())
            .collect();
        assert!(errors.is_empty(), "run {i}: {errors:?}");
    }
    stop.store(true, Ordering::Relaxed);
    let live = task.await.unwrap();

    // A last run restores whatever of xacct's the other client overwrote.
    let (accounts, grants) = manifests(&yaml);
    let last = engine
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    assert!(
        !last.has_errors(),
        "{}",
        serde_json::to_string_pretty(&last).unwrap()
    );
    let restored: usize = last.grants.iter().map(|g| g.changes).sum();

    let final_sids = sids(&policy_doc(&s3).await);
    let mut writer = writer.lock().await;
    let missing: Vec<String> = live
        .into_iter()
        .filter(|sid| !final_sids.contains(sid))
        .collect();
    writer.lost.extend(missing);
    let lost = writer.lost.clone();
    let during_pauses: Vec<&String> = writer
        .added
        .iter()
        .filter(|(_, at)| pauses.iter().any(|(from, to)| at > from && at < to))
        .map(|(sid, _)| sid)
        .collect();
    eprintln!(
        "concurrent writer: {} additions, {} made while a plan waited to be applied, {} lost; {} xacct statement changes restored by the last run",
        writer.added.len(),
        during_pauses.len(),
        lost.len(),
        restored
    );
    assert!(
        during_pauses.len() >= RUNS,
        "the other client wrote during the pauses: {}",
        during_pauses.len()
    );
    // What was written while xacct waited between reading and writing survives: the re-read.
    let lost_in_pauses: Vec<_> = during_pauses
        .iter()
        .filter(|s| lost.contains(**s))
        .collect();
    assert!(lost_in_pauses.is_empty(), "lost: {lost_in_pauses:?}");
    // What remains is the read-to-write window of one call: far fewer losses than additions.
    assert!(lost.len() <= RUNS, "{} lost", lost.len());
    // xacct's own statements are all there in the end: each grant's one (read without a prefix:
    // bucket and objects together; shared, compacted).
    for i in 0..RUNS {
        let owner = GrantOwner::new("default", "batch", &format!("g{i:02}"));
        let held = final_sids.iter().filter(|s| held_by(s, &owner)).count();
        assert_eq!(held, 1, "g{i:02}: {final_sids:?}");
    }
}
