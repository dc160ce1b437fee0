// Helpers shared by the ukernel tests: a tern_ctx whose parallel_for is the
// reference thread pool, or a deliberately odd splitter, and random data.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "runtime/model/thread_pool.h"
#include "runtime/ukernels/ukernels.h"

namespace tern::uktest {

inline void poolFor(void *pool, int64_t n, int64_t, tern_range_fn fn, void *arg) {
  static_cast<model::ThreadPool *>(pool)->parallelFor(
      size_t(n), [&](size_t b, size_t e) { fn(arg, int64_t(b), int64_t(e)); });
}

// Single items, last first: any result that depends on the split shows up.
inline void reverseFor(void *, int64_t n, int64_t, tern_range_fn fn, void *arg) {
  for (int64_t i = n - 1; i >= 0; --i)
    fn(arg, i, i + 1);
}

enum class Split { None, Pool, Reverse };

struct Ctx {
  tern_ctx ctx{};
  model::ThreadPool pool{3};
  explicit Ctx(Split s = Split::None) {
    ctx.abi_version = TERN_ABI_VERSION;
    if (s == Split::Pool) {
      ctx.pool = &pool;
      ctx.parallel_for = &poolFor;
    } else if (s == Split::Reverse) {
      ctx.parallel_for = &reverseFor;
    }
  }
};

inline std::vector<float> randomFloats(std::mt19937 &rng, size_t n, float sd = 1.0f) {
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (float &x : v)
    x = nd(rng);
  return v;
}

inline bool sameBits(float a, float b) {
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

} // namespace tern::uktest
