//! Starting the emulators' processes: the project's Python and a child that prints its URL.
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
