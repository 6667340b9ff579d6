#!/usr/bin/env bash
# Runs a whole Tandem cluster on this machine, on loopback: KV store nodes,
# one router, prefill workers and decode workers, each its own process; or,
# with --colocated, one colocated worker in place of the prefill and decode
# workers.
#
#   deploy/local-cluster.sh up     [flags]   start every node, wait until healthy
#   deploy/local-cluster.sh down   [flags]   stop them (SIGTERM, then SIGKILL)
#   deploy/local-cluster.sh status [flags]   each node's address and health
#   deploy/local-cluster.sh logs   [flags]   the last lines of every log
#
# Flags (defaults in brackets):
#   --prefill N [1]  --decode M [1]  --stores K [1]   nodes of each kind
#   --model DIR [models/fortune]    the model every node serves
#   --run-dir DIR [runs/cluster]    logs, pids and address files
#   --host HOST [127.0.0.1]         the address every node listens on
#   --router-port P [50051]         the router's gRPC port
#   --http-port P [8080]            the router's HTTP port: the OpenAI-
#                                   compatible API (0: a free port)
#   --api-key-file FILE             the router requires the key in FILE
#                                   (clients: TANDEM_API_KEY or
#                                   Authorization: Bearer <key>)
#   --base-port P [50061]           stores, then prefill, then decode workers
#                                   take consecutive ports from here (0, and
#                                   --router-port 0: free ports, see status)
#   --metrics-base-port P [0]       Prometheus /metrics of the stores, then
#                                   the workers, on consecutive ports from
#                                   here (0: free ports); the router serves
#                                   its own on its HTTP port; `up` prints them
#   --threads T [0]                 engine threads per worker (0: all cores)
#   --colocated                     instead of the prefill and decode workers,
#                                   one decode_node --colocated with their
#                                   threads together: T * (N + M), or all
#                                   cores when T is 0
#   --max-prefill-tokens-per-step P  the colocated worker's prompt tokens per
#                                   step [its own default, 512]
#   --prefill-flag F, --decode-flag F   an extra flag for every prefill (or
#                                   decode) worker, e.g. --prefill-flag
#                                   --prefix_reuse=false; repeatable
#   --build-dir DIR [$TANDEM_BUILD_DIR or build]   where the binaries are
#   --stop-timeout S [10]           seconds between SIGTERM and SIGKILL
#   --lines N [20]                  lines per log for `logs`; --follow tails
#
# Clients talk to the router: build/tools/tandem generate --router HOST:PORT,
# or HTTP: curl http://HOST:8080/v1/completions -d '{"prompt":"Q: "}'
set -euo pipefail
cd "$(dirname "$0")/.."

command=${1:-}
if [[ -z $command || $command == -h || $command == --help ]]; then
  sed -n '2,45p' "$0" | sed 's/^# \{0,1\}//'
  exit $([[ -z $command ]] && echo 2 || echo 0)
fi
shift

prefill=1 decode=1 stores=1
model=models/fortune
run_dir=runs/cluster
host=127.0.0.1
router_port=50051
http_port=8080
api_key_file=""
base_port=50061
metrics_port=0
threads=0
build_dir=${TANDEM_BUILD_DIR:-build}
stop_timeout=10
lines=20
follow=0
colocated=0
prefill_budget=
prefill_flags=() decode_flags=()

die() { echo "local-cluster: $*" >&2; exit 2; }
need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"; }
need_count() { [[ $2 =~ ^[0-9]+$ ]] || die "$1 must be a number, got '$2'"; }

while (($#)); do
  case $1 in
    --prefill|--decode|--stores|--router-port|--http-port|--base-port|\
    --threads|--stop-timeout|--lines|--max-prefill-tokens-per-step|\
    --metrics-base-port)
      need_value "$@"; need_count "$1" "$2"
      case $1 in
        --max-prefill-tokens-per-step) prefill_budget=$2 ;;
        --prefill) prefill=$2 ;; --decode) decode=$2 ;;
        --stores) stores=$2 ;; --router-port) router_port=$2 ;;
        --http-port) http_port=$2 ;;
        --base-port) base_port=$2 ;; --threads) threads=$2 ;;
        --stop-timeout) stop_timeout=$2 ;; --lines) lines=$2 ;;
        --metrics-base-port) metrics_port=$2 ;;
      esac
      shift 2 ;;
    --model) need_value "$@"; model=$2; shift 2 ;;
    --run-dir) need_value "$@"; run_dir=$2; shift 2 ;;
    --api-key-file) need_value "$@"; api_key_file=$2; shift 2 ;;
    --host) need_value "$@"; host=$2; shift 2 ;;
    --build-dir) need_value "$@"; build_dir=$2; shift 2 ;;
    --follow) follow=1; shift ;;
    --colocated) colocated=1; shift ;;
    --prefill-flag) need_value "$@"; prefill_flags+=("$2"); shift 2 ;;
    --decode-flag) need_value "$@"; decode_flags+=("$2"); shift 2 ;;
    *) die "unknown flag '$1' (see $0 --help)" ;;
  esac
done

tandem=$build_dir/tools/tandem
router_bin=$build_dir/router/router
kvstore_bin=$build_dir/kvstore/kvstore
prefill_bin=$build_dir/prefill_node/prefill_node
decode_bin=$build_dir/decode_node/decode_node

# The nodes of the run directory, in start order: stores, router, workers.
nodes() {
  local name
  for name in "$run_dir"/*.pid; do
    [[ -e $name ]] || continue
    basename "$name" .pid
  done | sort -V | awk '
    /^store/ {s = s $0 "\n"} /^router/ {r = r $0 "\n"}
    /^prefill/ {p = p $0 "\n"} /^decode|^colocated/ {d = d $0 "\n"}
    END {printf "%s%s%s%s", s, r, p, d}'
}

pid_of() { cat "$run_dir/$1.pid" 2>/dev/null || true; }
# Whether process PID runs: it exists and is not a zombie (nodes outlive the
# shell that started them, so whoever reaps them may do so late).
running() {
  kill -0 "$1" 2>/dev/null &&
    [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]
}
alive() { local pid; pid=$(pid_of "$1"); [[ -n $pid ]] && running "$pid"; }
address_of() { cat "$run_dir/$1.addr" 2>/dev/null || true; }

# metrics_flags NAME: sets `mflags` to the flags of NAME's /metrics server
# and moves to the next metrics port. (The router serves /metrics on its
# HTTP port.)
metrics_flags() {
  mflags=("--metrics_listen=$host:$metrics_port"
    "--metrics_address_file=$run_dir/$1.metrics")
  ((metrics_port == 0)) || metrics_port=$((metrics_port + 1))
}

# print_metrics: every running node's /metrics address.
print_metrics() {
  local name file
  for name in $(nodes); do
    file=$run_dir/$name.metrics
    [[ $name == router ]] && file=$run_dir/router.http
    [[ -s $file ]] && echo "metrics: $name http://$(cat "$file")/metrics"
  done
  return 0
}

# start NAME BINARY FLAGS...: runs a node in the background.
start() {
  local name=$1 binary=$2
  shift 2
  rm -f "$run_dir/$name.addr"
  nohup "$binary" --address_file="$run_dir/$name.addr" "$@" \
    >"$run_dir/$name.log" 2>&1 </dev/null &
  echo $! >"$run_dir/$name.pid"
}

# await NAME [SERVICE]: waits for the node's address file and health.
await() {
  local name=$1 service=${2:-} waited=0
  until [[ -s $run_dir/$name.addr ]]; do
    if ! alive "$name"; then
      echo "local-cluster: $name exited while starting; its log ends:" >&2
      tail -n 20 "$run_dir/$name.log" >&2
      return 1
    fi
    if ((waited >= 600)); then
      echo "local-cluster: $name wrote no address in 60s" >&2
      return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  if ! "$tandem" health "$(address_of "$name")" --service="$service" \
      --wait=60s >/dev/null; then
    echo "local-cluster: $name is not healthy; its log ends:" >&2
    tail -n 20 "$run_dir/$name.log" >&2
    return 1
  fi
}

# stop NAME: SIGTERM, then SIGKILL after the stop timeout.
stop() {
  local name=$1 pid waited=0
  pid=$(pid_of "$name")
  if [[ -n $pid ]] && running "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    while running "$pid" && ((waited < stop_timeout * 10)); do
      sleep 0.1
      waited=$((waited + 1))
    done
    if running "$pid"; then
      echo "local-cluster: $name did not stop in ${stop_timeout}s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$run_dir/$name.pid" "$run_dir/$name.addr" "$run_dir/$name.http" \
    "$run_dir/$name.metrics"
}

down() {
  local name
  # Workers first, then the router, then the stores.
  for name in $(nodes | tac); do stop "$name"; done
}

up() {
  local missing=() binary
  for binary in "$tandem" "$router_bin" "$kvstore_bin" "$prefill_bin" \
      "$decode_bin"; do
    [[ -x $binary ]] || missing+=("$binary")
  done
  ((${#missing[@]} == 0)) ||
    die "missing binaries (run deploy/build.sh): ${missing[*]}"
  [[ -f $model/config.json ]] || die "no model at $model (config.json missing)"
  [[ -z $api_key_file || -s $api_key_file ]] ||
    die "--api-key-file $api_key_file is missing or empty"
  ((prefill >= 1 && decode >= 1 && stores >= 1)) ||
    die "--prefill, --decode and --stores must each be at least 1"
  mkdir -p "$run_dir"
  local name
  for name in $(nodes); do
    alive "$name" && die "$name is already running (pid $(pid_of "$name")); run '$0 down' first"
  done
  rm -f "$run_dir"/*.pid "$run_dir"/*.addr "$run_dir"/*.http \
    "$run_dir"/*.metrics
  model=$(cd "$model" && pwd)
  local key_flags=()
  if [[ -n $api_key_file ]]; then
    key_flags=(--api_key_file="$(realpath "$api_key_file")")
  fi
  trap 'echo "local-cluster: start failed; stopping what started" >&2; down' ERR

  # Port 0 lets each node pick a free port; the address files tell them.
  local port=$base_port i store_list="" mflags=()
  for ((i = 0; i < stores; i++)); do
    metrics_flags "store-$i"
    start "store-$i" "$kvstore_bin" --listen="$host:$port" "${mflags[@]}"
    ((base_port == 0)) || port=$((port + 1))
  done
  for ((i = 0; i < stores; i++)); do
    await "store-$i"
    store_list+=${store_list:+,}$(address_of "store-$i")
  done

  start router "$router_bin" --listen="$host:$router_port" --model="$model" \
    --kvstore="$store_list" --http_listen="$host:$http_port" \
    --http_address_file="$run_dir/router.http" "${key_flags[@]}"
  await router
  local router_address http_address
  router_address=$(address_of router)
  # The router writes its HTTP address right after its gRPC one.
  for ((i = 0; i < 50; i++)); do
    [[ -s $run_dir/router.http ]] && break
    sleep 0.1
  done
  http_address=$(cat "$run_dir/router.http")

  if ((colocated)); then
    start_colocated
    return
  fi
  local kind count extra
  for kind in prefill decode; do
    count=$prefill binary=$prefill_bin extra=("${prefill_flags[@]}")
    [[ $kind == decode ]] &&
      count=$decode binary=$decode_bin extra=("${decode_flags[@]}")
    for ((i = 0; i < count; i++)); do
      metrics_flags "$kind-$i"
      start "$kind-$i" "$binary" --listen="$host:$port" --model="$model" \
        --kvstore="$store_list" --router="$router_address" \
        --worker_id="$kind-$i" --threads="$threads" "${mflags[@]}" \
        "${extra[@]}"
      ((base_port == 0)) || port=$((port + 1))
    done
  done
  for name in $(nodes); do
    [[ $name == prefill-* || $name == decode-* ]] && await "$name"
  done
  # Ready once the router has both kinds of worker in rotation.
  await router tandem.v1.Router
  trap - ERR
  echo "cluster up: router $router_address (HTTP $http_address), $stores" \
    "store, $prefill prefill, $decode decode (logs in $run_dir)"
  local auth="" env=""
  if [[ -n $api_key_file ]]; then
    auth=" -H \"Authorization: Bearer \$(cat $api_key_file)\""
    env="TANDEM_API_KEY=\$(cat $api_key_file) "
  fi
  print_metrics
  echo "try:  $env$tandem generate --router $router_address --prompt 'Q: '"
  echo "      curl http://$http_address/v1/completions$auth \\"
  echo "        -H 'Content-Type: application/json' -d '{\"prompt\": \"Q: \", \"max_tokens\": 32}'"
  echo "stop: $0 down${run_dir:+ --run-dir $run_dir}"
}

# The colocated layout's worker, once the stores and the router serve.
start_colocated() {
  # The threads the prefill and decode workers would have had together.
  local total=$((threads * (prefill + decode))) budget=()
  [[ -n $prefill_budget ]] &&
    budget=(--max_prefill_tokens_per_step="$prefill_budget")
  metrics_flags colocated-0
  start colocated-0 "$decode_bin" --colocated --listen="$host:$port" \
    --model="$model" --kvstore="$store_list" --router="$router_address" \
    --worker_id=colocated-0 --threads="$total" "${budget[@]}" "${mflags[@]}"
  await colocated-0
  await router tandem.v1.Router
  trap - ERR
  echo "cluster up: router $router_address, $stores store, 1 colocated" \
    "worker with $( ((total)) && echo "$total threads" || echo "all cores")" \
    "(logs in $run_dir)"
  print_metrics
  echo "try:  $tandem generate --router $router_address --prompt 'Q: '"
  echo "stop: $0 down${run_dir:+ --run-dir $run_dir}"
}

status() {
  local name any=0 state address
  printf '%-12s %-8s %-22s %s\n' NODE PID ADDRESS HEALTH
  for name in $(nodes); do
    any=1
    address=$(address_of "$name")
    if ! alive "$name"; then
      state=STOPPED
    elif [[ -z $address ]]; then
      state=STARTING
    else
      state=$("$tandem" health "$address" 2>/dev/null || true)
      [[ -n $state ]] || state=UNREACHABLE
      if [[ $name == router && $state == SERVING ]]; then
        "$tandem" health "$address" --service=tandem.v1.Router >/dev/null \
          2>&1 || state="SERVING (no workers yet)"
      fi
    fi
    printf '%-12s %-8s %-22s %s\n' "$name" "$(pid_of "$name")" \
      "${address:--}" "$state"
  done
  ((any)) || echo "no cluster in $run_dir"
  if [[ -s $run_dir/router.http ]] && alive router; then
    echo "HTTP API (OpenAI-compatible): http://$(cat "$run_dir/router.http")/v1"
  fi
}

logs() {
  local files=()
  for name in $(nodes); do files+=("$run_dir/$name.log"); done
  ((${#files[@]})) || die "no logs in $run_dir"
  if ((follow)); then
    exec tail -n "$lines" -F "${files[@]}"
  fi
  tail -n "$lines" "${files[@]}"
}

case $command in
  up) up ;;
  down) down ;;
  status) status ;;
  logs) logs ;;
  *) die "unknown command '$command' (expected up, down, status or logs)" ;;
esac
