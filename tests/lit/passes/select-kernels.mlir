// Tests that tern-select-kernels picks a layout and tiles for the BitNet
// b1.58 2B4T matrix shapes on every target from the measured cost table
// (docs/cost-model.md), for act-quant token and none and for max-batch 1,
// honours kernel=, explains its choices with the numbers, and reports what
// it cannot do.
// RUN: tern-opt %s --tern-select-kernels=target=avx2 | FileCheck %s --check-prefix=AVX2
// RUN: tern-opt %s --tern-select-kernels=target=avx512_vnni | FileCheck %s --check-prefix=VNNI
// RUN: tern-opt %s --tern-select-kernels="target=avx512_vnni max-batch=1" | FileCheck %s --check-prefix=VNNI1
// RUN: tern-opt %s --tern-select-kernels="target=avx512_vnni kernel=i2s" | FileCheck %s --check-prefix=VNNI-I2S
// RUN: tern-opt %s --tern-select-kernels=target=neon | FileCheck %s --check-prefix=NEON
// RUN: tern-opt %s --tern-select-kernels=target=neon_dotprod | FileCheck %s --check-prefix=DOT
// RUN: tern-opt %s --tern-select-kernels=target=neon_i8mm | FileCheck %s --check-prefix=I8MM
// RUN: tern-opt %s --tern-select-kernels="target=neon_i8mm explain=true" -o /dev/null 2>&1 | FileCheck %s --check-prefix=I8MM-EXPLAIN
// RUN: tern-opt %s --tern-select-kernels="target=neon_i8mm act-quant=none explain=true" 2>&1 | FileCheck %s --check-prefix=I8MM-NONE
// RUN: tern-opt %s --tern-select-kernels="target=neon_i8mm kernel=tl1" | FileCheck %s --check-prefix=I8MM-TL1
// RUN: tern-opt %s --tern-select-kernels=target=cuda | FileCheck %s --check-prefix=CUDA
// RUN: tern-opt %s --tern-select-kernels=target=cuda:sm_80 | FileCheck %s --check-prefix=CUDA
// RUN: tern-opt %s --tern-select-kernels=target=cuda:sm_90 | FileCheck %s --check-prefix=CUDA
// RUN: tern-opt %s --tern-select-kernels="target=avx2 act-quant=none" | FileCheck %s --check-prefix=NONE-AVX2
// RUN: tern-opt %s --tern-select-kernels="target=avx512_vnni act-quant=none" | FileCheck %s --check-prefix=NONE-VNNI
// RUN: tern-opt %s --tern-select-kernels="target=neon act-quant=none explain=true" 2>&1 | FileCheck %s --check-prefix=NONE-NEON
// RUN: tern-opt %s --tern-select-kernels="target=avx2 kernel=i2s" | FileCheck %s --check-prefix=FORCE
// RUN: tern-opt %s --tern-select-kernels="target=avx512_vnni head=q8 explain=true" 2>&1 | FileCheck %s --check-prefix=HEADQ8
// RUN: tern-opt %s --tern-select-kernels="target=neon kernel=tq2:16x512" | FileCheck %s --check-prefix=TILES
// RUN: tern-opt %s --tern-select-kernels="target=avx2 explain=true" -o /dev/null 2>&1 | FileCheck %s --check-prefix=EXPLAIN
// RUN: tern-opt %s --tern-select-kernels="target=avx512_vnni max-batch=1 explain=true" -o /dev/null 2>&1 | FileCheck %s --check-prefix=EXPLAIN1
// RUN: tern-opt %s --tern-select-kernels="target=avx512_vnni kernel=tl2 explain=true" -o /dev/null 2>&1 | FileCheck %s --check-prefix=FORCETL2

// On AVX2 the i2s ukernel (pmaddubsw) outruns the tl2 one (measured 43.7 vs
// 14.9 G/s per core at decode, 61 (the GEMM) vs 12-14 at prefill): its 20% more bytes
// do not make up for it, so i2s wins everything; tiles follow the shape.
// AVX2: module attributes {tern.cost_table = "built-in", tern.head = "f16", tern.kernel_sources = {{{.*}}blk.0.attn_q.weight = "built-in"{{.*}}}, tern.target = "avx2"}
// AVX2: kernel = #tern.kernel<i2s, avx2, tile_m = 64, tile_k = 512>, weight = #tern.weight<"blk.0.attn_q.weight"
// AVX2: kernel = #tern.kernel<i2s, avx2, tile_m = 64, tile_k = 512>, weight = #tern.weight<"blk.0.attn_k.weight"
// AVX2: kernel = #tern.kernel<i2s, avx2, tile_m = 64, tile_k = 512>, weight = #tern.weight<"blk.0.ffn_up.weight"
// AVX2: kernel = #tern.kernel<i2s, avx2, tile_m = 128, tile_k = 256>, weight = #tern.weight<"blk.0.ffn_down.weight"
// AVX2: kernel = #tern.kernel<f16, avx2,{{.*}}weight = #tern.weight<"output.weight"

// On VNNI there is no tl2 kernel with VNNI instructions (tl2 runs only as
// its scalar twin there). tl2v (1.67 bits, measured 62.9 G/s at decode
// against i2s's 71.1) reads 17% fewer bytes (decode is memory-bound), but has no
// GEMM: with prompts weighted as llama-bench's pp512 + tg128 (max-batch 512)
// i2s's AMX prefill (315 vs 79 G/s) wins; when decode alone decides
// (max-batch 1) tl2v does. tl2v does not tile K: tile_k is K (rounded up to 64).
// VNNI: kernel = #tern.kernel<i2s, avx512_vnni, tile_m = 128, tile_k = 512>, weight = #tern.weight<"blk.0.attn_q.weight"
// VNNI: kernel = #tern.kernel<i2s, avx512_vnni, tile_m = 32, tile_k = 512>, weight = #tern.weight<"blk.0.attn_k.weight"
// VNNI: kernel = #tern.kernel<i2s, avx512_vnni, tile_m = 128, tile_k = 512>, weight = #tern.weight<"blk.0.ffn_up.weight"
// VNNI: kernel = #tern.kernel<i2s, avx512_vnni, tile_m = 128, tile_k = 256>, weight = #tern.weight<"blk.0.ffn_down.weight"
// VNNI1: kernel = #tern.kernel<tl2v, avx512_vnni, tile_m = 16, tile_k = 2560>, weight = #tern.weight<"blk.0.attn_q.weight"
// VNNI1: kernel = #tern.kernel<tl2v, avx512_vnni, tile_m = 16, tile_k = 2560>, weight = #tern.weight<"blk.0.attn_k.weight"
// VNNI1: kernel = #tern.kernel<tl2v, avx512_vnni, tile_m = 16, tile_k = 2560>, weight = #tern.weight<"blk.0.ffn_up.weight"
// VNNI1: kernel = #tern.kernel<tl2v, avx512_vnni, tile_m = 16, tile_k = 6912>, weight = #tern.weight<"blk.0.ffn_down.weight"
// Forcing i2s gives the default choice.
// VNNI-I2S: kernel = #tern.kernel<i2s, avx512_vnni, tile_m = 128, tile_k = 512>, weight = #tern.weight<"blk.0.attn_q.weight"
// VNNI-I2S: kernel = #tern.kernel<i2s, avx512_vnni, tile_m = 32, tile_k = 512>, weight = #tern.weight<"blk.0.attn_k.weight"

// On NEON without dotprod, TL1 table lookups beat widening multiplies
// (estimated rates: no AArch64 CPU measured them).
// NEON: kernel = #tern.kernel<tl1, neon, tile_m = 128, tile_k = 512>, weight = #tern.weight<"blk.0.attn_q.weight"
// NEON: kernel = #tern.kernel<tl1, neon, tile_m = 64, tile_k = 512>, weight = #tern.weight<"blk.0.attn_k.weight"
// NEON: kernel = #tern.kernel<tl1, neon, tile_m = 128, tile_k = 512>, weight = #tern.weight<"blk.0.ffn_up.weight"
// NEON: kernel = #tern.kernel<tl1, neon, tile_m = 64, tile_k = 1024>, weight = #tern.weight<"blk.0.ffn_down.weight"

// On NEON with dotprod, sdot makes I2_S the cheapest.
// DOT: kernel = #tern.kernel<i2s, neon_dotprod, tile_m = 128, tile_k = 512>, weight = #tern.weight<"blk.0.attn_q.weight"
// DOT: kernel = #tern.kernel<i2s, neon_dotprod, tile_m = 64, tile_k = 512>, weight = #tern.weight<"blk.0.attn_k.weight"
// DOT: kernel = #tern.kernel<i2s, neon_dotprod, tile_m = 128, tile_k = 512>, weight = #tern.weight<"blk.0.ffn_up.weight"
// DOT: kernel = #tern.kernel<i2s, neon_dotprod, tile_m = 64, tile_k = 1024>, weight = #tern.weight<"blk.0.ffn_down.weight"

// On NEON with i8mm the i2s kernel is the smmla GEMM (prefill priced 1.1x the
// sdot GEMM's from the two kernels' instruction counts, docs/cost-model.md;
// decode and tl1 as neon_dotprod): i2s everywhere, the #tern.kernel ISA
// neon_i8mm (callee tern_uk_matmul_i2s_neon_i8mm). act-quant none: the
// scalar twins only (no NEON f32-activation kernel), estimated.
// I8MM: tern.target = "neon_i8mm"
// I8MM: kernel = #tern.kernel<i2s, neon_i8mm, tile_m = 128, tile_k = 512>, weight = #tern.weight<"blk.0.attn_q.weight"
// I8MM: kernel = #tern.kernel<i2s, neon_i8mm, tile_m = 64, tile_k = 512>, weight = #tern.weight<"blk.0.attn_k.weight"
// I8MM: kernel = #tern.kernel<i2s, neon_i8mm, tile_m = 128, tile_k = 512>, weight = #tern.weight<"blk.0.ffn_up.weight"
// I8MM: kernel = #tern.kernel<i2s, neon_i8mm, tile_m = 64, tile_k = 1024>, weight = #tern.weight<"blk.0.ffn_down.weight"
// I8MM: kernel = #tern.kernel<f16, neon_i8mm, tile_m = 64, tile_k = 512>, weight = #tern.weight<"output.weight"
// I8MM-EXPLAIN: remark: kernel for 'blk.0.attn_q.weight' [2560x2560] on neon_i8mm, act-quant token, max-batch 512: i2s tile_m=128 tile_k=512 (neon_i8mm kernel, estimated 8.6/33.3 G/s per core decode/prefill){{.*}}(built-in table: lowest score = decode + 4 x prefill per token); best other layout tl1 tile_m={{[0-9]+}} tile_k={{[0-9]+}} (neon_i8mm kernel, estimated 6.0/13.0 G/s per core decode/prefill)
// I8MM-NONE: remark: kernel for 'blk.0.attn_q.weight' [2560x2560] on neon_i8mm, act-quant none, max-batch 512: i2s tile_m=128 tile_k=512 (ref kernel, estimated 1.1/1.1 G/s per core decode/prefill)
// I8MM-NONE: kernel = #tern.kernel<i2s, neon_i8mm, tile_m = 128, tile_k = 512>, weight = #tern.weight<"blk.0.attn_q.weight"
// I8MM-TL1: kernel = #tern.kernel<tl1, neon_i8mm, tile_m = 128, tile_k = 512>, weight = #tern.weight<"blk.0.attn_q.weight"
// I8MM-TL1: kernel = #tern.kernel<tl1, neon_i8mm, tile_m = 64, tile_k = 512>, weight = #tern.weight<"blk.0.attn_k.weight"

// On the cuda targets (docs/cuda.md): i2s rows with one K tile per row
// (tile_k = K: a row's codes contiguous for the warp's dp4a loads).
// CUDA: kernel = #tern.kernel<i2s, cuda, tile_m = {{[0-9]+}}, tile_k = 2560>, weight = #tern.weight<"blk.0.attn_q.weight"
// CUDA: kernel = #tern.kernel<i2s, cuda, tile_m = {{[0-9]+}}, tile_k = 2560>, weight = #tern.weight<"blk.0.attn_k.weight"
// CUDA: kernel = #tern.kernel<i2s, cuda, tile_m = {{[0-9]+}}, tile_k = 2560>, weight = #tern.weight<"blk.0.ffn_up.weight"
// CUDA: kernel = #tern.kernel<i2s, cuda, tile_m = {{[0-9]+}}, tile_k = 6912>, weight = #tern.weight<"blk.0.ffn_down.weight"

// With f32 activations only i2s has fast kernels on x86 (FMA on ymm, on
// zmm for avx512_vnni); tl2's f32 kernel is scalar, so never chosen.
// NONE-AVX2-COUNT-4: kernel = #tern.kernel<i2s, avx2,
// NONE-AVX2: kernel = #tern.kernel<f16, avx2,
// NONE-VNNI-COUNT-4: kernel = #tern.kernel<i2s, avx512_vnni,
// NONE-VNNI: kernel = #tern.kernel<f16, avx512_vnni,
// NEON has no fast f32-activation kernel: the cheapest scalar twin (i2s)
// is chosen, and the remark says that it is the ref kernel.
// NONE-NEON: remark: kernel for 'blk.0.attn_q.weight' [2560x2560] on neon, act-quant none, max-batch 512: i2s tile_m=128 tile_k=512 (ref kernel, estimated 1.1/1.1 G/s per core decode/prefill)
// NONE-NEON: kernel = #tern.kernel<i2s, neon, tile_m = 128, tile_k = 512>, weight = #tern.weight<"blk.0.attn_q.weight"

// FORCE: kernel = #tern.kernel<i2s, avx2,{{.*}}weight = #tern.weight<"blk.0.attn_q.weight"
// FORCE: kernel = #tern.kernel<i2s, avx2,{{.*}}weight = #tern.weight<"blk.0.attn_k.weight"
// FORCE: kernel = #tern.kernel<i2s, avx2,{{.*}}weight = #tern.weight<"blk.0.ffn_up.weight"
// FORCE: kernel = #tern.kernel<i2s, avx2,{{.*}}weight = #tern.weight<"blk.0.ffn_down.weight"
// The LM head keeps its dense kernel whatever is forced.
// FORCE: kernel = #tern.kernel<f16, avx2,{{.*}}weight = #tern.weight<"output.weight"

// head=q8 gives the f16 LM head the q8 layout (half its bytes), says so,
// and records the head's layout as tern.head; the matrices are unchanged.
// HEADQ8: remark: kernel for 'output.weight' [{{[0-9]+}}x2560] on avx512_vnni: q8 (head=q8: int8 rows, f32 scale per row, from f16 weights), memory
// HEADQ8: tern.head = "q8"
// HEADQ8: kernel = #tern.kernel<i2s, avx512_vnni, tile_m = 128, tile_k = 512>, weight = #tern.weight<"blk.0.attn_q.weight"
// HEADQ8: kernel = #tern.kernel<q8, avx512_vnni,{{.*}}weight = #tern.weight<"output.weight"

// TILES: kernel = #tern.kernel<tq2, neon, tile_m = 16, tile_k = 512>
// TILES: kernel = #tern.kernel<tq2, neon, tile_m = 16, tile_k = 512>

// The remark names the kernel that runs, its measured rates, the estimate
// and the score rule, and the best other layout with its cost.
// EXPLAIN: remark: kernel for 'blk.0.attn_q.weight' [2560x2560] on avx2, act-quant token, max-batch 512: i2s tile_m=64 tile_k=512 (avx2 kernel, measured 43.7/60.6 G/s per core decode/prefill): decode {{[0-9.]+}} us (memory {{[0-9.]+}}, compute {{[0-9.]+}}), prefill {{[0-9.]+}} us/token, padding 0.0%, score {{[0-9.]+}} (built-in table: lowest score = decode + 4 x prefill per token); best other layout tl2v {{.*}}(avx2 kernel, measured 30.7/49.0 G/s per core decode/prefill){{.*}} (+{{[0-9]+}}%)
// EXPLAIN: remark: kernel for 'blk.0.attn_k.weight' [640x2560] on avx2, act-quant token, max-batch 512: i2s
// EXPLAIN: remark: kernel for 'blk.0.ffn_up.weight' [6912x2560] on avx2, act-quant token, max-batch 512: i2s
// EXPLAIN: remark: kernel for 'blk.0.ffn_down.weight' [2560x6912] on avx2, act-quant token, max-batch 512: i2s
// EXPLAIN: remark: kernel for 'output.weight' [128256x2560] on avx2: f16 (the only kernel for f16 weights), memory {{[0-9.]+}} us/token
// EXPLAIN1: remark: kernel for 'blk.0.ffn_up.weight' [6912x2560] on avx512_vnni, act-quant token, max-batch 1: tl2v tile_m=16 tile_k=2560 (avx512_vnni kernel, measured 62.9/76.7 G/s per core decode/prefill){{.*}}(built-in table: lowest score = decode); best other layout i2s {{.*}}(avx512_vnni kernel, measured 71.1/377.0 G/s
// FORCETL2: remark: kernel for 'blk.0.attn_q.weight' [2560x2560] on avx512_vnni, act-quant token, max-batch 512: tl2 {{.*}}(ref kernel, measured 0.3/1.6 G/s per core decode/prefill){{.*}} (forced; rates from built-in table); best other layout i2s {{.*}}(avx512_vnni kernel, {{.*}}% lower score)

func.func @b2b4t(%x2560: tensor<?x2560xf32>, %x6912: tensor<?x6912xf32>) {
  %attn_q = tern.bitlinear %x2560 {weight = #tern.weight<"blk.0.attn_q.weight", [2560, 2560], i2_s, offset = 0, bytes = 1638432>} : tensor<?x2560xf32> -> tensor<?x2560xf32>
  %attn_k = tern.bitlinear %x2560 {weight = #tern.weight<"blk.0.attn_k.weight", [640, 2560], i2_s, offset = 0, bytes = 409632>} : tensor<?x2560xf32> -> tensor<?x640xf32>
  %ffn_up = tern.bitlinear %x2560 {weight = #tern.weight<"blk.0.ffn_up.weight", [6912, 2560], i2_s, offset = 0, bytes = 4423712>} : tensor<?x2560xf32> -> tensor<?x6912xf32>
  %ffn_down = tern.bitlinear %x6912 {weight = #tern.weight<"blk.0.ffn_down.weight", [2560, 6912], i2_s, offset = 0, bytes = 4423712>} : tensor<?x6912xf32> -> tensor<?x2560xf32>
  %head = tern.lm_head %x2560 {weight = #tern.weight<"output.weight", [128256, 2560], f16, offset = 0, bytes = 656670720>} : tensor<?x2560xf32> -> tensor<?x128256xf32>
  return
}
