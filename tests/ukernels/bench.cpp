// Microbenchmarks of the matmul and lm_head ukernels (Google Benchmark),
// single thread, on BitNet b1.58 2B4T shapes: every matmul variant of
// variants.def the host runs, the numbers behind the cost model
// (docs/cost-model.md). Not a test: run build/bin/ukernels_bench.
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "runtime/ukernels/ukernels.h"

namespace {

using MatmulI8 = void (*)(TERN_UK_MATMUL_I8_ARGS);
using MatmulF32 = void (*)(TERN_UK_MATMUL_F32_ARGS);

// One matmul variant of variants.def; fn is null when this host's library
// lacks it (another architecture).
struct Variant {
  const char *layout, *act, *isa;
  void *fn;
};

#if defined(__x86_64__)
#define UK_PTR_avx2(f) reinterpret_cast<void *>(&f)
#define UK_PTR_avx512_vnni(f) reinterpret_cast<void *>(&f)
#define UK_PTR_neon(f) nullptr
#define UK_PTR_neon_dotprod(f) nullptr
#else
#define UK_PTR_avx2(f) nullptr
#define UK_PTR_avx512_vnni(f) nullptr
#define UK_PTR_neon(f) reinterpret_cast<void *>(&f)
#define UK_PTR_neon_dotprod(f) reinterpret_cast<void *>(&f)
#endif
#define UK_PTR_ref(f) reinterpret_cast<void *>(&f)
#define UK_FN_i8(layout, isa) UK_PTR_##isa(tern_uk_matmul_##layout##_##isa)
#define UK_FN_f32(layout, isa) UK_PTR_##isa(tern_uk_matmul_##layout##_f32act_##isa)
const Variant kVariants[] = {
#define TERN_UK_VARIANT(layout, act, isa) {#layout, #act, #isa, UK_FN_##act(layout, isa)},
#include "runtime/ukernels/variants.def"
#undef TERN_UK_VARIANT
};

bool hostRuns(const std::string &isa) {
#if defined(__x86_64__)
  if (isa == "avx2")
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == "avx512_vnni")
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw");
#endif
  return isa == "ref";
}

// The tiles the benchmark packs with (the cost model's reference tiles,
// docs/cost-model.md): tile_m 32, tile_k 256 (tl2: 240, tl1: tile_m 64).
int64_t benchTileM(const std::string &layout) { return layout == "tl1" ? 64 : 32; }
int64_t benchTileK(const std::string &layout) { return layout == "tl2" ? 240 : 256; }

// Random codes in the packed layout: i2s 2-bit codes 0..2, tl1 nibbles
// 0..8, tl2 magnitudes 0..13 with random sign words, tq1 base-3 bytes;
// scales 1 (one f32 at the end, or the f16 inside each tq block).
std::vector<uint8_t> packedFor(const std::string &layout, int64_t m, int64_t k) {
  std::mt19937 rng(1);
  const int64_t tm = benchTileM(layout), tk = benchTileK(layout);
  const int64_t mp = (m + tm - 1) / tm * tm, kp = (k + tk - 1) / tk * tk;
  int64_t codeBytes = mp * kp / 4;
  if (layout == "tl2") {
    const int64_t tri = tk / 3, tbytes = tm * (tri / 2) + tm * (tri / 16) * 2;
    codeBytes = (mp / tm) * (kp / tk) * tbytes;
  }
  const int64_t block = layout == "tq2" ? 66 : layout == "tq1" ? 54 : 0;
  if (block)
    codeBytes = mp * (kp / 256) * block;
  std::vector<uint8_t> p((codeBytes + 63) / 64 * 64 + 4);
  for (int64_t i = 0; i < codeBytes; ++i) {
    if (layout == "tl1") {
      p[i] = uint8_t(rng() % 9 | (rng() % 9) << 4);
    } else if (layout == "tl2") {
      p[i] = uint8_t(rng() % 14 | (rng() % 14) << 4);
    } else if (layout == "tq1") {
      p[i] = uint8_t(rng() % 243);
    } else {
      uint8_t b = 0;
      for (int j = 0; j < 4; ++j)
        b |= uint8_t(rng() % 3) << (2 * j);
      p[i] = b;
    }
  }
  for (int64_t b = 0; block && b < codeBytes; b += block) {
    p[b + block - 2] = 0x00; // f16 1.0, little endian
    p[b + block - 1] = 0x3c;
  }
  const float one = 1.0f;
  std::memcpy(p.data() + p.size() - 4, &one, 4);
  return p;
}

void runVariant(benchmark::State &st, const Variant &v) {
  const int64_t m = st.range(0), k = st.range(1), n = st.range(2);
  const std::string layout = v.layout;
  const int64_t tm = benchTileM(layout), tk = benchTileK(layout);
  std::vector<uint8_t> packed = packedFor(layout, m, k);
  std::mt19937 rng(2);
  std::vector<int8_t> q(n * k);
  for (auto &x : q)
    x = int8_t(int(rng() % 256) - 128);
  std::vector<float> qs(n, 10.0f), x(n * k, 0.5f), out(n * m);
  const bool f32 = std::string(v.act) == "f32";
  for (auto _ : st) {
    if (f32)
      reinterpret_cast<MatmulF32>(v.fn)(nullptr, n, x.data(), packed.data(), m, k, tm, tk,
                                        out.data(), m, nullptr, 0, nullptr, 0);
    else
      reinterpret_cast<MatmulI8>(v.fn)(nullptr, n, q.data(), qs.data(), packed.data(), m, k, tm, tk,
                                       out.data(), m, nullptr, 0, nullptr, 0);
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["Gweights/s"] =
      benchmark::Counter(double(m) * k * n * st.iterations() / 1e9, benchmark::Counter::kIsRate);
}

// Every fast variant the host runs at the BitNet b1.58 2B4T matrix shapes
// (fused q+k+v 3840, o 2560, k/v 640, fused gate+up 13824, gate/up 6912,
// down 2560x6912) for decode (n = 1) and prefill (n = 64, 128); the scalar
// twins only at 2560x2560, n = 1 and 64 (they are slow).
void registerMatmuls() {
  const std::pair<int64_t, int64_t> shapes[] = {{3840, 2560},  {2560, 2560}, {640, 2560},
                                                {13824, 2560}, {6912, 2560}, {2560, 6912}};
  for (const Variant &v : kVariants) {
    if (!v.fn || !hostRuns(v.isa))
      continue;
    const std::string name = std::string("BM_matmul/") + v.layout + "_" + v.act + "_" + v.isa;
    auto *b = benchmark::RegisterBenchmark(name.c_str(),
                                           [&v](benchmark::State &st) { runVariant(st, v); });
    b->Unit(benchmark::kMicrosecond)->ArgNames({"m", "k", "n"});
    if (std::string(v.isa) == "ref") {
      b->Args({2560, 2560, 1})->Args({2560, 2560, 64});
      continue;
    }
    for (int64_t n : {1, 64, 128})
      for (auto [m, k] : shapes)
        b->Args({m, k, n});
  }
}

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

int main(int argc, char **argv) {
  registerMatmuls();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv))
    return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
