//! Compaction end to end: the `xacct` binary against the AWS emulator (moto), on an S3 bucket policy
//! and an IAM role trust policy. Grants whose statements differ only in their principals share
//! statements; each run knows only the grants it is given (as a CI pipeline applying one file), and
//! deleting one grant takes out only its principals, keeping a principal another grant still names
//! and every foreign statement. `--no-compaction` writes statements per grant, and xacct never
//! rewrites a policy for layout alone.
//!
//! moto does not evaluate policies: the tests check the documents (who each statement lets in).

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};
use support::fixtures::GrantFixture;
use support::{
    DATA_ACCOUNT, DEV_ACCOUNT, Moto, accounts_yaml, clients, create_role, held_by, trust_policy,
};
use xacct::policy::GrantOwner;

fn xacct(moto: &Moto, args: &[&str]) -> Output {
    let mut command = support::xacct_command(moto, args);
    command.output().expect("xacct runs")
}

fn ok(output: Output) -> Output {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A grant of `kind` on `resource` for `principals` (short forms in the dev account).
fn grant(name: &str, kind: &str, resource: &str, principals: &[&str]) -> String {
    let access = if kind == "IamRole" { "assume" } else { "read" };
    GrantFixture::new("batch", name)
        .resource(kind, resource)
        .principals(principals)
        .access(&[access])
        .yaml()
}

fn file(dir: &Path, name: &str, grants: &[String]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{}{}", accounts_yaml(), grants.concat())).unwrap();
    path.to_str().unwrap().to_string()
}

fn role(name: &str) -> String {
    format!("arn:aws:iam::{DEV_ACCOUNT}:role/{name}")
}

/// Who the statements of `doc` allowing `action` let in, and how many such statements there are.
fn allowed(doc: &Value, action: &str) -> (BTreeSet<String>, usize) {
    let mut who = BTreeSet::new();
    let mut statements = 0;
    for s in doc["Statement"].as_array().unwrap() {
        let actions = match &s["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a.iter().map(|a| a.as_str().unwrap().to_string()).collect(),
            _ => continue,
        };
        if !actions.iter().any(|a| a == action) {
            continue;
        }
        statements += 1;
        match &s["Principal"]["AWS"] {
            Value::String(p) => {
                who.insert(p.clone());
            }
            Value::Array(ps) => who.extend(ps.iter().map(|p| p.as_str().unwrap().to_string())),
            _ => {}
        }
    }
    (who, statements)
}

async fn bucket_policy(s3: &aws_sdk_s3::Client, bucket: &str) -> Value {
    let text = s3
        .get_bucket_policy()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn set(items: &[String]) -> BTreeSet<String> {
    items.iter().cloned().collect()
}

/// Creates the bucket `lake` with a policy holding someone's `Console` statement, then `more`;
/// returns that statement.
async fn lake_with_console_statement(s3: &aws_sdk_s3::Client, more: &[Value]) -> Value {
    s3.create_bucket().bucket("lake").send().await.unwrap();
    let foreign = json!({"Sid": "Console", "Effect": "Allow", "Principal": {"AWS": role("Auditor")},
        "Action": "s3:GetObject", "Resource": "arn:aws:s3:::lake/*"});
    let mut statements = vec![foreign.clone()];
    statements.extend_from_slice(more);
    s3.put_bucket_policy()
        .bucket("lake")
        .policy(json!({"Version": "2012-10-17", "Statement": statements}).to_string())
        .send()
        .await
        .unwrap();
    foreign
}

#[tokio::test]
async fn grants_share_statements_and_deleting_one_takes_out_only_its_principals() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    let foreign = lake_with_console_statement(&data.s3, &[]).await;
    create_role(&data.iam, "Shared", "ec2.amazonaws.com").await;

    let dir = tempfile::tempdir().unwrap();
    let a = grant("a", "S3Bucket", "lake", &["role/A", "role/Common"]);
    let b = grant("b", "S3Bucket", "lake", &["role/B"]);
    let c = grant("c", "S3Bucket", "lake", &["role/Common"]);
    let ta = grant("ta", "IamRole", "Shared", &["role/A"]);
    let tb = grant("tb", "IamRole", "Shared", &["role/B"]);
    let all = file(
        dir.path(),
        "all.yaml",
        &[a.clone(), b.clone(), c.clone(), ta.clone(), tb.clone()],
    );
    ok(xacct(&moto, &["apply", "-f", &all]));

    let doc = bucket_policy(&data.s3, "lake").await;
    let (readers, statements) = allowed(&doc, "s3:GetObject");
    assert_eq!(
        readers,
        set(&[role("A"), role("B"), role("Common"), role("Auditor")])
    );
    assert_eq!(
        statements, 2,
        "one shared statement and the foreign one: {doc}"
    );
    assert_eq!(allowed(&doc, "s3:ListBucket").1, 1, "{doc}");
    assert!(doc["Statement"].as_array().unwrap().contains(&foreign));
    let sids: Vec<String> = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["Sid"].as_str().map(str::to_string))
        .collect();
    // Read without a prefix is one statement per grant (bucket and objects together): the three
    // share that one statement.
    for name in ["a", "b", "c"] {
        let owner = GrantOwner::new("default", "batch", name);
        assert_eq!(
            sids.iter().filter(|s| held_by(s, &owner)).count(),
            1,
            "{name}: {doc}"
        );
    }
    let trust: Value = serde_json::from_str(&trust_policy(&data.iam, "Shared").await).unwrap();
    let (assumers, statements) = allowed(&trust, "sts:AssumeRole");
    assert!(assumers.contains(&role("A")) && assumers.contains(&role("B")));
    assert_eq!(statements, 2, "the role's own and one shared: {trust}");

    // Nothing left to do, for all of them or for any one alone.
    let plan = xacct(&moto, &["plan", "-f", &all]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
    let only_b = file(dir.path(), "b.yaml", std::slice::from_ref(&b));
    assert_eq!(
        xacct(&moto, &["plan", "-f", &only_b]).status.code(),
        Some(0)
    );

    // Deleting a knows nothing of b and c: role/Common stays (c names it), role/A goes.
    let only_a = file(dir.path(), "a.yaml", &[a.clone(), ta.clone()]);
    ok(xacct(&moto, &["delete", "-f", &only_a]));
    let doc = bucket_policy(&data.s3, "lake").await;
    assert_eq!(
        allowed(&doc, "s3:GetObject").0,
        set(&[role("B"), role("Common"), role("Auditor")])
    );
    assert!(doc["Statement"].as_array().unwrap().contains(&foreign));
    let trust: Value = serde_json::from_str(&trust_policy(&data.iam, "Shared").await).unwrap();
    let (assumers, _) = allowed(&trust, "sts:AssumeRole");
    assert!(
        !assumers.contains(&role("A")) && assumers.contains(&role("B")),
        "{trust}"
    );
    let rest = file(dir.path(), "rest.yaml", &[b, c, tb]);
    assert_eq!(xacct(&moto, &["plan", "-f", &rest]).status.code(), Some(0));

    // The rest deleted: only the foreign statement is left.
    ok(xacct(&moto, &["delete", "-f", &rest]));
    let doc = bucket_policy(&data.s3, "lake").await;
    assert_eq!(doc["Statement"], json!([foreign]));
}

#[tokio::test]
async fn no_compaction_writes_statements_per_grant_and_layout_alone_is_never_rewritten() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    data.s3.create_bucket().bucket("lake").send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let two = file(
        dir.path(),
        "two.yaml",
        &[
            grant("a", "S3Bucket", "lake", &["role/A"]),
            grant("b", "S3Bucket", "lake", &["role/B"]),
        ],
    );
    ok(xacct(&moto, &["apply", "--no-compaction", "-f", &two]));
    let plain = bucket_policy(&data.s3, "lake").await;
    assert_eq!(
        allowed(&plain, "s3:GetObject").1,
        2,
        "one per grant: {plain}"
    );

    // Compaction on, nothing to change: the policy is left as it is.
    assert_eq!(xacct(&moto, &["plan", "-f", &two]).status.code(), Some(0));
    ok(xacct(&moto, &["apply", "-f", &two]));
    assert_eq!(bucket_policy(&data.s3, "lake").await, plain);

    // A change is written compacted.
    let three = file(
        dir.path(),
        "three.yaml",
        &[
            grant("a", "S3Bucket", "lake", &["role/A"]),
            grant("b", "S3Bucket", "lake", &["role/B"]),
            grant("c", "S3Bucket", "lake", &["role/C"]),
        ],
    );
    ok(xacct(&moto, &["apply", "-f", &three]));
    let compacted = bucket_policy(&data.s3, "lake").await;
    let (readers, statements) = allowed(&compacted, "s3:GetObject");
    assert_eq!(readers, set(&[role("A"), role("B"), role("C")]));
    assert_eq!(statements, 1, "{compacted}");

    // And back: without compaction, a change writes every grant's own statements again.
    let four = file(
        dir.path(),
        "four.yaml",
        &[
            grant("a", "S3Bucket", "lake", &["role/A"]),
            grant("b", "S3Bucket", "lake", &["role/B"]),
            grant("c", "S3Bucket", "lake", &["role/C", "role/D"]),
        ],
    );
    ok(xacct(&moto, &["apply", "--no-compaction", "-f", &four]));
    let doc = bucket_policy(&data.s3, "lake").await;
    let (readers, statements) = allowed(&doc, "s3:GetObject");
    assert_eq!(readers, set(&[role("A"), role("B"), role("C"), role("D")]));
    assert_eq!(statements, 3, "{doc}");
    assert_eq!(xacct(&moto, &["plan", "-f", &four]).status.code(), Some(0));
}

/// A shared `read` statement on `lake` as xacct wrote it before grant ids: `…Shared…`, then the
/// shape's and the bin's digits, then per member the 16 hex digits of its own Sids and 5 hashing
/// its principal.
fn written_before_ids(members: &[(&str, &str)]) -> Value {
    use sha2::{Digest, Sha256};
    let instance = xacct::policy::instance_sid_prefix("default");
    let entries: String = members
        .iter()
        .map(|(name, principal)| {
            let grant = &GrantOwner::new("default", "batch", name).sid_prefix()[instance.len()..];
            let mut hasher = Sha256::new();
            hasher.update(role(principal).as_bytes());
            hasher.update([0u8]);
            let hash: String = hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("{grant}{}", &hash[..5])
        })
        .collect();
    json!({"Sid": format!("{instance}Sharedabcdef00{entries}"), "Effect": "Allow",
        "Principal": {"AWS": members.iter().map(|(_, p)| role(p)).collect::<Vec<_>>()},
        "Action": ["s3:GetBucketLocation", "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"],
        "Resource": ["arn:aws:s3:::lake", "arn:aws:s3:::lake/*"]})
}

#[tokio::test]
async fn shared_statements_written_before_grant_ids_are_kept_until_the_next_change_then_rewritten()
{
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    let before = written_before_ids(&[("a", "A"), ("b", "B")]);
    let foreign = lake_with_console_statement(&data.s3, std::slice::from_ref(&before)).await;
    let dir = tempfile::tempdir().unwrap();
    let a = grant("a", "S3Bucket", "lake", &["role/A"]);
    let b = grant("b", "S3Bucket", "lake", &["role/B"]);
    let c = grant("c", "S3Bucket", "lake", &["role/C"]);

    // Read as the grants' own: nothing to change, and no write for the form alone.
    let both = file(dir.path(), "ab.yaml", &[a.clone(), b.clone()]);
    let plan = xacct(&moto, &["plan", "-f", &both]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
    ok(xacct(&moto, &["apply", "-f", &both]));
    let doc = bucket_policy(&data.s3, "lake").await;
    assert_eq!(doc["Statement"], json!([foreign.clone(), before]));

    // The next change writes today's form, every member's access in it.
    let all = file(dir.path(), "abc.yaml", &[a.clone(), b, c]);
    ok(xacct(&moto, &["apply", "-f", &all]));
    let doc = bucket_policy(&data.s3, "lake").await;
    let statements = doc["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 2, "{doc}");
    assert_eq!(statements[0], foreign);
    let sid = statements[1]["Sid"].as_str().unwrap();
    assert!(sid.contains("Group") && !sid.contains("Shared"), "{sid}");
    for name in ["a", "b", "c"] {
        assert!(
            held_by(sid, &GrantOwner::new("default", "batch", name)),
            "{name}"
        );
    }
    let (who, _) = allowed(&doc, "s3:GetObjectVersion");
    assert_eq!(who, set(&[role("A"), role("B"), role("C")]));

    // Deleting one takes out its principal alone.
    let only_a = file(dir.path(), "a.yaml", &[a]);
    ok(xacct(&moto, &["delete", "-f", &only_a]));
    let doc = bucket_policy(&data.s3, "lake").await;
    let (who, _) = allowed(&doc, "s3:GetObjectVersion");
    assert_eq!(who, set(&[role("B"), role("C")]));
    assert_eq!(doc["Statement"][0], foreign);
}
