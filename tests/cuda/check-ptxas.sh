#!/usr/bin/env bash
# check-ptxas.sh PTXAS ARCH FILE.ptx: assembles the cuda target's PTX with
# `ptxas -arch=ARCH -v` and checks every kernel's resource use against the
# target's limits: at most 255 registers per thread and 65536 per 128-thread
# block's worth (the kernels' largest block is 128 threads: 512 would be the
# register-file bound, 255 the ISA's), static shared memory <= 48 KiB, no
# register spills, stack frame <= 512 bytes. Exit 77 (ctest: skipped) with
# the reason when no ptxas exists.
set -u
ptxas=$1 arch=$2 ptx=$3
if [[ -z "$ptxas" || "$ptxas" == *NOTFOUND* || ! -x "$ptxas" ]]; then
  echo "SKIP: no ptxas (the CUDA toolkit is not installed; it is not a Debian package)"
  exit 77
fi
[[ -f "$ptx" ]] || { echo "FAIL: $ptx missing"; exit 1; }
out=$("$ptxas" -arch="$arch" -v "$ptx" -o /dev/null 2>&1) || { echo "$out"; echo "FAIL: ptxas rejected $ptx"; exit 1; }
echo "$out"
expected=$(grep -o '^\.visible \.entry [A-Za-z0-9_]*' "$ptx" | sort -u | wc -l)
python3 - "$arch" "$expected" <<PY
import re, sys
arch, expected = sys.argv[1], int(sys.argv[2])
text = """$out"""
kernels, cur, bad = {}, None, []
for line in text.splitlines():
    m = re.search(r"Compiling entry function '(\w+)' for '(\w+)'", line)
    if m:
        cur = m.group(1)
        kernels[cur] = {}
        if m.group(2) != arch:
            bad.append(f"{cur}: compiled for {m.group(2)}, not {arch}")
        continue
    if cur is None:
        continue
    k = kernels[cur]
    if (m := re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)):
        k["stack"], k["spill_st"], k["spill_ld"] = map(int, m.groups())
    if (m := re.search(r"Used (\d+) registers", line)):
        k["regs"] = int(m.group(1))
        sm = re.search(r"(\d+) bytes smem", line)
        k["smem"] = int(sm.group(1)) if sm else 0
if len(kernels) != expected:
    bad.append(f"{len(kernels)} kernels in ptxas -v, {expected} entries in the PTX")
for name, k in sorted(kernels.items()):
    if "regs" not in k:
        bad.append(f"{name}: no register count in ptxas -v")
        continue
    print(f"{arch} {name}: {k['regs']} registers, {k['smem']} B shared, stack {k.get('stack', 0)} B, "
          f"spills {k.get('spill_st', 0)}/{k.get('spill_ld', 0)} B")
    if k["regs"] > 255 or k["regs"] * 128 > 65536:
        bad.append(f"{name}: {k['regs']} registers per thread")
    if k["smem"] > 48 * 1024:
        bad.append(f"{name}: {k['smem']} B of static shared memory")
    if k.get("spill_st", 0) or k.get("spill_ld", 0):
        bad.append(f"{name}: register spills")
    if k.get("stack", 0) > 512:
        bad.append(f"{name}: {k['stack']} B stack frame")
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY
