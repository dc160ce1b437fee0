// Tests that tern-verify-quant-mapping checks roles without a source file,
// refuses to run without one when asked to, and reports an unreadable file.
// RUN: tern-opt %s --tern-verify-quant-mapping | FileCheck %s
// RUN: not tern-opt %s --tern-verify-quant-mapping=require-source=true 2>&1 | FileCheck %s --check-prefix=REQ
// RUN: not tern-opt %s --tern-verify-quant-mapping=source=%t.missing.gguf 2>&1 | FileCheck %s --check-prefix=BAD

// CHECK: tern.bitlinear
// REQ: error: no source GGUF: set the module's tern.source or source=
// BAD: error: cannot read source GGUF '{{.*}}missing.gguf'

func.func @f(%x: tensor<?x256xf32>) -> tensor<?x256xf32> {
  %y = tern.bitlinear %x {weight = #tern.weight<"blk.0.attn_q.weight", [256, 256], tq2_0, offset = 184320, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}
