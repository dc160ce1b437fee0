"""Checks a .tern artifact (runtime/abi/tern_abi.h) independently of the
runtime's reader and prints a summary for FileCheck.
usage: check_artifact.py FILE [--code OUT.so]"""
import json
import struct
import sys

import xxhash  # python3-xxhash (scripts/setup.sh)


def xxh3(data):
    return xxhash.xxh3_64_intdigest(data)


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def main():
    path = sys.argv[1]
    data = open(path, "rb").read()
    if data[:8] != b"TERNART\x01":
        fail("bad magic")
    fv, hb, abi, count, table, fbytes = struct.unpack_from("<IIIIQQ", data, 8)
    if fv != 2:
        fail("format version %d, expected 2" % fv)
    if fbytes != len(data) or hb != 512:
        fail("header sizes")
    cstr = lambda o, n: data[o:o + n].split(b"\0")[0].decode()
    triple, cpu, feats, ver = cstr(40, 64), cstr(104, 32), cstr(136, 256), cstr(392, 32)
    src_hash, src_bytes, hdr_hash = struct.unpack_from("<QQQ", data, 424)
    hdr = bytearray(data[:512])
    hdr[440:448] = b"\0" * 8
    if xxh3(bytes(hdr)) != hdr_hash:
        fail("header hash")
    names = {1: "metadata", 2: "tokenizer", 3: "weights", 4: "code"}
    secs = {}
    for i in range(count):
        kind, flags, off, size, h = struct.unpack_from("<IIQQQ", data, table + 32 * i)
        if off % 64:
            fail("section %d not 64-byte aligned" % kind)
        body = data[off:off + size]
        if len(body) != size or xxh3(body) != h:
            fail("section %d hash" % kind)
        secs[names.get(kind, str(kind))] = body
    meta = json.loads(secs["metadata"])
    if not secs["tokenizer"].startswith(b"GGUF"):
        fail("tokenizer is not a GGUF")
    if len(secs["weights"]) != meta["weights"]["bytes"]:
        fail("weights size")
    code = secs["code"]
    if code[:4] != b"\x7fELF" or struct.unpack_from("<H", code, 16)[0] != 3:
        fail("code is not an ELF shared object")
    machine = struct.unpack_from("<H", code, 18)[0]
    print("sections " + " ".join(names.get(k, "?") for k in sorted(names) if names[k] in secs))
    print("triple %s cpu %s features %s" % (triple, cpu, feats))
    print("format %d compiler %s abi %d" % (fv, ver, abi))
    print("source %s %d" % (meta["source"]["file"], src_bytes))
    print("act_quant %s arch %s" % (meta["act_quant"], meta["arch"]))
    print("machine %d" % machine)
    fallbacks = [k for k in meta["kernels"] if "fallback_from" in k]
    print("kernels %d matrices %d fallbacks %d" % (len(meta["kernels"]), len(meta["matrices"]),
                                                   len(fallbacks)))
    for k in meta["kernels"]:
        print("kernel " + k["callee"])
    if "--code" in sys.argv:
        open(sys.argv[sys.argv.index("--code") + 1], "wb").write(code)


main()
