// Tests that tern-fuse refuses ops that already have a kernel.
// RUN: tern-opt %s -verify-diagnostics --tern-fuse

func.func @f(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op already has a kernel; run tern-fuse before tern-select-kernels}}
  %y = tern.bitlinear %x {kernel = #tern.kernel<i2s, avx2, tile_m = 32, tile_k = 256>, weight = #tern.weight<"blk.0.attn_q.weight", [256, 256], tq2_0, offset = 184320, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return
}
