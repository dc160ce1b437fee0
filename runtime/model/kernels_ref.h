// Scalar reference kernels of the BitNet graph (DESIGN.md, Numerics).
//
// These are the "_generic twins": plain loops, fixed summation order, no
// intrinsics. Every optimised or generated kernel is checked against them.
// Work is split over output rows only, so results are bit-identical for any
// thread count.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/model/thread_pool.h"
#include "runtime/model/weights.h"

namespace tern::model {

// How BitLinear treats its input activations.
enum class ActQuant : uint8_t {
  PerToken, // BitNet b1.58: int8 absmax per token, integer dot products
  None,     // float activations against the ternary weights
};
const char *actQuantName(ActQuant a);

// y[i] = x[i] / sqrt(mean(x^2) + eps) * w[i] (sum of squares in double).
void rmsNorm(const float *x, const float *w, uint32_t n, float eps, float *y);

// Activations of n tokens, prepared for BitLinear.
struct BitLinearInput {
  ActQuant mode = ActQuant::PerToken;
  uint32_t tokens = 0;
  uint32_t cols = 0;
  std::vector<int8_t> q;    // PerToken: [tokens][cols]
  std::vector<float> scale; // PerToken: [tokens], s = 127 / max(|x|, 1e-5)
  std::vector<float> x;     // None: [tokens][cols]
};

// s = 127 / max(|x|, 1e-5); q = clamp(round(x*s), -128, 127), round half
// away from zero.
void quantizeActivations(const float *x, uint32_t tokens, uint32_t cols,
                         ActQuant mode, BitLinearInput &out);

// y[t][r] for every token t and row r of w: per scale block the integer
// (or float, mode None) dot product of codes and activations, times the
// block scale, summed over blocks in order, then divided by the token's s.
void bitLinear(const TernaryLinear &w, const BitLinearInput &in,
               float *y /*[tokens][rows]*/, ThreadPool &pool);

// NEOX rotary embedding of one head vector in place: pairs (i, i + nRot/2)
// for i < nRot/2, angle pos * base^(-2i/nRot); dims >= nRot untouched.
void ropeNeox(float *v, uint32_t nRot, uint64_t pos, float freqBase);

// out[c] = act(gate[c]) * up[c]: SiLU (x / (1 + e^-x)) or squared ReLU.
void gatedActivation(const float *gate, const float *up, uint32_t n,
                     FfnActivation act, float *out);

// logits[v] = dot(head row v, x), rows split over the pool.
void lmHead(const DenseMatrix &head, const float *x, float *logits,
            ThreadPool &pool);

} // namespace tern::model
