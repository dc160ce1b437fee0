#!/usr/bin/env python3
"""Load test for `tern serve` (or any OpenAI-compatible server).

N concurrent clients each send streaming completions back to back for T
seconds; prints requests/s, time to first token (p50/p99), inter-token
latency (p50/p99) and aggregate generated tokens/s.

usage: bench-serve.py URL [-n CLIENTS] [-t SECONDS] [--max-tokens N] [--prompt TEXT]
                          [--api-key KEY] [--json]
e.g.   bench-serve.py http://127.0.0.1:8080 -n 8 -t 30
"""
import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def client(url, args, deadline, out, lock):
    u = urllib.parse.urlparse(url)
    body = json.dumps({"prompt": args.prompt, "max_tokens": args.max_tokens, "stream": True,
                       "ignore_eos": True, "temperature": 0.8,
                       "stream_options": {"include_usage": True}})
    headers = {"Content-Type": "application/json"}
    if args.api_key:
        headers["Authorization"] = "Bearer " + args.api_key
    while time.time() < deadline:
        c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=600)
        t0 = time.time()
        c.request("POST", "/v1/completions", body=body, headers=headers)
        r = c.getresponse()
        if r.status != 200:
            with lock:
                out["errors"] += 1
            r.read()
            c.close()
            time.sleep(0.1)
            continue
        first, last, itl, tokens, buf = None, None, [], 0, b""
        while True:
            chunk = r.read1(65536)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                payload = ev[6:]
                if payload == b"[DONE]":
                    continue
                j = json.loads(payload)
                now = time.time()
                if j.get("usage"):
                    tokens = j["usage"]["completion_tokens"]
                elif j["choices"] and j["choices"][0].get("text"):
                    if first is None:
                        first = now - t0
                    elif last is not None:
                        itl.append(now - last)
                    last = now
        c.close()
        with lock:
            out["requests"] += 1
            out["tokens"] += tokens
            if first is not None:
                out["ttft"].append(first)
            out["itl"].extend(itl)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("url")
    ap.add_argument("-n", "--clients", type=int, default=8)
    ap.add_argument("-t", "--seconds", type=float, default=30)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt", default="Write a long story about a fox and a dog.")
    ap.add_argument("--api-key", default="")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = {"requests": 0, "tokens": 0, "errors": 0, "ttft": [], "itl": []}
    lock = threading.Lock()
    start = time.time()
    deadline = start + args.seconds
    threads = [threading.Thread(target=client, args=(args.url, args, deadline, out, lock))
               for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - start
    res = {"clients": args.clients, "seconds": round(wall, 2), "requests": out["requests"],
           "errors": out["errors"], "requests_per_s": out["requests"] / wall,
           "ttft_p50_ms": pct(out["ttft"], 50) * 1e3, "ttft_p99_ms": pct(out["ttft"], 99) * 1e3,
           "itl_p50_ms": pct(out["itl"], 50) * 1e3, "itl_p99_ms": pct(out["itl"], 99) * 1e3,
           "tokens": out["tokens"], "tokens_per_s": out["tokens"] / wall}
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{args.clients} clients, {wall:.1f} s: {out['requests']} requests "
              f"({res['requests_per_s']:.2f}/s, {out['errors']} errors)")
        print(f"time to first token: p50 {res['ttft_p50_ms']:.1f} ms, p99 {res['ttft_p99_ms']:.1f} ms")
        print(f"inter-token latency: p50 {res['itl_p50_ms']:.1f} ms, p99 {res['itl_p99_ms']:.1f} ms")
        print(f"aggregate: {out['tokens']} tokens, {res['tokens_per_s']:.1f} tokens/s")
    return 0 if out["requests"] else 1


if __name__ == "__main__":
    sys.exit(main())
