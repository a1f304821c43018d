//! An independent IAM evaluator for the tests: whether AWS would allow a request, given the
//! policies read back from the AWS emulator. It runs `tests/support/iam-eval/evaluate.mjs` (Node)
//! over the npm package `@cloud-copilot/iam-simulate`, pinned by that folder's `package-lock.json`
//! and installed by `scripts/setup-emulators.sh` (AGPL-3.0: a test tool, never shipped).
//!
//! The simulator stands in for AWS's request authorization: the cross-account rule (an Allow in the
//! caller's identity policies and in the resource's policy), the KMS key policy rule (the key
//! policy must allow, directly or by delegating to the account's IAM), the trust policy rule for
//! `sts:AssumeRole`, and condition keys. Service control and resource control policies are passed
//! empty; session policies, permission boundaries, IAM's propagation delay and service-specific
//! checks (S3 ACLs and Object Ownership, KMS grants, the ECR registry login as its own call) are
//! not modelled.
//!
//! One Node process per batch: collect the requests, then [`evaluate`] them together.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A policy attached to the calling principal (inline or managed), as read from the emulator.
#[derive(Clone, Debug, Serialize)]
pub struct NamedPolicy {
    pub name: String,
    /// The policy document (JSON text).
    pub policy: String,
}

/// One request to evaluate: who calls what on which resource, with which context keys, and the
/// policies that decide it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// A short name for messages (`"job reads input/"`).
    #[serde(skip)]
    pub label: String,
    /// The calling principal: a role session's, a user's or an account root's ARN, or a service
    /// (`ecs-tasks.amazonaws.com`).
    pub principal: String,
    /// `service:Action`.
    pub action: String,
    /// The resource's ARN (`*` for actions without a resource, e.g. `ecr:GetAuthorizationToken`).
    pub resource: String,
    /// The account that owns the resource.
    pub resource_account: String,
    /// Request context keys (`sts:ExternalId`, `aws:SourceVpce`, `s3:prefix`...).
    pub context: BTreeMap<String, Value>,
    /// Every identity policy of the caller.
    pub identity_policies: Vec<NamedPolicy>,
    /// The resource's policy (bucket, repository, key or trust policy), if it has one.
    pub resource_policy: Option<String>,
}

impl Request {
    /// A request of `principal` for `action` on `resource` of `resource_account`, with no context and
    /// no policies yet.
    pub fn new(
        label: impl Into<String>,
        principal: impl Into<String>,
        action: &str,
        resource: impl Into<String>,
        resource_account: &str,
    ) -> Request {
        Request {
            label: label.into(),
            principal: principal.into(),
            action: action.into(),
            resource: resource.into(),
            resource_account: resource_account.into(),
            context: BTreeMap::new(),
            identity_policies: Vec::new(),
            resource_policy: None,
        }
    }

    /// With the request context key `key` set to `value`.
    pub fn context(mut self, key: &str, value: &str) -> Request {
        self.context.insert(key.into(), Value::String(value.into()));
        self
    }

    /// Decided by these identity policies of the caller.
    pub fn identity(mut self, policies: &[NamedPolicy]) -> Request {
        self.identity_policies = policies.to_vec();
        self
    }

    /// Decided by this resource policy too (none when `None`).
    pub fn resource_policy(mut self, policy: Option<&str>) -> Request {
        self.resource_policy = policy.map(str::to_string);
        self
    }
}

/// AWS's final decision on a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Decision {
    Allowed,
    ImplicitlyDenied,
    ExplicitlyDenied,
}

impl Decision {
    pub fn allowed(self) -> bool {
        self == Decision::Allowed
    }
}

/// The evaluator's answer to one request.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub result: Option<Decision>,
    /// The identity policies' own result, and the resource policy's (for messages).
    pub identity: Option<String>,
    pub resource: Option<String>,
    pub same_account: Option<bool>,
    #[serde(default)]
    pub ignored_context_keys: Vec<String>,
    pub error: Option<String>,
}

/// What [`evaluate`] returns for each request: the decision, and how each side decided.
#[derive(Clone, Debug)]
pub struct Evaluated {
    pub label: String,
    pub decision: Decision,
    pub identity: String,
    pub resource: String,
}

impl std::fmt::Display for Evaluated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {:?} (identity policies: {}, resource policy: {})",
            self.label, self.decision, self.identity, self.resource
        )
    }
}

fn folder() -> PathBuf {
    super::process::root().join("tests/support/iam-eval")
}

/// Evaluates `requests` in one Node process and returns the answers in order. Fails the test, with
/// the evaluator's standard error, when Node or the package is missing, when the simulator refuses
/// a request (an invalid policy or action), or when it ignored a context key the test set (so no
/// condition is silently left unevaluated).
pub fn evaluate(requests: &[Request]) -> Vec<Evaluated> {
    let package = folder().join("node_modules/@cloud-copilot/iam-simulate/package.json");
    assert!(
        package.exists(),
        "the IAM evaluator is not installed ({} is missing): run scripts/setup-emulators.sh",
        package.display()
    );
    let node = std::env::var("XACCT_NODE").unwrap_or_else(|_| "node".into());
    let mut child = Command::new(&node)
        .arg(folder().join("evaluate.mjs"))
        .current_dir(folder())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("the IAM evaluator needs Node ({node}: {e}): install Node 20 and npm, then run scripts/setup-emulators.sh")
        });
    let input = serde_json::to_vec(requests).expect("requests serialize");
    let mut stdin = child.stdin.take().expect("stdin");
    // Written on another thread: a large batch would fill the pipe before Node reads all of it.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("the IAM evaluator runs");
    writer
        .join()
        .expect("writer thread")
        .expect("requests written to the IAM evaluator");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the IAM evaluator failed ({}):\n{stderr}",
        output.status
    );
    let answers: Vec<Answer> = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "the IAM evaluator printed no answers ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    assert_eq!(answers.len(), requests.len(), "one answer per request");
    requests
        .iter()
        .zip(answers)
        .map(|(request, answer)| {
            if let Some(error) = &answer.error {
                panic!(
                    "the IAM evaluator refused {:?}: {error}\n{}\n{stderr}",
                    request.label,
                    serde_json::to_string_pretty(request).unwrap()
                );
            }
            assert!(
                answer.ignored_context_keys.is_empty(),
                "{:?}: the evaluator ignored the context keys {:?} (they do not apply to {})",
                request.label,
                answer.ignored_context_keys,
                request.action
            );
            Evaluated {
                label: request.label.clone(),
                decision: answer.result.expect("a result"),
                identity: answer.identity.unwrap_or_else(|| "-".into()),
                resource: answer.resource.unwrap_or_else(|| "-".into()),
            }
        })
        .collect()
}

/// Evaluates `requests` and fails the test, listing every request decided otherwise, unless each
/// is decided as `expected` says (`true`: `Allowed`; `false`: implicitly or explicitly denied).
pub fn assert_decisions(requests: &[(Request, bool)]) -> Vec<Evaluated> {
    let batch: Vec<Request> = requests.iter().map(|(r, _)| r.clone()).collect();
    let evaluated = evaluate(&batch);
    for (e, (_, expected)) in evaluated.iter().zip(requests) {
        println!("{} {e}", if *expected { "allow" } else { "deny " });
    }
    let wrong: Vec<String> = evaluated
        .iter()
        .zip(requests)
        .filter(|(e, (_, expected))| e.decision.allowed() != *expected)
        .map(|(e, (_, expected))| {
            format!(
                "expected {}, got {e}",
                if *expected { "Allowed" } else { "denied" }
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} requests decided otherwise:\n  {}",
        wrong.len(),
        requests.len(),
        wrong.join("\n  ")
    );
    evaluated
}

/// Decodes a policy document IAM returns URL-encoded.
fn decode(encoded: &str) -> String {
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .expect("UTF-8")
        .into_owned()
}

/// Every identity policy of the role or user `arn` in the emulator's IAM (inline policies, and the
/// default version of each attached managed policy); none when the principal does not exist.
pub async fn identity_policies(iam: &aws_sdk_iam::Client, arn: &str) -> Vec<NamedPolicy> {
    let (_, rest) = arn.split_once(":iam::").expect("an IAM ARN");
    let (_, path) = rest.split_once(':').expect("account:resource");
    let name = path.rsplit('/').next().expect("a name").to_string();
    let mut policies = Vec::new();
    let managed_arns: Vec<String>;
    if path.starts_with("role/") {
        let Ok(inline) = iam.list_role_policies().role_name(&name).send().await else {
            return policies;
        };
        for policy in inline.policy_names() {
            let out = iam
                .get_role_policy()
                .role_name(&name)
                .policy_name(policy)
                .send()
                .await
                .expect("get role policy");
            policies.push(NamedPolicy {
                name: format!("inline {policy}"),
                policy: decode(out.policy_document()),
            });
        }
        let attached = iam
            .list_attached_role_policies()
            .role_name(&name)
            .send()
            .await
            .expect("list attached role policies");
        managed_arns = attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_string))
            .collect();
    } else if path.starts_with("user/") {
        let Ok(inline) = iam.list_user_policies().user_name(&name).send().await else {
            return policies;
        };
        for policy in inline.policy_names() {
            let out = iam
                .get_user_policy()
                .user_name(&name)
                .policy_name(policy)
                .send()
                .await
                .expect("get user policy");
            policies.push(NamedPolicy {
                name: format!("inline {policy}"),
                policy: decode(out.policy_document()),
            });
        }
        let attached = iam
            .list_attached_user_policies()
            .user_name(&name)
            .send()
            .await
            .expect("list attached user policies");
        managed_arns = attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_string))
            .collect();
    } else {
        panic!("not a role or user: {arn}");
    }
    for policy_arn in managed_arns {
        let policy = iam
            .get_policy()
            .policy_arn(&policy_arn)
            .send()
            .await
            .expect("get policy")
            .policy
            .expect("a policy");
        let version = iam
            .get_policy_version()
            .policy_arn(&policy_arn)
            .version_id(policy.default_version_id().expect("a default version"))
            .send()
            .await
            .expect("get policy version")
            .policy_version
            .expect("a version");
        policies.push(NamedPolicy {
            name: policy_arn,
            policy: decode(version.document().expect("a document")),
        });
    }
    policies
}

/// The ARN a role's callers have once they assumed it (`arn:aws:sts::ACCOUNT:assumed-role/NAME/
/// SESSION`, the path left out, as STS writes it): what AWS authorizes a workload's calls as.
/// `None` for anything but a role.
pub fn role_session(arn: &str, session: &str) -> Option<String> {
    let (_, rest) = arn.split_once(":iam::")?;
    let (account, path) = rest.split_once(":role/")?;
    let name = path.rsplit('/').next()?;
    Some(format!(
        "arn:aws:sts::{account}:assumed-role/{name}/{session}"
    ))
}
