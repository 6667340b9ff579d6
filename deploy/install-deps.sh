#!/usr/bin/env bash
# Installs every Debian 12 package that building, testing and benchmarking
# Tandem need. Safe to run again: apt-get skips what is already installed.
set -euo pipefail

packages=(
  # Toolchain.
  build-essential cmake ninja-build clang clang-format libclang-rt-14-dev
  pkg-config git
  # Libraries the binaries link.
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libgoogle-glog-dev libopenblas-openmp-dev
  nlohmann-json3-dev libpcre2-dev libutf8proc-dev libxxhash-dev
  libcpp-httplib-dev prometheus-cpp-dev
  # Tests and benchmarks.
  libgtest-dev libgmock-dev libbenchmark-dev
  # Tokenizer tests: the xz-compressed tokenizer.json fixtures.
  liblzma-dev
  # Reference checks and the default model's corpus and training.
  python3 python3-numpy python3-torch fortunes
  # The serving benchmark's plots (bench/plot_serving.py).
  python3-matplotlib
  # The Kubernetes manifest check (tests/check_k8s_manifests.py).
  python3-yaml
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
    missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
