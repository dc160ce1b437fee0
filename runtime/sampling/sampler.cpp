#include "runtime/sampling/sampler.h"

#include <algorithm>
#include <bit>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>

#include "absl/strings/str_cat.h"

namespace tern::sampling {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
// Up to this many survivors are sorted; above it top-p uses a weighted
// quickselect.
constexpr size_t kSortMax = 256;

std::string num(float v) { return absl::StrCat(v); }

// The "ranks before" order of the whole chain: higher logit first, then lower id.
template <class C> bool before(const C &a, const C &b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// Scans over the vocabulary work on 16 logical float lanes, held as 4 SSE2 /
// NEON vectors, 2 AVX2 vectors or 1 AVX-512 vector (GCC/Clang vector
// extensions; the variant is picked once at run time). Each logical lane sees
// the same elements in the same order in every variant, every reduction has a
// fixed order, and nothing is fused (-ffp-contract=off): all variants give the
// same bits, so the tokens drawn do not depend on the machine's ISA.
constexpr size_t kLanes = 16;
constexpr size_t kBlock = 64; // block maxima are kept per 64 logits

template <int W> struct Vec;
template <> struct Vec<4> {
  typedef float F __attribute__((vector_size(16)));
  typedef int32_t I __attribute__((vector_size(16)));
  typedef float H __attribute__((vector_size(8)));
  typedef double D __attribute__((vector_size(16)));
  static H lo(F v) { return __builtin_shufflevector(v, v, 0, 1); }
  static H hi(F v) { return __builtin_shufflevector(v, v, 2, 3); }
};
template <> struct Vec<8> {
  typedef float F __attribute__((vector_size(32)));
  typedef int32_t I __attribute__((vector_size(32)));
  typedef float H __attribute__((vector_size(16)));
  typedef double D __attribute__((vector_size(32)));
  static H lo(F v) { return __builtin_shufflevector(v, v, 0, 1, 2, 3); }
  static H hi(F v) { return __builtin_shufflevector(v, v, 4, 5, 6, 7); }
};
template <> struct Vec<16> {
  typedef float F __attribute__((vector_size(64)));
  typedef int32_t I __attribute__((vector_size(64)));
  typedef float H __attribute__((vector_size(32)));
  typedef double D __attribute__((vector_size(64)));
  static H lo(F v) { return __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7); }
  static H hi(F v) { return __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15); }
};

#define TERN_INLINE [[gnu::always_inline]] inline

template <class F> TERN_INLINE F load(const float *p) {
  F v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class F> TERN_INLINE F splat(float x) { return F{} + x; }
// Comparisons only ever appear inside ?: (a vector select): GCC lowers a
// free-standing vector comparison mask element by element.
template <class F> TERN_INLINE F vmax(F m, F x) { return x > m ? x : m; } // NaN x leaves m
// Horizontal max by halving (a shuffle and a max per step).
template <int W> TERN_INLINE float hmax(typename Vec<W>::F v) {
  if constexpr (W == 4) {
    const float a = v[1] > v[0] ? v[1] : v[0];
    const float b = v[3] > v[2] ? v[3] : v[2];
    return b > a ? b : a;
  } else {
    return hmax<W / 2>(vmax(Vec<W>::lo(v), Vec<W>::hi(v)));
  }
}

// e^x for x <= 0 (x = -inf gives 0), branch-free. Cody-Waite reduction to
// |r| <= ln2/2 and a degree-7 Taylor polynomial: relative error below 2e-7;
// results below e^-87 flush to 0. The scalar and vector forms run the same
// IEEE operations, so they give the same bits.
constexpr float kExpLo = -87.0f, kLog2e = 1.44269504088896341f, kRound = 12582912.0f;
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kC[8] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1, 1};

TERN_INLINE float expNonPositive(float x) {
  const float xc = x < kExpLo ? kExpLo : x;
  const float n = (xc * kLog2e + kRound) - kRound; // round(x / ln 2)
  float r = xc - n * kLn2Hi;
  r = r - n * kLn2Lo;
  float p = kC[0];
  for (int i = 1; i < 8; ++i)
    p = p * r + kC[i];
  const int32_t e = static_cast<int32_t>(n) + 127; // in [1, 127]
  const float scale = std::bit_cast<float>(static_cast<uint32_t>(e) << 23);
  return x < kExpLo ? 0.0f : p * scale;
}

template <int W> TERN_INLINE typename Vec<W>::F expNonPositive(typename Vec<W>::F x) {
  using F = typename Vec<W>::F;
  using I = typename Vec<W>::I;
  const F lo = splat<F>(kExpLo);
  const F xc = x < lo ? lo : x;
  const F n = (xc * kLog2e + kRound) - kRound;
  F r = xc - n * kLn2Hi;
  r = r - n * kLn2Lo;
  F p = splat<F>(kC[0]);
  for (int i = 1; i < 8; ++i)
    p = p * r + kC[i];
  const I e = __builtin_convertvector(n, I) + 127;
  const F scale = (F)(e << 23);
  return x < lo ? splat<F>(0.0f) : p * scale;
}

struct MaxScan {
  float max = -kInf;
  int32_t argmax = -1; // lowest id holding max
  bool nan = false;
};

// Max over x[0, n), the max of every block of kBlock floats (the last one
// partial) into blockMax[ceil(n / kBlock)], NaN detection, lowest argmax.
template <int W> TERN_INLINE MaxScan scanMaxT(const float *x, size_t n, float *blockMax) {
  using F = typename Vec<W>::F;
  constexpr size_t N = kBlock / W;
  F sum = {}; // NaN when a logit is NaN (or for +inf with -inf: re-checked)
  MaxScan s;
  size_t i = 0, b = 0;
  for (; i + kBlock <= n; i += kBlock, ++b) {
    F v[N];
    for (size_t q = 0; q < N; ++q)
      v[q] = load<F>(x + i + q * W);
    for (size_t step = N / 2; step > 0; step /= 2) // pairwise tree
      for (size_t q = 0; q < step; ++q) {
        sum += v[q] + v[q + step];
        v[q] = vmax(v[q], v[q + step]);
      }
    const float m = hmax<W>(v[0]);
    blockMax[b] = m;
    s.max = m > s.max ? m : s.max;
  }
  if (i < n) {
    float m = -kInf;
    for (; i < n; ++i) {
      m = x[i] > m ? x[i] : m;
      s.nan |= x[i] != x[i];
    }
    blockMax[b] = m;
    s.max = m > s.max ? m : s.max;
  }
  float probe = 0;
  for (int j = 0; j < W; ++j)
    probe += sum[j];
  if (probe != probe)
    for (size_t k = 0; k < n && !s.nan; ++k)
      s.nan = x[k] != x[k];
  if (s.nan)
    return s;
  for (size_t blk = 0; blk * kBlock < n; ++blk)
    if (blockMax[blk] == s.max) {
      for (size_t k = blk * kBlock; k < n; ++k)
        if (x[k] == s.max) {
          s.argmax = static_cast<int32_t>(k);
          break;
        }
      break;
    }
  return s;
}

// The start of the first block of kBlock floats at or after `i` (a multiple
// of kBlock) holding a value >= t; the start of the tail (n rounded down to
// kBlock) when there is none.
template <int W> TERN_INLINE size_t nextAtLeastT(const float *x, size_t i, size_t n, float t) {
  using F = typename Vec<W>::F;
  constexpr size_t N = kBlock / W;
  for (; i + kBlock <= n; i += kBlock) {
    F m = load<F>(x + i);
    for (size_t q = 1; q < N; ++q)
      m = vmax(m, load<F>(x + i + q * W));
    if (hmax<W>(m) >= t)
      return i;
  }
  return i;
}

// Sum of e^((w - max) * scale) over w[begin, end), in double: 16 logical
// lanes (element i in lane i % 16), summed in lane order at the end.
template <int W>
TERN_INLINE double sumExpT(const float *x, size_t begin, size_t end, float max, float scale) {
  using V = Vec<W>;
  using F = typename V::F;
  using D = typename V::D;
  constexpr size_t N = kLanes / W;
  D acc[2 * N] = {};
  const F mx = splat<F>(max), sc = splat<F>(scale);
  size_t i = begin;
  for (; i + kLanes <= end; i += kLanes)
    for (size_t q = 0; q < N; ++q) {
      const F e = expNonPositive<W>((load<F>(x + i + q * W) - mx) * sc);
      acc[2 * q] += __builtin_convertvector(V::lo(e), D);
      acc[2 * q + 1] += __builtin_convertvector(V::hi(e), D);
    }
  double s = 0;
  for (size_t q = 0; q < 2 * N; ++q)
    for (int j = 0; j < W / 2; ++j)
      s += acc[q][j];
  for (; i < end; ++i)
    s += expNonPositive((x[i] - max) * scale);
  return s;
}

struct Kernels {
  MaxScan (*scanMax)(const float *, size_t, float *);
  size_t (*nextAtLeast)(const float *, size_t, size_t, float);
  double (*sumExp)(const float *, size_t, size_t, float, float);
};

#define TERN_KERNELS(NAME, W, ATTR)                                                                \
  ATTR MaxScan scanMax##NAME(const float *x, size_t n, float *bm) {                                \
    return scanMaxT<W>(x, n, bm);                                                                  \
  }                                                                                                \
  ATTR size_t nextAtLeast##NAME(const float *x, size_t i, size_t n, float t) {                     \
    return nextAtLeastT<W>(x, i, n, t);                                                            \
  }                                                                                                \
  ATTR double sumExp##NAME(const float *x, size_t b, size_t e, float m, float s) {                 \
    return sumExpT<W>(x, b, e, m, s);                                                              \
  }                                                                                                \
  constexpr Kernels kKernels##NAME = {scanMax##NAME, nextAtLeast##NAME, sumExp##NAME};

TERN_KERNELS(Base, 4, )
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
TERN_KERNELS(Avx2, 8, __attribute__((target("avx2"))))
TERN_KERNELS(Avx512, 16, __attribute__((target("avx512f"))))
#endif

// The variant for this machine; TERN_SAMPLING_ISA=base|avx2|avx512 forces one
// (tests check that all give the same tokens).
const Kernels &kernels() {
  static const Kernels k = [] {
    const char *force = std::getenv("TERN_SAMPLING_ISA");
    const std::string f = force ? force : "";
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if ((f.empty() || f == "avx512") && __builtin_cpu_supports("avx512f"))
      return kKernelsAvx512;
    if ((f.empty() || f == "avx2" || f == "avx512") && __builtin_cpu_supports("avx2"))
      return kKernelsAvx2;
#endif
    return kKernelsBase;
  }();
  return k;
}

MaxScan scanMax(const float *x, size_t n, float *bm) { return kernels().scanMax(x, n, bm); }
size_t nextAtLeast(const float *x, size_t i, size_t n, float t) {
  return kernels().nextAtLeast(x, i, n, t);
}
double sumExp(const float *x, size_t b, size_t e, float m, float s) {
  return kernels().sumExp(x, b, e, m, s);
}

} // namespace

absl::StatusOr<LogitBias> parseLogitBias(std::string_view value) {
  const std::string v(value);
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("--logit-bias '", v, "': ", std::string(why),
                     " (expected TOKEN_ID(+|-)BIAS, e.g. 15043+1, 15043-0.5 or 15043-inf)"));
  };
  size_t sign = 0;
  while (sign < v.size() && v[sign] >= '0' && v[sign] <= '9')
    ++sign;
  if (sign == 0)
    return bad("no token id");
  if (sign == v.size())
    return bad("no + or - after the token id");
  if (v[sign] != '+' && v[sign] != '-')
    return bad(absl::StrCat("unexpected '", std::string(1, v[sign]), "' after the token id"));
  int64_t token = 0;
  for (size_t i = 0; i < sign; ++i) {
    token = token * 10 + (v[i] - '0');
    if (token > std::numeric_limits<int32_t>::max())
      return bad("token id too large");
  }
  const std::string rest = v.substr(sign + 1);
  if (rest.empty())
    return bad("no bias after the sign");
  if (rest[0] == '+' || rest[0] == '-')
    return bad("a second sign");
  float mag = 0;
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), mag);
  if (ec == std::errc::result_out_of_range)
    return bad("bias out of range");
  if (ec != std::errc() || end != rest.data() + rest.size() || std::isnan(mag))
    return bad(absl::StrCat("'", rest, "' is not a number"));
  LogitBias b;
  b.token = static_cast<int32_t>(token);
  b.bias = v[sign] == '-' ? -mag : mag;
  if (b.bias == kInf)
    return bad("a bias of +inf is not allowed (-inf bans a token)");
  return b;
}

absl::Status validate(const SamplerParams &p, int32_t vocabSize, int32_t contextSize) {
  auto err = [](auto &&...parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); };
  if (vocabSize <= 0)
    return err("sampler: vocabulary size must be positive, got ", vocabSize);
  if (!std::isfinite(p.temperature))
    return err("--temp must be a finite number, got ", num(p.temperature));
  if (p.topK < 0)
    return err("--top-k must be >= 0 (0 = off), got ", p.topK);
  if (!(p.topP > 0.0f && p.topP <= 1.0f))
    return err("--top-p must be in (0, 1] (1 = off), got ", num(p.topP));
  if (!(p.minP >= 0.0f && p.minP <= 1.0f))
    return err("--min-p must be in [0, 1] (0 = off), got ", num(p.minP));
  if (p.repeatLastN < -1)
    return err("--repeat-last-n must be >= -1 (0 = off, -1 = context size), got ", p.repeatLastN);
  if (p.repeatLastN == -1 && contextSize <= 0)
    return err("--repeat-last-n -1 means the context size, which is not known here");
  if (!(std::isfinite(p.repeatPenalty) && p.repeatPenalty > 0.0f))
    return err("--repeat-penalty must be a number > 0 (1 = off), got ", num(p.repeatPenalty));
  if (!std::isfinite(p.frequencyPenalty))
    return err("--frequency-penalty must be a finite number, got ", num(p.frequencyPenalty));
  if (!std::isfinite(p.presencePenalty))
    return err("--presence-penalty must be a finite number, got ", num(p.presencePenalty));
  for (const LogitBias &b : p.logitBias) {
    if (b.token < 0 || b.token >= vocabSize)
      return err("--logit-bias: token ", b.token, " is outside the vocabulary (0..", vocabSize - 1,
                 ")");
    if (std::isnan(b.bias) || b.bias == kInf)
      return err("--logit-bias: token ", b.token, ": bias must be finite or -inf, got ",
                 num(b.bias));
  }
  return absl::OkStatus();
}

uint64_t randomSeed() {
  std::random_device rd;
  return static_cast<uint64_t>(rd()) & 0xffffffffu;
}

void banTokens(SamplerParams &params, std::span<const int32_t> tokens) {
  for (int32_t t : tokens)
    params.logitBias.push_back({t, -kInf});
}

Sampler::Sampler(SamplerParams params, int32_t vocabSize, int32_t lastN)
    : params_(std::move(params)), vocab_(vocabSize), lastN_(lastN),
      ring_(static_cast<size_t>(lastN)), rng_(params_.seed) {
  // One entry per token, in token order; biases of the same token add up.
  std::vector<LogitBias> b = params_.logitBias;
  std::stable_sort(b.begin(), b.end(),
                   [](const LogitBias &x, const LogitBias &y) { return x.token < y.token; });
  for (const LogitBias &e : b) {
    if (!bias_.empty() && bias_.back().token == e.token)
      bias_.back().bias += e.bias;
    else
      bias_.push_back(e);
  }
}

absl::StatusOr<Sampler> Sampler::create(SamplerParams params, int32_t vocabSize,
                                        int32_t contextSize) {
  if (absl::Status s = validate(params, vocabSize, contextSize); !s.ok())
    return s;
  const int32_t lastN = params.repeatLastN == -1 ? contextSize : params.repeatLastN;
  return Sampler(std::move(params), vocabSize, lastN);
}

void Sampler::accept(int32_t token) {
  if (lastN_ <= 0 || token < 0 || token >= vocab_)
    return;
  if (ringSize_ == static_cast<size_t>(lastN_)) {
    const int32_t old = ring_[ringHead_];
    auto it = counts_.find(old);
    if (--it->second == 0)
      counts_.erase(it);
  } else {
    ++ringSize_;
  }
  ring_[ringHead_] = token;
  ringHead_ = (ringHead_ + 1) % static_cast<size_t>(lastN_);
  ++counts_[token];
}

void Sampler::resetHistory() {
  ringHead_ = ringSize_ = 0;
  counts_.clear();
}

void Sampler::reseed(uint64_t seed) {
  params_.seed = seed;
  rng_.seed(seed);
}

std::vector<int32_t> Sampler::history() const {
  std::vector<int32_t> h;
  h.reserve(ringSize_);
  const size_t n = static_cast<size_t>(std::max(lastN_, 1));
  const size_t start = (ringHead_ + n - ringSize_) % n;
  for (size_t i = 0; i < ringSize_; ++i)
    h.push_back(ring_[(start + i) % n]);
  return h;
}

double Sampler::uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

std::span<const float> Sampler::adjusted(std::span<const float> logits) {
  const SamplerParams &p = params_;
  const bool penalties =
      !counts_.empty() &&
      (p.repeatPenalty != 1.0f || p.frequencyPenalty != 0.0f || p.presencePenalty != 0.0f);
  if (bias_.empty() && !penalties)
    return logits;
  work_.assign(logits.begin(), logits.end());
  for (const LogitBias &b : bias_)
    work_[b.token] += b.bias;
  if (penalties)
    for (const auto &[token, count] : counts_) {
      float &l = work_[token];
      if (l <= 0.0f)
        l *= p.repeatPenalty;
      else
        l /= p.repeatPenalty;
      l -= static_cast<float>(count) * p.frequencyPenalty + p.presencePenalty;
    }
  return work_;
}

// Exact top-k (by `before`) of the finite logits into cand_, unsorted: a scan
// that keeps a buffer of candidates at or above a threshold; when the buffer
// fills, nth_element cuts it to k and the threshold rises to just above the
// k-th logit (a later token with the same logit has a higher id, so it ranks
// after). Expected work O(V + k log(V/k) log k).
void Sampler::selectTopK(std::span<const float> w, int32_t k, float floor) {
  const size_t kk = static_cast<size_t>(k);
  const auto cmp = [](const Cand &a, const Cand &b) { return before(a, b); };
  if (kk <= blockMax_.size()) {
    // The k-th largest block max t0 bounds the k-th largest logit from below
    // (k blocks each hold a logit >= t0): only blocks reaching t0 can hold
    // the top k, at most a few more than k of them.
    blockTmp_.assign(blockMax_.begin(), blockMax_.end());
    std::nth_element(blockTmp_.begin(), blockTmp_.begin() + (kk - 1), blockTmp_.end(),
                     std::greater<float>());
    collectAtLeast(w, std::max(blockTmp_[kk - 1], floor));
    if (cand_.size() > kk) {
      std::nth_element(cand_.begin(), cand_.begin() + (kk - 1), cand_.end(), cmp);
      cand_.resize(kk);
    }
    return;
  }
  const size_t cap = std::max<size_t>(2 * kk, kk + 256);
  float thr = std::max(floor, -FLT_MAX); // excludes -inf (banned) tokens
  cand_.clear();
  auto prune = [&] {
    std::nth_element(cand_.begin(), cand_.begin() + (kk - 1), cand_.end(),
                     [](const Cand &a, const Cand &b) { return before(a, b); });
    cand_.resize(kk);
    thr = std::nextafter(cand_[kk - 1].logit, kInf);
  };
  const size_t n = w.size();
  size_t i = 0;
  while ((i = nextAtLeast(w.data(), i, n, thr)) + kBlock <= n) {
    for (size_t j = i; j < i + kBlock; ++j)
      if (w[j] >= thr)
        cand_.push_back({w[j], static_cast<int32_t>(j)});
    if (cand_.size() >= cap)
      prune();
    i += kBlock;
  }
  for (; i < n; ++i)
    if (w[i] >= thr)
      cand_.push_back({w[i], static_cast<int32_t>(i)});
  if (cand_.size() > kk)
    prune();
}

// Every token with a logit >= threshold (and finite), by scanning only the
// blocks whose max reaches it.
void Sampler::collectAtLeast(std::span<const float> w, float threshold) {
  const float thr = std::max(threshold, -FLT_MAX);
  cand_.clear();
  const size_t n = w.size();
  for (size_t b = 0; b < blockMax_.size(); ++b) {
    if (!(blockMax_[b] >= thr))
      continue;
    for (size_t j = b * kBlock; j < std::min(n, (b + 1) * kBlock); ++j)
      if (w[j] >= thr)
        cand_.push_back({w[j], static_cast<int32_t>(j)});
  }
}

// Top-p over cand_ (a prefix, by `before`, of the set top-k kept): keeps the
// shortest prefix whose mass e^(l - max) reaches `target` = p * Z, where Z is
// the mass of everything top-k kept. When cand_ holds less than that (min-p
// already cut more), cand_ stays as it is. Small sets are sorted; large ones
// go through a weighted quickselect, O(n) expected.
void Sampler::topP(double target) {
  const size_t n = cand_.size();
  const auto cmp = [](const Cand &a, const Cand &b) { return before(a, b); };
  if (n <= kSortMax) {
    std::sort(cand_.begin(), cand_.end(), cmp);
    double cum = 0;
    for (size_t i = 0; i < n; ++i) {
      cum += expNonPositive(cand_[i].logit - max_);
      if (cum >= target) {
        cand_.resize(i + 1);
        return;
      }
    }
    return;
  }
  double total = 0;
  for (const Cand &c : cand_)
    total += expNonPositive(c.logit - max_);
  if (total < target)
    return;
  double need = target;
  size_t lo = 0, hi = n, keep = n;
  while (true) {
    if (hi - lo <= 64) {
      std::sort(cand_.begin() + lo, cand_.begin() + hi, cmp);
      keep = hi;
      for (size_t i = lo; i < hi; ++i) {
        need -= expNonPositive(cand_[i].logit - max_);
        if (need <= 0) {
          keep = i + 1;
          break;
        }
      }
      break;
    }
    // Median of three as the pivot, moved to the end of the range.
    const size_t mid = lo + (hi - lo) / 2;
    size_t a = lo, b = mid, c = hi - 1;
    if (cmp(cand_[b], cand_[a]))
      std::swap(a, b);
    if (cmp(cand_[c], cand_[b]))
      b = cmp(cand_[c], cand_[a]) ? a : c;
    std::swap(cand_[b], cand_[hi - 1]);
    const Cand pivot = cand_[hi - 1];
    auto split = std::partition(cand_.begin() + lo, cand_.begin() + (hi - 1),
                                [&](const Cand &x) { return cmp(x, pivot); });
    const size_t m = static_cast<size_t>(split - cand_.begin());
    std::swap(cand_[m], cand_[hi - 1]); // pivot at m; [lo, m) rank before it
    double mass = 0;
    for (size_t i = lo; i < m; ++i)
      mass += expNonPositive(cand_[i].logit - max_);
    if (mass >= need) {
      hi = m;
      continue;
    }
    need -= mass;
    need -= expNonPositive(pivot.logit - max_);
    if (need <= 0) {
      keep = m + 1;
      break;
    }
    lo = m + 1;
    if (lo >= hi) {
      keep = hi;
      break;
    }
  }
  cand_.resize(keep);
}

// Top-p over the whole vocabulary cuts inside the min-p survivors C only if
// mass(C) >= p * Z. Z >= mass(C) + the masses of the block maxima that lie
// below the min-p threshold (those blocks hold no survivor), so when
// mass(C) < p * (mass(C) + that bound), top-p keeps more than C and min-p
// decides alone: no exp over the whole vocabulary (the usual case).
bool Sampler::topPCannotCut(float minThr) {
  double massC = 0;
  for (const Cand &c : cand_)
    massC += expNonPositive(c.logit - max_);
  blockTmp_.resize(blockMax_.size());
  for (size_t b = 0; b < blockMax_.size(); ++b)
    blockTmp_[b] = blockMax_[b] < minThr ? blockMax_[b] : -kInf;
  const double below = sumExp(blockTmp_.data(), 0, blockTmp_.size(), max_, 1.0f);
  return massC < static_cast<double>(params_.topP) * (massC + below);
}

absl::Status Sampler::filter(std::span<const float> logits, bool sorted, bool dense) {
  if (logits.size() != static_cast<size_t>(vocab_))
    return absl::InvalidArgumentError(
        absl::StrCat("sampler: got ", logits.size(), " logits for a vocabulary of ", vocab_));
  const std::span<const float> w = adjusted(logits);
  blockMax_.resize((w.size() + kBlock - 1) / kBlock);
  const MaxScan s = scanMax(w.data(), w.size(), blockMax_.data());
  if (s.nan)
    for (size_t i = 0; i < w.size(); ++i)
      if (std::isnan(w[i]))
        return absl::InvalidArgumentError(
            std::isnan(logits[i])
                ? absl::StrCat("sampler: the logit of token ", i, " is NaN")
                : absl::StrCat("sampler: the logit of token ", i,
                               " became NaN through the logit bias (+inf logit?)"));
  if (s.max == kInf)
    return absl::InvalidArgumentError(
        absl::StrCat("sampler: the logit of token ", s.argmax, " is +inf"));
  if (s.max == -kInf)
    return absl::InvalidArgumentError("sampler: every token is banned (all logits are -inf)");
  max_ = s.max;
  argmax_ = s.argmax;
  w_ = w;
  dense_ = false;
  cand_.clear();
  if (params_.greedy()) {
    cand_.push_back({s.max, s.argmax});
    return absl::OkStatus();
  }

  const SamplerParams &p = params_;
  const bool useK = p.topK > 0 && p.topK < vocab_;
  const bool useP = p.topP < 1.0f;
  const bool useMin = p.minP > 0.0f;
  const float minThr = useMin ? s.max + std::log(p.minP) : -kInf;

  if (useK) {
    // Without top-p, min-p's threshold can already bound the top-k scan.
    if (!useP) {
      selectTopK(w, p.topK, minThr);
    } else {
      selectTopK(w, p.topK, -kInf);
      double z = 0;
      if (useP)
        for (const Cand &c : cand_)
          z += expNonPositive(c.logit - max_);
      if (useMin)
        cand_.erase(std::remove_if(cand_.begin(), cand_.end(),
                                   [&](const Cand &c) { return c.logit < minThr; }),
                    cand_.end());
      if (useP)
        topP(z * static_cast<double>(p.topP));
    }
  } else if (dense && !useMin && !useP) {
    dense_ = true;
    return absl::OkStatus();
  } else {
    collectAtLeast(w, minThr);
    if (useP && !(useMin && topPCannotCut(minThr)))
      topP(sumExp(w.data(), 0, w.size(), max_, 1.0f) * static_cast<double>(p.topP));
  }
  if (sorted)
    std::sort(cand_.begin(), cand_.end(),
              [](const Cand &a, const Cand &b) { return before(a, b); });
  return absl::OkStatus();
}

absl::StatusOr<int32_t> Sampler::sample(std::span<const float> logits) {
  if (absl::Status s = filter(logits, false, true); !s.ok())
    return s;
  if (dense_)
    return drawDense(1.0f / params_.temperature);
  if (cand_.size() == 1)
    return cand_[0].id;
  // Temperature, then the draw: weights e^((l - max) / T), walked in cand_'s
  // (deterministic) order.
  const float invT = 1.0f / params_.temperature;
  prob_.resize(cand_.size());
  double total = 0;
  for (size_t i = 0; i < cand_.size(); ++i) {
    prob_[i] = expNonPositive((cand_[i].logit - max_) * invT);
    total += prob_[i];
  }
  const double u = uniform() * total;
  double cum = 0;
  size_t last = 0;
  for (size_t i = 0; i < cand_.size(); ++i) {
    if (prob_[i] <= 0.0f)
      continue;
    last = i;
    cum += prob_[i];
    if (u < cum)
      return cand_[i].id;
  }
  return cand_[last].id; // rounding left u at the very end
}

// Every filter off: a draw from the softmax of all logits without collecting
// them. Block masses first (vectorised), then a walk inside the chosen block.
int32_t Sampler::drawDense(float invT) {
  constexpr size_t kDrawBlock = 1024;
  const float *x = w_.data();
  const size_t n = w_.size();
  blocks_.resize((n + kDrawBlock - 1) / kDrawBlock);
  double total = 0;
  for (size_t b = 0; b < blocks_.size(); ++b) {
    blocks_[b] = sumExp(x, b * kDrawBlock, std::min(n, (b + 1) * kDrawBlock), max_, invT);
    total += blocks_[b];
  }
  const double u = uniform() * total;
  double cum = 0;
  for (size_t b = 0; b < blocks_.size(); ++b) {
    if (!(u < cum + blocks_[b]) || blocks_[b] <= 0) {
      cum += blocks_[b];
      continue;
    }
    int32_t last = -1;
    for (size_t i = b * kDrawBlock; i < std::min(n, (b + 1) * kDrawBlock); ++i) {
      const float e = expNonPositive((x[i] - max_) * invT);
      if (e <= 0.0f)
        continue;
      last = static_cast<int32_t>(i);
      cum += e;
      if (u < cum)
        return last;
    }
    return last; // rounding: the block's lane-wise sum was a hair larger
  }
  return argmax_; // rounding left u at the very end
}

absl::StatusOr<int32_t> Sampler::sampleAndAccept(std::span<const float> logits) {
  absl::StatusOr<int32_t> t = sample(logits);
  if (t.ok())
    accept(*t);
  return t;
}

absl::Status Sampler::distribution(std::span<const float> logits, std::vector<TokenProb> &out) {
  out.clear();
  if (absl::Status s = filter(logits, true, false); !s.ok())
    return s;
  if (cand_.size() == 1) {
    out.push_back({cand_[0].id, 1.0f});
    return absl::OkStatus();
  }
  const float invT = 1.0f / params_.temperature;
  double total = 0;
  prob_.resize(cand_.size());
  for (size_t i = 0; i < cand_.size(); ++i) {
    prob_[i] = expNonPositive((cand_[i].logit - max_) * invT);
    total += prob_[i];
  }
  for (size_t i = 0; i < cand_.size(); ++i)
    out.push_back({cand_[i].id, static_cast<float>(prob_[i] / total)});
  return absl::OkStatus();
}

} // namespace tern::sampling
