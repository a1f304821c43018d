//! The Kubernetes API endpoint for end-to-end tests: ../shared/tools/kube-emulator.py (kmock's
//! emulator). No real kube-apiserver can run on these machines.

use std::path::PathBuf;
use std::process::{Child, Command};

use super::process;

/// A kube emulator for one test, stopped when dropped (or when the test process dies).
pub struct KubeEmulator {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    dir: tempfile::TempDir,
}

impl KubeEmulator {
    /// Starts the emulator from the project's `.venv` (`XACCT_KUBE_EMULATOR` overrides its path).
    pub fn start() -> KubeEmulator {
        // The shell ends the emulator as soon as the test process goes away (its stdin closes).
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#""$0" "$1" & pid=$!; cat >/dev/null; kill $pid"#)
            .arg(process::python())
            .arg(process::kube_emulator_script());
        let (child, url) = process::spawn_printing_url(command, "the kube emulator");
        KubeEmulator {
            child,
            url,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A kubeconfig file pointing at the emulator.
    pub fn kubeconfig(&self) -> PathBuf {
        let path = self.dir.path().join("kubeconfig");
        process::write_kubeconfig(&path, &self.url);
        path
    }

    /// A client of the emulator.
    pub fn client(&self) -> kube::Client {
        process::kube_client(&self.url)
    }
}

impl Drop for KubeEmulator {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// A free loopback port (for the controller's metrics server), below the kernel's range of
/// ephemeral ports where there is room: a port from that range can be handed to another test's
/// outgoing connection between this check and the controller's bind ("Address already in use").
pub fn free_port() -> u16 {
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if ephemeral_from > 20_000 {
        for _ in 0..100 {
            let port = fastrand::u16(10_000..ephemeral_from);
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Polls `check` every 200 ms until it returns `Some`, or panics with `what` after `seconds`.
pub async fn eventually<T, F, Fut>(seconds: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {seconds}s waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A controller configuration for tests: a short resync, metrics on a free loopback port, no
/// leader election; adjust fields with struct update syntax.
pub fn run_config(resync: std::time::Duration) -> xacct::controller::RunConfig {
    xacct::controller::RunConfig {
        engine: xacct::engine::EngineSettings::default(),
        concurrency: 4,
        debounce: std::time::Duration::from_millis(200),
        resync,
        namespace: None,
        selector: None,
        metrics_addr: format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("loopback address"),
        leader_election: None,
        secrets_namespace: "xacct-system".into(),
        reporter: "xacct".into(),
        gc_period: None,
        aws: Default::default(),
    }
}

/// The sum of a counter's series whose line starts with `prefix` (e.g.
/// `xacct_reconciles_total{kind="CrossAccountGrant"`), in the text exposition `text`.
pub fn counter_sum(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}
