// The batch (prefill) paths of the i2s int8 matmul: every x86 variant the
// host runs against the `ref` twin, bit for bit, on random packed weights
// with M, K and token tails (shapes not multiples of any tile), for batches
// of 1..600 tokens (600 only outside the sanitizer build) and three work
// splits; and batch invariance: token t of an n-token call has the bits of
// the same token run alone. On a CPU with AMX-INT8 (and Linux's tile
// permission) the avx512_vnni entry runs the AMX GEMM for n >= 6; the test
// prints whether that path was exercised and why not.
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "tests/ukernels/test_util.h"
#include "gtest/gtest.h"

namespace tern::uktest {
namespace {

using MatmulI8 = void (*)(TERN_UK_MATMUL_I8_ARGS);

struct Kernel {
  const char *name;
  MatmulI8 fn;
  std::string whyNot; // empty: runs here
};

std::vector<Kernel> kernels() {
  std::vector<Kernel> ks;
#if defined(__x86_64__)
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
  const bool vnni = avx2 && __builtin_cpu_supports("avx512f") &&
                    __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                    __builtin_cpu_supports("avx512vnni");
  ks.push_back({"avx2", &tern_uk_matmul_i2s_avx2, avx2 ? "" : "the CPU lacks avx2/fma/f16c"});
  ks.push_back({"avx512_vnni", &tern_uk_matmul_i2s_avx512_vnni,
                vnni ? "" : "the CPU lacks avx512f/bw/vl/vnni"});
#endif
  return ks;
}

// Whether the avx512_vnni entry takes its AMX path for n >= 6 here, and why
// not (the same checks as the kernel: CPU flags, then the Linux permission).
std::string amxWhyNot() {
#if defined(__x86_64__) && defined(__linux__)
  if (!__builtin_cpu_supports("avx512vnni"))
    return "the CPU lacks avx512vnni";
  if (!__builtin_cpu_supports("amx-tile") || !__builtin_cpu_supports("amx-int8"))
    return "the CPU lacks amx-tile/amx-int8";
  if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) != 0)
    return "Linux refused the AMX tile data permission";
  return "";
#else
  return "not x86-64 Linux";
#endif
}

// Random i2s bytes for an m x k matrix in tiles tm x tk (codes 0..2
// everywhere, padding included) and one scale per segment.
std::vector<uint8_t> randomPacked(std::mt19937 &rng, int64_t m, int64_t k, int64_t tm, int64_t tk,
                                  int nsegs) {
  const int64_t mp = (m + tm - 1) / tm * tm, kp = (k + tk - 1) / tk * tk;
  const int64_t codeBytes = mp * kp / 4, at = (codeBytes + 63) / 64 * 64;
  std::vector<uint8_t> p(at + 4 * nsegs);
  for (int64_t i = 0; i < codeBytes; ++i) {
    uint8_t b = 0;
    for (int j = 0; j < 4; ++j)
      b |= uint8_t(rng() % 3) << (2 * j);
    p[i] = b;
  }
  std::uniform_real_distribution<float> ud(0.25f, 2.0f);
  for (int s = 0; s < nsegs; ++s) {
    const float sc = ud(rng);
    std::memcpy(p.data() + at + 4 * s, &sc, 4);
  }
  return p;
}

struct Shape {
  int64_t tm, tk;
  std::vector<int64_t> segs;
  int64_t k;
};

struct Problem {
  int64_t m, k, tm, tk;
  std::vector<int64_t> segs; // 3 entries
  std::vector<uint8_t> packed;
};

// out[t][r] over all segments, row-major [n][m].
std::vector<float> run(MatmulI8 fn, const Problem &p, int64_t n, const int8_t *q, const float *qs,
                       Split split) {
  Ctx c(split);
  std::vector<std::vector<float>> outs(3);
  for (int i = 0; i < 3; ++i)
    outs[i].assign(n * p.segs[i], NAN);
  fn(&c.ctx, n, q, qs, p.packed.data(), p.m, p.k, p.tm, p.tk, outs[0].data(), p.segs[0],
     p.segs[1] ? outs[1].data() : nullptr, p.segs[1], p.segs[2] ? outs[2].data() : nullptr,
     p.segs[2]);
  std::vector<float> all(n * p.m);
  for (int64_t t = 0; t < n; ++t) {
    int64_t r = 0;
    for (int s = 0; s < 3; ++s)
      for (int64_t i = 0; i < p.segs[s]; ++i, ++r)
        all[t * p.m + r] = outs[s][t * p.segs[s] + i];
  }
  return all;
}

std::vector<int64_t> batchSizes() {
  std::vector<int64_t> ns = {1, 2, 5, 6, 7, 15, 16, 17, 31, 32, 33, 48, 64, 100, 300};
#if !defined(TERN_SANITIZE_BUILD)
  ns.push_back(600);
#endif
  return ns;
}

const std::vector<Shape> &shapes() {
  static const std::vector<Shape> s = {
      {32, 256, {64}, 256},
      {16, 128, {40, 24, 24}, 384},
      {64, 512, {100}, 700},
      {16, 256, {37, 11}, 200},
      {8, 128, {5}, 1000},
      {4, 128, {3}, 100},
      {128, 256, {300}, 1088},
      {32, 256, {70, 26}, 2560},
      {8, 128, {45}, 130},
      {16, 1024, {33, 1}, 1024},
      // 29 rows: three 8-row decode steps (avx512_vnni, 4 row pairs in
      // flight), two row pairs and the odd row; 3 blocks per K tile, K tail.
      {32, 384, {29}, 1000},
      // AMX: a second K chunk (2048 columns) of 3 steps (odd: half a
      // 128-column block) ending in a 24-column tail.
      {32, 256, {70}, 2200},
  };
  return s;
}

TEST(I2sGemm, EveryBatchPathMatchesRefBitForBit) {
  const std::string amx = amxWhyNot();
  if (amx.empty())
    std::printf("AMX path: exercised (i2s avx512_vnni, n >= 6)\n");
  else
    std::printf("AMX path: not exercised (%s)\n", amx.c_str());
  int ran = 0;
  for (const Kernel &kn : kernels()) {
    if (!kn.whyNot.empty()) {
      std::printf("skipped: i2s i8 %s (%s)\n", kn.name, kn.whyNot.c_str());
      continue;
    }
    std::mt19937 rng(21);
    for (const Shape &sh : shapes()) {
      Problem p;
      p.tm = sh.tm;
      p.tk = sh.tk;
      p.k = sh.k;
      p.segs = sh.segs;
      p.m = 0;
      for (int64_t s : sh.segs)
        p.m += s;
      p.segs.resize(3, 0);
      p.packed = randomPacked(rng, p.m, p.k, p.tm, p.tk, int(sh.segs.size()));
      for (int64_t n : batchSizes()) {
        std::vector<int8_t> q(n * p.k);
        for (auto &v : q)
          v = int8_t(int(rng() % 256) - 128);
        std::uniform_real_distribution<float> ud(0.5f, 100.0f);
        std::vector<float> qs(n);
        for (float &v : qs)
          v = ud(rng);
        const std::vector<float> want =
            run(&tern_uk_matmul_i2s_ref, p, n, q.data(), qs.data(), Split::None);
        for (Split s : {Split::None, Split::Pool, Split::Reverse}) {
          if (s == Split::Reverse && n > 64)
            continue; // one row tile per call: slow, the small batches cover it
          const std::vector<float> got = run(kn.fn, p, n, q.data(), qs.data(), s);
          for (int64_t i = 0; i < n * p.m; ++i)
            ASSERT_TRUE(sameBits(got[i], want[i]))
                << kn.name << " tile " << p.tm << "x" << p.tk << " m=" << p.m << " k=" << p.k
                << " n=" << n << " split " << int(s) << " t=" << i / p.m << " row=" << i % p.m
                << ": " << got[i] << " vs ref " << want[i];
        }
        // Batch invariance: a few tokens of this batch run alone.
        for (int64_t t : {int64_t(0), n / 2, n - 1}) {
          const std::vector<float> alone =
              run(kn.fn, p, 1, q.data() + t * p.k, qs.data() + t, Split::None);
          const std::vector<float> inBatch = run(kn.fn, p, n, q.data(), qs.data(), Split::Pool);
          for (int64_t r = 0; r < p.m; ++r)
            ASSERT_TRUE(sameBits(alone[r], inBatch[t * p.m + r]))
                << kn.name << " n=" << n << " t=" << t << " row=" << r << ": alone " << alone[r]
                << " in the batch " << inBatch[t * p.m + r];
        }
      }
    }
    ++ran;
    std::printf("runs: i2s i8 %s, batches 1..%lld\n", kn.name, (long long)batchSizes().back());
  }
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) {
    EXPECT_GT(ran, 0);
  }
#endif
}

// The n = 64 case the issue names: token k of a 64-token batch against the
// same token alone, every token, on the 2B4T FFN-down shape's K (6912).
TEST(I2sGemm, Token64BatchEqualsAlone) {
  std::mt19937 rng(22);
  Problem p{96, 6912, 32, 256, {96, 0, 0}, {}};
  p.packed = randomPacked(rng, p.m, p.k, p.tm, p.tk, 1);
  const int64_t n = 64;
  std::vector<int8_t> q(n * p.k);
  for (auto &v : q)
    v = int8_t(int(rng() % 256) - 128);
  std::vector<float> qs(n, 0.0f);
  for (float &v : qs)
    v = 1.0f + float(rng() % 1000) / 7.0f;
  std::vector<MatmulI8> fns = {&tern_uk_matmul_i2s_ref};
  for (const Kernel &kn : kernels())
    if (kn.whyNot.empty())
      fns.push_back(kn.fn);
    else
      std::printf("skipped: i2s i8 %s (%s)\n", kn.name, kn.whyNot.c_str());
  const std::vector<float> ref =
      run(&tern_uk_matmul_i2s_ref, p, n, q.data(), qs.data(), Split::None);
  for (MatmulI8 fn : fns) {
    const std::vector<float> batch = run(fn, p, n, q.data(), qs.data(), Split::Pool);
    for (int64_t t = 0; t < n; ++t) {
      const std::vector<float> alone =
          run(fn, p, 1, q.data() + t * p.k, qs.data() + t, Split::None);
      for (int64_t r = 0; r < p.m; ++r) {
        ASSERT_TRUE(sameBits(alone[r], batch[t * p.m + r])) << "t=" << t << " row=" << r;
        ASSERT_TRUE(sameBits(batch[t * p.m + r], ref[t * p.m + r])) << "t=" << t << " row=" << r;
      }
    }
  }
}

} // namespace
} // namespace tern::uktest
