//! The convergence benchmark (BENCHMARKS.md): N single-principal grants over M targets in K
//! accounts, against the AWS emulator (moto), three ways in one run:
//!
//! - `engine`: the engine on every grant at once, as `xacct apply -f` runs it: converge from cold,
//!   then again with nothing to change (the CLI's "resync");
//! - `naive`: benches/naive_baseline.py, per-grant read-modify-write with boto3, cold then again;
//! - `controller`: the `xacct run` process against the kube emulator: until every grant is Ready,
//!   then one resync of every grant with no drift; its peak memory (VmHWM) holding the N grants;
//!
//! and `capacity`: how many single-principal grants fit on one bucket, repository, key and role
//! trust policy (no AWS). Prints markdown tables; `--json FILE` writes the numbers too.
//!
//! `cargo bench --bench converge -- --grants 1000 --targets 50 --accounts 5` (benches/run.sh).
//! Never run by `cargo test` / `cargo nextest run`: without cargo bench's `--bench` it does nothing.

mod calls;
mod capacity;
mod controller;
mod emulators;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use xacct::aws::AwsPolicies;
use xacct::engine::{Engine, EngineSettings, Operation, Purpose, Report, resolve_grant};

use calls::{Calls, class, show};
use capacity::thousands;
use controller::ControllerRun;
use emulators::{Moto, cpu_time};
use workload::Workload;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    Engine,
    Naive,
    Controller,
    Capacity,
}

/// The convergence benchmark (see BENCHMARKS.md).
#[derive(Debug, Parser)]
struct Args {
    /// Grants (each: one principal, one preset).
    #[arg(long, default_value_t = 1000)]
    grants: usize,
    /// Targets (policies) the grants are spread over: S3 buckets, ECR repositories, KMS keys in turn.
    #[arg(long, default_value_t = 50)]
    targets: usize,
    /// Accounts the targets are spread over.
    #[arg(long, default_value_t = 5)]
    accounts: usize,
    /// The controller's --resync-period: the steady-state pass is the next resync of every grant
    /// (longer than convergence, so that convergence is not mixed with resyncs).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    resync_period: Duration,
    /// The controller phase stops once every grant is Ready: no steady-state pass (for runs whose
    /// convergence takes longer than a resync period).
    #[arg(long)]
    cold_only: bool,
    /// Which phases to run.
    #[arg(long, value_enum, value_delimiter = ',',
          default_values_t = [Phase::Engine, Phase::Naive, Phase::Controller, Phase::Capacity])]
    phases: Vec<Phase>,
    /// Also write the numbers as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Passed by `cargo bench`; without it (`cargo test --benches`) nothing runs.
    #[arg(long, hide = true)]
    bench: bool,
}

/// A cold run and a run with nothing to change, in one process (engine, naive).
#[derive(Debug, Clone)]
struct TwoPasses {
    cold: Duration,
    cold_calls: Calls,
    steady: Duration,
    steady_calls: Calls,
    /// CPU time of the process that converged (xacct: the benchmark process; naive: not measured).
    cpu_cold: Option<Duration>,
    cpu_steady: Option<Duration>,
    /// CPU time of moto in the cold run.
    moto_cpu_cold: Duration,
    /// xacct only: resolving every grant alone (its CEL rules and references; no AWS), and of
    /// that the CEL rules.
    resolve: Option<(Duration, Duration)>,
}

/// Counts the bytes allocated, to measure what the controller's index holds.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if !args.bench {
        println!("converge: run it with `cargo bench --bench converge` (see BENCHMARKS.md)");
        return;
    }
    let w = Workload {
        grants: args.grants,
        targets: args.targets,
        accounts: args.accounts,
    };
    assert!(
        w.grants > 0 && w.targets > 0 && w.accounts > 0 && w.targets <= w.grants,
        "need grants >= targets > 0 and accounts > 0"
    );
    let resync_period = match args.cold_only {
        true => controller::NO_RESYNC,
        false => args.resync_period,
    };
    let started = Instant::now();
    let engine = if args.phases.contains(&Phase::Engine) {
        eprintln!("engine: {} grants, xacct apply twice", w.grants);
        Some(engine_phase(&w).await)
    } else {
        None
    };
    let naive = if args.phases.contains(&Phase::Naive) {
        eprintln!("naive: {} grants, benches/naive_baseline.py", w.grants);
        Some(naive_phase(&w).await)
    } else {
        None
    };
    let controller = if args.phases.contains(&Phase::Controller) {
        eprintln!("controller: {} grants, xacct run", w.grants);
        let moto = Moto::start();
        let names = w.create_resources(&*moto.connector().await).await;
        let (_, accounts, grants) = workload::parse(&w.manifests_yaml(&names));
        Some(controller::run(&moto, &accounts, &grants, resync_period, !args.cold_only).await)
    } else {
        None
    };
    let capacity = args.phases.contains(&Phase::Capacity);
    if capacity {
        eprintln!("capacity: checking the table against the engine's plan");
        confirm_capacity().await;
    }

    let results = Results {
        w,
        engine,
        naive,
        controller,
        resync_period,
    };
    print!("{}", results.markdown());
    if capacity {
        println!("\n### Capacity: single-principal grants on one policy\n");
        print!("{}", capacity::table());
    }
    eprintln!("benchmark finished in {:.0?}", started.elapsed());
    if let Some(path) = args.json {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&results.json()).expect("JSON"),
        )
        .expect("write the JSON results");
    }
}

/// `xacct apply` on every grant from cold, then again with nothing to change.
async fn engine_phase(w: &Workload) -> TwoPasses {
    let moto = Moto::start();
    let names = w.create_resources(&*moto.connector().await).await;
    let (accounts, _, grants) = workload::parse(&w.manifests_yaml(&names));
    // A connector of its own: no cached credentials, an empty call log.
    let connector = moto.connector().await;
    let engine = Engine::new(
        Arc::new(AwsPolicies::new(connector.clone())),
        EngineSettings::default(),
    );
    let me = std::process::id();
    // What checking the grants costs alone (every run does it for every grant), and what kube's own
    // `validate_cel` would cost instead of xacct's compiled-once rules.
    let t = Instant::now();
    for input in &grants {
        resolve_grant(&input.grant, &accounts, "default", Purpose::Grant).expect("valid grant");
    }
    let resolve = t.elapsed();
    let t = Instant::now();
    for input in &grants {
        input.grant.validate_cel().expect("valid grant");
    }
    let cel = t.elapsed();

    let (cpu, moto_cpu, t) = (cpu_time(me), cpu_time(moto.pid()), Instant::now());
    let report = engine
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    let cold = t.elapsed();
    let cpu_cold = cpu_time(me).saturating_sub(cpu);
    let moto_cpu_cold = cpu_time(moto.pid()).saturating_sub(moto_cpu);
    expect_all(&report, "Applied");
    let cold_calls = Calls::from_log(&connector.calls().snapshot());
    connector.calls().reset();

    let (cpu, t) = (cpu_time(me), Instant::now());
    let report = engine
        .run(&accounts, &grants, Operation::Apply, false)
        .await;
    let steady = t.elapsed();
    let cpu_steady = cpu_time(me).saturating_sub(cpu);
    expect_all(&report, "Converged");
    TwoPasses {
        cold,
        cold_calls,
        steady,
        steady_calls: Calls::from_log(&connector.calls().snapshot()),
        cpu_cold: Some(cpu_cold),
        cpu_steady: Some(cpu_steady),
        moto_cpu_cold,
        resolve: Some((resolve, cel)),
    }
}

/// Every grant ended with `reason`.
fn expect_all(report: &Report, reason: &str) {
    let other: Vec<_> = report
        .grants
        .iter()
        .filter(|g| g.ready().is_none_or(|c| c.reason != reason))
        .take(3)
        .collect();
    assert!(
        other.is_empty(),
        "expected every grant {reason}: {}",
        serde_json::to_string_pretty(&other).unwrap_or_default()
    );
}

/// The naive script, on its own fresh emulator, then a plan by xacct that must find nothing to
/// change (both end with the same policies).
async fn naive_phase(w: &Workload) -> TwoPasses {
    let moto = Moto::start();
    let setup = moto.connector().await;
    let names = w.create_resources(&setup).await;
    let (accounts, _, grants) = workload::parse(&w.manifests_yaml(&names));
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = dir.path().join("naive.json");
    std::fs::write(&spec, w.naive_spec(&names, &accounts, &grants).to_string())
        .expect("write the naive spec");
    let moto_cpu = cpu_time(moto.pid());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/naive_baseline.py");
    let output = std::process::Command::new(emulators::python())
        .arg(script)
        .arg(&spec)
        .envs(moto.env())
        .output()
        .expect("the naive baseline runs");
    assert!(
        output.status.success(),
        "the naive baseline failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Both passes; moto's CPU is only split per pass for xacct.
    let moto_cpu_cold = cpu_time(moto.pid()).saturating_sub(moto_cpu);
    let out: Value = serde_json::from_slice(&output.stdout).expect("the naive baseline's JSON");
    let check = Engine::new(
        Arc::new(AwsPolicies::new(setup.clone())),
        EngineSettings::default(),
    )
    .run(&accounts, &grants, Operation::Apply, true)
    .await;
    assert!(
        !check.has_changes() && !check.has_errors(),
        "xacct would still change what the naive script wrote"
    );
    let secs = |v: &Value| Duration::from_secs_f64(v["seconds"].as_f64().unwrap_or(0.0));
    TwoPasses {
        cold: secs(&out["cold"]),
        cold_calls: Calls::from_rows(&out["cold"]["calls"]),
        steady: secs(&out["steady"]),
        steady_calls: Calls::from_rows(&out["steady"]["calls"]),
        cpu_cold: None,
        cpu_steady: None,
        moto_cpu_cold,
        resolve: None,
    }
}

/// Every capacity row: the engine's plan keeps the capacity and leaves exactly one grant out of
/// one more.
async fn confirm_capacity() {
    for row in capacity::ROWS {
        for layout in capacity::LAYOUTS {
            let c = capacity::capacity(row, *layout);
            let fits = capacity::left_out_by_engine(row, *layout, c.grants).await;
            let over = capacity::left_out_by_engine(row, *layout, c.grants + 1).await;
            assert_eq!(
                (fits, over),
                (0, 1),
                "{}: the engine disagrees on {} grants",
                row.policy,
                c.grants
            );
        }
    }
}

struct Results {
    w: Workload,
    engine: Option<TwoPasses>,
    naive: Option<TwoPasses>,
    controller: Option<ControllerRun>,
    resync_period: Duration,
}

fn secs(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 {
        "—".into()
    } else {
        format!("{:.1}×", a / b)
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl Results {
    /// The minimum number of calls of an operation: one read per target, one write per changed
    /// target (every target from cold, none in steady state); other operations have none.
    fn minimum(&self, operation: &str, cold: bool) -> Option<u64> {
        let by_kind = self.w.targets_by_kind();
        let kind = match operation {
            "GetBucketPolicy" | "PutBucketPolicy" => "S3Bucket",
            "GetRepositoryPolicy" | "SetRepositoryPolicy" => "EcrRepository",
            "GetKeyPolicy" | "PutKeyPolicy" => "KmsKey",
            _ => return None,
        };
        let n = by_kind.get(kind).copied().unwrap_or(0) as u64;
        match class(operation) {
            "write" if !cold => Some(0),
            _ => Some(n),
        }
    }

    fn columns(&self, cold: bool) -> Vec<(&'static str, Calls)> {
        let mut out = Vec::new();
        if let Some(e) = &self.engine {
            let calls = if cold { &e.cold_calls } else { &e.steady_calls };
            out.push(("xacct apply", calls.clone()));
        }
        if let Some(c) = &self.controller {
            match (cold, &c.resync) {
                (true, _) => out.push(("xacct run", c.cold_calls.clone())),
                (false, Some(r)) => out.push(("xacct run", r.calls.clone())),
                (false, None) => {}
            }
        }
        if let Some(n) = &self.naive {
            let calls = if cold { &n.cold_calls } else { &n.steady_calls };
            out.push(("naive script", calls.clone()));
        }
        out
    }

    fn calls_table(&self, cold: bool) -> String {
        let columns = self.columns(cold);
        let mut out = String::from("| operation | minimum |");
        for (name, _) in &columns {
            out.push_str(&format!(" {name} |"));
        }
        out.push_str("\n|---|---:|");
        for _ in &columns {
            out.push_str("---:|");
        }
        out.push('\n');
        let mut operations: Vec<(String, String)> = columns
            .iter()
            .flat_map(|(_, c)| c.0.keys().cloned())
            .collect();
        operations.sort_by_key(|(service, op)| {
            let rank = match class(op) {
                "read" => 0,
                "write" => 1,
                _ => 2,
            };
            (rank, service.clone(), op.clone())
        });
        operations.dedup();
        for (service, op) in &operations {
            let minimum = self.minimum(op, cold).map_or("—".to_string(), thousands);
            out.push_str(&format!("| {service} {op} | {minimum} |"));
            for (_, calls) in &columns {
                out.push_str(&format!(" {} |", show(calls.get(service, op))));
            }
            out.push('\n');
        }
        let min_reads = self.w.targets as u64;
        let min_writes = if cold { self.w.targets as u64 } else { 0 };
        let mut totals = format!("| **policy reads** | **{}** |", thousands(min_reads));
        let mut writes = format!("| **policy writes** | **{}** |", thousands(min_writes));
        let mut all = String::from("| **every call** | — |");
        for (_, calls) in &columns {
            totals.push_str(&format!(" **{}** |", thousands(calls.reads())));
            writes.push_str(&format!(" **{}** |", thousands(calls.writes())));
            all.push_str(&format!(" **{}** |", thousands(calls.total())));
        }
        out.push_str(&format!("{totals}\n{writes}\n{all}\n"));
        out
    }

    fn markdown(&self) -> String {
        let w = &self.w;
        let kinds = w
            .targets_by_kind()
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let mut out = format!(
            "## {} grants over {} targets in {} accounts\n\n\
             {} grants, one principal and one preset each (`read`, `pull`, `decrypt`), about {} per \
             target; targets: {kinds}; moto in server mode, {cores} cores ({cpu}).\n\n",
            thousands(w.grants as u64),
            thousands(w.targets as u64),
            w.accounts,
            thousands(w.grants as u64),
            w.grants.div_ceil(w.targets),
        );

        out.push_str("### Converge from cold\n\n");
        out.push_str("| | xacct apply (engine, every grant in one run) | xacct run (controller, until every grant is Ready) | naive script (boto3, per grant) |\n|---|---:|---:|---:|\n");
        let e = self.engine.as_ref();
        let c = self.controller.as_ref();
        let r = c.and_then(|c| c.resync.as_ref());
        let n = self.naive.as_ref();
        let cell = |v: Option<String>| v.unwrap_or_else(|| "not run".into());
        out.push_str(&format!(
            "| wall time | {} | {} | {} |\n",
            cell(e.map(|e| secs(e.cold))),
            cell(c.map(|c| secs(c.converge))),
            cell(n.map(|n| secs(n.cold))),
        ));
        out.push_str(&format!(
            "| wall time until 99% of the grants are Ready | — | {} | — |\n",
            cell(c.map(|c| secs(c.converge_99))),
        ));
        out.push_str(&format!(
            "| CPU time of xacct | {} | {} | — |\n",
            cell(e.and_then(|e| e.cpu_cold).map(secs)),
            cell(c.map(|c| secs(c.cpu_converge))),
        ));
        out.push_str(&format!(
            "| checking the grants, measured apart (resolve_grant, no AWS; in brackets: kube's `validate_cel` alone, which compiles the CEL rules on every call and xacct no longer uses) | {} | — | — |\n",
            cell(e.and_then(|e| e.resolve).map(|(r, c)| format!("{} ({})", secs(r), secs(c)))),
        ));
        out.push_str(&format!(
            "| CPU time of moto | {} | {} | {} (both passes) |\n",
            cell(e.map(|e| secs(e.moto_cpu_cold))),
            cell(c.map(|c| secs(c.emulators_cpu_converge.1))),
            cell(n.map(|n| secs(n.moto_cpu_cold))),
        ));
        out.push_str(&format!(
            "| CPU time of the kube emulator | — | {} | — |\n",
            cell(c.map(|c| secs(c.emulators_cpu_converge.0))),
        ));
        out.push_str(&format!(
            "| AWS calls | {} | {} | {} |\n",
            cell(e.map(|e| thousands(e.cold_calls.total()))),
            cell(c.map(|c| thousands(c.cold_calls.total()))),
            cell(n.map(|n| thousands(n.cold_calls.total()))),
        ));
        out.push_str(&format!(
            "| grant reconciles | — | {} | — |\n",
            cell(c.map(|c| thousands(c.cold_reconciles))),
        ));
        out.push_str(&format!(
            "| engine runs (`xacct_engine_runs_total`; policies: {}) | 1 | {} | — |\n",
            thousands(w.targets as u64),
            cell(c.map(|c| thousands(c.cold_engine_runs))),
        ));
        if let (Some(e), Some(c)) = (e, c) {
            out.push_str(&format!(
                "| time until every grant is Ready ÷ xacct apply's | — | {} | — |\n",
                ratio(c.converge.as_secs_f64(), e.cold.as_secs_f64()),
            ));
        }
        if let Some(c) = c {
            out.push_str(&format!(
                "| the same Kubernetes writes made alone, without xacct or AWS (per grant: finalizer, event, status; 8 at a time in a fresh kube emulator): the emulator's floor | — | {} | — |\n",
                secs(c.kube_floor),
            ));
        }
        out.push('\n');
        if c.is_some_and(|c| c.converge > self.resync_period) {
            out.push_str(
                "Convergence took longer than the resync period: the controller's cold numbers \
                 include resyncs of grants already converged.\n\n",
            );
        }
        out.push_str("AWS calls by operation, from cold (minimum: one read per target, one write per changed target):\n\n");
        out.push_str(&self.calls_table(true));

        out.push_str("\n### Steady state: every grant checked again, no drift\n\n");
        out.push_str(&format!(
            "xacct apply: a second run; xacct run: the next reconcile of every grant by the resync \
             (--resync-period {}s), measured from the controller's metrics; naive: a second pass.\n\n",
            self.resync_period.as_secs()
        ));
        out.push_str("| | xacct apply | xacct run | naive script |\n|---|---:|---:|---:|\n");
        out.push_str(&format!(
            "| wall time | {} | — (spread over the resync period; window measured: {}) | {} |\n",
            cell(e.map(|e| secs(e.steady))),
            cell(r.map(|r| secs(r.window))),
            cell(n.map(|n| secs(n.steady))),
        ));
        out.push_str(&format!(
            "| CPU time of xacct | {} | {} | — |\n",
            cell(e.and_then(|e| e.cpu_steady).map(secs)),
            cell(r.map(|r| secs(r.cpu))),
        ));
        out.push_str(&format!(
            "| grant reconciles | — | {} | — |\n",
            cell(r.map(|r| thousands(r.reconciles))),
        ));
        out.push_str(&format!(
            "| engine runs | 1 | {} | — |\n",
            cell(r.map(|r| thousands(r.engine_runs))),
        ));
        out.push_str(&format!(
            "| grants written in the Kubernetes API (status; a watch event for every watcher) | — | {} | — |\n\n",
            cell(r.map(|r| thousands(r.grant_writes))),
        ));
        out.push_str(&self.calls_table(false));

        if let (Some(n), Some(e)) = (n, e) {
            out.push_str("\n### Naive script ÷ xacct apply\n\n| | from cold | steady state |\n|---|---:|---:|\n");
            out.push_str(&format!(
                "| wall time | {} | {} |\n| AWS calls | {} | {} |\n| policy writes | {} | {} |\n",
                ratio(n.cold.as_secs_f64(), e.cold.as_secs_f64()),
                ratio(n.steady.as_secs_f64(), e.steady.as_secs_f64()),
                ratio(n.cold_calls.total() as f64, e.cold_calls.total() as f64),
                ratio(n.steady_calls.total() as f64, e.steady_calls.total() as f64),
                ratio(n.cold_calls.writes() as f64, e.cold_calls.writes() as f64),
                ratio(
                    n.steady_calls.writes() as f64,
                    e.steady_calls.writes() as f64
                ),
            ));
        }
        if let (Some(n), Some(c)) = (n, c) {
            out.push_str("\n### Naive script ÷ xacct run (controller)\n\n| | from cold | steady state |\n|---|---:|---:|\n");
            out.push_str(&format!(
                "| wall time | {} | — |\n| AWS calls | {} | {} |\n| policy writes | {} | {} |\n",
                ratio(n.cold.as_secs_f64(), c.converge.as_secs_f64()),
                ratio(n.cold_calls.total() as f64, c.cold_calls.total() as f64),
                ratio(
                    n.steady_calls.total() as f64,
                    r.map_or(0.0, |r| r.calls.total() as f64)
                ),
                ratio(n.cold_calls.writes() as f64, c.cold_calls.writes() as f64),
                ratio(
                    n.steady_calls.writes() as f64,
                    r.map_or(0.0, |r| r.calls.writes() as f64)
                ),
            ));
        }
        if let Some(c) = c {
            out.push_str(&format!(
                "\n### Controller memory\n\n| | |\n|---|---:|\n\
                 | peak RSS (VmHWM) of `xacct run` holding {} grants | **{}** |\n\
                 | RSS at the end (file-backed: the binary's pages; anonymous: heap, stacks) | {} ({} file-backed, {} anonymous) |\n\
                 | peak RSS per grant | {:.1} KiB |\n\
                 | the grants as listed from the API, statuses included (measured apart) | {} |\n\
                 | the index built from them as `xacct run` builds it (measured apart) | {} ({:.2} KiB per grant) |\n\
                 | time until every grant is Ready, per grant | {:.2} ms |\n\
                 | creating the {} objects in the kube emulator (not timed above) | {} |\n",
                thousands(w.grants as u64),
                mib(c.peak_rss),
                mib(c.rss_after),
                mib(c.rss_file_after),
                mib(c.rss_after.saturating_sub(c.rss_file_after)),
                c.peak_rss as f64 / 1024.0 / w.grants as f64,
                mib(c.grants_listed_bytes),
                mib(c.index_bytes),
                c.index_bytes as f64 / 1024.0 / w.grants as f64,
                c.converge.as_secs_f64() * 1000.0 / w.grants as f64,
                thousands((w.grants + w.accounts) as u64),
                secs(c.create_objects),
            ));
        }
        out
    }

    fn json(&self) -> Value {
        let calls = |c: &Calls| -> Value {
            c.0.iter()
                .map(|((s, o), n)| json!({"service": s, "operation": o, "ok": n.ok, "failed": n.failed}))
                .collect()
        };
        let passes = |p: &TwoPasses| {
            json!({
                "coldSeconds": p.cold.as_secs_f64(), "coldCalls": calls(&p.cold_calls),
                "steadySeconds": p.steady.as_secs_f64(), "steadyCalls": calls(&p.steady_calls),
                "cpuColdSeconds": p.cpu_cold.map(|d| d.as_secs_f64()),
                "cpuSteadySeconds": p.cpu_steady.map(|d| d.as_secs_f64()),
                "motoCpuColdSeconds": p.moto_cpu_cold.as_secs_f64(),
                "resolveSeconds": p.resolve.map(|r| r.0.as_secs_f64()),
                "celSeconds": p.resolve.map(|r| r.1.as_secs_f64()),
            })
        };
        json!({
            "grants": self.w.grants, "targets": self.w.targets, "accounts": self.w.accounts,
            "engine": self.engine.as_ref().map(passes),
            "naive": self.naive.as_ref().map(passes),
            "controller": self.controller.as_ref().map(|c| json!({
                "convergeSeconds": c.converge.as_secs_f64(), "converge99Seconds": c.converge_99.as_secs_f64(),
                "coldCalls": calls(&c.cold_calls),
                "coldReconciles": c.cold_reconciles, "coldEngineRuns": c.cold_engine_runs,
                "resync": c.resync.as_ref().map(|r| json!({
                    "windowSeconds": r.window.as_secs_f64(), "calls": calls(&r.calls),
                    "reconciles": r.reconciles, "engineRuns": r.engine_runs,
                    "grantWrites": r.grant_writes, "cpuSeconds": r.cpu.as_secs_f64(),
                })),
                "peakRssBytes": c.peak_rss, "rssAfterBytes": c.rss_after, "rssFileAfterBytes": c.rss_file_after,
                "cpuConvergeSeconds": c.cpu_converge.as_secs_f64(),
                "kubeEmulatorCpuConvergeSeconds": c.emulators_cpu_converge.0.as_secs_f64(),
                "motoCpuConvergeSeconds": c.emulators_cpu_converge.1.as_secs_f64(),
                "createObjectsSeconds": c.create_objects.as_secs_f64(),
                "kubeFloorSeconds": c.kube_floor.as_secs_f64(),
                "grantsListedBytes": c.grants_listed_bytes, "indexBytes": c.index_bytes,
            })),
        })
    }
}
