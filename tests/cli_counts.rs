//! The counts the `xacct` binary prints (`plan`, `apply`, `delete`, text output) against what it
//! lists above them, on the AWS emulator: the summary line against the policy blocks (the grants'
//! policies and the key policies of snapshot shares), the grants, the shares and the manifest
//! errors; each grant's "N statement(s) in POLICY" against the changes listed under that policy for
//! that grant; each share's "N change(s) pending" and "N statement(s) in the key policy of KEY"
//! against its steps and the key policy's listed changes.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde_json::json;
use support::fixtures::GrantFixture;
use support::{DATA_ACCOUNT, DEV_ACCOUNT, Moto, accounts_yaml, clients};

fn xacct(moto: &Moto, args: &[&str]) -> (Option<i32>, String) {
    let mut command = support::xacct_command(moto, args);
    let out = command.output().expect("xacct runs");
    (
        out.status.code(),
        String::from_utf8(out.stdout).expect("UTF-8 output"),
    )
}

/// One policy block: its heading and the statement changes listed under it.
#[derive(Debug)]
struct Block {
    arn: String,
    kind: String,
    /// `up to date`, `would put`, `written`, `FAILED`...
    label: String,
    /// Grant name -> changes listed for it.
    changes: BTreeMap<String, usize>,
}

/// A grant or share line: `NAME (ORIGIN): Ready=STATUS REASON: MESSAGE`, and (shares) its steps.
#[derive(Debug)]
struct Status {
    name: String,
    status: String,
    reason: String,
    message: String,
    steps: Vec<String>,
}

/// The text output, parsed.
#[derive(Debug, Default)]
struct Printed {
    errors: usize,
    blocks: Vec<Block>,
    shares: Vec<Status>,
    grants: Vec<Status>,
    summary: String,
}

fn parse(text: &str) -> Printed {
    let heading = Regex::new(r"^(\S+) \((\w+) in \S+ \d{12}\): (.+)$").unwrap();
    let change = Regex::new(r"^  [+~-] (?:add|change|remove) \S+ \(grant (\S+)\)$").unwrap();
    let status = Regex::new(r"^  (\S+) \(.*?\): Ready=(\w+) (\w*): (.*)$").unwrap();
    let step = Regex::new(r"^    (?:would|did:) (.+)$").unwrap();
    let mut printed = Printed::default();
    let mut section = "";
    for line in text.lines() {
        if line.starts_with("error: ") {
            printed.errors += 1;
        } else if line == "Snapshot shares:" || line == "Grants:" {
            section = line;
        } else if let Some(c) = heading.captures(line) {
            printed.blocks.push(Block {
                arn: c[1].to_string(),
                kind: c[2].to_string(),
                label: c[3].to_string(),
                changes: BTreeMap::new(),
            });
        } else if let Some(c) = change.captures(line) {
            let block = printed.blocks.last_mut().expect("a change under a policy");
            *block.changes.entry(c[1].to_string()).or_default() += 1;
        } else if let Some(c) = status.captures(line) {
            let entry = Status {
                name: c[1].to_string(),
                status: c[2].to_string(),
                reason: c[3].to_string(),
                message: c[4].to_string(),
                steps: Vec::new(),
            };
            match section {
                "Grants:" => printed.grants.push(entry),
                "Snapshot shares:" => printed.shares.push(entry),
                other => panic!("a status line in section {other:?}: {line}"),
            }
        } else if let Some(c) = step.captures(line) {
            let share = printed.shares.last_mut().expect("a step under a share");
            share.steps.push(c[1].to_string());
        } else if ["Plan: ", "Apply: ", "Delete: "]
            .iter()
            .any(|p| line.starts_with(p))
        {
            printed.summary = line.to_string();
        }
    }
    assert!(!printed.summary.is_empty(), "a summary line:\n{text}");
    printed
}

/// The number before `what` in the summary line.
fn number(summary: &str, what: &str) -> usize {
    let re = Regex::new(&format!(r"(\d+) {what}")).unwrap();
    re.captures(summary)
        .unwrap_or_else(|| panic!("{what:?} in {summary:?}"))[1]
        .parse()
        .unwrap()
}

/// Checks every count of `text` against what it lists; returns the parsed output.
fn check_counts(text: &str, dry_run: bool) -> Printed {
    let printed = parse(text);
    let summary = &printed.summary;
    let labelled = |f: &dyn Fn(&str) -> bool| printed.blocks.iter().filter(|b| f(&b.label)).count();
    let planned = labelled(&|l| l.starts_with("would "));
    let done = labelled(&|l| l == "written" || l == "deleted");
    if dry_run {
        assert_eq!(
            number(summary, r"polic(?:y|ies) to change"),
            planned,
            "{text}"
        );
        assert_eq!(done, 0, "{text}");
    } else {
        assert_eq!(number(summary, r"polic(?:y|ies) changed"), done, "{text}");
        let only_planned = if planned > 0 {
            number(summary, "planned only")
        } else {
            assert!(!summary.contains("planned only"), "{text}");
            0
        };
        assert_eq!(only_planned, planned, "{text}");
    }
    assert_eq!(
        number(summary, "up to date"),
        labelled(&|l| l == "up to date"),
        "{text}"
    );
    let failed_policies = Regex::new(r"up to date, (\d+) failed")
        .unwrap()
        .captures(summary)
        .unwrap()[1]
        .parse::<usize>()
        .unwrap();
    assert_eq!(failed_policies, labelled(&|l| l == "FAILED"), "{text}");
    // Every block is counted once.
    assert_eq!(
        printed.blocks.len(),
        planned + done + labelled(&|l| l == "up to date") + failed_policies,
        "{text}"
    );

    let grants = Regex::new(r"(\d+) grant\(s\), (\d+) failed")
        .unwrap()
        .captures(summary)
        .unwrap_or_else(|| panic!("grants in {summary}"));
    assert_eq!(grants[1].parse::<usize>().unwrap(), printed.grants.len());
    let failed = |s: &&Status| {
        s.status != "True"
            && ![
                "Pending",
                "Revoked",
                "Retained",
                "RevokePending",
                "Unshared",
                "UnsharePending",
            ]
            .contains(&s.reason.as_str())
    };
    assert_eq!(
        grants[2].parse::<usize>().unwrap(),
        printed.grants.iter().filter(failed).count(),
        "{text}"
    );
    if printed.shares.is_empty() {
        assert!(!summary.contains("share"), "{text}");
    } else {
        let shares = Regex::new(r"(\d+) snapshot share\(s\), (\d+) failed")
            .unwrap()
            .captures(summary)
            .unwrap_or_else(|| panic!("shares in {summary}"));
        assert_eq!(shares[1].parse::<usize>().unwrap(), printed.shares.len());
        assert_eq!(
            shares[2].parse::<usize>().unwrap(),
            printed.shares.iter().filter(failed).count(),
            "{text}"
        );
    }
    assert_eq!(
        number(summary, r"manifest error\(s\)"),
        printed.errors,
        "{text}"
    );

    // Each grant's message: a count per policy, each equal to the changes listed there for it.
    let per_policy = Regex::new(
        r"(\d+) (?:statement\(s\) )?(?:would be removed from|removed from|in|from) (arn:[^\s,]+)(?: \((\w+)\))?",
    )
    .unwrap();
    for grant in &printed.grants {
        if grant.status == "True" && grant.reason == "Converged" {
            continue;
        }
        let mut said_total = 0;
        for c in per_policy.captures_iter(&grant.message) {
            let said: usize = c[1].parse().unwrap();
            let blocks: Vec<&Block> = printed
                .blocks
                .iter()
                .filter(|b| b.arn == c[2] && c.get(3).is_none_or(|k| b.kind == k.as_str()))
                .collect();
            assert_eq!(blocks.len(), 1, "{} names {}: {text}", grant.name, &c[2]);
            let listed = blocks[0].changes.get(&grant.name).copied().unwrap_or(0);
            assert_eq!(
                said, listed,
                "{}: \"{}\" says {said} in {}, {listed} listed there:\n{text}",
                grant.name, grant.message, &c[2]
            );
            said_total += said;
        }
        let listed_total: usize = printed
            .blocks
            .iter()
            .filter_map(|b| b.changes.get(&grant.name))
            .sum();
        assert_eq!(
            said_total, listed_total,
            "{}: \"{}\" against every policy listed:\n{text}",
            grant.name, grant.message
        );
    }

    // Each share: its pending count against its steps, its key policy steps against the blocks.
    let key_step = Regex::new(r"(\d+) statement\(s\) in the key policy of (\S+)").unwrap();
    let pending = Regex::new(r"^(\d+) change\(s\) pending").unwrap();
    for share in &printed.shares {
        if let Some(c) = pending.captures(&share.message) {
            assert_eq!(c[1].parse::<usize>().unwrap(), share.steps.len(), "{text}");
        }
        for step in &share.steps {
            if let Some(c) = key_step.captures(step) {
                let listed: usize = printed
                    .blocks
                    .iter()
                    .filter(|b| b.arn == c[2] && b.kind == "KmsKeyPolicy")
                    .map(|b| b.changes.values().sum::<usize>())
                    .sum();
                assert_eq!(c[1].parse::<usize>().unwrap(), listed, "{step}:\n{text}");
            }
        }
    }
    printed
}

/// A grant of batch for principals of the dev account (its side managed too).
fn grant(name: &str, bucket: &str, principals: &[&str]) -> GrantFixture {
    GrantFixture::new("batch", name)
        .bucket(bucket)
        .manage("dev", principals)
}

#[tokio::test]
async fn every_printed_count_matches_what_is_listed_above_it() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    let dev = clients(&connector, DEV_ACCOUNT).await;
    for bucket in ["count-lake", "count-observed"] {
        data.s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    support::create_role(&dev.iam, "CountJobRole", "ecs-tasks.amazonaws.com").await;
    dev.iam
        .create_user()
        .user_name("count-analyst")
        .send()
        .await
        .unwrap();
    let config = connector
        .session(&support::access("setup", DATA_ACCOUNT))
        .await
        .unwrap();
    let rds = connector.rds_client(&config, "us-east-1");
    let kms = connector.kms_client(&config, "us-east-1");
    let key = support::create_key(&kms).await;
    support::db_instance(&rds, "orders", Some(key.key_id()), Some("orders-1")).await;

    let manifests = format!(
        "{}{}{}{}---
apiVersion: xacct.dev/v1alpha1
kind: SnapshotShare
metadata: {{name: orders-to-dev, namespace: batch}}
spec:
  source: {{account: data-prod, dbSnapshotIdentifier: orders-1}}
  targets: [{{accountId: \"{DEV_ACCOUNT}\"}}]
",
        accounts_yaml(),
        // Both sides: statements in the bucket policy and in the role's and the user's policies.
        grant(
            "both-sides",
            "count-lake",
            &["role/CountJobRole", "user/count-analyst"]
        )
        .access(&["read", "write"])
        .yaml(),
        grant("observed", "count-observed", &["role/CountJobRole"])
            .extra(json!({"granteeSide": "None"}))
            .observe()
            .yaml(),
        grant("missing-bucket", "count-missing", &["role/CountJobRole"])
            .extra(json!({"granteeSide": "None"}))
            .yaml(),
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("all.yaml"), manifests).unwrap();
    std::fs::write(
        dir.path().join("broken.yaml"),
        "apiVersion: xacct.dev/v1alpha1\nkind: CrossAccountGrant\nmetadata: {name: broken}\nspec: [",
    )
    .unwrap();
    let path = Path::new(dir.path()).to_str().unwrap();

    let (code, text) = xacct(&moto, &["plan", "-f", path]);
    assert_eq!(
        code,
        Some(1),
        "a failing grant and a broken manifest:\n{text}"
    );
    let plan = check_counts(&text, true);
    // The case of the issue: one grant, statements on both sides, counted per policy.
    let both = plan
        .grants
        .iter()
        .find(|g| g.name == "batch/both-sides")
        .unwrap();
    assert_eq!(both.reason, "Pending", "{text}");
    let written_in = plan
        .blocks
        .iter()
        .filter(|b| b.changes.contains_key("batch/both-sides"))
        .count();
    assert_eq!(written_in, 3, "the bucket, the role and the user:\n{text}");
    assert!(
        plan.summary.contains("manifest error(s)") && plan.errors == 1,
        "{text}"
    );

    let (code, text) = xacct(&moto, &["apply", "-f", path]);
    assert_eq!(code, Some(1), "{text}");
    let apply = check_counts(&text, false);
    // The key policy written for the share is counted among the policies changed.
    let key_policy = apply
        .blocks
        .iter()
        .find(|b| b.kind == "KmsKeyPolicy")
        .unwrap_or_else(|| panic!("the share's key policy is listed:\n{text}"));
    assert_eq!(key_policy.label, "written", "{text}");
    assert_eq!(
        number(&apply.summary, r"polic(?:y|ies) changed"),
        4,
        "bucket, role, user and key policy:\n{text}"
    );
    assert!(
        apply.blocks.iter().any(|b| b.label.starts_with("would ")),
        "the Observe grant's policy is only planned:\n{text}"
    );

    let (_, text) = xacct(&moto, &["plan", "-f", path]);
    check_counts(&text, true);
    let (_, text) = xacct(&moto, &["delete", "-f", path]);
    let delete = check_counts(&text, false);
    assert!(
        delete
            .grants
            .iter()
            .any(|g| g.name == "batch/both-sides" && g.reason == "Revoked"),
        "{text}"
    );
}
