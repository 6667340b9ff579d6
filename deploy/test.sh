#!/usr/bin/env bash
# Sets up everything and runs the whole test suite: dependencies, format
# check, build, every test under ctest, and a bounded fuzzing run. Ends with
# one summary line, "tests: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
deploy/check-format.sh
deploy/build.sh
ctest_log=$(mktemp)
trap 'rm -f "$ctest_log"' EXIT
(cd build && ctest --output-on-failure -j 2 --timeout 900) | tee "$ctest_log"
deploy/fuzz.sh "${TANDEM_FUZZ_SECONDS:-60}"

summary=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' \
  "$ctest_log" | tail -n 1)
failed=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' \
  <<<"$summary")
total=$(sed -E 's/.* tests failed out of ([0-9]+).*/\1/' <<<"$summary")
echo "tests: $((total - failed)) passed, $failed failed"
