#!/usr/bin/env bash
# Same-run speed comparison with upstream llama.cpp on the BitNet b1.58 2B4T
# shape (not part of CI: ~10 minutes). Generates the model once
#   tern-synth --preset 2b4t --format tq2_0 --arch bitnet
#              --vocab-from ../shared/fixtures/vocab/llama3-vocab.gguf
# compiles it with ternc (--target native; extra ternc flags in TERNC_FLAGS,
# e.g. TERNC_FLAGS="--head q8" once that exists), then runs llama.cpp (through
# node-llama-cpp's JavaScript API, scripts/bench-llama.mjs) and `tern bench`
# alternately, prefill of PROMPTS tokens (pp128 and pp512) then tg64, at 1 and
# 2 threads, REPS times each, and prints one table (median, min, max) plus a
# JSON file. Run it on a quiet machine (the numbers are same-run ratios).
#
#   bash scripts/bench.sh [OUT.json]     env: REPS (default 3), THREADS ("1 2"),
#                                        PROMPTS ("128 512"; PROMPT=N for one
#                                        size), GEN (64), BUILD (build),
#                                        WEIGHTS (how both engines hold the
#                                        weights: default = each engine's
#                                        own default (llama.cpp maps the
#                                        GGUF, tern copies the artifact
#                                        into anonymous memory when it
#                                        fits), or map | mlock | no-mmap
#                                        for both)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
BUILD=${BUILD:-build}
REPS=${REPS:-3}
THREADS=${THREADS:-"1 2"}
PROMPTS=${PROMPTS:-${PROMPT:-"128 512"}}
GEN=${GEN:-64}
export WEIGHTS=${WEIGHTS:-default}
llama_weights=$WEIGHTS
case "$WEIGHTS" in
  default) tern_weights=(); llama_weights=map ;;
  map) tern_weights=(--mmap) ;;
  mlock) tern_weights=(--mlock) ;;
  no-mmap) tern_weights=(--no-mmap) ;;
  *) echo "bench: WEIGHTS must be default, map, mlock or no-mmap, not '$WEIGHTS'" >&2; exit 2 ;;
esac
out_json=${1:-$BUILD/bench/bench.json}
work=$BUILD/bench
mkdir -p "$work"
shared=$(cd "$root/../shared" && pwd)

for t in tern ternc tern-synth; do
  [ -x "$BUILD/bin/$t" ] || { echo "bench: $BUILD/bin/$t missing: build first (ninja -C $BUILD)" >&2; exit 1; }
done
command -v node >/dev/null && command -v npm >/dev/null || { echo "bench: node/npm missing" >&2; exit 1; }

NLC_VERSION=3.22.1
if [ ! -f "$work/node/node_modules/@node-llama-cpp/linux-x64/package.json" ]; then
  echo "bench: installing node-llama-cpp $NLC_VERSION into $work/node" >&2
  mkdir -p "$work/node"
  [ -f "$work/node/package.json" ] || echo '{"name":"tern-bench","private":true}' > "$work/node/package.json"
  npm install --prefix "$work/node" --no-audit --no-fund --ignore-scripts --omit=optional \
    "node-llama-cpp@$NLC_VERSION" "@node-llama-cpp/linux-x64@$NLC_VERSION" >&2
fi

model=$work/2b4t-tq2_0.gguf
if [ ! -f "$model" ]; then
  echo "bench: generating $model" >&2
  "$BUILD/bin/tern-synth" --preset 2b4t --format tq2_0 --arch bitnet \
    --vocab-from "$shared/fixtures/vocab/llama3-vocab.gguf" -o "$model" >&2
fi
art=$work/2b4t-tq2_0.tern
echo "bench: ternc compile --target native ${TERNC_FLAGS:-}" >&2
# shellcheck disable=SC2086
"$BUILD/bin/ternc" compile "$model" -o "$art" --target native ${TERNC_FLAGS:-} >&2

lines=$work/runs.jsonl
: > "$lines"
# The first JSON line of a run, tagged with its engine and prompt size.
tag() {
  python3 -c 'import json,sys
lines = [l for l in sys.stdin.read().splitlines() if l.strip()]
j = json.loads(lines[0]); j.setdefault("engine", sys.argv[1]); j["prompt"] = int(sys.argv[2])
print(json.dumps(j))' "$1" "$2"
}
for p in $PROMPTS; do
  for t in $THREADS; do
    for r in $(seq 1 "$REPS"); do
      echo "bench: pp$p, threads $t, repetition $r: llama.cpp" >&2
      node scripts/bench-llama.mjs --node-dir "$work/node" --model "$model" --threads "$t" \
        --prompt "$p" --gen "$GEN" --reps 1 --weights "$llama_weights" | tag llama.cpp "$p" >> "$lines"
      echo "bench: pp$p, threads $t, repetition $r: tern" >&2
      "$BUILD/bin/tern" bench "$art" -t "$t" -p "$p" -n "$GEN" -r 2 --json ${tern_weights[@]+"${tern_weights[@]}"} |
        tag tern "$p" >> "$lines"
    done
  done
done

python3 - "$lines" "$out_json" <<'PY'
import json, os, statistics, sys, platform
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
rows, summary = [], {"cpu": cpu, "weights": os.environ.get("WEIGHTS", "default"), "runs": runs, "table": []}
for p in sorted({r["prompt"] for r in runs}):
  for t in sorted({r["threads"] for r in runs}):
    for metric in ("pp_tokens_per_s", "tg_tokens_per_s"):
        med = {}
        for eng in ("llama.cpp", "tern"):
            v = [r[metric] for r in runs if r["engine"] == eng and r["threads"] == t and r["prompt"] == p]
            if not v:
                continue
            med[eng] = statistics.median(v)
            test = f"pp{p}" if metric.startswith("pp") else f"tg after pp{p}"
            summary["table"].append({"engine": eng, "threads": t, "prompt": p, "metric": metric,
                                     "median": med[eng], "min": min(v), "max": max(v), "n": len(v)})
            rows.append(f"| {eng:9} | {t} | {test} | {med[eng]:8.2f} | {min(v):8.2f} | {max(v):8.2f} | {len(v)} |")
        if len(med) == 2:
            rows.append(f"| tern / llama.cpp | {t} | {test} | {med['tern'] / med['llama.cpp']:.2f}x | | | |")
print(f"CPU: {cpu}; model: 2B4T shape, TQ2_0, LLaMA-3 vocabulary; weights held: {os.environ.get('WEIGHTS', 'default')}; tokens/s")
print("| engine | threads | test | median | min | max | runs |\n|---|---|---|---|---|---|---|")
print("\n".join(rows))
json.dump(summary, open(sys.argv[2], "w"), indent=1)
print(f"(JSON: {sys.argv[2]})")
PY
