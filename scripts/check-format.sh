#!/usr/bin/env bash
# Checks that every C/C++ file git tracks is formatted by clang-format-22
# with the repository's .clang-format (LLVM style, 100 columns). Prints the
# files that are not and exits 1; `--fix` reformats them in place.
set -euo pipefail
cd "$(dirname "$0")/.."
CF=${CLANG_FORMAT:-clang-format-22}
if ! command -v "$CF" >/dev/null; then
  echo "check-format: $CF not found (scripts/setup.sh installs clang-format-22)" >&2
  exit 2
fi
mapfile -t files < <(git ls-files '*.c' '*.cc' '*.cpp' '*.h' '*.hpp' '*.inc')
if [ "${1:-}" = "--fix" ]; then
  "$CF" -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  if ! "$CF" --dry-run -Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "check-format: ${#bad[@]} of ${#files[@]} files are not clang-format-22 clean (fix: bash scripts/check-format.sh --fix):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "check-format: ${#files[@]} files clean"
