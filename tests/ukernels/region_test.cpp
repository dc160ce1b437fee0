// ABI 4's parallel region: every thread of a forward call runs every
// ukernel entry with its tid; each does its static slice and the entry ends
// with the region's barrier. Every non-matmul entry of every ISA this CPU
// runs (ref, avx2, avx512_vnni) and the f16 LM head, run by 2, 3 and 5
// threads at once (more than this machine's cores, too), must write exactly
// the bits the same entry writes on one thread, for token counts and dims
// with tails. (Matmuls and attention: tests/exec/threads_e2e_test.cpp runs
// whole compiled models at 1-4 threads.)
#include <atomic>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "runtime/model/thread_pool.h"
#include "tests/ukernels/ops_check.h"
#include "tests/ukernels/test_util.h"
#include "gtest/gtest.h"

namespace tern::uktest::ops {
namespace {

struct Region {
  model::ThreadPool pool;
  model::RegionBarrier barrier;
  explicit Region(int threads) : pool(threads), barrier(threads) {}

  static void wait(void *arg, int32_t) { static_cast<model::RegionBarrier *>(arg)->wait(); }

  // Runs f(ctx) on every thread of the region, each with its tid.
  void run(const std::function<void(const tern_ctx *)> &f) {
    struct Job {
      const std::function<void(const tern_ctx *)> *f;
      Region *r;
    } job{&f, this};
    ASSERT_TRUE(pool.region(
        [](void *arg, int tid) {
          const Job &j = *static_cast<const Job *>(arg);
          tern_ctx c{};
          c.abi_version = TERN_ABI_VERSION;
          c.tid = tid;
          c.nthreads = j.r->pool.size();
          c.barrier_arg = &j.r->barrier;
          c.barrier = &Region::wait;
          (*j.f)(&c);
        },
        &job));
  }
};

std::vector<Fns> isas() {
  std::vector<Fns> v{refFns()};
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c"))
    v.push_back(TERN_UKTEST_OPS_FNS(avx2));
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
    v.push_back(TERN_UKTEST_OPS_FNS(avx512_vnni));
#endif
  return v;
}

template <class T> bool sameBytes(const std::vector<T> &a, const std::vector<T> &b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Runs `op` writing into `out` once on one thread (nthreads 0) and once in
// a region of each size; every region's bytes must equal the single run's.
template <class T>
void expectSame(const char *what, const Fns &f, std::vector<T> &out,
                const std::function<void(const tern_ctx *)> &op) {
  tern_ctx one{};
  one.abi_version = TERN_ABI_VERSION;
  std::fill(out.begin(), out.end(), T{});
  op(&one);
  const std::vector<T> want = out;
  for (int threads : {2, 3, 5}) {
    Region r(threads);
    std::fill(out.begin(), out.end(), T{});
    r.run(op);
    EXPECT_TRUE(sameBytes(out, want)) << what << "_" << f.isa << " threads " << threads;
  }
}

TEST(Region, EveryOpWritesTheSingleThreadBits) {
  std::mt19937 rng(5);
  for (const Fns &f : isas()) {
    for (int64_t n : {1, 2, 7}) {
      for (int64_t dim : {64, 200}) {
        const std::vector<float> x = randomFloats(rng, size_t(n * dim)),
                                 y = randomFloats(rng, size_t(n * dim)),
                                 w = randomFloats(rng, size_t(dim));
        std::vector<float> out(size_t(n * dim));
        expectSame("add", f, out,
                   [&](const tern_ctx *c) { f.add(c, n, x.data(), y.data(), out.data(), dim); });
        expectSame("silu_mul", f, out, [&](const tern_ctx *c) {
          f.silu_mul(c, n, x.data(), y.data(), out.data(), dim);
        });
        expectSame("relu2_mul", f, out, [&](const tern_ctx *c) {
          f.relu2_mul(c, n, x.data(), y.data(), out.data(), dim);
        });
        expectSame("rms_norm", f, out, [&](const tern_ctx *c) {
          f.rms_norm(c, n, x.data(), w.data(), out.data(), dim, 1e-5f);
        });
        std::vector<int8_t> q(size_t(n * dim));
        std::vector<float> qs(static_cast<size_t>(n));
        expectSame("rms_norm_quantize_i8", f, q, [&](const tern_ctx *c) {
          f.rms_norm_quantize(c, n, x.data(), w.data(), q.data(), qs.data(), dim, 1e-5f);
        });
        expectSame("quantize_i8 (scales)", f, qs, [&](const tern_ctx *c) {
          f.quantize(c, n, x.data(), q.data(), qs.data(), dim);
        });
        // embed: n tokens of a 9-row table
        const int64_t vocab = 9;
        std::vector<uint16_t> table(size_t(vocab * dim));
        for (size_t i = 0; i < table.size(); ++i)
          table[i] = uint16_t(0x3000 + (rng() & 0x7ff));
        std::vector<int32_t> tokens(static_cast<size_t>(n)), pos(static_cast<size_t>(n));
        for (int64_t t = 0; t < n; ++t) {
          tokens[size_t(t)] = int32_t(rng() % vocab);
          pos[size_t(t)] = int32_t(rng() % 1000);
        }
        expectSame("embed_f16", f, out, [&](const tern_ctx *c) {
          f.embed_f16(c, n, tokens.data(), table.data(), out.data(), dim, vocab);
        });
        // rope over dim / 8 heads of 8
        expectSame("rope_neox", f, out, [&](const tern_ctx *c) {
          f.rope(c, n, x.data(), pos.data(), out.data(), dim / 8, 8, 8, 10000.0f);
        });
      }
    }
  }
}

TEST(Region, LmHeadWritesTheSingleThreadBits) {
  std::mt19937 rng(9);
  using HeadFn = void (*)(TERN_UK_LM_HEAD_ARGS);
  std::vector<std::pair<const char *, HeadFn>> heads{{"ref", &tern_uk_lm_head_f16_ref}};
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c"))
    heads.push_back({"avx2", &tern_uk_lm_head_f16_avx2});
#endif
  const int64_t hidden = 96, vocab = 333;
  std::vector<uint16_t> wt(size_t(vocab * hidden));
  for (uint16_t &h : wt)
    h = uint16_t(0x2c00 + (rng() & 0x7ff) + ((rng() & 1) << 15));
  for (int64_t n : {1, 3}) {
    const std::vector<float> x = randomFloats(rng, size_t(n * hidden));
    std::vector<float> logits(size_t(n * vocab));
    for (auto [isa, fn] : heads)
      expectSame("lm_head_f16", Fns{isa}, logits, [&](const tern_ctx *c) {
        fn(c, n, x.data(), wt.data(), logits.data(), hidden, vocab, 16, 0);
      });
  }
}

// The barrier itself: 4 threads, 2000 rounds, each round every thread
// writes its slot, waits, then checks every slot of the round.
TEST(Region, BarrierSeparatesRounds) {
  Region r(4);
  std::vector<std::atomic<int>> slot(4);
  std::atomic<int> bad{0};
  r.run([&](const tern_ctx *c) {
    for (int round = 0; round < 2000; ++round) {
      slot[size_t(c->tid)].store(round, std::memory_order_relaxed);
      c->barrier(c->barrier_arg, c->tid);
      for (int i = 0; i < 4; ++i)
        if (slot[size_t(i)].load(std::memory_order_relaxed) != round)
          bad.fetch_add(1);
      c->barrier(c->barrier_arg, c->tid);
    }
  });
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(r.barrier.waits(), 4u * 2000u * 2u);
}

// A region cannot start from inside the pool's own work (it could not give
// every tid its own thread): region() says so and runs nothing.
TEST(Region, NestedRegionIsRefused) {
  model::ThreadPool pool(2);
  std::atomic<int> inner{0}, refused{0};
  pool.parallelFor(2, [&](size_t, size_t) {
    if (!pool.region([](void *a, int) { static_cast<std::atomic<int> *>(a)->fetch_add(1); },
                     &inner))
      refused.fetch_add(1);
  });
  EXPECT_EQ(inner.load(), 0);
  EXPECT_EQ(refused.load(), 2);
}

} // namespace
} // namespace tern::uktest::ops
