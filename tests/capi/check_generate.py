#!/usr/bin/env python3
"""Checks examples/generate.c (tern-generate, C API only) against the C++ path.

Greedy (--temp 0): every fork's generated ids equal the picks of
`tern eval --json` (model.h's greedy evaluation) for the same prompt, up to
and including the first end-of-generation token (where the example stops).
Seeded sampling (--temp 0.8 --seed S): two runs print the same text.
"""
import argparse
import json
import subprocess
import sys

PROMPTS = ["Once upon a time", "The cat sat on the"]
STEPS = 12
EOG = {355}  # the fixtures' <|end_of_text|>; <|begin_of_text|> is 354


def run(cmd):
    # Random weights generate arbitrary bytes.
    r = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace")
    if r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--generate", required=True)
    ap.add_argument("--tern", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--reference", action="store_true")
    a = ap.parse_args()
    path_flag = ["--reference"] if a.reference else []

    for prompt in PROMPTS:
        ev = run([a.tern, "eval", a.model, "--prompt", prompt, "-n", str(STEPS), "--json"]
                 + path_flag)
        picks = [s["token"] for s in json.loads(ev.splitlines()[-1])["steps"]]
        want = []
        for t in picks:
            want.append(t)
            if t in EOG:
                break
        out = run([a.generate, a.model, "-p", prompt, "-n", str(STEPS), "--temp", "0",
                   "--forks", "3", "--ids"] + path_flag)
        forks = [line for line in out.splitlines() if line.startswith("ids[")]
        if len(forks) != 3:
            sys.exit(f"FAIL: expected 3 forks in the output:\n{out}")
        for line in forks:
            got = [int(x) for x in line.split(":", 1)[1].split()]
            if got != want:
                sys.exit(f"FAIL: prompt {prompt!r}: {line} but tern eval picks {want}")
        texts = [line for line in out.splitlines() if line.startswith("[")]
        if len(texts) != 3 or any(not t.split("] ", 1)[1].startswith(prompt) for t in texts):
            sys.exit(f"FAIL: prompt {prompt!r}: unexpected text lines:\n{out}")
        print(f"ok: {prompt!r}: 3 forks x {len(want)} greedy tokens = tern eval's {want}")

    seeded = [a.generate, a.model, "-p", PROMPTS[0], "-n", str(STEPS), "--temp", "0.8",
              "--seed", "7", "--ids"] + path_flag
    first, second = run(seeded), run(seeded)
    if first != second:
        sys.exit(f"FAIL: the same seed gave different outputs:\n{first}\n---\n{second}")
    print("ok: seeded sampling repeats")


if __name__ == "__main__":
    main()
