// tern-lower-to-kernels on the cuda targets (docs/cuda.md): every op calls
// its launcher tern_uk_<op>_cuda, with or without ref=1 (the CPU `_ref`
// ukernels cannot read device memory); an f32 KV cache has no GPU kernel.
// RUN: tern-opt %s --tern-lower-to-kernels | FileCheck %s
// RUN: tern-opt %s --tern-lower-to-kernels=ref | FileCheck %s --check-prefix=REF
// RUN: not tern-opt %s --tern-lower-to-kernels=kv-type=f32 2>&1 | FileCheck %s --check-prefix=KV32
// KV32: has no GPU kernel on the cuda targets (tern_uk_attention_gqa_f32; docs/cuda.md)

// CHECK-LABEL: func.func @attention_no_fast_ops
// CHECK: "tern_uk_attention_gqa_f16_cuda"({{.*}}) {static_args = {head_dim = 128
// REF-LABEL: func.func @attention_no_fast_ops
// REF: "tern_uk_attention_gqa_f16_cuda"
// REF-NOT: fallback_from
module attributes {tern.target = "cuda"} {
func.func @attention_no_fast_ops(%q: tensor<?x2560xf32>, %k: tensor<?x640xf32>, %v: tensor<?x640xf32>, %pos: tensor<?xi32>) -> tensor<?x2560xf32> {
  %a = tern.attention %q, %k, %v, %pos {head_dim = 128 : i64, layer = 0 : i64, max_ctx = 4096 : i64, n_heads = 20 : i64, n_kv_heads = 5 : i64, scale = 0.0883883461 : f32} : tensor<?x2560xf32>, tensor<?x640xf32>, tensor<?x640xf32>, tensor<?xi32>
  return %a : tensor<?x2560xf32>
}
}

