// The extern "C" non-matmul entries of one ISA file (tern_uk_<op>_<isa>),
// each running the Ops<V> body of ops.h. The file defines TERN_UK_OPS_ISA
// (its isa name) and tern_uk::OpsIsa (its float-vector traits), then
// includes this header inside its target region, after ops.h and
// attention.h. No include guard: included once per ISA file. Outside a
// parallel region the ops other than attention run on the calling thread;
// inside one (ABI 4) each thread does its slice of the tokens (embed, norms,
// quantize, rope) or of the elements (add, act mul), cut at multiples of 64.
#define TERN_UK_OPS_CAT2(a, b) a##b
#define TERN_UK_OPS_CAT(a, b) TERN_UK_OPS_CAT2(a, b)
#define TERN_UK_OPS_NAME(op) TERN_UK_OPS_CAT(tern_uk_##op##_, TERN_UK_OPS_ISA)

extern "C" {

void TERN_UK_OPS_NAME(embed_f16)(const tern_ctx *ctx, int64_t n, const int32_t *tokens,
                                 const uint16_t *table, float *out, int64_t hidden, int64_t vocab) {
  tern_uk::OpScope prof(ctx, TERN_OP_EMBED, n, hidden);
  int64_t b, e;
  tern_uk::region_slice(ctx, n, b, e);
  if (b < e)
    tern_uk::Ops<tern_uk::OpsIsa>::embed_f16(e - b, tokens + b, table, out + b * hidden, hidden,
                                             vocab);
}

void TERN_UK_OPS_NAME(embed_f32)(const tern_ctx *ctx, int64_t n, const int32_t *tokens,
                                 const float *table, float *out, int64_t hidden, int64_t vocab) {
  tern_uk::OpScope prof(ctx, TERN_OP_EMBED, n, hidden);
  int64_t b, e;
  tern_uk::region_slice(ctx, n, b, e);
  if (b < e)
    tern_uk::Ops<tern_uk::OpsIsa>::embed_f32(e - b, tokens + b, table, out + b * hidden, hidden,
                                             vocab);
}

void TERN_UK_OPS_NAME(rms_norm_f32)(const tern_ctx *ctx, int64_t n, const float *x, const float *w,
                                    float *y, int64_t dim, float eps) {
  tern_uk::OpScope prof(ctx, TERN_OP_NORM, n, dim);
  int64_t b, e;
  tern_uk::region_slice(ctx, n, b, e);
  if (b < e)
    tern_uk::Ops<tern_uk::OpsIsa>::rms_norm(e - b, x + b * dim, w, y + b * dim, dim, eps);
}

void TERN_UK_OPS_NAME(rms_norm_quantize_i8)(const tern_ctx *ctx, int64_t n, const float *x,
                                            const float *w, int8_t *q, float *qs, int64_t dim,
                                            float eps) {
  tern_uk::OpScope prof(ctx, TERN_OP_NORM, n, dim);
  int64_t b, e;
  tern_uk::region_slice(ctx, n, b, e);
  if (b < e)
    tern_uk::Ops<tern_uk::OpsIsa>::rms_norm_quantize_i8(e - b, x + b * dim, w, q + b * dim, qs + b,
                                                        dim, eps);
}

void TERN_UK_OPS_NAME(quantize_i8)(const tern_ctx *ctx, int64_t n, const float *x, int8_t *q,
                                   float *qs, int64_t dim) {
  tern_uk::OpScope prof(ctx, TERN_OP_QUANTIZE, n, dim);
  int64_t b, e;
  tern_uk::region_slice(ctx, n, b, e);
  if (b < e)
    tern_uk::Ops<tern_uk::OpsIsa>::quantize_i8(e - b, x + b * dim, q + b * dim, qs + b, dim);
}

void TERN_UK_OPS_NAME(rope_neox_f32)(const tern_ctx *ctx, int64_t n, const float *x,
                                     const int32_t *pos, float *y, int64_t n_heads,
                                     int64_t head_dim, int64_t rot_dim, float freq_base) {
  tern_uk::OpScope prof(ctx, TERN_OP_ROPE, n, n_heads);
  int64_t b, e;
  tern_uk::region_slice(ctx, n, b, e);
  const int64_t dim = n_heads * head_dim;
  if (b < e)
    tern_uk::Ops<tern_uk::OpsIsa>::rope_neox(e - b, x + b * dim, pos + b, y + b * dim, n_heads,
                                             head_dim, rot_dim, freq_base);
}

void TERN_UK_OPS_NAME(add_f32)(const tern_ctx *ctx, int64_t n, const float *a, const float *b,
                               float *out, int64_t dim) {
  tern_uk::OpScope prof(ctx, TERN_OP_ADD, n, dim);
  int64_t i0, i1;
  tern_uk::region_slice_elems(ctx, n * dim, i0, i1);
  if (i0 < i1)
    tern_uk::Ops<tern_uk::OpsIsa>::add(i1 - i0, a + i0, b + i0, out + i0);
}

void TERN_UK_OPS_NAME(silu_mul_f32)(const tern_ctx *ctx, int64_t n, const float *gate,
                                    const float *up, float *out, int64_t dim) {
  tern_uk::OpScope prof(ctx, TERN_OP_ACT_MUL, n, dim);
  int64_t i0, i1;
  tern_uk::region_slice_elems(ctx, n * dim, i0, i1);
  if (i0 < i1)
    tern_uk::Ops<tern_uk::OpsIsa>::silu_mul(i1 - i0, gate + i0, up + i0, out + i0);
}

void TERN_UK_OPS_NAME(relu2_mul_f32)(const tern_ctx *ctx, int64_t n, const float *gate,
                                     const float *up, float *out, int64_t dim) {
  tern_uk::OpScope prof(ctx, TERN_OP_ACT_MUL, n, dim);
  int64_t i0, i1;
  tern_uk::region_slice_elems(ctx, n * dim, i0, i1);
  if (i0 < i1)
    tern_uk::Ops<tern_uk::OpsIsa>::relu2_mul(i1 - i0, gate + i0, up + i0, out + i0);
}

// attention_gqa_<kv> over a cache of element type T (f32: float, f16:
// uint16_t IEEE halves).
#define TERN_UK_OPS_ATTENTION(kv, T)                                                               \
  void TERN_UK_OPS_NAME(attention_gqa_##kv)(TERN_UK_ATTENTION_ARGS) {                              \
    tern_uk::OpScope prof(ctx, TERN_OP_ATTENTION, n, n_heads, layer);                              \
    tern_uk::Attention<tern_uk::OpsIsa, T>::run(TERN_UK_ATTENTION_NAMES);                          \
  }
TERN_UK_OPS_ATTENTION(f32, float)
TERN_UK_OPS_ATTENTION(f16, uint16_t)
#undef TERN_UK_OPS_ATTENTION

} // extern "C"

#undef TERN_UK_OPS_NAME
#undef TERN_UK_OPS_CAT
#undef TERN_UK_OPS_CAT2
