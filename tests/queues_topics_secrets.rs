//! SQS queue policies, SNS topic policies and Secrets Manager resource policies through the `xacct`
//! binary against the AWS emulator (moto), statement by statement like every other kind: both
//! sides written (the queue's, topic's or secret's policy, and the grantee roles' `xacct` inline
//! policy, with `kms:Decrypt` on a secret's customer managed key), foreign statements kept through
//! apply, drift correction and delete, nothing written when converged, and whether AWS would allow
//! the calls decided on the policies read back by the independent IAM evaluator.
//!
//! moto enforces no policy size limit nor SQS's count quotas, and ignores `BlockPublicPolicy` (xacct
//! sets it on every `PutResourcePolicy`); xacct's own checks run before any write, as for every kind.

mod support;

use serde_json::{Value, json};
use support::fixtures::{AccountFixture, GrantFixture};
use support::iam_eval::{NamedPolicy, Request, assert_decisions, identity_policies, role_session};
use support::{
    Clients, DATA_ACCOUNT, DEV_ACCOUNT, Moto, clients, create_key, create_role, grant_reasons,
    json_report, policy_statements, run_xacct, run_xacct_ok, write_manifest, xacct_statements,
};

fn foreign(principal: &str, action: &str, resource: &str) -> Value {
    json!({"Sid": "Console", "Effect": "Allow", "Principal": {"AWS": principal},
           "Action": action, "Resource": resource})
}

fn document(statements: &[Value]) -> String {
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

const QUEUE: &str = "jobs";
const TOPIC: &str = "events";
const SECRET: &str = "db-password";

fn queue_arn() -> String {
    format!("arn:aws:sqs:us-east-1:{DATA_ACCOUNT}:{QUEUE}")
}

fn topic_arn() -> String {
    format!("arn:aws:sns:us-east-1:{DATA_ACCOUNT}:{TOPIC}")
}

async fn queue_url(data: &Clients) -> String {
    data.sqs
        .get_queue_url()
        .queue_name(QUEUE)
        .send()
        .await
        .expect("the queue")
        .queue_url
        .unwrap_or_default()
}

/// Creates the queue with a policy holding `statement`.
async fn create_queue(data: &Clients, statement: &Value) {
    data.sqs
        .create_queue()
        .queue_name(QUEUE)
        .send()
        .await
        .expect("queue");
    set_queue_policy(data, statement).await;
}

/// Sets the queue's policy to one holding `statement` alone.
async fn set_queue_policy(data: &Clients, statement: &Value) {
    data.sqs
        .set_queue_attributes()
        .queue_url(queue_url(data).await)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::Policy,
            document(std::slice::from_ref(statement)),
        )
        .send()
        .await
        .expect("the queue's policy");
}

async fn queue_policy(data: &Clients) -> String {
    let out = data
        .sqs
        .get_queue_attributes()
        .queue_url(queue_url(data).await)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
        .send()
        .await
        .expect("queue attributes");
    out.attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::Policy)
                .cloned()
        })
        .unwrap_or_default()
}

async fn topic_policy(data: &Clients) -> String {
    data.sns
        .get_topic_attributes()
        .topic_arn(topic_arn())
        .send()
        .await
        .expect("topic attributes")
        .attributes
        .and_then(|a| a.get("Policy").cloned())
        .unwrap_or_default()
}

async fn secret_policy(data: &Clients) -> Option<String> {
    data.secrets
        .get_resource_policy()
        .secret_id(SECRET)
        .send()
        .await
        .expect("the secret's policy")
        .resource_policy
}

/// The grants: a sender and a consumer on the queue, a publisher on the topic, a reader of the
/// secret and the secret's key, all for roles of the managed dev account (both sides written).
fn grants(key_arn: &str) -> Vec<String> {
    let on = |name: &str, kind: &str, resource: &str, access: &str, role: &str| {
        GrantFixture::new("apps", name)
            .resource(kind, resource)
            .manage("dev", &[&format!("role/{role}")])
            .access(&[access])
            .yaml()
    };
    vec![
        on("api-sends-jobs", "SqsQueue", QUEUE, "send", "Api"),
        on(
            "worker-consumes-jobs",
            "SqsQueue",
            QUEUE,
            "consume",
            "Worker",
        ),
        on("api-publishes-events", "SnsTopic", TOPIC, "publish", "Api"),
        on("worker-reads-password", "Secret", SECRET, "read", "Worker"),
        on(
            "worker-decrypts-password",
            "KmsKey",
            key_arn,
            "decrypt",
            "Worker",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_topics_and_secrets_are_shared_statement_by_statement_and_the_access_works() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    let dev = clients(&connector, DEV_ACCOUNT).await;
    for role in ["Api", "Worker", "Bystander"] {
        create_role(&dev.iam, role, "ecs-tasks.amazonaws.com").await;
    }
    let auditor = format!("arn:aws:iam::{DEV_ACCOUNT}:role/Bystander");

    // The queue and the secret hold someone's statement; the topic has SNS's default policy.
    let queue_foreign = foreign(&auditor, "sqs:GetQueueAttributes", &queue_arn());
    create_queue(&data, &queue_foreign).await;
    data.sns
        .create_topic()
        .name(TOPIC)
        .send()
        .await
        .expect("topic");
    let default_topic_policy = policy_statements(&topic_policy(&data).await);
    assert!(
        !default_topic_policy.is_empty(),
        "SNS writes a default policy"
    );
    let key = create_key(&data.kms).await;
    let key_arn = key.arn().unwrap_or_default().to_string();
    let secret_arn = data
        .secrets
        .create_secret()
        .name(SECRET)
        .secret_string("not-a-real-password")
        .kms_key_id(&key_arn)
        .send()
        .await
        .expect("secret")
        .arn
        .unwrap_or_default();
    let secret_foreign = foreign(&auditor, "secretsmanager:DescribeSecret", "*");
    data.secrets
        .put_resource_policy()
        .secret_id(SECRET)
        .resource_policy(document(std::slice::from_ref(&secret_foreign)))
        .send()
        .await
        .expect("foreign secret policy");

    let dir = tempfile::tempdir().expect("a temporary directory");
    let accounts = format!(
        "{}{}",
        AccountFixture::data_prod().yaml(),
        AccountFixture::dev().yaml()
    );
    let manifest = write_manifest(
        dir.path(),
        "all.yaml",
        &[vec![accounts.clone()], grants(&key_arn)].concat(),
    );

    // The plan notes the secret's key.
    let plan = run_xacct(&moto, &["plan", "-f", &manifest]);
    let plan_text = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(2), "{plan_text}");
    assert!(
        plan_text.contains(&format!(
            "the secret is encrypted with the KMS key {key_arn}"
        )),
        "{plan_text}"
    );

    let out = run_xacct(&moto, &["apply", "-f", &manifest, "-o", "json"]);
    let applied = json_report(&out);
    assert_eq!(out.status.code(), Some(0), "{applied:#}");
    assert!(
        grant_reasons(&applied).iter().all(|(_, r)| r == "Applied"),
        "{:?}",
        grant_reasons(&applied)
    );

    // The queue: the foreign statement, and the two grants' (different actions: two statements)
    // naming the queue's ARN.
    let policy = queue_policy(&data).await;
    assert!(
        policy_statements(&policy).contains(&queue_foreign),
        "{policy}"
    );
    let queue_ours = xacct_statements(&policy_statements(&policy));
    assert_eq!(queue_ours.len(), 2, "{policy}");
    assert!(
        queue_ours
            .iter()
            .all(|s| s["Resource"] == json!(queue_arn()))
    );
    // The topic: SNS's default statements as they were, and the publisher's.
    let policy = topic_policy(&data).await;
    for s in &default_topic_policy {
        assert!(policy_statements(&policy).contains(s), "{policy}");
    }
    let topic_ours = xacct_statements(&policy_statements(&policy));
    assert_eq!(topic_ours.len(), 1, "{policy}");
    assert_eq!(topic_ours[0]["Action"], json!("sns:Publish"));
    // The secret: the foreign statement and the reader's, on `*` (the secret itself).
    let policy = secret_policy(&data).await.expect("a secret policy");
    assert!(
        policy_statements(&policy).contains(&secret_foreign),
        "{policy}"
    );
    assert_eq!(
        xacct_statements(&policy_statements(&policy)).len(),
        1,
        "{policy}"
    );
    assert_eq!(
        xacct_statements(&policy_statements(&policy))[0]["Resource"],
        json!("*")
    );

    // Whether AWS would allow it: both sides, read back from the emulator.
    let api = format!("arn:aws:iam::{DEV_ACCOUNT}:role/Api");
    let worker = format!("arn:aws:iam::{DEV_ACCOUNT}:role/Worker");
    let everything = NamedPolicy {
        name: "everything".into(),
        policy: document(&[json!({"Effect": "Allow", "Action": "*", "Resource": "*"})]),
    };
    let requests = async |after_delete: bool| {
        let (queue, topic, secret, key) = (
            queue_policy(&data).await,
            topic_policy(&data).await,
            secret_policy(&data).await,
            support::key_policy(&data.kms, key.key_id()).await,
        );
        let api_policies = identity_policies(&dev.iam, &api).await;
        let worker_policies = identity_policies(&dev.iam, &worker).await;
        let call = |label: &str, who: &str, action: &str, resource: &str, policy: Option<&str>| {
            Request::new(
                label,
                role_session(who, "task").expect("a role ARN"),
                action,
                resource,
                DATA_ACCOUNT,
            )
            .resource_policy(policy)
        };
        let granted = !after_delete;
        vec![
            (
                call(
                    "api sends",
                    &api,
                    "sqs:SendMessage",
                    &queue_arn(),
                    Some(&queue),
                )
                .identity(&api_policies),
                granted,
            ),
            (
                call(
                    "worker receives",
                    &worker,
                    "sqs:ReceiveMessage",
                    &queue_arn(),
                    Some(&queue),
                )
                .identity(&worker_policies),
                granted,
            ),
            (
                call(
                    "worker deletes",
                    &worker,
                    "sqs:DeleteMessage",
                    &queue_arn(),
                    Some(&queue),
                )
                .identity(&worker_policies),
                granted,
            ),
            // Sending was not granted to the worker, nor anything to the bystander, even with
            // everything allowed on its own side.
            (
                call(
                    "worker sends",
                    &worker,
                    "sqs:SendMessage",
                    &queue_arn(),
                    Some(&queue),
                )
                .identity(&worker_policies),
                false,
            ),
            (
                call(
                    "bystander sends",
                    &auditor,
                    "sqs:SendMessage",
                    &queue_arn(),
                    Some(&queue),
                )
                .identity(std::slice::from_ref(&everything)),
                false,
            ),
            (
                call(
                    "api purges",
                    &api,
                    "sqs:PurgeQueue",
                    &queue_arn(),
                    Some(&queue),
                )
                .identity(std::slice::from_ref(&everything)),
                false,
            ),
            (
                call(
                    "api publishes",
                    &api,
                    "sns:Publish",
                    &topic_arn(),
                    Some(&topic),
                )
                .identity(&api_policies),
                granted,
            ),
            (
                call(
                    "worker publishes",
                    &worker,
                    "sns:Publish",
                    &topic_arn(),
                    Some(&topic),
                )
                .identity(std::slice::from_ref(&everything)),
                false,
            ),
            (
                call(
                    "worker reads the secret",
                    &worker,
                    "secretsmanager:GetSecretValue",
                    &secret_arn,
                    secret.as_deref(),
                )
                .identity(&worker_policies),
                granted,
            ),
            (
                call(
                    "worker decrypts it",
                    &worker,
                    "kms:Decrypt",
                    &key_arn,
                    Some(&key),
                )
                .identity(&worker_policies),
                granted,
            ),
            (
                call(
                    "api reads the secret",
                    &api,
                    "secretsmanager:GetSecretValue",
                    &secret_arn,
                    secret.as_deref(),
                )
                .identity(std::slice::from_ref(&everything)),
                false,
            ),
            (
                call(
                    "worker rotates it",
                    &worker,
                    "secretsmanager:PutSecretValue",
                    &secret_arn,
                    secret.as_deref(),
                )
                .identity(std::slice::from_ref(&everything)),
                false,
            ),
        ]
    };
    assert_decisions(&requests(false).await);

    // Converged: nothing to write.
    let again = json_report(&run_xacct(&moto, &["apply", "-f", &manifest, "-o", "json"]));
    assert!(
        grant_reasons(&again).iter().all(|(_, r)| r == "Converged"),
        "{:?}",
        grant_reasons(&again)
    );

    // Drift: the queue's statements removed by hand are written back, the foreign one kept.
    set_queue_policy(&data, &queue_foreign).await;
    let corrected = json_report(&run_xacct(&moto, &["apply", "-f", &manifest, "-o", "json"]));
    let fixed: Vec<(String, String)> = grant_reasons(&corrected)
        .into_iter()
        .filter(|(_, r)| r == "Applied")
        .collect();
    assert_eq!(fixed.len(), 2, "the two queue grants: {fixed:?}");
    assert_eq!(
        xacct_statements(&policy_statements(&queue_policy(&data).await)).len(),
        2
    );

    // Delete: only what was there before.
    run_xacct_ok(&moto, &["delete", "-f", &manifest]);
    assert_eq!(
        policy_statements(&queue_policy(&data).await),
        vec![queue_foreign]
    );
    assert_eq!(
        policy_statements(&topic_policy(&data).await),
        default_topic_policy
    );
    assert_eq!(
        policy_statements(&secret_policy(&data).await.unwrap_or_default()),
        vec![secret_foreign]
    );
    assert_decisions(&requests(true).await);
}

/// SQS's count quotas are checked before writing (moto enforces none of them; AWS refuses a queue
/// policy naming more than 50 principals). The queue holds someone's statement naming one
/// principal; 50 grants for roles of 50 other accounts, compacted into one statement, would make
/// 51: the newest is left out with `PolicyTooLarge` saying which quota, the 49 others are written
/// with the foreign statement kept, and the written policy names 50 principals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_policy_never_names_more_principals_than_sqs_allows() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    let queue_foreign = foreign(
        &format!("arn:aws:iam::{DEV_ACCOUNT}:root"),
        "sqs:GetQueueAttributes",
        &queue_arn(),
    );
    create_queue(&data, &queue_foreign).await;

    let grants: Vec<String> = (0..50)
        .map(|i| {
            GrantFixture::new("apps", &format!("sender-{i:02}"))
                .resource("SqsQueue", QUEUE)
                .grantee_id(&format!("{}", 300_000_000_000u64 + i))
                .access(&["send"])
                .yaml()
        })
        .collect();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let manifest = write_manifest(
        dir.path(),
        "senders.yaml",
        &[vec![AccountFixture::data_prod().yaml()], grants].concat(),
    );
    let out = run_xacct(&moto, &["apply", "-f", &manifest, "-o", "json"]);
    let report = json_report(&out);
    assert_ne!(out.status.code(), Some(0), "{report:#}");
    let reasons = grant_reasons(&report);
    let refused: Vec<&(String, String)> = reasons.iter().filter(|(_, r)| r != "Applied").collect();
    assert_eq!(
        refused,
        [&("apps/sender-49".to_string(), "PolicyTooLarge".to_string())],
        "{reasons:?}"
    );
    let message = report["grants"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["name"] == "apps/sender-49")
        .map(|g| g.to_string())
        .unwrap_or_default();
    assert!(
        message.contains(&format!(
            "the policy of {} would have 51 principals, over the limit of 50; nothing was written",
            queue_arn()
        )),
        "{message}"
    );

    let policy = queue_policy(&data).await;
    let statements = policy_statements(&policy);
    assert!(statements.contains(&queue_foreign), "{policy}");
    let principals: std::collections::BTreeSet<String> = statements
        .iter()
        .flat_map(|s| match &s["Principal"]["AWS"] {
            Value::Array(list) => list
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
            Value::String(one) => vec![one.clone()],
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(principals.len(), 50, "{policy}");
    assert!(
        !principals.iter().any(|p| p.contains("300000000049")),
        "{policy}"
    );
}
