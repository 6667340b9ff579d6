#!/usr/bin/env bash
# Fails, listing the files, if any C++ source differs from clang-format.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=()
while IFS= read -r -d '' f; do
  if ! clang-format --style=file --dry-run --Werror "$f" >/dev/null 2>&1; then
    bad+=("$f")
  fi
done < <(git ls-files -z -- '*.h' '*.cc' '*.cpp')
if ((${#bad[@]} > 0)); then
  echo "clang-format check failed; run: clang-format -i ${bad[*]}" >&2
  exit 1
fi
echo "format check: ${#bad[@]} files need formatting"
