// Microbenchmarks of the matmul and lm_head ukernels (Google Benchmark),
// single thread, on BitNet b1.58 2B4T shapes. Not a test: run
// build/bin/ukernels_bench. Packed weights are random bytes in the i2s/tl1
// layouts (every 2-bit code in 0..2, every tl1 nibble in 0..8).
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "runtime/ukernels/ukernels.h"

namespace {

struct Data {
  std::vector<uint8_t> packed;
  std::vector<int8_t> q;
  std::vector<float> qs, x, out;
};

Data make(bool tl1, int64_t m, int64_t k, int64_t n) {
  std::mt19937 rng(1);
  Data d;
  const int64_t codeBytes = m * k / 4; // m, k multiples of the tiles
  d.packed.resize((codeBytes + 63) / 64 * 64 + 4);
  for (int64_t i = 0; i < codeBytes; ++i) {
    if (tl1) {
      d.packed[i] = uint8_t(rng() % 9 | (rng() % 9) << 4);
    } else {
      uint8_t b = 0;
      for (int j = 0; j < 4; ++j)
        b |= uint8_t(rng() % 3) << (2 * j);
      d.packed[i] = b;
    }
  }
  const float one = 1.0f;
  std::memcpy(d.packed.data() + d.packed.size() - 4, &one, 4);
  d.q.resize(n * k);
  for (auto &v : d.q)
    v = int8_t(int(rng() % 256) - 128);
  d.qs.assign(n, 10.0f);
  d.x.assign(n * k, 0.5f);
  d.out.resize(n * m);
  return d;
}

using MatmulI8 = void (*)(TERN_UK_MATMUL_I8_ARGS);

void runMatmul(benchmark::State &st, MatmulI8 fn, bool tl1, int64_t tm) {
  const int64_t m = st.range(0), k = st.range(1), n = st.range(2), tk = 256;
  Data d = make(tl1, m, k, n);
  for (auto _ : st) {
    fn(nullptr, n, d.q.data(), d.qs.data(), d.packed.data(), m, k, tm, tk, d.out.data(), m, nullptr,
       0, nullptr, 0);
    benchmark::DoNotOptimize(d.out.data());
  }
  st.counters["Gweights/s"] =
      benchmark::Counter(double(m) * k * n * st.iterations() / 1e9, benchmark::Counter::kIsRate);
}

void shapes(benchmark::internal::Benchmark *b) {
  for (int64_t n : {1, 8})
    for (auto mk : {std::pair<int64_t, int64_t>{2560, 2560}, {13824, 2560}, {2560, 6912}})
      b->Args({mk.first, mk.second, n});
  b->Unit(benchmark::kMicrosecond);
}

// tl2 with tile_k = 240: random magnitudes 0..13 and signs.
void runTl2(benchmark::State &st, MatmulI8 fn) {
  const int64_t m = st.range(0), k = st.range(1), n = st.range(2), tm = 32, tk = 240;
  const int64_t kp = (k + tk - 1) / tk * tk, tri = tk / 3;
  const int64_t tbytes = tm * (tri / 2) + tm * (tri / 16) * 2;
  const int64_t codeBytes = (m / tm) * (kp / tk) * tbytes;
  std::mt19937 rng(2);
  Data d = make(false, 0, 0, n);
  d.packed.resize((codeBytes + 63) / 64 * 64 + 4);
  for (int64_t i = 0; i < codeBytes; ++i)
    d.packed[i] = uint8_t(rng() % 14 | (rng() % 14) << 4);
  d.q.resize(n * k);
  for (auto &v : d.q)
    v = int8_t(int(rng() % 256) - 128);
  d.out.resize(n * m);
  for (auto _ : st) {
    fn(nullptr, n, d.q.data(), d.qs.data(), d.packed.data(), m, k, tm, tk, d.out.data(), m, nullptr,
       0, nullptr, 0);
    benchmark::DoNotOptimize(d.out.data());
  }
  st.counters["Gweights/s"] =
      benchmark::Counter(double(m) * k * n * st.iterations() / 1e9, benchmark::Counter::kIsRate);
}
void BM_tl2_ref(benchmark::State &st) { runTl2(st, &tern_uk_matmul_tl2_ref); }
BENCHMARK(BM_tl2_ref)->Apply(shapes);
#if defined(__x86_64__)
void BM_tl2_avx2(benchmark::State &st) {
  if (!__builtin_cpu_supports("avx2"))
    return st.SkipWithError("no avx2");
  runTl2(st, &tern_uk_matmul_tl2_avx2);
}
BENCHMARK(BM_tl2_avx2)->Apply(shapes);
#endif

void BM_i2s_ref(benchmark::State &st) { runMatmul(st, &tern_uk_matmul_i2s_ref, false, 32); }
BENCHMARK(BM_i2s_ref)->Apply(shapes);
void BM_tl1_ref(benchmark::State &st) { runMatmul(st, &tern_uk_matmul_tl1_ref, true, 64); }
BENCHMARK(BM_tl1_ref)->Apply(shapes);
#if defined(__x86_64__)
void BM_i2s_avx2(benchmark::State &st) {
  if (!__builtin_cpu_supports("avx2"))
    return st.SkipWithError("no avx2");
  runMatmul(st, &tern_uk_matmul_i2s_avx2, false, 32);
}
BENCHMARK(BM_i2s_avx2)->Apply(shapes);
void BM_i2s_avx512_vnni(benchmark::State &st) {
  if (!__builtin_cpu_supports("avx512vnni") || !__builtin_cpu_supports("avx512vl"))
    return st.SkipWithError("no avx512 vnni");
  runMatmul(st, &tern_uk_matmul_i2s_avx512_vnni, false, 32);
}
BENCHMARK(BM_i2s_avx512_vnni)->Apply(shapes);
#endif

// Prefill (GEMM) shapes of 2B4T: hidden 2560, ffn 6912, kv 640 (q/o 2560x2560,
// k/v 640x2560, gate/up 6912x2560, down 2560x6912), n = 1 .. 512 tokens. The
// avx512_vnni entry runs the AMX GEMM for n >= 6 where the CPU has it.
void gemmShapes(benchmark::internal::Benchmark *b) {
  for (int64_t n : {1, 8, 16, 64, 128, 512})
    for (auto mk :
         {std::pair<int64_t, int64_t>{2560, 2560}, {640, 2560}, {6912, 2560}, {2560, 6912}})
      b->Args({mk.first, mk.second, n});
  b->Unit(benchmark::kMicrosecond);
}
#if defined(__x86_64__)
void BM_gemm_i2s_avx2(benchmark::State &st) {
  if (!__builtin_cpu_supports("avx2"))
    return st.SkipWithError("no avx2");
  runMatmul(st, &tern_uk_matmul_i2s_avx2, false, 32);
}
BENCHMARK(BM_gemm_i2s_avx2)->Apply(gemmShapes);
void BM_gemm_i2s_avx512_vnni(benchmark::State &st) {
  if (!__builtin_cpu_supports("avx512vnni") || !__builtin_cpu_supports("avx512vl"))
    return st.SkipWithError("no avx512 vnni");
  runMatmul(st, &tern_uk_matmul_i2s_avx512_vnni, false, 32);
}
BENCHMARK(BM_gemm_i2s_avx512_vnni)->Apply(gemmShapes);
#endif

using LmHead = void (*)(TERN_UK_LM_HEAD_ARGS);
void runHead(benchmark::State &st, LmHead fn) {
  const int64_t vocab = 32000, hidden = 2560, n = 1;
  std::vector<uint16_t> w(vocab * hidden, 0x3c00);
  std::vector<float> x(hidden, 0.25f), logits(vocab);
  for (auto _ : st) {
    fn(nullptr, n, x.data(), w.data(), logits.data(), hidden, vocab, 16, 256);
    benchmark::DoNotOptimize(logits.data());
  }
  st.counters["GB/s"] = benchmark::Counter(double(vocab) * hidden * 2 * st.iterations() / 1e9,
                                           benchmark::Counter::kIsRate);
}
void BM_lm_head_ref(benchmark::State &st) { runHead(st, &tern_uk_lm_head_f16_ref); }
BENCHMARK(BM_lm_head_ref)->Unit(benchmark::kMillisecond);
#if defined(__x86_64__)
void BM_lm_head_avx2(benchmark::State &st) {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("f16c"))
    return st.SkipWithError("no avx2/f16c");
  runHead(st, &tern_uk_lm_head_f16_avx2);
}
BENCHMARK(BM_lm_head_avx2)->Unit(benchmark::kMillisecond);
#endif

} // namespace

BENCHMARK_MAIN();
