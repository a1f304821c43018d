//! Both halves of cross-account access from one grant, against the AWS emulator (moto,
//! multi-account): the resource's policy in the owning account and the identity policies of the
//! grantee roles and users in the other, for a Batch job (job role, execution role, instance
//! profile) reading S3 and pulling from ECR, switch role, and SageMaker endpoint invocation through
//! a role xacct creates. Foreign inline policies and attached managed policies are never touched.
//!
//! Moto does not enforce IAM or resource policies on requests, so these tests check the documents
//! xacct writes, not that AWS would then allow the calls.

mod support;

use std::sync::Arc;

use aws_sdk_s3::types::{
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule,
};
use serde_json::{Value, json};
use support::fixtures::grant_yaml;
use support::{
    DATA_ACCOUNT, DEV_ACCOUNT, Moto, accounts_yaml, bucket_policy, clients, create_endpoint,
    create_role, manifests, role_policy,
};
use xacct::api::PolicyKind;
use xacct::aws::{AwsPolicies, CREATED_BY_TAG, Connector, INLINE_POLICY_NAME};
use xacct::engine::{Engine, EngineSettings, Operation, Report};
use xacct::policy::{PolicyDocument, Statement};

fn engine(connector: &Arc<Connector>) -> Engine {
    Engine::new(
        Arc::new(AwsPolicies::new(connector.clone())),
        EngineSettings::default(),
    )
}

/// Whether the policy has a statement meaning `wanted` (Sid aside: xacct's Sids are hashes).
fn has(policy: &str, wanted: Value) -> bool {
    let mut wanted = wanted;
    let doc = PolicyDocument::parse(policy).expect("parses");
    doc.statements.iter().any(|s| {
        wanted["Sid"] = json!(s.sid().unwrap_or_default());
        s.same_meaning(&Statement::from_json(wanted.clone()).expect("valid statement"))
    })
}

fn xacct_sids(policy: &str) -> usize {
    support::sids(policy)
        .iter()
        .filter(|s| s.as_deref().is_some_and(|s| s.starts_with("Xacct")))
        .count()
}

fn assert_clean(report: &Report) {
    assert!(
        !report.has_errors(),
        "{}",
        serde_json::to_string_pretty(report).unwrap()
    );
}

#[tokio::test]
async fn batch_job_roles_read_s3_and_pull_ecr_across_accounts_on_both_sides() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    let dev = clients(&connector, DEV_ACCOUNT).await;

    // The data account: a bucket encrypted with a customer managed key, a repository.
    let key = support::create_key(&data.kms).await;
    let key_arn = key.arn().unwrap().to_string();
    data.s3.create_bucket().bucket("lake").send().await.unwrap();
    data.s3
        .put_bucket_encryption()
        .bucket("lake")
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(ServerSideEncryption::AwsKms)
                                .kms_master_key_id(&key_arn)
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
    data.ecr
        .create_repository()
        .repository_name("ml/trainer")
        .send()
        .await
        .unwrap();

    // The dev account: the job role (with its team's inline policy and a managed policy), the
    // execution role, the instance role behind an instance profile, and an analyst user.
    let job_role = create_role(&dev.iam, "BatchJobRole", "ecs-tasks.amazonaws.com").await;
    let execution_role =
        create_role(&dev.iam, "BatchExecutionRole", "ecs-tasks.amazonaws.com").await;
    let instance_role = create_role(&dev.iam, "EcsInstanceRole", "ec2.amazonaws.com").await;
    let team_logs = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*"}]});
    dev.iam
        .put_role_policy()
        .role_name("BatchJobRole")
        .policy_name("team-logs")
        .policy_document(team_logs.to_string())
        .send()
        .await
        .unwrap();
    let managed = dev
        .iam
        .create_policy()
        .policy_name("TeamMetrics")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"}]})
                .to_string(),
        )
        .send()
        .await
        .unwrap()
        .policy
        .unwrap()
        .arn
        .unwrap();
    dev.iam
        .attach_role_policy()
        .role_name("BatchJobRole")
        .policy_arn(&managed)
        .send()
        .await
        .unwrap();
    dev.iam
        .create_instance_profile()
        .instance_profile_name("ecsInstanceProfile")
        .send()
        .await
        .unwrap();
    dev.iam
        .add_role_to_instance_profile()
        .instance_profile_name("ecsInstanceProfile")
        .role_name("EcsInstanceRole")
        .send()
        .await
        .unwrap();
    dev.iam
        .create_user()
        .user_name("analyst")
        .send()
        .await
        .unwrap();

    let yaml = format!(
        "{}{}{}",
        accounts_yaml(),
        grant_yaml(
            "batch",
            "job-reads-lake",
            "  resource: {account: data-prod, kind: S3Bucket, name: lake}\n  grantee: {account: dev, principals: [role/BatchJobRole]}\n  access: [read]"
        ),
        grant_yaml(
            "batch",
            "pulls-trainer",
            "  resource: {account: data-prod, kind: EcrRepository, name: ml/trainer}\n  grantee: {account: dev, principals: [role/BatchExecutionRole, instanceProfile/ecsInstanceProfile, user/analyst]}\n  access: [pull]"
        ),
    );
    let (accounts, grants) = manifests(&yaml);
    let engine = engine(&connector);

    // The plan shows both sides, per account, and writes nothing.
    let plan = engine.run(&accounts, &grants, Operation::Apply, true).await;
    assert_clean(&plan);
    let planned: Vec<(String, String)> = plan
        .targets
        .iter()
        .map(|t| (t.account.clone(), t.kind.clone()))
        .collect();
    for expected in [
        ("data-prod", "S3BucketPolicy"),
        ("data-prod", "EcrRepositoryPolicy"),
        ("dev", "RoleInlinePolicy"),
        ("dev", "UserInlinePolicy"),
    ] {
        assert!(
            planned.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {planned:?}"
        );
    }
    assert_eq!(plan.grants[1].targets.len(), 4, "repository + 3 principals");
    assert_eq!(
        role_policy(&dev.iam, "BatchJobRole", INLINE_POLICY_NAME).await,
        None
    );

    let applied = engine
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    assert_clean(&applied);

    // Resource side: the bucket and repository policies name the roles (the instance profile
    // resolved to its role). Read without a prefix is one statement on the bucket and its objects.
    let bucket = bucket_policy(&data.s3, "lake")
        .await
        .expect("bucket policy");
    assert!(
        has(
            &bucket,
            json!({"Effect": "Allow", "Principal": {"AWS": job_role}, "Action": ["s3:GetBucketLocation", "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"], "Resource": ["arn:aws:s3:::lake", "arn:aws:s3:::lake/*"]})
        ),
        "{bucket}"
    );
    let repo = data
        .ecr
        .get_repository_policy()
        .repository_name("ml/trainer")
        .send()
        .await
        .unwrap()
        .policy_text
        .unwrap();
    let analyst = format!("arn:aws:iam::{DEV_ACCOUNT}:user/analyst");
    let mut pullers = vec![
        execution_role.clone(),
        instance_role.clone(),
        analyst.clone(),
    ];
    pullers.sort();
    assert!(has(
        &repo,
        json!({"Effect": "Allow", "Principal": {"AWS": pullers}, "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]})
    ));

    // Grantee side: the job role may read the bucket and decrypt with its key.
    let repo_arn = format!("arn:aws:ecr:us-east-1:{DATA_ACCOUNT}:repository/ml/trainer");
    let job = role_policy(&dev.iam, "BatchJobRole", INLINE_POLICY_NAME)
        .await
        .expect("xacct's inline policy on the job role");
    assert!(
        has(
            &job,
            json!({"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"], "Resource": ["arn:aws:s3:::lake", "arn:aws:s3:::lake/*"]})
        ),
        "{job}"
    );
    assert!(has(
        &job,
        json!({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key_arn})
    ));
    // The execution role and the instance role may pull, and log in to the registry.
    for role in ["BatchExecutionRole", "EcsInstanceRole"] {
        let policy = role_policy(&dev.iam, role, INLINE_POLICY_NAME)
            .await
            .unwrap_or_else(|| panic!("xacct's inline policy on {role}"));
        assert!(has(
            &policy,
            json!({"Effect": "Allow", "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": repo_arn})
        ));
        assert!(has(
            &policy,
            json!({"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"})
        ));
        assert!(
            !policy.contains("s3:"),
            "{role} got only the pull: {policy}"
        );
    }
    let user = dev
        .iam
        .get_user_policy()
        .user_name("analyst")
        .policy_name(INLINE_POLICY_NAME)
        .send()
        .await
        .expect("a user gets a user inline policy");
    assert!(
        user.policy_document().contains("ecr%3ABatchGetImage")
            || user.policy_document().contains("ecr:BatchGetImage")
    );
    // What was not xacct's is untouched.
    assert_eq!(
        serde_json::from_str::<Value>(
            &role_policy(&dev.iam, "BatchJobRole", "team-logs")
                .await
                .unwrap()
        )
        .unwrap(),
        team_logs
    );

    // Converged: a second apply reads and writes nothing.
    connector.calls().reset();
    let again = engine
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    assert_clean(&again);
    assert_eq!(
        connector
            .calls()
            .count_matching(&["Put", "Set", "Update", "Delete", "Create"]),
        0,
        "{:?}",
        connector.calls().snapshot()
    );

    // Deleting revokes both sides; the team's policies stay.
    let deleted = engine
        .run(&accounts, &grants, Operation::Delete, false)
        .await;
    assert_clean(&deleted);
    for role in ["BatchJobRole", "BatchExecutionRole", "EcsInstanceRole"] {
        assert_eq!(
            role_policy(&dev.iam, role, INLINE_POLICY_NAME).await,
            None,
            "{role}"
        );
    }
    assert!(
        dev.iam
            .get_user_policy()
            .user_name("analyst")
            .policy_name(INLINE_POLICY_NAME)
            .send()
            .await
            .is_err()
    );
    assert!(
        role_policy(&dev.iam, "BatchJobRole", "team-logs")
            .await
            .is_some()
    );
    let attached = dev
        .iam
        .list_attached_role_policies()
        .role_name("BatchJobRole")
        .send()
        .await
        .unwrap();
    assert_eq!(attached.attached_policies().len(), 1);
    assert_eq!(bucket_policy(&data.s3, "lake").await, None);
}

#[tokio::test]
async fn a_missing_grantee_role_fails_the_grant_and_writes_nothing_on_either_side() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    let dev = clients(&connector, DEV_ACCOUNT).await;
    data.s3.create_bucket().bucket("lake").send().await.unwrap();
    create_role(&dev.iam, "Reader", "ecs-tasks.amazonaws.com").await;
    let yaml = format!(
        "{}{}{}",
        accounts_yaml(),
        // One principal exists, the other does not: nothing is written for this grant anywhere.
        grant_yaml(
            "batch",
            "typo",
            "  resource: {account: data-prod, kind: S3Bucket, name: lake}\n  grantee: {account: dev, principals: [role/Reader, role/Nope]}\n  access: [read]"
        ),
        grant_yaml(
            "batch",
            "fine",
            "  resource: {account: data-prod, kind: S3Bucket, name: lake, prefix: fine/}\n  grantee: {account: dev, principals: [role/Reader]}\n  access: [read]"
        ),
    );
    let (accounts, grants) = manifests(&yaml);
    let report = engine(&connector)
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    let typo = report
        .grants
        .iter()
        .find(|g| g.name == "batch/typo")
        .unwrap();
    let ready = typo.ready().unwrap();
    assert_eq!((ready.status, ready.reason.as_str()), ("False", "NotFound"));
    assert!(
        ready.message.contains("\"Nope\" does not exist") && ready.message.contains(DEV_ACCOUNT),
        "{}",
        ready.message
    );
    let fine = report
        .grants
        .iter()
        .find(|g| g.name == "batch/fine")
        .unwrap();
    assert_eq!(fine.ready().unwrap().status, "True", "{:?}", fine.ready());

    // Only the valid grant's statements exist, on both sides.
    let bucket = bucket_policy(&data.s3, "lake").await.unwrap();
    assert_eq!(
        xacct_sids(&bucket),
        3,
        "List, Bucket and Objects of the valid grant: {bucket}"
    );
    assert!(!bucket.contains("role/Nope"));
    let reader = role_policy(&dev.iam, "Reader", INLINE_POLICY_NAME)
        .await
        .unwrap();
    assert!(reader.contains("fine/"), "{reader}");
    assert!(
        !reader.contains("arn:aws:s3:::lake/*\""),
        "the failed grant's statements are not on the role: {reader}"
    );
}

#[tokio::test]
async fn switch_role_with_both_sides_and_the_inline_quota() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    let dev = clients(&connector, DEV_ACCOUNT).await;
    let target = create_role(&data.iam, "SharedReadOnly", "ec2.amazonaws.com").await;
    create_role(&dev.iam, "OnCall", "ec2.amazonaws.com").await;
    create_role(&dev.iam, "Crowded", "ec2.amazonaws.com").await;
    // Inline policies of a role share 10,240 characters: fill Crowded's almost to the brim.
    let filler: Vec<Value> = (0..76)
        .map(|i| json!({"Sid": format!("Team{i:03}"), "Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": format!("arn:aws:logs:us-east-1:{DEV_ACCOUNT}:log-group:/team/{i:03}")}))
        .collect();
    let filler = json!({"Version": "2012-10-17", "Statement": filler}).to_string();
    assert!(
        filler.len() > 9_800 && filler.len() < 10_240,
        "{}",
        filler.len()
    );
    dev.iam
        .put_role_policy()
        .role_name("Crowded")
        .policy_name("team")
        .policy_document(&filler)
        .send()
        .await
        .expect("moto takes it");

    let yaml = format!(
        "{}{}{}",
        accounts_yaml(),
        grant_yaml(
            "ops",
            "oncall",
            "  resource: {account: data-prod, kind: IamRole, name: SharedReadOnly}\n  grantee: {account: dev, principals: [role/OnCall]}\n  access: [assume]\n  externalId: ops-2026"
        ),
        grant_yaml(
            "ops",
            "crowded",
            "  resource: {account: data-prod, kind: IamRole, name: SharedReadOnly}\n  grantee: {account: dev, principals: [role/Crowded]}\n  access: [assume]"
        ),
    );
    let (accounts, grants) = manifests(&yaml);
    let report = engine(&connector)
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    let oncall = report
        .grants
        .iter()
        .find(|g| g.name == "ops/oncall")
        .unwrap();
    assert_eq!(
        oncall.ready().unwrap().status,
        "True",
        "{:?}",
        oncall.ready()
    );
    let crowded = report
        .grants
        .iter()
        .find(|g| g.name == "ops/crowded")
        .unwrap();
    let ready = crowded.ready().unwrap();
    assert_eq!(ready.reason, "PolicyTooLarge", "{ready:?}");
    assert!(ready.message.contains("role/Crowded"), "{}", ready.message);

    let trust = support::trust_policy(&data.iam, "SharedReadOnly").await;
    let on_call = format!("arn:aws:iam::{DEV_ACCOUNT}:role/OnCall");
    assert!(has(
        &trust,
        json!({"Effect": "Allow", "Principal": {"AWS": on_call}, "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:ExternalId": "ops-2026"}}})
    ));
    assert!(
        !trust.contains("Crowded"),
        "nothing written for the grant that does not fit: {trust}"
    );
    let identity = role_policy(&dev.iam, "OnCall", INLINE_POLICY_NAME)
        .await
        .unwrap();
    assert!(has(
        &identity,
        json!({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": target})
    ));
    assert_eq!(
        role_policy(&dev.iam, "Crowded", INLINE_POLICY_NAME).await,
        None
    );
}

#[tokio::test]
async fn sagemaker_endpoint_invoked_through_a_role_xacct_creates_and_deletes() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    let dev = clients(&connector, DEV_ACCOUNT).await;
    let endpoint = create_endpoint(&connector, DATA_ACCOUNT, "churn").await;
    assert!(endpoint.ends_with(":endpoint/churn"), "{endpoint}");
    let app = create_role(&dev.iam, "AppRole", "lambda.amazonaws.com").await;

    let app_grant = grant_yaml(
        "ml",
        "app-invokes-churn",
        "  resource: {account: data-prod, kind: SageMakerEndpoint, name: churn}\n  grantee: {account: dev, principals: [role/AppRole]}\n  access: [invoke]\n  externalId: churn-2026",
    );
    let batch_grant = grant_yaml(
        "ml",
        "scoring-invokes-churn",
        &format!(
            "  resource: {{account: data-prod, kind: SageMakerEndpoint, name: churn}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [role/Scoring]}}\n  actions: [\"sagemaker:InvokeEndpoint\"]"
        ),
    );
    let missing = grant_yaml(
        "ml",
        "no-such-endpoint",
        "  resource: {account: data-prod, kind: SageMakerEndpoint, name: gone}\n  grantee: {account: dev, principals: [role/AppRole]}\n  access: [invoke]",
    );
    let yaml = format!("{}{app_grant}{batch_grant}{missing}", accounts_yaml());
    let (accounts, grants) = manifests(&yaml);
    let engine = engine(&connector);
    let report = engine
        .run(&accounts, &grants, Operation::Apply, false)
        .await;

    let gone = report
        .grants
        .iter()
        .find(|g| g.name == "ml/no-such-endpoint")
        .unwrap();
    let ready = gone.ready().unwrap();
    assert_eq!(ready.reason, "NotFound", "{ready:?}");
    assert!(
        ready
            .message
            .contains("no SageMaker endpoint named \"gone\""),
        "{}",
        ready.message
    );

    let app_report = report
        .grants
        .iter()
        .find(|g| g.name == "ml/app-invokes-churn")
        .unwrap();
    assert_eq!(
        app_report.ready().unwrap().status,
        "True",
        "{:?}",
        app_report.ready()
    );
    let role_arn = app_report
        .role_arn
        .clone()
        .expect("the role to assume is reported");
    let scoring_report = report
        .grants
        .iter()
        .find(|g| g.name == "ml/scoring-invokes-churn")
        .unwrap();
    assert_eq!(
        scoring_report.role_arn.as_ref(),
        Some(&role_arn),
        "one role per endpoint"
    );
    let role_name = role_arn.rsplit('/').next().unwrap().to_string();
    assert!(
        role_name.starts_with("xacct-churn-") && role_name.len() <= 64,
        "{role_name}"
    );
    let kinds: Vec<PolicyKind> = app_report.targets.iter().map(|t| t.location.kind).collect();
    assert_eq!(
        kinds,
        [
            PolicyKind::InvokeRoleTrustPolicy,
            PolicyKind::InvokeRoleInlinePolicy,
            PolicyKind::RoleInlinePolicy
        ]
    );

    // The role: created and tagged as this instance's; its trust lets each grant's principals in
    // (with the external id where the grant sets one); its inline policy invokes that endpoint only.
    let role = data
        .iam
        .get_role()
        .role_name(&role_name)
        .send()
        .await
        .expect("the invocation role exists")
        .role
        .unwrap();
    assert!(
        role.tags()
            .iter()
            .any(|t| t.key() == CREATED_BY_TAG && t.value() == "default")
    );
    let trust = support::trust_policy(&data.iam, &role_name).await;
    assert!(has(
        &trust,
        json!({"Effect": "Allow", "Principal": {"AWS": app}, "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:ExternalId": "churn-2026"}}})
    ));
    assert!(has(
        &trust,
        json!({"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{DEV_ACCOUNT}:role/Scoring")}, "Action": "sts:AssumeRole"})
    ));
    let invoke = role_policy(&data.iam, &role_name, INLINE_POLICY_NAME)
        .await
        .unwrap();
    assert!(has(
        &invoke,
        json!({"Effect": "Allow", "Action": ["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointAsync", "sagemaker:InvokeEndpointWithResponseStream"], "Resource": endpoint})
    ));
    assert!(has(
        &invoke,
        json!({"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": endpoint})
    ));
    // The grantee side (a managed account): AppRole may assume the invocation role.
    let app_policy = role_policy(&dev.iam, "AppRole", INLINE_POLICY_NAME)
        .await
        .unwrap();
    assert!(has(
        &app_policy,
        json!({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn})
    ));

    // Revoking one grant keeps the role for the other; revoking the last deletes it.
    let (_, app_only) = manifests(&format!("{}{app_grant}", accounts_yaml()));
    let revoked = engine
        .run(&accounts, &app_only, Operation::Delete, false)
        .await;
    assert_clean(&revoked);
    let trust = support::trust_policy(&data.iam, &role_name).await;
    assert!(
        !trust.contains("AppRole") && trust.contains("Scoring"),
        "{trust}"
    );
    assert_eq!(
        role_policy(&dev.iam, "AppRole", INLINE_POLICY_NAME).await,
        None
    );
    let (_, scoring_only) = manifests(&format!("{}{batch_grant}", accounts_yaml()));
    let revoked = engine
        .run(&accounts, &scoring_only, Operation::Delete, false)
        .await;
    assert_clean(&revoked);
    assert!(
        data.iam
            .get_role()
            .role_name(&role_name)
            .send()
            .await
            .is_err(),
        "the role xacct created is deleted with its last grant"
    );
}

#[tokio::test]
async fn a_role_xacct_created_is_handed_over_when_someone_attached_a_policy_to_it() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    create_endpoint(&connector, DATA_ACCOUNT, "fraud").await;
    let yaml = format!(
        "{}{}",
        accounts_yaml(),
        grant_yaml(
            "ml",
            "fraud",
            &format!(
                "  resource: {{account: data-prod, kind: SageMakerEndpoint, name: fraud}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\"}}\n  access: [invoke]"
            )
        )
    );
    let (accounts, grants) = manifests(&yaml);
    let engine = engine(&connector);
    let report = engine
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    assert_clean(&report);
    let role_name = report.grants[0]
        .role_arn
        .clone()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let theirs = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]});
    data.iam
        .put_role_policy()
        .role_name(&role_name)
        .policy_name("someone-elses")
        .policy_document(theirs.to_string())
        .send()
        .await
        .unwrap();

    // The last grant goes: the role stays with their policy, but nobody may assume it.
    let deleted = engine
        .run(&accounts, &grants, Operation::Delete, false)
        .await;
    assert_clean(&deleted);
    let role = data
        .iam
        .get_role()
        .role_name(&role_name)
        .send()
        .await
        .unwrap()
        .role
        .unwrap();
    assert!(
        role.tags()
            .iter()
            .any(|t| t.key() == CREATED_BY_TAG && t.value() != "default"),
        "no longer tagged as this instance's: {:?}",
        role.tags()
    );
    let trust = support::trust_policy(&data.iam, &role_name).await;
    let trust: Value = serde_json::from_str(&trust).unwrap();
    assert!(
        trust["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["Effect"] == "Deny"),
        "{trust}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(
            &role_policy(&data.iam, &role_name, "someone-elses")
                .await
                .unwrap()
        )
        .unwrap(),
        theirs
    );
    assert_eq!(
        role_policy(&data.iam, &role_name, INLINE_POLICY_NAME).await,
        None
    );

    // A new grant on the endpoint does not take the role back.
    let again = engine
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    let ready = again.grants[0].ready().unwrap();
    assert_eq!(ready.status, "False");
    assert!(
        ready
            .message
            .contains("was not created by this xacct instance"),
        "{}",
        ready.message
    );
}
