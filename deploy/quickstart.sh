#!/usr/bin/env bash
# Sets up everything and runs Tandem's main job: installs the Debian
# packages, builds, starts a local cluster (a KV store node, a router, a
# prefill worker and a decode worker, on loopback) with the default model,
# and streams a fresh fortune through the router.
#
# Extra arguments go to `tandem generate` (e.g. --prompt "Hello" --seed 7).
# The cluster is stopped on exit; with TANDEM_KEEP_CLUSTER=1 it keeps
# running for more requests, and `deploy/local-cluster.sh down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
deploy/build.sh

run_dir=runs/cluster
# A cluster left running by an earlier quick start is replaced.
deploy/local-cluster.sh down --run-dir "$run_dir"
if [[ ${TANDEM_KEEP_CLUSTER:-0} == 1 ]]; then
  trap 'echo "The cluster keeps running (logs in $run_dir); stop it with:" \
    "deploy/local-cluster.sh down" >&2' EXIT
else
  trap 'deploy/local-cluster.sh down --run-dir "$run_dir"' EXIT
fi
deploy/local-cluster.sh up --run-dir "$run_dir" --model models/fortune >&2
"${TANDEM_BUILD_DIR:-build}/tools/tandem" generate \
  --router "$(cat "$run_dir/router.addr")" "$@"
