#!/usr/bin/env python3
"""End to end on AArch64 under qemu: ternc compiles a fixture for an AArch64
target (--target neon_i8mm, neon_dotprod, ...), tests/exec/qemu_runner.cpp
(cross-compiled) runs the artifact under qemu-aarch64 -cpu max, and its
distributions are compared with the fixture's golden by the fixtures' rule
(runtime/model/eval.h compareWithGolden: max |dp| over the golden's top-5 up
to the first parted greedy pick, a parting allowed where the golden's top two
are within `gap`). The golden's picks are forced, like tests/exec/e2e_test.cpp.

Exits 77 (ctest SKIP_RETURN_CODE) with the reason printed when the cross
runner or qemu is missing.

  qemu_e2e.py --ternc T --runner R --qemu Q --sysroot S --fixtures F
              --model NAME --target T --out DIR [--tolerance X --gap Y]
              [--expect CALLEE]
              [-- extra ternc flags]
"""
import argparse
import json
import os
import subprocess
import sys

SKIP = 77


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ternc", required=True)
    ap.add_argument("--runner", default="")
    ap.add_argument("--qemu", default="")
    ap.add_argument("--sysroot", default="")
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--kv-type", default="f16", choices=["f16", "f32"])
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--gap", type=float, default=0.03)
    ap.add_argument("--expect", default="",
                    help="a ukernel the artifact must call, with no scalar fallback recorded")
    ap.add_argument("flags", nargs="*", help="extra ternc compile flags")
    a = ap.parse_args()

    if not a.runner or not os.path.exists(a.runner):
        print("SKIP: no cross-compiled AArch64 runner (aarch64-linux-gnu-g++ not found at "
              "configure time)")
        return SKIP
    if not a.qemu or not os.path.exists(a.qemu):
        print("SKIP: qemu-aarch64 not found at configure time")
        return SKIP
    if not a.sysroot or not os.path.isdir(a.sysroot):
        print(f"SKIP: no AArch64 sysroot at '{a.sysroot}' (qemu-aarch64 -L)")
        return SKIP

    os.makedirs(a.out, exist_ok=True)
    name = f"{a.model}-{a.target}" + "".join(f.replace("-", "").replace("=", "")
                                             .replace(":", "") for f in a.flags)
    tern = os.path.join(a.out, name + ".tern")
    cmd = [a.ternc, "compile", "-q", os.path.join(a.fixtures, "models", a.model + ".gguf"),
           "-o", tern, "--target", a.target, "--kv-type", a.kv_type] + a.flags
    print("+", " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout + r.stderr)
        print(f"FAIL: ternc could not compile {a.model} for {a.target}")
        return 1

    if a.expect:
        data = open(tern, "rb").read()
        if a.expect.encode() not in data:
            print(f"FAIL: the artifact does not call {a.expect}")
            return 1
        if b"fallback_from" in data:
            print("FAIL: the artifact records a scalar fallback (fallback_from)")
            return 1
        print(f"artifact calls {a.expect}, no fallback")

    golden = json.load(open(os.path.join(a.fixtures, "golden", a.model + ".json")))
    prompts = os.path.join(a.out, name + ".prompts")
    with open(prompts, "w") as f:
        for g in golden:
            picks = [s["token"] for s in g["steps"]]
            f.write(" ".join(map(str, [len(g["input"])] + g["input"] + [len(picks)] + picks)) + "\n")
    cmd = [a.qemu, "-cpu", "max", "-L", a.sysroot, a.runner, tern, prompts,
           "2" if a.kv_type == "f16" else "4"]
    print("+", " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        print(r.stdout[-3000:] + r.stderr[-3000:])
        print("FAIL: the runner failed under qemu")
        return 1
    ours = {}
    for line in r.stdout.splitlines():
        if line.startswith("artifact:"):
            print(line)
        if not line.startswith("STEP "):
            continue
        f = line.split()
        ours[(int(f[1]), int(f[2]))] = (int(f[3]), [float(x) for x in f[4:]])

    ok, worst = True, 0.0
    for pi, g in enumerate(golden):
        dmax, detail = 0.0, ""
        for si, gs in enumerate(g["steps"]):
            if (pi, si) not in ours:
                ok, detail = False, detail + f"step {si} missing; "
                break
            pick, probs = ours[(pi, si)]
            d = max(abs((probs[i] if 0 <= i < len(probs) else 0.0) - p) for i, p in gs["top"])
            dmax = max(dmax, d)
            if pick != gs["token"]:
                top = gs["top"]
                margin = top[0][1] - top[1][1] if len(top) >= 2 else 1.0
                if margin > a.gap:
                    ok = False
                    detail += (f"step {si}: picked {pick} but golden picked {gs['token']} with "
                               f"a margin {margin:.4f} > gap {a.gap}; ")
                break
        if dmax > a.tolerance:
            ok = False
            detail += f"max dp {dmax:.4f} exceeds {a.tolerance}; "
        worst = max(worst, dmax)
        print(f"prompt {pi} '{g.get('prompt', '?')}': max dp {dmax:.4f} {detail}")
    print(f"MEASURED qemu e2e {name}: max dp {worst:.4f} (tolerance {a.tolerance})")
    if not ok:
        print("FAIL")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
