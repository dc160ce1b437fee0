// Tests that tern-select-kernels picks a layout and tiles for the BitNet
// b1.58 2B4T matrix shapes on every target, honours kernel=, explains its
// choices, and reports what it cannot do.
// RUN: tern-opt %s --tern-select-kernels=target=avx2 | FileCheck %s --check-prefix=AVX2
// RUN: tern-opt %s --tern-select-kernels=target=avx512_vnni | FileCheck %s --check-prefix=VNNI
// RUN: tern-opt %s --tern-select-kernels=target=neon | FileCheck %s --check-prefix=NEON
// RUN: tern-opt %s --tern-select-kernels=target=neon_dotprod | FileCheck %s --check-prefix=DOT
// RUN: tern-opt %s --tern-select-kernels=target=cuda | FileCheck %s --check-prefix=CUDA
// RUN: tern-opt %s --tern-select-kernels="target=avx2 kernel=i2s" | FileCheck %s --check-prefix=FORCE
// RUN: tern-opt %s --tern-select-kernels="target=neon kernel=tq2:16x512" | FileCheck %s --check-prefix=TILES
// RUN: tern-opt %s --tern-select-kernels="target=avx2 explain=true" -o /dev/null 2>&1 | FileCheck %s --check-prefix=EXPLAIN

// On AVX2 our i2s ukernel (pmaddubsw) outruns the tl2 one (measured about
// 2x on prefill, 1.3x on decode), so i2s wins; tiles follow the shape.
// AVX2: module attributes {tern.target = "avx2"}
// AVX2: kernel = #tern.kernel<i2s, avx2, tile_m = 64, tile_k = 512>, weight = #tern.weight<"blk.0.attn_q.weight"
// AVX2: kernel = #tern.kernel<i2s, avx2, tile_m = 64, tile_k = 512>, weight = #tern.weight<"blk.0.attn_k.weight"
// AVX2: kernel = #tern.kernel<i2s, avx2, tile_m = 64, tile_k = 512>, weight = #tern.weight<"blk.0.ffn_up.weight"
// AVX2: kernel = #tern.kernel<i2s, avx2, tile_m = 128, tile_k = 256>, weight = #tern.weight<"blk.0.ffn_down.weight"
// AVX2: kernel = #tern.kernel<f16, avx2,{{.*}}weight = #tern.weight<"output.weight"

// With VNNI, int8 throughput makes I2_S competitive: it wins the smaller matrices.
// VNNI: kernel = #tern.kernel<i2s, avx512_vnni, tile_m = 128, tile_k = 512>, weight = #tern.weight<"blk.0.attn_q.weight"
// VNNI: kernel = #tern.kernel<i2s, avx512_vnni, tile_m = 32, tile_k = 512>, weight = #tern.weight<"blk.0.attn_k.weight"
// VNNI: kernel = #tern.kernel<tl2, avx512_vnni, tile_m = 128, tile_k = 96>, weight = #tern.weight<"blk.0.ffn_up.weight"
// VNNI: kernel = #tern.kernel<tl2, avx512_vnni, tile_m = 128, tile_k = 768>, weight = #tern.weight<"blk.0.ffn_down.weight"

// On NEON without dotprod, TL1 table lookups beat widening multiplies.
// NEON: kernel = #tern.kernel<tl1, neon, tile_m = 128, tile_k = 512>, weight = #tern.weight<"blk.0.attn_q.weight"
// NEON: kernel = #tern.kernel<tl1, neon, tile_m = 64, tile_k = 512>, weight = #tern.weight<"blk.0.attn_k.weight"
// NEON: kernel = #tern.kernel<tl1, neon, tile_m = 128, tile_k = 512>, weight = #tern.weight<"blk.0.ffn_up.weight"
// NEON: kernel = #tern.kernel<tl1, neon, tile_m = 128, tile_k = 256>, weight = #tern.weight<"blk.0.ffn_down.weight"

// On NEON with dotprod, sdot makes I2_S the cheapest.
// DOT: kernel = #tern.kernel<i2s, neon_dotprod, tile_m = 128, tile_k = 512>, weight = #tern.weight<"blk.0.attn_q.weight"
// DOT: kernel = #tern.kernel<i2s, neon_dotprod, tile_m = 64, tile_k = 512>, weight = #tern.weight<"blk.0.attn_k.weight"
// DOT: kernel = #tern.kernel<i2s, neon_dotprod, tile_m = 128, tile_k = 512>, weight = #tern.weight<"blk.0.ffn_up.weight"
// DOT: kernel = #tern.kernel<i2s, neon_dotprod, tile_m = 128, tile_k = 256>, weight = #tern.weight<"blk.0.ffn_down.weight"

// On CUDA there are no lookup-table layouts.
// CUDA: kernel = #tern.kernel<{{i2s|tq2}}, cuda, tile_m = {{[0-9]+}}, tile_k = {{[0-9]+}}>, weight = #tern.weight<"blk.0.attn_q.weight"
// CUDA: kernel = #tern.kernel<{{i2s|tq2}}, cuda,{{.*}}weight = #tern.weight<"blk.0.attn_k.weight"
// CUDA: kernel = #tern.kernel<{{i2s|tq2}}, cuda,{{.*}}weight = #tern.weight<"blk.0.ffn_up.weight"
// CUDA: kernel = #tern.kernel<{{i2s|tq2}}, cuda,{{.*}}weight = #tern.weight<"blk.0.ffn_down.weight"

// FORCE: kernel = #tern.kernel<i2s, avx2,{{.*}}weight = #tern.weight<"blk.0.attn_q.weight"
// FORCE: kernel = #tern.kernel<i2s, avx2,{{.*}}weight = #tern.weight<"blk.0.attn_k.weight"
// FORCE: kernel = #tern.kernel<i2s, avx2,{{.*}}weight = #tern.weight<"blk.0.ffn_up.weight"
// FORCE: kernel = #tern.kernel<i2s, avx2,{{.*}}weight = #tern.weight<"blk.0.ffn_down.weight"
// The LM head keeps its dense kernel whatever is forced.
// FORCE: kernel = #tern.kernel<f16, avx2,{{.*}}weight = #tern.weight<"output.weight"

// TILES: kernel = #tern.kernel<tq2, neon, tile_m = 16, tile_k = 512>
// TILES: kernel = #tern.kernel<tq2, neon, tile_m = 16, tile_k = 512>

// EXPLAIN: remark: kernel for 'blk.0.attn_q.weight' [2560x2560] on avx2: i2s tile_m=64 tile_k=512: decode {{.*}} us (memory {{.*}}, compute {{.*}}), prefill {{.*}}; best other layout tq2
// EXPLAIN: remark: kernel for 'blk.0.attn_k.weight' [640x2560] on avx2: i2s
// EXPLAIN: remark: kernel for 'blk.0.ffn_up.weight' [6912x2560] on avx2: i2s
// EXPLAIN: remark: kernel for 'blk.0.ffn_down.weight' [2560x6912] on avx2: i2s
// EXPLAIN: remark: kernel for 'output.weight' [128256x2560] on avx2: f16

func.func @b2b4t(%x2560: tensor<?x2560xf32>, %x6912: tensor<?x6912xf32>) {
  %attn_q = tern.bitlinear %x2560 {weight = #tern.weight<"blk.0.attn_q.weight", [2560, 2560], i2_s, offset = 0, bytes = 1638432>} : tensor<?x2560xf32> -> tensor<?x2560xf32>
  %attn_k = tern.bitlinear %x2560 {weight = #tern.weight<"blk.0.attn_k.weight", [640, 2560], i2_s, offset = 0, bytes = 409632>} : tensor<?x2560xf32> -> tensor<?x640xf32>
  %ffn_up = tern.bitlinear %x2560 {weight = #tern.weight<"blk.0.ffn_up.weight", [6912, 2560], i2_s, offset = 0, bytes = 4423712>} : tensor<?x2560xf32> -> tensor<?x6912xf32>
  %ffn_down = tern.bitlinear %x6912 {weight = #tern.weight<"blk.0.ffn_down.weight", [2560, 6912], i2_s, offset = 0, bytes = 4423712>} : tensor<?x6912xf32> -> tensor<?x2560xf32>
  %head = tern.lm_head %x2560 {weight = #tern.weight<"output.weight", [128256, 2560], f16, offset = 0, bytes = 656670720>} : tensor<?x2560xf32> -> tensor<?x128256xf32>
  return
}
