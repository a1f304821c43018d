//! The controller phase: the real `xacct run` process (the benchmark's build of it) against the
//! kube emulator and moto, holding every grant of the workload: time until every grant is Ready,
//! the AWS calls of that and of the next resync of every grant, its peak memory and CPU time.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use xacct::api::{AwsAccount, CrossAccountGrant};
use xacct::controller::index::GrantIndex;
use xacct::engine::GrantInput;

use super::calls::Calls;
use super::emulators::{KubeEmulator, Moto, cpu_time, http_get, memory};

/// What the controller phase measured.
#[derive(Debug, Clone)]
pub struct ControllerRun {
    /// Creating the objects in the kube emulator (not part of convergence).
    pub create_objects: Duration,
    /// From process start until every grant is Ready.
    pub converge: Duration,
    /// From process start until 99% of the grants are Ready.
    pub converge_99: Duration,
    /// AWS calls until then.
    pub cold_calls: Calls,
    /// Grant reconciles until then.
    pub cold_reconciles: u64,
    /// Engine runs until then (`xacct_engine_runs_total`).
    pub cold_engine_runs: u64,
    /// The resync pass after that, unless the run stopped at convergence.
    pub resync: Option<Resync>,
    /// Peak resident set size (VmHWM), bytes.
    pub peak_rss: u64,
    /// Resident set size at the end, bytes.
    pub rss_after: u64,
    /// Of that, file-backed (the binary's pages, mostly code), bytes.
    pub rss_file_after: u64,
    /// CPU time of the controller until every grant was Ready.
    pub cpu_converge: Duration,
    /// Bytes the grants take as listed from the API (with their status), and in an index built
    /// from that list as `xacct run` builds it, measured in the benchmark's process.
    pub grants_listed_bytes: u64,
    /// See `grants_listed_bytes`.
    pub index_bytes: u64,
    /// CPU time of the kube emulator and of moto until every grant was Ready.
    pub emulators_cpu_converge: (Duration, Duration),
    /// The Kubernetes writes `xacct run` makes per grant from cold, made alone: see [`kube_floor`].
    pub kube_floor: Duration,
}

/// The resync pass: every grant reconciled once more, with no drift.
#[derive(Debug, Clone)]
pub struct Resync {
    /// The window in which every grant was reconciled once more.
    pub window: Duration,
    /// AWS calls in that window.
    pub calls: Calls,
    /// Grant reconciles in that window.
    pub reconciles: u64,
    /// Engine runs in that window.
    pub engine_runs: u64,
    /// Grants written in that window (their resourceVersion changed: a status write, seen by
    /// every watcher of the grants).
    pub grant_writes: u64,
    /// CPU time of the controller in that window.
    pub cpu: Duration,
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The resync period of a run that stops at convergence.
pub const NO_RESYNC: Duration = Duration::from_secs(86_400);

/// Runs the phase: objects created, `xacct run` started with `--resync-period period`, measured
/// until every grant is Ready and, when `steady`, over the resync pass after that; stopped.
pub async fn run(
    moto: &Moto,
    accounts: &[AwsAccount],
    grants: &[GrantInput],
    period: Duration,
    steady: bool,
) -> ControllerRun {
    let kube = KubeEmulator::start();
    let client = kube.client();
    let started = Instant::now();
    let account_api: Api<AwsAccount> = Api::all(client.clone());
    for account in accounts {
        account_api
            .create(&PostParams::default(), account)
            .await
            .expect("create AwsAccount");
    }
    create_grants(&client, grants).await;
    let create_objects = started.elapsed();
    eprintln!(
        "  {} objects created in the kube emulator in {:.1?}",
        grants.len() + accounts.len(),
        create_objects
    );

    let dir = tempfile::tempdir().expect("temp dir");
    // With XACCT_LOG set, the controller logs at that level to target/bench-xacct-run.log.
    let level = std::env::var("XACCT_LOG").ok();
    let log = match level {
        Some(_) => {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-xacct-run.log")
        }
        None => dir.path().join("xacct-run.log"),
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let mut command = Command::new(env!("CARGO_BIN_EXE_xacct"));
    command
        .args([
            "run",
            "--resync-period",
            &format!("{}s", period.as_secs()),
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KUBECONFIG", kube.kubeconfig(dir.path()))
        .env("XACCT_LOG", level.as_deref().unwrap_or("warn"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    for (k, v) in moto.env() {
        command.env(k, v);
    }
    // glibc's malloc tuning, as the image may set it.
    if let Ok(arenas) = std::env::var("MALLOC_ARENA_MAX") {
        command.env("MALLOC_ARENA_MAX", arenas);
    }
    let kube_pid = kube.pid().unwrap_or(0);
    let emulators_cpu = (cpu_time(kube_pid), cpu_time(moto.pid()));
    let started = Instant::now();
    let process = Process(command.spawn().expect("xacct run starts"));
    let pid = process.0.id();
    let n = grants.len() as u64;

    // Cold: until every grant is Ready.
    let mut last_report = Instant::now();
    let mut converge_99 = None;
    let (converge, text) = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let text = http_get(&metrics).await.unwrap_or_default();
        let ready = gauge(&text, "xacct_grants{ready=\"True\"}");
        if converge_99.is_none() && ready * 100 >= n * 99 {
            converge_99 = Some(started.elapsed());
        }
        if ready >= n {
            break (started.elapsed(), text);
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            let failed = gauge(&text, "xacct_grants{ready=\"False\"}");
            eprintln!(
                "  {ready}/{n} grants Ready ({failed} not Ready) after {:.0?}",
                started.elapsed()
            );
            last_report = Instant::now();
        }
        assert!(
            started.elapsed() < Duration::from_secs(3600),
            "not converged after an hour ({ready}/{n} Ready)"
        );
    };
    let cpu_converge = cpu_time(pid);
    let emulators_cpu_converge = (
        cpu_time(kube_pid).saturating_sub(emulators_cpu.0),
        cpu_time(moto.pid()).saturating_sub(emulators_cpu.1),
    );
    if converge > period {
        eprintln!(
            "  warning: convergence took longer than the resync period: resyncs are counted in it"
        );
    }
    let cold_calls = Calls::from_metrics(&text);
    let cold_reconciles = reconciles(&text);
    let cold_engine_runs = gauge(&text, "xacct_engine_runs_total");
    eprintln!("  every grant Ready after {converge:.1?} ({cold_reconciles} reconciles)");

    let resync = match steady {
        true => Some(resync_pass(&metrics, &client, &text, n, period, &log, pid).await),
        false => None,
    };
    let peak_rss = memory(pid, "VmHWM").unwrap_or(0);
    let rss_after = memory(pid, "VmRSS").unwrap_or(0);
    let rss_file_after = memory(pid, "RssFile").unwrap_or(0);
    stop(process);
    let (grants_listed_bytes, index_bytes) = index_size(&client, accounts).await;
    drop(kube);
    let kube_floor = kube_floor(grants).await;
    ControllerRun {
        create_objects,
        converge,
        converge_99: converge_99.unwrap_or(converge),
        cold_calls,
        cold_reconciles,
        cold_engine_runs,
        resync,
        peak_rss,
        rss_after,
        rss_file_after,
        cpu_converge,
        emulators_cpu_converge,
        grants_listed_bytes,
        index_bytes,
        kube_floor,
    }
}

/// The three Kubernetes writes `xacct run` makes for each grant from cold (its finalizer, an
/// event, its status), made by the benchmark alone, 8 at a time, in a fresh kube emulator holding
/// the same grants: how long the emulator takes to absorb them, a floor for the controller's time
/// from cold on this machine, whatever the controller does.
async fn kube_floor(grants: &[GrantInput]) -> Duration {
    let kube = KubeEmulator::start();
    let client = kube.client();
    create_grants(&client, grants).await;
    let started = Instant::now();
    eight_at_a_time(&client, grants, "the Kubernetes writes", |client, input| async move {
            let meta = &input.grant.metadata;
            let namespace = meta.namespace.clone().unwrap_or_default();
            let name = meta.name.clone().unwrap_or_default();
            let api: Api<CrossAccountGrant> = Api::namespaced(client.clone(), &namespace);
            let finalizer = serde_json::json!({"metadata": {"finalizers": ["xacct.dev/revoke"]}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&finalizer))
                .await?;
            let events: Api<Event> = Api::namespaced(client, &namespace);
            let event: Event = serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("{name}.applied")},
                "eventTime": "2026-12-03T10:00:00.000000Z", "reportingController": "xacct",
                "reportingInstance": "xacct", "action": "Apply", "reason": "Applied", "type": "Normal",
                "note": "statements in place", "regarding": {"apiVersion": "xacct.dev/v1alpha1",
                "kind": "CrossAccountGrant", "namespace": namespace, "name": name}}))
            .map_err(kube::Error::SerdeError)?;
            events.create(&PostParams::default(), &event).await?;
            let status = serde_json::json!({"apiVersion": "xacct.dev/v1alpha1", "kind": "CrossAccountGrant",
                "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True",
                "reason": "Applied", "message": "statements in place in 1 policy",
                "lastTransitionTime": "2026-12-03T10:00:00Z", "observedGeneration": 1}],
                "targets": [{"arn": "arn:aws:s3:::bucket", "resource": input.grant.spec.resource,
                "region": "us-east-1", "sids": ["XacctBenchBucket", "XacctBenchObjects"],
                "generation": 1}]}});
            api.patch_status(&name, &PatchParams::apply("xacct").force(), &Patch::Apply(&status))
                .await
                .map(|_| ())
    })
    .await;
    started.elapsed()
}

/// Creates the workload's grants, 8 at a time.
async fn create_grants(client: &kube::Client, grants: &[GrantInput]) {
    eight_at_a_time(
        client,
        grants,
        "create CrossAccountGrants",
        |client, input| async move {
            let namespace = input.grant.metadata.namespace.clone().unwrap_or_default();
            let api: Api<CrossAccountGrant> = Api::namespaced(client, &namespace);
            api.create(&PostParams::default(), &input.grant)
                .await
                .map(|_| ())
        },
    )
    .await;
}

/// `request` for every grant, 8 at a time; panics with `what` on the first error.
async fn eight_at_a_time<'a, F, Fut>(
    client: &kube::Client,
    grants: &'a [GrantInput],
    what: &str,
    request: F,
) where
    F: Fn(kube::Client, &'a GrantInput) -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    futures::stream::iter(grants.iter().map(|input| request(client.clone(), input)))
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// The bytes the grants take as listed (statuses included) and in an index built from them,
/// with the accounts, as `xacct run` builds it.
async fn index_size(client: &kube::Client, accounts: &[AwsAccount]) -> (u64, u64) {
    let allocated = || super::ALLOCATOR.allocated() as u64;
    let api: Api<CrossAccountGrant> = Api::all(client.clone());
    let before = allocated();
    let list = api
        .list(&Default::default())
        .await
        .expect("list the grants");
    let listed = allocated().saturating_sub(before);
    let before = allocated();
    let mut index = GrantIndex::default();
    for account in accounts {
        index.apply_account(account);
    }
    index.begin_relist();
    for grant in &list.items {
        index.apply_grant(grant.clone());
    }
    index.end_relist();
    let held = allocated().saturating_sub(before);
    drop(list);
    assert!(index.synced());
    (listed, held)
}

/// Waits until every grant was reconciled once more by the resync (`cold` is the metrics text at
/// convergence), and measures that window.
async fn resync_pass(
    metrics: &str,
    client: &kube::Client,
    cold: &str,
    n: u64,
    period: Duration,
    log: &std::path::Path,
    pid: u32,
) -> Resync {
    // The status writes of convergence come after the metric counts a grant Ready: the window
    // starts once they are done (two lists a second apart agree).
    let mut versions_before = versions(client).await;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let again = versions(client).await;
        if again == versions_before {
            break;
        }
        versions_before = again;
    }
    let cpu_before = cpu_time(pid);
    let window = Instant::now();
    let text = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let text = http_get(metrics).await.unwrap_or_default();
        if reconciles(&text) >= reconciles(cold) + n {
            break text;
        }
        assert!(
            window.elapsed() < period * 3 + Duration::from_secs(600),
            "the resync did not reconcile every grant; log: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    };
    let versions_after = versions(client).await;
    Resync {
        window: window.elapsed(),
        calls: Calls::from_metrics(&text).since(&Calls::from_metrics(cold)),
        reconciles: reconciles(&text) - reconciles(cold),
        engine_runs: gauge(&text, "xacct_engine_runs_total")
            - gauge(cold, "xacct_engine_runs_total"),
        grant_writes: versions_after
            .iter()
            .filter(|(key, version)| versions_before.get(*key) != Some(version))
            .count() as u64,
        cpu: cpu_time(pid).saturating_sub(cpu_before),
    }
}

/// Every grant's resourceVersion, by namespace/name.
async fn versions(client: &kube::Client) -> HashMap<String, String> {
    let api: Api<CrossAccountGrant> = Api::all(client.clone());
    let list = api
        .list(&Default::default())
        .await
        .expect("list the grants");
    list.items
        .into_iter()
        .map(|g| {
            let key = format!(
                "{}/{}",
                g.metadata.namespace.unwrap_or_default(),
                g.metadata.name.unwrap_or_default()
            );
            (key, g.metadata.resource_version.unwrap_or_default())
        })
        .collect()
}

/// A gauge's or counter's value (0 when absent).
fn gauge(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// CrossAccountGrant reconciles so far, whatever their outcome.
fn reconciles(text: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.starts_with("xacct_reconciles_total{") && l.contains("kind=\"CrossAccountGrant\"")
        })
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// SIGTERM, then wait (kill after 10 s).
fn stop(mut process: Process) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(process.0.id().to_string())
        .status();
    for _ in 0..100 {
        if let Ok(Some(_)) = process.0.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
