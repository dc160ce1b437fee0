// Tests that tern-select-kernels refuses an unknown target and a malformed
// kernel= option.
// RUN: not tern-opt %s --tern-select-kernels=target=sparc 2>&1 | FileCheck %s --check-prefix=TARGET
// RUN: not tern-opt %s --tern-select-kernels=kernel=i3s 2>&1 | FileCheck %s --check-prefix=KERNEL
// RUN: not tern-opt %s --tern-select-kernels=kernel=i2s:0x128 2>&1 | FileCheck %s --check-prefix=KERNEL
// RUN: not tern-opt %s "--tern-select-kernels=target=avx2 kernel=i2s:32x100" 2>&1 | FileCheck %s --check-prefix=TILE

// TARGET: error: unknown target 'sparc' (known: avx2, x86-64-v3, avx512_vnni, x86-64-v4, neon, aarch64, neon_dotprod, aarch64-dotprod, cuda, native)
// KERNEL: error: invalid kernel= '{{.*}}' (auto, i2s, tl1, tl2, tq2 or tq1, optionally with :<tile_m>x<tile_k>)
// TILE: error: 'tern.bitlinear' op kernel layout i2s needs tile_k to be a multiple of 128, got 100

func.func @f(%x: tensor<?x256xf32>) {
  %y = tern.bitlinear %x {weight = #tern.weight<"blk.0.attn_q.weight", [256, 256], tq2_0, offset = 0, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return
}
