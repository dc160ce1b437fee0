// Launchers of the cuda targets (docs/cuda.md): one per ukernel the code of
// a cuda artifact calls, with that ukernel's exact C signature
// (runtime/ukernels/ukernels.h) and the name tern_uk_<op>_cuda. Each packs
// its arguments into the GPU kernel's parameter struct (kernels.h) and hands
// it to the backend (ctx->gpu->launch, ABI 5), which plans the grid
// (launch.h) and runs the kernel: on a GPU through the CUDA driver, or on
// the host through emulate.h. Pointers into the batch's host arrays (tokens,
// positions, seq, out_rows, logits) are swapped for their device mirrors
// (ctx->gpu->batch_ptr); every other pointer (weights, scratch, KV pool) is
// already a device address.
//
// Compiled to LLVM bitcode (tern_cuda_launchers_bc) that ternc links into
// the host code of a cuda artifact, like the CPU ukernels' bitcode, and into
// the runtime's tests. No libc, no globals.
#include "runtime/cuda/launchers.h"
#include "runtime/cuda/kernels.h"

using namespace tern::cuda;

namespace {

template <class P> void launch(const tern_ctx *ctx, tern_gpu_kernel k, const P &p) {
  ctx->gpu->launch(ctx->gpu->arg, int32_t(k), &p, int64_t(sizeof p));
}
template <class T> T *mirror(const tern_ctx *ctx, T *host) {
  return static_cast<T *>(ctx->gpu->batch_ptr(ctx->gpu->arg, host));
}

void elementwise(const tern_ctx *ctx, tern_gpu_kernel k, int64_t n, const float *a, const float *b,
                 float *out, int64_t dim) {
  launch(ctx, k, ElementwiseParams{n * dim, a, b, out});
}

} // namespace

extern "C" {

void tern_uk_embed_f16_cuda(const tern_ctx *ctx, int64_t n, const int32_t *tokens,
                            const uint16_t *table, float *out, int64_t hidden, int64_t vocab) {
  launch(ctx, TERN_GPU_EMBED_F16, EmbedParams{n, mirror(ctx, tokens), table, out, hidden, vocab});
}

void tern_uk_rms_norm_f32_cuda(const tern_ctx *ctx, int64_t n, const float *x, const float *w,
                               float *y, int64_t dim, float eps) {
  launch(ctx, TERN_GPU_RMS_NORM_F32, RmsParams{n, x, w, y, dim, eps});
}

void tern_uk_rms_norm_quantize_i8_cuda(const tern_ctx *ctx, int64_t n, const float *x,
                                       const float *w, int8_t *q, float *qs, int64_t dim,
                                       float eps) {
  launch(ctx, TERN_GPU_RMS_NORM_QUANTIZE_I8, RmsQuantParams{n, x, w, q, qs, dim, eps});
}

void tern_uk_quantize_i8_cuda(const tern_ctx *ctx, int64_t n, const float *x, int8_t *q, float *qs,
                              int64_t dim) {
  launch(ctx, TERN_GPU_QUANTIZE_I8, QuantParams{n, x, q, qs, dim});
}

void tern_uk_matmul_i2s_cuda(const tern_ctx *ctx, int64_t n, const int8_t *q, const float *qs,
                             const uint8_t *packed, int64_t m, int64_t k, int64_t tile_m,
                             int64_t tile_k, float *out0, int64_t m0, float *out1, int64_t m1,
                             float *out2, int64_t m2) {
  // Prefill (n >= kMmaMinTokens) on the tensor cores, decode and small
  // batches with dp4a (docs/cuda.md); both bit-identical with the ref.
  launch(ctx, n >= kMmaMinTokens ? TERN_GPU_MATMUL_I2S_I8_MMA : TERN_GPU_MATMUL_I2S_I8,
         I2sParams{n, q, qs, packed, m, k, tile_m, tile_k, {out0, out1, out2}, {m0, m1, m2}});
}

void tern_uk_rope_neox_f32_cuda(const tern_ctx *ctx, int64_t n, const float *x, const int32_t *pos,
                                float *y, int64_t n_heads, int64_t head_dim, int64_t rot_dim,
                                float freq_base) {
  launch(ctx, TERN_GPU_ROPE_NEOX_F32,
         RopeParams{n, x, mirror(ctx, pos), y, n_heads, head_dim, rot_dim, freq_base});
}

void tern_uk_attention_gqa_f16_cuda(const tern_ctx *ctx, int64_t n, const float *q, const float *k,
                                    const float *v, const int32_t *pos, const int32_t *seq,
                                    float *out, int64_t layer, int64_t n_heads, int64_t n_kv_heads,
                                    int64_t head_dim, float scale) {
  AttnF16Params p{};
  p.n = n;
  p.q = q;
  p.k = k;
  p.v = v;
  p.pos = mirror(ctx, pos);
  p.seq = mirror(ctx, seq);
  p.out = out;
  p.pool = static_cast<uint16_t *>(ctx->kv.pool);
  p.pageIds = ctx->gpu->page_ids;
  p.pageElems = ctx->kv.page_elems;
  p.pageSize = ctx->kv.page_size;
  p.nLayer = ctx->gpu->n_layer;
  p.maxPages = ctx->gpu->max_pages;
  p.layer = layer;
  p.nHeads = n_heads;
  p.nKvHeads = n_kv_heads;
  p.headDim = head_dim;
  p.scale = scale;
  // Stream order: every K/V row of the call is written before any is read.
  // The one-warp kernel while every position is < kAttnSplitMinPos (one
  // chunk: both kernels give the same bits there), then one block of 4
  // warps per (token, head) (docs/cuda.md). `pos` is the host array.
  launch(ctx, TERN_GPU_KV_STORE_F16, p);
  launch(ctx,
         attn_use_split(n, pos) ? TERN_GPU_ATTENTION_GQA_F16_SPLIT : TERN_GPU_ATTENTION_GQA_F16, p);
}

void tern_uk_add_f32_cuda(const tern_ctx *ctx, int64_t n, const float *a, const float *b,
                          float *out, int64_t dim) {
  elementwise(ctx, TERN_GPU_ADD_F32, n, a, b, out, dim);
}
void tern_uk_silu_mul_f32_cuda(const tern_ctx *ctx, int64_t n, const float *gate, const float *up,
                               float *out, int64_t dim) {
  elementwise(ctx, TERN_GPU_SILU_MUL_F32, n, gate, up, out, dim);
}
void tern_uk_relu2_mul_f32_cuda(const tern_ctx *ctx, int64_t n, const float *gate, const float *up,
                                float *out, int64_t dim) {
  elementwise(ctx, TERN_GPU_RELU2_MUL_F32, n, gate, up, out, dim);
}

void tern_uk_lm_head_f16_cuda(const tern_ctx *ctx, int64_t n, const float *x, const uint16_t *w,
                              float *logits, int64_t hidden, int64_t vocab, int64_t tile_m,
                              int64_t tile_k) {
  (void)tile_m;
  (void)tile_k;
  launch(ctx, TERN_GPU_LM_HEAD_F16, LmHeadParams{n, x, w, mirror(ctx, logits), hidden, vocab});
}

// Not a CPU ukernel: the generated code of a cuda artifact calls it instead
// of its memcpy loop gathering the head's rows (docs/codegen.md).
void tern_uk_gather_rows_cuda(const tern_ctx *ctx, int64_t n_out, const int32_t *out_rows,
                              const uint8_t *src, uint8_t *dst, int64_t row_bytes) {
  launch(ctx, TERN_GPU_GATHER_ROWS,
         GatherParams{n_out, mirror(ctx, out_rows), src, dst, row_bytes});
}

} // extern "C"
