// Microbenchmarks of the matmul, lm_head, attention and other ukernels (Google
// Benchmark), single thread, on BitNet b1.58 2B4T shapes: every matmul
// variant of variants.def the host runs, the numbers behind the cost model
// (docs/cost-model.md). Not a test: run build/bin/ukernels_bench.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sys/mman.h>

#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include "runtime/formats/half.h"
#include "runtime/formats/ternary_decode.h"
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
#define UK_PTR_neon_i8mm(f) nullptr
#else
#define UK_PTR_avx2(f) nullptr
#define UK_PTR_avx512_vnni(f) nullptr
#define UK_PTR_neon(f) reinterpret_cast<void *>(&f)
#define UK_PTR_neon_dotprod(f) reinterpret_cast<void *>(&f)
#define UK_PTR_neon_i8mm(f) reinterpret_cast<void *>(&f)
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
  const int64_t rowBytes = tern::layouts::tl2v_row_bytes(k);
  if (layout == "tl2v")
    codeBytes = mp * rowBytes;
  std::vector<uint8_t> p((codeBytes + 63) / 64 * 64 + 4);
  for (int64_t i = 0; i < codeBytes; ++i) {
    if (layout == "tl2v") { // magnitude nibbles 0..13, any sign bits, tail codes 0..2
      const int64_t at = i % rowBytes, g = at / 40;
      if (g < k / 192 && at % 40 < 32)
        p[i] = uint8_t(rng() % 14 | (rng() % 14) << 4);
      else if (g < k / 192)
        p[i] = uint8_t(rng());
      else
        p[i] = uint8_t(rng() % 3 | (rng() % 3) << 2 | (rng() % 3) << 4 | (rng() % 3) << 6);
    } else if (layout == "tl1") {
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

// BM_gemm: the same run, reported as GOP/s = 10^9 int8 multiply-adds
// (weight x token activation) per CPU second, the unit of the ISA peaks
// below (BM_peak, docs/performance.md).
void runGemm(benchmark::State &st, const Variant &v) {
  runVariant(st, v);
  st.counters["GOP/s"] = st.counters["Gweights/s"];
  st.counters.erase("Gweights/s");
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

// ---- decode over a working set larger than the last-level cache: every
// ternary matrix of the 2B4T shape (30 layers of fused q+k+v 3840x2560, o
// 2560x2560, fused gate+up 13824x2560, down 2560x6912: 2.085 G weights, 521
// MB as i2s, 436 MB as tl2v) in turn, as a decode step reads them, n tokens,
// 1 or 2 threads (a helper thread, polling with sched_yield, takes the
// second half of the row tiles: a static split, like one parallel region).
// Wall-clock rate (CPU time shows how much of it the machine gave us).
struct SpinPool {
  std::atomic<uint64_t> gen{0}, done{0};
  std::atomic<bool> stop{false};
  tern_range_fn fn = nullptr;
  void *arg = nullptr;
  int64_t n = 0;
  std::thread th;
  SpinPool() {
    th = std::thread([this] {
      uint64_t seen = 0;
      for (;;) {
        uint64_t g;
        while ((g = gen.load(std::memory_order_acquire)) == seen) {
          if (stop.load(std::memory_order_relaxed))
            return;
          std::this_thread::yield(); // a shared, loaded machine: give the core away
        }
        seen = g;
        const int64_t half = (n + 1) / 2;
        if (half < n)
          fn(arg, half, n);
        done.store(g, std::memory_order_release);
      }
    });
  }
  ~SpinPool() {
    stop = true;
    th.join();
  }
  static void parallelFor(void *pool, int64_t n, int64_t, tern_range_fn fn, void *arg) {
    auto *p = static_cast<SpinPool *>(pool);
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    const uint64_t g = p->gen.load(std::memory_order_relaxed) + 1;
    p->gen.store(g, std::memory_order_release);
    fn(arg, 0, (n + 1) / 2);
    while (p->done.load(std::memory_order_acquire) != g)
      std::this_thread::yield();
  }
};

// Anonymous memory advised to huge pages (2 MiB aligned), zero-filled.
struct HugeArena {
  uint8_t *data = nullptr;
  size_t size = 0;
  explicit HugeArena(size_t n) : size((n + (size_t(2) << 20) - 1) & ~((size_t(2) << 20) - 1)) {
    void *m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      std::perror("mmap");
      std::abort();
    }
#ifdef MADV_HUGEPAGE
    ::madvise(m, size, MADV_HUGEPAGE);
#endif
    data = static_cast<uint8_t *>(m);
  }
  ~HugeArena() { ::munmap(data, size); }
  HugeArena(const HugeArena &) = delete;
  HugeArena &operator=(const HugeArena &) = delete;
};

struct StreamCase {
  const Variant *v;
  int64_t tileM, tileK; // tileK 0: K rounded up to 128 (whole rows per K tile);
                        // -1: 512 where it divides K, else 256 (ternc's i2s
                        // tiles for the 2B4T shape on AVX-512 hosts)
};

// Every 2B4T ternary matrix of one StreamCase, 30 layers, packed once per
// shape and copied into one arena, 64-byte aligned each, in huge pages where
// the kernel allows them: how the runtime holds a compiled model's weights
// by default (docs/cli.md, "Weights in memory"), so the rates are the
// kernels' in situ, not those of 4 KiB pages.
class StreamSet {
public:
  StreamSet(StreamCase sc, int64_t nMax) : sc_(sc) {
    const int64_t layers = 30;
    const std::string layout = sc.v->layout;
    const std::pair<int64_t, int64_t> shapes[] = {
        {3840, 2560}, {2560, 2560}, {13824, 2560}, {2560, 6912}};
    std::vector<std::vector<uint8_t>> ones;
    size_t arenaSize = 0;
    for (auto [m, k] : shapes) {
      const int64_t tk = sc.tileK > 0    ? sc.tileK
                         : sc.tileK == 0 ? (k + 127) / 128 * 128
                                         : (k % 512 == 0 ? 512 : 256);
      std::vector<uint8_t> one = packedFor(layout, m, k);
      if (layout == "i2s" && tk != 256) { // repack the codes at this K tile: any valid bytes do
        const int64_t mp = (m + sc.tileM - 1) / sc.tileM * sc.tileM, kp = (k + tk - 1) / tk * tk;
        one.resize((mp * kp / 4 + 63) / 64 * 64 + 4, 0x55);
        const float s = 1.0f;
        std::memcpy(one.data() + one.size() - 4, &s, 4);
      }
      for (int64_t l = 0; l < layers; ++l) {
        mats_.push_back({m, k, tk, arenaSize, ones.size()});
        arenaSize += (one.size() + 63) / 64 * 64;
        bytes_ += double(one.size());
        weights_ += double(m) * double(k);
      }
      ones.push_back(std::move(one));
    }
    arena_ = std::make_unique<HugeArena>(arenaSize);
    for (const Mat &mt : mats_)
      std::memcpy(arena_->data + mt.at, ones[mt.one].data(), ones[mt.one].size());
    std::mt19937 rng(2);
    q_.resize(nMax * 13824);
    for (auto &x : q_)
      x = int8_t(int(rng() % 256) - 128);
    qs_.assign(nMax, 10.0f);
    out_.resize(nMax * 13824);
  }
  // One decode step's matrices, n tokens.
  void run(tern_ctx *ctx, int64_t n) {
    for (const Mat &mt : mats_)
      reinterpret_cast<MatmulI8>(sc_.v->fn)(ctx, n, q_.data(), qs_.data(), arena_->data + mt.at,
                                            mt.m, mt.k, sc_.tileM, mt.tk, out_.data(), mt.m,
                                            nullptr, 0, nullptr, 0);
  }
  double bytes() const { return bytes_; }
  double weights() const { return weights_; }

private:
  struct Mat {
    int64_t m, k, tk;
    size_t at, one; // offset in the arena, index of the packed shape
  };
  StreamCase sc_;
  std::vector<Mat> mats_;
  std::unique_ptr<HugeArena> arena_;
  std::vector<int8_t> q_;
  std::vector<float> qs_, out_;
  double bytes_ = 0, weights_ = 0;
};

// The benchmark context for 1 thread (no pool) or 2 (SpinPool).
struct StreamCtx {
  SpinPool pool;
  tern_ctx ctx{};
  explicit StreamCtx(int64_t threads) {
    ctx.abi_version = TERN_ABI_VERSION;
    if (threads > 1) {
      ctx.pool = &pool;
      ctx.parallel_for = &SpinPool::parallelFor;
    }
  }
};

void runStream(benchmark::State &st, StreamCase sc) {
  const int64_t n = st.range(0), threads = st.range(1);
  StreamSet set(sc, n);
  StreamCtx c(threads);
  for (auto _ : st)
    set.run(&c.ctx, n);
  st.counters["Gweights/s"] =
      benchmark::Counter(set.weights() * n * st.iterations() / 1e9, benchmark::Counter::kIsRate);
  st.counters["GB/s"] =
      benchmark::Counter(set.bytes() * st.iterations() / 1e9, benchmark::Counter::kIsRate);
  st.counters["MB"] = set.bytes() / 1e6;
}

// BM_stream_ab/<A>_vs_<B>/n/threads: the two layouts' decode steps
// alternated inside every iteration (A's matrices, then B's), each timed on
// its own: this machine's read bandwidth wanders by tens of percent within
// seconds, so separate runs of A and B cannot resolve a 10-20 % difference;
// alternating at ~20 ms does. Counters: each side's GB/s and G weights/s
// over the whole run, and B_over_A = A's time / B's time (> 1: B faster).
void runStreamAb(benchmark::State &st, StreamCase a, StreamCase b) {
  const int64_t n = st.range(0), threads = st.range(1);
  StreamSet sa(a, n), sb(b, n);
  StreamCtx c(threads);
  double ta = 0, tb = 0;
  for (auto _ : st) {
    const auto t0 = std::chrono::steady_clock::now();
    sa.run(&c.ctx, n);
    const auto t1 = std::chrono::steady_clock::now();
    sb.run(&c.ctx, n);
    const auto t2 = std::chrono::steady_clock::now();
    ta += std::chrono::duration<double>(t1 - t0).count();
    tb += std::chrono::duration<double>(t2 - t1).count();
  }
  const double it = double(st.iterations());
  st.counters["A_GB/s"] = sa.bytes() * it / ta / 1e9;
  st.counters["B_GB/s"] = sb.bytes() * it / tb / 1e9;
  st.counters["A_Gw/s"] = sa.weights() * n * it / ta / 1e9;
  st.counters["B_Gw/s"] = sb.weights() * n * it / tb / 1e9;
  st.counters["B_over_A"] = ta / tb;
}

// BM_stream/<layout>_<isa>_<tile>/n/threads for the int8 decode kernels
// this host runs (i2s at the measured tile 32x256 and with whole-row K
// tiles, tl2, tl2v); n = 2, 3 and 6 at 2 threads place ternc
// --decode-layout's threshold (docs/cost-model.md, "Two layouts").
void registerStream() {
  for (const Variant &v : kVariants) {
    const std::string layout = v.layout, isa = v.isa;
    if (!v.fn || !hostRuns(isa) || std::string(v.act) != "i8" || isa == "ref" ||
        (layout != "i2s" && layout != "tl2v" && layout != "tl2"))
      continue;
    if (layout == "i2s") // A/B against tl2v of the same ISA, both at ternc's tiles
      for (const Variant &w : kVariants)
        if (w.fn && std::string(w.layout) == "tl2v" && std::string(w.act) == "i8" &&
            std::string(w.isa) == isa) {
          const StreamCase a{&v, 128, -1}, b{&w, 128, 64};
          const std::string name = "BM_stream_ab/i2s_vs_tl2v_" + isa;
          benchmark::RegisterBenchmark(name.c_str(),
                                       [a, b](benchmark::State &st) { runStreamAb(st, a, b); })
              ->ArgNames({"n", "threads"})
              ->Args({1, 1})
              ->Args({1, 2})
              ->Args({2, 2})
              ->Args({4, 2})
              ->UseRealTime()
              ->Unit(benchmark::kMillisecond);
        }
    std::vector<StreamCase> cases;
    if (layout == "i2s")
      cases = {{&v, 32, 256}, {&v, 32, 0}};
    else if (layout == "tl2")
      cases = {{&v, 32, 240}};
    else
      cases = {{&v, 32, 64}, {&v, 128, 64}};
    for (StreamCase sc : cases) {
      const std::string name = "BM_stream/" + layout + "_" + isa + "_" + std::to_string(sc.tileM) +
                               "x" + (sc.tileK ? std::to_string(sc.tileK) : std::string("K"));
      benchmark::RegisterBenchmark(name.c_str(), [sc](benchmark::State &st) { runStream(st, sc); })
          ->ArgNames({"n", "threads"})
          ->Args({1, 1})
          ->Args({1, 2})
          ->Args({2, 2})
          ->Args({3, 2})
          ->Args({4, 1})
          ->Args({4, 2})
          ->Args({6, 2})
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
}

// The prefill (GEMM) batch sizes of the i2s int8 kernels at the 2B4T shapes
// (q/o 2560x2560, k/v 640x2560, gate/up 6912x2560, down 2560x6912), n = 1 ..
// 512 tokens, as BM_gemm/i2s_i8_<isa>, in GOP/s. The avx512_vnni entry runs
// the AMX GEMM for n >= 6 where the CPU (and Linux) allow it, its VNNI
// kernel below (n = 4: the VNNI kernel's batch rate); the avx2 entry runs
// its GEMM for n >= 4.
void registerGemm() {
  for (const Variant &v : kVariants) {
    if (!v.fn || !hostRuns(v.isa) || std::string(v.layout) != "i2s" || std::string(v.act) != "i8" ||
        std::string(v.isa) == "ref")
      continue;
    const std::string name = std::string("BM_gemm/i2s_i8_") + v.isa;
    auto *b =
        benchmark::RegisterBenchmark(name.c_str(), [&v](benchmark::State &st) { runGemm(st, v); });
    b->Unit(benchmark::kMicrosecond)->ArgNames({"m", "k", "n"});
    for (int64_t n : {1, 4, 8, 16, 64, 128, 512})
      for (auto [m, k] :
           {std::pair<int64_t, int64_t>{2560, 2560}, {640, 2560}, {6912, 2560}, {2560, 6912}})
        b->Args({m, k, n});
  }
}

// The LM head on the 2B4T shape (vocab 128256, hidden 2560: 657 MB f16,
// 328 MB q8, far beyond the last-level cache), n tokens per call; GB/s
// counts the head's bytes once per call (every variant reads each row once
// for all n tokens).
constexpr int64_t kHeadVocab = 128256, kHeadHidden = 2560;
const std::vector<uint16_t> &headF16() {
  static const std::vector<uint16_t> w = [] {
    std::vector<uint16_t> v(kHeadVocab * kHeadHidden);
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = uint16_t(0x3000 + (i * 7919) % 0x0c00); // finite, varied
    return v;
  }();
  return w;
}
const std::vector<uint8_t> &headQ8() {
  static const std::vector<uint8_t> w = [] {
    const int64_t at = (kHeadVocab * kHeadHidden + 63) / 64 * 64;
    std::vector<uint8_t> v(at + 4 * kHeadVocab);
    for (int64_t i = 0; i < kHeadVocab * kHeadHidden; ++i)
      v[i] = uint8_t((i * 7919) % 255);
    for (int64_t r = 0; r < kHeadVocab; ++r) {
      const float s = 0.01f;
      std::memcpy(&v[at + 4 * r], &s, 4);
    }
    return v;
  }();
  return w;
}
const uint16_t *headOf(void (*)(TERN_UK_LM_HEAD_ARGS)) { return headF16().data(); }
const uint8_t *headOf(void (*)(TERN_UK_LM_HEAD_Q8_ARGS)) { return headQ8().data(); }
template <class Fn> void runHead(benchmark::State &st, Fn fn) {
  const int64_t n = st.range(0);
  std::vector<float> x(n * kHeadHidden), logits(n * kHeadVocab);
  for (size_t i = 0; i < x.size(); ++i) // varied activations (the q8 head quantizes them)
    x[i] = float((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
  const auto *w = headOf(fn);
  for (auto _ : st) {
    fn(nullptr, n, x.data(), w, logits.data(), kHeadHidden, kHeadVocab, 64, 256);
    benchmark::DoNotOptimize(logits.data());
  }
  const double bytes = double(kHeadVocab) * kHeadHidden * sizeof(*w);
  st.counters["GB/s"] =
      benchmark::Counter(bytes * st.iterations() / 1e9, benchmark::Counter::kIsRate);
}
#define TERN_BM_HEAD(kind, isa, guard)                                                             \
  void BM_lm_head_##kind##_##isa(benchmark::State &st) {                                           \
    if (!(guard))                                                                                  \
      return st.SkipWithError("cpu lacks " #isa);                                                  \
    runHead(st, &tern_uk_lm_head_##kind##_##isa);                                                  \
  }                                                                                                \
  BENCHMARK(BM_lm_head_##kind##_##isa)->Arg(1)->Arg(4)->Unit(benchmark::kMillisecond);
TERN_BM_HEAD(f16, ref, true)
TERN_BM_HEAD(q8, ref, true)
#if defined(__x86_64__)
TERN_BM_HEAD(f16, avx2, __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c"))
TERN_BM_HEAD(q8, avx2, __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c"))
TERN_BM_HEAD(f16, avx512_vnni,
             __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni"))
TERN_BM_HEAD(q8, avx512_vnni,
             __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni"))
#elif defined(__aarch64__)
TERN_BM_HEAD(f16, neon, true)
TERN_BM_HEAD(q8, neon, true)
TERN_BM_HEAD(q8, neon_dotprod, getauxval(AT_HWCAP) & HWCAP_ASIMDDP)
#endif

// ---- the non-matmul ops (ops.h) at the 2B4T shape: hidden 2560, ffn 6912,
// 20 heads of 128; args {dim, n}. GB/s counts the bytes read and written.
struct OpsSet {
  void (*rms_norm)(const tern_ctx *, int64_t, const float *, const float *, float *, int64_t,
                   float);
  void (*rms_norm_quantize)(const tern_ctx *, int64_t, const float *, const float *, int8_t *,
                            float *, int64_t, float);
  void (*quantize)(const tern_ctx *, int64_t, const float *, int8_t *, float *, int64_t);
  void (*rope)(const tern_ctx *, int64_t, const float *, const int32_t *, float *, int64_t, int64_t,
               int64_t, float);
  void (*add)(const tern_ctx *, int64_t, const float *, const float *, float *, int64_t);
  void (*silu_mul)(const tern_ctx *, int64_t, const float *, const float *, float *, int64_t);
  void (*relu2_mul)(const tern_ctx *, int64_t, const float *, const float *, float *, int64_t);
  void (*embed_f16)(const tern_ctx *, int64_t, const int32_t *, const uint16_t *, float *, int64_t,
                    int64_t);
  void (*embed_f32)(const tern_ctx *, int64_t, const int32_t *, const float *, float *, int64_t,
                    int64_t);
};
#define TERN_BENCH_OPS(isa)                                                                        \
  OpsSet {                                                                                         \
    &tern_uk_rms_norm_f32_##isa, &tern_uk_rms_norm_quantize_i8_##isa, &tern_uk_quantize_i8_##isa,  \
        &tern_uk_rope_neox_f32_##isa, &tern_uk_add_f32_##isa, &tern_uk_silu_mul_f32_##isa,         \
        &tern_uk_relu2_mul_f32_##isa, &tern_uk_embed_f16_##isa, &tern_uk_embed_f32_##isa           \
  }

enum class Op { RmsNorm, RmsNormQuant, Quant, Rope, Add, SiluMul, Relu2Mul, EmbedF16, EmbedF32 };

void runOp(benchmark::State &st, const OpsSet &f, Op op) {
  const int64_t dim = st.range(0), n = st.range(1), vocab = 4096;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(n * dim), y(n * dim), w(dim), out(n * dim);
  for (auto *v : {&x, &y, &w})
    for (float &e : *v)
      e = nd(rng);
  std::vector<int8_t> q(n * dim);
  std::vector<float> qs(n);
  std::vector<int32_t> pos(n), tok(n);
  for (int64_t t = 0; t < n; ++t) {
    pos[t] = int32_t(100 + t);
    tok[t] = int32_t(rng() % vocab);
  }
  std::vector<uint16_t> t16;
  std::vector<float> t32;
  if (op == Op::EmbedF16)
    t16.assign(vocab * dim, 0x3c00);
  if (op == Op::EmbedF32)
    t32.assign(vocab * dim, 1.0f);
  double bytes = 0;
  for (auto _ : st) {
    switch (op) {
    case Op::RmsNorm:
      f.rms_norm(nullptr, n, x.data(), w.data(), out.data(), dim, 1e-5f);
      bytes = 4.0 * (2 * n * dim + dim);
      break;
    case Op::RmsNormQuant:
      f.rms_norm_quantize(nullptr, n, x.data(), w.data(), q.data(), qs.data(), dim, 1e-5f);
      bytes = 4.0 * (n * dim + dim) + n * dim;
      break;
    case Op::Quant:
      f.quantize(nullptr, n, x.data(), q.data(), qs.data(), dim);
      bytes = 5.0 * n * dim;
      break;
    case Op::Rope: // dim = heads * 128, full rotation, in place
      f.rope(nullptr, n, out.data(), pos.data(), out.data(), dim / 128, 128, 128, 500000.0f);
      bytes = 8.0 * n * dim;
      break;
    case Op::Add:
      f.add(nullptr, n, x.data(), y.data(), out.data(), dim);
      bytes = 12.0 * n * dim;
      break;
    case Op::SiluMul:
      f.silu_mul(nullptr, n, x.data(), y.data(), out.data(), dim);
      bytes = 12.0 * n * dim;
      break;
    case Op::Relu2Mul:
      f.relu2_mul(nullptr, n, x.data(), y.data(), out.data(), dim);
      bytes = 12.0 * n * dim;
      break;
    case Op::EmbedF16:
      f.embed_f16(nullptr, n, tok.data(), t16.data(), out.data(), dim, vocab);
      bytes = 6.0 * n * dim;
      break;
    case Op::EmbedF32:
      f.embed_f32(nullptr, n, tok.data(), t32.data(), out.data(), dim, vocab);
      bytes = 8.0 * n * dim;
      break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::DoNotOptimize(q.data());
  }
  st.counters["GB/s"] =
      benchmark::Counter(bytes * st.iterations() / 1e9, benchmark::Counter::kIsRate);
}

void hidden(benchmark::internal::Benchmark *b) {
  for (int64_t n : {1, 8})
    b->Args({2560, n});
  b->Unit(benchmark::kMicrosecond);
}
void hiddenAndFfn(benchmark::internal::Benchmark *b) {
  for (int64_t n : {1, 8})
    for (int64_t d : {2560, 6912})
      b->Args({d, n});
  b->Unit(benchmark::kMicrosecond);
}
void ffn(benchmark::internal::Benchmark *b) {
  for (int64_t n : {1, 8})
    b->Args({6912, n});
  b->Unit(benchmark::kMicrosecond);
}

// One benchmark per (op, isa): BM_op_<op>/<isa>.
bool cpuHas(const char *isa) {
#if defined(__x86_64__)
  const std::string s = isa;
  if (s == "avx2")
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
  if (s == "avx512_vnni")
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#endif
  return std::string(isa) == "ref" || std::string(isa).rfind("neon", 0) == 0;
}

int registerOps() {
  struct Isa {
    const char *name;
    OpsSet fns;
  };
  static const Isa isas[] = {
      {"ref", TERN_BENCH_OPS(ref)},
#if defined(__x86_64__)
      {"avx2", TERN_BENCH_OPS(avx2)},
      {"avx512_vnni", TERN_BENCH_OPS(avx512_vnni)},
#elif defined(__aarch64__)
      {"neon", TERN_BENCH_OPS(neon)},
#endif
  };
  const struct {
    const char *name;
    Op op;
    void (*shapes)(benchmark::internal::Benchmark *);
  } ops[] = {{"rms_norm_f32", Op::RmsNorm, hidden},
             {"rms_norm_quantize_i8", Op::RmsNormQuant, hiddenAndFfn},
             {"quantize_i8", Op::Quant, hiddenAndFfn},
             {"rope_neox_f32", Op::Rope, hidden},
             {"add_f32", Op::Add, hidden},
             {"silu_mul_f32", Op::SiluMul, ffn},
             {"relu2_mul_f32", Op::Relu2Mul, ffn},
             {"embed_f16", Op::EmbedF16, hidden},
             {"embed_f32", Op::EmbedF32, hidden}};
  for (const auto &o : ops)
    for (const Isa &i : isas) {
      const std::string name = std::string("BM_op_") + o.name + "/" + i.name;
      const Isa *ip = &i;
      const Op op = o.op;
      benchmark::RegisterBenchmark(name.c_str(), [ip, op](benchmark::State &st) {
        if (!cpuHas(ip->name))
          return st.SkipWithError("this CPU lacks the ISA");
        runOp(st, ip->fns, op);
      })->Apply(o.shapes);
    }
  return 0;
}
const int kOpsRegistered = registerOps();

// ---- attention at the 2B4T shape (20 query heads, 5 KV heads of 128, page
// size 16, one sequence), single thread; args {context, tokens}: the call's
// tokens are the last `tokens` positions of `context` (decode: 1 token at
// 512 / 2048; a prefill chunk: 128 tokens ending at 128 / 512), an f32 or
// an f16 cache (`bytes` per element). GB/s counts the K/V rows each (token,
// KV head) reads.
using AttnFn = void (*)(const tern_ctx *, int64_t, const float *, const float *, const float *,
                        const int32_t *, const int32_t *, float *, int64_t, int64_t, int64_t,
                        int64_t, float);

void runAttention(benchmark::State &st, AttnFn fn, int64_t bytes) {
  const int64_t ctxLen = st.range(0), n = st.range(1);
  const int64_t nHeads = 20, nKv = 5, D = 128, kvDim = nKv * D, page = 16;
  const int64_t pages = (ctxLen + page - 1) / page, pageElems = 2 * page * kvDim;
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<uint8_t> pool(pages * pageElems * bytes);
  for (int64_t i = 0; i < pages * pageElems; ++i) {
    const float x = nd(rng);
    if (bytes == 2) {
      const uint16_t h = tern::half::f32_to_f16(x);
      std::memcpy(&pool[i * 2], &h, 2);
    } else {
      std::memcpy(&pool[i * 4], &x, 4);
    }
  }
  std::vector<int32_t> ids(pages);
  for (int64_t i = 0; i < pages; ++i) // scattered pages, like a shared pool
    ids[i] = int32_t((i * 7) % pages);
  const int32_t *layer0 = ids.data();
  const int32_t *const *seq0 = &layer0;
  tern_ctx ctx{};
  ctx.abi_version = TERN_ABI_VERSION;
  ctx.kv.pool = pool.data();
  ctx.kv.page_elems = pageElems;
  ctx.kv.page_size = page;
  ctx.kv.n_seq = 1;
  ctx.kv.page_tables = &seq0;
  std::vector<float> q(n * nHeads * D), k(n * kvDim), v(n * kvDim), out(n * nHeads * D);
  for (auto *x : {&q, &k, &v})
    for (float &e : *x)
      e = nd(rng);
  std::vector<int32_t> pos(n), seq(n, 0);
  double rowsRead = 0;
  for (int64_t t = 0; t < n; ++t) {
    pos[t] = int32_t(ctxLen - n + t);
    rowsRead += double(pos[t] + 1);
  }
  for (auto _ : st) {
    fn(&ctx, n, q.data(), k.data(), v.data(), pos.data(), seq.data(), out.data(), 0, nHeads, nKv, D,
       1.0f / 11.3137085f);
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["GB/s"] = benchmark::Counter(rowsRead * 2 * kvDim * bytes * st.iterations() / 1e9,
                                           benchmark::Counter::kIsRate);
}

int registerAttention() {
  struct Fn {
    const char *isa, *kv;
    AttnFn fn;
  };
  const Fn fns[] = {
      {"ref", "f32", &tern_uk_attention_gqa_f32_ref},
      {"ref", "f16", &tern_uk_attention_gqa_f16_ref},
#if defined(__x86_64__)
      {"avx2", "f32", &tern_uk_attention_gqa_f32_avx2},
      {"avx2", "f16", &tern_uk_attention_gqa_f16_avx2},
      {"avx512_vnni", "f32", &tern_uk_attention_gqa_f32_avx512_vnni},
      {"avx512_vnni", "f16", &tern_uk_attention_gqa_f16_avx512_vnni},
#elif defined(__aarch64__)
      {"neon", "f32", &tern_uk_attention_gqa_f32_neon},
      {"neon", "f16", &tern_uk_attention_gqa_f16_neon},
#endif
  };
  for (const Fn &x : fns) {
    const std::string name = std::string("BM_attention_gqa_") + x.kv + "/" + x.isa;
    const char *isaName = x.isa;
    const AttnFn f = x.fn;
    const int64_t bytes = std::string(x.kv) == "f16" ? 2 : 4;
    benchmark::RegisterBenchmark(name.c_str(),
                                 [isaName, f, bytes](benchmark::State &st) {
                                   if (!cpuHas(isaName))
                                     return st.SkipWithError("this CPU lacks the ISA");
                                   runAttention(st, f, bytes);
                                 })
        ->Args({512, 1})
        ->Args({2048, 1})
        ->Args({128, 128})
        ->Args({512, 128})
        ->Unit(benchmark::kMicrosecond);
  }
  return 0;
}
const int kAttentionRegistered = registerAttention();

// ---- ISA peaks and the clock (docs/performance.md, "GEMM efficiency") ----
// BM_peak/clock_dependent_imul: 8 dependent `imul`s (3-cycle latency on
// every Intel core since Sandy Bridge and on AMD Zen) per loop trip, so
// G imuls / s x 3 = the core clock in GHz while the thread runs. (Not `add
// reg, imm`: Golden Cove-class cores fold immediate adds at rename and run
// such chains faster than one per cycle: measured here as "6.2 GHz".)
// BM_peak/<instr>: an unrolled block of independent instructions (12
// destination / accumulator registers, more than latency x throughput),
// reported as G instructions / s and GOP/s (x the int8 multiply-adds of one
// instruction): what one core issues at most. Inline assembly, so the
// compiler cannot drop or merge them.
#if defined(__x86_64__)
void peakClock(benchmark::State &st) {
  const int64_t trips = 1 << 18;
  for (auto _ : st) {
    uint64_t x = 1, c = trips;
    __asm__ volatile("1:\n\t"
                     "imul %0, %0\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0\n\t"
                     "imul %0, %0\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0\n\t"
                     "dec %1\n\tjnz 1b"
                     : "+r"(x), "+r"(c));
    benchmark::DoNotOptimize(x);
  }
  st.counters["GHz"] = benchmark::Counter(double(trips) * 8 * 3 * st.iterations() / 1e9,
                                          benchmark::Counter::kIsRate);
}
BENCHMARK(peakClock)->Name("BM_peak/clock_dependent_imul")->Unit(benchmark::kMicrosecond);

#define TERN_PEAK12(ins, r)                                                                        \
  ins " " r "1, " r "0, " r "4\n\t" ins " " r "1, " r "0, " r "5\n\t" ins " " r "1, " r "0, " r    \
      "6\n\t" ins " " r "1, " r "0, " r "7\n\t" ins " " r "1, " r "0, " r "8\n\t" ins " " r        \
      "1, " r "0, " r "9\n\t" ins " " r "1, " r "0, " r "10\n\t" ins " " r "1, " r "0, " r         \
      "11\n\t" ins " " r "1, " r "0, " r "12\n\t" ins " " r "1, " r "0, " r "13\n\t" ins " " r     \
      "1, " r "0, " r "14\n\t" ins " " r "1, " r "0, " r "15\n\t"
// One loop trip = 4 x 12 instructions.
#define TERN_PEAK_BODY(ins, r, clobbers...)                                                        \
  for (auto _ : st) {                                                                              \
    uint64_t c = trips;                                                                            \
    __asm__ volatile("1:\n\t" TERN_PEAK12(ins, r) TERN_PEAK12(ins, r) TERN_PEAK12(ins, r)          \
                         TERN_PEAK12(ins, r) "dec %0\n\tjnz 1b"                                    \
                     : "+r"(c)                                                                     \
                     :                                                                             \
                     : clobbers);                                                                  \
  }
void peakCounters(benchmark::State &st, int64_t trips, double macsPerInstr) {
  const double instr = double(trips) * 48 * st.iterations();
  st.counters["Ginstr/s"] = benchmark::Counter(instr / 1e9, benchmark::Counter::kIsRate);
  st.counters["GOP/s"] =
      benchmark::Counter(instr * macsPerInstr / 1e9, benchmark::Counter::kIsRate);
}
__attribute__((target("avx2"))) void peakMaddubs(benchmark::State &st) {
  const int64_t trips = 1 << 18;
  TERN_PEAK_BODY("vpmaddubsw", "%%ymm", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                 "xmm11", "xmm12", "xmm13", "xmm14", "xmm15")
  peakCounters(st, trips, 32); // 32 u8 x s8 products, summed in pairs
}
BENCHMARK(peakMaddubs)->Name("BM_peak/avx2_vpmaddubsw_ymm")->Unit(benchmark::kMicrosecond);
__attribute__((target("avx512f,avx512vnni"))) void peakDpbusd(benchmark::State &st) {
  if (!__builtin_cpu_supports("avx512vnni"))
    return st.SkipWithError("this CPU lacks avx512vnni");
  const int64_t trips = 1 << 18;
  TERN_PEAK_BODY("vpdpbusd", "%%zmm", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                 "xmm11", "xmm12", "xmm13", "xmm14", "xmm15")
  peakCounters(st, trips, 64); // 64 u8 x s8 products accumulated into 16 i32 lanes
}
BENCHMARK(peakDpbusd)->Name("BM_peak/avx512_vpdpbusd_zmm")->Unit(benchmark::kMicrosecond);
#undef TERN_PEAK_BODY
#undef TERN_PEAK12
#endif

} // namespace

int main(int argc, char **argv) {
#if defined(__x86_64__)
  // TERN_BENCH_TL2V_BODY=vnni: tern_uk_matmul_tl2v_avx512_vnni runs its VNNI
  // fallback body even where the CPU has AVX512-VBMI + GFNI (A/B of the two
  // bodies); the context line "tl2v_avx512_vnni body" says which one ran.
  if (const char *b = std::getenv("TERN_BENCH_TL2V_BODY"); b && std::string(b) == "vnni")
    tern_uk_tl2v_vbmi_enable(0);
  if (hostRuns("avx512_vnni"))
    benchmark::AddCustomContext("tl2v_avx512_vnni body", tern_uk_tl2v_avx512_body());
#endif
  registerMatmuls();
  registerGemm();
  registerStream();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv))
    return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
