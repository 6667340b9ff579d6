#!/usr/bin/env bash
# Sets up everything and runs Tandem's main job: installs the Debian
# packages, builds, and streams a fresh fortune from the default model.
# Extra arguments go to `tandem generate` (e.g. --prompt "Hello").
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
deploy/build.sh
build/tools/tandem generate --model models/fortune "$@"
