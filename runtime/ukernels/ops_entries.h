// The extern "C" non-matmul entries of one ISA file (tern_uk_<op>_<isa>),
// each running the Ops<V> body of ops.h. The file defines TERN_UK_OPS_ISA
// (its isa name) and tern_uk::OpsIsa (its float-vector traits), then
// includes this header inside its target region, after ops.h and
// attention.h. No include guard: included once per ISA file. The ops other
// than attention run on the calling thread; ctx serves them for the
// profiling hook only (attention also reads the KV cache and the pool).
#define TERN_UK_OPS_CAT2(a, b) a##b
#define TERN_UK_OPS_CAT(a, b) TERN_UK_OPS_CAT2(a, b)
#define TERN_UK_OPS_NAME(op) TERN_UK_OPS_CAT(tern_uk_##op##_, TERN_UK_OPS_ISA)

extern "C" {

void TERN_UK_OPS_NAME(embed_f16)(const tern_ctx *ctx, int64_t n, const int32_t *tokens,
                                 const uint16_t *table, float *out, int64_t hidden, int64_t vocab) {
  tern_uk::ProfileScope prof(ctx, TERN_OP_EMBED, n, hidden);
  tern_uk::Ops<tern_uk::OpsIsa>::embed_f16(n, tokens, table, out, hidden, vocab);
}

void TERN_UK_OPS_NAME(embed_f32)(const tern_ctx *ctx, int64_t n, const int32_t *tokens,
                                 const float *table, float *out, int64_t hidden, int64_t vocab) {
  tern_uk::ProfileScope prof(ctx, TERN_OP_EMBED, n, hidden);
  tern_uk::Ops<tern_uk::OpsIsa>::embed_f32(n, tokens, table, out, hidden, vocab);
}

void TERN_UK_OPS_NAME(rms_norm_f32)(const tern_ctx *ctx, int64_t n, const float *x, const float *w,
                                    float *y, int64_t dim, float eps) {
  tern_uk::ProfileScope prof(ctx, TERN_OP_NORM, n, dim);
  tern_uk::Ops<tern_uk::OpsIsa>::rms_norm(n, x, w, y, dim, eps);
}

void TERN_UK_OPS_NAME(rms_norm_quantize_i8)(const tern_ctx *ctx, int64_t n, const float *x,
                                            const float *w, int8_t *q, float *qs, int64_t dim,
                                            float eps) {
  tern_uk::ProfileScope prof(ctx, TERN_OP_NORM, n, dim);
  tern_uk::Ops<tern_uk::OpsIsa>::rms_norm_quantize_i8(n, x, w, q, qs, dim, eps);
}

void TERN_UK_OPS_NAME(quantize_i8)(const tern_ctx *ctx, int64_t n, const float *x, int8_t *q,
                                   float *qs, int64_t dim) {
  tern_uk::ProfileScope prof(ctx, TERN_OP_QUANTIZE, n, dim);
  tern_uk::Ops<tern_uk::OpsIsa>::quantize_i8(n, x, q, qs, dim);
}

void TERN_UK_OPS_NAME(rope_neox_f32)(const tern_ctx *ctx, int64_t n, const float *x,
                                     const int32_t *pos, float *y, int64_t n_heads,
                                     int64_t head_dim, int64_t rot_dim, float freq_base) {
  tern_uk::ProfileScope prof(ctx, TERN_OP_ROPE, n, n_heads);
  tern_uk::Ops<tern_uk::OpsIsa>::rope_neox(n, x, pos, y, n_heads, head_dim, rot_dim, freq_base);
}

void TERN_UK_OPS_NAME(add_f32)(const tern_ctx *ctx, int64_t n, const float *a, const float *b,
                               float *out, int64_t dim) {
  tern_uk::ProfileScope prof(ctx, TERN_OP_ADD, n, dim);
  tern_uk::Ops<tern_uk::OpsIsa>::add(n * dim, a, b, out);
}

void TERN_UK_OPS_NAME(silu_mul_f32)(const tern_ctx *ctx, int64_t n, const float *gate,
                                    const float *up, float *out, int64_t dim) {
  tern_uk::ProfileScope prof(ctx, TERN_OP_ACT_MUL, n, dim);
  tern_uk::Ops<tern_uk::OpsIsa>::silu_mul(n * dim, gate, up, out);
}

void TERN_UK_OPS_NAME(relu2_mul_f32)(const tern_ctx *ctx, int64_t n, const float *gate,
                                     const float *up, float *out, int64_t dim) {
  tern_uk::ProfileScope prof(ctx, TERN_OP_ACT_MUL, n, dim);
  tern_uk::Ops<tern_uk::OpsIsa>::relu2_mul(n * dim, gate, up, out);
}

void TERN_UK_OPS_NAME(attention_gqa_f32)(const tern_ctx *ctx, int64_t n, const float *q,
                                         const float *k, const float *v, const int32_t *pos,
                                         const int32_t *seq, float *out, int64_t layer,
                                         int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                                         float scale) {
  tern_uk::ProfileScope prof(ctx, TERN_OP_ATTENTION, n, n_heads, layer);
  tern_uk::Attention<tern_uk::OpsIsa, float>::run(ctx, n, q, k, v, pos, seq, out, layer, n_heads,
                                                  n_kv_heads, head_dim, scale);
}

void TERN_UK_OPS_NAME(attention_gqa_f16)(const tern_ctx *ctx, int64_t n, const float *q,
                                         const float *k, const float *v, const int32_t *pos,
                                         const int32_t *seq, float *out, int64_t layer,
                                         int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                                         float scale) {
  tern_uk::ProfileScope prof(ctx, TERN_OP_ATTENTION, n, n_heads, layer);
  tern_uk::Attention<tern_uk::OpsIsa, uint16_t>::run(ctx, n, q, k, v, pos, seq, out, layer, n_heads,
                                                     n_kv_heads, head_dim, scale);
}

} // extern "C"

#undef TERN_UK_OPS_NAME
#undef TERN_UK_OPS_CAT
#undef TERN_UK_OPS_CAT2
