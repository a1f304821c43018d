#!/usr/bin/env bash
# Runs every test: unit, property and emulator-backed integration tests. Installs the emulators in
# .venv first if they are missing. Extra arguments go to the test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-emulators.sh
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast "$@"
else
  cargo test --no-fail-fast "$@"
fi
