#!/usr/bin/env bash
# Builds the GGUF reader fuzz target with clang-22 (libFuzzer + ASan + UBSan)
# and runs it for FUZZ_SECONDS (default 60) on a seed corpus cut from the
# fixtures. Exits non-zero on any finding.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${TERN_SHARED_DIR:-$root/../shared}
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-60}

cmake -G Ninja -S "$root" -B "$build" -DTERN_BUILD_COMPILER=OFF -DTERN_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
  -DPython3_EXECUTABLE=/usr/bin/python3 -DTERN_SHARED_DIR="$shared" >/dev/null
ninja -C "$build" -j2 gguf_fuzz server_api_fuzz

corpus="$build/corpus"
mkdir -p "$corpus"
for m in "$shared"/fixtures/models/*.gguf; do
  n=$(basename "$m" .gguf)
  head -c 4096 "$m" >"$corpus/$n-4k"
  head -c 65536 "$m" >"$corpus/$n-64k"
done
cp "$shared/fixtures/models/tiny-bitnet-i2s.gguf" "$corpus/i2s-full"
cp "$shared/fixtures/models/tiny-bitnet-tq1.gguf" "$corpus/tq1-full"

artifacts="$build/findings"
mkdir -p "$artifacts"
echo "fuzz: running gguf_fuzz for ${seconds}s on $(ls "$corpus" | wc -l) seeds"
"$build/bin/gguf_fuzz" "$corpus" -max_total_time="$seconds" -max_len=600000 -rss_limit_mb=4096 \
  -artifact_prefix="$artifacts/" -print_final_stats=1 2>&1 | tail -25
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ] || [ -n "$(ls -A "$artifacts")" ]; then
  echo "fuzz: FAILED (exit $status); findings in $artifacts"
  exit 1
fi
echo "fuzz: no findings in ${seconds}s"

# `tern serve`'s request parser: seeds are a few valid and broken bodies; the
# first byte picks the endpoint (0 chat, 1 completions, 2 tokenize, 3 detokenize).
server_seconds=${FUZZ_SERVER_SECONDS:-30}
scorpus="$build/corpus-server"
mkdir -p "$scorpus"
printf '\x00{"messages":[{"role":"user","content":"hi"}],"max_tokens":4,"stop":["a"],"logprobs":true,"top_logprobs":2}' >"$scorpus/chat"
printf '\x01{"prompt":[1,2,3],"temperature":0.5,"logit_bias":{"5":-100},"stream":true,"stream_options":{"include_usage":true}}' >"$scorpus/completion"
printf '\x02{"content":"hello","add_special":false}' >"$scorpus/tokenize"
printf '\x03{"tokens":[1,2]}' >"$scorpus/detokenize"
echo "fuzz: running server_api_fuzz for ${server_seconds}s"
"$build/bin/server_api_fuzz" "$scorpus" -max_total_time="$server_seconds" -max_len=4096 \
  -artifact_prefix="$artifacts/" -print_final_stats=1 2>&1 | tail -5
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ] || [ -n "$(ls -A "$artifacts")" ]; then
  echo "fuzz: server_api_fuzz FAILED (exit $status); findings in $artifacts"
  exit 1
fi
echo "fuzz: server_api_fuzz: no findings in ${server_seconds}s"
