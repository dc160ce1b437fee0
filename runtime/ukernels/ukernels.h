/* ternc ukernels: the C ABI every generated model calls.
 *
 * C++ templates over ISA traits types (common.h, matmul_i2s.h, x86_avx2.h,
 * arm_neon.h), instantiated in one file per ISA level (ukernels_<isa>.cpp,
 * each inside its target region: target.h), compiled both into the runtime library (tests,
 * reference runs) and to LLVM bitcode that the compiler links into each model's module, so the
 * static arguments below become constants after inlining. No libc beyond math, no globals, no
 * allocation: all memory comes from the caller (ctx->scratch, ctx->weights, the KV pool).
 *
 * Naming: tern_uk_<op>[_<layout>][_f32act]_<isa>, isa in
 * {ref, avx2, avx512_vnni, neon, neon_dotprod}. `ref` is the scalar twin of
 * every fast kernel and exists for every op and layout. variants.def lists
 * every (layout, activation, isa) matmul variant that is really implemented;
 * the compiler calls only those (falling back to `ref` and saying so).
 *
 * Common arguments: ctx (for parallel_for and the KV cache), n = tokens in
 * the batch. Row-major activations [n][dim]. Numerics: ../shared/DESIGN.md.
 */
#ifndef TERN_UKERNELS_H
#define TERN_UKERNELS_H

#include "runtime/abi/tern_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[t][:] = f16 row tokens[t] of table[vocab][hidden]. */
void tern_uk_embed_f16_ref(const tern_ctx *ctx, int64_t n, const int32_t *tokens,
                           const uint16_t *table, float *out, int64_t hidden, int64_t vocab);

/* y = x / sqrt(mean(x^2) + eps) * w. */
void tern_uk_rms_norm_f32_ref(const tern_ctx *ctx, int64_t n, const float *x, const float *w,
                              float *y, int64_t dim, float eps);

/* out[t][:] = f32 row tokens[t] of table[vocab][hidden] (an F32 token_embd). */
void tern_uk_embed_f32_ref(const tern_ctx *ctx, int64_t n, const int32_t *tokens,
                           const float *table, float *out, int64_t hidden, int64_t vocab);

/* RMSNorm then per-token int8: qs[t] = 127 / max(max|y_t|, 1e-5),
 * q = clamp(round_half_away(y * qs[t]), -128, 127). */
void tern_uk_rms_norm_quantize_i8_ref(const tern_ctx *ctx, int64_t n, const float *x,
                                      const float *w, int8_t *q, float *qs, int64_t dim, float eps);
void tern_uk_quantize_i8_ref(const tern_ctx *ctx, int64_t n, const float *x, int8_t *q, float *qs,
                             int64_t dim);

/* Ternary matmul over a weight packed by compiler/pack (Pack.h documents
 * the byte layouts; scales follow i2s/tl1/tl2/tl2v data at the next multiple of
 * 64 bytes, one f32 per segment; TQ layouts carry per-block scales). Up to
 * three row segments (fused q/k/v, gate/up): m = m0 + m1 + m2, unused
 * segments are (NULL, 0). out_s[t][r] = (sum_c code[r][c] * q[t][c]) *
 * scale / qs[t]   (int8 activations), or sum_c w[r][c] * x[t][c] (f32act).
 */
#define TERN_UK_MATMUL_I8_ARGS                                                                     \
  const tern_ctx *ctx, int64_t n, const int8_t *q, const float *qs, const uint8_t *packed,         \
      int64_t m, int64_t k, int64_t tile_m, int64_t tile_k, float *out0, int64_t m0, float *out1,  \
      int64_t m1, float *out2, int64_t m2
#define TERN_UK_MATMUL_F32_ARGS                                                                    \
  const tern_ctx *ctx, int64_t n, const float *x, const uint8_t *packed, int64_t m, int64_t k,     \
      int64_t tile_m, int64_t tile_k, float *out0, int64_t m0, float *out1, int64_t m1,            \
      float *out2, int64_t m2

#define TERN_UK_DECLARE_MATMUL(layout, isa)                                                        \
  void tern_uk_matmul_##layout##_##isa(TERN_UK_MATMUL_I8_ARGS);                                    \
  void tern_uk_matmul_##layout##_f32act_##isa(TERN_UK_MATMUL_F32_ARGS);
TERN_UK_DECLARE_MATMUL(i2s, ref)
TERN_UK_DECLARE_MATMUL(tl1, ref)
TERN_UK_DECLARE_MATMUL(tl2, ref)
TERN_UK_DECLARE_MATMUL(tq2, ref)
TERN_UK_DECLARE_MATMUL(tq1, ref)
TERN_UK_DECLARE_MATMUL(tl2v, ref)

/* Every variant variants.def lists, declared from it (the ref ones again,
 * identically). int8 fast variants are bit-identical to their `ref` twin;
 * f32-activation ones use FMA with lane-wise partial sums (close to ref, not
 * bit-identical). ISAs: avx2 = avx2,fma,f16c; avx512_vnni = + avx512f,bw,
 * vl,vnni; neon = baseline aarch64; neon_dotprod = + dotprod; neon_i8mm
 * = + dotprod, i8mm. Preconditions
 * of the fast variants (verified by #tern.kernel, no scalar fallback inside):
 * tl1 (neon) tile_m % 16 == 0; tl2 (x86) tile_m % 16 == 0, tile_m <= 1024;
 * the `ref` twins take any tile. */
#define TERN_UK_DECLARE_i8(layout, isa)                                                            \
  void tern_uk_matmul_##layout##_##isa(TERN_UK_MATMUL_I8_ARGS);
#define TERN_UK_DECLARE_f32(layout, isa)                                                           \
  void tern_uk_matmul_##layout##_f32act_##isa(TERN_UK_MATMUL_F32_ARGS);
#define TERN_UK_VARIANT(layout, act, isa) TERN_UK_DECLARE_##act(layout, isa)
#define TERN_UK_PENDING_VARIANT(layout, act, isa) TERN_UK_DECLARE_##act(layout, isa)
#include "runtime/ukernels/variants.def"
#undef TERN_UK_PENDING_VARIANT
#undef TERN_UK_VARIANT
#undef TERN_UK_DECLARE_f32
#undef TERN_UK_DECLARE_i8

#if defined(__x86_64__)
/* tern_uk_matmul_tl2v_avx512_vnni runs one of two bodies, chosen once per
 * copy of the ukernels (this library; each compiled artifact has its own)
 * by cpuid: "vbmi" (AVX512-VBMI + GFNI, e.g. Ice Lake and later, Zen 4 and
 * later) or "vnni" (the fallback); same results bit for bit.
 * tern_uk_tl2v_avx512_body says which one this copy runs.
 * tern_uk_tl2v_vbmi_enable(0) forces "vnni", (1) goes back to the cpuid
 * choice; returns whether "vbmi" runs now. For tests and A/B benches: not
 * thread-safe against running matmuls (a call in flight keeps its body). */
int tern_uk_tl2v_vbmi_enable(int on);
const char *tern_uk_tl2v_avx512_body(void);
#endif

/* RoPE NEOX (rotate-half) on n_heads heads of head_dim, first rot_dim dims:
 * pairs (i, i + rot_dim/2), angle pos * freq_base^(-2i/rot_dim). y may be x. */
void tern_uk_rope_neox_f32_ref(const tern_ctx *ctx, int64_t n, const float *x, const int32_t *pos,
                               float *y, int64_t n_heads, int64_t head_dim, int64_t rot_dim,
                               float freq_base);

/* The attention entries' parameters (f32 and f16 caches alike).
 * Writes k[t], v[t] ([n][n_kv_heads*head_dim]) into layer `layer` of
 * sequence seq[t]'s pages (ctx->kv.page_tables[seq[t]]) at pos[t], then
 * causal grouped-query attention of q[t] over that sequence's positions
 * 0..pos[t]: head h reads KV head h / (n_heads / n_kv_heads). Every K/V row
 * is written before any is read, so tokens of one sequence in one call see
 * each other. A token's output depends only on its own q and its sequence's
 * K/V (batch invariance). */
#define TERN_UK_ATTENTION_ARGS                                                                     \
  const tern_ctx *ctx, int64_t n, const float *q, const float *k, const float *v,                  \
      const int32_t *pos, const int32_t *seq, float *out, int64_t layer, int64_t n_heads,          \
      int64_t n_kv_heads, int64_t head_dim, float scale
void tern_uk_attention_gqa_f32_ref(TERN_UK_ATTENTION_ARGS);
/* The same over an f16 cache (ctx->kv.pool holds IEEE halves): k and v are
 * rounded to nearest even as they are written (runtime/formats/half.h), and
 * every cached element is read as the float it represents, so the result is
 * the f32 kernel's over the rounded K/V, bit for bit. */
void tern_uk_attention_gqa_f16_ref(TERN_UK_ATTENTION_ARGS);

void tern_uk_add_f32_ref(const tern_ctx *ctx, int64_t n, const float *a, const float *b, float *out,
                         int64_t dim);
/* silu(gate) * up, and relu(gate)^2 * up. */
void tern_uk_silu_mul_f32_ref(const tern_ctx *ctx, int64_t n, const float *gate, const float *up,
                              float *out, int64_t dim);
void tern_uk_relu2_mul_f32_ref(const tern_ctx *ctx, int64_t n, const float *gate, const float *up,
                               float *out, int64_t dim);

/* Fast variants of the ops above (ops.h, attention.h), one set per ISA
 * that variants.def lists as TERN_UK_OPS_VARIANT: same signatures as the
 * `_ref` ones. add, relu2_mul, embed, rope and quantize_i8 are bit-identical
 * to ref; rms_norm sums its squares in double in lane order (the f32 scale
 * equals ref's except in rare rounding ties: 1 ulp, then at most 1 in a
 * quantized value); silu_mul uses a vector exp (a few ulp); attention
 * (lane-wise dots, online softmax, vector exp; f32 or f16 cache) is within
 * a float tolerance of ref (docs/ukernels.md) and batch-invariant, and
 * writes the cache bit-identically to ref. */
#define TERN_UK_DECLARE_OPS(isa)                                                                   \
  void tern_uk_embed_f16_##isa(const tern_ctx *ctx, int64_t n, const int32_t *tokens,              \
                               const uint16_t *table, float *out, int64_t hidden, int64_t vocab);  \
  void tern_uk_embed_f32_##isa(const tern_ctx *ctx, int64_t n, const int32_t *tokens,              \
                               const float *table, float *out, int64_t hidden, int64_t vocab);     \
  void tern_uk_rms_norm_f32_##isa(const tern_ctx *ctx, int64_t n, const float *x, const float *w,  \
                                  float *y, int64_t dim, float eps);                               \
  void tern_uk_rms_norm_quantize_i8_##isa(const tern_ctx *ctx, int64_t n, const float *x,          \
                                          const float *w, int8_t *q, float *qs, int64_t dim,       \
                                          float eps);                                              \
  void tern_uk_quantize_i8_##isa(const tern_ctx *ctx, int64_t n, const float *x, int8_t *q,        \
                                 float *qs, int64_t dim);                                          \
  void tern_uk_rope_neox_f32_##isa(const tern_ctx *ctx, int64_t n, const float *x,                 \
                                   const int32_t *pos, float *y, int64_t n_heads,                  \
                                   int64_t head_dim, int64_t rot_dim, float freq_base);            \
  void tern_uk_add_f32_##isa(const tern_ctx *ctx, int64_t n, const float *a, const float *b,       \
                             float *out, int64_t dim);                                             \
  void tern_uk_silu_mul_f32_##isa(const tern_ctx *ctx, int64_t n, const float *gate,               \
                                  const float *up, float *out, int64_t dim);                       \
  void tern_uk_relu2_mul_f32_##isa(const tern_ctx *ctx, int64_t n, const float *gate,              \
                                   const float *up, float *out, int64_t dim);                      \
  void tern_uk_attention_gqa_f32_##isa(TERN_UK_ATTENTION_ARGS);                                    \
  void tern_uk_attention_gqa_f16_##isa(TERN_UK_ATTENTION_ARGS);
#define TERN_UK_VARIANT(layout, act, isa)
#define TERN_UK_OPS_VARIANT(isa) TERN_UK_DECLARE_OPS(isa)
#include "runtime/ukernels/variants.def"
#undef TERN_UK_OPS_VARIANT
#undef TERN_UK_VARIANT

/* logits[t][vocab] = x[t] . row of the f16 head (layout: compiler/pack's
 * lm_head packing: the [vocab][hidden] f16 rows as stored). */
#define TERN_UK_LM_HEAD_ARGS                                                                       \
  const tern_ctx *ctx, int64_t n, const float *x, const uint16_t *w, float *logits,                \
      int64_t hidden, int64_t vocab, int64_t tile_m, int64_t tile_k
/* The q8 head (ternc --head q8): w is tern-pack-weights' q8 form (formats/q8_rows.h):
 * [vocab][hidden] int8 rows, then at the next multiple of 64 bytes one f32
 * scale per row. Integer: each token is quantized like a BitLinear input
 * (qs[t], q[t][c] as tern_uk_quantize_i8), then logits[t][v] =
 * float(sum_c row_v[c] * q[t][c]) * scale[v] / qs[t] with an exact int32
 * sum (hidden < 2^17). Uses at most max(64 KiB, hidden) bytes of stack. */
#define TERN_UK_LM_HEAD_Q8_ARGS                                                                    \
  const tern_ctx *ctx, int64_t n, const float *x, const uint8_t *w, float *logits, int64_t hidden, \
      int64_t vocab, int64_t tile_m, int64_t tile_k
void tern_uk_lm_head_f16_ref(TERN_UK_LM_HEAD_ARGS);
void tern_uk_lm_head_q8_ref(TERN_UK_LM_HEAD_Q8_ARGS);
/* Vectorised heads. f16: FMA over lanes, then the lanes summed (close to
 * the ref's sequential sum, not bit-identical; the ukernel tests allow a
 * relative 1e-5 of sum |w x|). q8: integer sums, bit-identical to the ref.
 * variants.def lists them as
 * TERN_UK_HEAD_VARIANT(isa): tern_uk_lm_head_f16_<isa> and
 * tern_uk_lm_head_q8_<isa>. */
#define TERN_UK_VARIANT(layout, act, isa)
#define TERN_UK_HEAD_VARIANT(isa)                                                                  \
  void tern_uk_lm_head_f16_##isa(TERN_UK_LM_HEAD_ARGS);                                            \
  void tern_uk_lm_head_q8_##isa(TERN_UK_LM_HEAD_Q8_ARGS);
#include "runtime/ukernels/variants.def"
#undef TERN_UK_HEAD_VARIANT
#undef TERN_UK_VARIANT

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TERN_UKERNELS_H */
