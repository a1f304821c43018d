//! Principals AWS does not know yet, through the binary. IAM is eventually consistent: a role
//! created seconds ago is refused in a resource policy (S3 `MalformedPolicy`, ECR
//! `InvalidParameterException`, KMS `MalformedPolicyDocumentException`, IAM
//! `MalformedPolicyDocument`). The AWS emulator accepts any principal, so the fault proxy answers
//! those refusals, in each service's words, for the first K writes naming a principal (then the
//! principal "appears"), or for every write (it never does).

mod support;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::fault_proxy::{Fault, FaultProxy, Seen};
use support::{Clients, DATA_ACCOUNT, DEV_ACCOUNT, Moto, clients};

fn grant(name: &str, resource: &str, principal: &str, access: &str) -> String {
    format!(
        "---
apiVersion: xacct.dev/v1alpha1
kind: CrossAccountGrant
metadata: {{name: {name}, namespace: apps}}
spec:
  resource: {resource}
  grantee: {{accountId: \"111111111111\", principals: [{principal}]}}
  access: [{access}]
"
    )
}

/// moto, the proxy in front of it, the data account's clients, and a folder for manifests.
async fn rig() -> (Moto, FaultProxy, Clients, tempfile::TempDir) {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let data = clients(moto.connector().await.as_ref(), DATA_ACCOUNT).await;
    data.s3.create_bucket().bucket("lake").send().await.unwrap();
    (moto, proxy, data, tempfile::tempdir().unwrap())
}

/// `xacct apply -o json` of the accounts and `grants` through the proxy, with `args`.
fn apply(moto: &Moto, proxy: &FaultProxy, dir: &Path, grants: &str, args: &[&str]) -> Output {
    apply_with(moto, proxy, dir, grants, args, &[])
}

/// [`apply`] with `env` set too.
fn apply_with(
    moto: &Moto,
    proxy: &FaultProxy,
    dir: &Path,
    grants: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let path = dir.join("grants.yaml");
    std::fs::write(&path, format!("{}{grants}", support::accounts_yaml())).unwrap();
    let mut all = vec!["apply", "-o", "json", "-f", path.to_str().unwrap()];
    all.extend_from_slice(args);
    let mut command = support::xacct_command(moto, &all);
    command.env("AWS_ENDPOINT_URL", &proxy.endpoint);
    command.envs(env.iter().copied());
    command.output().expect("xacct runs")
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "JSON report ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The Ready reason and message `report` gives the grant `apps/name`.
fn ready(report: &Value, name: &str) -> (String, String) {
    let grant = report["grants"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["name"] == format!("apps/{name}")))
        .unwrap_or_else(|| panic!("apps/{name} in {report}"));
    let c = &grant["conditions"][0];
    (
        c["reason"].as_str().unwrap_or_default().into(),
        c["message"].as_str().unwrap_or_default().into(),
    )
}

fn writes<'a>(seen: &'a [Seen], operation: &str) -> Vec<&'a Seen> {
    seen.iter().filter(|s| s.operation == operation).collect()
}

async fn bucket_policy(data: &Clients) -> String {
    data.s3
        .get_bucket_policy()
        .bucket("lake")
        .send()
        .await
        .expect("a policy")
        .policy
        .unwrap_or_default()
}

const LAKE: &str = "{account: data-prod, kind: S3Bucket, name: lake}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_that_appears_converges_in_one_apply_without_holding_back_the_others() {
    let (moto, proxy, data, dir) = rig().await;
    // The role was just created in the grantee account, but IAM has not propagated it yet: S3
    // refuses the first two documents naming it.
    let dev = clients(moto.connector().await.as_ref(), DEV_ACCOUNT).await;
    support::create_role(&dev.iam, "Fresh", "ec2.amazonaws.com").await;
    proxy.refuse_principal("role/Fresh", Some(2));
    let grants =
        grant("steady", LAKE, "role/Steady", "read") + &grant("fresh", LAKE, "role/Fresh", "read");
    let out = apply(
        &moto,
        &proxy,
        dir.path(),
        &grants,
        &["--principal-wait", "1m"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let json = report(&out);
    assert_eq!(ready(&json, "steady").0, "Applied");
    assert_eq!(ready(&json, "fresh").0, "Applied");
    assert!(
        stderr.contains("apps/fresh") && stderr.contains("trying again in"),
        "{stderr}"
    );
    // The grantee account is managed: xacct looked the role up and says it exists.
    assert!(
        stderr.contains("role/Fresh exists in AwsAccount dev: IAM has not made it known"),
        "{stderr}"
    );
    let policy = bucket_policy(&data).await;
    assert!(
        policy.contains("role/Fresh") && policy.contains("role/Steady"),
        "{policy}"
    );

    let seen = proxy.seen();
    let puts = writes(&seen, "PutBucketPolicy");
    let refused: Vec<&&Seen> = puts
        .iter()
        .filter(|s| s.fault == Some(Fault::PrincipalRefused))
        .collect();
    assert_eq!(refused.len(), 2, "{puts:#?}");
    // The first document held both grants; then steady was written alone, before fresh's retry.
    assert!(refused[0].body.contains("role/Steady"));
    let first_accepted = puts
        .iter()
        .find(|s| s.fault.is_none())
        .expect("a write went through");
    assert!(
        first_accepted.body.contains("role/Steady") && !first_accepted.body.contains("role/Fresh"),
        "the other grant is not held back: {}",
        first_accepted.body
    );
    // The retry waited (growing waits, the first of 1 s).
    let last_refusal = refused[1].at;
    let accepted_fresh = puts
        .iter()
        .find(|s| s.fault.is_none() && s.body.contains("role/Fresh"))
        .expect("fresh written");
    assert!(accepted_fresh.at - last_refusal >= Duration::from_millis(900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_that_never_appears_fails_with_principal_not_found_after_the_wait() {
    let (moto, proxy, data, dir) = rig().await;
    proxy.refuse_principal("role/Ghost", None);
    let grants =
        grant("steady", LAKE, "role/Steady", "read") + &grant("ghost", LAKE, "role/Ghost", "read");
    let started = Instant::now();
    let out = apply(
        &moto,
        &proxy,
        dir.path(),
        &grants,
        &["--principal-wait", "4s"],
    );
    let elapsed = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = report(&out);
    assert_eq!(ready(&json, "steady").0, "Applied");
    let (reason, message) = ready(&json, "ghost");
    assert_eq!(reason, "PrincipalNotFound");
    assert!(
        message.contains("arn:aws:iam::111111111111:role/Ghost")
            && message.contains("Invalid principal in policy"),
        "the message names the principal and AWS's words: {message}"
    );
    assert!(
        message.contains("role/Ghost does not exist in AwsAccount dev"),
        "the grantee account is managed: the role was looked up: {message}"
    );
    let policy = bucket_policy(&data).await;
    assert!(
        policy.contains("role/Steady") && !policy.contains("role/Ghost"),
        "{policy}"
    );
    // Tried again while the wait lasted (the batch, ghost alone, then after 1 s and 2 s), then
    // given up: bounded in time.
    let seen = proxy.seen();
    let refused = writes(&seen, "PutBucketPolicy")
        .into_iter()
        .filter(|s| s.fault == Some(Fault::PrincipalRefused))
        .count();
    assert!((3..=5).contains(&refused), "{refused} refused writes");
    assert!(
        elapsed >= Duration::from_secs(3) && elapsed < Duration::from_secs(20),
        "{elapsed:?}"
    );

    // XACCT_PRINCIPAL_WAIT=0s (as the chart sets it): no retry at all (the grant alone once, to
    // tell it from the others).
    proxy.clear();
    let out = apply_with(
        &moto,
        &proxy,
        dir.path(),
        &grants,
        &[],
        &[("XACCT_PRINCIPAL_WAIT", "0s")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(ready(&report(&out), "ghost").0, "PrincipalNotFound");
    let seen = proxy.seen();
    assert_eq!(
        writes(&seen, "PutBucketPolicy").len(),
        2,
        "the document with both grants (steady is converged already: with ghost only), then ghost alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_kms_and_iam_refusals_of_a_new_principal_are_ridden_out_too() {
    let (moto, proxy, data, dir) = rig().await;
    data.ecr
        .create_repository()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    let key = support::create_key(&data.kms).await.key_id;
    support::create_role(&data.iam, "Shared", "ec2.amazonaws.com").await;
    // Each service refuses the first write naming the new role, in its own words.
    proxy.refuse_principal("role/Fresh", Some(3));
    let grants = grant(
        "pulls",
        "{account: data-prod, kind: EcrRepository, name: app}",
        "role/Fresh",
        "pull",
    ) + &grant(
        "decrypts",
        &format!("{{account: data-prod, kind: KmsKey, name: {key}}}"),
        "role/Fresh",
        "decrypt",
    ) + &grant(
        "assumes",
        "{account: data-prod, kind: IamRole, name: Shared}",
        "role/Fresh",
        "assume",
    );
    let out = apply(
        &moto,
        &proxy,
        dir.path(),
        &grants,
        &["--principal-wait", "1m"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = report(&out);
    for name in ["pulls", "decrypts", "assumes"] {
        assert_eq!(ready(&json, name).0, "Applied", "{name}");
    }
    let seen = proxy.seen();
    for (operation, code) in [
        ("SetRepositoryPolicy", "InvalidParameterException"),
        ("PutKeyPolicy", "MalformedPolicyDocumentException"),
        ("UpdateAssumeRolePolicy", "MalformedPolicyDocument"),
    ] {
        let attempts = writes(&seen, operation);
        assert_eq!(
            attempts
                .iter()
                .map(|s| s.fault.is_some())
                .collect::<Vec<_>>(),
            [true, false],
            "{operation}: refused ({code}) once, then written"
        );
        assert_eq!(attempts[0].status, Some(400));
    }
    assert!(
        support::trust_policy(&data.iam, "Shared")
            .await
            .contains("role/Fresh"),
        "the trust policy names the new role"
    );
}

/// SNS and Secrets Manager name the unknown principal in their refusals: ridden out like the others.
/// SQS says only "Invalid value for the parameter Policy.": xacct cannot tell it from a wrong
/// document, so the queue's write fails `PolicyRejected` in that run (for both grants on it, as any
/// refused document does in one `apply`), the other policies still converge, and the next run
/// writes the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_and_secrets_manager_refusals_are_ridden_out_and_an_sqs_refusal_fails_only_the_queue() {
    let (moto, proxy, data, dir) = rig().await;
    data.sns.create_topic().name("events").send().await.unwrap();
    data.secrets
        .create_secret()
        .name("password")
        .secret_string("not-a-secret")
        .send()
        .await
        .unwrap();
    data.sqs
        .create_queue()
        .queue_name("jobs")
        .send()
        .await
        .unwrap();
    for role in ["role/TopicNew", "role/SecretNew", "role/QueueNew"] {
        proxy.refuse_principal(role, Some(1));
    }
    let grants = grant(
        "publishes",
        "{account: data-prod, kind: SnsTopic, name: events}",
        "role/TopicNew",
        "publish",
    ) + &grant(
        "reads-password",
        "{account: data-prod, kind: Secret, name: password}",
        "role/SecretNew",
        "read",
    ) + &grant(
        "sends",
        "{account: data-prod, kind: SqsQueue, name: jobs}",
        "role/QueueNew",
        "send",
    ) + &grant(
        "old-sends",
        "{account: data-prod, kind: SqsQueue, name: jobs}",
        "role/Known",
        "consume",
    );
    let out = apply(
        &moto,
        &proxy,
        dir.path(),
        &grants,
        &["--principal-wait", "1m"],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = report(&out);
    for name in ["publishes", "reads-password"] {
        assert_eq!(ready(&json, name).0, "Applied", "{name}");
    }
    for name in ["sends", "old-sends"] {
        assert_eq!(ready(&json, name).0, "PolicyRejected", "{name}");
    }
    let seen = proxy.seen();
    for operation in ["SetTopicAttributes", "PutResourcePolicy"] {
        let attempts = writes(&seen, operation);
        assert_eq!(
            attempts
                .iter()
                .map(|s| s.fault.is_some())
                .collect::<Vec<_>>(),
            [true, false],
            "{operation}: refused once, then written"
        );
    }
    // The queue's principal was refused once: the next run writes the queue grant.
    let out = apply(&moto, &proxy, dir.path(), &grants, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = report(&out);
    for name in ["sends", "old-sends"] {
        assert_eq!(ready(&json, name).0, "Applied", "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invocation_role_is_read_back_until_iam_returns_it_before_it_is_used() {
    let (moto, proxy, _data, dir) = rig().await;
    support::create_endpoint(moto.connector().await.as_ref(), DATA_ACCOUNT, "churn").await;
    let role = xacct::engine::invoke_role_name("default", DATA_ACCOUNT, "us-east-1", "churn");
    // IAM does not return the role for its first four reads: the plan's two (it does not exist
    // yet) and two right after it is created.
    proxy.hide_role(&role, 4);
    let grants = grant(
        "invokes",
        "{account: data-prod, kind: SageMakerEndpoint, name: churn}",
        "role/Caller",
        "invoke",
    );
    let out = apply(&moto, &proxy, dir.path(), &grants, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = report(&out);
    assert_eq!(ready(&json, "invokes").0, "Applied");
    let role_arn = json["grants"][0]["roleArn"].as_str().unwrap_or_default();
    assert_eq!(role_arn, format!("arn:aws:iam::{DATA_ACCOUNT}:role/{role}"));

    let seen = proxy.seen();
    let iam: Vec<(&str, Option<u16>)> = seen
        .iter()
        .filter(|s| s.service == "iam" && s.body.contains(&role))
        .map(|s| (s.operation.as_str(), s.status))
        .collect();
    let created = iam
        .iter()
        .position(|(op, _)| *op == "CreateRole")
        .expect("the role was created");
    let after = &iam[created + 1..];
    let position = |wanted: (&str, Option<u16>)| after.iter().position(|x| *x == wanted);
    let found = position(("GetRole", Some(200))).expect("read back");
    assert_eq!(
        after[..found],
        [("GetRole", Some(404)), ("GetRole", Some(404))],
        "read back until IAM returns it: {iam:?}"
    );
    assert!(
        position(("PutRolePolicy", Some(200))).is_some_and(|p| p > found),
        "its policy is written only then: {iam:?}"
    );
    // A second apply finds it: no creation, no waiting.
    proxy.clear();
    let out = apply(&moto, &proxy, dir.path(), &grants, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!proxy.seen().iter().any(|s| s.operation == "CreateRole"));
}
