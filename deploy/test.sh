#!/usr/bin/env bash
# Sets up everything and runs the whole test suite: dependencies, format
# check, build, every test under ctest, and a bounded fuzzing run.
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
deploy/check-format.sh
deploy/build.sh
(cd build && ctest --output-on-failure -j 2 --timeout 900)
deploy/fuzz.sh "${TANDEM_FUZZ_SECONDS:-60}"
