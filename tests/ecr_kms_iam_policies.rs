//! ECR repository policies, KMS key policies and IAM role trust policies against the AWS emulator
//! (moto, multi-account): an ECR repository another account's build pushes to and a user pulls
//! from, a KMS key used across accounts, and a role assumable from another account (switch role).

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use support::fixtures::grant_yaml;
use support::{DATA_ACCOUNT, DEV_ACCOUNT, Moto, accounts_yaml, clients, manifests, sids};
use xacct::aws::AwsPolicies;
use xacct::engine::{Engine, EngineSettings, Operation};
use xacct::policy::{PolicyDocument, Statement};

fn engine(connector: &Arc<xacct::aws::Connector>, settings: EngineSettings) -> Engine {
    Engine::new(Arc::new(AwsPolicies::new(connector.clone())), settings)
}

fn contains(policy: &str, wanted: &Value) -> bool {
    let wanted = Statement::from_json(wanted.clone()).expect("valid statement");
    PolicyDocument::parse(policy)
        .expect("parses")
        .statements
        .iter()
        .any(|s| s.same_meaning(&wanted))
}

fn statement_with_sid_suffix<'a>(doc: &'a Value, suffix: &str) -> Vec<&'a Value> {
    doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["Sid"]
                .as_str()
                .is_some_and(|sid| sid.starts_with("Xacct") && sid.ends_with(suffix))
        })
        .collect()
}

#[tokio::test]
async fn ecr_repository_pushed_by_another_accounts_build_and_pulled_by_a_user() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    data.ecr
        .create_repository()
        .repository_name("ml/trainer")
        .send()
        .await
        .expect("create repository");
    let foreign = json!({"Sid": "LambdaPull", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]});
    data.ecr
        .set_repository_policy()
        .repository_name("ml/trainer")
        .policy_text(json!({"Version": "2012-10-17", "Statement": [foreign]}).to_string())
        .send()
        .await
        .expect("foreign policy");

    let yaml = format!(
        "{}{}{}",
        accounts_yaml(),
        grant_yaml(
            "ci",
            "build-pushes-trainer",
            &format!(
                "  resource: {{account: data-prod, kind: EcrRepository, name: ml/trainer}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [role/CodeBuildRole]}}\n  access: [push]"
            )
        ),
        grant_yaml(
            "ml",
            "analyst-pulls-trainer",
            &format!(
                "  resource: {{account: data-prod, kind: EcrRepository, name: ml/trainer}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [user/analyst]}}\n  access: [pull]"
            )
        ),
    );
    let (accounts, grants) = manifests(&yaml);
    let engine = engine(&connector, EngineSettings::default());

    let plan = engine.run(&accounts, &grants, Operation::Apply, true).await;
    assert!(
        plan.targets[0]
            .notes
            .iter()
            .any(|n| n.contains("ecr:GetAuthorizationToken")),
        "{:?}",
        plan.targets[0].notes
    );

    let report = engine
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    assert!(
        !report.has_errors(),
        "{}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    let policy = data
        .ecr
        .get_repository_policy()
        .repository_name("ml/trainer")
        .send()
        .await
        .unwrap()
        .policy_text
        .unwrap();
    assert!(contains(&policy, &foreign), "{policy}");
    let doc: Value = serde_json::from_str(&policy).unwrap();
    let ours = statement_with_sid_suffix(&doc, "Repository");
    assert_eq!(ours.len(), 2);
    let push = ours
        .iter()
        .find(|s| {
            s["Principal"]["AWS"] == json!(format!("arn:aws:iam::{DEV_ACCOUNT}:role/CodeBuildRole"))
        })
        .unwrap();
    let push_actions: Vec<&str> = push["Action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        push_actions.contains(&"ecr:PutImage")
            && push_actions.contains(&"ecr:BatchCheckLayerAvailability")
    );
    assert!(
        ours.iter().all(|s| s.get("Resource").is_none()),
        "repository policies have no Resource"
    );

    connector.calls().reset();
    assert!(
        !engine
            .run(&accounts, &grants, Operation::Apply, false)
            .await
            .has_errors()
    );
    assert_eq!(connector.calls().count_matching(&["Set", "Delete"]), 0);

    assert!(
        !engine
            .run(&accounts, &grants, Operation::Delete, false)
            .await
            .has_errors()
    );
    let policy = data
        .ecr
        .get_repository_policy()
        .repository_name("ml/trainer")
        .send()
        .await
        .unwrap()
        .policy_text
        .unwrap();
    assert_eq!(sids(&policy), vec![Some("LambdaPull".to_string())]);
}

#[tokio::test]
async fn kms_key_used_across_accounts_by_alias_and_by_id_in_one_policy() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    let key = support::create_key(&data.kms).await;
    data.kms
        .create_alias()
        .alias_name("alias/lake")
        .target_key_id(key.key_id())
        .send()
        .await
        .expect("alias");
    let before = support::key_policy(&data.kms, key.key_id()).await;
    let root_statements = PolicyDocument::parse(&before).unwrap().statements;
    assert!(
        !root_statements.is_empty(),
        "a new key has the default root statement"
    );

    let yaml = format!(
        "{}{}{}",
        accounts_yaml(),
        grant_yaml(
            "batch",
            "job-decrypts-lake",
            "  resource: {account: data-prod, kind: KmsKey, name: alias/lake}\n  grantee: {account: dev, principals: [role/BatchJobRole]}\n  granteeSide: None\n  access: [decrypt]"
        ),
        grant_yaml(
            "data",
            "rds-copies",
            &format!(
                "  resource: {{account: data-prod, kind: KmsKey, name: {}}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\"}}\n  access: [encryptDecrypt, grant]",
                key.key_id()
            )
        ),
    );
    let (accounts, grants) = manifests(&yaml);
    let engine = engine(&connector, EngineSettings::default());
    connector.calls().reset();
    let report = engine
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    assert!(
        !report.has_errors(),
        "{}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    // Alias and id name the same key: one target, one write.
    assert_eq!(report.targets.len(), 1);
    assert_eq!(report.targets[0].arn, key.arn().unwrap());
    assert_eq!(connector.calls().count("PutKeyPolicy"), 1);

    let policy = support::key_policy(&data.kms, key.key_id()).await;
    for s in &root_statements {
        assert!(
            contains(&policy, &Value::Object(s.as_json().clone())),
            "root statement kept: {policy}"
        );
    }
    let doc: Value = serde_json::from_str(&policy).unwrap();
    let grants_statement = statement_with_sid_suffix(&doc, "Grants");
    assert_eq!(grants_statement.len(), 1);
    assert_eq!(
        grants_statement[0]["Condition"],
        json!({"Bool": {"kms:GrantIsForAWSResource": "true"}})
    );
    assert_eq!(
        grants_statement[0]["Principal"]["AWS"],
        json!(format!("arn:aws:iam::{DEV_ACCOUNT}:root"))
    );
    assert_eq!(statement_with_sid_suffix(&doc, "Use").len(), 2);

    // Revoking leaves exactly the key's own statements (a key policy is never deleted).
    assert!(
        !engine
            .run(&accounts, &grants, Operation::Delete, false)
            .await
            .has_errors()
    );
    let after = support::key_policy(&data.kms, key.key_id()).await;
    assert!(
        PolicyDocument::parse(&after)
            .unwrap()
            .same_meaning(&PolicyDocument::parse(&before).unwrap()),
        "{after}"
    );
}

#[tokio::test]
async fn switch_role_trust_policy_with_external_id_keeps_the_service_trust() {
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    let service_trust = json!({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"});
    data.iam
        .create_role()
        .role_name("ReadOnlyOps")
        .assume_role_policy_document(
            json!({"Version": "2012-10-17", "Statement": [service_trust]}).to_string(),
        )
        .send()
        .await
        .expect("create role");

    let yaml = format!(
        "{}{}",
        accounts_yaml(),
        grant_yaml(
            "ops",
            "oncall-switches-role",
            &format!(
                "  resource: {{account: data-prod, kind: IamRole, name: ReadOnlyOps}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: [user/oncall, role/OpsRole]}}\n  access: [assume]\n  externalId: ops-2026"
            )
        ),
    );
    let (accounts, grants) = manifests(&yaml);
    let engine = engine(&connector, EngineSettings::default());
    let report = engine
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    assert!(
        !report.has_errors(),
        "{}",
        serde_json::to_string_pretty(&report).unwrap()
    );

    let policy = support::trust_policy(&data.iam, "ReadOnlyOps").await;
    assert!(contains(&policy, &service_trust), "{policy}");
    let doc: Value = serde_json::from_str(&policy).unwrap();
    let assume = statement_with_sid_suffix(&doc, "Assume");
    assert_eq!(assume.len(), 1);
    assert_eq!(
        assume[0]["Condition"],
        json!({"StringEquals": {"sts:ExternalId": "ops-2026"}})
    );
    assert_eq!(
        assume[0]["Principal"]["AWS"],
        json!([
            format!("arn:aws:iam::{DEV_ACCOUNT}:role/OpsRole"),
            format!("arn:aws:iam::{DEV_ACCOUNT}:user/oncall")
        ])
    );
    assert!(
        assume[0].get("Resource").is_none(),
        "trust policies have no Resource"
    );

    // Revoke: the trust policy goes back to the service trust alone.
    assert!(
        !engine
            .run(&accounts, &grants, Operation::Delete, false)
            .await
            .has_errors()
    );
    let policy = support::trust_policy(&data.iam, "ReadOnlyOps").await;
    assert_eq!(PolicyDocument::parse(&policy).unwrap().statements.len(), 1);
    assert!(contains(&policy, &service_trust));
}

#[tokio::test]
async fn a_trust_policy_over_its_quota_is_refused_before_any_write() {
    // moto does not enforce the 2,048-character trust policy quota; xacct checks it before writing.
    let moto = Moto::start();
    let connector = moto.connector().await;
    let data = clients(&connector, DATA_ACCOUNT).await;
    let original = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    data.iam
        .create_role()
        .role_name("Shared")
        .assume_role_policy_document(original.to_string())
        .send()
        .await
        .unwrap();

    let principals: Vec<String> = (0..40)
        .map(|i| format!("role/team-{i:02}-deployer"))
        .collect();
    let yaml = format!(
        "{}{}",
        accounts_yaml(),
        grant_yaml(
            "ops",
            "many",
            &format!(
                "  resource: {{account: data-prod, kind: IamRole, name: Shared}}\n  grantee: {{accountId: \"{DEV_ACCOUNT}\", principals: {principals:?}}}\n  access: [assume]"
            )
        ),
    );
    let (accounts, grants) = manifests(&yaml);
    connector.calls().reset();
    let report = engine(&connector, EngineSettings::default())
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    let ready = report.grants[0].ready().unwrap();
    assert_eq!(ready.reason, "PolicyTooLarge");
    assert!(
        ready
            .message
            .contains("arn:aws:iam::222222222222:role/Shared")
            && ready.message.contains("2048"),
        "{}",
        ready.message
    );
    assert_eq!(connector.calls().count("UpdateAssumeRolePolicy"), 0);
    assert!(
        PolicyDocument::parse(&support::trust_policy(&data.iam, "Shared").await)
            .unwrap()
            .same_meaning(&PolicyDocument::from_json(original).unwrap())
    );

    // With the quota raised to 4,096 the same grant fits.
    let raised = EngineSettings {
        trust_policy_limit: 4096,
        ..EngineSettings::default()
    };
    let report = engine(&connector, raised)
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    assert!(
        !report.has_errors(),
        "{}",
        serde_json::to_string_pretty(&report).unwrap()
    );
}
