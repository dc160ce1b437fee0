// Tests tern-lower-to-llvm on a small kernel-level module: the ABI v2 entry
// points (tern_model_forward(ctx, batch): the batch's fields at their
// tern_abi.h offsets, checked first), argument order of each ukernel,
// constant weight offsets (packed blob first, then the raw tensors the code
// reads, 64-byte aligned), scratch slots (n * prefix; x, q, qs, y, z live
// together, the final norm reuses x's slot, then one gather slot for the
// output rows: 3 x 1024 + 256 + 64 + 1024 bytes per token), the final norm
// and the lm_head on the n_out gathered output rows only, the descriptor.
// RUN: tern-opt %s -split-input-file -verify-diagnostics --tern-lower-to-llvm=max-batch=64 | FileCheck %s

// CHECK: module attributes {{{.*}}tern.level = "llvm", tern.max_batch = 64 : i64
// CHECK-SAME: tern.scratch_fixed = 0 : i64, tern.scratch_per_token = 4416 : i64
// CHECK-SAME: tern.weights = [{bytes = 8192 : i64, name = "token_embd.weight", offset = 4032 : i64, source_offset = 1000 : i64}, {bytes = 1024 : i64, name = "output_norm.weight", offset = 12224 : i64, source_offset = 9192 : i64}]
// CHECK-SAME: tern.weights_bytes = 13248 : i64
// CHECK-DAG: llvm.func @tern_uk_embed_f16_ref(!llvm.ptr, i64, !llvm.ptr, !llvm.ptr, !llvm.ptr, i64, i64)
// CHECK-DAG: llvm.func @tern_uk_matmul_i2s_ref(!llvm.ptr, i64, !llvm.ptr, !llvm.ptr, !llvm.ptr, i64, i64, i64, i64, !llvm.ptr, i64, !llvm.ptr, i64, !llvm.ptr, i64)
// CHECK-LABEL: llvm.func @tern_model_forward(%arg0: !llvm.ptr, %arg1: !llvm.ptr) -> i32
// The batch: n (0), tokens (8), positions (16), seq (24), n_out (32),
// out_rows (40), logits (48); ctx->kv.n_seq (48).
// CHECK: %[[N:.*]] = llvm.load %{{.*}} : !llvm.ptr -> i64
// CHECK: llvm.mlir.constant(8 : i64)
// CHECK: %[[TOK:.*]] = llvm.load %{{.*}} : !llvm.ptr -> !llvm.ptr
// CHECK: llvm.mlir.constant(16 : i64)
// CHECK: %[[POS:.*]] = llvm.load %{{.*}} : !llvm.ptr -> !llvm.ptr
// CHECK: llvm.mlir.constant(24 : i64)
// CHECK: %[[SEQ:.*]] = llvm.load %{{.*}} : !llvm.ptr -> !llvm.ptr
// CHECK: llvm.mlir.constant(32 : i64)
// CHECK: %[[NOUT:.*]] = llvm.load %{{.*}} : !llvm.ptr -> i64
// CHECK: llvm.mlir.constant(40 : i64)
// CHECK: %[[ROWS:.*]] = llvm.load %{{.*}} : !llvm.ptr -> !llvm.ptr
// CHECK: llvm.mlir.constant(48 : i64)
// CHECK: %[[LOGITS:.*]] = llvm.load %{{.*}} : !llvm.ptr -> !llvm.ptr
// CHECK: llvm.getelementptr %arg0[%{{.*}}]
// CHECK: %[[NSEQ:.*]] = llvm.load %{{.*}} : !llvm.ptr -> i64
// CHECK: llvm.icmp "sle" %[[N]]
// CHECK: llvm.icmp "sle" %[[NOUT]], %[[N]]
// Every token: seq < n_seq and position < max_ctx (128).
// CHECK: llvm.getelementptr %[[SEQ]]
// CHECK: llvm.icmp "uge" %{{.*}}, %[[NSEQ]]
// CHECK: llvm.mlir.constant(128 : i64)
// CHECK: llvm.getelementptr %[[POS]]
// CHECK: llvm.icmp "uge"
// Every output row < n.
// CHECK: llvm.getelementptr %[[ROWS]]
// CHECK: llvm.icmp "uge" %{{.*}}, %[[N]]
// CHECK: llvm.mlir.constant(4032 : i64)
// CHECK: llvm.call @tern_uk_embed_f16_ref(%arg0, %[[N]], %[[TOK]]
// CHECK: llvm.call @tern_uk_rms_norm_quantize_i8_ref(%arg0, %[[N]]
// CHECK: llvm.call @tern_uk_matmul_i2s_ref(%arg0, %[[N]]
// CHECK: llvm.call @tern_uk_add_f32_ref
// The head runs only when n_out > 0: gather rows out_rows[j] into the slot
// at n * 3392, then the final norm and the head on n_out rows. In a parallel
// region (ABI 4: ctx->nthreads, byte 100, > 1) each thread gathers its
// slice of the rows (ctx->tid, byte 96), then waits at ctx->barrier (byte
// 112, its argument at byte 104) before the head reads them.
// CHECK: llvm.mlir.constant(100 : i64)
// CHECK: llvm.mlir.constant(96 : i64)
// CHECK: llvm.icmp "sgt"
// CHECK: llvm.sdiv
// CHECK: llvm.sdiv
// CHECK: llvm.icmp "sgt" %[[NOUT]]
// CHECK: llvm.mlir.constant(1024 : i64)
// CHECK: llvm.getelementptr %[[ROWS]]
// CHECK: "llvm.intr.memcpy"
// CHECK: llvm.mlir.constant(112 : i64)
// CHECK: %[[BAR:.*]] = llvm.load %{{.*}} : !llvm.ptr -> !llvm.ptr
// CHECK: llvm.mlir.constant(104 : i64)
// CHECK: llvm.call %[[BAR]](%{{.*}}, %{{.*}}) : !llvm.ptr, (!llvm.ptr, i32) -> ()
// CHECK: llvm.call @tern_uk_rms_norm_f32_ref(%arg0, %[[NOUT]], %{{.*}}
// CHECK: llvm.call @tern_uk_lm_head_f16_ref(%arg0, %[[NOUT]], %{{.*}}, %{{.*}}, %[[LOGITS]]
// CHECK: llvm.return
// CHECK: llvm.mlir.global internal constant @tern_model_kernels("[{\22callee\22:\22tern_uk_embed_f16_ref\22
// CHECK: llvm.mlir.global internal constant @tern_model_desc()
// CHECK: llvm.mlir.constant(5 : i32)
// CHECK: llvm.func @tern_model_describe() -> !llvm.ptr
// CHECK-NOT: func.func

module attributes {tern.data_offset = 1000 : i64, tern.packed_bytes = 4000 : i64, tern.act_quant = "token",
                   tern.hparams = {context = 128 : i64, ffn = 512 : i64, head_dim = 64 : i64, heads = 4 : i64, hidden = 256 : i64, kv_heads = 2 : i64, layers = 1 : i64, vocab = 16 : i64}} {
  func.func @forward(%tok: tensor<?xi32>, %pos: tensor<?xi32>) -> tensor<?x16xf32> {
    %x = tern.ukernel_call "tern_uk_embed_f16_ref"(%tok) {static_args = {hidden = 256 : i64, vocab = 16 : i64, weight = "token_embd.weight", weight_bytes = 8192 : i64, weight_offset = 0 : i64}} : (tensor<?xi32>) -> tensor<?x256xf32>
    %q:2 = tern.ukernel_call "tern_uk_rms_norm_quantize_i8_ref"(%x) {static_args = {eps = 1.0e-5 : f32, n = 256 : i64, weight = "output_norm.weight", weight_bytes = 1024 : i64, weight_offset = 8192 : i64}} : (tensor<?x256xf32>) -> (tensor<?x256xi8>, tensor<?xf32>)
    %y = tern.ukernel_call "tern_uk_matmul_i2s_ref"(%q#0, %q#1) {static_args = {k = 256 : i64, layout = "i2s", m = 256 : i64, m0 = 256 : i64, packed_bytes = 4000 : i64, packed_offset = 0 : i64, segments = 1 : i64, tile_k = 256 : i64, tile_m = 32 : i64, weight0 = "w"}} : (tensor<?x256xi8>, tensor<?xf32>) -> tensor<?x256xf32>
    %z = tern.ukernel_call "tern_uk_add_f32_ref"(%x, %y) {static_args = {n = 256 : i64}} : (tensor<?x256xf32>, tensor<?x256xf32>) -> tensor<?x256xf32>
    %n = tern.ukernel_call "tern_uk_rms_norm_f32_ref"(%z) {static_args = {eps = 1.0e-5 : f32, n = 256 : i64, weight = "output_norm.weight", weight_bytes = 1024 : i64, weight_offset = 8192 : i64}} : (tensor<?x256xf32>) -> tensor<?x256xf32>
    %l = tern.ukernel_call "tern_uk_lm_head_f16_ref"(%n) {static_args = {hidden = 256 : i64, layout = "f16", packed_bytes = 8192 : i64, packed_offset = 0 : i64, tile_k = 256 : i64, tile_m = 16 : i64, vocab = 16 : i64}} : (tensor<?x256xf32>) -> tensor<?x16xf32>
    return %l : tensor<?x16xf32>
  }
}

// -----

// expected-error @+1 {{tern-lower-to-llvm expects one single-block func @forward}}
module {
}

// -----

module {
  func.func @forward(%tok: tensor<?xi32>, %pos: tensor<?xi32>) -> tensor<?x16xf32> {
    // expected-error @+1 {{calls 'tern_uk_frobnicate_ref', which is no known ukernel}}
    %x = tern.ukernel_call "tern_uk_frobnicate_ref"(%tok) {static_args = {}} : (tensor<?xi32>) -> tensor<?x16xf32>
    return %x : tensor<?x16xf32>
  }
}

// -----

module {
  // expected-error @+1 {{@forward must return the result of an lm_head ukernel}}
  func.func @forward(%tok: tensor<?xi32>, %pos: tensor<?xi32>) -> tensor<?x256xf32> {
    %x = tern.ukernel_call "tern_uk_embed_f16_ref"(%tok) {static_args = {hidden = 256 : i64, vocab = 16 : i64, weight = "token_embd.weight", weight_bytes = 8192 : i64, weight_offset = 0 : i64}} : (tensor<?xi32>) -> tensor<?x256xf32>
    return %x : tensor<?x256xf32>
  }
}

// -----

// A tied f16 head is packed as the GGUF's bytes: the embedding reads them
// there (offset 128 in the blob) instead of a second copy.
// CHECK-LABEL: module attributes
// CHECK-SAME: tern.weights = [], tern.weights_bytes = 8320 : i64
// CHECK: llvm.mlir.constant(128 : i64)
// CHECK-NEXT: llvm.getelementptr
// CHECK: llvm.call @tern_uk_embed_f16_ref
module attributes {tern.data_offset = 1000 : i64, tern.packed_bytes = 8320 : i64,
                   tern.hparams = {context = 100 : i64, hidden = 256 : i64, vocab = 16 : i64}} {
  func.func @forward(%tok: tensor<?xi32>, %pos: tensor<?xi32>) -> tensor<?x16xf32> {
    %x = tern.ukernel_call "tern_uk_embed_f16_ref"(%tok) {static_args = {hidden = 256 : i64, vocab = 16 : i64, weight = "token_embd.weight", weight_bytes = 8192 : i64, weight_offset = 0 : i64}} : (tensor<?xi32>) -> tensor<?x256xf32>
    %l = tern.ukernel_call "tern_uk_lm_head_f16_ref"(%x) {static_args = {hidden = 256 : i64, layout = "f16", packed_bytes = 8192 : i64, packed_offset = 128 : i64, tile_k = 256 : i64, tile_m = 16 : i64, vocab = 16 : i64, weight = "token_embd.weight", weight_bytes = 8192 : i64, weight_offset = 0 : i64}} : (tensor<?x256xf32>) -> tensor<?x16xf32>
    return %l : tensor<?x16xf32>
  }
}

// -----

// An f32 token_embd (untied f16 head) lowers to tern_uk_embed_f32_ref with
// the embedding's signature, reading the raw f32 table.
// CHECK-LABEL: module attributes
// CHECK-SAME: tern.weights = [{bytes = 16384 : i64, name = "token_embd.weight"
// CHECK-DAG: llvm.func @tern_uk_embed_f32_ref(!llvm.ptr, i64, !llvm.ptr, !llvm.ptr, !llvm.ptr, i64, i64)
// CHECK: llvm.mlir.constant(8 : i64)
// CHECK-NEXT: llvm.getelementptr %arg1
// CHECK-NEXT: %[[TOK:.*]] = llvm.load
// CHECK: llvm.call @tern_uk_embed_f32_ref(%arg0, %{{.*}}, %[[TOK]]
module attributes {tern.data_offset = 1000 : i64, tern.packed_bytes = 8192 : i64,
                   tern.hparams = {context = 100 : i64, hidden = 256 : i64, vocab = 16 : i64}} {
  func.func @forward(%tok: tensor<?xi32>, %pos: tensor<?xi32>) -> tensor<?x16xf32> {
    %x = tern.ukernel_call "tern_uk_embed_f32_ref"(%tok) {static_args = {hidden = 256 : i64, vocab = 16 : i64, weight = "token_embd.weight", weight_bytes = 16384 : i64, weight_offset = 0 : i64}} : (tensor<?xi32>) -> tensor<?x256xf32>
    %l = tern.ukernel_call "tern_uk_lm_head_f16_ref"(%x) {static_args = {hidden = 256 : i64, layout = "f16", packed_bytes = 8192 : i64, packed_offset = 0 : i64, tile_k = 256 : i64, tile_m = 16 : i64, vocab = 16 : i64, weight = "output.weight", weight_bytes = 8192 : i64, weight_offset = 16384 : i64}} : (tensor<?x256xf32>) -> tensor<?x16xf32>
    return %l : tensor<?x16xf32>
  }
}

// -----

// Tests that attention (f32 and f16 KV cache) gets the batch's per-token sequence ids after the
// positions (ABI v2), and that a head without a final norm gathers its own
// input rows.
// CHECK-LABEL: module attributes
// CHECK-DAG: llvm.func @tern_uk_attention_gqa_f32_ref(!llvm.ptr, i64, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, i64, i64, i64, i64, f32)
// CHECK-LABEL: llvm.func @tern_model_forward
// CHECK: llvm.mlir.constant(16 : i64)
// CHECK: %[[POS:.*]] = llvm.load %{{.*}} : !llvm.ptr -> !llvm.ptr
// CHECK: llvm.mlir.constant(24 : i64)
// CHECK: %[[SEQ:.*]] = llvm.load %{{.*}} : !llvm.ptr -> !llvm.ptr
// CHECK: llvm.mlir.constant(32 : i64)
// CHECK: %[[NOUT:.*]] = llvm.load %{{.*}} : !llvm.ptr -> i64
// CHECK: llvm.call @tern_uk_attention_gqa_f32_ref(%arg0, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[POS]], %[[SEQ]], %{{.*}})
// CHECK: llvm.call @tern_uk_attention_gqa_f16_ref(%arg0, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[POS]], %[[SEQ]], %{{.*}})
// CHECK: "llvm.intr.memcpy"
// CHECK: llvm.call @tern_uk_lm_head_f16_ref(%arg0, %[[NOUT]]
module attributes {tern.data_offset = 1000 : i64, tern.packed_bytes = 8192 : i64, tern.act_quant = "token",
                   tern.hparams = {context = 128 : i64, ffn = 512 : i64, head_dim = 64 : i64, heads = 4 : i64, hidden = 256 : i64, kv_heads = 4 : i64, layers = 1 : i64, vocab = 16 : i64}} {
  func.func @forward(%tok: tensor<?xi32>, %pos: tensor<?xi32>) -> tensor<?x16xf32> {
    %x = tern.ukernel_call "tern_uk_embed_f16_ref"(%tok) {static_args = {hidden = 256 : i64, vocab = 16 : i64, weight = "token_embd.weight", weight_bytes = 8192 : i64, weight_offset = 0 : i64}} : (tensor<?xi32>) -> tensor<?x256xf32>
    %a = tern.ukernel_call "tern_uk_attention_gqa_f32_ref"(%x, %x, %x, %pos) {static_args = {head_dim = 64 : i64, layer = 0 : i64, max_ctx = 128 : i64, n_heads = 4 : i64, n_kv_heads = 4 : i64, scale = 1.250000e-01 : f32}} : (tensor<?x256xf32>, tensor<?x256xf32>, tensor<?x256xf32>, tensor<?xi32>) -> tensor<?x256xf32>
    %b = tern.ukernel_call "tern_uk_attention_gqa_f16_ref"(%a, %a, %a, %pos) {static_args = {head_dim = 64 : i64, layer = 0 : i64, max_ctx = 128 : i64, n_heads = 4 : i64, n_kv_heads = 4 : i64, scale = 1.250000e-01 : f32}} : (tensor<?x256xf32>, tensor<?x256xf32>, tensor<?x256xf32>, tensor<?xi32>) -> tensor<?x256xf32>
    %l = tern.ukernel_call "tern_uk_lm_head_f16_ref"(%b) {static_args = {hidden = 256 : i64, layout = "f16", packed_bytes = 8192 : i64, packed_offset = 0 : i64, tile_k = 256 : i64, tile_m = 16 : i64, vocab = 16 : i64}} : (tensor<?x256xf32>) -> tensor<?x16xf32>
    return %l : tensor<?x16xf32>
  }
}
