"""Writes small, deliberately broken GGUF files for importer error tests.

usage: mkgguf.py KIND OUT   (KIND: unknown-arch | missing-tensor | bad-shape |
                             non-ternary | missing-eps | bad-kv-heads)
A 1-layer bitnet model, hidden 256, FFN 256, 4/2 heads, F32 weights of zeros
(non-ternary: blk.0.attn_q.weight holds a ramp of distinct values instead).
"""
import struct
import sys

kind, out = sys.argv[1], sys.argv[2]
arch = "llama" if kind == "unknown-arch" else "bitnet"
H, F, V, NH, NKV = 256, 256, 8, 4, 2
HD = H // NH
kv = [("general.architecture", 8, arch),
      (f"{arch}.embedding_length", 4, H), (f"{arch}.block_count", 4, 1),
      (f"{arch}.feed_forward_length", 4, F), (f"{arch}.attention.head_count", 4, NH),
      (f"{arch}.attention.head_count_kv", 4, 3 if kind == "bad-kv-heads" else NKV),
      (f"{arch}.context_length", 4, 128),
      (f"{arch}.attention.layer_norm_rms_epsilon", 6, 1e-5)]
if kind == "missing-eps":
    kv = [k for k in kv if not k[0].endswith("layer_norm_rms_epsilon")]
tensors = [("token_embd.weight", [H, V]), ("output_norm.weight", [H]),
           ("blk.0.attn_norm.weight", [H]), ("blk.0.attn_q.weight", [H, NH * HD]),
           ("blk.0.attn_k.weight", [H, NKV * HD]), ("blk.0.attn_v.weight", [H, NKV * HD]),
           ("blk.0.attn_sub_norm.weight", [H]), ("blk.0.attn_output.weight", [H, H]),
           ("blk.0.ffn_norm.weight", [H]), ("blk.0.ffn_gate.weight", [H, F]),
           ("blk.0.ffn_up.weight", [H, F]), ("blk.0.ffn_sub_norm.weight", [F]),
           ("blk.0.ffn_down.weight", [F, H])]
if kind == "missing-tensor":
    tensors = [t for t in tensors if t[0] != "blk.0.ffn_up.weight"]
if kind == "bad-shape":
    tensors = [(n, [H, 64] if n == "blk.0.attn_k.weight" else d) for n, d in tensors]


def s(x):
    b = x.encode()
    return struct.pack("<Q", len(b)) + b


buf = struct.pack("<IIQQ", 0x46554747, 3, len(tensors), len(kv))
for k, t, v in kv:
    val = s(v) if t == 8 else struct.pack("<f" if t == 6 else "<I", v)
    buf += s(k) + struct.pack("<I", t) + val
off = 0
offsets = {}
for n, d in tensors:
    offsets[n] = off
    buf += s(n) + struct.pack("<I", len(d)) + b"".join(struct.pack("<Q", x) for x in d)
    buf += struct.pack("<IQ", 0, off)
    size = 4
    for x in d:
        size *= x
    off += (size + 31) // 32 * 32
buf += b"\0" * ((32 - len(buf) % 32) % 32)
data = bytearray(off)
if kind == "non-ternary":
    start = offsets["blk.0.attn_q.weight"]
    for i in range(H * NH * HD):
        struct.pack_into("<f", data, start + 4 * i, 0.001 * (i % 7) - 0.003)
buf += bytes(data)
open(out, "wb").write(buf)
