//! Shared test support: the AWS emulator (moto in server mode) and SDK clients acting in its
//! accounts. Every test that uses it talks to a real moto server over HTTP; nothing is mocked.
#![allow(dead_code)]

pub mod controller;
pub mod fault_proxy;
pub mod fixtures;
pub mod iam_eval;
pub mod kube_api;
pub mod process;

use std::process::{Child, Command};
use std::sync::Arc;

use aws_credential_types::Credentials;
use xacct::aws::{AccountAccess, AssumeRole, Connector, ConnectorOptions};

/// The account the tool's own (fake) credentials act in: moto's default.
pub const TOOL_ACCOUNT: &str = "123456789012";
/// The account that owns the shared resources in these tests.
pub const DATA_ACCOUNT: &str = "222222222222";
/// The account whose workloads get access.
pub const DEV_ACCOUNT: &str = "111111111111";

/// A moto server for one test, stopped when dropped (or when the test process dies: it exits
/// when its standard input closes).
pub struct Moto {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    /// Starts moto from the project's `.venv` (see scripts/setup-emulators.sh), or uses the server at
    /// `XACCT_TEST_AWS_ENDPOINT` when that is set.
    pub fn start() -> Moto {
        if let Ok(endpoint) = std::env::var("XACCT_TEST_AWS_ENDPOINT") {
            return Moto {
                child: None,
                endpoint,
            };
        }
        let mut command = Command::new(process::python());
        command.arg(process::root().join("scripts/moto-server.py"));
        let (child, endpoint) = process::spawn_printing_url(command, "moto");
        Moto {
            child: Some(child),
            endpoint,
        }
    }

    /// Options that point a connector at this server with fake credentials.
    pub fn options(&self) -> ConnectorOptions {
        ConnectorOptions {
            endpoint_url: Some(self.endpoint.clone()),
            credentials: Some(Credentials::new("testing", "testing", None, None, "tests")),
            region: Some("us-east-1".into()),
            ..ConnectorOptions::default()
        }
    }

    /// A connector on this server.
    pub async fn connector(&self) -> Arc<Connector> {
        Arc::new(Connector::new(self.options()).await)
    }

    /// Environment for running the `xacct` binary against this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How the tool reaches `account_id`: by assuming a manager role there.
pub fn access(name: &str, account_id: &str) -> AccountAccess {
    AccountAccess {
        name: name.into(),
        account_id: account_id.into(),
        assume_role: Some(AssumeRole {
            role_arn: format!("arn:aws:iam::{account_id}:role/xacct-manager"),
            external_id: None,
            session_name: "xacct-tests".into(),
        }),
    }
}

/// SDK clients acting in one account of the emulator (for setting up and inspecting).
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub kms: aws_sdk_kms::Client,
    pub iam: aws_sdk_iam::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

/// Clients acting in `account_id` (through AssumeRole, as moto models it).
pub async fn clients(connector: &Connector, account_id: &str) -> Clients {
    let config = connector
        .session(&access("setup", account_id))
        .await
        .expect("assume role in the emulator");
    Clients {
        s3: connector.s3_client(&config, "us-east-1"),
        ecr: connector.ecr_client(&config, "us-east-1"),
        kms: connector.kms_client(&config, "us-east-1"),
        iam: connector.iam_client(&config),
        sqs: connector.sqs_client(&config, "us-east-1"),
        sns: connector.sns_client(&config, "us-east-1"),
        secrets: connector.secrets_client(&config, "us-east-1"),
    }
}

/// Manifests for the two accounts of these tests.
pub fn accounts_yaml() -> String {
    format!(
        "apiVersion: xacct.dev/v1alpha1
kind: AwsAccount
metadata: {{name: data-prod}}
spec:
  accountId: \"{DATA_ACCOUNT}\"
  assumeRole: {{roleArn: \"arn:aws:iam::{DATA_ACCOUNT}:role/xacct-manager\"}}
  region: us-east-1
  allowedNamespaces: [\"*\"]
---
apiVersion: xacct.dev/v1alpha1
kind: AwsAccount
metadata: {{name: dev}}
spec:
  accountId: \"{DEV_ACCOUNT}\"
  assumeRole: {{roleArn: \"arn:aws:iam::{DEV_ACCOUNT}:role/xacct-manager\"}}
  region: us-east-1
  allowedNamespaces: [\"*\"]
"
    )
}

/// Parses manifests the way the CLI does.
pub fn manifests(
    yaml: &str,
) -> (
    xacct::engine::AccountDirectory,
    Vec<xacct::engine::GrantInput>,
) {
    let mut m = xacct::cli::Manifests::default();
    xacct::cli::read_documents("test.yaml", yaml, &mut m);
    assert!(
        m.errors.is_empty(),
        "test manifests are valid: {:?}",
        m.errors
    );
    let directory = xacct::engine::AccountDirectory::new(m.accounts.into_iter().map(|(a, _)| a));
    (directory, m.grants)
}

/// The statements of a policy document, by Sid (`None` for statements without one).
pub fn sids(policy: &str) -> Vec<Option<String>> {
    let doc = xacct::policy::PolicyDocument::parse(policy).expect("policy parses");
    doc.statements
        .iter()
        .map(|s| s.sid().map(str::to_string))
        .collect()
}

/// Whether the statement with this Sid holds access of `owner`: its own statement, or a shared
/// statement (grants differing only in principals, compacted) it is a member of.
pub fn held_by(sid: &str, owner: &xacct::policy::GrantOwner) -> bool {
    xacct::policy::owner_ids(&owner.instance, sid)
        .iter()
        .any(|id| id == owner.id())
}

/// Creates a DB instance in the emulator (encrypted with `key` when given; moto also makes an
/// automated snapshot of it), and a manual snapshot named `snapshot` when given.
pub async fn db_instance(
    rds: &aws_sdk_rds::Client,
    instance: &str,
    key: Option<&str>,
    snapshot: Option<&str>,
) {
    let mut request = rds
        .create_db_instance()
        .db_instance_identifier(instance)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .master_username("admin")
        .master_user_password("not-a-secret-1")
        .allocated_storage(20);
    if let Some(key) = key {
        request = request.storage_encrypted(true).kms_key_id(key);
    }
    request.send().await.expect("create DB instance");
    if let Some(snapshot) = snapshot {
        rds.create_db_snapshot()
            .db_instance_identifier(instance)
            .db_snapshot_identifier(snapshot)
            .send()
            .await
            .expect("create DB snapshot");
    }
}

/// A new customer managed KMS key in the emulator.
pub async fn create_key(kms: &aws_sdk_kms::Client) -> aws_sdk_kms::types::KeyMetadata {
    kms.create_key()
        .send()
        .await
        .expect("create key")
        .key_metadata
        .expect("key metadata")
}

/// The policy of `bucket`, if it has one (or cannot be read).
pub async fn bucket_policy(s3: &aws_sdk_s3::Client, bucket: &str) -> Option<String> {
    s3.get_bucket_policy()
        .bucket(bucket)
        .send()
        .await
        .ok()
        .and_then(|o| o.policy)
}

/// The key policy of `key_id`.
pub async fn key_policy(kms: &aws_sdk_kms::Client, key_id: &str) -> String {
    kms.get_key_policy()
        .key_id(key_id)
        .policy_name("default")
        .send()
        .await
        .expect("get key policy")
        .policy
        .expect("a key policy")
}

/// An IAM role trusted by an AWS service, as workloads' roles are.
pub async fn create_role(iam: &aws_sdk_iam::Client, name: &str, service: &str) -> String {
    let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]});
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .expect("create role")
        .role
        .expect("a role")
        .arn
}

/// The inline policy `policy` of `role`, decoded; `None` when there is none.
pub async fn role_policy(iam: &aws_sdk_iam::Client, role: &str, policy: &str) -> Option<String> {
    let out = iam
        .get_role_policy()
        .role_name(role)
        .policy_name(policy)
        .send()
        .await
        .ok()?;
    Some(
        percent_encoding::percent_decode_str(out.policy_document())
            .decode_utf8()
            .expect("UTF-8")
            .into_owned(),
    )
}

/// The trust policy of `role`, decoded.
pub async fn trust_policy(iam: &aws_sdk_iam::Client, role: &str) -> String {
    let encoded = iam
        .get_role()
        .role_name(role)
        .send()
        .await
        .expect("get role")
        .role
        .expect("a role")
        .assume_role_policy_document
        .expect("a trust policy");
    percent_encoding::percent_decode_str(&encoded)
        .decode_utf8()
        .expect("UTF-8")
        .into_owned()
}

/// A SageMaker endpoint (with its model and endpoint configuration) in the emulator.
pub async fn create_endpoint(connector: &Connector, account_id: &str, name: &str) -> String {
    let config = connector
        .session(&access("setup", account_id))
        .await
        .expect("assume role in the emulator");
    let sagemaker = connector.sagemaker_client(&config, "us-east-1");
    sagemaker
        .create_model()
        .model_name(format!("{name}-model"))
        .execution_role_arn(format!(
            "arn:aws:iam::{account_id}:role/sagemaker-execution"
        ))
        .primary_container(
            aws_sdk_sagemaker::types::ContainerDefinition::builder()
                .image("123456789012.dkr.ecr.us-east-1.amazonaws.com/model:latest")
                .build(),
        )
        .send()
        .await
        .expect("create model");
    sagemaker
        .create_endpoint_config()
        .endpoint_config_name(format!("{name}-config"))
        .production_variants(
            aws_sdk_sagemaker::types::ProductionVariant::builder()
                .variant_name("main")
                .model_name(format!("{name}-model"))
                .initial_instance_count(1)
                .instance_type(aws_sdk_sagemaker::types::ProductionVariantInstanceType::MlM5Large)
                .build(),
        )
        .send()
        .await
        .expect("create endpoint config");
    sagemaker
        .create_endpoint()
        .endpoint_name(name)
        .endpoint_config_name(format!("{name}-config"))
        .send()
        .await
        .expect("create endpoint")
        .endpoint_arn
        .unwrap_or_default()
}

/// The `xacct` binary with `args`, and only PATH and the AWS emulator's settings in its
/// environment.
pub fn xacct_command(moto: &Moto, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_xacct"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in moto.env() {
        command.env(k, v);
    }
    command
}

/// The smallest zip file: an empty archive (the emulator does not run a function's code).
const EMPTY_ZIP: [u8; 22] = [
    0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// Creates the Lambda function `name` in `account_id` (us-east-1), running as `role`; its ARN.
pub async fn create_function(
    connector: &Connector,
    account_id: &str,
    name: &str,
    role: &str,
) -> String {
    let config = connector
        .session(&access("setup", account_id))
        .await
        .expect("assume role in the emulator");
    connector
        .lambda_client(&config, "us-east-1")
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .handler("index.handler")
        .role(role)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_smithy_types::Blob::new(EMPTY_ZIP.to_vec()))
                .build(),
        )
        .send()
        .await
        .expect("create function")
        .function_arn
        .expect("a function ARN")
}

/// Creates the EventBridge event bus `name` in `account_id` (us-east-1); its ARN.
pub async fn create_event_bus(connector: &Connector, account_id: &str, name: &str) -> String {
    let config = connector
        .session(&access("setup", account_id))
        .await
        .expect("assume role in the emulator");
    connector
        .events_client(&config, "us-east-1")
        .create_event_bus()
        .name(name)
        .send()
        .await
        .expect("create event bus")
        .event_bus_arn
        .expect("an event bus ARN")
}

/// Runs the `xacct` binary against the emulator (see [`xacct_command`]) and waits for it.
pub fn run_xacct(moto: &Moto, args: &[&str]) -> std::process::Output {
    xacct_command(moto, args).output().expect("xacct runs")
}

/// [`run_xacct`] that must exit 0; fails the test with its output otherwise.
pub fn run_xacct_ok(moto: &Moto, args: &[&str]) -> std::process::Output {
    let out = run_xacct(moto, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "xacct {}:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The JSON report (`-o json`) an `xacct` run printed; fails the test with its output otherwise.
pub fn json_report(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "JSON report ({e}):\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// `namespace/name` and the Ready reason of every grant in a JSON report.
pub fn grant_reasons(report: &serde_json::Value) -> Vec<(String, String)> {
    report["grants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            (
                g["name"].as_str().unwrap_or_default().to_string(),
                g["conditions"][0]["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// Writes the manifests `documents` to `dir/name`; its path.
pub fn write_manifest(dir: &std::path::Path, name: &str, documents: &[String]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, documents.concat()).expect("manifest written");
    path.to_str().expect("a UTF-8 path").to_string()
}

/// The statements of a policy document, as JSON (a statement written alone is a list of one).
pub fn policy_statements(policy: &str) -> Vec<serde_json::Value> {
    let doc: serde_json::Value = serde_json::from_str(policy).expect("a JSON policy");
    match &doc["Statement"] {
        serde_json::Value::Array(items) => items.clone(),
        serde_json::Value::Null => Vec::new(),
        one => vec![one.clone()],
    }
}

/// The statements xacct wrote (Sids starting with `Xacct`) among `statements`.
pub fn xacct_statements(statements: &[serde_json::Value]) -> Vec<serde_json::Value> {
    statements
        .iter()
        .filter(|s| {
            s["Sid"]
                .as_str()
                .is_some_and(|sid| sid.starts_with(xacct::policy::SID_PREFIX))
        })
        .cloned()
        .collect()
}

/// Copies the manifests under `from` to `to`, with `placeholder` replaced by `value`.
pub fn copy_manifests(
    from: &std::path::Path,
    to: &std::path::Path,
    placeholder: &str,
    value: &str,
) {
    std::fs::create_dir_all(to).expect("the copy's folder");
    for entry in std::fs::read_dir(from).expect("the manifests' folder") {
        let path = entry.expect("a folder entry").path();
        let target = to.join(path.file_name().unwrap_or_default());
        if path.is_dir() {
            copy_manifests(&path, &target, placeholder, value);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("a manifest");
            std::fs::write(target, text.replace(placeholder, value)).expect("the copy");
        }
    }
}

/// The id the examples give their KMS key by ARN (`kms-cross-account/`), a placeholder.
pub const KEY_PLACEHOLDER: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";
