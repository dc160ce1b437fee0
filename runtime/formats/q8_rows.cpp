#include "runtime/formats/q8_rows.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "runtime/formats/ternary.h"

namespace tern::formats {

void quantizeRowQ8(const float *row, int64_t cols, int8_t *q, float *scale) {
  float amax = 0.0f;
  for (int64_t c = 0; c < cols; ++c)
    amax = std::max(amax, std::fabs(row[c]));
  const float d = amax / 127.0f;
  const float id = d > 0.0f ? 1.0f / d : 0.0f;
  for (int64_t c = 0; c < cols; ++c) {
    const float v = std::round(row[c] * id); // half away from zero
    q[c] = int8_t(std::max(-127.0f, std::min(127.0f, v)));
  }
  *scale = d;
}

void quantizeRowQ8F16(const uint16_t *row, int64_t cols, int8_t *q, float *scale) {
  std::vector<float> f(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c)
    f[c] = f16ToF32(row[c]);
  quantizeRowQ8(f.data(), cols, q, scale);
}

} // namespace tern::formats
