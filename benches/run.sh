#!/usr/bin/env bash
# The convergence benchmark (BENCHMARKS.md), built with the bench (release) profile, against the
# AWS emulator and the kube emulator; installs the emulators in .venv on first use. Arguments go to
# the benchmark, e.g.:
#   benches/run.sh                                              # 1,000 grants, 50 targets, 5 accounts
#   benches/run.sh --grants 10000 --targets 500 --accounts 5    # the larger run
#   benches/run.sh --phases capacity                            # the capacity table only
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-emulators.sh
exec cargo bench --locked --bench converge -- "$@"
