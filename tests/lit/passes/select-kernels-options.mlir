// Tests that tern-select-kernels refuses an unknown target, a malformed
// kernel= option, a tile the layout's kernels cannot run, and bad
// act-quant= / max-batch= values.
// RUN: not tern-opt %s --tern-select-kernels=target=sparc 2>&1 | FileCheck %s --check-prefix=TARGET
// RUN: not tern-opt %s --tern-select-kernels=kernel=i3s 2>&1 | FileCheck %s --check-prefix=KERNEL
// RUN: not tern-opt %s --tern-select-kernels=kernel=i2s:0x128 2>&1 | FileCheck %s --check-prefix=KERNEL
// RUN: not tern-opt %s "--tern-select-kernels=target=avx2 kernel=i2s:32x100" 2>&1 | FileCheck %s --check-prefix=TILE
// A tile the fast kernels cannot run is refused when kernel= is parsed.
// RUN: not tern-opt %s "--tern-select-kernels=target=avx2 kernel=tl2:8x96" 2>&1 | FileCheck %s --check-prefix=TL2TILE
// RUN: not tern-opt %s "--tern-select-kernels=target=neon kernel=tl1:40x64" 2>&1 | FileCheck %s --check-prefix=TL1TILE
// RUN: not tern-opt %s "--tern-select-kernels=act-quant=int4" 2>&1 | FileCheck %s --check-prefix=ACT
// RUN: not tern-opt %s "--tern-select-kernels=max-batch=0" 2>&1 | FileCheck %s --check-prefix=BATCH

// TARGET: error: unknown target 'sparc' (known: avx2, x86-64-v3, avx512_vnni, x86-64-v4, neon, aarch64, neon_dotprod, aarch64-dotprod, neon_i8mm, aarch64-i8mm, cuda:sm_80, cuda:sm_90 (alias cuda), native)
// KERNEL: error: invalid kernel= '{{.*}}' (auto, i2s, tl1, tl2, tl2v, tq2 or tq1, optionally with :<tile_m>x<tile_k>)
// TILE: error: kernel= 'i2s:32x100': kernel layout i2s needs tile_k to be a multiple of 128, got 100
// TL2TILE: error: kernel= 'tl2:8x96': kernel tile 8x96 is refused: tl2 needs tile_m to be a multiple of 16 (16 rows per vector) and at most 1024, got 8
// TL1TILE: error: kernel= 'tl1:40x64': kernel tile 40x64 is refused: tl1 needs tile_m to be a multiple of 16 (16 rows per vector), got 40
// ACT: error: invalid act-quant= 'int4' (token or none)
// BATCH: error: invalid max-batch= 0 (at least 1)

func.func @f(%x: tensor<?x256xf32>) {
  %y = tern.bitlinear %x {weight = #tern.weight<"blk.0.attn_q.weight", [256, 256], tq2_0, offset = 0, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return
}
