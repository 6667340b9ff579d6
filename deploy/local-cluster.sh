#!/usr/bin/env bash
# Runs a whole Tandem cluster on this machine, on loopback: KV store nodes,
# one router, prefill workers and decode workers, each its own process.
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
#   --base-port P [50061]           stores, then prefill, then decode workers
#                                   take consecutive ports from here (0, and
#                                   --router-port 0: free ports, see status)
#   --threads T [0]                 engine threads per worker (0: all cores)
#   --prefill-flag F, --decode-flag F   an extra flag for every prefill (or
#                                   decode) worker, e.g. --prefill-flag
#                                   --prefix_reuse=false; repeatable
#   --build-dir DIR [$TANDEM_BUILD_DIR or build]   where the binaries are
#   --stop-timeout S [10]           seconds between SIGTERM and SIGKILL
#   --lines N [20]                  lines per log for `logs`; --follow tails
#
# Clients talk to the router: build/tools/tandem generate --router HOST:PORT
set -euo pipefail
cd "$(dirname "$0")/.."

command=${1:-}
if [[ -z $command || $command == -h || $command == --help ]]; then
  sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'
  exit $([[ -z $command ]] && echo 2 || echo 0)
fi
shift

prefill=1 decode=1 stores=1
model=models/fortune
run_dir=runs/cluster
host=127.0.0.1
router_port=50051
base_port=50061
threads=0
build_dir=${TANDEM_BUILD_DIR:-build}
stop_timeout=10
lines=20
follow=0
prefill_flags=() decode_flags=()

die() { echo "local-cluster: $*" >&2; exit 2; }
need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"; }
need_count() { [[ $2 =~ ^[0-9]+$ ]] || die "$1 must be a number, got '$2'"; }

while (($#)); do
  case $1 in
    --prefill|--decode|--stores|--router-port|--base-port|--threads|\
    --stop-timeout|--lines)
      need_value "$@"; need_count "$1" "$2"
      case $1 in
        --prefill) prefill=$2 ;; --decode) decode=$2 ;;
        --stores) stores=$2 ;; --router-port) router_port=$2 ;;
        --base-port) base_port=$2 ;; --threads) threads=$2 ;;
        --stop-timeout) stop_timeout=$2 ;; --lines) lines=$2 ;;
      esac
      shift 2 ;;
    --model) need_value "$@"; model=$2; shift 2 ;;
    --run-dir) need_value "$@"; run_dir=$2; shift 2 ;;
    --host) need_value "$@"; host=$2; shift 2 ;;
    --build-dir) need_value "$@"; build_dir=$2; shift 2 ;;
    --follow) follow=1; shift ;;
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
    /^prefill/ {p = p $0 "\n"} /^decode/ {d = d $0 "\n"}
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
  rm -f "$run_dir/$name.pid" "$run_dir/$name.addr"
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
  ((prefill >= 1 && decode >= 1 && stores >= 1)) ||
    die "--prefill, --decode and --stores must each be at least 1"
  mkdir -p "$run_dir"
  local name
  for name in $(nodes); do
    alive "$name" && die "$name is already running (pid $(pid_of "$name")); run '$0 down' first"
  done
  rm -f "$run_dir"/*.pid "$run_dir"/*.addr
  model=$(cd "$model" && pwd)
  trap 'echo "local-cluster: start failed; stopping what started" >&2; down' ERR

  # Port 0 lets each node pick a free port; the address files tell them.
  local port=$base_port i store_list=""
  for ((i = 0; i < stores; i++)); do
    start "store-$i" "$kvstore_bin" --listen="$host:$port"
    ((base_port == 0)) || port=$((port + 1))
  done
  for ((i = 0; i < stores; i++)); do
    await "store-$i"
    store_list+=${store_list:+,}$(address_of "store-$i")
  done

  start router "$router_bin" --listen="$host:$router_port" --model="$model" \
    --kvstore="$store_list"
  await router
  local router_address
  router_address=$(address_of router)

  local kind count extra
  for kind in prefill decode; do
    count=$prefill binary=$prefill_bin extra=("${prefill_flags[@]}")
    [[ $kind == decode ]] &&
      count=$decode binary=$decode_bin extra=("${decode_flags[@]}")
    for ((i = 0; i < count; i++)); do
      start "$kind-$i" "$binary" --listen="$host:$port" --model="$model" \
        --kvstore="$store_list" --router="$router_address" \
        --worker_id="$kind-$i" --threads="$threads" "${extra[@]}"
      ((base_port == 0)) || port=$((port + 1))
    done
  done
  for name in $(nodes); do
    [[ $name == prefill-* || $name == decode-* ]] && await "$name"
  done
  # Ready once the router has both kinds of worker in rotation.
  await router tandem.v1.Router
  trap - ERR
  echo "cluster up: router $router_address, $stores store, $prefill prefill," \
    "$decode decode (logs in $run_dir)"
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
