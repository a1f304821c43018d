#!/usr/bin/env bash
# Creates .venv with the pinned emulators (moto for AWS, kmock for the Kubernetes API), the
# manifest scanner (checkov), Lua 5.1 for Argo CD's health scripts (lupa) if missing, and the IAM
# evaluator of tests/access_works.rs (npm, under tests/support/iam-eval/).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import moto.server, kmock, checkov, lupa' 2>/dev/null; then
  echo "setting up .venv with the emulators (scripts/requirements-emulators.txt)" >&2
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-emulators.txt
fi
# The IAM evaluator of tests/access_works.rs (npm @cloud-copilot/iam-simulate, AGPL-3.0, a test tool
# only): installed exactly as tests/support/iam-eval/package-lock.json pins it, unless every package
# of the lock file is already there at its version.
eval_dir=tests/support/iam-eval
installed='const lock = require("./package-lock.json"); const fs = require("fs");
  for (const [path, p] of Object.entries(lock.packages)) {
    if (!path) continue;
    const found = fs.existsSync(path + "/package.json") && require("./" + path + "/package.json").version;
    if (found !== p.version) process.exit(1);
  }'
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "warning: node and npm are missing: tests/access_works.rs cannot run its IAM evaluator" >&2
elif ! (cd "$eval_dir" && node -e "$installed" 2>/dev/null); then
  echo "installing the IAM evaluator in $eval_dir/node_modules (package-lock.json)" >&2
  (cd "$eval_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
