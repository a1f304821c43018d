//! The controller's reconcile logic, run in-process (`controller::run_with`) against the kube
//! emulator and the AWS emulator: Observe mode, Retain, forbidden namespaces, accounts that are not
//! Ready, external ids from Secrets, account deletion held by grants, concurrent grants on one
//! bucket, grants on one bucket converged together (calls counted), a grant moved to another
//! resource, and the grantee side following a grant's principals.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::DeleteParams;
use serde_json::{Value, json};
use support::controller::{Harness, create, foreign, gone, merge_spec};
use support::fixtures::{AccountFixture, GrantFixture, ShareFixture, manager_role};
use support::kube_api::{counter_sum, eventually};
use support::process::http_get;
use support::{DATA_ACCOUNT, DEV_ACCOUNT, clients, held_by};
use xacct::api::PolicyKind;
use xacct::aws::INLINE_POLICY_NAME;
use xacct::policy::GrantOwner;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_mode_reports_drift_and_never_writes() {
    let h = Harness::start(&["lake"]).await;
    create(&h.accounts(), &AccountFixture::data_prod().build()).await;
    create(
        &h.grants("batch"),
        &GrantFixture::new("batch", "reader").observe().build(),
    )
    .await;
    let message = h.wait_ready("batch", "reader", "False", "Pending").await;
    assert!(message.contains("would change"), "{message}");
    assert_eq!(h.writes(), 0, "Observe never writes");

    // Enforce once, then observe again: converged, then drift is reported and left alone.
    merge_spec(&h.grants("batch"), "reader", json!({"mode": "Enforce"})).await;
    h.wait_ready("batch", "reader", "True", "Applied").await;
    merge_spec(&h.grants("batch"), "reader", json!({"mode": "Observe"})).await;
    h.wait_ready("batch", "reader", "True", "Converged").await;
    let writes = h.writes();
    let doc = json!({"Version": "2012-10-17", "Statement": [foreign("lake")]});
    h.s3.put_bucket_policy()
        .bucket("lake")
        .policy(doc.to_string())
        .send()
        .await
        .unwrap();
    let writes = writes + 1; // the tampering above
    let drifted = eventually(20, "Drifted=True", || async {
        let g = h.grants("batch").get("reader").await.ok()?;
        let c = g
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Drifted")?;
        (c.status == "True").then_some(c)
    })
    .await;
    assert_eq!(drifted.reason, "DriftDetected");
    assert!(drifted.message.contains("added"), "{}", drifted.message);
    assert!(
        h.events("batch")
            .await
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "DriftDetected")
    );
    tokio::time::sleep(Duration::from_secs(3)).await; // a resync more
    assert_eq!(h.writes(), writes, "still no write");
    assert_eq!(h.policy("lake").await, vec![Some("Foreign".into())]);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_releases_the_grant_and_keeps_its_statements() {
    let h = Harness::start(&["lake"]).await;
    create(&h.accounts(), &AccountFixture::data_prod().build()).await;
    create(
        &h.grants("batch"),
        &GrantFixture::new("batch", "keeper").retain().build(),
    )
    .await;
    h.wait_ready("batch", "keeper", "True", "Applied").await;
    let before = h.policy("lake").await;
    // The foreign statement and the grant's one (read without a prefix: bucket and objects together).
    assert_eq!(before.len(), 2, "{before:?}");
    h.grants("batch")
        .delete("keeper", &DeleteParams::default())
        .await
        .unwrap();
    eventually(20, "the grant to be gone", || async {
        gone(h.grants("batch").get("keeper").await).then_some(())
    })
    .await;
    // The grant's statement stays, handed over: its Sid no longer carries xacct's marker, so
    // nothing of xacct's (a garbage collection, a new grant of the same name) ever touches it again.
    let handed_over: Vec<Option<String>> = before
        .iter()
        .map(|sid| sid.as_ref().map(|s| s.replacen("Xacct", "Retained", 1)))
        .collect();
    assert_eq!(
        h.policy("lake").await,
        handed_over,
        "Retain keeps the statements"
    );
    assert!(
        h.events("batch")
            .await
            .iter()
            .any(|(_, r, _)| r == "Retained")
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_namespace_writes_nothing_until_the_account_allows_it() {
    let h = Harness::start(&["lake"]).await;
    create(
        &h.accounts(),
        &AccountFixture::data_prod().allowed(&["batch"]).build(),
    )
    .await;
    create(
        &h.grants("web"),
        &GrantFixture::new("web", "intruder").bucket("lake").build(),
    )
    .await;
    let message = h
        .wait_ready("web", "intruder", "False", "NamespaceNotAllowed")
        .await;
    assert!(
        message.contains("does not allow grants from namespace web"),
        "{message}"
    );
    assert_eq!(h.writes(), 0);
    assert_eq!(h.policy("lake").await, vec![Some("Foreign".into())]);
    assert!(
        h.events("web")
            .await
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "NamespaceNotAllowed")
    );

    merge_spec(
        &h.accounts(),
        "data-prod",
        json!({"allowedNamespaces": ["batch", "web"]}),
    )
    .await;
    h.wait_ready("web", "intruder", "True", "Applied").await;
    // The foreign statement and the grant's one (read without a prefix: bucket and objects together).
    assert_eq!(h.policy("lake").await.len(), 2);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_wait_for_their_account_to_be_ready() {
    let h = Harness::start(&["lake"]).await;
    // No assumeRole: the tool's own credentials act in 123456789012, not in the data account.
    create(
        &h.accounts(),
        &AccountFixture::data_prod().no_assume_role().build(),
    )
    .await;
    create(
        &h.grants("batch"),
        &GrantFixture::new("batch", "waiter").bucket("lake").build(),
    )
    .await;
    let account_ready = eventually(20, "the account to fail verification", || async {
        let a = h.accounts().get("data-prod").await.ok()?;
        a.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready" && c.status == "False")
    })
    .await;
    assert_eq!(account_ready.reason, "AccountMismatch");
    let message = h
        .wait_ready("batch", "waiter", "False", "AccountNotReady")
        .await;
    assert!(
        message.contains("AwsAccount data-prod is not Ready"),
        "{message}"
    );
    assert_eq!(
        h.connector.calls().count("GetBucketPolicy"),
        0,
        "no AWS call for a grant whose account is not Ready"
    );

    merge_spec(
        &h.accounts(),
        "data-prod",
        json!({"assumeRole": manager_role(DATA_ACCOUNT)}),
    )
    .await;
    h.wait_ready("batch", "waiter", "True", "Applied").await;
    // The account's verifications counted: the refused one as failed, the one after as a success.
    let text = http_get(&h.metrics_url).await.expect("metrics");
    for outcome in ["failed", "success"] {
        let series = format!(r#"xacct_reconciles_total{{kind="AwsAccount",outcome="{outcome}"}}"#);
        assert!(counter_sum(&text, &series) >= 1, "{series}: {text}");
    }
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_external_id_comes_from_a_secret_and_never_shows() {
    let h = Harness::start(&["lake"]).await;
    let account =
        AccountFixture::data_prod().external_id_secret("data-prod-external-id", "externalId");
    create(&h.accounts(), &account.build()).await;
    let missing = eventually(20, "AssumeRoleFailed for the missing Secret", || async {
        let a = h.accounts().get("data-prod").await.ok()?;
        a.status?
            .conditions
            .into_iter()
            .find(|c| c.reason == "AssumeRoleFailed")
    })
    .await;
    // Said in words (which Secret, which key, what is wrong), not a debug dump of the API's Status.
    let said = "external id Secret xacct-system/data-prod-external-id, key externalId: \
                the Secret does not exist";
    assert_eq!(missing.message, said);
    let waiting = GrantFixture::new("batch", "before-the-secret")
        .bucket("lake")
        .build();
    create(&h.grants("batch"), &waiting).await;
    let grant_message = h
        .wait_ready("batch", "before-the-secret", "False", "AccountNotReady")
        .await;
    assert!(grant_message.contains(said), "{grant_message}");
    let account_events = eventually(20, "the account's AssumeRoleFailed event", || async {
        let events = h.events("default").await;
        events.into_iter().find(|(_, r, _)| r == "AssumeRoleFailed")
    })
    .await;
    assert_eq!(account_events.2, said);
    for text in [&missing.message, &grant_message, &account_events.2] {
        assert!(
            !text.contains("Status {") && !text.contains("Some("),
            "{text}"
        );
    }

    let secret: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "data-prod-external-id", "namespace": "xacct-system"},
        "data": {"externalId": "U2VjcmV0RXh0ZXJuYWxJZDQy"}})) // "SecretExternalId42"
    .unwrap();
    create(
        &Api::<Secret>::namespaced(h.client.clone(), "xacct-system"),
        &secret,
    )
    .await;
    // The account is checked again on its resync (or backoff), then grants on it converge.
    h.wait_account_verified().await;
    create(
        &h.grants("batch"),
        &GrantFixture::new("batch", "with-external-id")
            .bucket("lake")
            .build(),
    )
    .await;
    h.wait_ready("batch", "with-external-id", "True", "Applied")
        .await;
    let account = serde_json::to_string(&h.accounts().get("data-prod").await.unwrap()).unwrap();
    let grant =
        serde_json::to_string(&h.grants("batch").get("with-external-id").await.unwrap()).unwrap();
    let events = format!("{:?}", h.events("batch").await);
    for text in [account, grant, events] {
        assert!(
            !text.contains("SecretExternalId42"),
            "the external id leaked: {text}"
        );
    }
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_in_use_is_kept_until_its_grants_are_gone() {
    let h = Harness::start(&["lake"]).await;
    create(&h.accounts(), &AccountFixture::data_prod().build()).await;
    create(
        &h.grants("batch"),
        &GrantFixture::new("batch", "user").bucket("lake").build(),
    )
    .await;
    h.wait_ready("batch", "user", "True", "Applied").await;
    h.accounts()
        .delete("data-prod", &DeleteParams::default())
        .await
        .unwrap();
    let in_use = eventually(20, "the account to report InUse", || async {
        let a = h.accounts().get("data-prod").await.ok()?;
        a.status?
            .conditions
            .into_iter()
            .find(|c| c.reason == "InUse")
    })
    .await;
    assert!(in_use.message.contains("batch/user"), "{}", in_use.message);
    h.grants("batch")
        .delete("user", &DeleteParams::default())
        .await
        .unwrap();
    eventually(30, "the grant and then the account to be gone", || async {
        (gone(h.grants("batch").get("user").await) && gone(h.accounts().get("data-prod").await))
            .then_some(())
    })
    .await;
    assert_eq!(
        h.policy("lake").await,
        vec![Some("Foreign".into())],
        "revoked before the account went"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_grants_on_one_bucket_keep_each_others_statements() {
    let h = Harness::start(&["lake"]).await;
    create(&h.accounts(), &AccountFixture::data_prod().build()).await;
    let names: Vec<String> = (0..8).map(|i| format!("team-{i}")).collect();
    create_on(&h, &names, "lake").await;
    wait_all_ready(&h, &names, 20).await;
    let present = h.policy("lake").await;
    // The grants differ only in name: their statement (read without a prefix: bucket and objects
    // together) is shared (compacted), one in all.
    assert_eq!(present.len(), 1 + 1, "{present:?}");
    for name in &names {
        let status = h.grants("batch").get(name).await.unwrap().status.unwrap();
        let owner = GrantOwner::new("default", "batch", name);
        let held: Vec<&Option<String>> = present
            .iter()
            .filter(|s| s.as_deref().is_some_and(|s| held_by(s, &owner)))
            .collect();
        assert_eq!(held.len(), 1, "{name}: {present:?}");
        // The status names its own Sid, whose grant tag the shared statement lists.
        assert_eq!(status.targets[0].sids, [owner.sid("Access")], "{name}");
        // A statement lost to a concurrent write would have been restored as drift by a resync.
        assert!(
            status.conditions.iter().all(|c| c.type_ != "Drifted"),
            "{name} saw drift: {:?}",
            status.conditions
        );
    }
    assert!(
        !h.events("batch")
            .await
            .iter()
            .any(|(_, r, _)| r == "DriftCorrected")
    );
    h.finish().await;
}

/// The grants on one bucket are converged in one engine run per bucket (one read, one write), not
/// one run per grant; at the resync each bucket is read once for all its grants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_on_one_bucket_are_converged_together_and_resynced_with_one_read() {
    let resync = Duration::from_secs(4);
    let h = Harness::builder()
        .buckets(&["lake", "pond"])
        .resync(resync)
        // Grants created one after the other within a second meet in one run.
        .config(|c| c.debounce = Duration::from_secs(1))
        .start()
        .await;
    let metrics = h.metrics_url.clone();
    create(
        &h.accounts(),
        &AccountFixture::data_prod().allowed(&["batch"]).build(),
    )
    .await;
    h.wait_account_verified().await;
    let lake: Vec<String> = (0..12).map(|i| format!("lake-{i:02}")).collect();
    let pond: Vec<String> = (0..3).map(|i| format!("pond-{i}")).collect();
    // One after the other, as `kubectl apply` creates them.
    create_on(&h, &lake, "lake").await;
    create_on(&h, &pond, "pond").await;
    // A grant on the same bucket that fails (a namespace the account does not allow): it fails
    // alone, in the same runs as the others.
    create(
        &h.grants("web"),
        &GrantFixture::new("web", "outsider").bucket("lake").build(),
    )
    .await;
    wait_all_ready(&h, lake.iter().chain(&pond), 30).await;
    h.wait_ready("web", "outsider", "False", "NamespaceNotAllowed")
        .await;

    // From cold: the queue runs each bucket once its grants stopped arriving for the debounce,
    // one run per bucket: one write each (plus a read to plan and a re-read before writing).
    // One run per grant would be 15 writes and 30 reads.
    let puts = h.connector.calls().count("PutBucketPolicy");
    let reads = h.connector.calls().count("GetBucketPolicy");
    eprintln!(
        "from cold: {puts} PutBucketPolicy, {reads} GetBucketPolicy for 15 grants on 2 buckets"
    );
    assert_eq!(puts, 2, "one write per bucket");
    assert!(reads <= 4, "{reads} reads: at most two per bucket");
    let mut fullest: f64 = 0.0;
    for (bucket, names) in [("lake", &lake), ("pond", &pond)] {
        let present = h.policy(bucket).await;
        assert_eq!(
            present
                .iter()
                .filter(|s| s.as_deref() == Some("Foreign"))
                .count(),
            1,
            "{bucket}: the foreign statement stays"
        );
        for name in names {
            let status = h.grants("batch").get(name).await.unwrap().status.unwrap();
            assert_eq!(status.targets.len(), 1, "{name}");
            assert_eq!(status.targets[0].arn, format!("arn:aws:s3:::{bucket}"));
            // Its one statement (read without a prefix: bucket and objects together), its own or
            // shared with grants of the same shape (compaction), once.
            let owner = GrantOwner::new("default", "batch", name);
            let held: Vec<&str> = present
                .iter()
                .filter_map(|s| s.as_deref())
                .filter(|s| held_by(s, &owner))
                .collect();
            assert_eq!(held.len(), 1, "{name} in {bucket}: {present:?}");
            assert_eq!(status.targets[0].sids, [owner.sid("Access")], "{name}");
            // How full the policy is, as S3 counts it: the bytes of the document it holds.
            let text =
                h.s3.get_bucket_policy()
                    .bucket(bucket)
                    .send()
                    .await
                    .unwrap()
                    .policy
                    .unwrap_or_default();
            let size = status.targets[0].size.clone().expect("a size");
            assert_eq!((size.limit, size.unit.as_str()), (20_480, "bytes"));
            assert_eq!(size.used as usize, text.len(), "{name}");
            fullest = fullest.max(size.ratio());
        }
    }
    let outsider = GrantOwner::new("default", "web", "outsider");
    assert!(
        !h.policy("lake")
            .await
            .iter()
            .any(|s| s.as_deref().is_some_and(|s| held_by(s, &outsider))),
        "nothing written for the failing grant"
    );
    let text = http_get(&metrics).await.expect("metrics");
    // The gauge shows the fullest of the account's bucket policies (lake's 12 grants), one
    // series for the account and kind.
    let gauge: f64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(r#"xacct_policy_size_ratio{account="data-prod",kind="S3BucketPolicy"} "#)
        })
        .and_then(|v| v.trim().parse().ok())
        .expect("the gauge");
    assert!(
        (gauge - fullest).abs() < 1e-9,
        "{gauge} vs {fullest}: {text}"
    );
    assert_eq!(
        text.matches("xacct_policy_size_ratio{").count(),
        1,
        "{text}"
    );
    assert!(
        counter_sum(
            &text,
            r#"xacct_reconciles_total{kind="CrossAccountGrant",outcome="failed"}"#
        ) >= 1,
        "the failing grant's reconciles count as failed: {text}"
    );

    // Steady state. Wait for a resync pass first, then count over three more.
    tokio::time::sleep(resync + Duration::from_secs(1)).await;
    let reconciles =
        |text: &str| counter_sum(text, r#"xacct_reconciles_total{kind="CrossAccountGrant""#);
    let before = reconciles(&http_get(&metrics).await.expect("metrics"));
    let (reads, writes) = (h.connector.calls().count("GetBucketPolicy"), h.writes());
    tokio::time::sleep(resync * 3).await;
    let after = reconciles(&http_get(&metrics).await.expect("metrics"));
    let reads = h.connector.calls().count("GetBucketPolicy") - reads;
    let passes = (after - before) as f64 / 16.0;
    eprintln!(
        "steady state: {} reconciles ({passes:.1} passes of 16 grants), {reads} GetBucketPolicy",
        after - before
    );
    assert!(passes >= 2.0, "{passes} resync passes in three periods");
    assert_eq!(h.writes() - writes, 0, "nothing to write at the resync");
    // One read per bucket per pass (a pass may straddle the window's ends); one run per grant
    // would be 16 reads per pass.
    let per_bucket_and_pass = reads as f64 / 2.0 / passes;
    assert!(
        per_bucket_and_pass <= 1.5,
        "{reads} reads in {passes:.1} passes over 2 buckets: {per_bucket_and_pass:.2} per bucket and pass"
    );
    assert!(reads > 0, "the resync reads the buckets (drift detection)");

    // Drift: someone puts lake's policy back to its foreign statement alone. The next resync
    // restores every lake grant's statement in one write, and each grant reports it.
    let writes = h.writes();
    let doc = json!({"Version": "2012-10-17", "Statement": [foreign("lake")]});
    h.s3.put_bucket_policy()
        .bucket("lake")
        .policy(doc.to_string())
        .send()
        .await
        .unwrap();
    let corrected = eventually(30, "twelve DriftCorrected events", || async {
        let events: Vec<String> = h
            .events("batch")
            .await
            .into_iter()
            .filter(|(_, reason, _)| reason == "DriftCorrected")
            .map(|(_, _, note)| note)
            .collect();
        (events.len() >= lake.len()).then_some(events)
    })
    .await;
    assert_eq!(corrected.len(), lake.len(), "{corrected:?}");
    assert!(
        corrected
            .iter()
            .all(|n| n.contains("arn:aws:s3:::lake") && n.contains("added")),
        "{corrected:?}"
    );
    let present = h.policy("lake").await;
    for name in &lake {
        let owner = GrantOwner::new("default", "batch", name);
        let held = present
            .iter()
            .filter(|s| s.as_deref().is_some_and(|s| held_by(s, &owner)))
            .count();
        assert_eq!(held, 1, "{name} restored: {present:?}");
    }
    assert_eq!(
        h.writes() - writes,
        2,
        "the tampering, then one write restoring twelve grants"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_grants_created_together_on_one_bucket_converge_in_one_write() {
    let h = Harness::builder()
        .buckets(&["lake"])
        .config(|c| c.debounce = Duration::from_secs(1))
        .start()
        .await;
    create(
        &h.accounts(),
        &AccountFixture::data_prod().allowed(&["batch"]).build(),
    )
    .await;
    h.wait_account_verified().await;
    let names: Vec<String> = (0..50).map(|i| format!("g-{i:02}")).collect();
    create_on(&h, &names, "lake").await;
    wait_all_ready(&h, &names, 60).await;
    assert_eq!(h.connector.calls().count("PutBucketPolicy"), 1, "one write");
    let reads = h.connector.calls().count("GetBucketPolicy");
    assert!(
        reads <= 2,
        "{reads} reads: one to plan, one before the write"
    );
    let present = h.policy("lake").await;
    for name in &names {
        let owner = GrantOwner::new("default", "batch", name);
        assert!(
            present
                .iter()
                .any(|s| s.as_deref().is_some_and(|s| held_by(s, &owner))),
            "{name} in {present:?}"
        );
    }
    h.finish().await;
}

/// One grant deleted and another created on the same bucket within the same second: the debounce
/// brings both into one run, which removes the first's statements and adds the second's in one
/// write; the first's finalizer goes, the second is Ready, the foreign statement stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_deleted_and_another_created_on_one_bucket_in_the_same_second_both_end_as_expected()
{
    let h = Harness::builder()
        .buckets(&["lake"])
        .config(|c| c.debounce = Duration::from_secs(1))
        .start()
        .await;
    create(&h.accounts(), &AccountFixture::data_prod().build()).await;
    let grants = h.grants("batch");
    create(&grants, &GrantFixture::new("batch", "leaver").build()).await;
    h.wait_ready("batch", "leaver", "True", "Applied").await;
    let writes_before = h.connector.calls().count("PutBucketPolicy");

    grants
        .delete("leaver", &DeleteParams::default())
        .await
        .expect("delete");
    create(&grants, &GrantFixture::new("batch", "joiner").build()).await;

    h.wait_ready("batch", "joiner", "True", "Applied").await;
    eventually(30, "the deleted grant gone", || async {
        gone(grants.get("leaver").await).then_some(())
    })
    .await;
    let present = h.policy("lake").await;
    let held = |name: &str| {
        let owner = GrantOwner::new("default", "batch", name);
        present
            .iter()
            .any(|s| s.as_deref().is_some_and(|s| held_by(s, &owner)))
    };
    assert!(
        !held("leaver"),
        "the deleted grant's statements stay: {present:?}"
    );
    assert!(
        held("joiner"),
        "the new grant's statements are missing: {present:?}"
    );
    assert!(
        present.iter().any(|s| s.as_deref() == Some("Foreign")),
        "the foreign statement is gone: {present:?}"
    );
    assert_eq!(
        h.connector.calls().count("PutBucketPolicy") - writes_before,
        1,
        "one write removes one grant and adds the other"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_moved_to_another_bucket_leaves_nothing_behind() {
    let h = mover_on_old_lake(&["old-lake", "new-lake"]).await;
    merge_spec(
        &h.grants("batch"),
        "mover",
        json!({"resource": {"account": "data-prod", "kind": "S3Bucket", "name": "new-lake"}}),
    )
    .await;
    eventually(20, "the statement to move", || async {
        (h.policy("old-lake").await.len() == 1 && h.policy("new-lake").await.len() == 2)
            .then_some(())
    })
    .await;
    let status = eventually(20, "status to name only the new bucket", || async {
        let s = h.grants("batch").get("mover").await.ok()?.status?;
        (s.targets.len() == 1 && s.targets[0].arn == "arn:aws:s3:::new-lake").then_some(s)
    })
    .await;
    assert_eq!(status.targets[0].resource.name, "new-lake");
    assert!(
        h.events("batch")
            .await
            .iter()
            .any(|(_, r, n)| r == "Revoked" && n.contains("old-lake"))
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaced_controller_leaves_other_namespaces_alone() {
    // The emulator ignores label selectors: the selector's request is checked in controller_contract.rs.
    let h = Harness::builder()
        .bucket("lake")
        .namespace("batch")
        .start()
        .await;
    create(&h.accounts(), &AccountFixture::data_prod().build()).await;
    let labelled = |namespace: &str, name: &str, shard: &str| {
        GrantFixture::new(namespace, name)
            .label("shard", shard)
            .build()
    };
    create(&h.grants("batch"), &labelled("batch", "mine", "a")).await;
    create(&h.grants("web"), &labelled("web", "other-namespace", "a")).await;
    h.wait_ready("batch", "mine", "True", "Applied").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        h.ready("web", "other-namespace").await,
        None,
        "another namespace's grant is not touched"
    );
    // The foreign statement and batch/mine's one (read without a prefix: bucket and objects together).
    assert_eq!(h.policy("lake").await.len(), 2);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_share_is_shared_reported_and_unshared_on_delete() {
    use xacct::api::SnapshotShare;
    let h = Harness::start(&[]).await;
    let rds = h.orders_snapshot().await;
    create(&h.accounts(), &AccountFixture::data_prod().build()).await;
    let share = ShareFixture::new("data", "orders").build();
    let shares: Api<SnapshotShare> = Api::namespaced(h.client.clone(), "data");
    create(&shares, &share).await;
    let status = eventually(20, "the share to be Ready", || async {
        let s = shares.get("orders").await.ok()?.status?;
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
            .then_some(s)
    })
    .await;
    assert!(
        status
            .snapshot_arn
            .as_deref()
            .unwrap()
            .ends_with(":snapshot:orders-1")
    );
    assert_eq!(status.targets[0].account_id, DEV_ACCOUNT);
    assert!(
        h.events("data")
            .await
            .iter()
            .any(|(_, r, n)| r == "Shared" && n.contains(DEV_ACCOUNT))
    );
    let shared = || async {
        let out = rds
            .describe_db_snapshot_attributes()
            .db_snapshot_identifier("orders-1")
            .send()
            .await
            .unwrap();
        out.db_snapshot_attributes_result()
            .unwrap()
            .db_snapshot_attributes()
            .iter()
            .flat_map(|a| a.attribute_values().to_vec())
            .collect::<Vec<String>>()
    };
    assert_eq!(shared().await, vec![DEV_ACCOUNT.to_string()]);
    shares
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    eventually(20, "the share to be gone", || async {
        gone(shares.get("orders").await).then_some(())
    })
    .await;
    assert!(shared().await.is_empty());
    h.finish().await;
}

/// A share whose AwsAccount is not Ready waits, and goes on as soon as the account is verified:
/// the account's readiness brings the share back, long before the resync (ten minutes here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_share_goes_on_as_soon_as_its_account_is_ready() {
    use xacct::api::SnapshotShare;
    let h = Harness::builder()
        .resync(Duration::from_secs(600))
        .start()
        .await;
    h.orders_snapshot().await;
    // No assumeRole: the tool's own credentials act in another account (AccountMismatch).
    create(
        &h.accounts(),
        &AccountFixture::data_prod().no_assume_role().build(),
    )
    .await;
    let shares: Api<SnapshotShare> = Api::namespaced(h.client.clone(), "data");
    create(&shares, &ShareFixture::new("data", "orders").build()).await;
    let ready_reason = |status: Option<xacct::api::SnapshotShareStatus>| {
        status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| (c.status, c.reason))
    };
    eventually(20, "the share to wait for its account", || async {
        let reason = ready_reason(shares.get("orders").await.ok()?.status)?;
        (reason == ("False".to_string(), "AccountNotReady".to_string())).then_some(())
    })
    .await;

    merge_spec(
        &h.accounts(),
        "data-prod",
        json!({"assumeRole": manager_role(DATA_ACCOUNT)}),
    )
    .await;
    eventually(30, "the share to be Ready once its account is", || async {
        let (status, _) = ready_reason(shares.get("orders").await.ok()?.status)?;
        (status == "True").then_some(())
    })
    .await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grantee_side_follows_the_principals_and_goes_with_the_grant() {
    let h = Harness::start(&["lake"]).await;
    let dev = clients(&h.connector, DEV_ACCOUNT).await.iam;
    for role in ["JobA", "JobB"] {
        support::create_role(&dev, role, "ecs-tasks.amazonaws.com").await;
    }
    create(&h.accounts(), &AccountFixture::data_prod().build()).await;
    create(
        &h.accounts(),
        &AccountFixture::dev().allowed(&["batch"]).build(),
    )
    .await;
    let both = GrantFixture::new("batch", "job")
        .manage("dev", &["role/JobA"])
        .build();
    create(&h.grants("batch"), &both).await;
    h.wait_ready("batch", "job", "True", "Applied").await;
    let status = h.grants("batch").get("job").await.unwrap().status.unwrap();
    let places: Vec<(String, PolicyKind, String)> = status
        .targets
        .iter()
        .filter_map(|t| t.policy.clone())
        .map(|p| (p.account, p.kind, p.name))
        .collect();
    assert_eq!(
        places,
        [
            (
                "data-prod".into(),
                PolicyKind::S3BucketPolicy,
                "lake".into()
            ),
            ("dev".into(), PolicyKind::RoleInlinePolicy, "JobA".into())
        ]
    );
    assert!(
        support::role_policy(&dev, "JobA", INLINE_POLICY_NAME)
            .await
            .is_some()
    );

    // Another principal: the grantee side moves with it, and the old role loses xacct's policy.
    merge_spec(
        &h.grants("batch"),
        "job",
        json!({"grantee": {"account": "dev", "principals": ["role/JobB"]}}),
    )
    .await;
    eventually(20, "the identity policy to move to JobB", || async {
        (support::role_policy(&dev, "JobA", INLINE_POLICY_NAME)
            .await
            .is_none()
            && support::role_policy(&dev, "JobB", INLINE_POLICY_NAME)
                .await
                .is_some())
        .then_some(())
    })
    .await;
    eventually(20, "status to name JobB only", || async {
        let s = h.grants("batch").get("job").await.ok()?.status?;
        let names: Vec<String> = s
            .targets
            .iter()
            .filter_map(|t| t.policy.clone())
            .map(|p| p.name)
            .collect();
        (names == ["lake", "JobB"]).then_some(())
    })
    .await;

    // Deleting the grant revokes both sides before the finalizer lets it go.
    h.grants("batch")
        .delete("job", &DeleteParams::default())
        .await
        .unwrap();
    eventually(20, "the grant to be gone", || async {
        gone(h.grants("batch").get("job").await).then_some(())
    })
    .await;
    assert_eq!(
        support::role_policy(&dev, "JobB", INLINE_POLICY_NAME).await,
        None
    );
    assert_eq!(h.policy("lake").await, [Some("Foreign".to_string())]);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sagemaker_grant_reports_the_role_to_assume() {
    let h = Harness::start(&[]).await;
    support::create_endpoint(&h.connector, DATA_ACCOUNT, "churn").await;
    create(&h.accounts(), &AccountFixture::data_prod().build()).await;
    let invoke = GrantFixture::new("ml", "app")
        .resource("SageMakerEndpoint", "churn")
        .access(&["invoke"])
        .build();
    create(&h.grants("ml"), &invoke).await;
    h.wait_ready("ml", "app", "True", "Applied").await;
    let status = h.grants("ml").get("app").await.unwrap().status.unwrap();
    let role = xacct::engine::invoke_role_name("default", DATA_ACCOUNT, "us-east-1", "churn");
    assert_eq!(
        status.role_arn,
        Some(format!("arn:aws:iam::{DATA_ACCOUNT}:role/{role}"))
    );
    let iam = clients(&h.connector, DATA_ACCOUNT).await.iam;
    assert!(iam.get_role().role_name(&role).send().await.is_ok());
    h.grants("ml")
        .delete("app", &DeleteParams::default())
        .await
        .unwrap();
    eventually(20, "the grant and its role to be gone", || async {
        (gone(h.grants("ml").get("app").await)
            && iam.get_role().role_name(&role).send().await.is_err())
        .then_some(())
    })
    .await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_garbage_collection_removes_statements_of_grants_that_are_gone() {
    let h = Harness::builder()
        .bucket("lake")
        .gc_period(Duration::from_millis(500))
        .start()
        .await;
    create(&h.accounts(), &AccountFixture::data_prod().build()).await;
    create(
        &h.grants("batch"),
        &GrantFixture::new("batch", "live").bucket("lake").build(),
    )
    .await;
    h.wait_ready("batch", "live", "True", "Applied").await;
    // A grant deleted while its finalizer was removed by hand left this behind.
    let gone = xacct::policy::GrantOwner::new("default", "batch", "gone");
    let mut doc: Value = serde_json::from_str(
        &h.s3
            .get_bucket_policy()
            .bucket("lake")
            .send()
            .await
            .unwrap()
            .policy
            .unwrap(),
    )
    .unwrap();
    doc["Statement"].as_array_mut().unwrap().push(json!({"Sid": gone.sid("Access"), "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{DEV_ACCOUNT}:root")}, "Action": ["s3:GetObject", "s3:ListBucket"],
        "Resource": ["arn:aws:s3:::lake", "arn:aws:s3:::lake/*"]}));
    h.s3.put_bucket_policy()
        .bucket("lake")
        .policy(doc.to_string())
        .send()
        .await
        .unwrap();
    eventually(20, "the orphaned statement to be collected", || async {
        (!h.policy("lake").await.contains(&Some(gone.sid("Access")))).then_some(())
    })
    .await;
    // The live grant's statement and the foreign one stay.
    let live = GrantOwner::new("default", "batch", "live");
    let present = h.policy("lake").await;
    assert_eq!(present.len(), 2, "{present:?}");
    assert!(present.contains(&Some("Foreign".into())), "{present:?}");
    assert!(
        present.iter().flatten().any(|s| held_by(s, &live)),
        "{present:?}"
    );
    h.finish().await;
}

/// The harness with the grantee account `dev` managed (roles JobA and JobB in it), and one grant
/// `batch/job` on `lake` for role JobA with the grantee side written, Ready.
async fn grant_on_both_sides(h: &Harness) -> aws_sdk_iam::Client {
    let dev = clients(&h.connector, DEV_ACCOUNT).await.iam;
    for role in ["JobA", "JobB"] {
        support::create_role(&dev, role, "ecs-tasks.amazonaws.com").await;
    }
    create(
        &h.accounts(),
        &AccountFixture::data_prod()
            .allowed(&["batch", "web"])
            .build(),
    )
    .await;
    create(
        &h.accounts(),
        &AccountFixture::dev().allowed(&["batch"]).build(),
    )
    .await;
    let job = GrantFixture::new("batch", "job")
        .manage("dev", &["role/JobA"])
        .build();
    create(&h.grants("batch"), &job).await;
    h.wait_ready("batch", "job", "True", "Applied").await;
    // The foreign statement and the grant's one (read without a prefix: bucket and objects together).
    assert_eq!(h.policy("lake").await.len(), 2);
    assert!(
        support::role_policy(&dev, "JobA", INLINE_POLICY_NAME)
            .await
            .is_some()
    );
    dev
}

/// Whether a Ready message says the grant's access is gone: revoked by this grant's run, or found
/// gone when a run of another grant on the same policy revoked it first.
fn revoked(message: &str) -> bool {
    message.contains("its access was revoked")
        || message.contains("it has no access: no statement of it is left in AWS")
}

/// Waits until the status of `namespace/name` lists no place holding its statements.
async fn wait_no_targets(h: &Harness, namespace: &str, name: &str) {
    eventually(20, "status.targets to be empty", || async {
        let s = h.grants(namespace).get(name).await.ok()?.status?;
        s.targets.is_empty().then_some(())
    })
    .await;
}

/// The harness with `buckets`, and the grant `batch/mover` Ready on old-lake.
async fn mover_on_old_lake(buckets: &[&str]) -> Harness {
    let h = Harness::start(buckets).await;
    create(&h.accounts(), &AccountFixture::data_prod().build()).await;
    create(
        &h.grants("batch"),
        &GrantFixture::new("batch", "mover")
            .bucket("old-lake")
            .build(),
    )
    .await;
    h.wait_ready("batch", "mover", "True", "Applied").await;
    // The foreign statement and the grant's one (read without a prefix: bucket and objects together).
    assert_eq!(h.policy("old-lake").await.len(), 2);
    h
}

/// Waits until `batch/job`'s statements are gone from both sides and its status lists no place;
/// returns its Ready message.
async fn wait_revoked_everywhere(h: &Harness, dev: &aws_sdk_iam::Client, reason: &str) -> String {
    let message = h.wait_ready("batch", "job", "False", reason).await;
    eventually(20, "both sides revoked", || async {
        (h.policy("lake").await == [Some("Foreign".to_string())]
            && support::role_policy(dev, "JobA", INLINE_POLICY_NAME)
                .await
                .is_none())
        .then_some(())
    })
    .await;
    wait_no_targets(h, "batch", "job").await;
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_withdrawn_by_the_resource_account_revokes_the_grant_on_both_sides() {
    let h = Harness::start(&["lake"]).await;
    let dev = grant_on_both_sides(&h).await;
    // A grant of another namespace on the same bucket, which keeps its consent.
    create(
        &h.grants("web"),
        &GrantFixture::new("web", "site").bucket("lake").build(),
    )
    .await;
    h.wait_ready("web", "site", "True", "Applied").await;

    merge_spec(
        &h.accounts(),
        "data-prod",
        json!({"allowedNamespaces": ["web"]}),
    )
    .await;
    let message = h
        .wait_ready("batch", "job", "False", "NamespaceNotAllowed")
        .await;
    assert!(
        message.contains("does not allow grants from namespace batch") && revoked(&message),
        "{message}"
    );
    eventually(
        20,
        "the bucket to keep only the foreign and web's statement",
        || async {
            let sids = h.policy("lake").await;
            let owner = GrantOwner::new("default", "batch", "job");
            (sids.len() == 2
                && sids.contains(&Some("Foreign".to_string()))
                && !sids.iter().flatten().any(|s| held_by(s, &owner)))
            .then_some(())
        },
    )
    .await;
    eventually(20, "the grantee side to be revoked", || async {
        support::role_policy(&dev, "JobA", INLINE_POLICY_NAME)
            .await
            .is_none()
            .then_some(())
    })
    .await;
    wait_no_targets(&h, "batch", "job").await;
    assert!(
        h.events("batch")
            .await
            .iter()
            .any(|(t, r, n)| t == "Warning" && r == "NamespaceNotAllowed" && revoked(n)),
        "{:?}",
        h.events("batch").await
    );
    // Its statement was never touched: Ready as its last write left it.
    h.wait_ready("web", "site", "True", "Applied").await;

    // Consent given again: the grant comes back.
    merge_spec(
        &h.accounts(),
        "data-prod",
        json!({"allowedNamespaces": ["web", "batch"]}),
    )
    .await;
    h.wait_ready("batch", "job", "True", "Applied").await;
    let owner = GrantOwner::new("default", "batch", "job");
    assert!(
        h.policy("lake")
            .await
            .iter()
            .flatten()
            .any(|s| held_by(s, &owner))
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_withdrawn_by_the_grantee_account_revokes_the_grant() {
    let h = Harness::start(&["lake"]).await;
    let dev = grant_on_both_sides(&h).await;
    merge_spec(&h.accounts(), "dev", json!({"allowedNamespaces": ["web"]})).await;
    let message = wait_revoked_everywhere(&h, &dev, "NamespaceNotAllowed").await;
    assert!(
        message.contains(
            "spec.grantee.account: AwsAccount dev does not allow grants from namespace batch"
        ) && revoked(&message),
        "{message}"
    );
    assert!(
        h.events("batch")
            .await
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "NamespaceNotAllowed")
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_public_principals_off_revokes_a_grant_to_anyone() {
    let h = Harness::start(&["lake"]).await;
    let open = AccountFixture::data_prod().allow_public_principals();
    create(&h.accounts(), &open.build()).await;
    create(
        &h.grants("batch"),
        &GrantFixture::new("batch", "public")
            .principals(&["*"])
            .build(),
    )
    .await;
    h.wait_ready("batch", "public", "True", "Applied").await;
    // The foreign statement and the grant's one (read without a prefix: bucket and objects together).
    assert_eq!(h.policy("lake").await.len(), 2);

    merge_spec(
        &h.accounts(),
        "data-prod",
        json!({"allowPublicPrincipals": false}),
    )
    .await;
    let message = h
        .wait_ready("batch", "public", "False", "PublicPrincipalNotAllowed")
        .await;
    assert!(
        message.contains("spec.grantee.principals[0]") && revoked(&message),
        "{message}"
    );
    assert_eq!(h.policy("lake").await, [Some("Foreign".to_string())]);
    let status = h
        .grants("batch")
        .get("public")
        .await
        .unwrap()
        .status
        .unwrap();
    assert!(status.targets.is_empty(), "{:?}", status.targets);
    assert!(
        h.events("batch")
            .await
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "PublicPrincipalNotAllowed")
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_grant_waits_for_consent_and_loses_its_access_with_it() {
    const ORG: &str = "o-a1b2c3d4e5";
    let h = Harness::start(&["lake"]).await;
    create(&h.accounts(), &AccountFixture::data_prod().build()).await;
    let org = GrantFixture::new("batch", "org")
        .extra(json!({"grantee": {"organization": {"id": ORG}}}))
        .build();
    create(&h.grants("batch"), &org).await;
    // Not listed in allowedOrganizations: refused, nothing written.
    let message = h
        .wait_ready("batch", "org", "False", "OrganizationNotAllowed")
        .await;
    assert!(
        message.contains("does not allow grants to organization o-a1b2c3d4e5"),
        "{message}"
    );
    assert_eq!(h.policy("lake").await, [Some("Foreign".to_string())]);

    // Consent given: the bucket lets in anyone of the organization.
    merge_spec(
        &h.accounts(),
        "data-prod",
        json!({"allowedOrganizations": [ORG]}),
    )
    .await;
    h.wait_ready("batch", "org", "True", "Applied").await;
    let written =
        h.s3.get_bucket_policy()
            .bucket("lake")
            .send()
            .await
            .expect("a bucket policy")
            .policy
            .unwrap_or_default();
    assert!(
        written.contains("\"aws:PrincipalOrgID\":\"o-a1b2c3d4e5\""),
        "{written}"
    );

    // Consent withdrawn: taken back, with a Warning event.
    merge_spec(
        &h.accounts(),
        "data-prod",
        json!({"allowedOrganizations": []}),
    )
    .await;
    let message = h
        .wait_ready("batch", "org", "False", "OrganizationNotAllowed")
        .await;
    assert!(revoked(&message), "{message}");
    assert_eq!(h.policy("lake").await, [Some("Foreign".to_string())]);
    assert!(
        h.events("batch")
            .await
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "OrganizationNotAllowed")
    );
    h.finish().await;
}

/// The Sids of the xacct statements in the policy of the SQS queue `name` of the data account.
async fn queue_sids(h: &Harness, name: &str) -> Vec<String> {
    let sqs = clients(&h.connector, DATA_ACCOUNT).await.sqs;
    let url = sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .expect("the queue")
        .queue_url
        .unwrap_or_default();
    let policy = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::Policy)
                .cloned()
        })
        .unwrap_or_default();
    if policy.is_empty() {
        return Vec::new();
    }
    support::sids(&policy).into_iter().flatten().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_grant_moved_to_another_queue_and_deleted_leaves_no_statement() {
    let h = Harness::start(&[]).await;
    let sqs = clients(&h.connector, DATA_ACCOUNT).await.sqs;
    for queue in ["jobs", "other-jobs"] {
        sqs.create_queue()
            .queue_name(queue)
            .send()
            .await
            .expect("queue");
    }
    create(&h.accounts(), &AccountFixture::data_prod().build()).await;
    let grant = GrantFixture::new("apps", "sender")
        .resource("SqsQueue", "jobs")
        .access(&["send"])
        .build();
    create(&h.grants("apps"), &grant).await;
    h.wait_ready("apps", "sender", "True", "Applied").await;
    assert_eq!(queue_sids(&h, "jobs").await.len(), 1);

    // Moved: the statement leaves the first queue (found again by the queue's ARN that status
    // records) and is written on the second.
    merge_spec(
        &h.grants("apps"),
        "sender",
        json!({"resource": {"account": "data-prod", "kind": "SqsQueue", "name": "other-jobs"}}),
    )
    .await;
    eventually(20, "the statement to move", || async {
        (queue_sids(&h, "jobs").await.is_empty() && queue_sids(&h, "other-jobs").await.len() == 1)
            .then_some(())
    })
    .await;
    let status = h
        .grants("apps")
        .get("sender")
        .await
        .unwrap()
        .status
        .unwrap();
    let recorded: Vec<String> = status
        .targets
        .iter()
        .filter_map(|t| t.policy.as_ref().map(|p| p.name.clone()))
        .collect();
    assert_eq!(
        recorded,
        [format!("arn:aws:sqs:us-east-1:{DATA_ACCOUNT}:other-jobs")]
    );

    // Deleted: nothing left, and the finalizer released.
    h.grants("apps")
        .delete("sender", &DeleteParams::default())
        .await
        .unwrap();
    eventually(20, "the grant to be gone", || async {
        gone(h.grants("apps").get("sender").await).then_some(())
    })
    .await;
    assert!(queue_sids(&h, "other-jobs").await.is_empty());
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_moved_to_a_missing_bucket_or_an_account_not_ready_leaves_nothing_behind() {
    let h = mover_on_old_lake(&["old-lake", "lake"]).await;

    // To a bucket that does not exist: the old one is cleaned all the same.
    merge_spec(
        &h.grants("batch"),
        "mover",
        json!({"resource": {"account": "data-prod", "kind": "S3Bucket", "name": "no-such-lake"}}),
    )
    .await;
    h.wait_ready("batch", "mover", "False", "NotFound").await;
    eventually(20, "old-lake to be cleaned", || async {
        (h.policy("old-lake").await == [Some("Foreign".to_string())]).then_some(())
    })
    .await;
    wait_no_targets(&h, "batch", "mover").await;
    assert!(
        h.events("batch")
            .await
            .iter()
            .any(|(_, r, n)| r == "Revoked" && n.contains("arn:aws:s3:::old-lake"))
    );

    // Back on a real bucket, then to an account that is not Ready: the same.
    merge_spec(
        &h.grants("batch"),
        "mover",
        json!({"resource": {"account": "data-prod", "kind": "S3Bucket", "name": "lake"}}),
    )
    .await;
    h.wait_ready("batch", "mover", "True", "Applied").await;
    assert_eq!(h.policy("lake").await.len(), 2);
    // No assumeRole: the tool's own credentials act in another account, so it never verifies.
    let unverified = AccountFixture::new("elsewhere", "333333333333").no_assume_role();
    create(&h.accounts(), &unverified.build()).await;
    merge_spec(
        &h.grants("batch"),
        "mover",
        json!({"resource": {"account": "elsewhere", "kind": "S3Bucket", "name": "lake"}}),
    )
    .await;
    h.wait_ready("batch", "mover", "False", "AccountNotReady")
        .await;
    eventually(20, "lake to be cleaned", || async {
        (h.policy("lake").await == [Some("Foreign".to_string())]).then_some(())
    })
    .await;
    wait_no_targets(&h, "batch", "mover").await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_spec_leaves_what_was_written_and_says_so() {
    let h = Harness::start(&["lake"]).await;
    create(&h.accounts(), &AccountFixture::data_prod().build()).await;
    create(
        &h.grants("batch"),
        &GrantFixture::new("batch", "typo").bucket("lake").build(),
    )
    .await;
    h.wait_ready("batch", "typo", "True", "Applied").await;
    let before = h.policy("lake").await;
    // The foreign statement and the grant's one (read without a prefix: bucket and objects together).
    assert_eq!(before.len(), 2, "{before:?}");
    let writes = h.writes();
    // An action of another service: refused by the engine's checks, not by the schema.
    merge_spec(
        &h.grants("batch"),
        "typo",
        json!({"access": [], "actions": ["ec2:RunInstances"]}),
    )
    .await;
    let message = h.wait_ready("batch", "typo", "False", "InvalidSpec").await;
    assert!(
        message.contains("spec.actions[0]")
            && message.contains(
                "the statements written for generation 1 are left in place until the spec is fixed or the grant deleted"
            ),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await; // a resync more
    assert_eq!(h.policy("lake").await, before);
    assert_eq!(h.writes(), writes, "nothing written for an invalid spec");
    let status = h.grants("batch").get("typo").await.unwrap().status.unwrap();
    assert_eq!(status.targets.len(), 1, "{:?}", status.targets);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_name_each_written_policy_once_and_drift_names_only_what_was_restored() {
    let h = Harness::start(&["lake"]).await;
    grant_on_both_sides(&h).await;
    let role = format!("arn:aws:iam::{DEV_ACCOUNT}:role/JobA");
    let applied = h.notes("batch", "Applied").await;
    assert_eq!(applied.len(), 1, "{applied:?}");
    let note = &applied[0];
    let owner = GrantOwner::new("default", "batch", "job");
    // Read without a prefix: one statement on each side, for the bucket and its objects.
    let access = owner.sid("Access");
    for policy in ["arn:aws:s3:::lake", role.as_str()] {
        assert_eq!(note.matches(policy).count(), 1, "{policy} once: {note}");
        let written = format!("{policy} (added {access})");
        assert!(note.contains(&written), "{written}: {note}");
    }

    // The bucket statement removed by hand: only the bucket policy is rewritten, and named.
    let policy =
        h.s3.get_bucket_policy()
            .bucket("lake")
            .send()
            .await
            .unwrap();
    let mut doc: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    doc["Statement"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["Sid"] != access.as_str());
    h.s3.put_bucket_policy()
        .bucket("lake")
        .policy(doc.to_string())
        .send()
        .await
        .unwrap();
    let corrected = eventually(20, "a DriftCorrected event", || async {
        h.notes("batch", "DriftCorrected").await.into_iter().next()
    })
    .await;
    assert!(
        corrected.contains("arn:aws:s3:::lake") && corrected.contains(&access),
        "{corrected}"
    );
    assert!(
        !corrected.contains(&role),
        "the role's policy was not rewritten: {corrected}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_resync_writes_neither_aws_nor_status() {
    let resync = Duration::from_secs(2);
    let h = Harness::builder()
        .bucket("lake")
        .resync(resync)
        .start()
        .await;
    create(
        &h.accounts(),
        &AccountFixture::data_prod().allowed(&["batch"]).build(),
    )
    .await;
    let names: Vec<String> = (0..6).map(|i| format!("steady-{i}")).collect();
    create_on(&h, &names, "lake").await;
    for name in &names {
        h.wait_ready("batch", name, "True", "Applied").await;
    }
    // Every grant has seen a resync since it was written (which keeps its Applied condition):
    // what follows is the steady state.
    tokio::time::sleep(resync * 2).await;
    let versions = || async {
        let mut versions = Vec::new();
        for name in &names {
            let grant = h.grants("batch").get(name).await.expect("grant");
            versions.push(grant.metadata.resource_version.unwrap_or_default());
        }
        versions
    };
    let before = versions().await;
    let writes = h.writes();
    tokio::time::sleep(resync * 3).await; // three resync periods
    assert_eq!(h.writes(), writes, "no AWS write while nothing changes");
    assert_eq!(
        versions().await,
        before,
        "no status write (a status write bumps the resourceVersion) while nothing changes"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_verified_again_at_each_resync_keeps_its_status() {
    let resync = Duration::from_secs(2);
    let h = Harness::builder().resync(resync).start().await;
    create(&h.accounts(), &AccountFixture::data_prod().build()).await;
    h.wait_account_verified().await;
    let verified = h.accounts().get("data-prod").await.expect("account");
    let assumed = h.connector.calls().count("AssumeRole");
    tokio::time::sleep(resync * 3).await; // three resync periods
    let later = h.accounts().get("data-prod").await.expect("account");
    assert!(
        h.connector.calls().count("AssumeRole") > assumed,
        "the account is verified again at the resync"
    );
    assert_eq!(
        later.metadata.resource_version, verified.metadata.resource_version,
        "no status write while nothing changes"
    );
    assert_eq!(
        later.status.and_then(|s| s.verified_at),
        verified.status.and_then(|s| s.verified_at)
    );
    h.finish().await;
}

/// Creates grants `names` in namespace batch on `bucket`, one after the other (as `kubectl apply`
/// does).
async fn create_on(h: &Harness, names: &[String], bucket: &str) {
    for name in names {
        create(
            &h.grants("batch"),
            &GrantFixture::new("batch", name).bucket(bucket).build(),
        )
        .await;
    }
}

/// Waits, at most `secs` seconds each, for grants `names` in namespace batch to be Ready.
async fn wait_all_ready<'a>(h: &Harness, names: impl IntoIterator<Item = &'a String>, secs: u64) {
    for name in names {
        eventually(secs, &format!("{name} Ready"), || async {
            (h.ready("batch", name).await?.0 == "True").then_some(())
        })
        .await;
    }
}
