// The cuda targets' launchers (runtime/cuda/launchers.cpp) through a ctx
// whose tern_gpu hooks run the emulated device (device.h): every launcher
// called with the exact arguments its CPU ukernel takes gives the `_ref`
// ukernel's results (bit-identical where docs/cuda.md says the kernel is,
// within its stated bound otherwise); the launch plans of planKernel; the
// batch-array mirroring; and the refusals (a shape a kernel cannot run, a
// parameter struct of the wrong size, an unknown kernel id).
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/abi/tern_abi.h"
#include "runtime/cuda/device.h"
#include "runtime/cuda/kernels.h"
#include "runtime/cuda/launchers.h"
#include "tests/cuda/built_ptx.h"

namespace tc = tern::cuda;

namespace {

int64_t roundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// The emulated device behind a ctx's hooks; host pointers are "device"
// pointers, except the batch arrays registered with mirror(), which are
// copied to fresh buffers as a GPU backend would (a launcher that forgets
// to ask for a mirror writes the host array directly, which the tests see).
struct Harness {
  std::unique_ptr<tc::Device> dev = *tc::openEmulatedDevice();
  tern_gpu gpu{};
  tern_ctx ctx{};
  std::string error;
  int launches = 0;
  std::vector<int32_t> kernels; // the ids launched, in order
  struct Mirror {
    const uint8_t *host;
    size_t bytes;
    std::vector<uint8_t> copy;
  };
  std::vector<Mirror> mirrors;

  Harness() {
    gpu.arg = this;
    gpu.launch = [](void *arg, int32_t k, const void *p, int64_t bytes) {
      auto *h = static_cast<Harness *>(arg);
      const tc::LaunchDims d = tc::planKernel(k, p, uint64_t(bytes));
      if (!d.ok()) {
        h->error = d.error;
        return;
      }
      ++h->launches;
      h->kernels.push_back(k);
      absl::Status s = h->dev->launch(k, d, p, uint64_t(bytes));
      if (!s.ok())
        h->error = std::string(s.message());
    };
    gpu.batch_ptr = [](void *arg, const void *host) -> void * {
      auto *h = static_cast<Harness *>(arg);
      const auto *p = static_cast<const uint8_t *>(host);
      for (Mirror &m : h->mirrors)
        if (p >= m.host && p < m.host + m.bytes)
          return m.copy.data() + (p - m.host);
      return const_cast<void *>(host);
    };
    ctx.abi_version = TERN_ABI_VERSION;
    ctx.gpu = &gpu;
  }
  template <class T> void mirror(const std::vector<T> &v) {
    const auto *b = reinterpret_cast<const uint8_t *>(v.data());
    mirrors.push_back({b, v.size() * sizeof(T), std::vector<uint8_t>(b, b + v.size() * sizeof(T))});
  }
  // The device copy of a mirrored host array.
  template <class T> std::vector<T> mirrored(const std::vector<T> &v) const {
    for (const Mirror &m : mirrors)
      if (m.host == reinterpret_cast<const uint8_t *>(v.data())) {
        std::vector<T> out(v.size());
        std::memcpy(out.data(), m.copy.data(), m.bytes);
        return out;
      }
    return {};
  }
};

std::vector<float> randomFloats(std::mt19937 &rng, size_t n, float lo = -2.0f, float hi = 2.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float &x : v)
    x = d(rng);
  return v;
}

TEST(CudaLaunchers, ElementwiseOpsMatchRef) {
  std::mt19937 rng(1);
  const int64_t n = 5, dim = 300;
  const std::vector<float> a = randomFloats(rng, n * dim), b = randomFloats(rng, n * dim);
  std::vector<float> want(n * dim), got(n * dim);
  Harness h;
  tern_uk_add_f32_ref(nullptr, n, a.data(), b.data(), want.data(), dim);
  tern_uk_add_f32_cuda(&h.ctx, n, a.data(), b.data(), got.data(), dim);
  EXPECT_EQ(want, got);
  tern_uk_relu2_mul_f32_ref(nullptr, n, a.data(), b.data(), want.data(), dim);
  tern_uk_relu2_mul_f32_cuda(&h.ctx, n, a.data(), b.data(), got.data(), dim);
  EXPECT_EQ(want, got);
  tern_uk_silu_mul_f32_ref(nullptr, n, a.data(), b.data(), want.data(), dim);
  tern_uk_silu_mul_f32_cuda(&h.ctx, n, a.data(), b.data(), got.data(), dim);
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 4e-7f * std::fabs(want[i]) + 1e-30f) << i;
  EXPECT_EQ(h.launches, 3);
  EXPECT_EQ(h.error, "");
}

TEST(CudaLaunchers, NormsAndQuantizeMatchRef) {
  std::mt19937 rng(2);
  const int64_t n = 7, dim = 256;
  const std::vector<float> x = randomFloats(rng, n * dim), w = randomFloats(rng, dim, 0.5f, 1.5f);
  Harness h;
  std::vector<float> yw(n * dim), yg(n * dim);
  tern_uk_rms_norm_f32_ref(nullptr, n, x.data(), w.data(), yw.data(), dim, 1e-5f);
  tern_uk_rms_norm_f32_cuda(&h.ctx, n, x.data(), w.data(), yg.data(), dim, 1e-5f);
  for (size_t i = 0; i < yw.size(); ++i)
    EXPECT_NEAR(yg[i], yw[i], 1e-6f * std::fabs(yw[i])) << i;
  std::vector<int8_t> qw(n * dim), qg(n * dim);
  std::vector<float> sw(n), sg(n);
  tern_uk_rms_norm_quantize_i8_ref(nullptr, n, x.data(), w.data(), qw.data(), sw.data(), dim,
                                   1e-5f);
  tern_uk_rms_norm_quantize_i8_cuda(&h.ctx, n, x.data(), w.data(), qg.data(), sg.data(), dim,
                                    1e-5f);
  for (size_t i = 0; i < qw.size(); ++i)
    EXPECT_LE(std::abs(int(qw[i]) - int(qg[i])), 1) << i;
  for (int64_t t = 0; t < n; ++t)
    EXPECT_NEAR(sg[t], sw[t], 1e-6f * sw[t]);
  tern_uk_quantize_i8_ref(nullptr, n, x.data(), qw.data(), sw.data(), dim);
  tern_uk_quantize_i8_cuda(&h.ctx, n, x.data(), qg.data(), sg.data(), dim);
  EXPECT_EQ(qw, qg);
  EXPECT_EQ(sw, sg);
  EXPECT_EQ(h.error, "");
}

TEST(CudaLaunchers, EmbedAndRopeReadTheBatchMirrors) {
  std::mt19937 rng(3);
  const int64_t n = 4, hidden = 128, vocab = 50;
  std::vector<uint16_t> table(vocab * hidden);
  for (uint16_t &v : table)
    v = uint16_t(0x3000 + rng() % 0x1000);
  std::vector<int32_t> tokens = {3, 49, 0, 17};
  Harness h;
  h.mirror(tokens);
  std::vector<float> want(n * hidden), got(n * hidden);
  tern_uk_embed_f16_ref(nullptr, n, tokens.data(), table.data(), want.data(), hidden, vocab);
  tern_uk_embed_f16_cuda(&h.ctx, n, tokens.data(), table.data(), got.data(), hidden, vocab);
  EXPECT_EQ(want, got);
  // The kernel read the mirror: changing the host array after the mirror
  // was taken changes nothing.
  tokens[0] = 4;
  tern_uk_embed_f16_cuda(&h.ctx, n, tokens.data(), table.data(), got.data(), hidden, vocab);
  EXPECT_EQ(want, got);

  const int64_t heads = 3, headDim = 64;
  const std::vector<float> x = randomFloats(rng, n * heads * headDim);
  std::vector<int32_t> pos = {0, 7, 123, 4095};
  h.mirror(pos);
  std::vector<float> rw(x.size()), rg(x.size());
  tern_uk_rope_neox_f32_ref(nullptr, n, x.data(), pos.data(), rw.data(), heads, headDim, headDim,
                            500000.0f);
  tern_uk_rope_neox_f32_cuda(&h.ctx, n, x.data(), pos.data(), rg.data(), heads, headDim, headDim,
                             500000.0f);
  EXPECT_EQ(rw, rg);
  EXPECT_EQ(h.error, "");
}

TEST(CudaLaunchers, MatmulI2sMatchesRefBitForBit) {
  std::mt19937 rng(4);
  const int64_t n = 9, k = 256, tm = 32, tk = 256;
  const std::vector<int64_t> segs = {64, 32, 32};
  const int64_t m = 128;
  const int64_t codes = roundUp(m, tm) * roundUp(k, tk) / 4;
  std::vector<uint8_t> packed(roundUp(codes, 64) + 12);
  std::uniform_int_distribution<int> c(0, 2);
  for (int64_t i = 0; i < codes; ++i)
    packed[i] = uint8_t(c(rng) << 6 | c(rng) << 4 | c(rng) << 2 | c(rng));
  for (int i = 0; i < 3; ++i) {
    const float s = 0.5f + float(i);
    std::memcpy(packed.data() + roundUp(codes, 64) + 4 * i, &s, 4);
  }
  std::vector<int8_t> q(n * k);
  for (int8_t &v : q)
    v = int8_t(int(rng() % 255) - 127);
  std::vector<float> qs = randomFloats(rng, n, 1.0f, 100.0f);
  std::vector<float> w0(n * 64), w1(n * 32), w2(n * 32), g0(n * 64), g1(n * 32), g2(n * 32);
  Harness h;
  tern_uk_matmul_i2s_ref(nullptr, n, q.data(), qs.data(), packed.data(), m, k, tm, tk, w0.data(),
                         64, w1.data(), 32, w2.data(), 32);
  tern_uk_matmul_i2s_cuda(&h.ctx, n, q.data(), qs.data(), packed.data(), m, k, tm, tk, g0.data(),
                          64, g1.data(), 32, g2.data(), 32);
  EXPECT_EQ(w0, g0);
  EXPECT_EQ(w1, g1);
  EXPECT_EQ(w2, g2);
  EXPECT_EQ(h.error, "");
}

// n >= kMmaMinTokens: the launcher picks the tensor-core kernel (below it,
// dp4a); both bit-identical with the ref.
TEST(CudaLaunchers, MatmulI2sPicksTheMmaKernelForPrefill) {
  std::mt19937 rng(40);
  const int64_t k = 512, tm = 32, tk = 512, m = 100;
  const int64_t codes = roundUp(m, tm) * roundUp(k, tk) / 4;
  std::vector<uint8_t> packed(roundUp(codes, 64) + 8);
  std::uniform_int_distribution<int> c(0, 2);
  for (int64_t i = 0; i < codes; ++i)
    packed[i] = uint8_t(c(rng) << 6 | c(rng) << 4 | c(rng) << 2 | c(rng));
  for (int i = 0; i < 2; ++i) {
    const float s = 0.75f + float(i);
    std::memcpy(packed.data() + roundUp(codes, 64) + 4 * i, &s, 4);
  }
  for (int64_t n : {15, 16, 41}) {
    std::vector<int8_t> q(n * k);
    for (int8_t &v : q)
      v = int8_t(int(rng() % 256) - 128);
    std::vector<float> qs = randomFloats(rng, n, 1.0f, 100.0f);
    std::vector<float> w0(n * 60), w1(n * 40), g0(n * 60, -1.0f), g1(n * 40, -1.0f);
    Harness h;
    tern_uk_matmul_i2s_ref(nullptr, n, q.data(), qs.data(), packed.data(), m, k, tm, tk, w0.data(),
                           60, w1.data(), 40, nullptr, 0);
    tern_uk_matmul_i2s_cuda(&h.ctx, n, q.data(), qs.data(), packed.data(), m, k, tm, tk, g0.data(),
                            60, g1.data(), 40, nullptr, 0);
    EXPECT_EQ(h.error, "");
    ASSERT_EQ(h.kernels.size(), 1u);
    EXPECT_EQ(h.kernels[0],
              n >= tc::kMmaMinTokens ? TERN_GPU_MATMUL_I2S_I8_MMA : TERN_GPU_MATMUL_I2S_I8)
        << "n=" << n;
    EXPECT_EQ(w0, g0) << "n=" << n;
    EXPECT_EQ(w1, g1) << "n=" << n;
  }
}

TEST(CudaLaunchers, LmHeadWritesTheLogitsMirror) {
  std::mt19937 rng(5);
  const int64_t n = 3, hidden = 128, vocab = 70;
  std::vector<uint16_t> w(vocab * hidden);
  for (uint16_t &v : w)
    v = uint16_t(0x2c00 + rng() % 0x1400) | uint16_t(rng() % 2 ? 0x8000 : 0);
  const std::vector<float> x = randomFloats(rng, n * hidden);
  std::vector<float> want(n * vocab), logits(n * vocab, -1.0f);
  Harness h;
  h.mirror(logits);
  tern_uk_lm_head_f16_ref(nullptr, n, x.data(), w.data(), want.data(), hidden, vocab, 0, 0);
  tern_uk_lm_head_f16_cuda(&h.ctx, n, x.data(), w.data(), logits.data(), hidden, vocab, 0, 0);
  // The host array is untouched (the backend copies the mirror back).
  for (float v : logits)
    EXPECT_EQ(v, -1.0f);
  const std::vector<float> got = h.mirrored(logits);
  ASSERT_EQ(got.size(), want.size());
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < vocab; ++r) {
      double mag = 0;
      for (int64_t i = 0; i < hidden; ++i)
        mag += std::fabs(double(x[t * hidden + i]));
      EXPECT_NEAR(got[t * vocab + r], want[t * vocab + r], 1e-6 * mag * 4) << t << "," << r;
    }
  EXPECT_EQ(h.error, "");
}

TEST(CudaLaunchers, GatherRowsCopiesTheOutputRows) {
  const int64_t rows = 6, rowBytes = 64 * 4;
  std::vector<uint8_t> src(rows * rowBytes);
  for (size_t i = 0; i < src.size(); ++i)
    src[i] = uint8_t(i * 7 + 3);
  std::vector<int32_t> outRows = {5, 0, 3};
  std::vector<uint8_t> dst(outRows.size() * rowBytes, 0);
  Harness h;
  h.mirror(outRows);
  tern_uk_gather_rows_cuda(&h.ctx, int64_t(outRows.size()), outRows.data(), src.data(), dst.data(),
                           rowBytes);
  for (size_t j = 0; j < outRows.size(); ++j)
    EXPECT_EQ(0,
              std::memcmp(dst.data() + j * rowBytes, src.data() + outRows[j] * rowBytes, rowBytes))
        << j;
  EXPECT_EQ(h.launches, 1);
}

// The attention launcher: two launches (K/V store, attention) reading the
// pool, page size and the flat page table from the ctx; the ref reads the
// same pages through the host pointer tables. The pool after the call is
// the ref's bit for bit; outputs within 1e-5 (kernels_test.cpp checks the
// kernels' bound in detail). Every position < 32: the one-warp attention
// kernel; a call with a position >= 32: the split kernel.
void attentionThroughLauncher(const std::vector<int32_t> &pos, const std::vector<int32_t> &seq,
                              int64_t maxPages, int32_t wantKernel) {
  std::mt19937 rng(6);
  const int64_t nSeq = 2, nLayer = 2, pageSize = 4, nHeads = 4, nKv = 2, hd = 64;
  const int64_t kvDim = nKv * hd, pageElems = 2 * pageSize * kvDim,
                nPages = nSeq * nLayer * maxPages;
  // Page ids shuffled: sequence s, layer l, page i -> ids[(s * nLayer + l) * maxPages + i].
  std::vector<int32_t> ids(static_cast<size_t>(nPages));
  for (int64_t i = 0; i < nPages; ++i)
    ids[size_t(i)] = int32_t((i * 5 + 3) % nPages);
  std::vector<std::vector<const int32_t *>> perSeq(nSeq);
  std::vector<const int32_t *const *> tables(nSeq);
  for (int64_t s = 0; s < nSeq; ++s) {
    for (int64_t l = 0; l < nLayer; ++l)
      perSeq[s].push_back(&ids[size_t((s * nLayer + l) * maxPages)]);
    tables[s] = perSeq[s].data();
  }
  std::vector<uint16_t> poolRef(size_t(nPages * pageElems)), poolGpu(poolRef.size());
  const int64_t n = int64_t(pos.size()), layer = 1;
  const std::vector<float> q = randomFloats(rng, n * nHeads * hd), k = randomFloats(rng, n * kvDim),
                           v = randomFloats(rng, n * kvDim);
  std::vector<float> want(q.size()), got(q.size());
  tern_ctx ref{};
  ref.abi_version = TERN_ABI_VERSION;
  ref.kv = {poolRef.data(), pageElems, pageSize, nSeq, tables.data()};
  tern_uk_attention_gqa_f16_ref(&ref, n, q.data(), k.data(), v.data(), pos.data(), seq.data(),
                                want.data(), layer, nHeads, nKv, hd, 0.125f);
  Harness h;
  std::vector<int32_t> posB = pos, seqB = seq;
  h.mirror(posB);
  h.mirror(seqB);
  h.ctx.kv = {poolGpu.data(), pageElems, pageSize, nSeq, nullptr};
  h.gpu.page_ids = ids.data();
  h.gpu.n_layer = nLayer;
  h.gpu.max_pages = maxPages;
  tern_uk_attention_gqa_f16_cuda(&h.ctx, n, q.data(), k.data(), v.data(), posB.data(), seqB.data(),
                                 got.data(), layer, nHeads, nKv, hd, 0.125f);
  EXPECT_EQ(h.error, "");
  EXPECT_EQ(h.kernels, (std::vector<int32_t>{TERN_GPU_KV_STORE_F16, wantKernel}));
  EXPECT_EQ(poolRef, poolGpu);
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 1e-5f) << i;
}

TEST(CudaLaunchers, AttentionWritesTheRefsPoolAndAttends) {
  // Sequence 0 gets positions 0..5, sequence 1 positions 0..2, interleaved.
  attentionThroughLauncher({0, 0, 1, 2, 1, 3, 4, 2, 5}, {0, 1, 0, 0, 1, 0, 0, 1, 0}, 4,
                           TERN_GPU_ATTENTION_GQA_F16);
  // Positions 0..31 of sequence 0: still one chunk.
  std::vector<int32_t> pos(32), seq(32, 0);
  std::iota(pos.begin(), pos.end(), 0);
  attentionThroughLauncher(pos, seq, 20, TERN_GPU_ATTENTION_GQA_F16);
  // Sequence 0 positions 0..69 (18 pages), sequence 1 positions 0..2.
  pos.resize(70);
  std::iota(pos.begin(), pos.end(), 0);
  seq.assign(70, 0);
  for (int32_t p : {0, 1, 2}) {
    pos.push_back(p);
    seq.push_back(1);
  }
  attentionThroughLauncher(pos, seq, 20, TERN_GPU_ATTENTION_GQA_F16_SPLIT);
}

TEST(CudaLaunchers, PlanKernelRefusesWhatNoKernelRuns) {
  tc::I2sParams p{1, nullptr, nullptr, nullptr, 64, 100, 32, 128, {}, {}};
  EXPECT_NE(tc::planKernel(TERN_GPU_MATMUL_I2S_I8, &p, sizeof p).error.find("multiple of 128"),
            std::string::npos);
  EXPECT_NE(tc::planKernel(TERN_GPU_MATMUL_I2S_I8, &p, sizeof p - 8).error.find("expected"),
            std::string::npos);
  EXPECT_NE(tc::planKernel(99, &p, sizeof p).error.find("unknown GPU kernel id 99"),
            std::string::npos);
  tc::GatherParams g{2, nullptr, nullptr, nullptr, 6};
  EXPECT_FALSE(tc::planKernel(TERN_GPU_GATHER_ROWS, &g, sizeof g).ok());
  // Plans of the shapes: one warp per row, 8 tokens per blockIdx.y.
  tc::I2sParams ok{20, nullptr, nullptr, nullptr, 2560, 2560, 32, 2560, {}, {}};
  const tc::LaunchDims d = tc::planKernel(TERN_GPU_MATMUL_I2S_I8, &ok, sizeof ok);
  EXPECT_EQ(d.describe(), "grid=(640,3) block=128");
  // The tensor-core kernel: 128 rows per block, 16 tokens per blockIdx.y.
  EXPECT_EQ(tc::planKernel(TERN_GPU_MATMUL_I2S_I8_MMA, &ok, sizeof ok).describe(),
            "grid=(20,2) block=128");
  EXPECT_NE(tc::planKernel(TERN_GPU_MATMUL_I2S_I8_MMA, &p, sizeof p).error.find("multiple of 128"),
            std::string::npos);
  // The split attention: one block of 128 threads per (token, head).
  tc::AttnF16Params a{};
  a.n = 3;
  a.nHeads = 20;
  a.nKvHeads = 5;
  a.headDim = 128;
  EXPECT_EQ(tc::planKernel(TERN_GPU_ATTENTION_GQA_F16_SPLIT, &a, sizeof a).describe(),
            "grid=(60,1) block=128");
  EXPECT_EQ(tc::planKernel(TERN_GPU_ATTENTION_GQA_F16, &a, sizeof a).describe(),
            "grid=(15,1) block=128");
  EXPECT_STREQ(tc::kernelName(TERN_GPU_ATTENTION_GQA_F16_SPLIT),
               "tern_gpu_attention_gqa_f16_split");
  for (int32_t k = 0; k < TERN_GPU_KERNEL_COUNT; ++k)
    EXPECT_NE(tc::kernelName(k), nullptr) << k;
  EXPECT_EQ(tc::kernelName(TERN_GPU_KERNEL_COUNT), nullptr);
}

// device.cpp's kernel table names exactly the PTX's entry points (the CUDA
// device looks every kernel up by that name when it loads the module): the
// .entry names of each architecture's PTX, built by clang, are the set of
// kernelName(0 .. TERN_GPU_KERNEL_COUNT - 1).
TEST(CudaLaunchers, KernelNamesAreThePtxEntries) {
  const std::vector<std::string> files = tern::cudatest::builtPtxFiles();
  if (files.empty())
    GTEST_SKIP() << "the PTX is not built here (TERN_CUDA_PTX off or no clang)";
  std::set<std::string> names;
  for (int32_t k = 0; k < TERN_GPU_KERNEL_COUNT; ++k)
    names.insert(tc::kernelName(k));
  EXPECT_EQ(names.size(), size_t(TERN_GPU_KERNEL_COUNT)) << "two ids share a name";
  for (const std::string &path : files) {
    std::string ptx;
    ASSERT_TRUE(tern::cudatest::readText(path, ptx)) << "cannot read " << path;
    std::set<std::string> entries;
    const std::string tag = ".entry ";
    for (size_t at = ptx.find(tag); at != std::string::npos; at = ptx.find(tag, at + 1)) {
      const size_t from = at + tag.size(), to = ptx.find_first_of("( \t\n", from);
      entries.insert(ptx.substr(from, to - from));
    }
    EXPECT_EQ(entries, names) << path;
  }
}

} // namespace
