#!/usr/bin/env bash
# The fixtures' goldens and a generated model on a GPU of another machine
# (docs/cuda.md, "Running on a GPU"): the device tool's machine is not
# Debian 12 (no LLVM 22, no Debian libraries) and at most 64 MiB travel, so
# everything is built here and carried.
#
#   scripts/cuda-device.sh pack DIR [options]    (here)
#       DIR: bin/tern, lib/ (its shared libraries), glibc/ (Debian's dynamic
#       loader and glibc's libraries), fixtures/*.tern compiled with --target cuda:sm_90, golden/,
#       inputs/, synth/ (the largest generated model whose artifact fits the
#       budget), manifest.tsv. Prints every part's size and the total.
#   scripts/cuda-device.sh run DIR OUTDIR [--device cuda|cuda-emulated]  (there)
#       tern eval per golden, tern bench on the generated model, nvidia-smi;
#       per-step time limits, a failed step is recorded and the next one
#       runs. OUTDIR gets at most 5 files (the device tool fetches 8):
#       log.txt, summary.tsv, results.tar, bench.json, nvidia-smi.txt.
#   scripts/cuda-device.sh check OUTDIR [DIR]    (here)
#       `tern compare` (model::compareWithGolden's rule) of every result with
#       its golden; a table; exit status 1 on a mismatch or a missing result.
#
# Run `scripts/cuda-device.sh help` for the options.
set -uo pipefail

usage() {
  cat <<'EOF'
usage: scripts/cuda-device.sh pack DIR [--build B] [--fixtures "A B ..."]
                                [--synth 2b4t|tiny|none] [--synth-max-layers N]
                                [--budget-mib N] [--arch sm_90]
       scripts/cuda-device.sh run DIR OUTDIR [--device cuda|cuda-emulated]
                                [--budget-s S] [--quick] [--loader auto|carried|system]
       scripts/cuda-device.sh check OUTDIR [DIR] [--build B]

pack (on the build machine; B defaults to the repository's build/):
  --fixtures    golden fixtures to compile (default: all five of
                exec_cuda_e2e_test: tiny-bitnet-i2s tiny-bitnet-tq2
                tiny-bitnet-tq1 tiny-bitnet-f16 gqa-bitnet-tq2)
  --synth       the generated model's shape: 2b4t (BitNet 2B4T's layer
                shapes, the built-in 356-token vocabulary, as many layers as
                fit; default), tiny (tern-synth's tiny preset), none
  --synth-max-layers  at most N layers (default 30, 2B4T's count)
  --budget-mib  DIR's size limit (default: 64 MiB less the working tree that
                the device tool sends with it, less 1 MiB)
  --arch        the cuda target's architecture (default sm_90: the H200)
run (on the GPU machine, or here):
  --device      cuda (default) or cuda-emulated (the GPU kernels' code on the
                host: tests the script without a GPU)
  --budget-s    the whole run's time limit; each step's limit is cut to what
                is left (default 300)
  --quick       a short bench (default with cuda-emulated)
  --loader      carried (Debian's loader and glibc from the pack), system (the
                device's loader and glibc, the pack's lib/), auto (default:
                carried, system where the carried one cannot start tern)
check (on the build machine): DIR defaults to the pack recorded in OUTDIR's
  manifest; B (for `tern compare`) to the repository's build/.
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MIB=$((1024 * 1024))
WORK="" # the subcommand's scratch folder, removed on exit
trap '[[ -n $WORK ]] && rm -rf "$WORK"' EXIT
DEFAULT_FIXTURES="tiny-bitnet-i2s tiny-bitnet-tq2 tiny-bitnet-tq1 tiny-bitnet-f16 gqa-bitnet-tq2"
# The synthetic model's input and steps (the emulated run here is its golden).
SYNTH_TOKENS="354,72,101,108,108,111,44,32,119,111,114,108,100"
SYNTH_STEPS=4

die() {
  echo "cuda-device.sh: error: $*" >&2
  exit 2
}
note() { echo "cuda-device.sh: $*"; }
human() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }
bytes_of() { du -sb "$@" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }

# The fixtures' tolerance and gap (../shared/fixtures/README.md's table, as
# exec_cuda_e2e_test uses them): per-token int8 activations against
# bitnet.cpp's golden, or against llama.cpp's (another scheme).
tolerance_of() {
  case "$1" in
  tiny-bitnet-i2s) echo "0.05 0.03" ;;
  *) echo "0.10 0.05" ;;
  esac
}

# ---------------------------------------------------------------------------
# pack

# Copies $1 (following links) to $2/<its soname or name>.
copy_lib() {
  local src=$1 dst=$2 name=$3
  cp -L "$src" "$dst/$name" || die "cannot copy $src"
  chmod u+w "$dst/$name"
}

pack() {
  local dir="" build="$ROOT/build" fixtures="$DEFAULT_FIXTURES" synth=2b4t maxLayers=30
  local budgetMib="" arch=sm_90
  while (($#)); do
    case "$1" in
    --build) build=${2:?}; shift 2 ;;
    --fixtures) fixtures=${2:?}; shift 2 ;;
    --synth) synth=${2:?}; shift 2 ;;
    --synth-max-layers) maxLayers=${2:?}; shift 2 ;;
    --budget-mib) budgetMib=${2:?}; shift 2 ;;
    --arch) arch=${2:?}; shift 2 ;;
    -*) die "pack: unknown option '$1' (see help)" ;;
    *) [[ -z $dir ]] || die "pack: one DIR only ('$1')"; dir=$1; shift ;;
    esac
  done
  [[ -n $dir ]] || die "pack: give DIR (see help)"
  case "$synth" in 2b4t | tiny | none) ;; *) die "pack: --synth '$synth' is not 2b4t, tiny or none" ;; esac
  [[ $maxLayers =~ ^[1-9][0-9]*$ ]] || die "pack: --synth-max-layers '$maxLayers' is not a positive integer"
  [[ $(uname -m) == x86_64 ]] || die "pack: this machine is $(uname -m); the device machine is x86-64 (build there)"
  local tern="$build/bin/tern" ternc="$build/bin/ternc" synthBin="$build/bin/tern-synth"
  for b in "$tern" "$ternc" "$synthBin"; do
    [[ -x $b ]] || die "pack: no $b (build the project first: docs/cuda.md)"
  done
  local fx="$ROOT/../shared/fixtures"
  [[ -d $fx/models ]] || die "pack: no fixtures at $fx"
  command -v ldd >/dev/null || die "pack: no ldd"
  command -v python3 >/dev/null || die "pack: no python3 (reads the goldens' inputs)"

  mkdir -p "$dir" || die "pack: cannot create $dir"
  dir=$(cd "$dir" && pwd)
  # The budget: what the device tool sends is the checkout (tracked and
  # untracked-not-ignored files, and a shared/ inside it) plus DIR, 64 MiB in
  # all.
  local repo tree=0 budget
  if repo=$(git -C "$dir" rev-parse --show-toplevel 2>/dev/null); then
    if ! git -C "$repo" check-ignore -q "$dir"; then
      local why="$dir is not ignored by git in $repo: it would travel twice (choose e.g. $repo/build-device)"
      [[ -n $budgetMib ]] || die "pack: $why"
      note "warning: $why"
    fi
    tree=$(cd "$repo" && git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null |
      awk 'END { print $1 + 0 }')
    [[ -d $repo/shared ]] && tree=$((tree + $(bytes_of "$repo/shared")))
  fi
  if [[ -n $budgetMib ]]; then
    [[ $budgetMib =~ ^[1-9][0-9]*$ ]] || die "pack: --budget-mib '$budgetMib' is not a positive integer"
    budget=$((budgetMib * MIB))
  else
    budget=$((64 * MIB - tree - MIB))
  fi
  note "working tree that travels with it: $(human "$tree"); DIR's budget: $(human "$budget")"
  (( budget > 0 )) || die "pack: no room left under 64 MiB"

  rm -rf "${dir:?}"/{bin,lib,glibc,fixtures,golden,inputs,synth,manifest.tsv,PACKED}
  mkdir -p "$dir"/{bin,lib,glibc,fixtures,golden,inputs,synth}
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/cuda-device-pack.XXXXXX") || die "pack: mktemp failed"
  WORK=$work

  # tern, stripped of debug information, and what ldd says it loads. Debian's
  # dynamic loader runs it there (`glibc/ld-linux-x86-64.so.2 --library-path
  # glibc:lib:<libcuda's folder> bin/tern`): the device's own glibc may be
  # older. glibc's libdl/libpthread/librt stubs come too: the device's
  # libcuda.so.1 links them, and they must be this glibc's, not the device's.
  # glibc's files go to glibc/, the others to lib/: run's fallback uses lib/
  # alone with the device's loader and glibc.
  cp "$tern" "$dir/bin/tern" && chmod u+w "$dir/bin/tern"
  if command -v objcopy >/dev/null; then objcopy --strip-debug "$dir/bin/tern"; fi
  local loader="" libc=""
  while read -r line; do
    if [[ $line =~ ^([^[:space:]]+)\ =\>\ (/[^[:space:]]+) ]]; then
      case "${BASH_REMATCH[1]}" in
      libc.so.6 | libm.so.6 | libdl.so.2 | libpthread.so.0 | librt.so.1)
        copy_lib "${BASH_REMATCH[2]}" "$dir/glibc" "${BASH_REMATCH[1]}"
        ;;
      *) copy_lib "${BASH_REMATCH[2]}" "$dir/lib" "${BASH_REMATCH[1]}" ;;
      esac
      [[ ${BASH_REMATCH[1]} == libc.so.6 ]] && libc=${BASH_REMATCH[2]}
    elif [[ $line =~ ^(/[^[:space:]]*ld-linux-x86-64\.so\.2) ]]; then
      loader=${BASH_REMATCH[1]}
    fi
  done < <(ldd "$tern")
  [[ -n $loader && -n $libc ]] || die "pack: ldd $tern lists no libc.so.6 or ld-linux-x86-64.so.2 (a static tern? see docs/cuda.md)"
  copy_lib "$loader" "$dir/glibc" ld-linux-x86-64.so.2
  local glibcDir
  glibcDir=$(dirname "$(readlink -f "$libc")")
  for l in libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1; do
    [[ -e $dir/glibc/$l || ! -e $glibcDir/$l ]] || copy_lib "$glibcDir/$l" "$dir/glibc" "$l"
  done
  # The carried loader and libraries must run tern here, without the system's.
  "$dir/glibc/ld-linux-x86-64.so.2" --library-path "$dir/glibc:$dir/lib" "$dir/bin/tern" --help >/dev/null ||
    die "pack: the carried loader cannot run the carried tern"
  local glibcVersion
  glibcVersion=$("$dir/glibc/ld-linux-x86-64.so.2" --version 2>/dev/null | head -1)
  note "tern + libraries + loader: $(human "$(bytes_of "$dir/bin" "$dir/lib" "$dir/glibc")") ($(ls "$dir/lib" | wc -l) files in lib/, $(ls "$dir/glibc" | wc -l) in glibc/: $glibcVersion)"

  {
    printf 'pack_dir\t%s\n' "$dir"
    printf 'packed\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf 'commit\t%s\n' "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo +dirty)"
    printf 'arch\t%s\n' "$arch"
  } >"$dir/manifest.tsv"

  # The fixtures: artifacts, goldens, and their inputs one per line.
  local f
  for f in $fixtures; do
    [[ -f $fx/models/$f.gguf && -f $fx/golden/$f.json ]] || die "pack: no fixture model or golden '$f' in $fx"
    "$ternc" compile "$fx/models/$f.gguf" --target "cuda:$arch" -o "$dir/fixtures/$f.tern" \
      >"$work/$f.log" 2>&1 || { cat "$work/$f.log" >&2; die "pack: ternc could not compile $f"; }
    cp "$fx/golden/$f.json" "$dir/golden/$f.json"
    python3 -c 'import json, sys
for e in json.load(open(sys.argv[1])):
    print(",".join(str(t) for t in e["input"]))' "$dir/golden/$f.json" >"$dir/inputs/$f.txt" ||
      die "pack: cannot read the inputs of $fx/golden/$f.json"
    local steps
    steps=$(python3 -c 'import json, sys; print(max(len(e["steps"]) for e in json.load(open(sys.argv[1]))))' \
      "$dir/golden/$f.json")
    local tg
    tg=$(tolerance_of "$f")
    printf 'fixture\t%s\t%s\t%s\t%s\n' "$f" "${tg% *}" "${tg#* }" "$steps" >>"$dir/manifest.tsv"
    note "fixture $f: $(human "$(bytes_of "$dir/fixtures/$f.tern")"), $(wc -l <"$dir/inputs/$f.txt") inputs; $("$ternc" inspect "$dir/fixtures/$f.tern" 2>/dev/null | grep -i 'gpu code' | sed 's/^[[:space:]]*//')"
  done

  # The generated model: the largest that fits what is left.
  local used left
  used=$(bytes_of "$dir")
  left=$((budget - used - 64 * 1024)) # the synth golden and manifest
  if [[ $synth != none ]]; then
    pack_synth "$dir" "$work" "$synth" "$maxLayers" "$left" "$arch" "$tern" "$ternc" "$synthBin" ||
      die "pack: the generated model failed (above)"
  fi

  local total
  total=$(bytes_of "$dir")
  echo
  note "DIR $dir:"
  du -sb "$dir"/* | awk '{ printf "  %10.2f MiB  %s\n", $1 / 1048576, $2 }'
  note "total $(human "$total") of a budget of $(human "$budget"); with the working tree $(human $((total + tree))) of 64 MiB"
  if (( total > budget )); then
    die "pack: DIR is $(human "$total"), over its budget of $(human "$budget")"
  fi
  echo "$total" >"$dir/PACKED"
}

# tern-synth flags of a shape with L layers.
synth_flags() {
  case "$1" in
  2b4t)
    echo "--arch bitnet-b1.58 --format i2_s --hidden 2560 --heads 20 --kv-heads 5 --ffn 6912" \
      "--ctx 4096 --layers $2 --name synth-2b4t-$2l"
    ;;
  tiny) echo "--layers $2 --name synth-tiny-$2l" ;;
  esac
}

# Compiles the shape with $2 layers into $work/synth-$2.tern; prints its size.
compile_synth() {
  local shape=$1 layers=$2 work=$3 arch=$4 ternc=$5 synthBin=$6
  # shellcheck disable=SC2046
  "$synthBin" $(synth_flags "$shape" "$layers") -o "$work/synth-$layers.gguf" \
    >"$work/synth-$layers.log" 2>&1 || { cat "$work/synth-$layers.log" >&2; return 1; }
  "$ternc" compile "$work/synth-$layers.gguf" --target "cuda:$arch" -o "$work/synth-$layers.tern" \
    >>"$work/synth-$layers.log" 2>&1 || { cat "$work/synth-$layers.log" >&2; return 1; }
  rm -f "$work/synth-$layers.gguf"
  bytes_of "$work/synth-$layers.tern"
}

pack_synth() {
  local dir=$1 work=$2 shape=$3 maxLayers=$4 left=$5 arch=$6 tern=$7 ternc=$8 synthBin=$9
  note "generated model ($shape shapes): $(human "$left") left for it"
  local s1 s2 per layers size
  s1=$(compile_synth "$shape" 1 "$work" "$arch" "$ternc" "$synthBin") || return 1
  if (( s1 > left )); then
    note "generated model: even 1 layer ($(human "$s1")) does not fit: none carried"
    return 0
  fi
  layers=1 size=$s1
  if (( maxLayers > 1 )); then
    s2=$(compile_synth "$shape" 2 "$work" "$arch" "$ternc" "$synthBin") || return 1
    per=$((s2 - s1))
    if (( s2 <= left )); then
      layers=$(( (left - s1) / (per > 0 ? per : 1) + 1 ))
      (( layers > maxLayers )) && layers=$maxLayers
      (( layers < 2 )) && layers=2
      size=$s2
      while (( layers > 2 )); do
        size=$(compile_synth "$shape" "$layers" "$work" "$arch" "$ternc" "$synthBin") || return 1
        (( size <= left )) && break
        layers=$((layers - 1))
      done
      (( layers == 2 )) && size=$s2
    fi
    note "generated model: 1 layer $(human "$s1"), each more $(human "$per")"
  fi
  local name="synth-$shape-${layers}l"
  mv "$work/synth-$layers.tern" "$dir/synth/$name.tern"
  # Its golden: the same artifact on the emulated device here (the GPU
  # kernels' code on the host), in the goldens' form.
  echo "$SYNTH_TOKENS" >"$dir/inputs/$name.txt"
  "$tern" eval "$dir/synth/$name.tern" --device cuda-emulated -c 64 --tokens "$SYNTH_TOKENS" \
    --json --top 1000000 -n "$SYNTH_STEPS" >"$work/synth.jsonl" 2>"$work/synth-eval.log" ||
    { cat "$work/synth-eval.log" >&2; return 1; }
  { echo '['; paste -sd, "$work/synth.jsonl"; echo ']'; } >"$dir/golden/$name.json"
  # GPU against its host emulation: equal up to the summation orders
  # docs/cuda.md lists (lm_head, attention), far inside 1e-3.
  printf 'synth\t%s\t0.001\t0.001\t%s\n' "$name" "$SYNTH_STEPS" >>"$dir/manifest.tsv"
  note "generated model $name: $layers layers, artifact $(human "$size")"
}

# ---------------------------------------------------------------------------
# run

run() {
  local dir="" out="" device=cuda budgetS=300 quick=0 loader=auto
  while (($#)); do
    case "$1" in
    --device) device=${2:?}; shift 2 ;;
    --loader) loader=${2:?}; shift 2 ;;
    --budget-s) budgetS=${2:?}; shift 2 ;;
    --quick) quick=1; shift ;;
    -*) die "run: unknown option '$1' (see help)" ;;
    *)
      if [[ -z $dir ]]; then dir=$1
      elif [[ -z $out ]]; then out=$1
      else die "run: one DIR and one OUTDIR ('$1')"; fi
      shift
      ;;
    esac
  done
  [[ -n $dir && -n $out ]] || die "run: give DIR and OUTDIR (see help)"
  [[ -f $dir/manifest.tsv && -x $dir/bin/tern ]] || die "run: $dir is not a pack (no manifest.tsv or bin/tern)"
  case "$device" in cuda) ;; cuda-emulated) quick=1 ;; *) die "run: --device '$device' is not cuda or cuda-emulated" ;; esac
  [[ $budgetS =~ ^[1-9][0-9]*$ ]] || die "run: --budget-s '$budgetS' is not a positive integer"
  case "$loader" in auto | carried | system) ;; *) die "run: --loader '$loader' is not auto, carried or system" ;; esac
  dir=$(cd "$dir" && pwd)
  mkdir -p "$out" || die "run: cannot create $out"
  out=$(cd "$out" && pwd)
  rm -f "$out"/{log.txt,summary.tsv,results.tar,bench.json,nvidia-smi.txt}
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/cuda-device-run.XXXXXX") || die "run: mktemp failed"
  WORK=$work
  local log=$out/log.txt deadline=$(($(date +%s) + budgetS)) failed=0
  printf 'step\trc\tseconds\tnote\n' >"$out/summary.tsv"
  cp "$dir/manifest.tsv" "$work/manifest.tsv"
  tar -cf "$out/results.tar" -C "$work" manifest.tsv

  # A step: `step NAME LIMIT_S CMD...`, stdout to NAME.out, stderr to
  # NAME.err (both into results.tar); its limit cut to the time left.
  step() {
    local name=$1 limit=$2
    shift 2
    local left=$((deadline - $(date +%s)))
    if ((left < 5)); then
      printf '%s\t-\t0\tskipped: the run budget (--budget-s %s) is spent\n' "$name" "$budgetS" >>"$out/summary.tsv"
      echo "=== $name: SKIPPED (out of time)" >>"$log"
      failed=1
      return
    fi
    ((limit > left)) && limit=$left
    echo "=== $name (limit ${limit}s): $*" >>"$log"
    local t0 t1 rc
    t0=$(date +%s.%N)
    timeout -k 5 "$limit" "$@" >"$work/$name.out" 2>"$work/$name.err" </dev/null
    rc=$?
    t1=$(date +%s.%N)
    local secs
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    local why=ok
    if ((rc == 124 || rc == 137)); then why="timed out after ${limit}s"; elif ((rc != 0)); then why="failed: $(tail -n 2 "$work/$name.err" | tr '\n\t' '  ' | cut -c1-600)"; fi
    ((rc != 0)) && failed=1
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$secs" "$why" >>"$out/summary.tsv"
    {
      echo "--- rc $rc in ${secs}s; stderr:"
      tail -c 4000 "$work/$name.err"
      echo "--- stdout (head):"
      head -c 1500 "$work/$name.out"
      echo
    } >>"$log"
    tar -rf "$out/results.tar" -C "$work" "$name.out" "$name.err"
  }

  {
    echo "cuda-device.sh run: $(date -u +%Y-%m-%dT%H:%M:%SZ), device $device, budget ${budgetS}s"
    echo "pack: $dir"
    cat "$dir/manifest.tsv"
    echo "host: $(uname -a)"
    grep -E '^(PRETTY_NAME)=' /etc/os-release 2>/dev/null
    echo "cpus: $(nproc 2>/dev/null)"
  } >"$log"

  # The device's libcuda.so.1: the loader searches --library-path first,
  # so its folder goes after the carried libraries (the driver's own
  # libraries beside it, e.g. the PTX JIT, are found there too).
  local cudaDir=""
  if [[ $device == cuda ]]; then
    local cand d
    cand=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 .*x86-64/ { print $NF; exit }')
    if [[ -n $cand && -e $cand ]]; then
      cudaDir=$(dirname "$cand")
    else
      local -a ldPath=()
      IFS=: read -r -a ldPath <<<"${LD_LIBRARY_PATH:-}"
      for d in "${ldPath[@]}" /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 \
        /usr/lib/wsl/lib /usr/local/cuda*/compat; do
        if [[ -e $d/libcuda.so.1 ]]; then cudaDir=$d; break; fi
      done
    fi
    echo "libcuda.so.1: ${cudaDir:-NOT FOUND (ldconfig -p, \$LD_LIBRARY_PATH, /usr/local/nvidia/lib*, /usr/lib/x86_64-linux-gnu, /usr/lib64, /usr/lib/wsl/lib, /usr/local/cuda*/compat)}" >>"$log"
    # tests/cuda/fake_libcuda.cpp (the tests' driver double, named so in
    # its device name): a rehearsal of this run without a GPU, never a result.
    if [[ -n $cudaDir ]] && grep -aq "tern fake libcuda" "$cudaDir/libcuda.so.1" 2>/dev/null; then
      echo "libcuda.so.1 is tern's CUDA driver TEST DOUBLE (tests/cuda/fake_libcuda.cpp), not an NVIDIA driver: a rehearsal, no GPU ran" |
        tee -a "$log" >&2
    fi
    if command -v nvidia-smi >/dev/null; then
      {
        timeout 20 nvidia-smi
        echo
        timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,compute_cap --format=csv
      } >"$out/nvidia-smi.txt" 2>&1
      sed -n '1,40p' "$out/nvidia-smi.txt" >>"$log"
    else
      echo "no nvidia-smi on PATH" | tee "$out/nvidia-smi.txt" >>"$log"
    fi
  fi
  # tern through the carried loader and glibc (the default), or, where that
  # cannot start there, through the device's own loader and glibc with the
  # carried lib/ (which needs a glibc at least as new as Debian 12's 2.36).
  local carried=("$dir/glibc/ld-linux-x86-64.so.2" --library-path "$dir/glibc:$dir/lib${cudaDir:+:$cudaDir}")
  local system=(env "LD_LIBRARY_PATH=$dir/lib${cudaDir:+:$cudaDir}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
  local tern=()
  {
    echo "carried loader: ${carried[*]}; its resolution of tern's libraries:"
    "${carried[@]}" --list "$dir/bin/tern" 2>&1
  } >>"$log"
  if [[ $loader != system ]]; then
    step preflight 30 "${carried[@]}" "$dir/bin/tern" --help
    [[ $(awk -F'\t' '$1 == "preflight" { print $2 }' "$out/summary.tsv") == 0 ]] &&
      tern=("${carried[@]}" "$dir/bin/tern")
  fi
  if [[ ${#tern[@]} == 0 && $loader != carried ]]; then
    step preflight-system 30 "${system[@]}" "$dir/bin/tern" --help
    tern=("${system[@]}" "$dir/bin/tern")
  fi
  [[ ${#tern[@]} == 0 ]] && tern=("${carried[@]}" "$dir/bin/tern")
  echo "tern: ${tern[*]}" >>"$log"
  local kind name tol gap steps
  while IFS=$'\t' read -r kind name tol gap steps; do
    [[ $kind == fixture || $kind == synth ]] || continue
    local model=$dir/fixtures/$name.tern
    [[ $kind == synth ]] && model=$dir/synth/$name.tern
    local args=()
    while read -r ids; do
      [[ -n $ids ]] && args+=(--tokens "$ids")
    done <"$dir/inputs/$name.txt"
    step "$name" 60 "${tern[@]}" eval "$model" --device "$device" -c 128 --json --top 1000000 \
      -n "$steps" "${args[@]}"
  done <"$dir/manifest.tsv"

  local synthModel
  synthModel=$(ls "$dir"/synth/*.tern 2>/dev/null | head -1)
  if [[ -n $synthModel ]]; then
    if ((quick)); then
      step bench 120 "${tern[@]}" bench "$synthModel" --device "$device" --json -c 64 -p 8 -n 4 -r 1 --parallel 2
    else
      step bench 150 "${tern[@]}" bench "$synthModel" --device "$device" --json -c 1024 -p 512 -n 128 -r 3 --parallel 8
    fi
    [[ -s $work/bench.out ]] && cp "$work/bench.out" "$out/bench.json"
  fi
  echo "=== done: $(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$log"
  column -t -s $'\t' "$out/summary.tsv" 2>/dev/null || cat "$out/summary.tsv"
  ((failed == 0)) || { note "run: a step failed (summary above, details in $out/log.txt)"; return 1; }
  note "run: every step ran; fetch $out and run: scripts/cuda-device.sh check OUTDIR"
}

# ---------------------------------------------------------------------------
# check

check() {
  local out="" dir="" build="$ROOT/build"
  while (($#)); do
    case "$1" in
    --build) build=${2:?}; shift 2 ;;
    -*) die "check: unknown option '$1' (see help)" ;;
    *)
      if [[ -z $out ]]; then out=$1
      elif [[ -z $dir ]]; then dir=$1
      else die "check: one OUTDIR and one DIR ('$1')"; fi
      shift
      ;;
    esac
  done
  [[ -n $out ]] || die "check: give OUTDIR (see help)"
  [[ -f $out/results.tar ]] || die "check: no $out/results.tar (not a run's OUTDIR)"
  local ternBin="$build/bin/tern"
  [[ -x $ternBin ]] || die "check: no $ternBin (build the project, or --build B)"
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/cuda-device-check.XXXXXX") || die "check: mktemp failed"
  WORK=$work
  tar -xf "$out/results.tar" -C "$work" || die "check: cannot read $out/results.tar"
  [[ -f $work/manifest.tsv ]] || die "check: $out/results.tar holds no manifest.tsv"
  if [[ -z $dir ]]; then
    dir=$(awk -F'\t' '$1 == "pack_dir" { print $2 }' "$work/manifest.tsv")
  fi
  [[ -d $dir/golden ]] || die "check: no goldens in the pack '$dir' (give DIR)"

  local bad=0 kind name tol gap steps
  printf '%-26s %-8s %-6s %-10s %s\n' "model" "kind" "rc" "seconds" "tern compare"
  while IFS=$'\t' read -r kind name tol gap steps; do
    [[ $kind == fixture || $kind == synth ]] || continue
    local rc secs verdict
    rc=$(awk -F'\t' -v n="$name" '$1 == n { print $2 }' "$out/summary.tsv" 2>/dev/null)
    secs=$(awk -F'\t' -v n="$name" '$1 == n { print $3 }' "$out/summary.tsv" 2>/dev/null)
    if [[ ! -s $work/$name.out ]]; then
      verdict="NO RESULT: $(tail -c 200 "$work/$name.err" 2>/dev/null | tr '\n' ' ')"
      bad=1
    else
      verdict=$("$ternBin" compare "$dir/golden/$name.json" "$work/$name.out" --tolerance "$tol" \
        --gap "$gap" --brief 2>&1) || bad=1
    fi
    printf '%-26s %-8s %-6s %-10s %s\n' "$name" "$kind" "${rc:--}" "${secs:--}" "$verdict"
  done <"$work/manifest.tsv"
  echo
  if grep -q "driver TEST DOUBLE" "$out/log.txt" 2>/dev/null; then
    echo "TEST DOUBLE: this run's libcuda.so.1 was tern's driver double (tests/cuda/fake_libcuda.cpp): the"
    echo "  kernels ran as their host emulation; the results say nothing about a GPU"
  fi
  if [[ -s $out/nvidia-smi.txt ]]; then
    echo "GPU (nvidia-smi):"
    tail -n 2 "$out/nvidia-smi.txt" | sed 's/^/  /'
  fi
  if [[ -s $work/bench.out ]]; then
    echo "bench ($(basename "$(ls "$dir"/synth/*.tern 2>/dev/null | head -1)" .tern)):"
    python3 - "$work/bench.out" <<'EOF' 2>/dev/null || head -c 2000 "$work/bench.out"
import json, sys
j = json.load(open(sys.argv[1]))
def walk(o, p=""):
    if isinstance(o, dict):
        for k, v in o.items():
            walk(v, f"{p}.{k}" if p else k)
    elif not isinstance(o, list):
        print(f"  {p}: {o}")
walk(j)
EOF
  else
    echo "bench: no result"
    [[ -n $(ls "$dir"/synth/*.tern 2>/dev/null) ]] && bad=1
  fi
  if ((bad)); then
    note "check: MISMATCH or missing results (table above; $out/log.txt has each step's output)"
    return 1
  fi
  note "check: every result within its tolerance"
}

case "${1:-}" in
pack) shift; pack "$@" ;;
run) shift; run "$@" ;;
check) shift; check "$@" ;;
help | -h | --help) usage ;;
*) usage >&2; exit 2 ;;
esac
