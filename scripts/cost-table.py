#!/usr/bin/env python3
"""Turn ukernels_bench JSON into the cost model's rates (docs/cost-model.md).

  build/bin/ukernels_bench --benchmark_filter=BM_matmul --benchmark_min_time=0.1 \
      --benchmark_repetitions=3 --benchmark_out=bench.json --benchmark_out_format=json
  python3 scripts/cost-table.py bench.json

Per (variant, shape, n): the best repetition (least CPU time: the least
disturbed on a shared machine). Per (variant, n): the median over the
shapes. Prints the per-shape table (markdown) and the Rates lines of
compiler/target/TargetInfo.cpp.
"""
import json
import statistics
import sys
from collections import defaultdict

runs = json.load(open(sys.argv[1]))["benchmarks"]
best = {}  # (variant, m, k, n) -> G weights/s
for b in runs:
    if b.get("run_type") != "iteration" or not b["name"].startswith("BM_matmul/"):
        continue
    parts = b["name"].split("/")
    variant = parts[1]
    args = {p.split(":")[0]: int(p.split(":")[1]) for p in parts[2:5]}
    key = (variant, args["m"], args["k"], args["n"])
    rate = b["Gweights/s"]
    best[key] = max(best.get(key, 0.0), rate)

variants = sorted({k[0] for k in best})
shapes = sorted({(k[1], k[2]) for k in best}, key=lambda s: (-s[0] * s[1]))
ns = sorted({k[3] for k in best})
print("| kernel | n | " + " | ".join(f"{m}x{k}" for m, k in shapes) + " | median |")
print("|---|---|" + "---|" * (len(shapes) + 1))
med = defaultdict(dict)
for v in variants:
    for n in ns:
        vals = [best.get((v, m, k, n)) for m, k in shapes]
        got = [x for x in vals if x is not None]
        if not got:
            continue
        med[v][n] = statistics.median(got)
        cells = " | ".join("" if x is None else f"{x:.1f}" for x in vals)
        print(f"| {v} | {n} | {cells} | **{med[v][n]:.1f}** |")
print()
for v in variants:
    d = med[v]
    p64 = d.get(64, 0)
    p128 = d.get(128, p64)
    print(f"{v}: Rates{{{d.get(1, 0):.2f}, {p64:.2f}, {p128:.2f}}}")
