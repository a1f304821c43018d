//! Fault injection: a proxy (`support::fault_proxy`) between xacct and the AWS emulator answers a
//! seeded fraction of the requests with what AWS sends when it is overloaded or failing (S3
//! `503 SlowDown`, KMS and ECR `400 ThrottlingException`, IAM `400 Throttling`, `503
//! RequestLimitExceeded`, `500 InternalError`), drops connections (before the request reaches moto,
//! or after, losing the answer of a write that took effect), adds latency, or never answers. It
//! shows that:
//!
//! - one `apply` converges anyway with the default retry budget, under 30% throttling of S3, ECR,
//!   KMS, IAM (the grantee side) and STS, and under drops and 500s: every grant Ready, each policy
//!   holding exactly the Sids its grants own (a fault-free apply afterwards has nothing to write),
//!   and every foreign statement intact, in order, after every run;
//! - retries are bounded: a call failing every time is tried [`MAX_ATTEMPTS`] times per policy (the
//!   budget of these tests, [`FEW`]),
//!   spaced by exponential backoff with jitter (no hot loop), then the grant fails with a typed,
//!   transient reason (`Throttled`, `AwsUnavailable`) and nothing is written; a call that never
//!   gets an answer times out (`ATTEMPT_TIMEOUT`) and is retried the same way;
//! - the call log, and so the `xacct_aws_api_calls_total` metric, counts every attempt as the
//!   caller saw it: exactly as many `throttled` and `error` as the proxy injected;
//! - the controller converges grants under the same faults, rides out a throttling storm with
//!   backoff and recovers after it, and keeps foreign statements throughout.
//!
//! Faults are reproducible: the proxy decides from the seed and the request's content, not from
//! arrival order. Each test's seed was chosen to give the faults it needs to show something (it says
//! so when a seed does not); `XACCT_FAULT_SEED` runs the tests with another.
//!
//! What it cannot show: moto itself never throttles or fails, so the faults are the proxy's, in the
//! shapes AWS documents; AWS's real rate limits are not exercised (`tests/retry_budget.rs` covers
//! `x-amz-retry-after`; the SDK's retry quota is off). STS is faulted only by the throttling test
//! (`FaultPlan`'s default leaves it alone): xacct assumes each account's role once and caches the
//! credentials, so that test starts each seed with cold credentials, and elsewhere a failed
//! AssumeRole would fail every grant of the account at once, hiding the per-policy behaviour the
//! other tests look at. Moto does not enforce the policies it stores, so the tests check documents,
//! not access.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Api;
use serde_json::{Value, json};
use support::controller::{Harness, create};
use support::fault_proxy::{Fault, FaultPlan, FaultProxy, Seen};
use support::fixtures::{AccountFixture, GrantFixture};
use support::kube_api::eventually;
use support::{Clients, DATA_ACCOUNT, DEV_ACCOUNT, Moto, accounts_yaml, clients, manifests};
use xacct::api::{CrossAccountGrant, PolicyKind};
use xacct::aws::{
    AwsPolicies, CallOutcome, Connector, ConnectorOptions, INLINE_POLICY_NAME, RetryBudget,
};
use xacct::engine::{
    AccountDirectory, Engine, EngineSettings, GrantInput, Operation, Report, account_access,
};
use xacct::policy::{GrantOwner, PolicyDocument, Statement};

/// The retry budget of the tests that fail calls every time: few attempts, so that they end soon.
const FEW: RetryBudget = RetryBudget {
    max_attempts: 4,
    call_timeout: Duration::from_secs(60),
};
/// [`FEW`]'s attempts.
const MAX_ATTEMPTS: usize = FEW.max_attempts as usize;

/// What holds a policy xacct writes into.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Holder {
    Bucket(String),
    Repository(String),
    /// By key ARN.
    Key(String),
    /// xacct's inline policy on a role of the dev account.
    RoleInline(String),
}

impl Holder {
    fn of(kind: PolicyKind, name: &str) -> Holder {
        match kind {
            PolicyKind::S3BucketPolicy => Holder::Bucket(name.into()),
            PolicyKind::EcrRepositoryPolicy => Holder::Repository(name.into()),
            PolicyKind::KmsKeyPolicy => Holder::Key(name.into()),
            PolicyKind::RoleInlinePolicy => Holder::RoleInline(name.into()),
            other => panic!("not used in these tests: {other:?}"),
        }
    }
}

/// moto, the proxy in front of it, and two connectors: one straight to moto for setting up and
/// inspecting (never faulted), one through the proxy for xacct.
struct World {
    moto: Moto,
    proxy: FaultProxy,
    tool: Arc<Connector>,
    data: Clients,
    dev: Clients,
    /// The statements each policy had before xacct ran, in order.
    foreign: BTreeMap<Holder, Vec<Value>>,
}

impl World {
    /// xacct with its default retry budget.
    async fn start() -> World {
        World::with_budget(RetryBudget::default()).await
    }

    /// xacct with `budget`.
    async fn with_budget(budget: RetryBudget) -> World {
        let moto = Moto::start();
        let proxy = FaultProxy::start(&moto.endpoint).await;
        let direct = moto.connector().await;
        let options = ConnectorOptions {
            retry: budget,
            ..proxy.options(moto.options())
        };
        let tool = Arc::new(Connector::new(options).await);
        let data = clients(&direct, DATA_ACCOUNT).await;
        let dev = clients(&direct, DEV_ACCOUNT).await;
        World {
            moto,
            proxy,
            tool,
            data,
            dev,
            foreign: BTreeMap::new(),
        }
    }

    fn engine(&self) -> Engine {
        Engine::new(
            Arc::new(AwsPolicies::new(self.tool.clone())),
            EngineSettings::default(),
        )
    }

    /// A bucket whose policy holds a foreign statement.
    async fn bucket(&mut self, name: &str) {
        self.data
            .s3
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .expect("create bucket");
        let foreign = vec![
            json!({"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*",
            "Action": "s3:*", "Resource": [format!("arn:aws:s3:::{name}"), format!("arn:aws:s3:::{name}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}),
        ];
        self.data
            .s3
            .put_bucket_policy()
            .bucket(name)
            .policy(document(&foreign))
            .send()
            .await
            .expect("put bucket policy");
        self.foreign.insert(Holder::Bucket(name.into()), foreign);
    }

    /// A repository whose policy holds a foreign statement.
    async fn repository(&mut self, name: &str) {
        self.data
            .ecr
            .create_repository()
            .repository_name(name)
            .send()
            .await
            .expect("create repository");
        let foreign = vec![json!({"Sid": "LambdaPull", "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]})];
        self.data
            .ecr
            .set_repository_policy()
            .repository_name(name)
            .policy_text(document(&foreign))
            .send()
            .await
            .expect("set repository policy");
        self.foreign
            .insert(Holder::Repository(name.into()), foreign);
    }

    /// A key whose policy holds the account's root statement and an auditor's; returns its id.
    async fn key(&mut self, alias: Option<&str>) -> String {
        let key = support::create_key(&self.data.kms).await;
        let id = key.key_id().to_string();
        let keys = self
            .foreign
            .keys()
            .filter(|h| matches!(h, Holder::Key(_)))
            .count();
        self.proxy.stable_name(&id, &format!("key-{keys}"));
        let foreign = vec![
            json!({"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{DATA_ACCOUNT}:root")}, "Action": "kms:*", "Resource": "*"}),
            json!({"Sid": "AuditorsDescribe", "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{DATA_ACCOUNT}:role/Auditor")},
                "Action": "kms:DescribeKey", "Resource": "*"}),
        ];
        self.data
            .kms
            .put_key_policy()
            .key_id(&id)
            .policy_name("default")
            .policy(document(&foreign))
            .send()
            .await
            .expect("put key policy");
        if let Some(alias) = alias {
            self.data
                .kms
                .create_alias()
                .alias_name(alias)
                .target_key_id(&id)
                .send()
                .await
                .expect("create alias");
        }
        self.foreign.insert(
            Holder::Key(key.arn().expect("key ARN").to_string()),
            foreign,
        );
        id
    }

    /// A role of the dev account whose `xacct` inline policy already holds its team's statement.
    async fn grantee_role(&mut self, name: &str) {
        support::create_role(&self.dev.iam, name, "ecs-tasks.amazonaws.com").await;
        let foreign = vec![json!({"Sid": "TeamScratch", "Effect": "Allow",
            "Action": "s3:ListAllMyBuckets", "Resource": "*"})];
        self.dev
            .iam
            .put_role_policy()
            .role_name(name)
            .policy_name(INLINE_POLICY_NAME)
            .policy_document(document(&foreign))
            .send()
            .await
            .expect("put role policy");
        self.foreign
            .insert(Holder::RoleInline(name.into()), foreign);
    }

    /// The policy document of `holder`, read straight from moto.
    async fn read(&self, holder: &Holder) -> Option<String> {
        match holder {
            Holder::Bucket(name) => {
                self.data
                    .s3
                    .get_bucket_policy()
                    .bucket(name)
                    .send()
                    .await
                    .ok()?
                    .policy
            }
            Holder::Repository(name) => {
                self.data
                    .ecr
                    .get_repository_policy()
                    .repository_name(name)
                    .send()
                    .await
                    .ok()?
                    .policy_text
            }
            Holder::Key(arn) => Some(support::key_policy(&self.data.kms, arn).await),
            Holder::RoleInline(role) => {
                support::role_policy(&self.dev.iam, role, INLINE_POLICY_NAME).await
            }
        }
    }

    /// Every foreign statement is where it was, in order, and nothing else that is not xacct's
    /// joined it.
    async fn assert_foreign_intact(&self, when: &str) {
        for (holder, foreign) in &self.foreign {
            let policy = self
                .read(holder)
                .await
                .unwrap_or_else(|| panic!("{when}: the policy of {holder:?} is gone"));
            let doc = PolicyDocument::parse(&policy).expect("policy parses");
            let others: Vec<&Statement> = doc
                .statements
                .iter()
                .filter(|s| !is_xacct(s.sid()))
                .collect();
            assert_eq!(others.len(), foreign.len(), "{when}: {holder:?}: {policy}");
            for (have, want) in others.iter().zip(foreign) {
                let want = Statement::from_json(want.clone()).expect("valid statement");
                assert!(
                    have.same_meaning(&want),
                    "{when}: {holder:?} lost {want:?}: {policy}"
                );
            }
        }
    }

    /// Each policy holds exactly the Sids the report's grants own there (once each), besides its
    /// foreign statements, and every seeded policy is one of them.
    async fn assert_exactly_owned(&self, report: &Report) {
        let mut wanted: BTreeMap<Holder, BTreeSet<String>> = BTreeMap::new();
        for grant in &report.grants {
            for target in &grant.targets {
                wanted
                    .entry(Holder::of(target.location.kind, &target.location.name))
                    .or_default()
                    .extend(target.sids.iter().cloned());
            }
        }
        assert_eq!(
            wanted.keys().collect::<Vec<_>>(),
            self.foreign.keys().collect::<Vec<_>>(),
            "the grants reach every policy of the test"
        );
        for (holder, sids) in wanted {
            let policy = self.read(&holder).await.expect("a policy");
            let owned: Vec<String> = support::sids(&policy)
                .into_iter()
                .flatten()
                .filter(|s| is_xacct(Some(s)))
                .collect();
            let unique: BTreeSet<String> = owned.iter().cloned().collect();
            assert_eq!(owned.len(), unique.len(), "no Sid twice: {policy}");
            assert_eq!(unique, sids, "{holder:?}: {policy}");
        }
    }
}

/// The seed of a test's faults: `default`, or `XACCT_FAULT_SEED` to try others (a test then says
/// when a seed does not produce the faults it needs to show anything).
fn seed(default: u64) -> u64 {
    std::env::var("XACCT_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn document(statements: &[Value]) -> String {
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

fn is_xacct(sid: Option<&str>) -> bool {
    sid.is_some_and(|s| s.starts_with("Xacct"))
}

/// `apps/reads-<bucket>`: read access to `bucket` for role/AppRole of the dev account.
fn reads(bucket: &str) -> GrantFixture {
    GrantFixture::new("apps", &format!("reads-{bucket}"))
        .bucket(bucket)
        .principals(&["role/AppRole"])
}

/// Three buckets, two repositories, two keys (one by alias) and a grantee role, each policy with a
/// foreign statement, and eight grants on them: two on one bucket, two on the grantee role's
/// inline policy (S3 and ECR, with its `Login` statement).
async fn estate(world: &mut World) -> (AccountDirectory, Vec<GrantInput>) {
    for bucket in ["lake-a", "lake-b", "lake-c"] {
        world.bucket(bucket).await;
    }
    for repository in ["ml/trainer", "ml/scorer"] {
        world.repository(repository).await;
    }
    let key = world.key(None).await;
    world.key(Some("alias/orders")).await;
    world.grantee_role("JobRole").await;
    let app = |namespace: &str, name: &str| {
        GrantFixture::new(namespace, name).principals(&["role/AppRole"])
    };
    let job = |name: &str| GrantFixture::new("batch", name).manage("dev", &["role/JobRole"]);
    let grants = [
        job("job-reads-lake-a").bucket("lake-a"),
        app("apps", "app-writes-lake-a")
            .bucket("lake-a")
            .access(&["readWrite"]),
        app("apps", "app-reads-lake-b")
            .bucket("lake-b")
            .prefix("shared/"),
        GrantFixture::new("apps", "analyst-reads-lake-c")
            .bucket("lake-c")
            .principals(&["user/analyst"]),
        app("ci", "build-pushes-trainer")
            .resource("EcrRepository", "ml/trainer")
            .access(&["push"]),
        job("job-pulls-scorer")
            .resource("EcrRepository", "ml/scorer")
            .access(&["pull"]),
        app("apps", "app-decrypts")
            .resource("KmsKey", &key)
            .access(&["decrypt"]),
        app("apps", "app-encrypts-orders")
            .resource("KmsKey", "alias/orders")
            .access(&["encrypt"]),
    ];
    let mut yaml = accounts_yaml();
    for grant in &grants {
        yaml.push_str(&grant.yaml());
    }
    manifests(&yaml)
}

/// Applies until every grant is Ready, at most `max_runs` times, checking after every run that no
/// foreign statement was lost and that every failure is a transient one; returns the number of
/// runs and the last report.
async fn converge(
    world: &World,
    accounts: &AccountDirectory,
    grants: &[GrantInput],
    max_runs: usize,
) -> (usize, Report) {
    let engine = world.engine();
    for run in 1..=max_runs {
        let report = engine.run(accounts, grants, Operation::Apply, false).await;
        world
            .assert_foreign_intact(&format!("after run {run}"))
            .await;
        for target in &report.targets {
            if let Some(error) = &target.error {
                assert!(
                    error.transient
                        && matches!(error.reason.as_str(), "Throttled" | "AwsUnavailable"),
                    "run {run}: only faults fail a target: {} {error:?}",
                    target.arn
                );
            }
        }
        let failed: Vec<_> = report
            .grants
            .iter()
            .filter(|g| g.ready().is_none_or(|c| c.status != "True"))
            .map(|g| (g.name.clone(), g.ready().map(|c| c.reason.as_str())))
            .collect();
        eprintln!("run {run}: not Ready yet: {failed:?}");
        if failed.is_empty() && !report.has_errors() {
            return (run, report);
        }
    }
    panic!("not converged in {max_runs} runs");
}

/// How many requests the proxy answered per (service, operation, outcome as the caller saw it).
fn proxy_counts(seen: &[Seen]) -> BTreeMap<(String, String, CallOutcome), u64> {
    let mut counts = BTreeMap::new();
    for s in seen {
        *counts
            .entry((s.service.to_lowercase(), s.operation.clone(), s.outcome()))
            .or_default() += 1;
    }
    counts
}

/// The connector's call log in the same shape.
fn logged_counts(connector: &Connector) -> BTreeMap<(String, String, CallOutcome), u64> {
    connector
        .calls()
        .snapshot()
        .into_iter()
        .map(|(call, n)| {
            (
                (call.service.to_lowercase(), call.operation, call.outcome),
                n,
            )
        })
        .collect()
}

fn faults_by_service(seen: &[Seen], which: impl Fn(&Fault) -> bool) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for s in seen {
        if s.fault.as_ref().is_some_and(&which) {
            *counts.entry(s.service.clone()).or_default() += 1;
        }
    }
    counts
}

/// One `apply` converges under 30% throttling of every service it calls (STS included: each seed
/// starts with cold credentials), with seeds 1 to 5 (or `XACCT_FAULT_SEED` alone), with the default
/// retry budget; a fault-free apply afterwards writes nothing, and every foreign statement stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_apply_converges_under_throttling_and_keeps_every_foreign_statement() {
    let mut world = World::start().await;
    let (accounts, grants) = estate(&mut world).await;
    let seeds: Vec<u64> = match std::env::var("XACCT_FAULT_SEED") {
        Ok(_) => vec![seed(1)],
        Err(_) => (1..=5).collect(),
    };
    let mut longest_streak = 0;
    let mut throttled: BTreeMap<String, usize> = BTreeMap::new();
    for seed in seeds {
        // Cold credentials: AssumeRole and GetCallerIdentity are called (and throttled) again.
        world.tool = Arc::new(Connector::new(world.proxy.options(world.moto.options())).await);
        world.proxy.set_plan(
            FaultPlan::new(seed, 0.3, &[Fault::Throttle, Fault::RequestLimitExceeded])
                .services(&["s3", "ecr", "kms", "iam", "sts"]),
        );
        let from = world.proxy.seen().len();
        let started = Instant::now();
        // As the controller does first: each account verified (AssumeRole, GetCallerIdentity).
        for name in ["data-prod", "dev"] {
            let account = accounts.get(name).expect("the account");
            world
                .tool
                .verify(&account_access(account))
                .await
                .unwrap_or_else(|e| panic!("seed {seed}: {name} verified: {e}"));
        }
        let (runs, report) = converge(&world, &accounts, &grants, 1).await;
        let seen = world.proxy.seen()[from..].to_vec();
        let throttles = faults_by_service(&seen, Fault::is_throttle);
        let streak = longest_throttled_streak(&seen);
        eprintln!(
            "seed {seed}: converged in {runs} run, {:?}; {} requests, throttled per service: {throttles:?}, at most {streak} times in a row",
            started.elapsed(),
            seen.len()
        );
        for (service, n) in throttles {
            *throttled.entry(service).or_default() += n;
        }
        longest_streak = longest_streak.max(streak);
        world.assert_exactly_owned(&report).await;

        // Fault-free now: the policies are exactly what xacct wants, so nothing is written.
        world.proxy.set_plan(FaultPlan::none());
        world.tool.calls().reset();
        let again = world
            .engine()
            .run(&accounts, &grants, Operation::Apply, false)
            .await;
        assert!(!again.has_errors());
        assert_eq!(
            world.tool.calls().count_matching(&["Put", "Set", "Delete"]),
            0,
            "seed {seed}: converged: {:?}",
            world.tool.calls().snapshot()
        );
        assert!(
            again
                .grants
                .iter()
                .all(|g| g.ready().is_some_and(|c| c.reason == "Converged"))
        );
        // Back to the foreign statements alone for the next seed.
        let deleted = world
            .engine()
            .run(&accounts, &grants, Operation::Delete, false)
            .await;
        assert!(!deleted.has_errors(), "seed {seed}: delete");
        world
            .assert_foreign_intact(&format!("seed {seed}: after delete"))
            .await;
    }
    // What the seeds must give for the test to show anything: every service throttled, and a call
    // throttled three times in a row, which the SDK's default (3 attempts) would have failed.
    for service in ["s3", "ecr", "kms", "iam", "sts"] {
        assert!(
            throttled.get(service).is_some_and(|n| *n > 0),
            "{service} was throttled: {throttled:?}"
        );
    }
    assert!(
        longest_streak >= 3,
        "some call was throttled three times in a row: {longest_streak}"
    );
}

/// The longest run of throttled answers to one request (same service, operation, path and body)
/// with no other answer to it in between. STS is left out: its GetCallerIdentity is the same
/// request for every account.
fn longest_throttled_streak(seen: &[Seen]) -> usize {
    let mut streaks: BTreeMap<(&str, &str, &str, &str), (usize, usize)> = BTreeMap::new();
    for s in seen.iter().filter(|s| s.service != "sts") {
        let key = (
            s.service.as_str(),
            s.operation.as_str(),
            s.path.as_str(),
            s.body.as_str(),
        );
        let (current, longest) = streaks.entry(key).or_default();
        if s.fault.as_ref().is_some_and(Fault::is_throttle) {
            *current += 1;
            *longest = (*longest).max(*current);
        } else {
            *current = 0;
        }
    }
    streaks
        .values()
        .map(|(_, longest)| *longest)
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded_and_back_off_with_jitter() {
    let mut world = World::with_budget(FEW).await;
    let buckets = ["lake-a", "lake-b", "lake-c"];
    for bucket in buckets {
        world.bucket(bucket).await;
    }
    let key_ids = [world.key(None).await, world.key(None).await];
    let mut yaml = accounts_yaml();
    for bucket in buckets {
        yaml.push_str(&reads(bucket).yaml());
    }
    for (i, key) in key_ids.iter().enumerate() {
        let decrypts = GrantFixture::new("apps", &format!("decrypts-{i}"))
            .resource("KmsKey", key)
            .principals(&["role/AppRole"])
            .access(&["decrypt"]);
        yaml.push_str(&decrypts.yaml());
    }
    let (accounts, grants) = manifests(&yaml);
    let engine = world.engine();

    // Every PutBucketPolicy throttled, every GetKeyPolicy failing (500 or a dropped connection).
    world.proxy.set_plan(
        FaultPlan::new(seed(1), 1.0, &[Fault::Throttle])
            .services(&["s3"])
            .operations(&["PutBucketPolicy"]),
    );
    world.tool.calls().reset();
    let started = Instant::now();
    let report = engine
        .run(&accounts, &grants[..3], Operation::Apply, false)
        .await;
    let throttled_run = started.elapsed();
    let seen = world.proxy.seen();
    world.proxy.clear();
    for grant in &report.grants {
        let ready = grant.ready().expect("Ready");
        assert_eq!(
            (ready.status, ready.reason.as_str()),
            ("False", "Throttled"),
            "{}",
            grant.name
        );
    }
    for target in &report.targets {
        let error = target.error.as_ref().expect("the write failed");
        assert!(error.transient, "{error:?}");
        assert!(
            error.message.contains("s3:PutBucketPolicy") && error.message.contains("SlowDown"),
            "{}",
            error.message
        );
    }
    let puts = attempts_by(&seen, "PutBucketPolicy", |s| s.path.clone());
    let gets = attempts_by(&seen, "GetBucketPolicy", |s| s.path.clone());
    eprintln!(
        "throttled writes: {:?} in {throttled_run:?}",
        puts.iter().map(|(b, at)| (b, gaps(at))).collect::<Vec<_>>()
    );
    assert_eq!(puts.len(), buckets.len());
    for (bucket, attempts) in &puts {
        assert_eq!(
            attempts.len(),
            MAX_ATTEMPTS,
            "{bucket}: tried exactly as often as the budget says"
        );
        assert_eq!(
            gets[bucket].len(),
            2,
            "{bucket}: a failed write is not re-read in a loop"
        );
    }
    assert_backoff(&puts);
    // Three jittered waits of at most 1, 2 and 4 s.
    assert!(
        throttled_run < Duration::from_secs(15),
        "bounded in time too: {throttled_run:?}"
    );
    let throttled_logged: u64 = world
        .tool
        .calls()
        .snapshot()
        .iter()
        .filter(|(c, _)| c.operation == "PutBucketPolicy" && c.outcome == CallOutcome::Throttled)
        .map(|(_, n)| n)
        .sum();
    let throttled_seen = puts.values().map(Vec::len).sum::<usize>() as u64;
    assert_eq!(
        throttled_logged, throttled_seen,
        "every throttled attempt is counted"
    );
    world.assert_foreign_intact("after the throttled run").await;

    world.proxy.set_plan(
        FaultPlan::new(seed(2), 1.0, &[Fault::InternalError, Fault::Drop])
            .services(&["kms"])
            .operations(&["GetKeyPolicy"]),
    );
    let started = Instant::now();
    let report = engine
        .run(&accounts, &grants[3..], Operation::Apply, false)
        .await;
    let failing_run = started.elapsed();
    let seen = world.proxy.seen();
    for grant in &report.grants {
        let ready = grant.ready().expect("Ready");
        assert_eq!(
            (ready.status, ready.reason.as_str()),
            ("False", "AwsUnavailable"),
            "{}: {}",
            grant.name,
            ready.message
        );
    }
    let reads = attempts_by(&seen, "GetKeyPolicy", |s| s.body.clone());
    eprintln!(
        "failing key reads: {:?} in {failing_run:?}",
        reads.values().map(|at| gaps(at)).collect::<Vec<_>>()
    );
    assert_eq!(reads.len(), key_ids.len());
    for (key, attempts) in &reads {
        assert!(
            (2..=MAX_ATTEMPTS).contains(&attempts.len()),
            "{key}: {}",
            attempts.len()
        );
    }
    assert_backoff(&reads);
    assert!(failing_run < Duration::from_secs(15), "{failing_run:?}");
    world.assert_foreign_intact("after the failing run").await;
}

/// Arrival times of the requests of `operation`, grouped by `key`.
fn attempts_by(
    seen: &[Seen],
    operation: &str,
    key: impl Fn(&Seen) -> String,
) -> BTreeMap<String, Vec<Instant>> {
    let mut by: BTreeMap<String, Vec<Instant>> = BTreeMap::new();
    for s in seen.iter().filter(|s| s.operation == operation) {
        by.entry(key(s)).or_default().push(s.at);
    }
    by
}

fn gaps(times: &[Instant]) -> Vec<Duration> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Consecutive attempts are spaced: exponential backoff with full jitter (a random fraction of 1 s,
/// then of 2 s) makes any one gap possibly short, but not their total or their median, and not all
/// of them alike.
fn assert_backoff(attempts: &BTreeMap<String, Vec<Instant>>) {
    let mut all: Vec<Duration> = attempts.values().flat_map(|t| gaps(t)).collect();
    all.sort();
    let total: Duration = all.iter().sum();
    let median = all[all.len() / 2];
    assert!(
        total >= Duration::from_millis(500),
        "backoff in total: {all:?}"
    );
    assert!(median >= Duration::from_millis(20), "no hot loop: {all:?}");
    assert!(
        all.iter().all(|g| *g <= Duration::from_secs(21)),
        "the backoff is capped: {all:?}"
    );
    assert!(
        all[all.len() - 1] - all[0] > Duration::from_millis(1),
        "jitter: {all:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_converges_through_dropped_connections_server_errors_and_latency() {
    let mut world = World::start().await;
    let (accounts, grants) = estate(&mut world).await;
    // The seed decides by each request's content: a change to what xacct writes may call for
    // another one that gives what the assertions below need (seed 5 stopped losing a write's
    // answer when S3 grants without a prefix became one statement).
    world.proxy.set_plan(FaultPlan::new(
        seed(7),
        0.3,
        &[
            Fault::InternalError,
            Fault::Drop,
            Fault::DropAfterForward,
            Fault::Latency(Duration::from_millis(100)),
        ],
    ));
    let started = Instant::now();
    let (runs, report) = converge(&world, &accounts, &grants, 5).await;
    let seen = world.proxy.seen();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for fault in seen.iter().filter_map(|s| s.fault) {
        let kind = format!("{fault:?}");
        let kind = kind.split('(').next().unwrap_or_default().to_string();
        *kinds.entry(kind).or_default() += 1;
    }
    eprintln!(
        "converged in {runs} runs, {:?}; {} requests, faults: {kinds:?}",
        started.elapsed(),
        seen.len()
    );
    // What the seed must give for the test to show anything: every kind of fault, a write whose
    // answer was lost after it took effect (so it was sent again), and a failed run.
    for kind in ["InternalError", "Drop", "DropAfterForward", "Latency"] {
        assert!(kinds.get(kind).is_some_and(|n| *n > 0), "{kind}: {kinds:?}");
    }
    let lost_writes: Vec<&str> = seen
        .iter()
        .filter(|s| s.fault == Some(Fault::DropAfterForward))
        .map(|s| s.operation.as_str())
        .filter(|o| o.starts_with("Put") || o.starts_with("Set"))
        .collect();
    assert!(!lost_writes.is_empty(), "a write's answer was lost");
    assert_eq!(runs, 1, "the retry budget rides the faults out in one run");
    eprintln!("writes whose answer was lost: {lost_writes:?}");
    world.assert_exactly_owned(&report).await;
    // Every attempt is in the call log as the caller saw it: a 500 or a dropped connection is an
    // error, even when its retry succeeded.
    assert_eq!(logged_counts(&world.tool), proxy_counts(&seen));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttles_are_counted_in_the_call_log_and_the_metrics() {
    let mut world = World::start().await;
    let (accounts, grants) = estate(&mut world).await;
    // Each service's own throttling answer (IAM's is a 400 with the code in an XML body only).
    world
        .proxy
        .set_plan(FaultPlan::new(seed(23), 0.5, &[Fault::Throttle]));
    world.tool.calls().reset();
    let report = world
        .engine()
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    let seen = world.proxy.seen();
    world.assert_foreign_intact("after one throttled run").await;
    let injected = faults_by_service(&seen, Fault::is_throttle);
    eprintln!(
        "throttles injected: {injected:?}; grants Ready: {}/{}",
        report
            .grants
            .iter()
            .filter(|g| g.ready().is_some_and(|c| c.status == "True"))
            .count(),
        report.grants.len()
    );

    // The call log, attempt by attempt, matches what the proxy answered.
    assert_eq!(logged_counts(&world.tool), proxy_counts(&seen));

    // And so does the metric the controller serves.
    let metrics = xacct::controller::Metrics::new(world.tool.calls().clone(), Default::default());
    let text = metrics.encode();
    let mut throttled: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines().filter(|l| {
        l.starts_with("xacct_aws_api_calls_total{") && l.contains("outcome=\"throttled\"")
    }) {
        let service = line
            .split("service=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a service label")
            .to_lowercase();
        let n: usize = line
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a count");
        *throttled.entry(service).or_default() += n;
    }
    assert_eq!(throttled, injected, "{text}");
    for service in ["s3", "ecr", "kms", "iam"] {
        assert!(
            throttled.get(service).is_some_and(|n| *n > 0),
            "{service}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_converges_under_faults_and_keeps_foreign_statements() {
    let mut world = World::with_budget(FEW).await;
    let buckets = ["lake-a", "lake-b"];
    for bucket in buckets {
        world.bucket(bucket).await;
    }
    world.proxy.set_plan(FaultPlan::new(
        seed(31),
        0.3,
        &[
            Fault::Throttle,
            Fault::RequestLimitExceeded,
            Fault::InternalError,
            Fault::Drop,
            Fault::DropAfterForward,
        ],
    ));
    let h = Harness::builder()
        .through(world.moto.options(), world.tool.clone())
        .start()
        .await;
    let metrics_url = h.metrics_url.clone();
    create(&h.accounts(), &AccountFixture::data_prod().build()).await;
    let grants = h.grants("apps");
    for bucket in buckets {
        create(&grants, &reads(bucket).build()).await;
    }

    // Phase 1, 30% of the S3 requests failing in every way: until both grants are Ready, the
    // foreign statements are checked at every poll.
    let started = Instant::now();
    let failures = std::sync::Mutex::new(BTreeSet::new());
    let ready = all_ready(&world, &grants, &buckets, &failures).await;
    let converged_after = started.elapsed();

    // Phase 2, a throttling storm: every S3 read throttled for a while. The drift checks fail
    // (Throttled) and are retried with backoff, not in a loop; nothing is lost.
    world.proxy.set_plan(
        FaultPlan::new(seed(3), 1.0, &[Fault::Throttle])
            .services(&["s3"])
            .operations(&["GetBucketPolicy"]),
    );
    let storm_started = Instant::now();
    let storm_from = world.proxy.seen().len();
    eventually(10, "a grant Throttled", || async {
        world.assert_foreign_intact("during the storm").await;
        let reasons = reasons(&grants, &buckets).await;
        reasons.contains("Throttled").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let storm = storm_started.elapsed();
    let storm_reads = world.proxy.seen()[storm_from..]
        .iter()
        .filter(|s| s.operation == "GetBucketPolicy")
        .count();
    let metrics = eventually(10, "the metrics", || fetch(&metrics_url)).await;

    // Phase 3, AWS answers again: both grants come back.
    world.proxy.set_plan(FaultPlan::none());
    let recovered = Instant::now();
    all_ready(&world, &grants, &buckets, &failures).await;
    let recovered_after = recovered.elapsed();
    h.finish().await;

    for status in &ready {
        for target in &status.targets {
            let holder = Holder::Bucket(target.resource.name.clone());
            let policy = world.read(&holder).await.expect("a policy");
            let owned: BTreeSet<String> = support::sids(&policy)
                .into_iter()
                .flatten()
                .filter(|s| is_xacct(Some(s)))
                .collect();
            let sids: BTreeSet<String> = target.sids.iter().cloned().collect();
            // One grant per bucket: its statements are all xacct's there.
            assert_eq!(sids, owned, "{holder:?}: {policy}");
        }
    }
    world.assert_foreign_intact("at the end").await;

    let seen = world.proxy.seen();
    let faults = seen[..storm_from]
        .iter()
        .filter(|s| s.fault.is_some())
        .count();
    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    eprintln!(
        "Ready after {converged_after:?} ({faults} faults, Ready=False on the way: {failures:?}); storm of {storm:?}: {storm_reads} reads; recovered after {recovered_after:?}"
    );
    assert!(faults > 0, "faults in phase 1");
    assert!(
        failures.iter().all(|r| matches!(
            r.as_str(),
            "Throttled" | "AwsUnavailable" | "AccountNotReady"
        )),
        "only faults (or the account not verified yet) fail a grant: {failures:?}"
    );
    // Two grants, each reconcile three attempts, requeued after 2 s at most (the resync) or the
    // backoff: a hot loop would be hundreds.
    let bound = buckets.len() * MAX_ATTEMPTS * (storm.as_secs() as usize / 2 + 2);
    assert!(
        storm_reads <= bound,
        "no hot loop: {storm_reads} reads in {storm:?} (bound {bound})"
    );
    let counted: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("xacct_aws_api_calls_total{service=\"S3\",operation=\"GetBucketPolicy\"")
                && l.contains("outcome=\"throttled\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        counted >= MAX_ATTEMPTS as u64,
        "/metrics counts every throttled attempt: {metrics}"
    );
}

/// Waits until every grant is Ready, checking the foreign statements at every poll and noting
/// the reasons of Ready=False seen on the way; returns their statuses.
async fn all_ready(
    world: &World,
    grants: &Api<CrossAccountGrant>,
    buckets: &[&str],
    failures: &std::sync::Mutex<BTreeSet<String>>,
) -> Vec<xacct::api::CrossAccountGrantStatus> {
    eventually(20, "every grant Ready", || async {
        world.assert_foreign_intact("while converging").await;
        let mut ready = Vec::new();
        for bucket in buckets {
            let Some(status) = grants
                .get(&format!("reads-{bucket}"))
                .await
                .ok()
                .and_then(|g| g.status)
            else {
                continue;
            };
            match status.conditions.iter().find(|c| c.type_ == "Ready") {
                Some(c) if c.status == "True" => ready.push(status),
                Some(c) => {
                    failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(c.reason.clone());
                }
                None => {}
            }
        }
        (ready.len() == buckets.len()).then_some(ready)
    })
    .await
}

/// The reasons of the grants' Ready conditions that are not True.
async fn reasons(grants: &Api<CrossAccountGrant>, buckets: &[&str]) -> BTreeSet<String> {
    let mut reasons = BTreeSet::new();
    for bucket in buckets {
        let conditions = grants
            .get(&format!("reads-{bucket}"))
            .await
            .ok()
            .and_then(|g| g.status)
            .map(|s| s.conditions)
            .unwrap_or_default();
        reasons.extend(
            conditions
                .into_iter()
                .filter(|c| c.type_ == "Ready" && c.status != "True")
                .map(|c| c.reason),
        );
    }
    reasons
}

/// GET over plain HTTP/1.0, the body.
async fn fetch(url: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/')?;
    let mut stream = tokio::net::TcpStream::connect(host).await.ok()?;
    stream
        .write_all(format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await.ok()?;
    body.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// Reader grants and one naming `principal` on `lake`, created before the controller starts (so
/// that its first run on the bucket has them all), the controller running with `principal_wait`.
async fn readers_and(
    world: &World,
    name: &'static str,
    principal: &str,
    principal_wait: Duration,
) -> (Harness, [&'static str; 4]) {
    let mut h = Harness::builder()
        .through(world.moto.options(), world.tool.clone())
        .resync(Duration::from_secs(30))
        .config(|c| c.engine.principal_wait = principal_wait)
        .prepare()
        .await;
    create(&h.accounts(), &AccountFixture::data_prod().build()).await;
    let grants = h.grants("apps");
    let names = ["reader-a", name, "reader-b", "reader-c"];
    for n in names {
        let grant = GrantFixture::new("apps", n).bucket("lake");
        let grant = if n == name {
            grant.principals(&[principal])
        } else {
            grant
        };
        create(&grants, &grant.build()).await;
    }
    h.run();
    (h, names)
}

/// The Ready condition of `apps/name`: status, reason, message.
async fn ready_of(h: &Harness, name: &str) -> Option<(String, String, String)> {
    let status = h.grants("apps").get(name).await.ok()?.status?;
    let c = status.conditions.into_iter().find(|c| c.type_ == "Ready")?;
    Some((c.status, c.reason, c.message))
}

/// The grants of `apps` with an event of `reason`.
async fn with_event(h: &Harness, reason: &str) -> BTreeSet<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(h.client.clone(), "apps");
    events
        .list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.regarding.and_then(|r| r.name))
        .collect()
}

/// How many statements of `lake`'s policy hold access of `apps/name`.
async fn held_on_lake(world: &World, name: &str) -> usize {
    let policy = world
        .read(&Holder::Bucket("lake".into()))
        .await
        .expect("a policy");
    let owner = GrantOwner::new("default", "apps", name);
    support::sids(&policy)
        .into_iter()
        .flatten()
        .filter(|sid| support::held_by(sid, &owner))
        .count()
}

/// The controller converges the grants on one bucket in one run; when AWS refuses the document
/// because of one of them (a principal that does not exist), that grant is tried again alone for
/// `--principal-wait`, then fails, and the others are never held back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_that_never_appears_fails_its_grant_alone_after_the_wait() {
    let mut world = World::start().await;
    world.bucket("lake").await;
    world.proxy.refuse_principal("role/Ghost", None);
    let wait = Duration::from_secs(6);
    let (h, names) = readers_and(&world, "ghost", "role/Ghost", wait).await;
    let metrics_url = h.metrics_url.clone();
    let outcome = |text: &str, outcome: &str| {
        let line =
            format!(r#"xacct_reconciles_total{{kind="CrossAccountGrant",outcome="{outcome}"}} "#);
        text.lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // First: the readers Ready, the ghost refused and tried again (reconciles counted waiting).
    let waiting = eventually(30, "the readers Ready and the ghost awaited", || async {
        world.assert_foreign_intact("while converging").await;
        for name in names.iter().filter(|n| **n != "ghost") {
            (ready_of(&h, name).await?.0 == "True").then_some(())?;
        }
        let (status, reason, message) = ready_of(&h, "ghost").await?;
        (status == "False" && reason == "PrincipalNotFound" && message.contains("trying again"))
            .then_some(message)
    })
    .await;
    assert!(
        waiting.contains("arn:aws:iam::111111111111:role/Ghost"),
        "the message names the principal: {waiting}"
    );
    let text = eventually(10, "the metrics", || fetch(&metrics_url)).await;
    assert!(outcome(&text, "waiting") >= 1.0, "{text}");
    // Then, the wait over: failed, looked at again only at the resync.
    eventually(30, "the ghost given up", || async {
        let (_, reason, message) = ready_of(&h, "ghost").await?;
        (reason == "PrincipalNotFound" && message.contains("still refused after 6s")).then_some(())
    })
    .await;
    let refusals = || {
        world
            .proxy
            .seen()
            .iter()
            .filter(|s| s.fault == Some(Fault::PrincipalRefused))
            .count()
    };
    let after_giving_up = refusals();
    // Retried at 2 s, 4 s (doubling) within the 6 s: a handful of refusals, no hot loop.
    assert!(
        (3..=7).contains(&after_giving_up),
        "{after_giving_up} refusals"
    );
    let text = eventually(10, "the metrics", || fetch(&metrics_url)).await;
    assert!(outcome(&text, "failed") >= 1.0, "{text}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        refusals(),
        after_giving_up,
        "no retry before the resync once given up"
    );

    // It was refused in a run with the others: they were converged together first.
    let together = world.proxy.seen().into_iter().any(|s| {
        s.fault == Some(Fault::PrincipalRefused)
            && s.body.contains("role/Ghost")
            && s.body.contains("role/reader-")
    });
    assert!(
        together,
        "a document with the ghost and the readers was refused"
    );
    // The readers were never reported refused: only the ghost was.
    assert_eq!(
        with_event(&h, "PrincipalNotFound").await,
        BTreeSet::from(["ghost".to_string()])
    );
    for name in names {
        // Read without a prefix: one statement (bucket and objects together), shared here.
        let want = if name == "ghost" { 0 } else { 1 };
        assert_eq!(held_on_lake(&world, name).await, want, "{name}");
    }
    world.assert_foreign_intact("at the end").await;
    h.finish().await;
}

/// A role created moments ago: AWS refuses the documents naming it a few times, then accepts
/// them. The controller tries its grant again alone with growing waits until it converges; the
/// others on the bucket are Ready meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_that_appears_is_converged_by_the_controller() {
    let mut world = World::start().await;
    world.bucket("lake").await;
    // The batch, the grant alone, and its first retry are refused.
    world.proxy.refuse_principal("role/Fresh", Some(3));
    let (h, names) = readers_and(&world, "fresh", "role/Fresh", Duration::from_secs(300)).await;
    eventually(40, "every grant Ready", || async {
        world.assert_foreign_intact("while converging").await;
        for name in names {
            (ready_of(&h, name).await?.0 == "True").then_some(())?;
        }
        Some(())
    })
    .await;
    // It went through PrincipalNotFound (announced once), and only it did.
    assert_eq!(
        with_event(&h, "PrincipalNotFound").await,
        BTreeSet::from(["fresh".to_string()])
    );
    let refusals = world
        .proxy
        .seen()
        .iter()
        .filter(|s| s.fault == Some(Fault::PrincipalRefused))
        .count();
    assert_eq!(refusals, 3);
    for name in names {
        assert_eq!(held_on_lake(&world, name).await, 1, "{name}");
    }
    world.assert_foreign_intact("at the end").await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_never_answers_times_out_and_is_retried() {
    let mut world = World::start().await;
    // The default is ATTEMPT_TIMEOUT (30 s); a test cannot wait that long four times.
    let timeout = Duration::from_millis(500);
    let options = ConnectorOptions {
        retry: FEW,
        ..world.proxy.options(world.moto.options())
    };
    world.tool = Arc::new(Connector::new(options).await.with_attempt_timeout(timeout));
    world.bucket("lake-a").await;
    let mut yaml = accounts_yaml();
    yaml.push_str(&reads("lake-a").yaml());
    let (accounts, grants) = manifests(&yaml);
    world
        .proxy
        .set_plan(FaultPlan::new(seed(1), 1.0, &[Fault::Stall]).operations(&["GetBucketPolicy"]));
    let started = Instant::now();
    let report = tokio::time::timeout(
        Duration::from_secs(20),
        world
            .engine()
            .run(&accounts, &grants, Operation::Apply, false),
    )
    .await
    .expect("a run ends even when AWS never answers");
    let elapsed = started.elapsed();
    let seen = world.proxy.seen();
    let reads = attempts_by(&seen, "GetBucketPolicy", |s| s.path.clone());
    eprintln!(
        "stalled reads: {:?} in {elapsed:?}",
        reads.values().map(|at| gaps(at)).collect::<Vec<_>>()
    );
    let ready = report.grants[0].ready().expect("Ready");
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        ("False", "AwsUnavailable"),
        "{}",
        ready.message
    );
    assert!(ready.message.contains("timed out"), "{}", ready.message);
    let attempts = &reads["/lake-a/"];
    assert_eq!(
        attempts.len(),
        MAX_ATTEMPTS,
        "each attempt timed out and was retried"
    );
    // Each gap is the attempt timeout plus a jittered backoff.
    assert!(gaps(attempts).iter().all(|g| *g >= timeout), "{attempts:?}");
    assert!(elapsed < Duration::from_secs(12), "{elapsed:?}");
    assert_eq!(logged_counts(&world.tool), proxy_counts(&seen));

    // AWS answers again: the next run converges.
    world.proxy.set_plan(FaultPlan::none());
    let (runs, report) = converge(&world, &accounts, &grants, 1).await;
    assert_eq!(runs, 1);
    assert!(report.grants[0].ready().is_some_and(|c| c.status == "True"));
    world.assert_foreign_intact("after the stall").await;
}

/// A race the work queue keyed by resource must win: while the run on `lake` is writing a grant's
/// statements (its PutBucketPolicy held 3 s by the proxy), the grant is moved to `pond` and
/// deleted. The run on `pond` cannot release the finalizer while the run on `lake` may still write
/// (the index knows it is in flight); once that run has recorded what it wrote, `lake`'s next run
/// revokes it. Nothing is left anywhere, without garbage collection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_moved_and_deleted_while_a_run_writes_it_leaves_no_statement_anywhere() {
    let mut world = World::start().await;
    world.bucket("lake").await;
    world.bucket("pond").await;
    world.proxy.set_plan(
        FaultPlan::new(seed(41), 1.0, &[Fault::Latency(Duration::from_secs(3))])
            .operations(&["PutBucketPolicy"]),
    );
    let h = Harness::builder()
        .through(world.moto.options(), world.tool.clone())
        .resync(Duration::from_secs(60))
        .start()
        .await;
    create(&h.accounts(), &AccountFixture::data_prod().build()).await;
    h.wait_account_verified().await;
    let grants = h.grants("apps");
    create(
        &grants,
        &GrantFixture::new("apps", "mover").bucket("lake").build(),
    )
    .await;
    eventually(30, "the write on lake in flight", || async {
        world
            .proxy
            .seen()
            .iter()
            .any(|s| s.operation == "PutBucketPolicy" && s.status.is_none())
            .then_some(())
    })
    .await;
    support::controller::merge_spec(
        &grants,
        "mover",
        json!({"resource": {"account": "data-prod", "kind": "S3Bucket", "name": "pond"}}),
    )
    .await;
    grants
        .delete("mover", &Default::default())
        .await
        .expect("delete");
    eventually(60, "the grant gone", || async {
        support::controller::gone(grants.get("mover").await).then_some(())
    })
    .await;
    let owner = GrantOwner::new("default", "apps", "mover");
    for bucket in ["lake", "pond"] {
        let Some(policy) = world.read(&Holder::Bucket(bucket.into())).await else {
            continue;
        };
        // Its statement (read without a prefix: Access), its own or shared, by any Sid.
        assert!(
            !support::sids(&policy)
                .iter()
                .flatten()
                .any(|sid| support::held_by(sid, &owner)),
            "{bucket} still holds the grant's statement: {policy}"
        );
    }
    let wrote_lake = world
        .proxy
        .seen()
        .iter()
        .filter(|s| s.operation == "PutBucketPolicy" && s.path.contains("lake"))
        .count();
    assert!(
        wrote_lake >= 2,
        "the run in flight wrote lake, and a later run revoked it there ({wrote_lake} writes)"
    );
    world.assert_foreign_intact("after the race").await;
    h.finish().await;
}
