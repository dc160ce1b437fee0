#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build, generate a
# small synthetic BitNet model (or take MODEL=path.gguf), inspect it, and run
# it: compile it ahead of time to a .tern artifact and run the generated
# code, printing the kernels that ran and tokens/s.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
cmake -G Ninja -S . -B build -DPython3_EXECUTABLE=/usr/bin/python3 \
  -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit >/dev/null
ninja -C build -j"${JOBS:-2}" ternc tern tern-synth tern_ukernels_bc

model=${MODEL:-}
if [ -z "$model" ]; then
  mkdir -p out
  model=out/demo-bitnet-b1.58.gguf
  echo "== generating a synthetic bitnet-b1.58 model: $model"
  ./build/bin/tern-synth --arch bitnet-b1.58 --hidden 512 --layers 4 --heads 8 --kv-heads 2 \
    --ffn 1024 --format tq2_0 --seed 42 -o "$model"
fi
echo "== ternc inspect $model"
./build/bin/ternc inspect "$model" | sed -n '1,6p;/^verdict/,$p'
artifact=${model%.gguf}.tern
echo "== ternc compile $model -o $artifact --target ${TARGET:-native}"
./build/bin/ternc compile "$model" -o "$artifact" --target "${TARGET:-native}"
echo "== tern run $artifact"
# --temp 0: greedy, the same text every run (TEMP=0.8 SEED=N for llama.cpp's sampling).
./build/bin/tern run "$artifact" -p "${PROMPT:-Once upon a time}" -n "${N:-32}" -t "${THREADS:-2}" \
  --temp "${TEMP:-0}" --seed "${SEED:--1}"
