#!/usr/bin/env bash
# The demo: starts the local AWS emulator, creates two accounts' resources with a foreign
# statement each, then runs xacct plan / apply, shows the policies, tampers with one out of band
# and lets plan / apply correct it. Needs Rust and Python 3; installs the emulator in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-emulators.sh
cargo build --quiet --bin xacct
XACCT=target/debug/xacct

coproc MOTO { exec .venv/bin/python scripts/moto-server.py 2>/dev/null; }
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
read -r ENDPOINT <&"${MOTO[0]}"
export AWS_ENDPOINT_URL="$ENDPOINT" AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1 \
       AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
echo "AWS emulator (moto) at $ENDPOINT"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { step "$@"; set +e; "$@"; echo "(exit status $?)"; set -e; }

.venv/bin/python scripts/demo_aws.py setup
run $XACCT plan -f examples/demo
run $XACCT apply -f examples/demo
step "the resulting policies: the foreign statements are still there"
.venv/bin/python scripts/demo_aws.py show
step "someone edits the bucket policy in the console"
.venv/bin/python scripts/demo_aws.py tamper
run $XACCT plan -f examples/demo
run $XACCT apply -f examples/demo
run $XACCT plan -f examples/demo
step "the bucket policy after the correction: the console's statement survived"
.venv/bin/python scripts/demo_aws.py show
run $XACCT delete -f examples/demo
