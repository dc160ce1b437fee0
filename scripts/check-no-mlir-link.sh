#!/usr/bin/env bash
# usage: check-no-mlir-link.sh [--expect-mlir] BINARY...
# Fails if a binary depends on libMLIR/libLLVM (dynamic NEEDED entries) or
# carries mlir::/llvm:: code (static linking). --expect-mlir inverts the check
# (a control proving the detection works on a binary that does link MLIR).
set -u
expect=0
if [ "${1:-}" = "--expect-mlir" ]; then expect=1; shift; fi
rc=0
for bin in "$@"; do
  needed=$(readelf -d "$bin" 2>/dev/null | grep NEEDED | grep -Ei 'libMLIR|libLLVM|libclang' || true)
  syms=$(nm -C "$bin" 2>/dev/null | grep -cE ' (mlir|llvm)::' || true)
  if [ -n "$needed" ] || [ "$syms" -gt 0 ]; then found=1; else found=0; fi
  if [ "$found" -ne "$expect" ]; then
    if [ "$expect" -eq 0 ]; then
      echo "FAIL: $bin links MLIR/LLVM: ${needed:-} ($syms mlir::/llvm:: symbols)"
    else
      echo "FAIL: $bin was expected to link MLIR/LLVM but no sign of it was found"
    fi
    rc=1
  else
    echo "ok: $bin $([ "$expect" -eq 0 ] && echo 'has no MLIR/LLVM link' || echo 'links MLIR (control)')"
  fi
done
exit $rc
