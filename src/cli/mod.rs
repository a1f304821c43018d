//! The `xacct` command line: thin wiring of manifests, the engine and output.

mod gc;
mod iam_policy;
pub mod logging;
mod manifests;
mod render;
mod unknown_principals;

use std::path::PathBuf;
use std::sync::Arc;

use clap::builder::TypedValueParser;
use clap::{Parser, Subcommand, ValueEnum};

pub use manifests::{ManifestError, Manifests, load, read_documents};

use crate::api::{DeletionPolicy, GrantMode};
use crate::aws::{AwsPolicies, AwsSnapshots, Connector, ConnectorOptions};
use crate::engine::{
    AccountDirectory, Engine, EngineSettings, FieldError, GrantInput, Operation, Report,
    ShareReport,
};
use crate::policy::SizeLimit;

/// Cross-account AWS access, converged statement by statement.
#[derive(Debug, Parser)]
#[command(name = "xacct", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr (levels: XACCT_LOG, e.g. `info` or `xacct=debug`; default `info` for
    /// `run`, `warn` for the other commands).
    #[arg(long, global = true, env = "XACCT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Cli {
    /// The log filter when `XACCT_LOG` is unset: the controller says what it does (`info`); the
    /// other commands print their result on stdout and only warn on stderr.
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            Command::Run(_) => "info",
            _ => "warn",
        }
    }
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show, per policy, the statements that would be added, changed or removed. Exit status: 0
    /// nothing would change, 2 changes pending, 1 error.
    Plan(RunArgs),
    /// Converge the policies to the manifests. Exit status: 0 converged, 1 error.
    Apply(RunArgs),
    /// Revoke the grants in the manifests (except `deletionPolicy: Retain`). Exit status: 0 done, 1 error.
    Delete(RunArgs),
    /// Remove statements of this instance whose grant is in none of the manifests (the manifests
    /// must hold every grant and share of the instance). Exit status: 0 nothing left, 2 orphans
    /// found by `--dry-run`, 1 error (nothing is removed when a manifest cannot be read).
    Gc(gc::GcArgs),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Run the Kubernetes controller (in-cluster config, or KUBECONFIG).
    Run(ControllerArgs),
    /// Print the least-privilege permissions policy and the trust policy of the role xacct assumes
    /// in each managed account.
    IamPolicy(IamPolicyArgs),
}

/// Options of `xacct iam-policy`.
#[derive(Debug, clap::Args)]
pub struct IamPolicyArgs {
    /// Kinds in use, comma-separated: s3, ecr, kms, iam, rds, sagemaker, identity (the grantee
    /// side), gc (garbage collection: listing, on Resource "*") (default: every kind but gc, which
    /// is opt-in).
    #[arg(long, value_delimiter = ',', value_parser = iam_policy::parse_permission_kind)]
    pub kinds: Vec<iam_policy::PermissionKind>,
    /// Name of the role this policy is attached to (the role each AwsAccount's
    /// spec.assumeRole.roleArn names): explicitly denied rewriting its own trust and permissions.
    #[arg(long, default_value = iam_policy::DEFAULT_MANAGED_ROLE_NAME, value_parser = iam_policy::parse_role_name)]
    pub role_name: String,
    /// ARN of the role xacct itself runs as (IRSA, Pod Identity, instance profile): the principal
    /// the trust policy lets assume the managed role.
    #[arg(long, default_value = iam_policy::PLACEHOLDER_CONTROLLER_ROLE_ARN, value_parser = iam_policy::parse_controller_arn)]
    pub controller_role_arn: String,
    /// The external id the trust policy requires (the AwsAccounts' spec.assumeRole.externalId).
    #[arg(long, value_parser = iam_policy::parse_external_id)]
    pub external_id: Option<String>,
    /// Output format: text (labelled documents) or json (one object).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Options of `xacct run`; each has an environment variable.
#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    /// Instance id, part of every Sid xacct writes.
    #[arg(long, env = "XACCT_INSTANCE_ID", default_value = "default", value_parser = parse_instance_id)]
    pub instance_id: String,
    /// The IAM role trust policy size quota of the managed accounts (at most 4,096).
    #[arg(long, env = "XACCT_TRUST_POLICY_LIMIT", default_value_t = SizeLimit::IAM_TRUST_DEFAULT.max,
          value_parser = clap::value_parser!(u16).range(1..=4096).map(usize::from))]
    pub trust_policy_limit: usize,
    /// Write each grant's own statements only: do not merge grants' statements that differ only in
    /// their principals into shared statements (shared statements already written are still read).
    #[arg(long, env = "XACCT_NO_COMPACTION")]
    pub no_compaction: bool,
    /// How many resources are converged at once (one run per resource at a time converges every
    /// grant on it); also how many shares and accounts.
    #[arg(long, env = "XACCT_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// How long a resource waits after a change for more before its run starts, so that grants
    /// created together are converged in one write.
    #[arg(long, env = "XACCT_DEBOUNCE", default_value = "1s", value_parser = humantime::parse_duration)]
    pub debounce: std::time::Duration,
    /// How often every grant and account is checked again without a change (drift detection).
    #[arg(long, env = "XACCT_RESYNC_PERIOD", default_value = "5m", value_parser = parse_resync_period)]
    pub resync_period: std::time::Duration,
    /// Watch grants in this namespace only (default: all namespaces).
    #[arg(long, env = "XACCT_NAMESPACE")]
    pub namespace: Option<String>,
    /// Watch only grants matching this label selector (to shard grants over several controllers).
    #[arg(long, env = "XACCT_SELECTOR")]
    pub selector: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "XACCT_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,
    /// Elect a leader on a Lease so that only one replica acts (required with more than one replica).
    #[arg(long, env = "XACCT_LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,
    /// Name of the leader Lease.
    #[arg(long, env = "XACCT_LEASE_NAME", default_value = "xacct-controller")]
    pub lease_name: String,
    /// Namespace of the leader Lease and default namespace of external id Secrets.
    #[arg(long, env = "POD_NAMESPACE", default_value = "xacct-system")]
    pub pod_namespace: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a leader lease stays valid without renewal.
    #[arg(long, env = "XACCT_LEASE_DURATION", default_value_t = 15)]
    pub lease_duration: u64,
    /// Remove, this often, statements of this instance whose grant no longer exists (a finalizer
    /// removed by hand, say), in every managed account. Off unless set (e.g. `1h`); refused with
    /// --namespace or --selector, which do not see every grant.
    #[arg(long, env = "XACCT_GC_PERIOD", value_parser = humantime::parse_duration)]
    pub gc_period: Option<std::time::Duration>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// How hard each AWS call is tried (`xacct run` and the commands that call AWS).
#[derive(Debug, Clone, clap::Args)]
pub struct AwsArgs {
    /// Attempts per AWS call, the first included, for throttling and transient errors (exponential
    /// backoff with jitter, at most 20 s apart; AWS's x-amz-retry-after honoured).
    #[arg(long, env = "XACCT_MAX_ATTEMPTS", default_value_t = crate::aws::DEFAULT_MAX_ATTEMPTS,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// The longest one AWS call may take, every attempt and wait included; past it the call fails
    /// as unavailable (a dead endpoint fails in bounded time).
    #[arg(long, env = "XACCT_CALL_TIMEOUT", default_value_t = crate::aws::DEFAULT_CALL_TIMEOUT.into(),
          value_parser = parse_call_timeout)]
    pub call_timeout: humantime::Duration,
    /// How long a grant that AWS refuses for a principal it does not know (a role created moments
    /// ago, not yet propagated by IAM) is tried again, with growing waits, before it is reported
    /// as failed (`PrincipalNotFound`); 0: not at all.
    #[arg(long, env = "XACCT_PRINCIPAL_WAIT", default_value_t = crate::engine::DEFAULT_PRINCIPAL_WAIT.into())]
    pub principal_wait: humantime::Duration,
}

impl AwsArgs {
    /// The connector options these flags ask for (the rest from the SDK's default chain).
    pub fn connector_options(&self) -> ConnectorOptions {
        ConnectorOptions {
            retry: crate::aws::RetryBudget {
                max_attempts: self.max_attempts,
                call_timeout: *self.call_timeout,
            },
            ..ConnectorOptions::default()
        }
    }
}

/// Options of plan, apply and delete.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Manifest files or directories (multi-document YAML or JSON; directories are read recursively).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Instance id, part of every Sid xacct writes (several installations can share accounts).
    #[arg(long, env = "XACCT_INSTANCE_ID", default_value = "default", value_parser = parse_instance_id)]
    pub instance_id: String,
    /// The IAM role trust policy size quota of the managed accounts (2,048 unless raised; at most 4,096).
    #[arg(long, env = "XACCT_TRUST_POLICY_LIMIT", default_value_t = SizeLimit::IAM_TRUST_DEFAULT.max,
          value_parser = clap::value_parser!(u16).range(1..=4096).map(usize::from))]
    pub trust_policy_limit: usize,
    /// Write each grant's own statements only: do not merge grants' statements that differ only in
    /// their principals into shared statements (shared statements already written are still read).
    #[arg(long, env = "XACCT_NO_COMPACTION")]
    pub no_compaction: bool,
    /// How many policies are read and written at once.
    #[arg(long, env = "XACCT_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256).map(usize::from))]
    pub concurrency: usize,
    /// How long `apply` waits for snapshot copies to become available before giving up (0: not at all).
    #[arg(long, env = "XACCT_WAIT", default_value = "15m", value_parser = humantime::parse_duration)]
    pub wait: std::time::Duration,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// For programs: the full report.
    Json,
}

/// At least 1 s: a shorter bound would fail calls that are answering.
fn parse_call_timeout(s: &str) -> Result<humantime::Duration, String> {
    let timeout = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if timeout < std::time::Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    Ok(timeout.into())
}

/// At least 1 s: zero would re-read every policy continuously.
fn parse_resync_period(s: &str) -> Result<std::time::Duration, String> {
    let period = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if period < std::time::Duration::from_secs(1) {
        return Err("the resync period must be at least 1s".into());
    }
    Ok(period)
}

fn parse_instance_id(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Ok(s.to_string())
    } else {
        Err("use 1 to 63 letters, digits or '-'".into())
    }
}

/// Runs the command; returns the process exit status.
pub async fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Crds => {
            emit(&crds_yaml());
            0
        }
        Command::Plan(args) => run_engine(args, Operation::Apply, true).await,
        Command::Apply(args) => run_engine(args, Operation::Apply, false).await,
        Command::Delete(args) => run_engine(args, Operation::Delete, false).await,
        Command::Gc(args) => gc::run(args).await,
        Command::IamPolicy(args) => iam_policy::run(
            &args.kinds,
            &args.role_name,
            &args.controller_role_arn,
            args.external_id.as_deref(),
            args.output,
        ),
        Command::Run(args) => match crate::controller::run(controller_config(args)).await {
            Ok(()) => {
                tracing::info!("stopped");
                0
            }
            Err(e) => {
                tracing::error!(error = %e, "controller stopped");
                // Also said plainly when the logs are for people (whatever XACCT_LOG filters out);
                // JSON logs stay one object per line.
                if cli.log_format == LogFormat::Text {
                    logging::eprint(&format!("xacct run: {e}\n"));
                }
                1
            }
        },
    }
}

fn controller_config(args: ControllerArgs) -> crate::controller::RunConfig {
    let identity = args
        .identity
        .unwrap_or_else(|| format!("xacct-{:016x}", fastrand::u64(..)));
    crate::controller::RunConfig {
        engine: EngineSettings {
            instance_id: args.instance_id,
            trust_policy_limit: args.trust_policy_limit,
            compaction: !args.no_compaction,
            principal_wait: *args.aws.principal_wait,
            ..EngineSettings::default()
        },
        concurrency: args.concurrency,
        debounce: args.debounce,
        resync: args.resync_period,
        namespace: args.namespace,
        selector: args.selector,
        metrics_addr: args.metrics_addr,
        leader_election: args.leader_elect.then(|| crate::controller::LeaseConfig {
            name: args.lease_name,
            namespace: args.pod_namespace.clone(),
            identity,
            duration_seconds: args.lease_duration,
        }),
        secrets_namespace: args.pod_namespace,
        reporter: "xacct".into(),
        gc_period: args.gc_period,
        aws: args.aws.connector_options(),
    }
}

/// Writes to standard output; a closed pipe (`xacct plan | head`) is not an error worth a panic.
pub(crate) fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// The CRDs as one multi-document YAML stream (what `crds/` holds).
pub fn crds_yaml() -> String {
    let mut out = String::from("# Generated by `xacct crds` from src/api; do not edit.\n");
    for crd in crate::api::crds() {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(&crd).unwrap_or_default());
    }
    out
}

/// What a command working on manifests needs: the manifests, the accounts (minus what the CLI
/// cannot use), every error found so far, and an engine on the default AWS credentials.
struct Prepared {
    manifests: Manifests,
    accounts: AccountDirectory,
    errors: Vec<ManifestError>,
    engine: Engine,
}

async fn prepare(args: &RunArgs) -> Prepared {
    let manifests = load(&args.files);
    let mut accounts = AccountDirectory::new(manifests.accounts.iter().map(|(a, _)| a.clone()));
    for (account, _) in &manifests.accounts {
        if account
            .spec
            .assume_role
            .as_ref()
            .is_some_and(|r| r.external_id_secret_ref.is_some())
        {
            let field = "spec.assumeRole.externalIdSecretRef";
            let message = "the CLI does not read Secrets: set spec.assumeRole.externalId in the manifest it reads";
            accounts.mark_invalid(
                account.metadata.name.as_deref().unwrap_or_default(),
                FieldError::new(field, message),
            );
        }
    }
    let mut errors = manifests.errors.clone();
    for (name, problems) in accounts.invalid() {
        let origin = manifests
            .accounts
            .iter()
            .find(|(a, _)| a.metadata.name.as_deref() == Some(name.as_str()))
            .map(|(_, o)| o.clone())
            .unwrap_or_default();
        for problem in problems {
            errors.push(ManifestError {
                origin: origin.clone(),
                resource: Some(format!("AwsAccount {name}")),
                message: problem.to_string(),
            });
        }
    }

    let connector = Arc::new(Connector::new(args.aws.connector_options()).await);
    let settings = EngineSettings {
        instance_id: args.instance_id.clone(),
        trust_policy_limit: args.trust_policy_limit,
        concurrency: args.concurrency,
        compaction: !args.no_compaction,
        principal_wait: *args.aws.principal_wait,
    };
    let engine = Engine::new(Arc::new(AwsPolicies::new(connector.clone())), settings)
        .with_snapshots(Arc::new(AwsSnapshots::new(connector)));
    Prepared {
        manifests,
        accounts,
        errors,
        engine,
    }
}

async fn run_engine(args: RunArgs, operation: Operation, dry_run: bool) -> i32 {
    let Prepared {
        manifests,
        accounts,
        errors,
        engine,
    } = prepare(&args).await;
    let report = run_grants(&engine, &accounts, &manifests.grants, operation, dry_run).await;
    let shares = run_shares(
        &engine, &accounts, &manifests, operation, dry_run, args.wait,
    )
    .await;

    match args.output {
        Output::Json => emit(&format!("{}\n", render::json(&report, &shares, &errors))),
        Output::Text => emit(&render::text(&report, &shares, &errors)),
    }
    exit_status(&report, &shares, &errors, dry_run)
}

/// 1 on any error; for a plan, 2 when changes are pending; else 0.
pub fn exit_status(
    report: &Report,
    shares: &[ShareReport],
    errors: &[ManifestError],
    dry_run: bool,
) -> i32 {
    let share_changes = shares.iter().any(|s| !s.steps.is_empty() || s.waiting());
    if !errors.is_empty() || report.has_errors() || shares.iter().any(ShareReport::failed) {
        1
    } else if dry_run && (report.has_changes() || share_changes) {
        2
    } else if !dry_run && shares.iter().any(ShareReport::waiting) {
        // Still waiting for a copy or a snapshot: not converged.
        1
    } else {
        0
    }
}

/// Runs the grants. Grants in `mode: Observe` never write: they are planned, and deleting them
/// leaves AWS as it is (like `deletionPolicy: Retain`).
async fn run_grants(
    engine: &Engine,
    accounts: &AccountDirectory,
    grants: &[GrantInput],
    operation: Operation,
    dry_run: bool,
) -> Report {
    let (observe, enforce): (Vec<GrantInput>, Vec<GrantInput>) = grants
        .iter()
        .cloned()
        .partition(|g| g.grant.spec.mode == GrantMode::Observe);
    let mut report = engine.run(accounts, &enforce, operation, dry_run).await;
    if !dry_run {
        report = unknown_principals::ride_out(engine, accounts, &enforce, operation, report).await;
    }
    if !observe.is_empty() {
        let observe: Vec<GrantInput> = observe
            .into_iter()
            .map(|mut g| {
                if operation == Operation::Delete {
                    g.grant.spec.deletion_policy = DeletionPolicy::Retain;
                }
                g
            })
            .collect();
        let observed = engine.run(accounts, &observe, operation, true).await;
        report.targets.extend(observed.targets);
        report.grants.extend(observed.grants);
    }
    report
}

/// Runs the shares; `apply` waits (up to `wait`) for copies and snapshots to become available.
async fn run_shares(
    engine: &Engine,
    accounts: &AccountDirectory,
    manifests: &Manifests,
    operation: Operation,
    dry_run: bool,
    wait: std::time::Duration,
) -> Vec<ShareReport> {
    // A wait too long to represent is as good as forever.
    let deadline = std::time::Instant::now().checked_add(wait);
    loop {
        let reports = engine
            .run_shares(accounts, &manifests.shares, operation, dry_run)
            .await;
        if dry_run
            || !reports.iter().any(ShareReport::waiting)
            || deadline.is_some_and(|d| std::time::Instant::now() + SHARE_POLL > d)
        {
            return reports;
        }
        for report in reports.iter().filter(|r| r.waiting()) {
            if let Some(c) = report.ready() {
                logging::eprint(&format!(
                    "{}: {}; checking again in {}s\n",
                    report.name,
                    c.message,
                    SHARE_POLL.as_secs()
                ));
            }
        }
        tokio::time::sleep(SHARE_POLL).await;
    }
}

/// How often `apply` looks again at a snapshot copy in progress.
const SHARE_POLL: std::time::Duration = std::time::Duration::from_secs(10);
