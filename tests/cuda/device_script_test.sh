#!/usr/bin/env bash
# scripts/cuda-device.sh end to end without a GPU (docs/cuda.md, "Running on
# a GPU"): pack two fixtures and a tiny generated model into the build tree,
# run them through the carried loader and libraries on the emulated device
# (and through the system's loader: --loader system, and auto's fallback),
# check the results against the goldens; a tampered and a missing result fail
# the check; `run --device cuda` without a driver records every step's
# failure and goes on; given the CUDA toolkit's stub libcuda (a driver
# without a GPU), run finds it as libcuda.so.1 on $LD_LIBRARY_PATH and the
# carried loader loads it (tern then fails at cuInit); given the tests' CUDA
# driver double (tests/cuda/fake_libcuda.cpp), `run --device cuda` through it
# end to end -- the GPU run rehearsed: the carried loader loads it, every
# step runs on the CUDA driver device, check passes and says it was the
# double.
#
# usage: device_script_test.sh BUILD_DIR WORK_DIR [STUB_LIBCUDA] [FAKE_LIBCUDA_DIR]
#        (exit 77: skipped)
set -uo pipefail
build=${1:?BUILD_DIR} work=${2:?WORK_DIR} stub=${3:-} fake=${4:-}
script=$(cd "$(dirname "$0")/../.." && pwd)/scripts/cuda-device.sh

skip() {
  echo "SKIPPED: $*"
  exit 77
}
fail() {
  echo "FAILED: $*"
  exit 1
}
[[ $(uname -m) == x86_64 ]] || skip "the pack carries x86-64 binaries; this machine is $(uname -m)"
command -v ldd >/dev/null || skip "no ldd"
command -v python3 >/dev/null || skip "no python3 (pack reads the goldens' inputs with it)"
ldd "$build/bin/tern" >/dev/null 2>&1 || skip "ldd cannot read $build/bin/tern (a static build?)"

rm -rf "$work"
mkdir -p "$work"
pack=$work/pack
fixtures="tiny-bitnet-i2s gqa-bitnet-tq2"

echo "== pack"
bash "$script" pack "$pack" --build "$build" --fixtures "$fixtures" --synth tiny \
  --synth-max-layers 2 --budget-mib 32 >"$work/pack.log" 2>&1 || {
  cat "$work/pack.log"
  fail "pack"
}
cat "$work/pack.log"
grep -q "generated model synth-tiny-2l: 2 layers" "$work/pack.log" || fail "pack did not size the generated model to 2 layers"
grep -q "^cuda-device.sh: total .* of a budget of 32.00 MiB" "$work/pack.log" || fail "pack printed no total"
for f in bin/tern glibc/ld-linux-x86-64.so.2 glibc/libc.so.6 lib/libstdc++.so.6 manifest.tsv synth/synth-tiny-2l.tern \
  golden/synth-tiny-2l.json inputs/gqa-bitnet-tq2.txt fixtures/tiny-bitnet-i2s.tern; do
  [[ -s $pack/$f ]] || fail "pack holds no $f"
done
# Every library the carried loader gives tern comes from the pack; lib/
# holds no glibc (run's fallback loads lib/ with the device's glibc).
listing=$("$pack/glibc/ld-linux-x86-64.so.2" --library-path "$pack/glibc:$pack/lib" --list "$pack/bin/tern") ||
  fail "the carried loader cannot list tern's libraries"
echo "$listing"
outside=$(echo "$listing" | awk '/=>/ { print $3 }' | grep -v "^$pack/glibc/\|^$pack/lib/" || true)
[[ -z $outside ]] || fail "libraries resolved outside the pack: $outside"
for l in libc.so.6 libm.so.6 ld-linux-x86-64.so.2; do
  [[ ! -e $pack/lib/$l ]] || fail "lib/ holds glibc's $l"
done

echo "== run --device cuda-emulated"
out=$work/out
bash "$script" run "$pack" "$out" --device cuda-emulated --budget-s 240 || {
  cat "$out/log.txt"
  fail "run on the emulated device"
}
# What the device tool fetches: at most 8 files, no folders.
n=$(find "$out" -mindepth 1 | wc -l)
((n <= 8)) || fail "OUTDIR holds $n entries (the device tool fetches 8 files)"
[[ -z $(find "$out" -mindepth 1 -not -type f) ]] || fail "OUTDIR holds more than plain files"
for s in preflight tiny-bitnet-i2s gqa-bitnet-tq2 synth-tiny-2l bench; do
  awk -F'\t' -v s="$s" '$1 == s && $2 == 0 { ok = 1 } END { exit !ok }' "$out/summary.tsv" ||
    fail "summary.tsv has no successful step $s"
done
[[ -s $out/bench.json ]] || fail "no bench.json"
python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); assert j' "$out/bench.json" ||
  fail "bench.json is not JSON"

echo "== check"
bash "$script" check "$out" --build "$build" | tee "$work/check.log" || fail "check of the emulated run"
[[ $(grep -c ' ok [0-9]*/[0-9]* entries within tolerance' "$work/check.log") == 3 ]] ||
  fail "check did not pass the three models"

echo "== run --loader system (the device's loader and glibc, the pack's lib/)"
bash "$script" run "$pack" "$work/system" --device cuda-emulated --loader system --budget-s 240 || {
  cat "$work/system/log.txt"
  fail "run --loader system on the emulated device"
}
grep -q "^tern: env LD_LIBRARY_PATH=$pack/lib " "$work/system/log.txt" || fail "--loader system did not run tern so"
bash "$script" check "$work/system" --build "$build" >"$work/check-system.log" 2>&1 || {
  cat "$work/check-system.log"
  fail "check of the --loader system run"
}

echo "== run --loader auto where the carried loader cannot start: the system one takes over"
mv "$pack/glibc/ld-linux-x86-64.so.2" "$pack/glibc/ld.moved"
bash "$script" run "$pack" "$work/auto" --device cuda-emulated --budget-s 240
rc=$?
mv "$pack/glibc/ld.moved" "$pack/glibc/ld-linux-x86-64.so.2"
((rc == 1)) || fail "run with a failed preflight exited $rc, not 1"
awk -F'\t' '$1 == "preflight" && $2 != 0 { a = 1 } $1 == "preflight-system" && $2 == 0 { b = 1 }
  $1 == "gqa-bitnet-tq2" && $2 == 0 { c = 1 } END { exit !(a && b && c) }' "$work/auto/summary.tsv" || {
  cat "$work/auto/summary.tsv"
  fail "the fallback to the system loader did not run the fixtures"
}

echo "== check of a tampered and of a missing result"
t=$work/tampered
mkdir -p "$t/x" "$t/out"
cp "$out"/* "$t/out/"
tar -xf "$out/results.tar" -C "$t/x"
python3 - "$t/x/gqa-bitnet-tq2.out" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
top = lines[0]["steps"][0]["top"]
top[0][1] -= 0.2
top[1][1] += 0.2
open(sys.argv[1], "w").write("".join(json.dumps(l) + "\n" for l in lines))
EOF
tar -cf "$t/out/results.tar" -C "$t/x" .
if bash "$script" check "$t/out" --build "$build" >"$work/check-tampered.log" 2>&1; then
  cat "$work/check-tampered.log"
  fail "check passed a tampered result"
fi
cat "$work/check-tampered.log"
grep -q "gqa-bitnet-tq2 .*MISMATCH 4/5 entries" "$work/check-tampered.log" ||
  fail "check did not name the tampered model"
rm "$t/x/tiny-bitnet-i2s.out"
tar -cf "$t/out/results.tar" -C "$t/x" .
if bash "$script" check "$t/out" --build "$build" >"$work/check-missing.log" 2>&1; then
  fail "check passed a missing result"
fi
grep -q "tiny-bitnet-i2s .*NO RESULT" "$work/check-missing.log" || {
  cat "$work/check-missing.log"
  fail "check did not name the missing result"
}

echo "== run --device cuda without a driver"
if ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1' || command -v nvidia-smi >/dev/null; then
  echo "a CUDA driver is installed here: the no-driver part is skipped"
else
  if bash "$script" run "$pack" "$work/nodriver" --device cuda --budget-s 120; then
    fail "run --device cuda succeeded without a driver"
  fi
  for s in tiny-bitnet-i2s gqa-bitnet-tq2 synth-tiny-2l bench; do
    awk -F'\t' -v s="$s" '$1 == s && $2 != 0 { ok = 1 } END { exit !ok }' "$work/nodriver/summary.tsv" ||
      fail "summary.tsv records no failed step $s (the run must go on after a failure)"
  done
  grep -q "no CUDA driver" "$work/nodriver/summary.tsv" || fail "the failures do not say why"
  if [[ -n $stub && -e $stub ]]; then
    echo "== run --device cuda with the stub libcuda.so.1 on LD_LIBRARY_PATH"
    mkdir -p "$work/stubdir"
    ln -sf "$stub" "$work/stubdir/libcuda.so.1"
    if LD_LIBRARY_PATH=$work/stubdir bash "$script" run "$pack" "$work/stub" --device cuda --budget-s 60; then
      fail "run --device cuda succeeded with the stub driver"
    fi
    grep -q "^libcuda.so.1: $work/stubdir\$" "$work/stub/log.txt" || fail "run did not find the stub on LD_LIBRARY_PATH"
    awk -F'\t' '$1 == "tiny-bitnet-i2s" && $4 ~ /CUDA: cuInit failed/ { ok = 1 } END { exit !ok }' \
      "$work/stub/summary.tsv" || fail "tern did not load the stub libcuda through the carried loader"
  else
    echo "no stub libcuda (CUDA toolkit): its part is skipped"
  fi
fi
if ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1'; then
  echo "a CUDA driver is installed here (run would find it before the test double): the double's part is skipped"
elif [[ -n $fake && -e $fake/libcuda.so.1 ]]; then
  echo "== run --device cuda with the driver test double on LD_LIBRARY_PATH (the GPU run rehearsed)"
  LD_LIBRARY_PATH=$fake bash "$script" run "$pack" "$work/fake" --device cuda --quick --budget-s 240 || {
    cat "$work/fake/log.txt"
    fail "run --device cuda through the driver double"
  }
  grep -q "^libcuda.so.1: $fake\$" "$work/fake/log.txt" || fail "run did not find the double on LD_LIBRARY_PATH"
  grep -q "driver TEST DOUBLE" "$work/fake/log.txt" || fail "run did not say the driver is the test double"
  bash "$script" check "$work/fake" --build "$build" | tee "$work/check-fake.log" ||
    fail "check of the run through the driver double"
  [[ $(grep -c ' ok [0-9]*/[0-9]* entries within tolerance' "$work/check-fake.log") == 3 ]] ||
    fail "check did not pass the three models run through the driver double"
  grep -q "^TEST DOUBLE:" "$work/check-fake.log" || fail "check did not say the run used the test double"
else
  echo "no driver test double given: its part is skipped"
fi
echo "PASSED"
