//! Logging, through the binary: `xacct run` against the kube emulator and moto says what it does
//! at `info` by default (JSON lines with `--log-format json`, text without colour codes when stderr
//! is not a terminal), the CLI commands only warn by default, and a closed stderr does not keep
//! `xacct run` from stopping on SIGTERM.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};
use support::kube_api::{KubeEmulator, eventually, free_port};
use support::process::http_get;
use support::{DATA_ACCOUNT, DEV_ACCOUNT, Moto, accounts_yaml, bucket_policy, clients};
use xacct::api::{AwsAccount, CrossAccountGrant};

/// A secret the process is given: it must appear in no log line.
const SECRET: &str = "wJalrXUtnFEMI-logging-test-secret";

/// An S3 bucket in the data account of `moto`.
async fn bucket(moto: &Moto, name: &str) -> aws_sdk_s3::Client {
    let connector = moto.connector().await;
    let s3 = clients(&connector, DATA_ACCOUNT).await.s3;
    s3.create_bucket()
        .bucket(name)
        .send()
        .await
        .expect("bucket");
    s3
}

/// The AwsAccount `data-prod` and the grant `batch/reads-lake` on `bucket`, in the kube emulator.
async fn objects(kube: &KubeEmulator, bucket: &str) {
    let client = kube.client();
    let account: AwsAccount = serde_json::from_value(json!({
        "apiVersion": "xacct.dev/v1alpha1", "kind": "AwsAccount", "metadata": {"name": "data-prod"},
        "spec": {"accountId": DATA_ACCOUNT, "assumeRole": {"roleArn": format!("arn:aws:iam::{DATA_ACCOUNT}:role/xacct-manager")},
                 "region": "us-east-1", "allowedNamespaces": ["batch"]}
    }))
    .expect("account");
    Api::<AwsAccount>::all(client.clone())
        .create(&PostParams::default(), &account)
        .await
        .expect("create account");
    let grant: CrossAccountGrant = serde_json::from_value(json!({
        "apiVersion": "xacct.dev/v1alpha1", "kind": "CrossAccountGrant", "metadata": {"name": "reads-lake", "namespace": "batch"},
        "spec": {"resource": {"account": "data-prod", "kind": "S3Bucket", "name": bucket},
                 "grantee": {"accountId": DEV_ACCOUNT}, "access": ["read"]}
    }))
    .expect("grant");
    Api::<CrossAccountGrant>::namespaced(client, "batch")
        .create(&PostParams::default(), &grant)
        .await
        .expect("create grant");
}

/// `xacct run` against the emulators (no `XACCT_LOG`: the default level), metrics on `port`.
fn xacct_run(moto: &Moto, kube: &KubeEmulator, port: u16, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xacct"));
    command
        .args([
            "run",
            "--resync-period",
            "2s",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KUBECONFIG", kube.kubeconfig())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for (k, v) in moto.env() {
        command.env(k, v);
    }
    command.env("AWS_SECRET_ACCESS_KEY", SECRET);
    command
}

/// Kills the child when a test fails half-way.
struct Running(Child);

impl Running {
    /// SIGTERM, then the exit status within `seconds` (`None`: still running, then killed).
    fn terminate(&mut self, seconds: u64) -> Option<std::process::ExitStatus> {
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM sent");
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        None
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lines read so far from a child's stderr (read by a thread until it closes).
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn read_from(stderr: impl Read + Send + 'static) -> (Lines, std::thread::JoinHandle<()>) {
        let lines = Lines::default();
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.0.lock().expect("lines").push(line);
            }
        });
        (lines, reader)
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().expect("lines").clone()
    }
}

/// Merges `patch` into the object `name` (an edit, as `kubectl patch --type merge` makes it).
async fn merge_patch<K>(api: &Api<K>, name: &str, patch: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .unwrap_or_else(|e| panic!("edit {name}: {e}"));
}

/// The JSON lines whose `message` is `message`.
fn with_message<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["message"] == message).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_logs_json_lines_at_info_with_start_up_leadership_span_fields_writes_and_shutdown() {
    let moto = Moto::start();
    let kube = KubeEmulator::start();
    let s3 = bucket(&moto, "json-lake").await;
    objects(&kube, "json-lake").await;
    // A grant from a namespace the account does not allow, on another bucket (so never converged
    // in the same run as the first): a failure, which the logs show.
    let refused: CrossAccountGrant = serde_json::from_value(json!({
        "apiVersion": "xacct.dev/v1alpha1", "kind": "CrossAccountGrant", "metadata": {"name": "intruder", "namespace": "web"},
        "spec": {"resource": {"account": "data-prod", "kind": "S3Bucket", "name": "json-elsewhere"},
                 "grantee": {"accountId": DEV_ACCOUNT}, "access": ["read"]}
    }))
    .expect("grant");
    Api::<CrossAccountGrant>::namespaced(kube.client(), "web")
        .create(&PostParams::default(), &refused)
        .await
        .expect("create grant");

    let port = free_port();
    let mut command = xacct_run(
        &moto,
        &kube,
        port,
        &["--leader-elect", "--identity", "replica-json"],
    );
    // As the Helm chart and deploy/ set it.
    command
        .env("XACCT_LOG_FORMAT", "json")
        .env("XACCT_DEBOUNCE", "300ms")
        .env("XACCT_MAX_ATTEMPTS", "7")
        .env("XACCT_PRINCIPAL_WAIT", "45s")
        .env("XACCT_CALL_TIMEOUT", "90s")
        .env("POD_NAMESPACE", "xacct-system")
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("xacct run starts");
    let (lines, reader) = Lines::read_from(child.stderr.take().expect("stderr"));
    let mut running = Running(child);

    eventually(30, "the grant's statements in the bucket policy", || {
        bucket_policy(&s3, "json-lake")
    })
    .await;
    eventually(10, "the write's and the failure's log lines", || async {
        let all = lines.all();
        (all.iter().any(|l| l.contains("wrote policy"))
            && all.iter().any(|l| l.contains("NamespaceNotAllowed")))
        .then_some(())
    })
    .await;
    let status = running.terminate(20).expect("xacct run stops on SIGTERM");
    assert_eq!(status.code(), Some(0), "clean stop");
    reader.join().expect("stderr read to its end");

    let text = lines.all();
    assert!(!text.is_empty());
    let json: Vec<Value> = text
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("not one JSON object per line: {l:?}: {e}"))
        })
        .collect();
    for (line, value) in text.iter().zip(&json) {
        assert!(value.is_object(), "{line}");
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
                .contains(&value["level"].as_str().unwrap_or_default()),
            "{line}"
        );
        assert!(value["timestamp"].is_string(), "{line}");
        assert!(!line.contains(SECRET), "a credential in the logs: {line}");
    }
    assert!(
        json.iter()
            .all(|l| l["level"] != "DEBUG" && l["level"] != "TRACE"),
        "the default level is info"
    );

    // Start-up: the version, the settings and what is watched, first.
    let start = with_message(&json, "starting xacct run");
    assert_eq!(start.len(), 1, "{text:#?}");
    assert_eq!(json[0], *start[0], "the start-up line comes first");
    let settings = &start[0]["fields"];
    assert_eq!(settings["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(settings["instance_id"], "default");
    assert_eq!(settings["namespace"], "(all)");
    assert_eq!(settings["selector"], "(none)");
    assert_eq!(settings["resync"], "2s");
    assert_eq!(settings["concurrency"], 8);
    assert_eq!(
        settings["debounce"], "300ms",
        "XACCT_DEBOUNCE, as the chart sets it"
    );
    // The connector `xacct run` builds takes them (the same path as the CLI's, whose effect on
    // the calls tests/retry_budget.rs checks through the binary).
    assert_eq!(settings["max_attempts"], 7, "XACCT_MAX_ATTEMPTS");
    assert_eq!(settings["call_timeout"], "1m 30s", "XACCT_CALL_TIMEOUT");
    assert_eq!(settings["principal_wait"], "45s", "XACCT_PRINCIPAL_WAIT");
    assert_eq!(settings["metrics_addr"], format!("127.0.0.1:{port}"));
    assert_eq!(settings["leader_elect"], true);
    assert_eq!(settings["lease"], "xacct-system/xacct-controller");
    assert_eq!(settings["identity"], "replica-json");
    assert_eq!(settings["gc_period"], "off");

    // Leadership.
    let acquired = with_message(&json, "acquired the leader lease: acting");
    assert_eq!(acquired.len(), 1, "{text:#?}");
    assert_eq!(acquired[0]["fields"]["identity"], "replica-json");
    assert_eq!(
        with_message(&json, "released the leader lease").len(),
        1,
        "{text:#?}"
    );

    // The AWS write: which policy, for which grant, what changed; in the grant's reconcile.
    let writes = with_message(&json, "wrote policy");
    assert_eq!(writes.len(), 1, "one write: {text:#?}");
    let write = &writes[0];
    assert_eq!(write["level"], "INFO");
    assert_eq!(write["target"], "xacct::engine::apply");
    assert_eq!(write["fields"]["policy"], "arn:aws:s3:::json-lake");
    assert_eq!(write["fields"]["account"], DATA_ACCOUNT);
    assert_eq!(write["fields"]["grants"], "batch/reads-lake");
    let changes = write["fields"]["changes"].as_str().unwrap_or_default();
    assert!(changes.starts_with("added Xacct"), "{changes}");
    // In the run on the bucket's key, which names the resource.
    assert_eq!(
        write["span"]["resource"], "data-prod/S3Bucket/json-lake/us-east-1",
        "{write}"
    );

    // A failure: a warning in the grant's span (kind, namespace, name), with its reason and what
    // is wrong.
    let failure = json
        .iter()
        .find(|l| l["fields"]["reason"] == "NamespaceNotAllowed")
        .unwrap_or_else(|| panic!("no failure line: {text:#?}"));
    assert_eq!(failure["level"], "WARN", "{failure}");
    assert_eq!(failure["span"]["kind"], "CrossAccountGrant", "{failure}");
    assert_eq!(failure["span"]["namespace"], "web", "{failure}");
    assert_eq!(failure["span"]["name"], "intruder", "{failure}");
    assert!(
        failure["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not allow grants from namespace web")),
        "{failure}"
    );

    // Shutdown, last.
    assert_eq!(
        with_message(&json, "shutting down: signal received").len(),
        1,
        "{text:#?}"
    );
    assert_eq!(
        json.last().map(|l| &l["message"]),
        Some(&json!("stopped")),
        "{text:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_logs_text_at_info_by_default_without_colour_codes_in_a_file() {
    let moto = Moto::start();
    let kube = KubeEmulator::start();
    let s3 = bucket(&moto, "text-lake").await;
    objects(&kube, "text-lake").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("stderr.log");

    let port = free_port();
    let mut command = xacct_run(&moto, &kube, port, &[]);
    command.stderr(std::fs::File::create(&log).expect("log file"));
    let mut running = Running(command.spawn().expect("xacct run starts"));
    eventually(30, "the grant's statements in the bucket policy", || {
        bucket_policy(&s3, "text-lake")
    })
    .await;
    eventually(10, "the write's log line", || async {
        let text = std::fs::read_to_string(&log).ok()?;
        text.contains("wrote policy").then_some(())
    })
    .await;
    let status = running.terminate(20).expect("xacct run stops on SIGTERM");
    assert_eq!(status.code(), Some(0), "clean stop");

    let text = std::fs::read_to_string(&log).expect("log");
    assert!(!text.contains('\x1b'), "colour codes in a file: {text}");
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.contains("INFO") && first.contains("starting xacct run"),
        "{text}"
    );
    assert!(
        first.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
            || first.contains(&format!("version={}", env!("CARGO_PKG_VERSION"))),
        "{first}"
    );
    let write = text
        .lines()
        .find(|l| l.contains("wrote policy"))
        .unwrap_or_default();
    assert!(
        write.contains("INFO")
            && write.contains("resource=data-prod/S3Bucket/text-lake/us-east-1")
            && write.contains("policy=arn:aws:s3:::text-lake")
            && write.contains("grants=batch/reads-lake"),
        "{write}"
    );
    assert!(text.contains("shutting down"), "{text}");
    assert!(!text.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_commands_only_warn_by_default_and_xacct_log_overrides() {
    let moto = Moto::start();
    let s3 = bucket(&moto, "cli-lake").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = dir.path().join("grants.yaml");
    std::fs::write(
        &manifest,
        format!(
            "{}---
apiVersion: xacct.dev/v1alpha1
kind: CrossAccountGrant
metadata: {{name: reads-lake, namespace: batch}}
spec:
  resource: {{account: data-prod, kind: S3Bucket, name: cli-lake}}
  grantee: {{accountId: \"{DEV_ACCOUNT}\"}}
  access: [read]
",
            accounts_yaml()
        ),
    )
    .expect("manifest");
    let xacct = |command: &str, log: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_xacct"));
        c.arg(command)
            .arg("-f")
            .arg(&manifest)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in moto.env() {
            c.env(k, v);
        }
        if let Some(log) = log {
            c.env("XACCT_LOG", log);
        }
        c.output().expect("xacct runs")
    };

    // Default: the plan is on stdout, stderr has no info line.
    let plan = xacct("plan", None);
    assert_eq!(plan.status.code(), Some(2), "changes pending");
    let stderr = String::from_utf8_lossy(&plan.stderr);
    assert!(!stderr.contains("INFO"), "{stderr}");
    assert!(String::from_utf8_lossy(&plan.stdout).contains("cli-lake"));

    // XACCT_LOG=info: the write is logged, in text without colour codes (stderr is a pipe).
    let apply = xacct("apply", Some("info"));
    assert_eq!(apply.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&apply.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("INFO") && l.contains("wrote policy")),
        "{stderr}"
    );
    assert!(!stderr.contains('\x1b'), "colour codes in a pipe: {stderr}");

    // Default again, with something to write: the write happens, and is not logged.
    s3.delete_bucket_policy()
        .bucket("cli-lake")
        .send()
        .await
        .expect("delete policy");
    let apply = xacct("apply", None);
    assert_eq!(apply.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&apply.stderr);
    assert!(!stderr.contains("INFO"), "{stderr}");
    assert!(
        bucket_policy(&s3, "cli-lake").await.is_some(),
        "apply wrote the policy again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_run_cleanly_when_stderr_is_a_closed_pipe() {
    let moto = Moto::start();
    let kube = KubeEmulator::start();
    let s3 = bucket(&moto, "pipe-lake").await;
    objects(&kube, "pipe-lake").await;

    // Closed from the start (every line meets a closed pipe), then closed once the controller has
    // started (the reader of `kubectl logs -f` going away, say).
    for close_at_start in [true, false] {
        // Something to write (and log) each time.
        let _ = s3.delete_bucket_policy().bucket("pipe-lake").send().await;
        let port = free_port();
        let mut command = xacct_run(&moto, &kube, port, &[]);
        command.stderr(Stdio::piped());
        let mut child = command.spawn().expect("xacct run starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut running = Running(child);
        if close_at_start {
            drop(stderr);
        } else {
            let reader = std::thread::spawn(move || {
                // Read up to the controllers' start, then close the read end.
                for line in BufReader::new(stderr).lines() {
                    match line {
                        Ok(l) if l.contains("controllers started") => return true,
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                false
            });
            eventually(30, "the controllers to start", || {
                let done = reader.is_finished();
                async move { done.then_some(()) }
            })
            .await;
            assert!(reader.join().expect("reader"), "the controllers started");
        }
        eventually(30, "the controller to be ready", || async {
            let body = http_get(&format!("http://127.0.0.1:{port}/readyz")).await?;
            (body == "ready").then_some(())
        })
        .await;
        // A write, logged after (or while) stderr closed.
        eventually(30, "the grant's statements in the bucket policy", || {
            bucket_policy(&s3, "pipe-lake")
        })
        .await;
        let status = running.terminate(20).unwrap_or_else(|| {
            panic!(
                "xacct run (stderr closed {}) did not stop within 20 s of SIGTERM",
                if close_at_start {
                    "at start"
                } else {
                    "after start"
                }
            )
        });
        assert_eq!(status.code(), Some(0), "clean stop: {status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_logs_at_debug_why_each_resource_runs_and_status_writes_request_no_run() {
    let moto = Moto::start();
    let kube = KubeEmulator::start();
    let s3 = bucket(&moto, "why-lake").await;
    objects(&kube, "why-lake").await;
    let port = free_port();
    let mut command = xacct_run(&moto, &kube, port, &[]);
    command
        .env("XACCT_LOG_FORMAT", "json")
        .env("XACCT_LOG", "warn,xacct::controller::queue=debug")
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("xacct run starts");
    let (lines, reader) = Lines::read_from(child.stderr.take().expect("stderr"));
    let mut running = Running(child);
    let policy = || bucket_policy(&s3, "why-lake");
    eventually(30, "the grant's statements in the bucket policy", policy).await;

    // An edit of the spec (another action): a run requested for that reason.
    let grants = Api::<CrossAccountGrant>::namespaced(kube.client(), "batch");
    merge_patch(
        &grants,
        "reads-lake",
        json!({"spec": {"access": ["read", "write"]}}),
    )
    .await;
    eventually(30, "the write statements in the bucket policy", || async {
        policy()
            .await
            .filter(|p| p.contains("s3:PutObject"))
            .map(|_| ())
    })
    .await;
    // Its status written (an echo on the watch, which must request no run).
    eventually(30, "the edit's status written", || async {
        let grant = grants.get("reads-lake").await.ok()?;
        let status = grant.status?;
        (status.observed_generation == grant.metadata.generation).then_some(())
    })
    .await;
    // A change of the account's spec: a run on the resources of the grants naming it.
    let accounts = Api::<AwsAccount>::all(kube.client());
    merge_patch(
        &accounts,
        "data-prod",
        json!({"spec": {"allowedNamespaces": ["batch", "web"]}}),
    )
    .await;
    eventually(30, "the account's change requesting a run", || async {
        lines
            .all()
            .iter()
            .any(|l| l.contains("AwsAccount data-prod changed"))
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = running.terminate(20).expect("xacct run stops on SIGTERM");
    assert_eq!(status.code(), Some(0), "clean stop");
    reader.join().expect("stderr read to its end");

    let text = lines.all();
    let json: Vec<Value> = text
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    let requested = with_message(&json, "run requested");
    let causes: Vec<&str> = requested
        .iter()
        .map(|l| l["fields"]["cause"].as_str().unwrap_or_default())
        .collect();
    for line in &requested {
        assert_eq!(line["level"], "DEBUG", "{line}");
        assert_eq!(
            line["fields"]["resource"], "data-prod/S3Bucket/why-lake/us-east-1",
            "the resource key: {line}"
        );
    }
    // Listed at start, edited once; the finalizer xacct added and the status writes (two at least:
    // before and after the edit) requested nothing.
    let of_grant: Vec<&&str> = causes.iter().filter(|c| c.contains("reads-lake")).collect();
    assert_eq!(
        of_grant,
        [
            &"CrossAccountGrant batch/reads-lake listed",
            &"CrossAccountGrant batch/reads-lake changed"
        ],
        "{text:#?}"
    );
    assert!(
        causes.contains(&"AwsAccount data-prod changed"),
        "{causes:?}"
    );
}
