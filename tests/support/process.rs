//! The emulators' processes (the project's Python, a child that prints its URL) and talking to
//! them (a kubeconfig, a client, a plain HTTP GET).
//! Shared by the tests (`tests/support`) and the benchmark (`benches/converge`, by `#[path]`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python of the project's `.venv` (scripts/setup-emulators.sh), or `XACCT_PYTHON`.
pub fn python() -> PathBuf {
    let python = std::env::var("XACCT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "the emulators are not installed: run scripts/setup-emulators.sh (or set XACCT_PYTHON)"
    );
    python
}

/// The Kubernetes API emulator script (../shared/tools/kube-emulator.py, or `XACCT_KUBE_EMULATOR`).
pub fn kube_emulator_script() -> PathBuf {
    let script = std::env::var("XACCT_KUBE_EMULATOR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("../shared/tools/kube-emulator.py"));
    assert!(
        script.exists(),
        "the Kubernetes API emulator is missing at {}",
        script.display()
    );
    script
}

/// Starts `command` with a piped standard input (a child that exits when it closes ends with its
/// parent), and reads the first line it prints: its URL.
pub fn spawn_printing_url(mut command: Command, what: &str) -> (Child, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} starts: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("{what} prints its URL: {e}"));
    assert!(line.starts_with("http://"), "{what} printed {line:?}");
    (child, line.trim().to_string())
}

/// The body of `GET url` (plain HTTP over a raw socket: the controller's `/metrics` and health
/// endpoints, without an HTTP client dependency).
pub async fn http_get(url: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}")))?;
    let mut stream = tokio::net::TcpStream::connect(host).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await.ok()?;
    body.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// Writes at `path` a kubeconfig pointing at the Kubernetes API emulator at `url`.
pub fn write_kubeconfig(path: &std::path::Path, url: &str) {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: emu, cluster: {{server: \"{url}\"}}}}]\n\
         users: [{{name: emu, user: {{token: emu}}}}]\ncontexts: [{{name: emu, context: {{cluster: emu, user: emu}}}}]\n\
         current-context: emu\n"
    );
    std::fs::write(path, text).expect("write kubeconfig");
}

/// A client of the Kubernetes API emulator at `url`.
pub fn kube_client(url: &str) -> kube::Client {
    let config = kube::Config::new(url.parse().expect("emulator URL"));
    kube::Client::try_from(config).expect("kube client")
}
