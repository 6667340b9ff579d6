#!/usr/bin/env bash
# deploy/local-cluster.sh end to end: brings a cluster up on free loopback
# ports with a small random model and an API key, checks `status`, streams
# a greedy completion through `tandem generate --router` and compares it
# with local generation and with the HTTP API's, checks that both refuse a
# missing key, scrapes every node's /metrics, refuses a second `up`, and
# checks that `down` stops every process; then the same for `up
# --colocated` (store, router and one colocated worker).
#
# Usage: local_cluster_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail

build_dir=$(cd "$1" && pwd)
source_dir=$(cd "$2" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/local_cluster_test.XXXXXX")
run_dir=$work/run
model=$work/model
script=$source_dir/deploy/local-cluster.sh
tandem=$build_dir/tools/tandem
common=(--run-dir "$run_dir" --build-dir "$build_dir")

fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() {
  "$script" down "${common[@]}" --stop-timeout 2 >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# A random byte-level model (vocab 258, BOS 256, EOS 257).
"$build_dir/tools/make_random_model" --out "$model" --seed 3 \
  --hidden_size 32 --intermediate_size 64 --num_layers 2 --num_heads 2 \
  --vocab_size 258 --bos_token_id 256 --eos_token_id 257 \
  --max_position_embeddings 256 >/dev/null
cp "$source_dir/engine/testdata/tokenizers/byte/tokenizer.json" "$model/"
echo '{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true}' \
  >"$model/tokenizer_config.json"

echo "test-key-$$" >"$work/key"
"$script" up "${common[@]}" --model "$model" --stores 2 --threads 1 \
  --router-port 0 --http-port 0 --base-port 0 --api-key-file "$work/key" \
  >"$work/up.out"
grep -q "cluster up" "$work/up.out" || fail "up did not report the cluster"

"$script" status "${common[@]}" >"$work/status.out"
cat "$work/status.out"
for node in store-0 store-1 router prefill-0 decode-0; do
  grep -Eq "^$node +[0-9]+ +127\.0\.0\.1:[0-9]+ +SERVING$" "$work/status.out" ||
    fail "status does not show $node SERVING"
done

grep -q "^HTTP API (OpenAI-compatible): http://127.0.0.1:[0-9]*/v1$" \
  "$work/status.out" || fail "status does not show the HTTP API"

router=$(cat "$run_dir/router.addr")
flags=(--prompt "Hello" --temperature 0 --max-tokens 24)
status=0
"$tandem" generate --router "$router" "${flags[@]}" >/dev/null \
  2>"$work/nokey.err" || status=$?
((status == 2)) && grep -q "requires an API key" "$work/nokey.err" ||
  fail "generate without the key: exit $status, $(cat "$work/nokey.err")"
TANDEM_API_KEY=$(cat "$work/key") "$tandem" generate --router "$router" \
  "${flags[@]}" >"$work/remote.txt" 2>"$work/remote.err" ||
  fail "generate --router failed: $(cat "$work/remote.err")"
"$tandem" generate --model "$model" --threads 1 "${flags[@]}" \
  >"$work/local.txt" 2>/dev/null
cmp -s "$work/remote.txt" "$work/local.txt" ||
  fail "cluster output '$(cat "$work/remote.txt")' differs from local" \
    "'$(cat "$work/local.txt")'"
grep -q "prompt_tokens=6 " "$work/remote.err" ||
  fail "no summary line: $(cat "$work/remote.err")"

# The same completion over HTTP; a request without the key is refused.
python3 - "$(cat "$run_dir/router.http")" "$(cat "$work/key")" \
  >"$work/http.txt" <<'EOF' || fail "HTTP completion failed"
import json, sys, urllib.error, urllib.request
url = f"http://{sys.argv[1]}/v1/completions"
body = json.dumps({"prompt": "Hello", "temperature": 0, "max_tokens": 24})
def post(headers):
    request = urllib.request.Request(url, body.encode(), headers)
    return urllib.request.urlopen(request, timeout=30)
try:
    post({"Content-Type": "application/json"})
    sys.exit("a request without the key succeeded")
except urllib.error.HTTPError as error:
    if error.code != 401:
        sys.exit(f"a request without the key got {error.code}")
reply = json.load(post({"Content-Type": "application/json",
                        "Authorization": "Bearer " + sys.argv[2]}))
sys.stdout.write(reply["choices"][0]["text"])
EOF
cmp -s "$work/http.txt" "$work/remote.txt" ||
  fail "HTTP output '$(cat "$work/http.txt")' differs from gRPC" \
    "'$(cat "$work/remote.txt")'"
# Every node's /metrics, as `up` printed them.
scrape() {
  python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"
}
for node in store-0 store-1 router prefill-0 decode-0; do
  url=$(sed -n "s|^metrics: $node \(http://.*/metrics\)$|\1|p" "$work/up.out")
  [[ -n $url ]] || fail "up printed no metrics address for $node"
  scrape "$url" >"$work/$node.metrics" || fail "cannot scrape $node at $url"
done
# Two completions so far: one over gRPC, one over HTTP.
awk '/^tandem_router_requests_total\{outcome="ok_(stop|length)"\}/ {n += $2}
  END {exit n != 2}' "$work/router.metrics" ||
  fail "the router did not count both completions"
grep -Eq '^tandem_decode_generated_tokens_total [1-9]' \
  "$work/decode-0.metrics" || fail "the decode worker counted no tokens"

if "$script" up "${common[@]}" --model "$model" --router-port 0 \
    --base-port 0 2>"$work/again.err"; then
  fail "a second up succeeded"
fi
grep -q "already running" "$work/again.err" ||
  fail "a second up did not say why: $(cat "$work/again.err")"

"$script" logs "${common[@]}" --lines 1 >"$work/logs.out"
grep -q "router.log" "$work/logs.out" || fail "logs shows no router log"

pids=$(cat "$run_dir"/*.pid)
"$script" down "${common[@]}"
for pid in $pids; do
  # Gone, or a zombie waiting for whoever reaps it.
  if kill -0 "$pid" 2>/dev/null &&
      [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]; then
    fail "process $pid survived down"
  fi
done
"$script" status "${common[@]}" | grep -q "no cluster" ||
  fail "status after down still lists nodes"

# The colocated layout: one worker with the threads of both (1 + 1).
"$script" up "${common[@]}" --model "$model" --threads 1 --colocated \
  --router-port 0 --base-port 0 >"$work/up.out"
grep -q "1 colocated worker with 2 threads" "$work/up.out" ||
  fail "up --colocated did not report the cluster: $(cat "$work/up.out")"
"$script" status "${common[@]}" >"$work/status.out"
for node in store-0 router colocated-0; do
  grep -Eq "^$node +[0-9]+ +127\.0\.0\.1:[0-9]+ +SERVING$" "$work/status.out" ||
    fail "status does not show $node SERVING: $(cat "$work/status.out")"
done
grep -Eq "^(prefill|decode)-" "$work/status.out" &&
  fail "up --colocated started prefill or decode workers"
router=$(cat "$run_dir/router.addr")
"$tandem" generate --router "$router" "${flags[@]}" >"$work/remote.txt" \
  2>"$work/remote.err" || fail "colocated generate failed: $(cat "$work/remote.err")"
cmp -s "$work/remote.txt" "$work/local.txt" ||
  fail "colocated output '$(cat "$work/remote.txt")' differs from local" \
    "'$(cat "$work/local.txt")'"
pids=$(cat "$run_dir"/*.pid)
"$script" down "${common[@]}"
for pid in $pids; do
  if kill -0 "$pid" 2>/dev/null &&
      [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]; then
    fail "process $pid survived down --colocated"
  fi
done
echo "PASS"
