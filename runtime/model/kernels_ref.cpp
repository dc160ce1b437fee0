#include "runtime/model/kernels_ref.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "runtime/formats/half.h"

namespace tern::model {

const char *actQuantName(ActQuant a) {
  switch (a) {
  case ActQuant::PerToken:
    return "token";
  case ActQuant::None:
    return "none";
  case ActQuant::Q8K:
    return "q8k";
  }
  return "?";
}

float roundToF16(float x) { return half::f16_to_f32(half::f32_to_f16(x)); }

namespace {
// ggml's nearest_int: round half to even via the 1.5*2^23 trick (|v| must
// stay below 2^22).
inline int nearestInt(float v) {
  const float t = v + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &t, sizeof i);
  return (i & 0x007fffff) - 0x00400000;
}
} // namespace

void quantizeQ8K(const float *x, uint32_t n, int8_t *q, float *d) {
  for (uint32_t b = 0; b < n / kQ8KBlock; ++b) {
    const float *xb = x + uint64_t(b) * kQ8KBlock;
    int8_t *qb = q + uint64_t(b) * kQ8KBlock;
    float mx = 0.0f, amax = 0.0f;
    for (uint32_t j = 0; j < kQ8KBlock; ++j) {
      const float ax = std::fabs(xb[j]);
      if (ax > amax) {
        amax = ax;
        mx = xb[j];
      }
    }
    if (amax == 0.0f) {
      d[b] = 0.0f;
      std::fill_n(qb, kQ8KBlock, int8_t(0));
      continue;
    }
    const float iscale = -127.0f / mx;
    for (uint32_t j = 0; j < kQ8KBlock; ++j) {
      qb[j] = static_cast<int8_t>(std::min(127, nearestInt(iscale * xb[j])));
    }
    d[b] = 1.0f / iscale;
  }
}

bool bitLinearSupportsQ8K(const TernaryMatrix &w) {
  return w.cols % kQ8KBlock == 0 && w.blockCols() % kQ8KBlock == 0;
}

void rmsNorm(const float *x, const float *w, uint32_t n, float eps, float *y) {
  double ss = 0.0;
  for (uint32_t i = 0; i < n; ++i)
    ss += double(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / n + eps));
  for (uint32_t i = 0; i < n; ++i)
    y[i] = x[i] * scale * w[i];
}

void rmsNormGgml(const float *x, const float *w, uint32_t n, float eps, float *y) {
  double ss = 0.0;
  for (uint32_t i = 0; i < n; ++i)
    ss += double(x[i] * x[i]);
  const float mean = static_cast<float>(ss / n);
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (uint32_t i = 0; i < n; ++i)
    y[i] = x[i] * scale * w[i];
}

void quantizeActivations(const float *x, uint32_t tokens, uint32_t cols, ActQuant mode,
                         BitLinearInput &out) {
  out.mode = mode;
  out.tokens = tokens;
  out.cols = cols;
  if (mode == ActQuant::Q8K) {
    out.x.clear();
    out.q.resize(uint64_t(tokens) * cols);
    const uint32_t nb = cols / kQ8KBlock;
    out.scale.resize(uint64_t(tokens) * nb);
    for (uint32_t t = 0; t < tokens; ++t)
      quantizeQ8K(x + uint64_t(t) * cols, cols, out.q.data() + uint64_t(t) * cols,
                  out.scale.data() + uint64_t(t) * nb);
    return;
  }
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

namespace {
// Whether block b is the last of a run of consecutive blocks with the same
// scale: a scale multiplies the sum of all the codes it covers at once.
inline bool endsRun(const float *sc, uint32_t b, uint32_t nb) {
  return b + 1 == nb || sc[b + 1] != sc[b];
}
} // namespace

void bitLinear(const TernaryMatrix &w, const BitLinearInput &in, float *y, ThreadPool &pool) {
  const uint32_t rows = uint32_t(w.rows), cols = uint32_t(w.cols);
  const uint32_t bc = uint32_t(w.blockCols()), nb = uint32_t(w.blocksPerRow());
  const uint32_t T = in.tokens;
  pool.parallelFor(rows, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) {
      const int8_t *code = w.codes.data() + r * cols;
      const float *sc = w.rowScales(r);
      for (uint32_t t = 0; t < T; ++t) {
        float sum = 0.0f;
        if (in.mode == ActQuant::PerToken) {
          const int8_t *q = in.q.data() + uint64_t(t) * cols;
          int32_t acc = 0;
          for (uint32_t b = 0; b < nb; ++b) {
            for (uint32_t c = b * bc; c < (b + 1) * bc; ++c)
              acc += int32_t(code[c]) * int32_t(q[c]);
            if (endsRun(sc, b, nb)) {
              sum += static_cast<float>(acc) * sc[b];
              acc = 0;
            }
          }
          y[uint64_t(t) * rows + r] = sum / in.scale[t];
        } else if (in.mode == ActQuant::Q8K) {
          const int8_t *q = in.q.data() + uint64_t(t) * cols;
          const float *dx = in.scale.data() + uint64_t(t) * (cols / kQ8KBlock);
          for (uint32_t b = 0; b < cols / kQ8KBlock; ++b) {
            int32_t acc = 0;
            for (uint32_t c = b * kQ8KBlock; c < (b + 1) * kQ8KBlock; ++c)
              acc += int32_t(code[c]) * int32_t(q[c]);
            const float d = dx[b] * sc[b * kQ8KBlock / bc];
            sum += static_cast<float>(acc) * d;
          }
          y[uint64_t(t) * rows + r] = sum;
        } else {
          const float *x = in.x.data() + uint64_t(t) * cols;
          float acc = 0.0f;
          for (uint32_t b = 0; b < nb; ++b) {
            for (uint32_t c = b * bc; c < (b + 1) * bc; ++c)
              acc += code[c] * x[c];
            if (endsRun(sc, b, nb)) {
              sum += acc * sc[b];
              acc = 0.0f;
            }
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
    const double theta = double(pos) * std::pow(double(freqBase), -2.0 * i / nRot);
    const float c = static_cast<float>(std::cos(theta));
    const float s = static_cast<float>(std::sin(theta));
    const float x0 = v[i], x1 = v[i + half];
    v[i] = x0 * c - x1 * s;
    v[i + half] = x0 * s + x1 * c;
  }
}

void ropeNeoxGgml(float *v, uint32_t nRot, uint64_t pos, float freqBase) {
  const uint32_t half = nRot / 2;
  const float thetaScale = std::pow(freqBase, -2.0f / float(nRot));
  float theta = static_cast<float>(pos);
  for (uint32_t i = 0; i < half; ++i) {
    const float c = std::cos(theta), s = std::sin(theta);
    const float x0 = v[i], x1 = v[i + half];
    v[i] = x0 * c - x1 * s;
    v[i + half] = x0 * s + x1 * c;
    theta *= thetaScale;
  }
}

void gatedActivation(const float *gate, const float *up, uint32_t n, FfnActivation act,
                     float *out) {
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

void lmHead(const DenseMatrix &head, const float *x, float *logits, ThreadPool &pool) {
  if (!head.q8.empty()) { // the q8 head: integer, on the token quantized per token
    BitLinearInput in;
    quantizeActivations(x, 1, head.cols, ActQuant::PerToken, in);
    pool.parallelFor(head.rows, [&](size_t v0, size_t v1) {
      for (size_t v = v0; v < v1; ++v)
        logits[v] = head.dotRowQ8(static_cast<uint32_t>(v), in.q.data(), in.scale[0]);
    });
    return;
  }
  pool.parallelFor(head.rows, [&](size_t v0, size_t v1) {
    for (size_t v = v0; v < v1; ++v)
      logits[v] = head.dotRow(static_cast<uint32_t>(v), x);
  });
}

} // namespace tern::model
