#!/usr/bin/env python3
"""Two `tern serve` replicas behind Debian's nginx with deploy/nginx.conf, on loopback.

Checks that a two-turn conversation sent with one X-Session-Id lands on one
replica and that its second turn hits that replica's prefix cache (seen in
the replica's /metrics), that streams pass through unbuffered and end with
[DONE], and that the conversation keeps being served after that replica is
killed (passive health checks: max_fails / fail_timeout).

usage: nginx_e2e.py NGINX TERN MODEL CONF [SERVE FLAGS...]
Exit 77 (skip) when nginx is missing.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

NGINX, TERN, MODEL, CONF, EXTRA = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def metrics(port):
    _, d = request(port, "GET", "/metrics")
    out = {}
    for line in d.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def start_replica():
    p = subprocess.Popen([TERN, "serve", MODEL, "--port", "0", "-c", "512", "--parallel", "2",
                          *EXTRA], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    port = int(re.search(r"http://[^:]+:(\d+)", line).group(1))
    for _ in range(600):
        try:
            if request(port, "GET", "/health")[0] == 200:
                return p, port
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("replica never became ready")


def main():
    if not os.path.exists(NGINX):
        print(f"SKIPPED: nginx not found at {NGINX} (scripts/setup.sh installs it)")
        return 77
    tmp = tempfile.mkdtemp(prefix="tern-nginx-")
    replicas = [start_replica() for _ in range(2)]
    ports = [p for _, p in replicas]
    nport = free_port()
    conf = open(CONF).read()
    # The deployment file with this test's ports and a private prefix.
    servers = iter(ports)
    conf = re.sub(r"server 127\.0\.0\.1:\d+", lambda m: f"server 127.0.0.1:{next(servers)}", conf)
    conf = re.sub(r"listen 127\.0\.0\.1:\d+;", f"listen 127.0.0.1:{nport};", conf)
    conf = conf.replace("worker_processes auto;",
                        f"worker_processes 1;\ndaemon off;\npid {tmp}/nginx.pid;\n"
                        f"error_log {tmp}/error.log;")
    conf = conf.replace("http {", "http {\n" + "".join(
        f"  {d}_temp_path {tmp}/{d};\n" for d in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                   "scgi")) + f"  access_log {tmp}/access.log;\n",
        1)
    open(f"{tmp}/nginx.conf", "w").write(conf)
    ng = subprocess.Popen([NGINX, "-p", tmp, "-c", f"{tmp}/nginx.conf"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(200):
            try:
                if request(nport, "GET", "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit(f"nginx did not start: {ng.stderr.read() if ng.poll() else ''}")

        sid = {"X-Session-Id": "conversation-42"}
        first = {"role": "user", "content": "Please summarise the following text about foxes "
                 "and dogs in a few words: the quick brown fox jumps over the lazy dog. " * 2}
        s, d = request(nport, "POST", "/v1/chat/completions",
                       {"messages": [first], "max_tokens": 8, "temperature": 0}, sid)
        check(s == 200, f"turn 1 through nginx: {s} {d[:200]}")
        reply = json.loads(d)["choices"][0]["message"]["content"]
        turn2 = {"messages": [first, {"role": "assistant", "content": reply},
                              {"role": "user", "content": "And shorter?"}],
                 "max_tokens": 8, "temperature": 0}
        s, d = request(nport, "POST", "/v1/chat/completions", turn2, sid)
        check(s == 200, f"turn 2 through nginx: {s} {d[:200]}")
        key = 'tern_http_requests_total{route="/v1/chat/completions",status="200"}'
        ms = [metrics(p) for p in ports]
        served = [m.get(key, 0) for m in ms]
        check(sorted(served) == [0, 2], f"both turns on one replica: chat requests per replica "
              f"{served}")
        home = served.index(max(served))
        check(ms[home]["tern_prefix_cache_hit_tokens_total"] > 0,
              f"turn 2 did not hit the prefix cache of replica {home}: {ms[home]}")
        print(f"affinity: replica {home} served both turns, prefix-cache hits "
              f"{int(ms[home]['tern_prefix_cache_hit_tokens_total'])} positions")

        # A stream through the proxy ends with [DONE].
        c = http.client.HTTPConnection("127.0.0.1", nport, timeout=60)
        c.request("POST", "/v1/completions", body=json.dumps(
            {"prompt": "Hello", "max_tokens": 6, "stream": True}),
            headers=dict(sid, **{"Content-Type": "application/json"}))
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        check(r.status == 200 and body.endswith("data: [DONE]\n\n"),
              f"stream through nginx: {r.status} {body[-100:]!r}")

        # Kill the conversation's replica: the next turns go to the other one.
        proc, _ = replicas[home]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ok = 0
        for _ in range(5):
            s, d = request(nport, "POST", "/v1/chat/completions", turn2, sid)
            ok += s == 200
        check(ok == 5, f"after killing replica {home}: {ok}/5 requests served")
        other = metrics(ports[1 - home])
        check(other.get(key, 0) >= 5, f"the surviving replica served {other.get(key, 0)}")
    finally:
        ng.send_signal(signal.SIGTERM)
        try:
            ng.wait(timeout=10)
        except subprocess.TimeoutExpired:
            ng.kill()
        for p, _ in replicas:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=20)
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("nginx e2e: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
