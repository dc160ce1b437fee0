#!/usr/bin/env python3
"""End-to-end checks of `tern serve` on loopback (ctest -L serve).

Starts `tern serve MODEL --port 0` (the port is read from its first line) and
checks: /health, /v1/models, /metrics; error codes and OpenAI error objects
(400, 401, 404, 413, 429 + Retry-After); 1,000 malformed, truncated, wrongly
typed or oversized bodies and headers all answered 4xx with an error object,
the server still up; SSE framing with curl -N; 16 concurrent streaming
requests with fixed seeds give exactly what each gives alone; a client that
drops mid-stream is cancelled and its KV pages freed; a repeated prompt hits
the prefix cache.

usage: serve_e2e.py TERN MODEL [SERVE FLAGS...]   (e.g. --reference)
"""
import http.client
import json
import random
import shutil
import socket
import subprocess
import sys
import threading
import time

TERN, MODEL, EXTRA = sys.argv[1], sys.argv[2], sys.argv[3:]
KEY = "test-key"
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


class Server:
    def __init__(self, *flags):
        self.proc = subprocess.Popen([TERN, "serve", MODEL, "--port", "0", *EXTRA, *flags],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "listening on http://" not in line:
            raise SystemExit(f"tern serve did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(line.split("http://")[1].split(" ")[0].rsplit(":", 1)[1])
        for _ in range(1200):  # 60 s: a loaded CI machine can be slow to warm up
            if self.request("GET", "/health")[0] == 200:
                break
            time.sleep(0.05)
        else:
            raise SystemExit("tern serve never became ready")

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, key=KEY):
        h = {"Content-Type": "application/json"}
        if key:
            h["Authorization"] = "Bearer " + key
        h.update(headers or {})
        c = self.conn()
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data

    def json(self, method, path, body=None, **kw):
        s, h, d = self.request(method, path, body, **kw)
        try:
            return s, h, json.loads(d)
        except ValueError:
            return s, h, None

    def metrics(self):
        _, _, d = self.request("GET", "/metrics", key=None)
        out = {}
        for line in d.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            check(False, "tern serve did not stop on SIGTERM")
        check(self.proc.returncode == 0, f"tern serve exit code {self.proc.returncode}")


def is_error_object(body):
    return isinstance(body, dict) and isinstance(body.get("error"), dict) and \
        isinstance(body["error"].get("message"), str)


def stream(srv, body, read_events=None):
    """POSTs a streaming request; returns the parsed events (or closes early)."""
    c = srv.conn()
    c.request("POST", "/v1/chat/completions" if "messages" in body else "/v1/completions",
              body=json.dumps(dict(body, stream=True)),
              headers={"Content-Type": "application/json", "Authorization": "Bearer " + KEY})
    r = c.getresponse()
    assert r.status == 200, (r.status, r.read())
    events, buf = [], b""
    while True:
        chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            events.append(ev.decode())
            if read_events and len(events) >= read_events:
                c.sock.shutdown(socket.SHUT_RDWR)
                c.close()
                return events
    c.close()
    return events


def stream_text(events):
    text = ""
    for ev in events:
        assert ev.startswith("data: "), ev
        p = ev[6:]
        if p == "[DONE]":
            continue
        j = json.loads(p)
        ch = j["choices"][0] if j["choices"] else {}
        text += ch.get("delta", {}).get("content", "") or ch.get("text", "") or ""
    return text


def main():
    srv = Server("-c", "256", "--parallel", "4", "--api-key", KEY, "--max-body", "64K")
    try:
        # --- endpoints ------------------------------------------------------
        s, _, b = srv.json("GET", "/health", key=None)
        check(s == 200 and b == {"status": "ok"}, f"/health {s} {b}")
        s, _, b = srv.json("GET", "/v1/models")
        check(s == 200 and b["object"] == "list" and b["data"][0]["object"] == "model",
              f"/v1/models {s} {b}")
        s, _, b = srv.json("POST", "/tokenize", {"content": "Hello world"})
        check(s == 200 and len(b["tokens"]) > 1, f"/tokenize {s} {b}")
        s, _, d = srv.json("POST", "/detokenize", {"tokens": b["tokens"]})
        check(s == 200 and d["content"].endswith("Hello world"), f"/detokenize {s} {d}")
        s, _, b = srv.json("POST", "/v1/chat/completions",
                           {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8,
                            "temperature": 0, "logprobs": True, "top_logprobs": 3})
        check(s == 200 and b["object"] == "chat.completion" and
              b["choices"][0]["message"]["role"] == "assistant" and
              b["usage"]["completion_tokens"] <= 8 and b["usage"]["prompt_tokens"] > 0 and
              len(b["choices"][0]["logprobs"]["content"][0]["top_logprobs"]) == 3,
              f"chat completion {s} {b}")
        s, _, b = srv.json("POST", "/v1/completions",
                           {"prompt": "Once upon", "max_tokens": 5, "temperature": 0,
                            "logprobs": 2})
        check(s == 200 and b["object"] == "text_completion" and
              b["choices"][0]["finish_reason"] in ("stop", "length") and
              len(b["choices"][0]["logprobs"]["tokens"]) >= 1, f"completion {s} {b}")

        # --- error codes ------------------------------------------------------
        s, h, b = srv.json("GET", "/v1/models", key=None)
        check(s == 401 and is_error_object(b), f"no key: {s} {b}")
        s, h, b = srv.json("GET", "/v1/models", key="wrong")
        check(s == 401 and is_error_object(b), f"wrong key: {s} {b}")
        s, _, b = srv.json("GET", "/v1/nope")
        check(s == 404 and is_error_object(b), f"404: {s} {b}")
        s, _, b = srv.json("POST", "/v1/completions", '{"prompt": "' + "x" * 100000 + '"}')
        check(s == 413 and is_error_object(b), f"413: {s} {b}")
        s, _, b = srv.json("POST", "/v1/chat/completions", '{"messages": ')
        check(s == 400 and is_error_object(b), f"truncated: {s} {b}")
        s, _, b = srv.json("POST", "/v1/chat/completions",
                           {"messages": [{"role": "user", "content": "x"}], "top_k": "many"})
        check(s == 400 and b["error"]["param"] == "top_k", f"wrong type: {s} {b}")
        s, _, b = srv.json("POST", "/v1/completions", {"prompt": "x" * 2000})
        check(s == 400 and b["error"]["code"] == "context_length_exceeded", f"too long: {s} {b}")

        # --- 1,000 malformed requests -----------------------------------------
        rng = random.Random(1234)
        valid = [json.dumps({"messages": [{"role": "user", "content": "hello"}], "max_tokens": 2,
                             "temperature": 0.5, "stop": ["a"], "seed": 1}),
                 json.dumps({"prompt": "hello", "max_tokens": 2, "logprobs": 1})]
        values = [None, True, -1, 1e308, "s", [], {}, [1, "a"], {"a": [{}]}, 2**70, -0.5]
        fields = ["messages", "prompt", "max_tokens", "temperature", "top_p", "top_k", "min_p",
                  "seed", "stop", "stream", "logprobs", "top_logprobs", "frequency_penalty",
                  "presence_penalty", "n", "logit_bias", "stream_options", "repeat_penalty"]
        bad = 0
        for i in range(1000):
            path = rng.choice(["/v1/chat/completions", "/v1/completions"])
            base = valid[0] if "chat" in path else valid[1]
            kind = i % 5
            if kind == 0:  # truncated
                body = base[:rng.randrange(len(base))]
            elif kind == 1:  # random bytes
                body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
            elif kind == 2:  # a field of the wrong type / out of range
                j = json.loads(base)
                f = rng.choice(fields)
                j[f] = rng.choice(values)
                body = json.dumps(j)
            elif kind == 3:  # nested garbage / bad message shapes
                body = json.dumps({"messages": [{"role": rng.choice(["user", "tool", 5]),
                                                 "content": rng.choice(values)}],
                                   "prompt": rng.choice(values)})
            else:  # mutate one byte
                b2 = bytearray(base.encode())
                b2[rng.randrange(len(b2))] = rng.randrange(256)
                body = bytes(b2)
            s, _, b = srv.json("POST", path, body)
            if s == 200:
                continue  # some mutations stay valid (e.g. a changed letter in the content)
            if not (400 <= s < 500 and is_error_object(b)):
                bad += 1
                if bad < 5:
                    print("malformed body got", s, b, body[:200])
        # Broken headers and request lines, on raw sockets.
        raw = [b"GARBAGE\r\n\r\n", b"POST /v1/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
               b"POST /v1/completions HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
               b"GET /health HTTP/1.1\r\n" + b"X-Long: " + b"a" * 20000 + b"\r\n\r\n",
               b"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
               b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n"]
        for i, req in enumerate(raw * 10):
            sk = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            try:
                sk.sendall(req)
                sk.shutdown(socket.SHUT_WR)
                data = b""
                while True:
                    part = sk.recv(65536)
                    if not part:
                        break
                    data += part
            except OSError:
                data = b""
            sk.close()
            status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
            if not (400 <= status < 500 or status == 0):
                bad += 1
                print("raw request", req[:60], "got", data[:200])
        check(bad == 0, f"{bad} malformed requests not answered 4xx with an error object")
        check(srv.request("GET", "/health", key=None)[0] == 200, "server down after malformed input")

        # --- SSE framing with curl -N -----------------------------------------
        curl = shutil.which("curl")
        if curl:
            out = subprocess.run(
                [curl, "-sN", "-H", "Authorization: Bearer " + KEY,
                 f"http://127.0.0.1:{srv.port}/v1/chat/completions",
                 "-d", json.dumps({"messages": [{"role": "user", "content": "Hi"}],
                                   "max_tokens": 5, "stream": True})],
                capture_output=True, text=True, timeout=60).stdout
            events = out.split("\n\n")
            check(out.endswith("data: [DONE]\n\n"), f"curl -N: no final [DONE]: {out[-200:]!r}")
            check(all(e.startswith("data: ") for e in events if e),
                  "curl -N: an event without 'data: '")
            chunks = [json.loads(e[6:]) for e in events if e and e != "data: [DONE]"]
            check(all(c["object"] == "chat.completion.chunk" for c in chunks), "chunk objects")
            check(chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length"),
                  "last chunk has finish_reason")
        else:
            print("note: curl not found; SSE framing checked through http.client only")

        # --- 16 concurrent streams == each alone (fixed seeds) -----------------
        reqs = [{"messages": [{"role": "user", "content": f"request number {i} " + "ab" * (i % 5)}],
                 "max_tokens": 24, "temperature": 0.9 if i % 2 else 0.0, "seed": 1000 + i,
                 "ignore_eos": True} for i in range(16)]
        alone = [stream_text(stream(srv, r)) for r in reqs]
        together = [None] * 16

        def worker(i):
            together[i] = stream_text(stream(srv, reqs[i]))
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i in range(16):
            check(together[i] == alone[i], f"request {i}: concurrent {together[i]!r} != alone "
                  f"{alone[i]!r}")

        # --- prefix cache: the same long prompt twice ---------------------------
        m0 = srv.metrics()
        long_prompt = {"prompt": "The quick brown fox jumps over the lazy dog. " * 3,
                       "max_tokens": 2, "temperature": 0}
        srv.json("POST", "/v1/completions", long_prompt)
        srv.json("POST", "/v1/completions", long_prompt)
        m1 = srv.metrics()
        check(m1["tern_prefix_cache_hit_tokens_total"] > m0["tern_prefix_cache_hit_tokens_total"],
              "a repeated prompt did not hit the prefix cache")
        for name in ["tern_prompt_tokens_total", "tern_generated_tokens_total",
                     "tern_generated_tokens_per_second", "tern_requests_queued",
                     "tern_kv_blocks_used", "tern_kv_blocks_free",
                     'tern_http_requests_total{route="/v1/chat/completions",status="200"}',
                     'tern_http_requests_total{route="/v1/completions",status="400"}']:
            check(name in m1, f"/metrics lacks {name}")
    finally:
        srv.stop()

    # --- queue full (429) and cancellation on disconnect ------------------------
    srv = Server("-c", "2048", "--parallel", "1", "--max-queue", "0", "--api-key", KEY)
    try:
        long_req = {"prompt": "tell me everything", "max_tokens": 2000, "ignore_eos": True}
        # Hold the only slot with a long stream, check 429 meanwhile.
        c = srv.conn()
        c.request("POST", "/v1/completions", body=json.dumps(dict(long_req, stream=True)),
                  headers={"Content-Type": "application/json", "Authorization": "Bearer " + KEY})
        r = c.getresponse()
        check(r.status == 200, f"long stream {r.status}")
        r.read1(100)
        s, h, b = srv.json("POST", "/v1/completions", {"prompt": "x", "max_tokens": 1})
        check(s == 429 and is_error_object(b) and "Retry-After" in h, f"429: {s} {h} {b}")
        m = srv.metrics()
        check(m["tern_requests_active"] == 1 and m["tern_kv_blocks_used"] > 0,
              f"metrics while streaming: {m}")
        c.sock.shutdown(socket.SHUT_RDWR)  # the client drops mid-stream
        c.close()
        t0 = time.time()
        while time.time() - t0 < 10:
            m = srv.metrics()
            if m["tern_requests_cancelled_total"] >= 1 and m["tern_kv_sessions"] == 0:
                break
            time.sleep(0.02)
        freed_after = time.time() - t0
        check(m["tern_requests_cancelled_total"] >= 1, f"disconnect did not cancel: {m}")
        check(m["tern_kv_sessions"] == 0 and m["tern_requests_active"] == 0,
              f"pages not freed after the disconnect: {m}")
        print(f"disconnect -> pages freed after {freed_after * 1000:.0f} ms "
              f"({int(m['tern_generated_tokens_total'])} tokens generated in all)")
        check(m["tern_generated_tokens_total"] < 1000, "generation went on after the disconnect")
        # The slot is free again.
        s, _, b = srv.json("POST", "/v1/completions", {"prompt": "x", "max_tokens": 2})
        check(s == 200, f"after cancel: {s} {b}")
    finally:
        srv.stop()

    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("serve e2e: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
