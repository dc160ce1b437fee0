#!/usr/bin/env bash
# Compile benchmark on the BitNet b1.58 2B4T shape (not run by CI).
#
# Generates the 2B4T-shape model (tern-synth --preset 2b4t, TQ2_0 matrices,
# LLaMA-3 vocabulary, ~1.2 GB) once, compiles it with `ternc compile
# --target native`, and prints the compile's wall time and peak resident
# memory (GNU time's "Maximum resident set size", file-backed pages
# included), then the time of `tern eval` on a 2-token prompt with a warm
# page cache (artifact open and verification, weights hash included, plus
# the first token).
#
# usage: scripts/bench-compile.sh [-b BUILD_DIR] [-w WORK_DIR] [-j N]
#   -b  build folder holding bin/ternc, bin/tern, bin/tern-synth (default build)
#   -w  where the model and the artifact go (default BUILD_DIR/bench-compile;
#       never inside the source tree's tracked folders)
#   -j  ternc compile -j N (default: ternc's default, every core)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$here/build"
work=""
jobs=""
while getopts "b:w:j:" opt; do
  case "$opt" in
  b) build="$(cd "$OPTARG" && pwd)" ;;
  w) work="$OPTARG" ;;
  j) jobs="$OPTARG" ;;
  *) echo "usage: $0 [-b BUILD_DIR] [-w WORK_DIR] [-j N]" >&2; exit 2 ;;
  esac
done
work="${work:-$build/bench-compile}"
mkdir -p "$work"
vocab="$here/../shared/fixtures/vocab/llama3-vocab.gguf"
for tool in ternc tern tern-synth; do
  [ -x "$build/bin/$tool" ] || { echo "bench-compile: $build/bin/$tool is missing (build first)" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench-compile: /usr/bin/time is missing (apt package 'time', scripts/setup.sh)" >&2; exit 1; }

model="$work/2b4t-tq2_0.gguf"
if [ ! -s "$model" ]; then
  echo "bench-compile: generating $model" >&2
  "$build/bin/tern-synth" --preset 2b4t --format tq2_0 --arch bitnet --vocab-from "$vocab" -o "$model"
fi
art="$work/2b4t-tq2_0.tern"
jflag=()
[ -n "$jobs" ] && jflag=(-j "$jobs")

# Warm the page cache with the source, as a user compiling a model just downloaded would have it.
cat "$model" >/dev/null
/usr/bin/time -v -o "$work/compile.time" "$build/bin/ternc" compile "$model" -o "$art" \
  --target native "${jflag[@]}" -q
wall() { awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0;
  for (i = 1; i <= n; i++) s = s * 60 + t[i]; printf "%.2f", s }' "$1"; }
rss() { awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$1"; }
# CPU seconds (user + system): steadier than wall time on a shared machine.
cpu() { awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$1"; }

cat "$art" >/dev/null # warm
/usr/bin/time -v -o "$work/eval.time" "$build/bin/tern" eval "$art" --tokens 128000,791 \
  --greedy 1 --json >/dev/null

gguf_mb=$(( $(stat -L -c %s "$model") / 1000000 ))
cpu="$(lscpu | awk -F': +' '/Model name/ { print $2; exit }')"
echo "machine:        $cpu, $(nproc) cores; ternc -j ${jobs:-$(nproc)} (default: all)"
echo "model:          $(basename "$model") ${gguf_mb} MB"
echo "compile:        $(wall "$work/compile.time") s wall, $(cpu "$work/compile.time") s CPU," \
  "peak RSS $(rss "$work/compile.time") MB" \
  "(limit GGUF x 1.25 + 300 = $(( gguf_mb * 5 / 4 + 300 )) MB)"
echo "artifact:       $(( $(stat -c %s "$art") / 1000000 )) MB"
echo "eval 2 tokens:  $(wall "$work/eval.time") s wall, $(cpu "$work/eval.time") s CPU" \
  "(open + verify + first token), peak RSS $(rss "$work/eval.time") MB"
echo "load average:   $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine slows the wall times)"
