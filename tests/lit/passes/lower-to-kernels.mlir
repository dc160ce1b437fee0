// Tests that tern-lower-to-kernels turns every graph op into a ukernel call
// with static shapes, tiles and offsets, and refuses matrices without a
// kernel or packed weight.
// RUN: tern-opt %s -split-input-file -verify-diagnostics --tern-lower-to-kernels | FileCheck %s
// RUN: tern-opt %s -split-input-file -verify-diagnostics --tern-lower-to-kernels=ref | FileCheck %s --check-prefix=REF
// RUN: tern-opt %s -split-input-file -verify-diagnostics --tern-lower-to-kernels=kv-type=f32 | FileCheck %s --check-prefix=KV32
// RUN: not tern-opt %s -split-input-file --tern-lower-to-kernels=kv-type=bf16 2>&1 | FileCheck %s --check-prefix=BADKV
// The KV cache's type (kv-type=, default f16) picks the attention callee
// (tern_uk_attention_gqa_f16_* / _f32_*) and is recorded as tern.kv_type.
// CHECK: module attributes {{{.*}}tern.kv_type = "f16"
// KV32: module attributes {{{.*}}tern.kv_type = "f32"
// KV32-LABEL: func.func @attention_avx2
// KV32: "tern_uk_attention_gqa_f32_avx2"({{.*}}) {static_args = {head_dim = 128 : i64
// KV32-LABEL: func.func @attention_neon
// KV32: "tern_uk_attention_gqa_f32_neon"(
// BADKV: error: kv-type must be 'f16' or 'f32', not 'bf16'
// Callees are only variants listed in runtime/ukernels/variants.def (a
// missing one becomes `_ref`, recorded as fallback_from: see @fallback);
// ref=1 makes every callee `_ref`.
// REF-LABEL: func.func @layer
// REF: "tern_uk_matmul_tl2_ref"
// REF-NOT: fallback_from
// REF: "tern_uk_matmul_i2s_ref"
// REF: "tern_uk_lm_head_f16_ref"

// CHECK-LABEL: func.func @layer
// CHECK: tern.ukernel_call "tern_uk_embed_f16_ref"(%arg0) {static_args = {hidden = 256 : i64, vocab = 356 : i64, weight = "token_embd.weight", weight_bytes = 182272 : i64, weight_offset = 0 : i64}}
// CHECK: tern.ukernel_call "tern_uk_rms_norm_quantize_i8_ref"({{.*}}) {static_args = {eps = 9.99999974E-6 : f32, n = 256 : i64, weight = "blk.0.attn_norm.weight", weight_bytes = 1024 : i64, weight_offset = 183296 : i64}} : (tensor<?x256xf32>) -> (tensor<?x256xi8>, tensor<?xf32>)
// CHECK: tern.ukernel_call "tern_uk_matmul_tl2_{{(avx2|ref)}}"({{.*}}) {static_args = {{{(fallback_from = "tern_uk_matmul_tl2_avx2", )?}}k = 256 : i64, layout = "tl2", m = 512 : i64, m0 = 256 : i64, m1 = 128 : i64, m2 = 128 : i64, packed_bytes = 30000 : i64, packed_offset = 0 : i64, segments = 3 : i64, tile_k = 96 : i64, tile_m = 32 : i64, weight0 = "blk.0.attn_q.weight"
// CHECK: tern.ukernel_call "tern_uk_rope_neox_f32_ref"({{.*}}) {static_args = {freq_base = 5.000000e+05 : f32, head_dim = 64 : i64, n_heads = 4 : i64, rot_dim = 64 : i64}}
// CHECK: tern.ukernel_call "tern_uk_attention_gqa_f16_ref"({{.*}}) {static_args = {head_dim = 64 : i64, layer = 0 : i64, max_ctx = 4096 : i64, n_heads = 4 : i64, n_kv_heads = 2 : i64, scale = 1.250000e-01 : f32}}
// CHECK: tern.ukernel_call "tern_uk_quantize_i8_ref"({{.*}}) {static_args = {n = 256 : i64}}
// CHECK-NEXT: tern.ukernel_call "tern_uk_matmul_i2s_avx2"({{.*}}) {static_args = {k = 256 : i64, layout = "i2s", m = 256 : i64, m0 = 256 : i64, packed_bytes = 16388 : i64, packed_offset = 30016 : i64, segments = 1 : i64, tile_k = 256 : i64, tile_m = 32 : i64, weight0 = "blk.0.attn_output.weight"
// CHECK: tern.ukernel_call "tern_uk_add_f32_ref"({{.*}}) {static_args = {n = 256 : i64}}
// CHECK: tern.ukernel_call "tern_uk_silu_mul_f32_ref"({{.*}}) {static_args = {n = 256 : i64}}
// CHECK: tern.ukernel_call "tern_uk_relu2_mul_f32_ref"({{.*}}) {static_args = {n = 256 : i64}}
// CHECK: tern.ukernel_call "tern_uk_rms_norm_f32_ref"
// CHECK: tern.ukernel_call "tern_uk_quantize_i8_ref"
// CHECK: tern.ukernel_call "tern_uk_lm_head_f16_avx2"({{.*}}) {static_args = {hidden = 256 : i64, layout = "f16", packed_bytes = 182272 : i64, packed_offset = 46464 : i64, tile_k = 256 : i64, tile_m = 16 : i64, vocab = 356 : i64, weight = "token_embd.weight"
// CHECK-NOT: tern.{{(embed|rms_norm|bitlinear|rope|attention|add|lm_head|ternary_matmul|quantize) }}
func.func @layer(%tokens: tensor<?xi32>, %pos: tensor<?xi32>) -> tensor<?x356xf32> {
  %h = tern.embed %tokens {weight = #tern.weight<"token_embd.weight", [356, 256], f16, offset = 0, bytes = 182272>} : tensor<?xi32> -> tensor<?x256xf32>
  %q8, %s = tern.rms_norm_quantize %h {eps = 1.0e-5 : f32, weight = #tern.weight<"blk.0.attn_norm.weight", [256], f32, offset = 183296, bytes = 1024>} : tensor<?x256xf32> -> tensor<?x256xi8>, tensor<?xf32>
  %qkv:3 = tern.ternary_matmul %q8, %s {kernel = #tern.kernel<tl2, avx2, tile_m = 32, tile_k = 96>, packed = #tern.packed<tl2, offset = 0, bytes = 30000, checksum = 1>, weights = [#tern.weight<"blk.0.attn_q.weight", [256, 256], tq2_0, offset = 184320, bytes = 16896>, #tern.weight<"blk.0.attn_k.weight", [128, 256], tq2_0, offset = 201216, bytes = 8448>, #tern.weight<"blk.0.attn_v.weight", [128, 256], tq2_0, offset = 209664, bytes = 8448>]} : tensor<?x256xi8>, tensor<?xf32> -> tensor<?x256xf32>, tensor<?x128xf32>, tensor<?x128xf32>
  %qr = tern.rope %qkv#0, %pos {freq_base = 500000.0 : f32, head_dim = 64 : i64, n_heads = 4 : i64, rot_dim = 64 : i64} : tensor<?x256xf32>, tensor<?xi32>
  %a = tern.attention %qr, %qkv#1, %qkv#2, %pos {head_dim = 64 : i64, layer = 0 : i64, max_ctx = 4096 : i64, n_heads = 4 : i64, n_kv_heads = 2 : i64, scale = 0.125 : f32} : tensor<?x256xf32>, tensor<?x128xf32>, tensor<?x128xf32>, tensor<?xi32>
  %o = tern.bitlinear %a {kernel = #tern.kernel<i2s, avx2, tile_m = 32, tile_k = 256>, packed = #tern.packed<i2s, offset = 30016, bytes = 16388, checksum = 2>, weight = #tern.weight<"blk.0.attn_output.weight", [256, 256], tq2_0, offset = 219136, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  %r = tern.add %h, %o : tensor<?x256xf32>
  %g = tern.silu_mul %r, %o : tensor<?x256xf32>
  %g2 = tern.relu2_mul %g, %o : tensor<?x256xf32>
  %n = tern.rms_norm %g2 {eps = 1.0e-5 : f32, weight = #tern.weight<"output_norm.weight", [256], f32, offset = 182272, bytes = 1024>} : tensor<?x256xf32>
  %q2, %s2 = tern.quantize %n : tensor<?x256xf32> -> tensor<?x256xi8>, tensor<?xf32>
  %l = tern.lm_head %n {kernel = #tern.kernel<f16, avx2, tile_m = 16, tile_k = 256>, packed = #tern.packed<f16, offset = 46464, bytes = 182272, checksum = 3>, weight = #tern.weight<"token_embd.weight", [356, 256], f16, offset = 0, bytes = 182272>} : tensor<?x256xf32> -> tensor<?x356xf32>
  return %l : tensor<?x356xf32>
}

// -----

func.func @nokernel(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op cannot be lowered: no kernel chosen (run tern-select-kernels)}}
  %y = tern.bitlinear %x {weight = #tern.weight<"blk.0.attn_q.weight", [256, 256], tq2_0, offset = 184320, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return
}

// -----

func.func @unpacked(%x: tensor<?x256xf32>) {
  // expected-error @+1 {{'tern.bitlinear' op cannot be lowered: weight not packed (run tern-pack-weights)}}
  %y = tern.bitlinear %x {kernel = #tern.kernel<i2s, avx2, tile_m = 32, tile_k = 256>, weight = #tern.weight<"blk.0.attn_q.weight", [256, 256], tq2_0, offset = 184320, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return
}

// -----

// No CPU ukernel is ever listed for the cuda ISA: the matmul falls back to
// `_ref` and says what it wanted.
// CHECK-LABEL: func.func @fallback
// CHECK: "tern_uk_quantize_i8_ref"
// CHECK: "tern_uk_matmul_tq1_ref"({{.*}}) {static_args = {fallback_from = "tern_uk_matmul_tq1_cuda", k = 256 : i64, layout = "tq1"
func.func @fallback(%x: tensor<?x256xf32>) -> tensor<?x256xf32> {
  %y = tern.bitlinear %x {kernel = #tern.kernel<tq1, cuda, tile_m = 32, tile_k = 256>, packed = #tern.packed<tq1, offset = 0, bytes = 13824, checksum = 2>, weight = #tern.weight<"blk.0.attn_q.weight", [256, 256], tq1_0, offset = 0, bytes = 13824>} : tensor<?x256xf32> -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}

// -----

// The non-matmul ops call the variant of the module's target ISA (tern.target,
// set by tern-select-kernels; without it, `_ref`): every TERN_UK_OPS_VARIANT
// ISA of variants.def has one, attention included. ref=1: all `_ref`.
// CHECK-LABEL: func.func @ops_on_target
// CHECK: "tern_uk_embed_f32_avx512_vnni"(%arg0) {static_args = {hidden = 256 : i64, vocab = 16
// CHECK: "tern_uk_rms_norm_quantize_i8_avx512_vnni"
// CHECK: "tern_uk_quantize_i8_avx512_vnni"
// CHECK-NEXT: "tern_uk_matmul_i2s_avx512_vnni"
// CHECK: "tern_uk_rope_neox_f32_avx512_vnni"
// CHECK: "tern_uk_attention_gqa_f16_avx512_vnni"({{.*}}) {static_args = {head_dim = 64 : i64, layer = 0 : i64, max_ctx = 4096 : i64, n_heads = 4 : i64, n_kv_heads = 4 : i64, scale = 1.250000e-01 : f32}}
// CHECK: "tern_uk_add_f32_avx512_vnni"
// CHECK: "tern_uk_silu_mul_f32_avx512_vnni"
// CHECK: "tern_uk_relu2_mul_f32_avx512_vnni"
// CHECK: "tern_uk_rms_norm_f32_avx512_vnni"
// CHECK: "tern_uk_quantize_i8_avx512_vnni"
// CHECK-NOT: fallback_from
// CHECK-NOT: _ref"
// CHECK: return
// REF-LABEL: func.func @ops_on_target
// REF-NOT: _avx512_vnni"
// REF: "tern_uk_embed_f32_ref"
// REF: "tern_uk_rms_norm_quantize_i8_ref"
// REF: "tern_uk_quantize_i8_ref"
// REF-NEXT: "tern_uk_matmul_i2s_ref"
// REF: "tern_uk_rope_neox_f32_ref"
// REF: "tern_uk_attention_gqa_f16_ref"
// REF: "tern_uk_add_f32_ref"
// REF: "tern_uk_silu_mul_f32_ref"
// REF: "tern_uk_relu2_mul_f32_ref"
// REF: "tern_uk_rms_norm_f32_ref"
// REF-NOT: _avx512_vnni"
// REF: return
module attributes {tern.target = "avx512_vnni"} {
func.func @ops_on_target(%tokens: tensor<?xi32>, %pos: tensor<?xi32>) -> tensor<?x256xi8> {
  %h = tern.embed %tokens {weight = #tern.weight<"token_embd.weight", [16, 256], f32, offset = 0, bytes = 16384>} : tensor<?xi32> -> tensor<?x256xf32>
  %q8, %s = tern.rms_norm_quantize %h {eps = 1.0e-5 : f32, weight = #tern.weight<"blk.0.attn_norm.weight", [256], f32, offset = 16384, bytes = 1024>} : tensor<?x256xf32> -> tensor<?x256xi8>, tensor<?xf32>
  %o = tern.bitlinear %h {kernel = #tern.kernel<i2s, avx512_vnni, tile_m = 32, tile_k = 256>, packed = #tern.packed<i2s, offset = 0, bytes = 16388, checksum = 2>, weight = #tern.weight<"blk.0.attn_output.weight", [256, 256], tq2_0, offset = 17408, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  %qr = tern.rope %o, %pos {freq_base = 500000.0 : f32, head_dim = 64 : i64, n_heads = 4 : i64, rot_dim = 64 : i64} : tensor<?x256xf32>, tensor<?xi32>
  %a = tern.attention %qr, %o, %o, %pos {head_dim = 64 : i64, layer = 0 : i64, max_ctx = 4096 : i64, n_heads = 4 : i64, n_kv_heads = 4 : i64, scale = 0.125 : f32} : tensor<?x256xf32>, tensor<?x256xf32>, tensor<?x256xf32>, tensor<?xi32>
  %r = tern.add %h, %a : tensor<?x256xf32>
  %g = tern.silu_mul %r, %o : tensor<?x256xf32>
  %g2 = tern.relu2_mul %g, %o : tensor<?x256xf32>
  %n = tern.rms_norm %g2 {eps = 1.0e-5 : f32, weight = #tern.weight<"output_norm.weight", [256], f32, offset = 16384, bytes = 1024>} : tensor<?x256xf32>
  %q2, %s2 = tern.quantize %n : tensor<?x256xf32> -> tensor<?x256xi8>, tensor<?xf32>
  return %q2 : tensor<?x256xi8>
}
}

// -----

// The cuda targets call their launchers (docs/cuda.md), no `_ref` fallback.
// CHECK-LABEL: func.func @ops_no_variant
// CHECK: "tern_uk_add_f32_cuda"({{.*}}) {static_args = {n = 256 : i64}}
module attributes {tern.target = "cuda"} {
func.func @ops_no_variant(%x: tensor<?x256xf32>) -> tensor<?x256xf32> {
  %r = tern.add %x, %x : tensor<?x256xf32>
  return %r : tensor<?x256xf32>
}
}

// -----

// Attention on every target: the ISA's own variant (GQA 20/5, head_dim 128,
// the 2B4T shape), `_ref` with ref=1; an ISA without fast ops falls back to
// `_ref` and records what it wanted.
// CHECK-LABEL: func.func @attention_avx2
// CHECK: "tern_uk_attention_gqa_f16_avx2"({{.*}}) {static_args = {head_dim = 128 : i64, layer = 3 : i64, max_ctx = 4096 : i64, n_heads = 20 : i64, n_kv_heads = 5 : i64, scale = 0.0883883461 : f32}}
// REF-LABEL: func.func @attention_avx2
// REF: "tern_uk_attention_gqa_f16_ref"
module attributes {tern.target = "avx2"} {
func.func @attention_avx2(%q: tensor<?x2560xf32>, %k: tensor<?x640xf32>, %v: tensor<?x640xf32>, %pos: tensor<?xi32>) -> tensor<?x2560xf32> {
  %a = tern.attention %q, %k, %v, %pos {head_dim = 128 : i64, layer = 3 : i64, max_ctx = 4096 : i64, n_heads = 20 : i64, n_kv_heads = 5 : i64, scale = 0.0883883461 : f32} : tensor<?x2560xf32>, tensor<?x640xf32>, tensor<?x640xf32>, tensor<?xi32>
  return %a : tensor<?x2560xf32>
}
}

// -----

// CHECK-LABEL: func.func @attention_neon
// CHECK: "tern_uk_attention_gqa_f16_neon"(
// CHECK-NOT: fallback_from
// REF-LABEL: func.func @attention_neon
// REF: "tern_uk_attention_gqa_f16_ref"
module attributes {tern.target = "neon"} {
func.func @attention_neon(%q: tensor<?x2560xf32>, %k: tensor<?x640xf32>, %v: tensor<?x640xf32>, %pos: tensor<?xi32>) -> tensor<?x2560xf32> {
  %a = tern.attention %q, %k, %v, %pos {head_dim = 128 : i64, layer = 0 : i64, max_ctx = 4096 : i64, n_heads = 20 : i64, n_kv_heads = 5 : i64, scale = 0.0883883461 : f32} : tensor<?x2560xf32>, tensor<?x640xf32>, tensor<?x640xf32>, tensor<?xi32>
  return %a : tensor<?x2560xf32>
}
}

// -----

// CHECK-LABEL: func.func @attention_neon_dotprod
// CHECK: "tern_uk_attention_gqa_f16_neon_dotprod"(
// CHECK-NOT: fallback_from
// REF-LABEL: func.func @attention_neon_dotprod
// REF: "tern_uk_attention_gqa_f16_ref"
module attributes {tern.target = "neon_dotprod"} {
func.func @attention_neon_dotprod(%q: tensor<?x2560xf32>, %k: tensor<?x640xf32>, %v: tensor<?x640xf32>, %pos: tensor<?xi32>) -> tensor<?x2560xf32> {
  %a = tern.attention %q, %k, %v, %pos {head_dim = 128 : i64, layer = 0 : i64, max_ctx = 4096 : i64, n_heads = 20 : i64, n_kv_heads = 5 : i64, scale = 0.0883883461 : f32} : tensor<?x2560xf32>, tensor<?x640xf32>, tensor<?x640xf32>, tensor<?xi32>
  return %a : tensor<?x2560xf32>
}
}

// -----

// neon_i8mm (TERN_UK_OPS_FROM in variants.def): its matmuls are its own
// (i2s: the smmla GEMM, tl1), its other ops and LM heads neon_dotprod's,
// with no fallback recorded.
// CHECK-LABEL: func.func @ops_neon_i8mm
// CHECK: "tern_uk_embed_f32_neon_dotprod"
// CHECK: "tern_uk_quantize_i8_neon_dotprod"
// CHECK-NEXT: "tern_uk_matmul_i2s_neon_i8mm"
// CHECK: "tern_uk_quantize_i8_neon_dotprod"
// CHECK-NEXT: "tern_uk_matmul_tl1_neon_i8mm"
// CHECK: "tern_uk_attention_gqa_f16_neon_dotprod"
// CHECK: "tern_uk_lm_head_f16_neon_dotprod"
// CHECK-NOT: fallback_from
// CHECK: return
// KV32-LABEL: func.func @ops_neon_i8mm
// KV32: "tern_uk_attention_gqa_f32_neon_dotprod"
// REF-LABEL: func.func @ops_neon_i8mm
// REF-NOT: _neon_
// REF: return
module attributes {tern.target = "neon_i8mm"} {
func.func @ops_neon_i8mm(%tokens: tensor<?xi32>, %pos: tensor<?xi32>) -> tensor<?x16xf32> {
  %h = tern.embed %tokens {weight = #tern.weight<"token_embd.weight", [16, 256], f32, offset = 0, bytes = 16384>} : tensor<?xi32> -> tensor<?x256xf32>
  %o = tern.bitlinear %h {kernel = #tern.kernel<i2s, neon_i8mm, tile_m = 32, tile_k = 256>, packed = #tern.packed<i2s, offset = 0, bytes = 16388, checksum = 2>, weight = #tern.weight<"blk.0.attn_output.weight", [256, 256], tq2_0, offset = 17408, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  %t = tern.bitlinear %o {kernel = #tern.kernel<tl1, neon_i8mm, tile_m = 32, tile_k = 256>, packed = #tern.packed<tl1, offset = 0, bytes = 16388, checksum = 2>, weight = #tern.weight<"blk.0.ffn_down.weight", [256, 256], tq2_0, offset = 17408, bytes = 16896>} : tensor<?x256xf32> -> tensor<?x256xf32>
  %a = tern.attention %t, %o, %o, %pos {head_dim = 64 : i64, layer = 0 : i64, max_ctx = 4096 : i64, n_heads = 4 : i64, n_kv_heads = 4 : i64, scale = 0.125 : f32} : tensor<?x256xf32>, tensor<?x256xf32>, tensor<?x256xf32>, tensor<?xi32>
  %l = tern.lm_head %a {kernel = #tern.kernel<f16, neon_i8mm, tile_m = 16, tile_k = 256>, packed = #tern.packed<f16, offset = 46464, bytes = 8192, checksum = 3>, weight = #tern.weight<"output.weight", [16, 256], f16, offset = 0, bytes = 8192>} : tensor<?x256xf32> -> tensor<?x16xf32>
  return %l : tensor<?x16xf32>
}
}

// -----

// A q8 head (ternc --head q8) calls the q8 head variant of its ISA.
// CHECK-LABEL: func.func @q8_head
// CHECK: tern.ukernel_call "tern_uk_lm_head_q8_avx512_vnni"({{.*}}) {static_args = {hidden = 256 : i64, layout = "q8", packed_bytes = 92560 : i64, packed_offset = 0 : i64, tile_k = 256 : i64, tile_m = 64 : i64, vocab = 356 : i64, weight = "output.weight"
// REF-LABEL: func.func @q8_head
// REF: "tern_uk_lm_head_q8_ref"
func.func @q8_head(%x: tensor<?x256xf32>) -> tensor<?x356xf32> {
  %l = tern.lm_head %x {kernel = #tern.kernel<q8, avx512_vnni, tile_m = 64, tile_k = 256>, packed = #tern.packed<q8, offset = 0, bytes = 92560, checksum = 3>, weight = #tern.weight<"output.weight", [356, 256], f16, offset = 0, bytes = 182272>} : tensor<?x256xf32> -> tensor<?x356xf32>
  return %l : tensor<?x356xf32>
}
