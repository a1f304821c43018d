#!/usr/bin/env bash
# Creates .venv with the pinned emulators (moto for AWS, kmock for the Kubernetes API), the
# manifest scanner (checkov) and Lua 5.1 for Argo CD's health scripts (lupa) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import moto.server, kmock, checkov, lupa' 2>/dev/null; then
  echo "setting up .venv with the emulators (scripts/requirements-emulators.txt)" >&2
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-emulators.txt
fi
