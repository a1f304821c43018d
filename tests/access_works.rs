//! Granted access really works: after `xacct apply -f examples/<scenario>/` against the AWS
//! emulator (moto, multi-account), an independent IAM evaluator (`@cloud-copilot/iam-simulate`,
//! through `tests/support/iam_eval.rs`) decides each request the way AWS authorizes it, from the
//! policies read back from the emulator, never from xacct's output: the caller's identity policies
//! from IAM in the caller's account (xacct's `xacct` inline policy on the grantee side, and the
//! grantee's own policies where the grantee account is not managed), and the resource's policy from
//! the resource's account (bucket policy, repository policy, key policy, role trust policy). A role
//! calls as a session of it (`assumed-role/NAME/SESSION`), as workloads do.
//!
//! For each scenario of `examples/` and each kind: every granted request is `Allowed`; an
//! un-granted principal, a wrong action and a missing or wrong external id or condition key are
//! denied; and after `xacct delete -f` every request that was allowed is denied again, except what
//! a `deletionPolicy: Retain` grant hands over and statements that were never xacct's. Requests of
//! managed grantees are also decided without xacct's inline policy (denied: the grantee side is
//! needed), and cross-account requests with an identity policy allowing everything (allowed while
//! the resource side holds the grant, denied after delete: the resource side alone was revoked).
//!
//! The examples are applied as they are, but for what the set-up script cannot give them: the key
//! the KMS example names by ARN is the key behind its alias (as the example says; the placeholder
//! id is replaced), the bucket is encrypted with it (SSE-KMS, so that the S3 grants' grantee side
//! holds `kms:Decrypt`), and the report instance profile holds `ReportInstanceRole` (as the S3
//! example's README says); one grant is added beside them, an S3 grant to a role with no KmsKey
//! grant, whose bucket key access comes from the S3 grant's grantee side alone. Principals of
//! accounts xacct does not manage get the identity policy their own account would give them,
//! created here. `examples/demo/` (the same kinds again) is not applied.
//!
//! What the evaluator does not model, and so these tests do not show: service and resource control
//! policies (passed empty), session policies and permission boundaries, IAM's propagation delay,
//! KMS grants (the `Grant` mode of snapshot shares), S3 ACLs and Object Ownership, an RDS
//! snapshot's restore attribute; that S3 calls KMS on the caller's behalf for an SSE-KMS object
//! (`kms:ViaService`): the caller's `kms:Decrypt` on the bucket's key is evaluated as a request of
//! its own, decided by the same two policies; and that ECR's registry login is a call of its own
//! (evaluated as such, in the caller's account). The evaluator decided every request here as the
//! AWS documentation says it would; none needed working around.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use aws_sdk_s3::types::{
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule,
};
use serde_json::{Value, json};
use support::iam_eval::{NamedPolicy, Request, assert_decisions, identity_policies, role_session};
use support::{Moto, access, process};
use xacct::aws::{Connector, INLINE_POLICY_NAME};

/// The accounts of examples/ (see tests/support/examples_aws.py, which creates what they name).
const WORKLOADS: &str = "111111111111";
/// `data`, `data-prod` and `prod` of the examples: one account.
const DATA: &str = "222222222222";
const REGISTRY: &str = "333333333333";
/// The CI account of the ECR example, not managed.
const CI: &str = "444444444444";
const ML: &str = "555555555555";
/// A vendor's or partner's account, not managed.
const PARTNER: &str = "999999999999";
const SEOUL: &str = "ap-northeast-2";
const VIRGINIA: &str = "us-east-1";

fn role(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role/{name}")
}

fn user(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:user/{name}")
}

fn document(statements: Value) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// An identity policy allowing everything: the caller's account puts no limit, so that only the
/// resource's side decides.
fn allow_everything() -> Value {
    document(json!([{"Effect": "Allow", "Action": "*", "Resource": "*"}]))
}

/// Where the resource policy that decides a request is read in the emulator.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum On {
    Bucket {
        region: String,
        name: String,
    },
    Repository {
        account: String,
        region: String,
        name: String,
    },
    Key {
        account: String,
        region: String,
        id: String,
    },
    Trust {
        account: String,
        role: String,
    },
    /// No resource policy (a same-account call, or an action without a resource).
    Nothing,
}

/// Which identity policies of the caller decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Identity {
    /// Every identity policy of the caller, as the emulator's IAM holds them.
    Read,
    /// The same, but for xacct's inline policy: shows that the grantee side is needed.
    WithoutXacct,
    /// A policy allowing everything: only the resource side decides.
    AllowEverything,
}

/// One request, and whether it is allowed once the examples are applied and after they are
/// deleted.
struct Case {
    request: Request,
    on: On,
    identity: Identity,
    applied: bool,
    deleted: bool,
    /// Also decided without xacct's inline policy on the caller (see [`expand`]).
    grantee_side: bool,
    /// Also decided with an identity policy allowing everything (see [`expand`]).
    resource_side: bool,
}

impl Case {
    /// Denied throughout (a case is granted unless it says so: allowed once applied, denied after
    /// delete).
    fn denied(mut self) -> Case {
        self.applied = false;
        self.deleted = false;
        self
    }

    /// Allowed after delete as well (a `Retain` grant's statements, or statements that were
    /// never xacct's).
    fn kept(mut self) -> Case {
        self.deleted = self.applied;
        self
    }

    /// With the request context key `key` set to `value`.
    fn context(mut self, key: &str, value: &str) -> Case {
        self.request = self.request.context(key, value);
        self
    }

    /// A managed grantee's request: also decided without xacct's inline policy on the caller,
    /// then denied (the grantee side is needed).
    fn grantee_side(mut self) -> Case {
        self.grantee_side = true;
        self
    }

    /// A cross-account request: also decided with an identity policy allowing everything, then
    /// decided as the case is (the resource side alone decides: allowed while the grant is there,
    /// denied after delete unless the statements are kept).
    fn resource_side(mut self) -> Case {
        self.resource_side = true;
        self
    }
}

/// The cases with, for each marked so, its variants: without xacct's inline policy (denied
/// throughout) and with an identity policy allowing everything (decided as the case is: the
/// resource side alone decides, and after delete it allows only what it keeps).
fn expand(cases: Vec<Case>) -> Vec<Case> {
    let mut variants = Vec::new();
    for case in &cases {
        let variant = |identity, applied, deleted| Case {
            request: case.request.clone(),
            on: case.on.clone(),
            identity,
            applied,
            deleted,
            grantee_side: false,
            resource_side: false,
        };
        if case.grantee_side {
            variants.push(variant(Identity::WithoutXacct, false, false));
        }
        if case.resource_side {
            variants.push(variant(
                Identity::AllowEverything,
                case.applied,
                case.deleted,
            ));
        }
    }
    let mut cases = cases;
    cases.extend(variants);
    cases
}

/// A resource requests are made on: its ARN, its account, and where its policy is read.
struct Target {
    arn: String,
    account: String,
    on: On,
}

impl Target {
    fn new(arn: impl Into<String>, account: &str, on: On) -> Target {
        Target {
            arn: arn.into(),
            account: account.into(),
            on,
        }
    }

    /// `principal` calls `action` on this resource: granted unless the case says otherwise.
    fn ask(&self, label: &str, principal: &str, action: &str) -> Case {
        self.ask_on(label, principal, action, &self.arn)
    }

    /// ... on `resource`, a part of it (an S3 object) or another resource decided by the same
    /// policy.
    fn ask_on(&self, label: &str, principal: &str, action: &str, resource: &str) -> Case {
        Case {
            request: Request::new(label, principal, action, resource, &self.account),
            on: self.on.clone(),
            identity: Identity::Read,
            applied: true,
            deleted: false,
            grantee_side: false,
            resource_side: false,
        }
    }
}

/// The emulator with everything examples/ names created in it, and a copy of examples/ (with the
/// KMS example's key placeholder replaced by the key behind `alias/ml-data-lake`, which the
/// example says it is).
struct World {
    moto: Moto,
    connector: Arc<Connector>,
    dir: tempfile::TempDir,
}

impl World {
    async fn start() -> World {
        let moto = Moto::start();
        let mut setup = Command::new(process::python());
        setup
            .arg(process::root().join("tests/support/examples_aws.py"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in moto.env() {
            setup.env(k, v);
        }
        let out = setup.output().expect("the set-up script runs");
        assert!(
            out.status.success(),
            "examples_aws.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let connector = moto.connector().await;
        let world = World {
            moto,
            connector,
            dir: tempfile::tempdir().unwrap(),
        };
        let lake_key = world.lake_key().await;
        support::copy_manifests(
            &process::root().join("examples"),
            &world.dir.path().join("examples"),
            support::KEY_PLACEHOLDER,
            lake_key.rsplit('/').next().unwrap(),
        );
        world
    }

    async fn config(&self, account: &str) -> Arc<aws_types::SdkConfig> {
        self.connector
            .session(&access("setup", account))
            .await
            .expect("assume role in the emulator")
    }

    async fn iam(&self, account: &str) -> aws_sdk_iam::Client {
        self.connector.iam_client(&*self.config(account).await)
    }

    async fn kms(&self, account: &str, region: &str) -> aws_sdk_kms::Client {
        self.connector
            .kms_client(&*self.config(account).await, region)
    }

    /// The ARN of the key behind `alias` in `account` and `region`.
    async fn key_arn(&self, account: &str, region: &str, alias: &str) -> String {
        self.kms(account, region)
            .await
            .describe_key()
            .key_id(alias)
            .send()
            .await
            .expect("describe key")
            .key_metadata
            .expect("key metadata")
            .arn
            .expect("a key ARN")
    }

    /// The customer managed key of the data lake (the KMS example's key, by alias and by ARN).
    async fn lake_key(&self) -> String {
        self.key_arn(DATA, SEOUL, "alias/ml-data-lake").await
    }

    /// `xacct <verb> -f PATH... -o json` in the copy's folder (`examples/<scenario>/`), which must
    /// succeed with every grant and share `Ready=True` (`apply`) or revoked, handed over or
    /// unshared (`delete`); its JSON report.
    fn xacct(&self, verb: &str, paths: &[&str]) -> Value {
        let mut args = vec![verb.to_string()];
        for path in paths {
            args.push("-f".into());
            args.push(path.to_string());
        }
        args.extend(["-o".into(), "json".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = support::xacct_command(&self.moto, &args)
            .current_dir(self.dir.path())
            .output()
            .expect("xacct runs");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: {}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        let items = report["grants"]
            .as_array()
            .into_iter()
            .chain(report["shares"].as_array())
            .flatten();
        // Applied: Ready=True; deleted: revoked, handed over (Retain) or unshared (a share).
        let done = |ready: &Value| match verb {
            "delete" => ["Revoked", "Retained", "Unshared"]
                .contains(&ready["reason"].as_str().unwrap_or_default()),
            _ => ready["status"] == "True",
        };
        let not_ready: Vec<String> = items
            .filter(|item| !done(&item["conditions"][0]))
            .map(|item| format!("{}: {}", item["name"], item["conditions"][0]))
            .collect();
        assert!(
            output.status.success() && not_ready.is_empty() && report["errors"] == json!([]),
            "xacct {verb} {paths:?} ({}): {not_ready:#?}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        report
    }

    /// A role of an account xacct does not manage (or a role not in any manifest), with the
    /// identity policy its own account gives it.
    async fn role_with_policy(&self, account: &str, name: &str, policy: Value) -> String {
        let iam = self.iam(account).await;
        let (path, name) = match name.rsplit_once('/') {
            Some((path, name)) => (format!("/{path}/"), name),
            None => ("/".to_string(), name),
        };
        let trust = document(json!([{"Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]));
        let arn = iam
            .create_role()
            .role_name(name)
            .path(&path)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .expect("create role")
            .role
            .expect("a role")
            .arn;
        iam.put_role_policy()
            .role_name(name)
            .policy_name("own")
            .policy_document(policy.to_string())
            .send()
            .await
            .expect("put role policy");
        arn
    }

    /// Gives the existing user `name` of `account` an identity policy of its own account.
    async fn user_policy(&self, account: &str, name: &str, policy: Value) {
        self.iam(account)
            .await
            .put_user_policy()
            .user_name(name)
            .policy_name("own")
            .policy_document(policy.to_string())
            .send()
            .await
            .expect("put user policy");
    }

    /// The resource policy `on` names, read from the emulator (`None` when there is none).
    async fn resource_policy(&self, on: &On) -> Option<String> {
        match on {
            On::Bucket { region, name } => {
                let s3 = self.connector.s3_client(&*self.config(DATA).await, region);
                s3.get_bucket_policy()
                    .bucket(name)
                    .send()
                    .await
                    .ok()
                    .and_then(|o| o.policy)
            }
            On::Repository {
                account,
                region,
                name,
            } => {
                let ecr = self
                    .connector
                    .ecr_client(&*self.config(account).await, region);
                ecr.get_repository_policy()
                    .repository_name(name)
                    .send()
                    .await
                    .ok()
                    .and_then(|o| o.policy_text)
            }
            On::Key {
                account,
                region,
                id,
            } => Some(support::key_policy(&self.kms(account, region).await, id).await),
            On::Trust { account, role } => {
                let iam = self.iam(account).await;
                let found = iam.get_role().role_name(role).send().await.ok()?;
                let encoded = found.role?.assume_role_policy_document?;
                Some(
                    percent_encoding::percent_decode_str(&encoded)
                        .decode_utf8()
                        .expect("UTF-8")
                        .into_owned(),
                )
            }
            On::Nothing => None,
        }
    }

    /// Reads every policy the cases need from the emulator, evaluates them in one batch, and fails
    /// unless each is decided as expected now (`deleted`: after `xacct delete`).
    async fn decide(&self, cases: &[Case], deleted: bool) {
        let mut identities: BTreeMap<String, Vec<NamedPolicy>> = BTreeMap::new();
        let mut resources: BTreeMap<On, Option<String>> = BTreeMap::new();
        let mut batch = Vec::new();
        for case in cases {
            let principal = case.request.principal.clone();
            if !identities.contains_key(&principal) {
                // A service principal (`ecs-tasks.amazonaws.com`) has no identity policy.
                let read = match principal.split(':').nth(4) {
                    Some(account) => identity_policies(&self.iam(account).await, &principal).await,
                    None => Vec::new(),
                };
                identities.insert(principal.clone(), read);
            }
            if !resources.contains_key(&case.on) {
                let read = self.resource_policy(&case.on).await;
                resources.insert(case.on.clone(), read);
            }
            let identity: Vec<NamedPolicy> = match case.identity {
                Identity::Read => identities[&principal].clone(),
                Identity::WithoutXacct => identities[&principal]
                    .iter()
                    .filter(|p| p.name != format!("inline {INLINE_POLICY_NAME}"))
                    .cloned()
                    .collect(),
                Identity::AllowEverything => vec![NamedPolicy {
                    name: "the caller's account allows everything".into(),
                    policy: allow_everything().to_string(),
                }],
            };
            let mut request = case
                .request
                .clone()
                .identity(&identity)
                .resource_policy(resources[&case.on].as_deref());
            // A role calls as a session of it (its policies are the role's).
            if let Some(session) = role_session(&principal, "access-works") {
                request.principal = session;
            }
            match case.identity {
                Identity::Read => {}
                Identity::WithoutXacct => request.label += " (without xacct's inline policy)",
                Identity::AllowEverything => request.label += " (identity allows everything)",
            }
            let expected = if deleted { case.deleted } else { case.applied };
            batch.push((request, expected));
        }
        assert_decisions(&batch);
    }
}

/// examples/s3-batch-ecs-ec2/ and examples/kms-cross-account/ together, on a bucket encrypted with
/// the example's customer managed key (SSE-KMS): Batch job, ECS task and EC2 instance roles read
/// and write under their prefixes, with `kms:Decrypt` (and `kms:GenerateDataKey` to write) on the
/// bucket's key on both sides; the analyst (not a managed grantee) reads with its own account's
/// policy.
#[tokio::test]
async fn s3_bucket_read_and_write_with_its_kms_key_across_accounts() {
    let world = World::start().await;
    let lake_key = world.lake_key().await;
    // The bucket encrypts with the key (SSE-KMS), as the KMS example describes.
    let by_default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::AwsKms)
        .kms_master_key_id(&lake_key)
        .build()
        .unwrap();
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(by_default)
        .build();
    world
        .connector
        .s3_client(&*world.config(DATA).await, SEOUL)
        .put_bucket_encryption()
        .bucket("ml-data-lake")
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(rule)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("bucket encryption");
    // The instance profile holds ReportInstanceRole, as the example's README says (the set-up
    // script gives it a role of its own name).
    let iam = world.iam(WORKLOADS).await;
    iam.remove_role_from_instance_profile()
        .instance_profile_name("ReportInstanceProfile")
        .role_name("ReportInstanceProfileRole")
        .send()
        .await
        .unwrap();
    iam.add_role_to_instance_profile()
        .instance_profile_name("ReportInstanceProfile")
        .role_name("ReportInstanceRole")
        .send()
        .await
        .unwrap();
    // The analyst is named by accountId (not a managed grantee): the workloads account allows its
    // reads itself, and no key access.
    let reads = json!([{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "*"}]);
    world
        .user_policy(WORKLOADS, "analyst", document(reads))
        .await;
    // In no grant, with every right their own account can give: someone of the workloads account
    // and someone of another account. And an administrator of the data account, allowed to use
    // the key by the key policy's own statement (the account root, not xacct's).
    let bystander = world
        .role_with_policy(WORKLOADS, "Bystander", allow_everything())
        .await;
    let outsider = world
        .role_with_policy(REGISTRY, "Outsider", allow_everything())
        .await;
    let key_admin = world
        .role_with_policy(DATA, "KeyAdmin", allow_everything())
        .await;

    // One grant more, beside the examples: an ECS task role with S3 access and no KmsKey grant of
    // its own, so that only the S3 grant's grantee side (`kms:Decrypt` and `kms:GenerateDataKey`
    // on the bucket's key) lets it use the key; the key policy lets it in through the workloads
    // account's grant (workloads-services-use-lake-key).
    let more = world.dir.path().join("more");
    std::fs::create_dir(&more).unwrap();
    let grant = "apiVersion: xacct.dev/v1alpha1
kind: CrossAccountGrant
metadata: {name: ecs-task-writes-output, namespace: web}
spec:
  resource: {account: data, kind: S3Bucket, name: ml-data-lake, prefix: output/}
  grantee: {account: workloads, principals: [role/EcsTaskRole]}
  access: [readWrite]
";
    std::fs::write(more.join("grant.yaml"), grant).unwrap();
    let manifests = [
        "examples/s3-batch-ecs-ec2/",
        "examples/kms-cross-account/",
        "more/",
    ];

    world.xacct("apply", &manifests);

    let on_bucket = On::Bucket {
        region: SEOUL.into(),
        name: "ml-data-lake".into(),
    };
    let bucket = Target::new("arn:aws:s3:::ml-data-lake", DATA, on_bucket);
    let on_key = On::Key {
        account: DATA.into(),
        region: SEOUL.into(),
        id: lake_key.rsplit('/').next().unwrap().into(),
    };
    let key = Target::new(&lake_key, DATA, on_key);
    let object = |path: &str| format!("arn:aws:s3:::ml-data-lake/{path}");
    let (input, output, secret) = (object("input/a.csv"), object("output/m.bin"), object("x/y"));
    let job = role(WORKLOADS, "TrainingJobRole");
    let task = role(WORKLOADS, "ApiTaskRole");
    let instance = role(WORKLOADS, "ReportInstanceRole");
    let analyst = user(WORKLOADS, "analyst");
    let ecs_task = role(WORKLOADS, "EcsTaskRole");
    let vpce = "vpce-0a1b2c3d4e5f60718";
    let get = "s3:GetObject";
    let put = "s3:PutObject";

    let cases = expand(vec![
        // The Batch job's role: reads input/, reads and writes output/.
        bucket
            .ask_on("job reads input/", &job, get, &input)
            .grantee_side()
            .resource_side(),
        bucket
            .ask("job lists input/", &job, "s3:ListBucket")
            .context("s3:prefix", "input/")
            .grantee_side(),
        bucket.ask("job finds the bucket", &job, "s3:GetBucketLocation"),
        bucket
            .ask_on("job writes output/", &job, put, &output)
            .grantee_side()
            .resource_side(),
        bucket.ask_on("job deletes in output/", &job, "s3:DeleteObject", &output),
        bucket
            .ask_on("job writes input/ (read only)", &job, put, &input)
            .denied(),
        bucket
            .ask_on("job reads outside its prefixes", &job, get, &secret)
            .denied(),
        bucket
            .ask("job lists another prefix", &job, "s3:ListBucket")
            .context("s3:prefix", "x/")
            .denied(),
        bucket
            .ask("job deletes the bucket", &job, "s3:DeleteBucket")
            .denied(),
        bucket
            .ask("job changes the bucket policy", &job, "s3:PutBucketPolicy")
            .denied(),
        // The ECS task's role: reads output/ only.
        bucket
            .ask_on("task reads output/", &task, get, &output)
            .grantee_side(),
        bucket
            .ask_on("task writes output/ (read only)", &task, put, &output)
            .denied(),
        bucket
            .ask_on("task reads input/", &task, get, &input)
            .denied(),
        // The EC2 instance's role (granted by its instance profile): reads output/ through the VPC
        // endpoint only (the grant's condition, on both sides).
        bucket
            .ask_on(
                "instance reads output/ via the endpoint",
                &instance,
                get,
                &output,
            )
            .context("aws:SourceVpce", vpce)
            .grantee_side()
            .resource_side(),
        bucket
            .ask_on(
                "instance reads output/ from elsewhere",
                &instance,
                get,
                &output,
            )
            .denied(),
        bucket
            .ask_on(
                "instance reads via another endpoint",
                &instance,
                get,
                &output,
            )
            .context("aws:SourceVpce", "vpce-0000000000000000")
            .denied(),
        // The analyst reads everything with its own account's policy. Its grant is Retain: handed
        // over on delete, so the reads keep working.
        bucket
            .ask_on("analyst reads input/", &analyst, get, &input)
            .resource_side()
            .kept(),
        bucket
            .ask("analyst lists the bucket", &analyst, "s3:ListBucket")
            .kept(),
        bucket
            .ask_on(
                "analyst writes (its account allows reads)",
                &analyst,
                put,
                &output,
            )
            .denied(),
        // In no grant: denied however much their own account allows.
        bucket
            .ask_on(
                "bystander of the workloads account reads",
                &bystander,
                get,
                &output,
            )
            .denied(),
        bucket
            .ask_on("someone of another account reads", &outsider, get, &output)
            .denied(),
        // The bucket's key (SSE-KMS): reading needs kms:Decrypt, writing kms:GenerateDataKey, in
        // the caller's policy (the S3 grants' grantee side) and in the key policy (the KMS grants).
        key.ask("job decrypts with the bucket's key", &job, "kms:Decrypt")
            .grantee_side()
            .resource_side(),
        key.ask("job makes data keys to write", &job, "kms:GenerateDataKey")
            .grantee_side(),
        key.ask("task decrypts", &task, "kms:Decrypt")
            .grantee_side()
            .resource_side(),
        key.ask(
            "task makes data keys (decrypt only)",
            &task,
            "kms:GenerateDataKey",
        )
        .denied(),
        key.ask("instance decrypts", &instance, "kms:Decrypt")
            .grantee_side(),
        key.ask(
            "job schedules the key's deletion",
            &job,
            "kms:ScheduleKeyDeletion",
        )
        .denied(),
        key.ask("job changes the key policy", &job, "kms:PutKeyPolicy")
            .denied(),
        // The ECS task role of the extra grant: the bucket's key by its S3 grant alone.
        key.ask(
            "EcsTaskRole decrypts (S3 grant only)",
            &ecs_task,
            "kms:Decrypt",
        )
        .grantee_side(),
        key.ask(
            "EcsTaskRole makes data keys (S3 grant only)",
            &ecs_task,
            "kms:GenerateDataKey",
        )
        .grantee_side(),
        key.ask(
            "EcsTaskRole encrypts (not for S3)",
            &ecs_task,
            "kms:Encrypt",
        )
        .denied(),
        bucket
            .ask_on("EcsTaskRole writes output/", &ecs_task, put, &output)
            .grantee_side()
            .resource_side(),
        // The analyst's own policy has no KMS action: it cannot read the bucket's SSE-KMS objects,
        // whatever the key policy says.
        key.ask("analyst decrypts", &analyst, "kms:Decrypt")
            .denied(),
        // workloads-services-use-lake-key grants the workloads ACCOUNT (its root): every principal
        // its account allows may then use the key, the bystander too. That is what such a grant
        // means, and the example says so.
        key.ask(
            "bystander decrypts (its account is granted)",
            &bystander,
            "kms:Decrypt",
        ),
        key.ask(
            "bystander creates a grant for an AWS resource",
            &bystander,
            "kms:CreateGrant",
        )
        .context("kms:GrantIsForAWSResource", "true"),
        key.ask(
            "bystander creates a grant for itself",
            &bystander,
            "kms:CreateGrant",
        )
        .context("kms:GrantIsForAWSResource", "false")
        .denied(),
        key.ask("bystander disables the key", &bystander, "kms:DisableKey")
            .denied(),
        key.ask(
            "someone of another account decrypts",
            &outsider,
            "kms:Decrypt",
        )
        .denied(),
        // The key policy's own statement (the data account's root, delegating to its IAM) was not
        // xacct's and stays.
        key.ask(
            "the data account's admin decrypts",
            &key_admin,
            "kms:Decrypt",
        )
        .kept(),
    ]);
    world.decide(&cases, false).await;

    world.xacct("delete", &manifests);
    world.decide(&cases, true).await;
}

/// examples/ecr-build-push-user-pull/: CodeBuild of the CI account (not managed) pushes, the
/// workloads account's agents (execution roles, container instance roles, one named by its instance
/// profile) pull with the registry login on their side, a developer pulls with its own account's
/// policy, and any role of the CI account may pull (the account root is granted).
#[tokio::test]
async fn ecr_repository_push_and_pull_with_the_registry_login() {
    let world = World::start().await;
    let repo = format!("arn:aws:ecr:{SEOUL}:{REGISTRY}:repository/platform/trainer");
    let pull = [
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchCheckLayerAvailability",
    ];
    let login = json!({"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"});
    // What the accounts xacct does not manage allow their own principals.
    let push_all = json!([{"Effect": "Allow", "Action": "ecr:*", "Resource": repo}, login]);
    let codebuild = world
        .role_with_policy(CI, "service-role/CodeBuildTrainerRole", document(push_all))
        .await;
    let pull_any = json!([{"Effect": "Allow", "Action": pull, "Resource": "*"}, login]);
    let scanner = world
        .role_with_policy(CI, "ImageScanner", document(pull_any))
        .await;
    let pull_repo = json!([{"Effect": "Allow", "Action": pull, "Resource": repo}, login]);
    world
        .user_policy(WORKLOADS, "developer", document(pull_repo))
        .await;
    let developer = user(WORKLOADS, "developer");
    let bystander = world
        .role_with_policy(WORKLOADS, "Bystander", allow_everything())
        .await;
    let outsider = world
        .role_with_policy(PARTNER, "Outsider", allow_everything())
        .await;

    world.xacct("apply", &["examples/ecr-build-push-user-pull/"]);

    let on = On::Repository {
        account: REGISTRY.into(),
        region: SEOUL.into(),
        name: "platform/trainer".into(),
    };
    let repository = Target::new(&repo, REGISTRY, on);
    // The registry login: a call of its own, in the caller's account, on no resource.
    let registry = Target::new("*", WORKLOADS, On::Nothing);
    let mut cases = Vec::new();
    // The agents' roles of the workloads account (a managed grantee): pull, and log in to the
    // registry (allowed by xacct's inline policy alone).
    for name in [
        "TrainingJobExecutionRole",
        "BatchInstanceRole", // the role of instanceProfile/BatchInstanceProfile
        "ApiTaskExecutionRole",
        "EcsInstanceRole",
    ] {
        let agent = role(WORKLOADS, name);
        for action in pull {
            let label = format!("{name} pulls ({action})");
            cases.push(
                repository
                    .ask(&label, &agent, action)
                    .grantee_side()
                    .resource_side(),
            );
        }
        let label = format!("{name} logs in to the registry");
        cases.push(
            registry
                .ask(&label, &agent, "ecr:GetAuthorizationToken")
                .grantee_side(),
        );
        let label = format!("{name} pushes (pull only)");
        cases.push(repository.ask(&label, &agent, "ecr:PutImage").denied());
    }
    // CodeBuild pushes and pulls, and nothing else.
    for action in [
        "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload",
        "ecr:PutImage",
        "ecr:BatchGetImage",
    ] {
        let label = format!("CodeBuild ({action})");
        cases.push(repository.ask(&label, &codebuild, action).resource_side());
    }
    for action in [
        "ecr:DeleteRepository",
        "ecr:SetRepositoryPolicy",
        "ecr:BatchDeleteImage",
    ] {
        let label = format!("CodeBuild ({action}, not granted)");
        cases.push(repository.ask(&label, &codebuild, action).denied());
    }
    cases.extend([
        // Any role of the CI account may pull (its root is granted), with its own policy.
        repository
            .ask("a CI account role pulls", &scanner, "ecr:BatchGetImage")
            .resource_side(),
        repository
            .ask("a CI account role pushes", &scanner, "ecr:PutImage")
            .denied(),
        // The developer pulls with its own account's policy (named by accountId: no grantee side).
        repository
            .ask("developer pulls", &developer, "ecr:BatchGetImage")
            .resource_side(),
        repository
            .ask("developer pushes", &developer, "ecr:PutImage")
            .denied(),
        // In no grant: denied however much their own account allows.
        repository
            .ask(
                "bystander of the workloads account pulls",
                &bystander,
                "ecr:BatchGetImage",
            )
            .denied(),
        repository
            .ask(
                "someone of another account pulls",
                &outsider,
                "ecr:BatchGetImage",
            )
            .denied(),
    ]);
    let cases = expand(cases);
    world.decide(&cases, false).await;

    world.xacct("delete", &["examples/ecr-build-push-user-pull/"]);
    world.decide(&cases, true).await;
}

/// examples/switch-role/: people on call switch into a read-only role with MFA, a Batch job's role
/// assumes a data reader role (no external id), and a vendor's role of an account xacct does not
/// manage assumes an audit role presenting its external id. The roles' own trust in a service was
/// not xacct's and stays.
#[tokio::test]
async fn switch_role_with_and_without_the_external_id() {
    let world = World::start().await;
    let assume_any = json!([{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]);
    let vendor = world
        .role_with_policy(PARTNER, "MonitoringIntegration", document(assume_any))
        .await;
    let other_vendor = world
        .role_with_policy(PARTNER, "OtherIntegration", allow_everything())
        .await;
    let bystander = world
        .role_with_policy(WORKLOADS, "Bystander", allow_everything())
        .await;

    world.xacct("apply", &["examples/switch-role/"]);

    let target = |name: &str| {
        let on = On::Trust {
            account: DATA.into(),
            role: name.into(),
        };
        Target::new(role(DATA, name), DATA, on)
    };
    let (read_only, data_reader, audit) = (
        target("ProdReadOnly"),
        target("DataReader"),
        target("VendorAudit"),
    );
    let oncall = role(WORKLOADS, "OnCallEngineer");
    let alice = user(WORKLOADS, "alice");
    let job = role(WORKLOADS, "TrainingJobRole");
    let (assume, mfa, external_id) = (
        "sts:AssumeRole",
        "aws:MultiFactorAuthPresent",
        "sts:ExternalId",
    );
    let vendor_id = "vendor-issued-7f3a9c";
    let cases = expand(vec![
        // With MFA only (the grant's condition, on both sides).
        read_only
            .ask("on call switches with MFA", &oncall, assume)
            .context(mfa, "true")
            .grantee_side()
            .resource_side(),
        read_only
            .ask("alice switches with MFA", &alice, assume)
            .context(mfa, "true")
            .grantee_side(),
        read_only
            .ask("on call switches without MFA", &oncall, assume)
            .context(mfa, "false")
            .denied(),
        read_only
            .ask("on call switches, MFA unknown", &oncall, assume)
            .denied(),
        data_reader
            .ask("on call switches into another role", &oncall, assume)
            .denied(),
        // No external id in the grant: none needed (one given anyway does not matter).
        data_reader
            .ask("job assumes the data reader", &job, assume)
            .grantee_side()
            .resource_side(),
        data_reader
            .ask(
                "job assumes the data reader, with an external id",
                &job,
                assume,
            )
            .context(external_id, "anything"),
        read_only
            .ask("job assumes the read-only role", &job, assume)
            .context(mfa, "true")
            .denied(),
        data_reader
            .ask("job tags its session (not granted)", &job, "sts:TagSession")
            .denied(),
        data_reader
            .ask(
                "job changes the trust policy",
                &job,
                "iam:UpdateAssumeRolePolicy",
            )
            .denied(),
        // The vendor: with its external id only.
        audit
            .ask("vendor assumes with its external id", &vendor, assume)
            .context(external_id, vendor_id)
            .resource_side(),
        audit
            .ask("vendor assumes without an external id", &vendor, assume)
            .denied(),
        audit
            .ask("vendor assumes with a wrong external id", &vendor, assume)
            .context(external_id, "vendor-issued-0000")
            .denied(),
        audit
            .ask(
                "another role of the vendor's account",
                &other_vendor,
                assume,
            )
            .context(external_id, vendor_id)
            .denied(),
        data_reader
            .ask("bystander of the workloads account", &bystander, assume)
            .denied(),
        // The role's own trust in a service was not xacct's: it stays through apply and delete.
        data_reader
            .ask(
                "ECS tasks assume the data reader",
                "ecs-tasks.amazonaws.com",
                assume,
            )
            .kept(),
        data_reader
            .ask(
                "EC2 assumes the data reader (not trusted)",
                "ec2.amazonaws.com",
                assume,
            )
            .denied(),
    ]);
    world.decide(&cases, false).await;

    world.xacct("delete", &["examples/switch-role/"]);
    world.decide(&cases, true).await;
}

/// examples/sagemaker-endpoint/: the churn API's task role (a managed grantee) and a partner's role
/// assume the role xacct creates for the endpoint, each with its external id, and that role may
/// invoke the endpoint and nothing else. Deleting the grants deletes the role.
#[tokio::test]
async fn sagemaker_endpoint_through_the_invocation_role() {
    let world = World::start().await;
    let assume_any = json!([{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]);
    let partner = world
        .role_with_policy(PARTNER, "PartnerScoring", document(assume_any))
        .await;
    let bystander = world
        .role_with_policy(WORKLOADS, "Bystander", allow_everything())
        .await;

    let report = world.xacct("apply", &["examples/sagemaker-endpoint/"]);
    let invoker = report["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "churn-app/api-invokes-churn-predictor")
        .and_then(|g| g["roleArn"].as_str())
        .expect("the invocation role in the report")
        .to_string();
    let invoker_name = invoker.rsplit('/').next().unwrap().to_string();

    let on = On::Trust {
        account: ML.into(),
        role: invoker_name.clone(),
    };
    let invocation_role = Target::new(&invoker, ML, on);
    // Endpoints have no resource policy.
    let endpoint = Target::new(
        format!("arn:aws:sagemaker:{SEOUL}:{ML}:endpoint/churn-predictor"),
        ML,
        On::Nothing,
    );
    let other_endpoint = format!("arn:aws:sagemaker:{SEOUL}:{ML}:endpoint/fraud");
    let api = role(WORKLOADS, "ChurnApiTaskRole");
    let (assume, external_id) = ("sts:AssumeRole", "sts:ExternalId");
    let (api_id, partner_id) = ("churn-api-2026", "partner-issued-4be1d0");
    let invoke = "sagemaker:InvokeEndpoint";
    let cases = expand(vec![
        // Into the invocation role: each grant's principal with its own external id.
        invocation_role
            .ask("API task role assumes the invocation role", &api, assume)
            .context(external_id, api_id)
            .grantee_side()
            .resource_side(),
        invocation_role
            .ask("API task role without the external id", &api, assume)
            .denied(),
        invocation_role
            .ask("API task role with the partner's external id", &api, assume)
            .context(external_id, partner_id)
            .denied(),
        invocation_role
            .ask("partner assumes the invocation role", &partner, assume)
            .context(external_id, partner_id)
            .resource_side(),
        invocation_role
            .ask("partner without the external id", &partner, assume)
            .denied(),
        invocation_role
            .ask("partner with the API's external id", &partner, assume)
            .context(external_id, api_id)
            .denied(),
        invocation_role
            .ask("bystander of the workloads account", &bystander, assume)
            .context(external_id, api_id)
            .denied(),
        // Calling the endpoint from the other account directly is denied, even with every right
        // the caller's account can give: there is no resource policy to let it in.
        endpoint
            .ask(
                "bystander invokes the endpoint directly",
                &bystander,
                invoke,
            )
            .denied(),
        // The invocation role, in the endpoint's account: its inline policy decides.
        endpoint.ask("the role invokes the endpoint", &invoker, invoke),
        endpoint.ask(
            "the role invokes the endpoint asynchronously",
            &invoker,
            "sagemaker:InvokeEndpointAsync",
        ),
        endpoint
            .ask(
                "the role deletes the endpoint",
                &invoker,
                "sagemaker:DeleteEndpoint",
            )
            .denied(),
        endpoint
            .ask_on(
                "the role invokes another endpoint",
                &invoker,
                invoke,
                &other_endpoint,
            )
            .denied(),
    ]);
    world.decide(&cases, false).await;

    world.xacct("delete", &["examples/sagemaker-endpoint/"]);
    let gone = world
        .iam(ML)
        .await
        .get_role()
        .role_name(&invoker_name)
        .send()
        .await;
    assert!(
        gone.is_err(),
        "the invocation role is deleted with its last grant"
    );
    world.decide(&cases, true).await;
}

/// examples/rds-snapshot-share/, the key policy side: the encrypted manual snapshot is shared with
/// the analytics account in KeyPolicy mode, so the snapshot's key policy lets that account's
/// principals (with their own account's policy) use the key and create grants for AWS resources,
/// as restoring the snapshot needs. The other share (Grant mode: KMS grants on the same key) is
/// applied too, but KMS grants are not policies: the evaluator does not see them (they are checked
/// as grants in tests/snapshot_shares.rs), and neither is the snapshot's restore attribute.
#[tokio::test]
async fn rds_snapshot_share_key_policy_lets_the_target_account_use_the_key() {
    let world = World::start().await;
    let key_arn = world.key_arn(DATA, VIRGINIA, "alias/share-key").await;
    // The analytics account's restore role, with what its own account allows it.
    let kms_and_rds = json!([{"Effect": "Allow", "Action": ["kms:*", "rds:*"], "Resource": "*"}]);
    let restorer = world
        .role_with_policy(WORKLOADS, "SnapshotRestorer", document(kms_and_rds))
        .await;
    let outsider = world
        .role_with_policy(PARTNER, "Outsider", allow_everything())
        .await;
    let key_admin = world
        .role_with_policy(DATA, "KeyAdmin", allow_everything())
        .await;

    world.xacct("apply", &["examples/rds-snapshot-share/"]);

    let on = On::Key {
        account: DATA.into(),
        region: VIRGINIA.into(),
        id: key_arn.rsplit('/').next().unwrap().into(),
    };
    let key = Target::new(&key_arn, DATA, on);
    let for_aws = "kms:GrantIsForAWSResource";
    let cases = expand(vec![
        key.ask("the target account decrypts", &restorer, "kms:Decrypt")
            .resource_side(),
        key.ask(
            "the target account describes the key",
            &restorer,
            "kms:DescribeKey",
        ),
        key.ask(
            "the target account re-encrypts",
            &restorer,
            "kms:ReEncryptFrom",
        ),
        key.ask(
            "the target account makes data keys",
            &restorer,
            "kms:GenerateDataKey",
        ),
        key.ask(
            "the target account creates a grant for RDS",
            &restorer,
            "kms:CreateGrant",
        )
        .context(for_aws, "true")
        .resource_side(),
        key.ask(
            "the target account creates a grant for itself",
            &restorer,
            "kms:CreateGrant",
        )
        .context(for_aws, "false")
        .denied(),
        key.ask(
            "the target account deletes the key",
            &restorer,
            "kms:ScheduleKeyDeletion",
        )
        .denied(),
        key.ask(
            "the target account changes the key policy",
            &restorer,
            "kms:PutKeyPolicy",
        )
        .denied(),
        key.ask(
            "an account not shared with decrypts",
            &outsider,
            "kms:Decrypt",
        )
        .denied(),
        // The key policy's own statement (the data account's root) was not xacct's and stays.
        key.ask(
            "the data account's admin decrypts",
            &key_admin,
            "kms:Decrypt",
        )
        .kept(),
    ]);
    world.decide(&cases, false).await;

    world.xacct("delete", &["examples/rds-snapshot-share/"]);
    world.decide(&cases, true).await;
}
