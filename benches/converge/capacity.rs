//! How many single-principal grants fit on one policy, through the engine's own plan (the merge and
//! the size check that run before every write), against an in-memory backend: no AWS, no emulator
//! (moto enforces no size limit anyway). Shared by the benchmark and `tests/capacity.rs`, which keeps
//! the table in BENCHMARKS.md true.
//!
//! Each [`Layout`] is one column of the table: statements per grant (`--no-compaction`), and
//! compacted (the default).

use std::sync::Arc;

use async_trait::async_trait;
use xacct::api::{PolicyKind, ResourceKind};
use xacct::aws::{AccountAccess, AwsError, AwsErrorKind, Encryption, PolicyBackend, TargetRef};
use xacct::engine::{
    AccountDirectory, Engine, EngineSettings, GrantInput, Operation, Purpose, ResolvedGrant,
    resolve_grant, resource_statements,
};
use xacct::policy::{
    GrantOwner, OwnershipScope, PolicyDocument, SizeLimit, SizeUnit, Statement, converge,
};

/// The account that owns the resource.
const OWNER: &str = "222222222222";
/// The grantee account.
const GRANTEE: &str = "111111111111";
/// The bucket, repository or role every grant names.
const RESOURCE: &str = "shared-resource";
/// The key every KMS grant names.
const KEY_ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

/// One row of the table: a kind of policy, the preset its grants use, and the quota.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// What the row is called.
    pub policy: &'static str,
    /// The resource kind the grants name.
    pub kind: ResourceKind,
    /// The one preset each grant has.
    pub preset: &'static str,
    /// IAM trust policies: the account's quota (`None`: not a trust policy).
    pub trust_limit: Option<usize>,
    /// What the policy holds before any grant (AWS's default key policy, a role's own trust).
    pub starts_with: &'static str,
}

/// The rows: one S3 bucket, one ECR repository, one KMS key, one role's trust policy (at the
/// default quota and at the highest AWS grants).
pub const ROWS: &[Row] = &[
    Row {
        policy: "S3 bucket policy",
        kind: ResourceKind::S3Bucket,
        preset: "read",
        trust_limit: None,
        starts_with: "no policy",
    },
    Row {
        policy: "ECR repository policy",
        kind: ResourceKind::EcrRepository,
        preset: "pull",
        trust_limit: None,
        starts_with: "no policy",
    },
    Row {
        policy: "KMS key policy",
        kind: ResourceKind::KmsKey,
        preset: "decrypt",
        trust_limit: None,
        starts_with: "the default key policy (account root: kms:*)",
    },
    Row {
        policy: "IAM role trust policy (default quota)",
        kind: ResourceKind::IamRole,
        preset: "assume",
        trust_limit: Some(SizeLimit::IAM_TRUST_DEFAULT.max),
        starts_with: "one statement: an AWS service may assume it",
    },
    Row {
        policy: "IAM role trust policy (quota raised to the maximum)",
        kind: ResourceKind::IamRole,
        preset: "assume",
        trust_limit: Some(SizeLimit::IAM_TRUST_MAX),
        starts_with: "one statement: an AWS service may assume it",
    },
];

/// How grants are laid out in a policy: one column of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `--no-compaction`: each grant has its own statements (one per purpose), named by its Sid.
    StatementsPerGrant,
    /// The default: grants whose statements differ only in their principals share statements.
    Compacted,
}

/// The columns.
pub const LAYOUTS: &[Layout] = &[Layout::StatementsPerGrant, Layout::Compacted];

impl Layout {
    /// The column heading.
    pub fn heading(self) -> &'static str {
        match self {
            Layout::StatementsPerGrant => "before compaction (statements per grant)",
            Layout::Compacted => "after compaction (shared statements)",
        }
    }

    /// The engine settings of this layout for `row`.
    fn settings(self, row: &Row) -> EngineSettings {
        let defaults = EngineSettings::default();
        EngineSettings {
            trust_policy_limit: row.trust_limit.unwrap_or(defaults.trust_policy_limit),
            compaction: self == Layout::Compacted,
            ..defaults
        }
    }
}

/// What one policy holds at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// The most grants that fit.
    pub grants: usize,
    /// The document's size with that many.
    pub size: usize,
    /// Its size with one grant.
    pub size_one: usize,
    /// What each further grant adds.
    pub per_grant: usize,
    /// The quota.
    pub limit: usize,
    /// What the quota counts.
    pub unit: SizeUnit,
}

impl Row {
    /// The quota of this row's policy.
    pub fn limit(&self) -> SizeLimit {
        match (self.kind, self.trust_limit) {
            (ResourceKind::S3Bucket, _) => SizeLimit::S3_BUCKET,
            (ResourceKind::EcrRepository, _) => SizeLimit::ECR_REPOSITORY,
            (ResourceKind::KmsKey, _) => SizeLimit::KMS_KEY,
            (_, limit) => SizeLimit {
                max: limit.unwrap_or(SizeLimit::IAM_TRUST_DEFAULT.max),
                ..SizeLimit::IAM_TRUST_DEFAULT
            },
        }
    }

    /// The ARN of the one resource every grant of the row names.
    fn resource_arn(&self) -> String {
        match self.kind {
            ResourceKind::S3Bucket => format!("arn:aws:s3:::{RESOURCE}"),
            ResourceKind::EcrRepository => {
                format!("arn:aws:ecr:us-east-1:{OWNER}:repository/{RESOURCE}")
            }
            ResourceKind::KmsKey => format!("arn:aws:kms:us-east-1:{OWNER}:key/{KEY_ID}"),
            _ => format!("arn:aws:iam::{OWNER}:role/{RESOURCE}"),
        }
    }
}

/// The size of one policy holding `n` grants: the engine's statement builder, merge and measure
/// (what the plan checks before every write), for a template grant copied `n` times with its own
/// name and principal.
struct Sizer {
    template: ResolvedGrant,
    arn: String,
    current: Option<PolicyDocument>,
    limit: SizeLimit,
    settings: EngineSettings,
}

impl Sizer {
    fn new(row: &Row, layout: Layout) -> Sizer {
        let (accounts, grants) = parse(row, 1);
        let settings = layout.settings(row);
        let template = resolve_grant(
            &grants[0].grant,
            &accounts,
            &settings.instance_id,
            Purpose::Grant,
        )
        .expect("the template grant is valid");
        Sizer {
            template,
            arn: row.resource_arn(),
            current: starting_policy(row.kind)
                .map(|text| PolicyDocument::parse(&text).expect("the starting policy parses")),
            limit: row.limit(),
            settings,
        }
    }

    fn size(&self, n: usize) -> usize {
        self.limit.measure(&self.policy(n).0.to_compact_string())
    }

    /// The policy holding `n` grants, and those grants.
    fn policy(&self, n: usize) -> (PolicyDocument, Vec<ResolvedGrant>) {
        let grants: Vec<ResolvedGrant> = (0..n)
            .map(|i| ResolvedGrant {
                owner: GrantOwner::new(
                    &self.template.owner.instance,
                    &self.template.owner.namespace,
                    &grant_name(i),
                ),
                principals: vec![principal(i)],
                ..self.template.clone()
            })
            .collect();
        let desired: Vec<Statement> = grants
            .iter()
            .flat_map(|g| resource_statements(g, &self.arn).expect("statements build"))
            .collect();
        let scope = OwnershipScope::new(grants.iter().map(|g| &g.owner));
        (
            self.converge(self.current.as_ref(), &scope, &desired),
            grants,
        )
    }

    fn converge(
        &self,
        current: Option<&PolicyDocument>,
        scope: &OwnershipScope,
        desired: &[Statement],
    ) -> PolicyDocument {
        converge(
            current,
            &self.settings.instance_id,
            self.settings.compaction,
            scope,
            &OwnershipScope::default(),
            desired,
        )
        .expect("merge")
        .document
    }
}

/// `row`'s policy holding `n` grants (`layout`), then the same policy once the first grant is
/// revoked (a run that knows only that grant), and the principal of each grant, in order.
#[allow(dead_code, reason = "used by tests/capacity.rs, not by the benchmark")]
pub fn revoke_first(
    row: &Row,
    layout: Layout,
    n: usize,
) -> (PolicyDocument, PolicyDocument, Vec<String>) {
    let sizer = Sizer::new(row, layout);
    let (full, grants) = sizer.policy(n);
    let revoked = sizer.converge(Some(&full), &OwnershipScope::new([&grants[0].owner]), &[]);
    (full, revoked, (0..n).map(principal).collect())
}

/// The largest number of grants that fit on one policy of `row`'s kind in `layout`.
pub fn capacity(row: &Row, layout: Layout) -> Capacity {
    let sizer = Sizer::new(row, layout);
    let size_one = sizer.size(1);
    // A grant alone keeps its own statements; from the second one on, each adds the same.
    let per_grant = sizer.size(3) - sizer.size(2);
    let limit = sizer.limit.max;
    // Every grant adds the same size (fixed-width names), so estimate, then confirm the boundary.
    let mut n = 1 + limit.saturating_sub(size_one) / per_grant;
    while n > 1 && sizer.size(n) > limit {
        n -= 1;
    }
    while sizer.size(n + 1) <= limit {
        n += 1;
    }
    Capacity {
        grants: n,
        size: sizer.size(n),
        size_one,
        per_grant,
        limit,
        unit: sizer.limit.unit,
    }
}

/// Runs the engine's plan (resolve, merge, size check, leaving out what does not fit) on `n`
/// grants of `row`: how many it leaves out with `PolicyTooLarge`.
pub async fn left_out_by_engine(row: &Row, layout: Layout, n: usize) -> usize {
    let (accounts, grants) = parse(row, n);
    let engine = Engine::new(
        Arc::new(StartingPolicy(starting_policy(row.kind))),
        layout.settings(row),
    );
    let report = engine.run(&accounts, &grants, Operation::Apply, true).await;
    let mut left_out = 0;
    for grant in &report.grants {
        match grant.ready().map(|c| c.reason.as_str()) {
            Some("PolicyTooLarge") => left_out += 1,
            Some("Pending") => {}
            other => panic!("unexpected plan result for {}: {other:?}", grant.name),
        }
    }
    left_out
}

fn parse(row: &Row, n: usize) -> (AccountDirectory, Vec<GrantInput>) {
    let mut manifests = xacct::cli::Manifests::default();
    xacct::cli::read_documents("capacity.yaml", &manifests_yaml(row, n), &mut manifests);
    assert!(
        manifests.errors.is_empty(),
        "capacity manifests are valid: {:?}",
        manifests.errors
    );
    let accounts = AccountDirectory::new(manifests.accounts.into_iter().map(|(a, _)| a));
    (accounts, manifests.grants)
}

/// The capacity table as it appears in BENCHMARKS.md.
pub fn table() -> String {
    let mut out =
        String::from("| policy | grant (one principal) | policy before the grants | quota |");
    for layout in LAYOUTS {
        out.push_str(&format!(
            " {} | size at capacity | each grant adds |",
            layout.heading()
        ));
    }
    out.push_str("\n|---|---|---|---|");
    for _ in LAYOUTS {
        out.push_str("---:|---:|---:|");
    }
    out.push('\n');
    for row in ROWS {
        let mut line = String::new();
        for (i, layout) in LAYOUTS.iter().enumerate() {
            let c = capacity(row, *layout);
            if i == 0 {
                line.push_str(&format!(
                    "| {} | `{}` | {} | {} {} |",
                    row.policy,
                    row.preset,
                    row.starts_with,
                    thousands(c.limit),
                    c.unit
                ));
            }
            line.push_str(&format!(
                " **{}** | {} | {} |",
                thousands(c.grants),
                thousands(c.size),
                thousands(c.per_grant)
            ));
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `12345` → `12,345` (any integer).
pub fn thousands(n: impl ToString) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The principal of grant `i`: a role in the grantee account with a 4-digit suffix (every grant
/// the same length).
pub fn principal(i: usize) -> String {
    format!("arn:aws:iam::{GRANTEE}:role/reader-{i:04}")
}

/// The name of grant `i` (every grant the same length).
pub fn grant_name(i: usize) -> String {
    format!("grant-{i:04}")
}

fn manifests_yaml(row: &Row, n: usize) -> String {
    let kind = match row.kind {
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
    };
    let name = match row.kind {
        ResourceKind::KmsKey => KEY_ID,
        _ => RESOURCE,
    };
    let mut yaml = format!(
        "apiVersion: xacct.dev/v1alpha1
kind: AwsAccount
metadata: {{name: owner}}
spec: {{accountId: \"{OWNER}\", region: us-east-1, allowedNamespaces: [\"*\"]}}
"
    );
    for i in 0..n {
        yaml.push_str(&format!(
            "---
apiVersion: xacct.dev/v1alpha1
kind: CrossAccountGrant
metadata: {{name: {}, namespace: apps}}
spec:
  resource: {{account: owner, kind: {kind}, name: {name}}}
  grantee: {{accountId: \"{GRANTEE}\", principals: [\"{}\"]}}
  access: [{}]
",
            grant_name(i),
            principal(i),
            row.preset
        ));
    }
    yaml
}

/// What the policy holds before any grant.
fn starting_policy(kind: ResourceKind) -> Option<String> {
    match kind {
        // The key policy KMS gives a key created without one.
        ResourceKind::KmsKey => Some(format!(
            r#"{{"Version":"2012-10-17","Id":"key-default-1","Statement":[{{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OWNER}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#
        )),
        // A role always has a trust policy: here, the usual one of a workload role.
        ResourceKind::IamRole => Some(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#
                .to_string(),
        ),
        _ => None,
    }
}

/// Every policy starts as `.0`; planning never writes.
struct StartingPolicy(Option<String>);

fn unsupported(operation: &str, account: &str) -> AwsError {
    AwsError::new(
        AwsErrorKind::Other,
        operation,
        account,
        "not modelled by the capacity backend",
    )
}

#[async_trait]
impl PolicyBackend for StartingPolicy {
    async fn locate(
        &self,
        account: &AccountAccess,
        kind: PolicyKind,
        region: &str,
        name: &str,
    ) -> Result<TargetRef, AwsError> {
        let id = &account.account_id;
        let arn = match kind {
            PolicyKind::S3BucketPolicy => format!("arn:aws:s3:::{name}"),
            PolicyKind::EcrRepositoryPolicy => {
                format!("arn:aws:ecr:{region}:{id}:repository/{name}")
            }
            PolicyKind::KmsKeyPolicy => format!("arn:aws:kms:{region}:{id}:key/{name}"),
            PolicyKind::RoleTrustPolicy => format!("arn:aws:iam::{id}:role/{name}"),
            _ => return Err(unsupported("locate", id)),
        };
        Ok(TargetRef {
            account: account.clone(),
            kind,
            region: region.to_string(),
            id: name.to_string(),
            arn,
            created_by: None,
        })
    }

    async fn read(&self, _target: &TargetRef) -> Result<Option<String>, AwsError> {
        Ok(self.0.clone())
    }

    async fn write(&self, target: &TargetRef, _policy: &str) -> Result<(), AwsError> {
        Err(unsupported("write", &target.account.account_id))
    }

    async fn delete(&self, target: &TargetRef) -> Result<(), AwsError> {
        Err(unsupported("delete", &target.account.account_id))
    }

    async fn instance_profile_role(
        &self,
        account: &AccountAccess,
        _profile: &str,
    ) -> Result<String, AwsError> {
        Err(unsupported("instance_profile_role", &account.account_id))
    }

    async fn endpoint_arn(
        &self,
        account: &AccountAccess,
        _region: &str,
        _name: &str,
    ) -> Result<String, AwsError> {
        Err(unsupported("endpoint_arn", &account.account_id))
    }

    async fn encryption(&self, _bucket: &TargetRef) -> Result<Encryption, AwsError> {
        Ok(Encryption::NoKmsKey)
    }
}
