// Standalone AArch64 check of the NEON ukernels against their ref twins,
// cross-compiled with the ukernel sources and run under qemu-aarch64 (ctest
// ukernels_neon_qemu). No gtest/absl: weights are packed here following
// compiler/pack/Pack.h's i2s layout. Exit status 0 when every case matches.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "runtime/ukernels/ukernels.h"
#include "tests/ukernels/attention_check.h"
#include "tests/ukernels/ops_check.h"

namespace {

int failures = 0;

// Pack.h i2s: for rt, kt, r, 128-block b: 32 bytes, byte j = c[j]<<6 |
// c[j+32]<<4 | c[j+64]<<2 | c[j+96], c = w + 1, zero padding; then one f32
// per segment at the next multiple of 64 bytes.
std::vector<uint8_t> packI2S(const std::vector<int8_t> &w, int64_t m, int64_t k, int64_t tm,
                             int64_t tk, const std::vector<float> &segScales) {
  const int64_t mp = (m + tm - 1) / tm * tm, kp = (k + tk - 1) / tk * tk;
  auto code = [&](int64_t r, int64_t c) { return (r < m && c < k) ? w[r * k + c] : 0; };
  std::vector<uint8_t> out;
  for (int64_t rt = 0; rt < mp / tm; ++rt)
    for (int64_t kt = 0; kt < kp / tk; ++kt)
      for (int64_t r = 0; r < tm; ++r)
        for (int64_t b = 0; b < tk / 128; ++b)
          for (int64_t j = 0; j < 32; ++j) {
            uint8_t byte = 0;
            for (int q = 0; q < 4; ++q)
              byte |= uint8_t(code(rt * tm + r, kt * tk + b * 128 + j + 32 * q) + 1) << (6 - 2 * q);
            out.push_back(byte);
          }
  out.resize((out.size() + 63) / 64 * 64 + 4 * segScales.size(), 0);
  std::memcpy(out.data() + out.size() - 4 * segScales.size(), segScales.data(),
              4 * segScales.size());
  return out;
}

// Pack.h tl1: for rt, kt, each group p of 4 columns, r: byte = idx(c, c+1) |
// idx(c+2, c+3) << 4, idx = 3 (w0 + 1) + (w1 + 1); zero padding; scales as i2s.
std::vector<uint8_t> packTL1(const std::vector<int8_t> &w, int64_t m, int64_t k, int64_t tm,
                             int64_t tk, const std::vector<float> &segScales) {
  const int64_t mp = (m + tm - 1) / tm * tm, kp = (k + tk - 1) / tk * tk;
  auto code = [&](int64_t r, int64_t c) { return (r < m && c < k) ? w[r * k + c] : 0; };
  std::vector<uint8_t> out;
  for (int64_t rt = 0; rt < mp / tm; ++rt)
    for (int64_t kt = 0; kt < kp / tk; ++kt)
      for (int64_t p = 0; p < tk / 4; ++p)
        for (int64_t r = 0; r < tm; ++r) {
          const int64_t row = rt * tm + r, c = kt * tk + 4 * p;
          const int lo = 3 * (code(row, c) + 1) + code(row, c + 1) + 1;
          const int hi = 3 * (code(row, c + 2) + 1) + code(row, c + 3) + 1;
          out.push_back(uint8_t(lo | hi << 4));
        }
  out.resize((out.size() + 63) / 64 * 64 + 4 * segScales.size(), 0);
  std::memcpy(out.data() + out.size() - 4 * segScales.size(), segScales.data(),
              4 * segScales.size());
  return out;
}

bool sameBits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }

using MatmulI8 = void (*)(TERN_UK_MATMUL_I8_ARGS);

void checkMatmul(std::mt19937 &rng, bool tl1, int64_t tm, int64_t tk, std::vector<int64_t> segs,
                 int64_t k, int64_t n) {
  int64_t m = 0;
  for (int64_t s : segs)
    m += s;
  std::vector<int8_t> w(m * k);
  for (auto &v : w)
    v = int8_t(int(rng() % 3) - 1);
  std::vector<float> scales;
  for (size_t i = 0; i < segs.size(); ++i)
    scales.push_back(0.5f + float(rng() % 100) / 64.0f);
  std::vector<uint8_t> packed =
      tl1 ? packTL1(w, m, k, tm, tk, scales) : packI2S(w, m, k, tm, tk, scales);
  std::vector<int8_t> q(n * k);
  for (auto &v : q)
    v = int8_t(int(rng() % 256) - 128);
  std::vector<float> qs(n);
  for (auto &v : qs)
    v = 1.0f + float(rng() % 1000) / 10.0f;
  segs.resize(3, 0);
  auto run = [&](MatmulI8 fn, std::vector<std::vector<float>> &o) {
    o.assign(3, {});
    for (int i = 0; i < 3; ++i)
      o[i].assign(n * segs[i], NAN);
    fn(nullptr, n, q.data(), qs.data(), packed.data(), m, k, tm, tk, o[0].data(), segs[0],
       segs[1] ? o[1].data() : nullptr, segs[1], segs[2] ? o[2].data() : nullptr, segs[2]);
  };
  std::vector<std::vector<float>> want, got;
  run(tl1 ? &tern_uk_matmul_tl1_ref : &tern_uk_matmul_i2s_ref, want);
  const char *lay = tl1 ? "tl1" : "i2s";
  // The ref against plain integer math first.
  for (int64_t t = 0; t < n; ++t) {
    int64_t r = 0;
    for (int s = 0; s < 3; ++s)
      for (int64_t i = 0; i < segs[s]; ++i, ++r) {
        int32_t acc = 0;
        for (int64_t c = 0; c < k; ++c)
          acc += int32_t(w[r * k + c]) * q[t * k + c];
        const float plain = float(acc) * scales[s] / qs[t];
        if (!sameBits(plain, want[s][t * segs[s] + i])) {
          std::printf("FAIL ref %s tile %ldx%ld K=%ld row %ld: %g vs %g\n", lay, long(tm), long(tk),
                      long(k), long(r), want[s][t * segs[s] + i], plain);
          ++failures;
          return;
        }
      }
  }
  const struct {
    const char *name;
    MatmulI8 fn;
  } fast[] = {{"neon", &tern_uk_matmul_i2s_neon},
              {"neon_dotprod", &tern_uk_matmul_i2s_neon_dotprod},
              {"neon_i8mm", &tern_uk_matmul_i2s_neon_i8mm},
              {"neon", &tern_uk_matmul_tl1_neon},
              {"neon_dotprod", &tern_uk_matmul_tl1_neon_dotprod},
              {"neon_i8mm", &tern_uk_matmul_tl1_neon_i8mm}};
  for (int fi = tl1 ? 3 : 0; fi < (tl1 ? 6 : 3); ++fi) {
    const auto &f = fast[fi];
    run(f.fn, got);
    for (int s = 0; s < 3; ++s)
      for (size_t i = 0; i < got[s].size(); ++i)
        if (!sameBits(got[s][i], want[s][i])) {
          std::printf("FAIL %s_%s tile %ldx%ld K=%ld n=%ld seg %d item %zu: %g vs %g\n", f.name,
                      lay, long(tm), long(tk), long(k), long(n), s, i, got[s][i], want[s][i]);
          ++failures;
          return;
        }
    // Batch invariance: the first, a middle and the last token run alone give
    // the bits they got inside the batch (the GEMM paths block tokens by 4,
    // 2, 1; decode, n = 1, runs the one-row kernel).
    for (int64_t t : {int64_t(0), n / 2, n - 1}) {
      std::vector<std::vector<float>> alone(3);
      for (int i = 0; i < 3; ++i)
        alone[i].assign(segs[i], NAN);
      f.fn(nullptr, 1, q.data() + t * k, qs.data() + t, packed.data(), m, k, tm, tk,
           alone[0].data(), segs[0], segs[1] ? alone[1].data() : nullptr, segs[1],
           segs[2] ? alone[2].data() : nullptr, segs[2]);
      for (int s = 0; s < 3; ++s)
        for (int64_t i = 0; i < segs[s]; ++i)
          if (!sameBits(alone[s][i], got[s][t * segs[s] + i])) {
            std::printf("FAIL %s_%s batch invariance tile %ldx%ld K=%ld n=%ld t=%ld seg %d row "
                        "%ld: alone %g, in the batch %g\n",
                        f.name, lay, long(tm), long(tk), long(k), long(n), long(t), s, long(i),
                        alone[s][i], got[s][t * segs[s] + i]);
            ++failures;
            return;
          }
    }
  }
}

// f16 heads vs their ref (lane sums vs sequential: a relative tolerance),
// q8 heads (integer sums) bit-identical to theirs, for both arm ISA files;
// and each token's logits alone equal to its row in the batch.
void checkLmHead(std::mt19937 &rng, int64_t hidden, int64_t vocab, int64_t n) {
  std::normal_distribution<float> nd;
  std::vector<uint16_t> w(vocab * hidden);
  for (auto &h : w) // finite halves with small exponents
    h = uint16_t((rng() & 0x83ff) | ((12 + rng() % 6) << 10));
  const int64_t scalesAt = (vocab * hidden + 63) / 64 * 64;
  std::vector<uint8_t> w8(scalesAt + 4 * vocab);
  for (int64_t i = 0; i < vocab * hidden; ++i)
    w8[i] = uint8_t(int8_t(int(rng() % 255) - 127));
  for (int64_t v = 0; v < vocab; ++v) {
    const float s = 0.001f * float(1 + rng() % 50);
    std::memcpy(&w8[scalesAt + 4 * v], &s, 4);
  }
  std::vector<float> x(n * hidden);
  for (auto &v : x)
    v = nd(rng);
  using F16 = void (*)(TERN_UK_LM_HEAD_ARGS);
  using Q8 = void (*)(TERN_UK_LM_HEAD_Q8_ARGS);
  const struct {
    const char *name;
    F16 f16;
    Q8 q8;
  } fast[] = {
      {"neon", &tern_uk_lm_head_f16_neon, &tern_uk_lm_head_q8_neon},
      {"neon_dotprod", &tern_uk_lm_head_f16_neon_dotprod, &tern_uk_lm_head_q8_neon_dotprod}};
  for (const auto &f : fast)
    for (int q8 = 0; q8 < 2; ++q8) {
      auto run = [&](bool ref, int64_t nt, const float *xs, float *out) {
        if (q8)
          (ref ? tern_uk_lm_head_q8_ref : f.q8)(nullptr, nt, xs, w8.data(), out, hidden, vocab, 16,
                                                256);
        else
          (ref ? tern_uk_lm_head_f16_ref : f.f16)(nullptr, nt, xs, w.data(), out, hidden, vocab, 16,
                                                  256);
      };
      std::vector<float> want(n * vocab), got(n * vocab), one(vocab);
      run(true, n, x.data(), want.data());
      run(false, n, x.data(), got.data());
      for (int64_t i = 0; i < n * vocab; ++i)
        if (q8 ? !sameBits(got[i], want[i])
               : std::fabs(got[i] - want[i]) >
                     1e-4f * (1.0f + std::fabs(want[i])) * std::sqrt(float(hidden))) {
          std::printf("FAIL lm_head_%s_%s hidden=%ld n=%ld item %ld: %g vs %g\n", q8 ? "q8" : "f16",
                      f.name, long(hidden), long(n), long(i), got[i], want[i]);
          ++failures;
          return;
        }
      for (int64_t t = 0; t < n; ++t) {
        run(false, 1, &x[t * hidden], one.data());
        if (std::memcmp(one.data(), &got[t * vocab], 4 * vocab) != 0) {
          std::printf("FAIL lm_head_%s_%s hidden=%ld token %ld: not batch invariant\n",
                      q8 ? "q8" : "f16", f.name, long(hidden), long(t));
          ++failures;
          return;
        }
      }
    }
}

} // namespace

int main() {
  std::mt19937 rng(42);
  int cases = 0;
  for (int64_t n : {1, 3, 4, 9}) {
    checkMatmul(rng, false, 32, 256, {64}, 256, n);
    checkMatmul(rng, false, 16, 128, {40, 24, 24}, 384, n);
    checkMatmul(rng, false, 64, 512, {100}, 700, n);
    checkMatmul(rng, false, 16, 256, {37, 11}, 200, n);
    checkMatmul(rng, false, 8, 128, {5}, 1000, n);
    checkMatmul(rng, false, 4, 128, {3}, 100, n);             // K below one block: tail only
    checkMatmul(rng, true, 64, 256, {256, 128, 128}, 256, n); // the compiler's q/k/v tiles
    checkMatmul(rng, true, 16, 128, {40, 24, 24}, 384, n);
    checkMatmul(rng, true, 32, 8, {37, 11}, 202, n); // K tail inside a 4-column group
    checkMatmul(rng, true, 16, 256, {5}, 1000, n);
    checkMatmul(rng, true, 48, 64, {21}, 100, n); // one row tile, M tail of 27 rows
    cases += 11;
  }
  // The i2s GEMM (prefill) paths: batches with token tails of the 4-token
  // blocks, row tiles whose rows are not a multiple of 4 (tile_m 6, M tails),
  // K tails; up to 600 tokens on a small shape.
  for (int64_t n : {2, 5, 7, 8, 13, 33, 64}) {
    checkMatmul(rng, false, 6, 128, {17}, 300, n);
    checkMatmul(rng, false, 32, 256, {70, 26}, 2560, n);
    checkMatmul(rng, false, 16, 1024, {33, 1}, 1100, n);
    checkMatmul(rng, false, 8, 128, {45}, 130, n);
    cases += 4;
  }
  checkMatmul(rng, false, 16, 128, {40, 24, 24}, 384, 600);
  checkMatmul(rng, false, 6, 256, {13}, 520, 300);
  cases += 2;
  for (int64_t hidden : {8, 100, 256, 7, 67, 33})
    for (int64_t n : {1, 2, 3, 6, 17}) {
      checkLmHead(rng, hidden, hidden == 33 ? 5 : 31, n);
      ++cases;
    }
  // The non-matmul ops (ops_check.h: exact, or the stated tolerance) and
  // their batch invariance, for both arm ISA files.
  namespace ops = tern::uktest::ops;
  for (const ops::Fns &f : {TERN_UKTEST_OPS_FNS(neon), TERN_UKTEST_OPS_FNS(neon_dotprod)}) {
    int64_t normInexact = 0, quantInexact = 0, siluUlps = 0;
    const std::string errs[] = {ops::checkEmbed(f, rng),
                                ops::checkRmsNorm(f, rng, normInexact),
                                ops::checkRmsNormQuantize(f, rng, quantInexact),
                                ops::checkQuantize(f, rng),
                                ops::checkRope(f, rng),
                                ops::checkElementwise(f, rng, siluUlps),
                                ops::checkBatchInvariance(f, rng)};
    for (const std::string &e : errs) {
      ++cases;
      if (!e.empty()) {
        std::printf("FAIL %s\n", e.c_str());
        ++failures;
      }
    }
    std::printf("%s: rms_norm %ld / rms_norm_quantize %ld tokens not bit-identical, silu <= %ld "
                "ulp\n",
                f.isa, long(normInexact), long(quantInexact), long(siluUlps));
  }
  // Attention (attention_check.h: tolerance, cache bits, batch invariance).
  // Both cache types: f32 and f16.
  namespace attn = tern::uktest::attn;
  struct AttnCase {
    const char *isa;
    const attn::KvKind *kv;
    attn::AttnFn fn;
  };
  const AttnCase attns[] = {
      {"neon", &attn::kKvF32, &tern_uk_attention_gqa_f32_neon},
      {"neon_dotprod", &attn::kKvF32, &tern_uk_attention_gqa_f32_neon_dotprod},
      {"neon", &attn::kKvF16, &tern_uk_attention_gqa_f16_neon},
      {"neon_dotprod", &attn::kKvF16, &tern_uk_attention_gqa_f16_neon_dotprod}};
  for (const AttnCase &a : attns) {
    double worst = 0.0;
    const std::string e = attn::checkAttention(*a.kv, a.fn, a.isa, rng, worst);
    ++cases;
    if (!e.empty()) {
      std::printf("FAIL %s\n", e.c_str());
      ++failures;
    }
    std::printf("attention_gqa_%s_%s: worst |fast - ref| = %.3g x (1 + A) max|v|\n", a.kv->name,
                a.isa, worst);
  }
  std::printf("%d cases, %d failures\n", cases, failures);
  return failures ? 1 : 0;
}
