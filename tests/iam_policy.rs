//! `xacct iam-policy` against the calls xacct really makes: every grant resource kind's plan, apply
//! and delete, and RDS snapshot sharing (encrypted instance and cluster snapshots, both KMS modes,
//! copies of automated snapshots), run against the AWS emulator (moto) through the library, every
//! SDK operation recorded by the connector's call log is mapped to the IAM action that authorizes
//! it, and the printed permissions policy must allow each one on the resources it was made on, and
//! allow nothing the code does not call. An AWS call added to src/aws without its action in the
//! table of src/cli/iam_policy.rs fails here.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};
use std::sync::Arc;

use regex::Regex;
use serde_json::{Value, json};
use support::fixtures::grant_yaml;
use support::{DATA_ACCOUNT, DEV_ACCOUNT, Moto, access, accounts_yaml, clients, manifests};
use xacct::aws::{ApiCall, AwsPolicies, AwsSnapshots};
use xacct::engine::{Engine, EngineSettings, Operation, ShareInput, ShareReport};

/// The controller's own role in these tests (moto's default account is the tool's own).
const CONTROLLER: &str = "arn:aws:iam::123456789012:role/xacct-controller";

/// What authorizes an AWS operation xacct makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Authorization {
    /// This action in the permissions policy of the role xacct assumes in the managed account.
    ManagedRole(&'static str),
    /// This action, and the others AWS asks of the caller for the same call (on other resources).
    ManagedRoleWith(&'static str, &'static [&'static str]),
    /// Made with the controller's own credentials to assume the managed role: allowed by that
    /// role's trust policy (the second document), not by its permissions policy.
    TrustPolicy,
    /// Needs no permission at all.
    Nothing,
}

/// Every AWS operation xacct makes, as the SDK names it (service, operation), and what authorizes
/// it (AWS Service Authorization Reference). An operation missing here fails the test: add it with
/// the action AWS really checks, which is not always the operation's name (S3's HeadBucket is
/// authorized by s3:ListBucket, for one), and add that action to src/cli/iam_policy.rs.
const OPERATIONS: &[(&str, &str, Authorization)] = &[
    (
        "S3",
        "GetBucketPolicy",
        Authorization::ManagedRole("s3:GetBucketPolicy"),
    ),
    (
        "S3",
        "PutBucketPolicy",
        Authorization::ManagedRole("s3:PutBucketPolicy"),
    ),
    (
        "S3",
        "DeleteBucketPolicy",
        Authorization::ManagedRole("s3:DeleteBucketPolicy"),
    ),
    (
        "ECR",
        "GetRepositoryPolicy",
        Authorization::ManagedRole("ecr:GetRepositoryPolicy"),
    ),
    (
        "ECR",
        "SetRepositoryPolicy",
        Authorization::ManagedRole("ecr:SetRepositoryPolicy"),
    ),
    (
        "ECR",
        "DeleteRepositoryPolicy",
        Authorization::ManagedRole("ecr:DeleteRepositoryPolicy"),
    ),
    (
        "KMS",
        "DescribeKey",
        Authorization::ManagedRole("kms:DescribeKey"),
    ),
    (
        "KMS",
        "GetKeyPolicy",
        Authorization::ManagedRole("kms:GetKeyPolicy"),
    ),
    (
        "KMS",
        "PutKeyPolicy",
        Authorization::ManagedRole("kms:PutKeyPolicy"),
    ),
    (
        "KMS",
        "ListGrants",
        Authorization::ManagedRole("kms:ListGrants"),
    ),
    (
        "KMS",
        "CreateGrant",
        Authorization::ManagedRole("kms:CreateGrant"),
    ),
    (
        "KMS",
        "RevokeGrant",
        Authorization::ManagedRole("kms:RevokeGrant"),
    ),
    ("IAM", "GetRole", Authorization::ManagedRole("iam:GetRole")),
    (
        "IAM",
        "UpdateAssumeRolePolicy",
        Authorization::ManagedRole("iam:UpdateAssumeRolePolicy"),
    ),
    // "To create a role with tags, you must have iam:CreateRole and iam:TagRole" (IAM User Guide,
    // Permissions required to tag IAM entities).
    (
        "IAM",
        "CreateRole",
        Authorization::ManagedRoleWith("iam:CreateRole", &["iam:TagRole"]),
    ),
    (
        "IAM",
        "DeleteRole",
        Authorization::ManagedRole("iam:DeleteRole"),
    ),
    (
        "IAM",
        "GetRolePolicy",
        Authorization::ManagedRole("iam:GetRolePolicy"),
    ),
    (
        "IAM",
        "PutRolePolicy",
        Authorization::ManagedRole("iam:PutRolePolicy"),
    ),
    (
        "IAM",
        "DeleteRolePolicy",
        Authorization::ManagedRole("iam:DeleteRolePolicy"),
    ),
    (
        "IAM",
        "ListRolePolicies",
        Authorization::ManagedRole("iam:ListRolePolicies"),
    ),
    (
        "IAM",
        "ListAttachedRolePolicies",
        Authorization::ManagedRole("iam:ListAttachedRolePolicies"),
    ),
    (
        "IAM",
        "ListInstanceProfilesForRole",
        Authorization::ManagedRole("iam:ListInstanceProfilesForRole"),
    ),
    ("IAM", "GetUser", Authorization::ManagedRole("iam:GetUser")),
    (
        "IAM",
        "GetUserPolicy",
        Authorization::ManagedRole("iam:GetUserPolicy"),
    ),
    (
        "IAM",
        "PutUserPolicy",
        Authorization::ManagedRole("iam:PutUserPolicy"),
    ),
    (
        "IAM",
        "DeleteUserPolicy",
        Authorization::ManagedRole("iam:DeleteUserPolicy"),
    ),
    (
        "IAM",
        "ListUserPolicies",
        Authorization::ManagedRole("iam:ListUserPolicies"),
    ),
    (
        "IAM",
        "GetInstanceProfile",
        Authorization::ManagedRole("iam:GetInstanceProfile"),
    ),
    (
        "S3",
        "GetBucketEncryption",
        Authorization::ManagedRole("s3:GetEncryptionConfiguration"),
    ),
    (
        "S3",
        "ListBuckets",
        Authorization::ManagedRole("s3:ListAllMyBuckets"),
    ),
    (
        "ECR",
        "DescribeRepositories",
        Authorization::ManagedRole("ecr:DescribeRepositories"),
    ),
    (
        "KMS",
        "ListKeys",
        Authorization::ManagedRole("kms:ListKeys"),
    ),
    (
        "IAM",
        "ListRoles",
        Authorization::ManagedRole("iam:ListRoles"),
    ),
    (
        "IAM",
        "ListUsers",
        Authorization::ManagedRole("iam:ListUsers"),
    ),
    (
        "SageMaker",
        "DescribeEndpoint",
        Authorization::ManagedRole("sagemaker:DescribeEndpoint"),
    ),
    (
        "RDS",
        "DescribeDBSnapshots",
        Authorization::ManagedRole("rds:DescribeDBSnapshots"),
    ),
    (
        "RDS",
        "DescribeDBClusterSnapshots",
        Authorization::ManagedRole("rds:DescribeDBClusterSnapshots"),
    ),
    (
        "RDS",
        "DescribeDBSnapshotAttributes",
        Authorization::ManagedRole("rds:DescribeDBSnapshotAttributes"),
    ),
    (
        "RDS",
        "DescribeDBClusterSnapshotAttributes",
        Authorization::ManagedRole("rds:DescribeDBClusterSnapshotAttributes"),
    ),
    (
        "RDS",
        "ModifyDBSnapshotAttribute",
        Authorization::ManagedRole("rds:ModifyDBSnapshotAttribute"),
    ),
    (
        "RDS",
        "ModifyDBClusterSnapshotAttribute",
        Authorization::ManagedRole("rds:ModifyDBClusterSnapshotAttribute"),
    ),
    (
        "RDS",
        "ListTagsForResource",
        Authorization::ManagedRole("rds:ListTagsForResource"),
    ),
    (
        "RDS",
        "AddTagsToResource",
        Authorization::ManagedRole("rds:AddTagsToResource"),
    ),
    (
        "RDS",
        "RemoveTagsFromResource",
        Authorization::ManagedRole("rds:RemoveTagsFromResource"),
    ),
    // xacct always copies with a customer managed key (spec.copyForSharing.kmsKeyId): "To create an
    // RDS resource using a customer managed key, a user must have permissions to call
    // kms:CreateGrant and kms:DescribeKey on the customer managed key" (RDS User Guide, AWS KMS key
    // management).
    (
        "RDS",
        "CopyDBSnapshot",
        Authorization::ManagedRoleWith(
            "rds:CopyDBSnapshot",
            &["kms:CreateGrant", "kms:DescribeKey"],
        ),
    ),
    (
        "RDS",
        "CopyDBClusterSnapshot",
        Authorization::ManagedRoleWith(
            "rds:CopyDBClusterSnapshot",
            &["kms:CreateGrant", "kms:DescribeKey"],
        ),
    ),
    (
        "SQS",
        "GetQueueUrl",
        Authorization::ManagedRole("sqs:GetQueueUrl"),
    ),
    (
        "SQS",
        "GetQueueAttributes",
        Authorization::ManagedRole("sqs:GetQueueAttributes"),
    ),
    (
        "SQS",
        "SetQueueAttributes",
        Authorization::ManagedRole("sqs:SetQueueAttributes"),
    ),
    (
        "SNS",
        "GetTopicAttributes",
        Authorization::ManagedRole("sns:GetTopicAttributes"),
    ),
    (
        "SNS",
        "SetTopicAttributes",
        Authorization::ManagedRole("sns:SetTopicAttributes"),
    ),
    (
        "Secrets Manager",
        "DescribeSecret",
        Authorization::ManagedRole("secretsmanager:DescribeSecret"),
    ),
    (
        "Secrets Manager",
        "GetResourcePolicy",
        Authorization::ManagedRole("secretsmanager:GetResourcePolicy"),
    ),
    (
        "Secrets Manager",
        "PutResourcePolicy",
        Authorization::ManagedRole("secretsmanager:PutResourcePolicy"),
    ),
    (
        "Secrets Manager",
        "DeleteResourcePolicy",
        Authorization::ManagedRole("secretsmanager:DeleteResourcePolicy"),
    ),
    (
        "Lambda",
        "GetFunction",
        Authorization::ManagedRole("lambda:GetFunction"),
    ),
    (
        "Lambda",
        "GetPolicy",
        Authorization::ManagedRole("lambda:GetPolicy"),
    ),
    (
        "Lambda",
        "AddPermission",
        Authorization::ManagedRole("lambda:AddPermission"),
    ),
    (
        "Lambda",
        "RemovePermission",
        Authorization::ManagedRole("lambda:RemovePermission"),
    ),
    (
        "Lambda",
        "ListFunctions",
        Authorization::ManagedRole("lambda:ListFunctions"),
    ),
    (
        "EventBridge",
        "DescribeEventBus",
        Authorization::ManagedRole("events:DescribeEventBus"),
    ),
    (
        "EventBridge",
        "PutPermission",
        Authorization::ManagedRole("events:PutPermission"),
    ),
    (
        "EventBridge",
        "RemovePermission",
        Authorization::ManagedRole("events:RemovePermission"),
    ),
    (
        "EventBridge",
        "ListEventBuses",
        Authorization::ManagedRole("events:ListEventBuses"),
    ),
    (
        "SQS",
        "ListQueues",
        Authorization::ManagedRole("sqs:ListQueues"),
    ),
    (
        "SNS",
        "ListTopics",
        Authorization::ManagedRole("sns:ListTopics"),
    ),
    (
        "Secrets Manager",
        "ListSecrets",
        Authorization::ManagedRole("secretsmanager:ListSecrets"),
    ),
    ("STS", "AssumeRole", Authorization::TrustPolicy),
    // "No permissions are required to perform this operation" (STS API reference): even an
    // explicit Deny of sts:GetCallerIdentity does not stop it.
    ("STS", "GetCallerIdentity", Authorization::Nothing),
];

fn authorization(call: &ApiCall) -> Authorization {
    OPERATIONS
        .iter()
        .find(|(service, operation, _)| *service == call.service && *operation == call.operation)
        .map(|(_, _, a)| *a)
        .unwrap_or_else(|| {
            panic!(
                "xacct called {}/{}, which this test does not know: add it to OPERATIONS with the IAM action that authorizes it, and that action to the table in src/cli/iam_policy.rs",
                call.service, call.operation
            )
        })
}

fn xacct(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xacct"))
        .args(args)
        // iam-policy makes no AWS call: it must work without credentials or a region.
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("xacct runs")
}

/// `xacct iam-policy ARGS -o json`, parsed.
fn iam_policy(args: &[&str]) -> Value {
    let mut all = vec!["iam-policy", "-o", "json"];
    all.extend_from_slice(args);
    let out = xacct(&all);
    assert!(
        out.status.success(),
        "xacct {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("iam-policy -o json prints JSON")
}

fn as_list(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// An IAM wildcard pattern (`*`, `?`) as a regex; actions compare without case, ARNs with.
fn wildcard(pattern: &str, ignore_case: bool) -> Regex {
    let body = regex::escape(pattern)
        .replace(r"\*", ".*")
        .replace(r"\?", ".");
    let flags = if ignore_case { "(?i)" } else { "" };
    Regex::new(&format!("{flags}^{body}$")).unwrap()
}

/// Whether an identity policy allows `action` on `resource`, as IAM evaluates one policy: some
/// Allow statement matches and no Deny statement does (an explicit Deny wins). Only what `xacct
/// iam-policy` writes is understood (Allow and Deny statements with Action and Resource); anything
/// else fails the test rather than being guessed at.
fn allows(policy: &Value, action: &str, resource: &str) -> bool {
    let matching = |effect: &str| {
        policy["Statement"].as_array().unwrap().iter().any(|s| {
            let keys: BTreeSet<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
            assert!(
                keys.is_subset(&BTreeSet::from(["Sid", "Effect", "Action", "Resource"])),
                "this check does not evaluate {keys:?}: {s}"
            );
            assert!(s["Effect"] == "Allow" || s["Effect"] == "Deny", "{s}");
            s["Effect"] == effect
                && as_list(&s["Action"])
                    .iter()
                    .any(|a| wildcard(a, true).is_match(action))
                && as_list(&s["Resource"])
                    .iter()
                    .any(|r| wildcard(r, false).is_match(resource))
        })
    };
    matching("Allow") && !matching("Deny")
}

/// The actions the policy's Allow statements name.
fn granted_actions(policy: &Value) -> BTreeSet<String> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| as_list(&s["Action"]))
        .map(str::to_string)
        .collect()
}

/// Whether a trust policy lets `principal` call sts:AssumeRole (with `external_id`, if required).
fn trust_allows(policy: &Value, principal: &str, external_id: Option<&str>) -> bool {
    policy["Statement"].as_array().unwrap().iter().any(|s| {
        s["Effect"] == "Allow"
            && as_list(&s["Principal"]["AWS"]).contains(&principal)
            && as_list(&s["Action"]).contains(&"sts:AssumeRole")
            && match s.get("Condition") {
                None => true,
                Some(c) => {
                    assert_eq!(
                        c.as_object().unwrap().len(),
                        1,
                        "only StringEquals sts:ExternalId is understood: {c}"
                    );
                    external_id.is_some_and(|id| c["StringEquals"]["sts:ExternalId"] == json!(id))
                }
            }
    })
}

/// Runs a grant through everything the controller and the CLI do with it: the account check,
/// plan, apply, a second apply (converged: reads only), plan of a delete, and delete. Returns
/// every AWS call made, on a connector of its own so that nothing else is counted.
async fn exercise(moto: &Moto, grant_yaml: &str) -> BTreeMap<ApiCall, u64> {
    let connector = moto.connector().await;
    let (accounts, grants) = manifests(&format!("{}{grant_yaml}", accounts_yaml()));
    let engine = Engine::new(
        Arc::new(AwsPolicies::new(connector.clone())),
        EngineSettings::default(),
    );
    // What the controller does for every AwsAccount: AssumeRole, then GetCallerIdentity.
    connector
        .verify(&access("data-prod", DATA_ACCOUNT))
        .await
        .expect("the account is reachable");
    for (operation, dry_run) in [
        (Operation::Apply, true),
        (Operation::Apply, false),
        (Operation::Apply, false),
        (Operation::Delete, true),
        (Operation::Delete, false),
    ] {
        let report = engine.run(&accounts, &grants, operation, dry_run).await;
        assert!(
            !report.has_errors(),
            "{operation:?} (dry run {dry_run}): {}",
            serde_json::to_string_pretty(&report).unwrap()
        );
    }
    connector.calls().snapshot()
}

#[tokio::test]
async fn the_printed_policy_allows_every_call_xacct_makes_and_nothing_more() {
    let moto = Moto::start();
    let setup = moto.connector().await;
    let data = clients(&setup, DATA_ACCOUNT).await;

    data.s3
        .create_bucket()
        .bucket("iam-policy-lake")
        .send()
        .await
        .expect("create bucket");
    data.ecr
        .create_repository()
        .repository_name("team/app")
        .send()
        .await
        .expect("create repository");
    let key = support::create_key(&data.kms).await;
    data.kms
        .create_alias()
        .alias_name("alias/iam-policy-lake")
        .target_key_id(key.key_id())
        .send()
        .await
        .expect("alias");
    data.iam
        .create_role()
        .role_name("SharedReadOnly")
        .assume_role_policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
                .to_string(),
        )
        .send()
        .await
        .expect("create role");
    data.sqs
        .create_queue()
        .queue_name("iam-policy-jobs")
        .send()
        .await
        .expect("create queue");
    let topic = data
        .sns
        .create_topic()
        .name("iam-policy-events")
        .send()
        .await
        .expect("create topic")
        .topic_arn
        .expect("a topic ARN");
    let secret = data
        .secrets
        .create_secret()
        .name("iam-policy-password")
        .secret_string("not-a-real-password")
        .send()
        .await
        .expect("create secret")
        .arn
        .expect("a secret ARN");

    let execution =
        support::create_role(&data.iam, "IamPolicyExecution", "lambda.amazonaws.com").await;
    let function =
        support::create_function(&setup, DATA_ACCOUNT, "iam-policy-resize", &execution).await;

    let bus = support::create_event_bus(&setup, DATA_ACCOUNT, "iam-policy-bus").await;

    // (kind on the command line, the grant, the ARN of the resource its calls act on)
    let kinds = [
        (
            "s3",
            grant_yaml(
                "batch",
                "job-reads-lake",
                &format!(
                    "  resource: {{account: data-prod, kind: S3Bucket, name: iam-policy-lake, prefix: shared/}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [role/BatchJobRole]}}\n  access: [read]"
                ),
            ),
            "arn:aws:s3:::iam-policy-lake".to_string(),
        ),
        (
            "ecr",
            grant_yaml(
                "ci",
                "execution-role-pulls-app",
                &format!(
                    "  resource: {{account: data-prod, kind: EcrRepository, name: team/app}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [role/EcsTaskExecutionRole]}}\n  access: [pull]"
                ),
            ),
            format!("arn:aws:ecr:us-east-1:{DATA_ACCOUNT}:repository/team/app"),
        ),
        (
            "kms",
            grant_yaml(
                "batch",
                "job-decrypts-lake",
                "  resource: {account: data-prod, kind: KmsKey, name: alias/iam-policy-lake}\n  grantee: {account: dev, principals: [role/BatchJobRole]}\n  granteeSide: None\n  access: [decrypt]",
            ),
            key.arn().unwrap().to_string(),
        ),
        (
            "iam",
            grant_yaml(
                "ops",
                "oncall-switches-role",
                &format!(
                    "  resource: {{account: data-prod, kind: IamRole, name: SharedReadOnly}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [role/OnCall]}}\n  access: [assume]\n  externalId: ops-2026"
                ),
            ),
            format!("arn:aws:iam::{DATA_ACCOUNT}:role/SharedReadOnly"),
        ),
        (
            "sqs",
            grant_yaml(
                "apps",
                "api-sends-jobs",
                &format!(
                    "  resource: {{account: data-prod, kind: SqsQueue, name: iam-policy-jobs}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [role/Api]}}\n  access: [send]"
                ),
            ),
            format!("arn:aws:sqs:us-east-1:{DATA_ACCOUNT}:iam-policy-jobs"),
        ),
        (
            "sns",
            grant_yaml(
                "apps",
                "api-publishes-events",
                &format!(
                    "  resource: {{account: data-prod, kind: SnsTopic, name: iam-policy-events}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [role/Api]}}\n  access: [publish]"
                ),
            ),
            topic,
        ),
        (
            "secretsmanager",
            grant_yaml(
                "apps",
                "worker-reads-password",
                &format!(
                    "  resource: {{account: data-prod, kind: Secret, name: iam-policy-password}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [role/Worker]}}\n  access: [read]"
                ),
            ),
            secret,
        ),
        (
            "lambda",
            grant_yaml(
                "apps",
                "api-invokes-resize",
                &format!(
                    "  resource: {{account: data-prod, kind: LambdaFunction, name: iam-policy-resize}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [role/Api]}}\n  access: [invoke]"
                ),
            ),
            function,
        ),
        (
            "events",
            grant_yaml(
                "apps",
                "api-puts-events",
                &format!(
                    "  resource: {{account: data-prod, kind: EventBus, name: iam-policy-bus}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [role/Api]}}\n  access: [putEvents]"
                ),
            ),
            bus,
        ),
    ];

    let mut flows = Vec::new();
    for (kind, grant_yaml, resource) in kinds {
        flows.push(Flow {
            kind,
            calls: exercise(&moto, &grant_yaml).await,
            resources: Box::new(move |_| vec![resource.clone()]),
            exact: true,
        });
    }
    flows.push(rds_flow(&moto).await);
    flows.push(sagemaker_flow(&moto).await);
    flows.push(grantee_side_flow(&moto).await);
    flows.push(gc_flow(&moto).await);

    let everything = iam_policy(&["--controller-role-arn", CONTROLLER]);
    let mut every_granted = BTreeSet::new();
    for Flow {
        kind,
        calls,
        resources,
        exact,
    } in &flows
    {
        let printed = printed_for(kind);
        let permissions = &printed["permissionsPolicy"];

        let mut used = BTreeSet::new();
        let mut assumed = false;
        for call in calls.keys() {
            let actions: Vec<&str> = match authorization(call) {
                Authorization::ManagedRole(action) => vec![action],
                Authorization::ManagedRoleWith(action, also) => std::iter::once(action)
                    .chain(also.iter().copied())
                    .collect(),
                Authorization::TrustPolicy => {
                    assumed = true;
                    assert!(
                        trust_allows(&printed["trustPolicy"], CONTROLLER, None),
                        "{:#}",
                        printed["trustPolicy"]
                    );
                    continue;
                }
                Authorization::Nothing => continue,
            };
            for action in actions {
                for resource in resources(action) {
                    // The default policy holds every kind but the opt-in `gc`.
                    let policies: &[&Value] = if *exact {
                        &[permissions, &everything["permissionsPolicy"]]
                    } else {
                        &[permissions]
                    };
                    for policy in policies {
                        assert!(
                            allows(policy, action, &resource),
                            "{kind}: xacct called {}/{} on {resource}, but the printed policy does not allow {action} there:\n{policy:#}",
                            call.service,
                            call.operation
                        );
                    }
                }
                used.insert(action.to_string());
            }
        }
        assert!(assumed, "{kind}: the managed role was assumed: {calls:?}");
        // Least privilege: the policy for a kind holds exactly the actions its flows call.
        let granted = granted_actions(permissions);
        if *exact {
            assert_eq!(
                granted, used,
                "{kind}: the printed actions (left) and the actions xacct called (right) differ"
            );
            every_granted.extend(granted);
        } else {
            let own = kind.rsplit(',').next().unwrap();
            let own_actions = granted_actions(&printed_for(own)["permissionsPolicy"]);
            assert!(
                own_actions.is_subset(&used),
                "{own}: printed but never called: {:?}",
                own_actions.difference(&used).collect::<Vec<_>>()
            );
        }
    }
    assert!(
        every_granted.contains("kms:DescribeKey"),
        "the alias was resolved"
    );
    assert_eq!(
        granted_actions(&everything["permissionsPolicy"]),
        every_granted,
        "the default policy is the union of the kinds'"
    );
}

/// A SageMaker endpoint grant: the endpoint checked, the invocation role created with its trust
/// and inline policy, then (on delete) its inline policy removed and the role deleted.
async fn sagemaker_flow(moto: &Moto) -> Flow {
    let setup = moto.connector().await;
    let endpoint = support::create_endpoint(&setup, DATA_ACCOUNT, "iam-policy-churn").await;
    let role = format!(
        "arn:aws:iam::{DATA_ACCOUNT}:role/{}",
        xacct::engine::invoke_role_name("default", DATA_ACCOUNT, "us-east-1", "iam-policy-churn")
    );
    let calls = exercise(
        moto,
        &grant_yaml(
            "ml",
            "app-invokes-churn",
            &format!(
                "  resource: {{account: data-prod, kind: SageMakerEndpoint, name: iam-policy-churn}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [role/App]}}\n  access: [invoke]"
            ),
        ),
    )
    .await;
    Flow {
        exact: true,
        kind: "sagemaker",
        calls,
        resources: Box::new(move |action| {
            if action.starts_with("sagemaker:") {
                vec![endpoint.clone()]
            } else {
                vec![role.clone()]
            }
        }),
    }
}

/// An S3 grant with the grantee side: a bucket encrypted with a customer managed key, read by a
/// role, a user and the role of an instance profile of the (managed) grantee account, each given
/// xacct's inline policy, which the delete removes.
async fn grantee_side_flow(moto: &Moto) -> Flow {
    let setup = moto.connector().await;
    let data = clients(&setup, DATA_ACCOUNT).await;
    let dev = clients(&setup, DEV_ACCOUNT).await;
    let key = support::create_key(&data.kms).await;
    let key_arn = key.arn().unwrap().to_string();
    data.s3
        .create_bucket()
        .bucket("iam-policy-secure")
        .send()
        .await
        .expect("create bucket");
    data.s3
        .put_bucket_encryption()
        .bucket("iam-policy-secure")
        .server_side_encryption_configuration(
            aws_sdk_s3::types::ServerSideEncryptionConfiguration::builder()
                .rules(
                    aws_sdk_s3::types::ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            aws_sdk_s3::types::ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                                .kms_master_key_id(key.key_id())
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("bucket encryption");
    let job_role =
        support::create_role(&dev.iam, "IamPolicyJobRole", "ecs-tasks.amazonaws.com").await;
    let instance_role =
        support::create_role(&dev.iam, "IamPolicyInstanceRole", "ec2.amazonaws.com").await;
    dev.iam
        .create_instance_profile()
        .instance_profile_name("IamPolicyProfile")
        .send()
        .await
        .unwrap();
    dev.iam
        .add_role_to_instance_profile()
        .instance_profile_name("IamPolicyProfile")
        .role_name("IamPolicyInstanceRole")
        .send()
        .await
        .unwrap();
    dev.iam
        .create_user()
        .user_name("iam-policy-analyst")
        .send()
        .await
        .unwrap();
    let calls = exercise(
        moto,
        &grant_yaml(
            "batch",
            "secure-lake-readers",
            "  resource: {account: data-prod, kind: S3Bucket, name: iam-policy-secure}\n  grantee: {account: dev, principals: [role/IamPolicyJobRole, user/iam-policy-analyst, instanceProfile/IamPolicyProfile]}\n  access: [read]",
        ),
    )
    .await;
    let user = format!("arn:aws:iam::{DEV_ACCOUNT}:user/iam-policy-analyst");
    let profile = format!("arn:aws:iam::{DEV_ACCOUNT}:instance-profile/IamPolicyProfile");
    Flow {
        exact: true,
        kind: "s3,identity",
        calls,
        resources: Box::new(move |action| match action {
            a if a.starts_with("s3:") => vec!["arn:aws:s3:::iam-policy-secure".to_string()],
            a if a.starts_with("kms:") => vec![key_arn.clone()],
            "iam:GetInstanceProfile" => vec![profile.clone()],
            a if a.contains("User") => vec![user.clone()],
            _ => vec![job_role.clone(), instance_role.clone()],
        }),
    }
}

/// Garbage collection after a grant on each kind of policy disappeared (both sides, a SageMaker
/// invocation role): a dry run, then the collection. It reads and writes with the permissions of
/// the kinds it collects, and lists with `gc`'s own.
async fn gc_flow(moto: &Moto) -> Flow {
    let setup = moto.connector().await;
    let data = clients(&setup, DATA_ACCOUNT).await;
    let dev = clients(&setup, DEV_ACCOUNT).await;
    data.s3
        .create_bucket()
        .bucket("iam-policy-gc")
        .send()
        .await
        .unwrap();
    data.ecr
        .create_repository()
        .repository_name("gc/app")
        .send()
        .await
        .unwrap();
    let key = support::create_key(&data.kms).await;
    support::create_role(&dev.iam, "IamPolicyGcRole", "ecs-tasks.amazonaws.com").await;
    support::create_endpoint(&setup, DATA_ACCOUNT, "iam-policy-gc").await;
    let grants = format!(
        "{}{}{}{}",
        grant_yaml(
            "gc",
            "bucket",
            "  resource: {account: data-prod, kind: S3Bucket, name: iam-policy-gc}\n  grantee: {account: dev, principals: [role/IamPolicyGcRole]}\n  access: [read]"
        ),
        grant_yaml(
            "gc",
            "repository",
            &format!(
                "  resource: {{account: data-prod, kind: EcrRepository, name: gc/app}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\"}}\n  access: [pull]"
            )
        ),
        grant_yaml(
            "gc",
            "key",
            &format!(
                "  resource: {{account: data-prod, kind: KmsKey, name: {}}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\"}}\n  access: [decrypt]",
                key.key_id()
            )
        ),
        grant_yaml(
            "gc",
            "endpoint",
            &format!(
                "  resource: {{account: data-prod, kind: SageMakerEndpoint, name: iam-policy-gc}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\"}}\n  access: [invoke]"
            )
        ),
    );
    let (accounts, inputs) = manifests(&format!("{}{grants}", accounts_yaml()));
    let engine = Engine::new(
        Arc::new(AwsPolicies::new(setup.clone())),
        EngineSettings::default(),
    );
    let applied = engine
        .run(&accounts, &inputs, Operation::Apply, false)
        .await;
    assert!(!applied.has_errors());

    let connector = moto.connector().await;
    let engine = Engine::new(
        Arc::new(AwsPolicies::new(connector.clone())),
        EngineSettings::default(),
    );
    connector
        .verify(&access("data-prod", DATA_ACCOUNT))
        .await
        .expect("the account is reachable");
    let none = BTreeSet::new();
    for dry_run in [true, false] {
        let report = engine.gc(&accounts, &none, &BTreeSet::new(), dry_run).await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(report.statements() >= 6, "{report:?}");
    }
    Flow {
        // The queue, topic and secret of the other flows are in the account too: garbage
        // collection reads their policies.
        kind: "s3,ecr,kms,iam,identity,sagemaker,sqs,sns,secretsmanager,lambda,events,gc",
        calls: connector.calls().snapshot(),
        resources: Box::new(|action| match action {
            "s3:ListAllMyBuckets"
            | "kms:ListKeys"
            | "iam:ListRoles"
            | "iam:ListUsers"
            | "sqs:ListQueues"
            | "sns:ListTopics"
            | "secretsmanager:ListSecrets"
            | "lambda:ListFunctions"
            | "events:ListEventBuses" => {
                vec!["*".to_string()]
            }
            a if a.starts_with("events:") => vec![format!(
                "arn:aws:events:us-east-1:{DATA_ACCOUNT}:event-bus/iam-policy-bus"
            )],
            a if a.starts_with("lambda:") => vec![format!(
                "arn:aws:lambda:us-east-1:{DATA_ACCOUNT}:function:iam-policy-resize"
            )],
            a if a.starts_with("sqs:") => {
                vec![format!(
                    "arn:aws:sqs:us-east-1:{DATA_ACCOUNT}:iam-policy-jobs"
                )]
            }
            a if a.starts_with("sns:") => {
                vec![format!(
                    "arn:aws:sns:us-east-1:{DATA_ACCOUNT}:iam-policy-events"
                )]
            }
            a if a.starts_with("secretsmanager:") => vec![format!(
                "arn:aws:secretsmanager:us-east-1:{DATA_ACCOUNT}:secret:iam-policy-password-AbCdEf"
            )],
            a if a.starts_with("s3:") => vec!["arn:aws:s3:::iam-policy-gc".to_string()],
            a if a.starts_with("ecr:") => {
                vec![format!(
                    "arn:aws:ecr:us-east-1:{DATA_ACCOUNT}:repository/gc/app"
                )]
            }
            a if a.starts_with("kms:") => {
                vec![format!("arn:aws:kms:us-east-1:{DATA_ACCOUNT}:key/k")]
            }
            a if a.contains("User") => vec![format!("arn:aws:iam::{DATA_ACCOUNT}:user/u")],
            _ => vec![format!(
                "arn:aws:iam::{DATA_ACCOUNT}:role/{}",
                xacct::engine::invoke_role_name(
                    "default",
                    DATA_ACCOUNT,
                    "us-east-1",
                    "iam-policy-gc"
                )
            )],
        }),
        exact: false,
    }
}

/// `xacct iam-policy --kinds KIND` for the test's controller role.
fn printed_for(kind: &str) -> Value {
    iam_policy(&["--kinds", kind, "--controller-role-arn", CONTROLLER])
}

/// The ARNs the calls of an action act on, in one flow.
type ResourcesOf = Box<dyn Fn(&str) -> Vec<String>>;

/// One kind's flow: every AWS call it made, and the ARNs each action's calls act on.
struct Flow {
    kind: &'static str,
    calls: BTreeMap<ApiCall, u64>,
    resources: ResourcesOf,
    /// The printed policy holds exactly the actions called; otherwise (a flow needing several
    /// kinds, of which it calls only some actions) only the last kind's actions must all be called.
    exact: bool,
}

fn share(name: &str, spec: Value) -> ShareInput {
    let share = json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "SnapshotShare",
                       "metadata": {"name": name, "namespace": "data"}, "spec": spec});
    ShareInput {
        share: serde_json::from_value(share).expect("valid SnapshotShare"),
        origin: "iam-policy test".into(),
    }
}

/// RDS snapshot sharing, everything the controller and the CLI do with a share: plan, apply, a
/// second apply (converged), plan of a delete, and delete, for
/// - a manual snapshot of an instance encrypted with a customer managed key, kms.mode KeyPolicy
///   (the key policy gets and loses the target accounts' statements);
/// - the same snapshot in another share, kms.mode Grant (KMS grants found, created and revoked);
/// - the newest automated snapshot of that instance, which AWS does not share: copied with
///   copyForSharing's key (CopyDBSnapshot), the copy shared;
/// - a manual snapshot of an encrypted Aurora cluster (KeyPolicy), and the newest automated cluster
///   snapshot copied for sharing (CopyDBClusterSnapshot, Grant mode).
///
/// Moto runs the cluster path too, so no listed action is exempt from the check that it is called.
async fn rds_flow(moto: &Moto) -> Flow {
    let setup = moto.connector().await;
    let config = setup
        .session(&access("setup", DATA_ACCOUNT))
        .await
        .expect("assume role in the emulator");
    let rds = setup.rds_client(&config, "us-east-1");
    let kms = setup.kms_client(&config, "us-east-1");
    let mut keys = Vec::new();
    for _ in 0..2 {
        let key = support::create_key(&kms).await;
        keys.push(key);
    }
    let (snapshot_key, copy_key) = (&keys[0], &keys[1]);
    support::db_instance(
        &rds,
        "orders",
        Some(snapshot_key.key_id()),
        Some("orders-1"),
    )
    .await;
    rds.create_db_cluster()
        .db_cluster_identifier("events")
        .engine("aurora-postgresql")
        .master_username("admin")
        .master_user_password("not-a-secret-1")
        .storage_encrypted(true)
        .kms_key_id(snapshot_key.key_id())
        .send()
        .await
        .expect("create cluster (moto makes its automated snapshot)");
    rds.create_db_cluster_snapshot()
        .db_cluster_identifier("events")
        .db_cluster_snapshot_identifier("events-1")
        .send()
        .await
        .expect("create cluster snapshot");

    let connector = moto.connector().await;
    let (accounts, _) = manifests(&accounts_yaml());
    let engine = Engine::new(
        Arc::new(AwsPolicies::new(connector.clone())),
        EngineSettings::default(),
    )
    .with_snapshots(Arc::new(AwsSnapshots::new(connector.clone())));
    connector
        .verify(&access("data-prod", DATA_ACCOUNT))
        .await
        .expect("the account is reachable");

    let targets = json!([{"accountId": DEV_ACCOUNT}, {"accountId": "444444444444"}]);
    let copy = json!({"kmsKeyId": copy_key.key_id()});
    let shares = [
        share(
            "orders-key-policy",
            json!({"source": {"account": "data-prod", "dbSnapshotIdentifier": "orders-1"}, "targets": targets}),
        ),
        share(
            "orders-grants",
            json!({"source": {"account": "data-prod", "dbSnapshotIdentifier": "orders-1"}, "targets": targets,
                   "kms": {"mode": "Grant"}}),
        ),
        share(
            "orders-automated",
            json!({"source": {"account": "data-prod", "latestOf": {"dbInstanceIdentifier": "orders", "type": "automated"}},
                   "targets": targets, "copyForSharing": copy}),
        ),
        share(
            "events-key-policy",
            json!({"source": {"account": "data-prod", "dbClusterSnapshotIdentifier": "events-1"}, "targets": targets}),
        ),
        share(
            "events-automated",
            json!({"source": {"account": "data-prod", "latestOf": {"dbClusterIdentifier": "events", "type": "automated"}},
                   "targets": targets, "copyForSharing": copy, "kms": {"mode": "Grant"}}),
        ),
    ];
    let mut snapshots = BTreeMap::new(); // share name -> (shared snapshot ARN, copied from)
    for input in &shares {
        let name = input.share.metadata.name.clone().unwrap();
        for (operation, dry_run, expected) in [
            (Operation::Apply, true, "Pending"),
            (Operation::Apply, false, "Shared"),
            (Operation::Apply, false, "Converged"),
            (Operation::Delete, true, "UnsharePending"),
            (Operation::Delete, false, "Unshared"),
        ] {
            let report: ShareReport = engine
                .run_shares(&accounts, std::slice::from_ref(input), operation, dry_run)
                .await
                .remove(0);
            let ready = report.ready().expect("a Ready condition");
            assert_eq!(
                ready.reason,
                expected,
                "{name}: {operation:?} (dry run {dry_run}): {}",
                serde_json::to_string_pretty(&report).unwrap()
            );
            if expected == "Shared" {
                let key_access = if input.share.spec.kms.mode == xacct::api::KmsMode::Grant {
                    "Grant"
                } else {
                    "KeyPolicy"
                };
                assert!(
                    report.targets.iter().all(|t| t.key_access == key_access),
                    "{name}: the snapshot is encrypted: {report:?}"
                );
                snapshots.insert(
                    name.clone(),
                    (
                        report.snapshot_arn.clone().unwrap(),
                        report.copied_from.clone(),
                    ),
                );
            }
        }
    }

    let arn = |share: &str| snapshots[share].0.clone();
    let source = |share: &str| snapshots[share].1.clone().expect("copied");
    let (snapshot, instance_copy, instance_automated) = (
        arn("orders-key-policy"),
        arn("orders-automated"),
        source("orders-automated"),
    );
    let (cluster_snapshot, cluster_copy, cluster_automated) = (
        arn("events-key-policy"),
        arn("events-automated"),
        source("events-automated"),
    );
    for (arn, kind) in [
        (&snapshot, ":snapshot:orders-1"),
        (&instance_copy, ":snapshot:xacct-"),
        (&instance_automated, ":snapshot:rds:orders"),
        (&cluster_snapshot, ":cluster-snapshot:events-1"),
        (&cluster_copy, ":cluster-snapshot:xacct-"),
        (&cluster_automated, ":cluster-snapshot:rds:events"),
    ] {
        assert!(arn.contains(kind), "{arn} is a {kind} ARN");
    }
    let instance = format!("arn:aws:rds:us-east-1:{DATA_ACCOUNT}:db:orders");
    let cluster = format!("arn:aws:rds:us-east-1:{DATA_ACCOUNT}:cluster:events");
    let key_arns: Vec<String> = keys.iter().map(|k| k.arn().unwrap().to_string()).collect();
    let resources = move |action: &str| -> Vec<String> {
        let list = |arns: &[&String]| arns.iter().map(|a| a.to_string()).collect();
        match action {
            // By identifier (the snapshot, or the copy looked for), or by instance or cluster.
            "rds:DescribeDBSnapshots" => list(&[&snapshot, &instance_copy, &instance]),
            "rds:DescribeDBClusterSnapshots" => list(&[&cluster_snapshot, &cluster_copy, &cluster]),
            "rds:DescribeDBSnapshotAttributes" | "rds:ModifyDBSnapshotAttribute" => {
                list(&[&snapshot, &instance_copy])
            }
            "rds:DescribeDBClusterSnapshotAttributes" | "rds:ModifyDBClusterSnapshotAttribute" => {
                list(&[&cluster_snapshot, &cluster_copy])
            }
            "rds:ListTagsForResource" | "rds:AddTagsToResource" | "rds:RemoveTagsFromResource" => {
                list(&[
                    &snapshot,
                    &instance_copy,
                    &instance_automated,
                    &cluster_snapshot,
                    &cluster_copy,
                    &cluster_automated,
                ])
            }
            // The source and the copy: either may be the ARN RDS authorizes the copy on.
            "rds:CopyDBSnapshot" => list(&[&instance_automated, &instance_copy]),
            "rds:CopyDBClusterSnapshot" => list(&[&cluster_automated, &cluster_copy]),
            // The snapshots' key and copyForSharing's.
            kms if kms.starts_with("kms:") => key_arns.clone(),
            other => panic!("the rds flow has no resources for {other}: add them here"),
        }
    };
    Flow {
        exact: true,
        kind: "rds",
        calls: connector.calls().snapshot(),
        resources: Box::new(resources),
    }
}

#[test]
fn kinds_s3_omits_the_other_services() {
    let printed = iam_policy(&["--kinds", "s3"]);
    assert_eq!(printed["kinds"], json!(["s3"]));
    let actions = granted_actions(&printed["permissionsPolicy"]);
    assert!(!actions.is_empty());
    assert!(actions.iter().all(|a| a.starts_with("s3:")), "{actions:?}");
    let text = printed["permissionsPolicy"].to_string();
    for other in ["kms:", "ecr:", "iam:"] {
        assert!(!text.contains(other), "{other} in {text}");
    }

    let two = iam_policy(&["--kinds", "kms,ecr"]);
    assert_eq!(two["kinds"], json!(["ecr", "kms"]));
    let actions = granted_actions(&two["permissionsPolicy"]);
    assert!(actions.contains("kms:DescribeKey") && actions.contains("ecr:SetRepositoryPolicy"));
    assert!(
        actions
            .iter()
            .all(|a| a.starts_with("kms:") || a.starts_with("ecr:"))
    );
}

#[test]
fn the_default_covers_every_kind_with_no_resource_star() {
    let printed = iam_policy(&[]);
    assert_eq!(
        printed["kinds"],
        json!([
            "s3",
            "ecr",
            "kms",
            "iam",
            "rds",
            "sagemaker",
            "sqs",
            "sns",
            "secretsmanager",
            "lambda",
            "events",
            "identity"
        ])
    );
    for statement in printed["permissionsPolicy"]["Statement"]
        .as_array()
        .unwrap()
    {
        assert!(
            as_list(&statement["Resource"]).iter().all(|r| *r != "*"),
            "{statement}"
        );
        assert!(
            statement["Sid"]
                .as_str()
                .unwrap()
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        );
    }
    // Without --controller-role-arn the trust policy names a placeholder, and says so.
    let principal = printed["trustPolicy"]["Statement"][0]["Principal"]["AWS"]
        .as_str()
        .unwrap();
    assert!(principal.contains("PLACEHOLDER"), "{principal}");
    assert!(
        printed["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("placeholder"))
    );
    // Every action is explained.
    for action in granted_actions(&printed["permissionsPolicy"]) {
        assert!(printed["actions"][&action].is_string(), "{action}");
    }
}

#[test]
fn the_trust_policy_requires_the_external_id_when_asked() {
    let printed = iam_policy(&[
        "--controller-role-arn",
        CONTROLLER,
        "--external-id",
        "xacct-2026",
    ]);
    let trust = &printed["trustPolicy"];
    assert_eq!(
        trust["Statement"],
        json!([{
            "Sid": "XacctControllerAssumesThisRole",
            "Effect": "Allow",
            "Principal": {"AWS": CONTROLLER},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "xacct-2026"}}
        }])
    );
    assert!(trust_allows(trust, CONTROLLER, Some("xacct-2026")));
    assert!(!trust_allows(trust, CONTROLLER, None));

    let without = iam_policy(&["--controller-role-arn", CONTROLLER]);
    assert!(
        without["trustPolicy"]["Statement"][0]
            .get("Condition")
            .is_none()
    );

    let bad = xacct(&["iam-policy", "--external-id", "has space"]);
    assert!(!bad.status.success());
    let bad = xacct(&["iam-policy", "--controller-role-arn", "xacct-controller"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ARN of the IAM role"));
}

#[test]
fn the_partition_follows_the_controller_role() {
    let printed = iam_policy(&[
        "--kinds",
        "kms",
        "--controller-role-arn",
        "arn:aws-cn:iam::123456789012:role/xacct-controller",
    ]);
    assert_eq!(
        printed["permissionsPolicy"]["Statement"][0]["Resource"],
        json!("arn:aws-cn:kms:*:*:key/*")
    );
}

#[test]
fn unimplemented_kinds_are_refused_and_rds_is_covered() {
    for kind in ["modelPackageGroup", "s3,modelpackagegroup"] {
        let out = xacct(&["iam-policy", "--kinds", kind]);
        assert!(!out.status.success(), "{kind} accepted");
        assert!(out.stdout.is_empty(), "nothing printed for {kind}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("model package group policies are not implemented"),
            "{stderr}"
        );
    }
    let out = xacct(&["iam-policy", "--kinds", "stepfunctions"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown resource kind"));

    // RDS snapshot sharing is covered (checked against the emulator above), alone or with others.
    for (kinds, expected) in [
        ("rds", json!(["rds"])),
        ("SnapshotShare", json!(["rds"])),
        ("rds,s3", json!(["s3", "rds"])),
    ] {
        let printed = iam_policy(&["--kinds", kinds]);
        assert_eq!(printed["kinds"], expected, "{kinds}");
        let actions = granted_actions(&printed["permissionsPolicy"]);
        assert!(
            actions.contains("rds:ModifyDBSnapshotAttribute")
                && actions.contains("kms:CreateGrant"),
            "{kinds}: {actions:?}"
        );
    }
}

#[test]
fn the_text_output_labels_both_documents() {
    let out = xacct(&[
        "iam-policy",
        "--kinds",
        "s3,iam",
        "--controller-role-arn",
        CONTROLLER,
        "--external-id",
        "xacct-2026",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("# Permissions policy of the role xacct assumes"),
        "{text}"
    );
    assert!(text.contains("\n# Trust policy of that role"), "{text}");

    // The documents are the lines between the `#` labels; each parses, and they are the same
    // documents as the JSON output's.
    let mut documents = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            if !current.trim().is_empty() {
                documents.push(serde_json::from_str::<Value>(&current).expect("a JSON document"));
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    let json = iam_policy(&[
        "--kinds",
        "s3,iam",
        "--controller-role-arn",
        CONTROLLER,
        "--external-id",
        "xacct-2026",
    ]);
    assert_eq!(
        documents,
        vec![
            json["permissionsPolicy"].clone(),
            json["trustPolicy"].clone()
        ]
    );
}

/// The statement of `policy` that names `action` with `effect`.
fn statement_with<'a>(policy: &'a Value, effect: &str, action: &str) -> Option<&'a Value> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Effect"] == effect && as_list(&s["Action"]).contains(&action))
}

#[test]
fn list_roles_and_users_are_allowed_on_star_as_aws_documents_them() {
    let printed = iam_policy(&["--kinds", "gc", "--controller-role-arn", CONTROLLER]);
    let policy = &printed["permissionsPolicy"];
    for action in ["iam:ListRoles", "iam:ListUsers"] {
        // The Service Authorization Reference lists no resource type for them: AWS authorizes
        // them on `*`, so a role/* or user/* Resource would not allow them.
        let statement = statement_with(policy, "Allow", action).unwrap();
        assert_eq!(statement["Resource"], json!("*"), "{statement}");
    }
}

#[test]
fn the_managed_role_may_not_rewrite_itself_or_the_controller_role() {
    // (kinds, an action the kind allows on other roles, such a role)
    let other = format!("arn:aws:iam::{DATA_ACCOUNT}:role/SharedReadOnly");
    let created = format!("arn:aws:iam::{DATA_ACCOUNT}:role/xacct-default-0123456789abcdef");
    let cases = [
        ("iam", "iam:UpdateAssumeRolePolicy", other.as_str()),
        ("identity", "iam:PutRolePolicy", other.as_str()),
        ("identity", "iam:DeleteRolePolicy", other.as_str()),
        ("sagemaker", "iam:UpdateAssumeRolePolicy", created.as_str()),
        ("sagemaker", "iam:PutRolePolicy", created.as_str()),
        ("sagemaker", "iam:DeleteRole", created.as_str()),
        ("sagemaker", "iam:TagRole", created.as_str()),
    ];
    let own = [
        format!("arn:aws:iam::{DATA_ACCOUNT}:role/xacct-manager"),
        format!("arn:aws:iam::{DEV_ACCOUNT}:role/ops/xacct-manager"),
        CONTROLLER.to_string(),
    ];
    let default = iam_policy(&["--controller-role-arn", CONTROLLER]);
    let mut printed_kinds = BTreeMap::new();
    for (kinds, action, elsewhere) in cases {
        let printed = printed_kinds.entry(kinds).or_insert_with(|| {
            iam_policy(&["--kinds", kinds, "--controller-role-arn", CONTROLLER])
        });
        for printed in [&*printed, &default] {
            let policy = &printed["permissionsPolicy"];
            assert!(
                allows(policy, action, elsewhere),
                "{kinds}: {action} on {elsewhere}"
            );
            for role in &own {
                // The Allow reaches the role (role/* or role/xacct-*); the Deny stops it.
                let reached = policy["Statement"].as_array().unwrap().iter().any(|s| {
                    s["Effect"] == "Allow"
                        && as_list(&s["Action"]).contains(&action)
                        && as_list(&s["Resource"])
                            .iter()
                            .any(|r| wildcard(r, false).is_match(role))
                });
                assert!(
                    !allows(policy, action, role),
                    "{kinds}: {action} allowed on its own role {role} (Allow reaches it: {reached}):\n{policy:#}"
                );
            }
        }
    }
    let printed = iam_policy(&["--kinds", "identity", "--controller-role-arn", CONTROLLER]);
    let deny = statement_with(
        &printed["permissionsPolicy"],
        "Deny",
        "iam:AttachRolePolicy",
    )
    .expect("an explicit Deny");
    for action in [
        "iam:UpdateAssumeRolePolicy",
        "iam:PutRolePolicy",
        "iam:DeleteRolePolicy",
        "iam:AttachRolePolicy",
        "iam:DetachRolePolicy",
        "iam:PutRolePermissionsBoundary",
        "iam:DeleteRole",
    ] {
        assert!(
            as_list(&deny["Action"]).contains(&action),
            "{action}: {deny}"
        );
    }
    assert!(
        printed["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("--role-name")),
        "the Deny is explained"
    );

    // Another role name: that role is protected instead.
    let renamed = iam_policy(&[
        "--kinds",
        "identity",
        "--role-name",
        "data-xacct",
        "--controller-role-arn",
        CONTROLLER,
    ]);
    let policy = &renamed["permissionsPolicy"];
    let arn = format!("arn:aws:iam::{DATA_ACCOUNT}:role/data-xacct");
    assert!(!allows(policy, "iam:PutRolePolicy", &arn));
    assert!(allows(
        policy,
        "iam:PutRolePolicy",
        &format!("arn:aws:iam::{DATA_ACCOUNT}:role/xacct-manager")
    ));
    let bad = xacct(&["iam-policy", "--role-name", "arn:aws:iam::1:role/x"]);
    assert!(!bad.status.success());

    // Kinds that write no role carry no Deny.
    for kinds in ["s3", "ecr,kms,rds", "gc"] {
        let printed = iam_policy(&["--kinds", kinds]);
        assert!(
            statement_with(&printed["permissionsPolicy"], "Deny", "iam:PutRolePolicy").is_none(),
            "{kinds}"
        );
    }
}

#[test]
fn the_help_says_what_the_default_kinds_are() {
    let out = xacct(&["iam-policy", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    // The --kinds entry: its line and the description lines up to the next option.
    let mut lines = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("--kinds"));
    let first = lines.next().unwrap_or_else(|| panic!("--kinds in {help}"));
    let kinds = std::iter::once(first)
        .chain(lines.take_while(|l| !l.trim_start().starts_with('-')))
        .collect::<Vec<_>>()
        .join(" ");
    let kinds = kinds.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(kinds.contains("gc"), "{kinds}");
    assert!(!kinds.contains("(default: all)"), "{kinds}");
    assert!(kinds.contains("default: every kind but gc"), "{kinds}");
    // And it is so.
    let default = iam_policy(&[]);
    assert!(!default["kinds"].as_array().unwrap().contains(&json!("gc")));
    let gc = iam_policy(&["--kinds", "gc"]);
    assert_eq!(gc["kinds"], json!(["gc"]));
}
