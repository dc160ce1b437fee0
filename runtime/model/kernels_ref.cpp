#include "runtime/model/kernels_ref.h"

#include <algorithm>
#include <cmath>

namespace tern::model {

const char *actQuantName(ActQuant a) {
  return a == ActQuant::PerToken ? "token" : "none";
}

void rmsNorm(const float *x, const float *w, uint32_t n, float eps, float *y) {
  double ss = 0.0;
  for (uint32_t i = 0; i < n; ++i)
    ss += double(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / n + eps));
  for (uint32_t i = 0; i < n; ++i)
    y[i] = x[i] * scale * w[i];
}

void quantizeActivations(const float *x, uint32_t tokens, uint32_t cols,
                         ActQuant mode, BitLinearInput &out) {
  out.mode = mode;
  out.tokens = tokens;
  out.cols = cols;
  if (mode == ActQuant::None) {
    out.x.assign(x, x + uint64_t(tokens) * cols);
    out.q.clear();
    out.scale.clear();
    return;
  }
  out.x.clear();
  out.q.resize(uint64_t(tokens) * cols);
  out.scale.resize(tokens);
  for (uint32_t t = 0; t < tokens; ++t) {
    const float *xt = x + uint64_t(t) * cols;
    float amax = 0.0f;
    for (uint32_t c = 0; c < cols; ++c)
      amax = std::max(amax, std::fabs(xt[c]));
    const float s = 127.0f / std::max(amax, 1e-5f);
    out.scale[t] = s;
    int8_t *qt = out.q.data() + uint64_t(t) * cols;
    for (uint32_t c = 0; c < cols; ++c) {
      float v = std::round(xt[c] * s);
      v = std::clamp(v, -128.0f, 127.0f);
      qt[c] = static_cast<int8_t>(v);
    }
  }
}

void bitLinear(const TernaryLinear &w, const BitLinearInput &in, float *y,
               ThreadPool &pool) {
  const uint32_t rows = w.rows, cols = w.cols, bc = w.blockCols,
                 nb = w.blocksPerRow;
  const uint32_t T = in.tokens;
  pool.parallelFor(rows, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) {
      const int8_t *code = w.codes.data() + r * cols;
      const float *sc = w.scales.data() + r * nb;
      for (uint32_t t = 0; t < T; ++t) {
        float sum = 0.0f;
        if (in.mode == ActQuant::PerToken) {
          const int8_t *q = in.q.data() + uint64_t(t) * cols;
          for (uint32_t b = 0; b < nb; ++b) {
            int32_t acc = 0;
            for (uint32_t c = b * bc; c < (b + 1) * bc; ++c)
              acc += int32_t(code[c]) * int32_t(q[c]);
            sum += static_cast<float>(acc) * sc[b];
          }
          y[uint64_t(t) * rows + r] = sum / in.scale[t];
        } else {
          const float *x = in.x.data() + uint64_t(t) * cols;
          for (uint32_t b = 0; b < nb; ++b) {
            float acc = 0.0f;
            for (uint32_t c = b * bc; c < (b + 1) * bc; ++c)
              acc += code[c] * x[c];
            sum += acc * sc[b];
          }
          y[uint64_t(t) * rows + r] = sum;
        }
      }
    }
  });
}

void ropeNeox(float *v, uint32_t nRot, uint64_t pos, float freqBase) {
  const uint32_t half = nRot / 2;
  for (uint32_t i = 0; i < half; ++i) {
    const double theta =
        double(pos) * std::pow(double(freqBase), -2.0 * i / nRot);
    const float c = static_cast<float>(std::cos(theta));
    const float s = static_cast<float>(std::sin(theta));
    const float x0 = v[i], x1 = v[i + half];
    v[i] = x0 * c - x1 * s;
    v[i + half] = x0 * s + x1 * c;
  }
}

void gatedActivation(const float *gate, const float *up, uint32_t n,
                     FfnActivation act, float *out) {
  if (act == FfnActivation::SiluGated) {
    for (uint32_t i = 0; i < n; ++i)
      out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
  } else {
    for (uint32_t i = 0; i < n; ++i) {
      const float r = std::max(gate[i], 0.0f);
      out[i] = r * r * up[i];
    }
  }
}

void lmHead(const DenseMatrix &head, const float *x, float *logits,
            ThreadPool &pool) {
  pool.parallelFor(head.rows, [&](size_t v0, size_t v1) {
    for (size_t v = v0; v < v1; ++v)
      logits[v] = head.dotRow(static_cast<uint32_t>(v), x);
  });
}

} // namespace tern::model
