// Scalar reference kernels of the BitNet graph (DESIGN.md, Numerics).
//
// These are the "_generic twins": plain loops, fixed summation order, no
// intrinsics. Every optimised or generated kernel is checked against them.
// Work is split over output rows only, so results are bit-identical for any
// thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "runtime/formats/half.h"
#include "runtime/model/thread_pool.h"
#include "runtime/model/weights.h"

namespace tern::model {

// How BitLinear treats its input activations.
enum class ActQuant : uint8_t {
  PerToken, // BitNet b1.58: int8 absmax per token, integer dot products
  None,     // float activations against the ternary weights
  // llama.cpp-compatible, for cross-checking (BitNet's own math is
  // PerToken): what ggml does for TQ1_0/TQ2_0 weights. Activations are
  // quantized per 256-value block to Q8_K (ggml quantize_row_q8_K_ref),
  // dot products are ggml's TQ x Q8_K ones, and the f16 roundings of
  // llama.cpp's f16 tensors are emulated (K/V cache, Q and softmax weights
  // against it, the lm_head input). Needs rows that are multiples of 256.
  Q8K,
};
const char *actQuantName(ActQuant a);

// y[i] = x[i] / sqrt(mean(x^2) + eps) * w[i] (sum of squares in double).
void rmsNorm(const float *x, const float *w, uint32_t n, float eps, float *y);

// rmsNorm as ggml computes it (the q8k mode's): float squares summed in
// double, mean and 1/sqrtf(mean + eps) in float, (x * scale) * w.
void rmsNormGgml(const float *x, const float *w, uint32_t n, float eps, float *y);

// Activations of n tokens, prepared for BitLinear.
struct BitLinearInput {
  ActQuant mode = ActQuant::PerToken;
  uint32_t tokens = 0;
  uint32_t cols = 0;
  std::vector<int8_t> q;    // PerToken: [tokens][cols]
  std::vector<float> scale; // PerToken: [tokens], s = 127 / max(|x|, 1e-5)
                            // Q8K: [tokens][cols/256], d = max / -127
  std::vector<float> x;     // None: [tokens][cols]
};

// Q8_K block size (ggml's QK_K).
constexpr uint32_t kQ8KBlock = 256;

// ggml's Q8_K quantization of n values (n a multiple of 256): per block, max
// = the value of largest |x| (first one on ties, sign kept), iscale =
// -127/max, q = min(127, round-half-even(iscale*x)), d = 1/iscale; an
// all-zero block gets d = 0, q = 0.
void quantizeQ8K(const float *x, uint32_t n, int8_t *q, float *d);

// x rounded to the nearest IEEE half (ties to even), as a float; +-inf past
// the half range.
float roundToF16(float x);

// s = 127 / max(|x|, 1e-5); q = clamp(round(x*s), -128, 127), round half
// away from zero.
void quantizeActivations(const float *x, uint32_t tokens, uint32_t cols, ActQuant mode,
                         BitLinearInput &out);

// y[t][r] for every token t and row r of w: per run of consecutive scale
// blocks with the same scale (one run for a per-tensor scale, whatever the
// storage's block size) the integer (or float, mode None, in column order)
// dot product of codes and activations, times that scale, summed over the
// runs in order, then divided by the token's s. The ukernels
// (runtime/ukernels/common.h, matmul_rows_scalar) compute the same, so a
// TQ weight repacked to i2s gives bit-identical results.
// Q8K: per 256-block, float(sum of code*q) * (d_x * weight scale), summed
// over blocks in order (ggml_vec_dot_tq2_0_q8_K); the weight's scale
// blocks must be multiples of 256 columns (bitLinearSupportsQ8K).
void bitLinear(const TernaryMatrix &w, const BitLinearInput &in, float *y /*[tokens][rows]*/,
               ThreadPool &pool);

// Whether w's shape allows ActQuant::Q8K (cols and scale blocks multiples
// of 256).
bool bitLinearSupportsQ8K(const TernaryMatrix &w);

// A cached K/V element as a float: f32 as is, f16 (uint16_t) converted
// exactly.
inline float kvF32(float x) { return x; }
inline float kvF32(uint16_t h) { return half::f16_to_f32(h); }

// One query row of the reference attention over positions 0..n-1: s_p =
// dot(q, k_p) * scale summed in float, softmax with the maximum subtracted
// and the sum in double, out = sum_p (e_p * (1 / sum)) v_p in position
// order. kAt / vAt give rows of float (f32 cache) or uint16_t (f16 cache).
// `scores` is scratch (resized to n). The ukernels
// tern_uk_attention_gqa_{f32,f16}_ref follow the same order.
template <class KAt, class VAt>
void attentionOneRow(const float *q, uint32_t D, uint64_t n, float scale, KAt kAt, VAt vAt,
                     std::vector<float> &scores, float *out) {
  scores.resize(n);
  float mx = -INFINITY;
  for (uint64_t p = 0; p < n; ++p) {
    const auto *kp = kAt(p);
    float dot = 0.0f;
    for (uint32_t d = 0; d < D; ++d)
      dot += q[d] * kvF32(kp[d]);
    scores[p] = dot * scale;
    mx = std::max(mx, scores[p]);
  }
  double sum = 0.0;
  for (uint64_t p = 0; p < n; ++p) {
    scores[p] = std::exp(scores[p] - mx);
    sum += scores[p];
  }
  const float inv = static_cast<float>(1.0 / sum);
  std::fill_n(out, D, 0.0f);
  for (uint64_t p = 0; p < n; ++p) {
    const auto *vp = vAt(p);
    const float w = scores[p] * inv;
    for (uint32_t d = 0; d < D; ++d)
      out[d] += w * kvF32(vp[d]);
  }
}

// Query rows per tile of llama.cpp's tiled CPU flash attention: batches of
// fewer rows take its one-row path (flashAttnOneRowF16).
constexpr uint32_t kFlashTileQ = 64;

// One query row of llama.cpp's CPU flash attention with an f16 KV cache
// (ggml's flash_attn_ext one-chunk path), keys and values given already
// rounded to f16: q is rounded to f16; per position p in order, s =
// dot(q, k_p) * scale; online softmax with the running max M and sum S in
// float and the unnormalised output accumulated in f16 (a new max rescales
// it by expf(M_old - M), then acc = f16(fma(v_p, expf(s - M), acc)));
// out = acc * (1 / S).
template <class KAt, class VAt>
void flashAttnOneRowF16(const float *q, uint32_t D, uint64_t n, float scale, KAt kAt, VAt vAt,
                        float *out) {
  std::vector<float> qh(q, q + D);
  for (float &v : qh)
    v = roundToF16(v);
  float M = -INFINITY, S = 0.0f;
  std::fill_n(out, D, 0.0f);
  for (uint64_t p = 0; p < n; ++p) {
    const auto *kp = kAt(p);
    float dot = 0.0f;
    for (uint32_t d = 0; d < D; ++d)
      dot += qh[d] * kvF32(kp[d]);
    const float sc = dot * scale;
    float ms = 1.0f, vs = 1.0f;
    if (sc > M) {
      const float mOld = M;
      M = sc;
      ms = std::exp(mOld - M);
      for (uint32_t d = 0; d < D; ++d)
        out[d] = roundToF16(out[d] * ms);
    } else {
      vs = std::exp(sc - M);
    }
    const auto *vp = vAt(p);
    for (uint32_t d = 0; d < D; ++d)
      out[d] = roundToF16(std::fma(kvF32(vp[d]), vs, out[d]));
    S = S * ms + vs;
  }
  const float inv = S == 0.0f ? 0.0f : 1.0f / S;
  for (uint32_t d = 0; d < D; ++d)
    out[d] *= inv;
}

// NEOX rotary embedding of one head vector in place: pairs (i, i + nRot/2)
// for i < nRot/2, angle pos * base^(-2i/nRot); dims >= nRot untouched.
void ropeNeox(float *v, uint32_t nRot, uint64_t pos, float freqBase);

// ropeNeox as ggml computes it (the q8k mode's): angles in float, theta_0 =
// pos, theta_{i+1} = theta_i * powf(base, -2/nRot), cosf/sinf.
void ropeNeoxGgml(float *v, uint32_t nRot, uint64_t pos, float freqBase);

// out[c] = act(gate[c]) * up[c]: SiLU (x / (1 + e^-x)) or squared ReLU.
void gatedActivation(const float *gate, const float *up, uint32_t n, FfnActivation act, float *out);

// logits[v] = dot(head row v, x), rows split over the pool; for a q8 head
// (head.q8 set) x is quantized per token first and the dot is integer
// (DenseMatrix::dotRowQ8).
void lmHead(const DenseMatrix &head, const float *x, float *logits, ThreadPool &pool);

} // namespace tern::model
