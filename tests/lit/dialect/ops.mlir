// Tests that every tern op and attribute round-trips through the parser and
// printer (generic form too).
// RUN: tern-opt %s | FileCheck %s
// RUN: tern-opt %s | tern-opt | FileCheck %s
// RUN: tern-opt %s --mlir-print-op-generic | tern-opt | FileCheck %s

// CHECK-LABEL: func.func @graph
func.func @graph(%tokens: tensor<?xi32>, %pos: tensor<?xi32>) -> tensor<?x356xf32> {
  // CHECK: tern.embed %{{.*}} {weight = #tern.weight<"token_embd.weight", [356, 256], f16, offset = 0, bytes = 182272>} : tensor<?xi32> -> tensor<?x256xf32>
  %h = tern.embed %tokens {weight = #tern.weight<"token_embd.weight", [356, 256], f16, offset = 0, bytes = 182272>} : tensor<?xi32> -> tensor<?x256xf32>
  // CHECK: tern.rms_norm %{{.*}} {eps = 9.99999974E-6 : f32, weight = #tern.weight<"blk.0.attn_norm.weight", [256], f32, offset = 183296, bytes = 1024>} : tensor<?x256xf32>
  %n = tern.rms_norm %h {eps = 1.0e-5 : f32, weight = #tern.weight<"blk.0.attn_norm.weight", [256], f32, offset = 183296, bytes = 1024>} : tensor<?x256xf32>
  // CHECK: tern.bitlinear %{{.*}} {weight = #tern.weight<"blk.0.attn_q.weight", [256, 256], tq2_0, offset = 184320, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  %q = tern.bitlinear %n {weight = #tern.weight<"blk.0.attn_q.weight", [256, 256], tq2_0, offset = 184320, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  // CHECK: tern.bitlinear %{{.*}} {kernel = #tern.kernel<i2s, avx2, tile_m = 32, tile_k = 256>, packed = #tern.packed<i2s, offset = 0, bytes = 8224, checksum = 42>, weight = #tern.weight<"blk.0.attn_k.weight", [128, 256], i2_s, offset = 200736, bytes = 8224>}
  %k = tern.bitlinear %n {kernel = #tern.kernel<i2s, avx2, tile_m = 32, tile_k = 256>, packed = #tern.packed<i2s, offset = 0, bytes = 8224, checksum = 42>, weight = #tern.weight<"blk.0.attn_k.weight", [128, 256], i2_s, offset = 200736, bytes = 8224>} : tensor<?x256xf32> -> tensor<?x128xf32>
  // CHECK: tern.bitlinear %{{.*}} {weight = #tern.weight<"blk.0.attn_v.weight", [128, 256], tq1_0, offset = 208960, bytes = 6912>}
  %v = tern.bitlinear %n {weight = #tern.weight<"blk.0.attn_v.weight", [128, 256], tq1_0, offset = 208960, bytes = 6912>} : tensor<?x256xf32> -> tensor<?x128xf32>
  // CHECK: tern.rope %{{.*}}, %{{.*}} {freq_base = 5.000000e+05 : f32, head_dim = 64 : i64, n_heads = 4 : i64, rot_dim = 64 : i64} : tensor<?x256xf32>, tensor<?xi32>
  %qr = tern.rope %q, %pos {freq_base = 500000.0 : f32, head_dim = 64 : i64, n_heads = 4 : i64, rot_dim = 64 : i64} : tensor<?x256xf32>, tensor<?xi32>
  %kr = tern.rope %k, %pos {freq_base = 500000.0 : f32, head_dim = 64 : i64, n_heads = 2 : i64, rot_dim = 64 : i64} : tensor<?x128xf32>, tensor<?xi32>
  // CHECK: tern.attention %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {head_dim = 64 : i64, layer = 0 : i64, max_ctx = 4096 : i64, n_heads = 4 : i64, n_kv_heads = 2 : i64, scale = 1.250000e-01 : f32} : tensor<?x256xf32>, tensor<?x128xf32>, tensor<?x128xf32>, tensor<?xi32>
  %o = tern.attention %qr, %kr, %v, %pos {head_dim = 64 : i64, layer = 0 : i64, max_ctx = 4096 : i64, n_heads = 4 : i64, n_kv_heads = 2 : i64, scale = 0.125 : f32} : tensor<?x256xf32>, tensor<?x128xf32>, tensor<?x128xf32>, tensor<?xi32>
  // CHECK: tern.add %{{.*}}, %{{.*}} : tensor<?x256xf32>
  %h1 = tern.add %h, %o : tensor<?x256xf32>
  // CHECK: tern.bitlinear %{{.*}} {weight = #tern.weight<"blk.0.ffn_gate.weight", [512, 256], f16, offset = 0, bytes = 262144>}
  %g = tern.bitlinear %h1 {weight = #tern.weight<"blk.0.ffn_gate.weight", [512, 256], f16, offset = 0, bytes = 262144>} : tensor<?x256xf32> -> tensor<?x512xf32>
  %u = tern.bitlinear %h1 {weight = #tern.weight<"blk.0.ffn_up.weight", [512, 256], tl1, offset = 0, bytes = 32768>} : tensor<?x256xf32> -> tensor<?x512xf32>
  // CHECK: tern.silu_mul %{{.*}}, %{{.*}} : tensor<?x512xf32>
  %a = tern.silu_mul %g, %u : tensor<?x512xf32>
  // CHECK: tern.relu2_mul %{{.*}}, %{{.*}} : tensor<?x512xf32>
  %b = tern.relu2_mul %g, %a : tensor<?x512xf32>
  // CHECK: tern.bitlinear %{{.*}} {weight = #tern.weight<"blk.0.ffn_down.weight", [256, 512], tl2, offset = 0, bytes = 27000>}
  %d = tern.bitlinear %b {weight = #tern.weight<"blk.0.ffn_down.weight", [256, 512], tl2, offset = 0, bytes = 27000>} : tensor<?x512xf32> -> tensor<?x256xf32>
  // CHECK: tern.lm_head %{{.*}} {kernel = #tern.kernel<f16, avx512_vnni, tile_m = 16, tile_k = 256>, weight = #tern.weight<"token_embd.weight", [356, 256], f16, offset = 0, bytes = 182272>} : tensor<?x256xf32> -> tensor<?x356xf32>
  %l = tern.lm_head %d {kernel = #tern.kernel<f16, avx512_vnni, tile_m = 16, tile_k = 256>, weight = #tern.weight<"token_embd.weight", [356, 256], f16, offset = 0, bytes = 182272>} : tensor<?x256xf32> -> tensor<?x356xf32>
  return %l : tensor<?x356xf32>
}

// CHECK-LABEL: func.func @fused
func.func @fused(%x: tensor<?x256xf32>) -> (tensor<?x512xf32>, tensor<?x512xf32>, tensor<?x256xf32>) {
  // CHECK: %{{.*}}, %{{.*}} = tern.quantize %{{.*}} : tensor<?x256xf32> -> tensor<?x256xi8>, tensor<?xf32>
  %q0, %s0 = tern.quantize %x : tensor<?x256xf32> -> tensor<?x256xi8>, tensor<?xf32>
  // CHECK: tern.rms_norm_quantize %{{.*}} {eps = 9.99999974E-6 : f32, weight = #tern.weight<"blk.0.ffn_norm.weight", [256], f32, offset = 236032, bytes = 1024>} : tensor<?x256xf32> -> tensor<?x256xi8>, tensor<?xf32>
  %q, %s = tern.rms_norm_quantize %x {eps = 1.0e-5 : f32, weight = #tern.weight<"blk.0.ffn_norm.weight", [256], f32, offset = 236032, bytes = 1024>} : tensor<?x256xf32> -> tensor<?x256xi8>, tensor<?xf32>
  // CHECK: tern.ternary_matmul %{{.*}}, %{{.*}} {kernel = #tern.kernel<tl2, avx2, tile_m = 32, tile_k = 192>, weights = [#tern.weight<"blk.0.ffn_gate.weight", [512, 256], tq2_0, offset = 237056, bytes = 33792>, #tern.weight<"blk.0.ffn_up.weight", [512, 256], tq2_0, offset = 270848, bytes = 33792>]} : tensor<?x256xi8>, tensor<?xf32> -> tensor<?x512xf32>, tensor<?x512xf32>
  %g, %u = tern.ternary_matmul %q, %s {kernel = #tern.kernel<tl2, avx2, tile_m = 32, tile_k = 192>, weights = [#tern.weight<"blk.0.ffn_gate.weight", [512, 256], tq2_0, offset = 237056, bytes = 33792>, #tern.weight<"blk.0.ffn_up.weight", [512, 256], tq2_0, offset = 270848, bytes = 33792>]} : tensor<?x256xi8>, tensor<?xf32> -> tensor<?x512xf32>, tensor<?x512xf32>
  // CHECK: tern.ukernel_call "tern_uk_matmul_i2s_avx2"(%{{.*}}, %{{.*}}) {static_args = {k = 256 : i64, m = 256 : i64, packed_offset = 0 : i64}} : (tensor<?x256xi8>, tensor<?xf32>) -> tensor<?x256xf32>
  %y = tern.ukernel_call "tern_uk_matmul_i2s_avx2"(%q0, %s0) {static_args = {k = 256 : i64, m = 256 : i64, packed_offset = 0 : i64}} : (tensor<?x256xi8>, tensor<?xf32>) -> tensor<?x256xf32>
  return %g, %u, %y : tensor<?x512xf32>, tensor<?x512xf32>, tensor<?x256xf32>
}
