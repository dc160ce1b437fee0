// Tests that tern-pack-weights refuses a matrix without a kernel.
// RUN: tern-opt %s -verify-diagnostics --tern-pack-weights=source=%fixtures/models/tiny-bitnet-tq2.gguf

func.func @f(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op has no kernel; run tern-select-kernels first}}
  %y = tern.bitlinear %x {weight = #tern.weight<"blk.0.attn_q.weight", [256, 256], tq2_0, offset = 184320, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return
}
