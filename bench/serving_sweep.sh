#!/usr/bin/env bash
# Runs `tandem bench` at a list of request rates against one deployment,
# writing one report per rate into a directory, then the plots.
#
#   bench/serving_sweep.sh --out DIR (--router HOST:PORT | --cluster "ARGS")
#                          [--rates "0.5 1 2 4"] [-- TANDEM_BENCH_FLAGS...]
#
#   --out DIR           reports go to DIR/rate-R.json, plots to DIR/plots;
#                       the directory's name names the series in plots
#   --router HOST:PORT  a running cluster's router
#   --cluster "ARGS"    instead: start a cluster with
#                       `deploy/local-cluster.sh up ARGS` (run dir
#                       DIR/cluster, free ports) and stop it afterwards
#   --rates "R ..."     request rates, requests/s [0.5 1 2 4]
#   --build-dir DIR     where the binaries are [$TANDEM_BUILD_DIR or build]
#   after --             extra flags for every `tandem bench` run, e.g.
#                       --num-requests 100, --trace FILE --trace-scale 0.125
#
# Examples (docs/benchmarks.md, "Serving benchmark"):
#   bench/serving_sweep.sh --out runs/sweep/disaggregated \
#     --cluster "--prefill 1 --decode 1 --threads 1" -- --num-requests 60
#   bench/serving_sweep.sh --out runs/sweep/reuse-off \
#     --cluster "--prefill-flag --prefix_reuse=false" -- \
#     --trace bench/testdata/mooncake_sample.jsonl --trace-scale 0.125
# Plots comparing several sweeps:
#   python3 bench/plot_serving.py --out runs/sweep/plots runs/sweep/*/rate-*.json
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "serving_sweep: $*" >&2; exit 2; }

out="" router="" cluster="" rates="0.5 1 2 4"
build_dir=${TANDEM_BUILD_DIR:-build}
extra=()
while (($#)); do
  case $1 in
    --out) [[ $# -ge 2 ]] || die "--out needs a value"; out=$2; shift 2 ;;
    --router) [[ $# -ge 2 ]] || die "--router needs a value"; router=$2; shift 2 ;;
    --cluster) [[ $# -ge 2 ]] || die "--cluster needs a value"; cluster=$2; shift 2 ;;
    --rates) [[ $# -ge 2 ]] || die "--rates needs a value"; rates=$2; shift 2 ;;
    --build-dir) [[ $# -ge 2 ]] || die "--build-dir needs a value"; build_dir=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown flag '$1' (see $0 --help)" ;;
  esac
done
[[ -n $out ]] || die "--out DIR is required"
[[ -n $router || -n $cluster ]] || die "give --router or --cluster"
[[ -z $router || -z $cluster ]] || die "give --router or --cluster, not both"
tandem=$build_dir/tools/tandem
[[ -x $tandem ]] || die "no $tandem (run deploy/build.sh)"
for rate in $rates; do
  [[ $rate =~ ^[0-9]*\.?[0-9]+$ ]] || die "rate '$rate' is not a number"
done
mkdir -p "$out"

if [[ -n $cluster ]]; then
  run_dir=$out/cluster
  # shellcheck disable=SC2086  # ARGS is a list of flags
  deploy/local-cluster.sh up --run-dir "$run_dir" --router-port 0 \
    --base-port 0 --build-dir "$build_dir" $cluster
  trap 'deploy/local-cluster.sh down --run-dir "$run_dir"' EXIT
  router=$(cat "$run_dir/router.addr")
fi

series=$(basename "$out")
reports=()
# Each rate gets its own seed (1000 x its position in the list), so a run
# never finds the previous run's prompts in the store: with one seed, every
# rate after the first would have its prompts cached. A --seed after -- wins
# and brings that back. (A trace's prompts come from its hash ids, not the
# seed: give each trace run a fresh cluster.)
seed=0
for rate in $rates; do
  report=$out/rate-$rate.json
  echo "== $series: rate $rate req/s -> $report"
  "$tandem" bench --router "$router" --rate "$rate" --seed "$seed" \
    --label "$series rate=$rate" --out "$report" "${extra[@]}"
  reports+=("$report")
  seed=$((seed + 1000))
done
# Debian's python3-matplotlib belongs to /usr/bin/python3.
python=python3
[[ -x /usr/bin/python3 ]] && python=/usr/bin/python3
"$python" bench/plot_serving.py --out "$out/plots" "${reports[@]}"
