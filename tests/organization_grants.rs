//! Organization grantees through the `xacct` binary against the AWS emulator (moto): the resource's
//! policy names the principal `*` with an `aws:PrincipalOrgID` condition (and
//! `aws:PrincipalOrgPaths` for paths) on an S3 bucket, an ECR repository, a KMS key and an IAM
//! role's trust policy; grants with the same organization share a statement; foreign statements
//! stay through apply and delete; and nothing is written for an organization the resource's
//! AwsAccount does not list in `allowedOrganizations` (taken back when that consent is withdrawn),
//! while other grants on the same policy converge.
//!
//! moto does not evaluate the conditions: whether a request of an organization's principal is
//! allowed, and one from outside denied, is decided on the policies read back from moto by the
//! independent IAM evaluator (`support::iam_eval`).

mod support;

use serde_json::{Value, json};
use support::fixtures::{AccountFixture, GrantFixture};
use support::iam_eval::{NamedPolicy, Request, assert_decisions};
use support::{
    Clients, DATA_ACCOUNT, DEV_ACCOUNT, Moto, clients, create_key, create_role, json_report,
    policy_statements, run_xacct, run_xacct_ok, write_manifest, xacct_statements,
};

const ORG: &str = "o-a1b2c3d4e5";
const OU_PATH: &str = "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/";

/// `(status, reason, message)` of the grant `name` (namespace/name) in a JSON report.
fn ready(report: &Value, name: &str) -> (String, String, String) {
    let grant = report["grants"]
        .as_array()
        .and_then(|grants| grants.iter().find(|g| g["name"] == name))
        .unwrap_or_else(|| panic!("{name} in {report:#}"));
    let c = &grant["conditions"][0];
    (
        c["status"].as_str().unwrap_or_default().to_string(),
        c["reason"].as_str().unwrap_or_default().to_string(),
        c["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// The accounts: data-prod lists `organizations`, dev lists none.
fn accounts(organizations: &[&str]) -> String {
    let data = AccountFixture::data_prod().extra(json!({"allowedOrganizations": organizations}));
    format!("{}{}", data.yaml(), AccountFixture::dev().yaml())
}

/// A grant to the organization (optionally its `paths`) on `kind`/`resource` with `access`.
fn org_grant(name: &str, kind: &str, resource: &str, access: &str, paths: &[&str]) -> String {
    let mut organization = json!({"id": ORG});
    if !paths.is_empty() {
        organization["paths"] = json!(paths);
    }
    GrantFixture::new("platform", name)
        .resource(kind, resource)
        .access(&[access])
        .extra(json!({"grantee": {"organization": organization}}))
        .yaml()
}

fn foreign_statement(principal: Value, action: &str, resource: Option<&str>) -> Value {
    let mut statement =
        json!({"Sid": "Console", "Effect": "Allow", "Principal": principal, "Action": action});
    if let Some(resource) = resource {
        statement["Resource"] = json!(resource);
    }
    statement
}

async fn bucket_policy(data: &Clients) -> String {
    data.s3
        .get_bucket_policy()
        .bucket("lake")
        .send()
        .await
        .expect("a bucket policy")
        .policy
        .unwrap_or_default()
}

async fn repository_policy(data: &Clients) -> String {
    data.ecr
        .get_repository_policy()
        .repository_name("app")
        .send()
        .await
        .expect("a repository policy")
        .policy_text
        .unwrap_or_default()
}

/// An account of the organization, unknown to xacct, whose role calls the shared resources.
const MEMBER_ACCOUNT: &str = "777777777777";
/// A path of the member's account in the organization, under [`OU_PATH`].
const MEMBER_PATH: &str = "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/";
/// A path of an account outside that OU.
const OTHER_PATH: &str = "o-a1b2c3d4e5/r-ab12/ou-ab12-22222222/";

/// A request of the member account's role `Worker` (a session of it), whose own account allows it
/// everything: the resource's policy alone decides.
fn member_request(label: &str, action: &str, resource: &str, policy: &str) -> Request {
    let everything = NamedPolicy {
        name: "everything".into(),
        policy: json!({"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
        .to_string(),
    };
    Request::new(
        label,
        format!("arn:aws:sts::{MEMBER_ACCOUNT}:assumed-role/Worker/session"),
        action,
        resource,
        DATA_ACCOUNT,
    )
    .identity(&[everything])
    .resource_policy(Some(policy))
}

/// The same request made from within the organization (`aws:PrincipalOrgID`, and the account's
/// path when `path` is given), or from `org` when that is another organization.
fn from_org(request: Request, org: &str, path: Option<&str>) -> Request {
    let mut request = request.context("aws:PrincipalOrgID", org);
    request.label = format!("{} (from {org})", request.label);
    if let Some(path) = path {
        request.label = format!("{} under {path}", request.label);
        request
            .context
            .insert("aws:PrincipalOrgPaths".into(), json!([path]));
    }
    request
}

/// Every xacct statement lets in anyone of the organization, and only them.
fn assert_org_only(statements: &[Value], paths: bool) {
    assert!(!statements.is_empty());
    for s in statements {
        assert_eq!(s["Principal"], json!({"AWS": "*"}), "{s}");
        assert_eq!(
            s["Condition"]["StringEquals"]["aws:PrincipalOrgID"],
            json!(ORG),
            "{s}"
        );
        let expected = if paths { json!(OU_PATH) } else { Value::Null };
        let got = &s["Condition"]["ForAnyValue:StringLike"]["aws:PrincipalOrgPaths"];
        // A one-item list may be read back as a string.
        assert!(*got == expected || *got == json!([OU_PATH]) && paths, "{s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_grants_on_every_kind_share_statements_and_keep_foreign_ones() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    let dev_root = json!({"AWS": format!("arn:aws:iam::{DEV_ACCOUNT}:root")});

    data.s3
        .create_bucket()
        .bucket("lake")
        .send()
        .await
        .expect("bucket");
    let bucket_foreign = foreign_statement(
        dev_root.clone(),
        "s3:GetObject",
        Some("arn:aws:s3:::lake/*"),
    );
    data.s3
        .put_bucket_policy()
        .bucket("lake")
        .policy(json!({"Version": "2012-10-17", "Statement": [bucket_foreign]}).to_string())
        .send()
        .await
        .expect("foreign bucket policy");
    data.ecr
        .create_repository()
        .repository_name("app")
        .send()
        .await
        .expect("repository");
    let repo_foreign = foreign_statement(dev_root.clone(), "ecr:BatchGetImage", None);
    data.ecr
        .set_repository_policy()
        .repository_name("app")
        .policy_text(json!({"Version": "2012-10-17", "Statement": [repo_foreign]}).to_string())
        .send()
        .await
        .expect("foreign repository policy");
    let key = create_key(&data.kms).await;
    create_role(&data.iam, "Deployer", "ec2.amazonaws.com").await;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let first = org_grant("lake-readers", "S3Bucket", "lake", "read", &[]);
    let second = org_grant("lake-readers-too", "S3Bucket", "lake", "read", &[]);
    let others = [
        org_grant("app-pullers", "EcrRepository", "app", "pull", &[]),
        org_grant("key-users", "KmsKey", key.key_id(), "decrypt", &[]),
        org_grant("deployers", "IamRole", "Deployer", "assume", &[OU_PATH]),
    ];
    let all = [
        vec![accounts(&[ORG]), first.clone(), second.clone()],
        others.to_vec(),
    ]
    .concat();
    let everything = write_manifest(dir.path(), "all.yaml", &all);

    let out = run_xacct(&moto, &["apply", "-f", &everything, "-o", "json"]);
    let applied = json_report(&out);
    assert_eq!(out.status.code(), Some(0), "{applied:#}");
    for name in [
        "lake-readers",
        "lake-readers-too",
        "app-pullers",
        "key-users",
        "deployers",
    ] {
        let (status, reason, message) = ready(&applied, &format!("platform/{name}"));
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("True", "Applied"),
            "{name}: {message}"
        );
    }

    // The bucket: one shared statement for the two grants of the same organization, the foreign
    // statement as it was.
    let policy = bucket_policy(&data).await;
    assert!(
        policy_statements(&policy).contains(&bucket_foreign),
        "{policy}"
    );
    let bucket_ours = xacct_statements(&policy_statements(&policy));
    assert_eq!(bucket_ours.len(), 1, "shared: {policy}");
    assert_org_only(&bucket_ours, false);
    assert_eq!(
        bucket_ours[0]["Resource"],
        json!(["arn:aws:s3:::lake", "arn:aws:s3:::lake/*"])
    );

    let policy = repository_policy(&data).await;
    assert!(
        policy_statements(&policy).contains(&repo_foreign),
        "{policy}"
    );
    assert_org_only(&xacct_statements(&policy_statements(&policy)), false);

    let policy = support::key_policy(&data.kms, key.key_id()).await;
    assert!(
        policy_statements(&policy)
            .iter()
            .any(|s| s["Principal"]["AWS"] == json!(format!("arn:aws:iam::{DATA_ACCOUNT}:root"))),
        "the key's default statement stays: {policy}"
    );
    let key_ours = xacct_statements(&policy_statements(&policy));
    assert_org_only(&key_ours, false);
    assert!(key_ours.iter().all(|s| s["Resource"] == json!("*")));

    let trust = support::trust_policy(&data.iam, "Deployer").await;
    assert!(
        policy_statements(&trust)
            .iter()
            .any(|s| s["Principal"]["Service"] == json!("ec2.amazonaws.com")),
        "the role's own trust stays: {trust}"
    );
    let trust_ours = xacct_statements(&policy_statements(&trust));
    assert_org_only(&trust_ours, true);
    assert_eq!(trust_ours[0]["Action"], json!("sts:AssumeRole"));

    // What AWS would decide: the organization's principals are let in, others are not.
    let object = "arn:aws:s3:::lake/data.csv";
    let repository = format!("arn:aws:ecr:us-east-1:{DATA_ACCOUNT}:repository/app");
    let role = format!("arn:aws:iam::{DATA_ACCOUNT}:role/Deployer");
    let read = |policy: &str| member_request("reads lake", "s3:GetObject", object, policy);
    let pull = |policy: &str| member_request("pulls app", "ecr:BatchGetImage", &repository, policy);
    let decrypt = |policy: &str| {
        member_request(
            "decrypts",
            "kms:Decrypt",
            key.arn().unwrap_or_default(),
            policy,
        )
    };
    let assume = |policy: &str| member_request("assumes Deployer", "sts:AssumeRole", &role, policy);
    let policies = [
        bucket_policy(&data).await,
        repository_policy(&data).await,
        support::key_policy(&data.kms, key.key_id()).await,
        trust,
    ];
    let [bucket, repo, key_doc, trust] = &policies;
    assert_decisions(&[
        (from_org(read(bucket), ORG, None), true),
        (read(bucket), false),
        (from_org(read(bucket), "o-zzzzzzzzzz", None), false),
        (from_org(pull(repo), ORG, None), true),
        (pull(repo), false),
        (from_org(decrypt(key_doc), ORG, None), true),
        (decrypt(key_doc), false),
        (from_org(assume(trust), ORG, Some(MEMBER_PATH)), true),
        (from_org(assume(trust), ORG, Some(OTHER_PATH)), false),
        (assume(trust), false),
        // A write was never granted.
        (
            from_org(
                member_request("writes lake", "s3:PutObject", object, bucket),
                ORG,
                None,
            ),
            false,
        ),
    ]);

    // Converged: a second apply writes nothing.
    let again = run_xacct(&moto, &["apply", "-f", &everything, "-o", "json"]);
    let again_report = json_report(&again);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(
        ready(&again_report, "platform/lake-readers").1,
        "Converged",
        "{again_report:#}"
    );

    // Deleting one of the two bucket grants keeps the statement the other still wants.
    let only_first = write_manifest(dir.path(), "first.yaml", &[accounts(&[ORG]), first]);
    run_xacct_ok(&moto, &["delete", "-f", &only_first]);
    let policy = bucket_policy(&data).await;
    let left = xacct_statements(&policy_statements(&policy));
    assert_eq!(left.len(), 1, "the other grant still wants it: {policy}");
    assert_org_only(&left, false);

    // Deleting everything leaves only the foreign statements.
    run_xacct_ok(&moto, &["delete", "-f", &everything]);
    let policy = bucket_policy(&data).await;
    assert_eq!(policy_statements(&policy), vec![bucket_foreign], "{policy}");
    assert_eq!(
        policy_statements(&repository_policy(&data).await),
        vec![repo_foreign]
    );
    assert!(
        xacct_statements(&policy_statements(
            &support::key_policy(&data.kms, key.key_id()).await
        ))
        .is_empty()
    );
    assert!(
        xacct_statements(&policy_statements(
            &support::trust_policy(&data.iam, "Deployer").await
        ))
        .is_empty()
    );

    // And AWS would let nobody of the organization in any more.
    let after = [
        bucket_policy(&data).await,
        repository_policy(&data).await,
        support::key_policy(&data.kms, key.key_id()).await,
        support::trust_policy(&data.iam, "Deployer").await,
    ];
    let [bucket, repo, key_doc, trust] = &after;
    assert_decisions(&[
        (from_org(read(bucket), ORG, None), false),
        (from_org(pull(repo), ORG, None), false),
        (from_org(decrypt(key_doc), ORG, None), false),
        (from_org(assume(trust), ORG, Some(MEMBER_PATH)), false),
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_the_account_does_not_list_gets_nothing_and_loses_what_it_had() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    data.s3
        .create_bucket()
        .bucket("lake")
        .send()
        .await
        .expect("bucket");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let org = org_grant("lake-readers", "S3Bucket", "lake", "read", &[]);
    let account_grant = GrantFixture::new("batch", "job").bucket("lake").yaml();
    let with = |organizations: &[&str]| {
        write_manifest(
            dir.path(),
            "grants.yaml",
            &[accounts(organizations), org.clone(), account_grant.clone()],
        )
    };

    // Not listed: refused, nothing written for it; the other grant on the bucket converges.
    let out = run_xacct(
        &moto,
        &["apply", "-f", &with(&["o-zzzzzzzzzz"]), "-o", "json"],
    );
    let refused = json_report(&out);
    assert_eq!(out.status.code(), Some(1), "{refused:#}");
    let (status, reason, message) = ready(&refused, "platform/lake-readers");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "OrganizationNotAllowed")
    );
    assert!(
        message.contains("spec.grantee.organization.id: AwsAccount data-prod does not allow grants to organization o-a1b2c3d4e5 (spec.allowedOrganizations)"),
        "{message}"
    );
    assert_eq!(ready(&refused, "batch/job").1, "Applied");
    let policy = bucket_policy(&data).await;
    assert!(
        !policy.contains("aws:PrincipalOrgID") && !policy.contains("\"*\""),
        "nothing of the organization grant: {policy}"
    );

    // Listed: written.
    let out = run_xacct(&moto, &["apply", "-f", &with(&[ORG]), "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{:#}", json_report(&out));
    assert!(bucket_policy(&data).await.contains("aws:PrincipalOrgID"));

    // Consent withdrawn: the statements are taken back, the other grant's stay.
    let out = run_xacct(&moto, &["apply", "-f", &with(&[]), "-o", "json"]);
    let withdrawn = json_report(&out);
    assert_eq!(out.status.code(), Some(1));
    let (_, reason, message) = ready(&withdrawn, "platform/lake-readers");
    assert_eq!(reason, "OrganizationNotAllowed");
    assert!(message.contains("its access was revoked"), "{message}");
    let policy = bucket_policy(&data).await;
    assert!(!policy.contains("aws:PrincipalOrgID"), "{policy}");
    let left = xacct_statements(&policy_statements(&policy));
    assert_eq!(left.len(), 1, "the account grant's statement: {policy}");
    assert_eq!(
        left[0]["Principal"]["AWS"],
        json!(format!("arn:aws:iam::{DEV_ACCOUNT}:role/job"))
    );
}
