//! The workload: N single-principal grants over M targets (S3 buckets, ECR repositories and KMS
//! keys in turn) in K accounts, and the resources themselves in the emulator.

use std::collections::BTreeMap;

use serde_json::Value;
use xacct::api::{AwsAccount, ResourceKind};
use xacct::aws::{AccountAccess, AssumeRole, Connector};
use xacct::engine::{AccountDirectory, GrantInput, Purpose, resolve_grant, resource_statements};

/// The sizes of a run.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Grants.
    pub grants: usize,
    /// Policies they are spread over.
    pub targets: usize,
    /// Accounts the targets are spread over.
    pub accounts: usize,
}

/// The kinds of target, in turn.
const KINDS: [ResourceKind; 3] = [
    ResourceKind::S3Bucket,
    ResourceKind::EcrRepository,
    ResourceKind::KmsKey,
];

impl Workload {
    /// The id of managed account `a`.
    pub fn account_id(a: usize) -> String {
        format!("{}", 100_000_000_000u64 + a as u64)
    }

    /// The AwsAccount name of account `a`.
    pub fn account_name(a: usize) -> String {
        format!("acct-{a:02}")
    }

    /// The kind of target `t`.
    pub fn kind(t: usize) -> ResourceKind {
        KINDS[t % KINDS.len()]
    }

    /// The account of target `t`.
    pub fn account_of(&self, t: usize) -> usize {
        t % self.accounts
    }

    /// The target of grant `g`.
    pub fn target_of(&self, g: usize) -> usize {
        g % self.targets
    }

    /// How many targets of each kind.
    pub fn targets_by_kind(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for t in 0..self.targets {
            *out.entry(kind_name(Self::kind(t))).or_default() += 1;
        }
        out
    }

    /// Creates the targets in the emulator; returns the names grants use (the key id for keys).
    pub async fn create_resources(&self, connector: &Connector) -> Vec<String> {
        let mut sessions = Vec::new();
        for a in 0..self.accounts {
            sessions.push(
                connector
                    .session(&access(a))
                    .await
                    .expect("assume role in the emulator"),
            );
        }
        let mut names = Vec::with_capacity(self.targets);
        for t in 0..self.targets {
            let config = &sessions[self.account_of(t)];
            let name = match Self::kind(t) {
                ResourceKind::S3Bucket => {
                    let name = format!("xacct-bench-{t:05}");
                    connector
                        .s3_client(config, REGION)
                        .create_bucket()
                        .bucket(&name)
                        .send()
                        .await
                        .expect("create bucket");
                    name
                }
                ResourceKind::EcrRepository => {
                    let name = format!("bench-repo-{t:05}");
                    connector
                        .ecr_client(config, REGION)
                        .create_repository()
                        .repository_name(&name)
                        .send()
                        .await
                        .expect("create repository");
                    name
                }
                _ => {
                    connector
                        .kms_client(config, REGION)
                        .create_key()
                        .description(format!("bench key {t}"))
                        .send()
                        .await
                        .expect("create key")
                        .key_metadata
                        .expect("key metadata")
                        .key_id
                }
            };
            names.push(name);
        }
        names
    }

    /// The manifests (`xacct apply -f` input): the accounts, then the grants.
    pub fn manifests_yaml(&self, names: &[String]) -> String {
        let mut yaml = String::new();
        for a in 0..self.accounts {
            yaml.push_str(&format!(
                "---
apiVersion: xacct.dev/v1alpha1
kind: AwsAccount
metadata: {{name: {name}}}
spec:
  accountId: \"{id}\"
  assumeRole: {{roleArn: \"arn:aws:iam::{id}:role/xacct-manager\"}}
  region: {REGION}
  allowedNamespaces: [\"*\"]
",
                name = Self::account_name(a),
                id = Self::account_id(a)
            ));
        }
        for g in 0..self.grants {
            let t = self.target_of(g);
            let kind = Self::kind(t);
            let preset = match kind {
                ResourceKind::S3Bucket => "read",
                ResourceKind::EcrRepository => "pull",
                _ => "decrypt",
            };
            yaml.push_str(&format!(
                "---
apiVersion: xacct.dev/v1alpha1
kind: CrossAccountGrant
metadata: {{name: grant-{g:05}, namespace: team-{team}}}
spec:
  resource: {{account: {account}, kind: {kind}, name: \"{name}\"}}
  grantee: {{accountId: \"{grantee}\", principals: [role/reader-{g:05}]}}
  access: [{preset}]
",
                team = g % 10,
                account = Self::account_name(self.account_of(t)),
                kind = kind_name(kind),
                name = names[t],
                grantee = 300_000_000_000u64 + (g % 10) as u64,
            ));
        }
        yaml
    }

    /// What the naive script is given: per grant, where its statements go and what they are
    /// (built by xacct's own statement builder, so that both end in the same policies).
    pub fn naive_spec(
        &self,
        names: &[String],
        accounts: &AccountDirectory,
        grants: &[GrantInput],
    ) -> Value {
        let items: Vec<Value> = grants
            .iter()
            .enumerate()
            .map(|(g, input)| {
                let t = self.target_of(g);
                let account_id = Self::account_id(self.account_of(t));
                let kind = Self::kind(t);
                let arn = match kind {
                    ResourceKind::S3Bucket => format!("arn:aws:s3:::{}", names[t]),
                    ResourceKind::EcrRepository => {
                        format!("arn:aws:ecr:{REGION}:{account_id}:repository/{}", names[t])
                    }
                    _ => format!("arn:aws:kms:{REGION}:{account_id}:key/{}", names[t]),
                };
                let resolved = resolve_grant(&input.grant, accounts, "default", Purpose::Grant)
                    .expect("bench grants are valid");
                let statements: Vec<Value> = resource_statements(&resolved, &arn)
                    .expect("statements build")
                    .iter()
                    .map(|s| Value::Object(s.as_json().clone()))
                    .collect();
                serde_json::json!({
                    "accountId": account_id,
                    "kind": kind_name(kind),
                    "resource": names[t],
                    "statements": statements,
                })
            })
            .collect();
        serde_json::json!({"region": REGION, "grants": items})
    }
}

/// Parses manifests the way the CLI does.
pub fn parse(yaml: &str) -> (AccountDirectory, Vec<AwsAccount>, Vec<GrantInput>) {
    let mut manifests = xacct::cli::Manifests::default();
    xacct::cli::read_documents("bench.yaml", yaml, &mut manifests);
    assert!(
        manifests.errors.is_empty(),
        "bench manifests are valid: {:?}",
        manifests.errors
    );
    let accounts: Vec<AwsAccount> = manifests.accounts.into_iter().map(|(a, _)| a).collect();
    let directory = AccountDirectory::new(accounts.iter().cloned());
    (directory, accounts, manifests.grants)
}

/// The region of every target.
pub const REGION: &str = "us-east-1";

/// How the setup reaches account `a`.
fn access(a: usize) -> AccountAccess {
    let id = Workload::account_id(a);
    AccountAccess {
        name: Workload::account_name(a),
        account_id: id.clone(),
        assume_role: Some(AssumeRole {
            role_arn: format!("arn:aws:iam::{id}:role/xacct-manager"),
            external_id: None,
            session_name: "xacct-bench-setup".into(),
        }),
    }
}

/// The CRD name of a resource kind.
pub fn kind_name(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::S3Bucket => "S3Bucket",
        ResourceKind::EcrRepository => "EcrRepository",
        ResourceKind::KmsKey => "KmsKey",
        ResourceKind::IamRole => "IamRole",
        ResourceKind::SageMakerEndpoint => "SageMakerEndpoint",
        ResourceKind::SqsQueue => "SqsQueue",
        ResourceKind::SnsTopic => "SnsTopic",
        ResourceKind::Secret => "Secret",
        ResourceKind::LambdaFunction => "LambdaFunction",
        ResourceKind::EventBus => "EventBus",
    }
}
