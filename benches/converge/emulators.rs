//! The emulators the benchmark runs against (moto for AWS, the kube emulator for the Kubernetes
//! API), each a child process stopped when dropped, and what /proc says about a process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::Credentials;
use xacct::aws::{Connector, ConnectorOptions};

#[path = "../../tests/support/process.rs"]
mod process;

pub use process::http_get;
pub use process::python;
use process::{kube_client, kube_emulator_script, root, spawn_printing_url, write_kubeconfig};

/// A moto server (scripts/moto-server.py), in its own process.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    /// A fresh server: no resources, no policies.
    pub fn start() -> Moto {
        let mut command = Command::new(python());
        command.arg(root().join("scripts/moto-server.py"));
        let (child, endpoint) = spawn_printing_url(command, "moto");
        Moto { child, endpoint }
    }

    /// Its process id (for CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A connector on this server with fake credentials, with its own (cold) credential cache
    /// and call log.
    pub async fn connector(&self) -> Arc<Connector> {
        Arc::new(
            Connector::new(ConnectorOptions {
                endpoint_url: Some(self.endpoint.clone()),
                credentials: Some(Credentials::new("testing", "testing", None, None, "bench")),
                region: Some("us-east-1".into()),
                ..ConnectorOptions::default()
            })
            .await,
        )
    }

    /// Environment for processes acting on this server (the `xacct` binary, boto3).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kube emulator (../shared/tools/kube-emulator.py, or `XACCT_KUBE_EMULATOR`): a request costs
/// about the same whatever the number of objects.
pub struct KubeEmulator {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl KubeEmulator {
    /// A fresh API endpoint with the xacct kinds declared.
    pub fn start() -> KubeEmulator {
        let emulator = kube_emulator_script();
        // The shell ends the emulator when the benchmark goes away (its stdin closes).
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#""$0" "$1" & pid=$!; cat >/dev/null; kill $pid"#)
            .arg(python())
            .arg(&emulator);
        let (child, url) = spawn_printing_url(command, "the kube emulator");
        KubeEmulator { child, url }
    }

    /// The emulator's process id (the child of the shell), for CPU time.
    pub fn pid(&self) -> Option<u32> {
        let shell = self.child.id();
        std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// A kubeconfig file in `dir` pointing at the emulator.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        write_kubeconfig(&path, &self.url);
        path
    }

    /// A client of the emulator.
    pub fn client(&self) -> kube::Client {
        kube_client(&self.url)
    }
}

impl Drop for KubeEmulator {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// CPU time a process has used so far (user + system), from /proc.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / clock_ticks() as f64)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux unless told otherwise).
fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// A `kB` field of /proc/PID/status (`VmHWM`: peak resident set; `VmRSS`: current), in bytes.
pub fn memory(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        let kb: u64 = value.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}
