// Tests of the sampling chain. The expected distributions come from a naive
// implementation written here (sort the whole vocabulary, apply each
// processor in llama.cpp's order, softmax in double), independent of the
// fused O(V) code in runtime/sampling.
#include "runtime/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace tern::sampling {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int kDraws = 100000;

// ---------------------------------------------------------------- reference

// The logits after bias and penalties (same float operations as llama.cpp).
std::vector<float> refAdjust(std::vector<float> l, const SamplerParams &p,
                             const std::vector<int32_t> &history) {
  for (const LogitBias &b : p.logitBias)
    l[b.token] += b.bias;
  std::vector<int> count(l.size(), 0);
  const size_t n =
      p.repeatLastN < 0 ? history.size() : std::min(history.size(), size_t(p.repeatLastN));
  for (size_t i = history.size() - n; i < history.size(); ++i)
    ++count[history[i]];
  for (size_t t = 0; t < l.size(); ++t) {
    if (count[t] == 0)
      continue;
    if (l[t] <= 0)
      l[t] *= p.repeatPenalty;
    else
      l[t] /= p.repeatPenalty;
    l[t] -= float(count[t]) * p.frequencyPenalty + p.presencePenalty;
  }
  return l;
}

// What the whole chain keeps (sorted ids) and the target probabilities, [V].
struct RefChain {
  std::vector<int32_t> kept;
  std::vector<double> probs;
};

RefChain refChain(const std::vector<float> &logits, const SamplerParams &p,
                  const std::vector<int32_t> &history = {}) {
  const std::vector<float> l = refAdjust(logits, p, history);
  const size_t V = l.size();
  std::vector<int32_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
  size_t keep = V;
  while (keep > 0 && l[order[keep - 1]] == -kInf)
    --keep;
  RefChain r;
  r.probs.assign(V, 0.0);
  if (p.temperature <= 0) {
    r.probs[order[0]] = 1;
    r.kept = {order[0]};
    return r;
  }
  const double mx = l[order[0]];
  if (p.topK > 0)
    keep = std::min(keep, size_t(p.topK));
  if (p.topP < 1) {
    double z = 0;
    for (size_t i = 0; i < keep; ++i)
      z += std::exp(double(l[order[i]]) - mx);
    double cum = 0;
    for (size_t i = 0; i < keep; ++i) {
      cum += std::exp(double(l[order[i]]) - mx) / z;
      if (cum >= p.topP) {
        keep = i + 1;
        break;
      }
    }
  }
  if (p.minP > 0) {
    const float thr = l[order[0]] + std::log(p.minP);
    size_t m = 0;
    while (m < keep && l[order[m]] >= thr)
      ++m;
    keep = m;
  }
  double z = 0;
  for (size_t i = 0; i < keep; ++i)
    z += std::exp((double(l[order[i]]) - mx) / p.temperature);
  for (size_t i = 0; i < keep; ++i) {
    r.probs[order[i]] = std::exp((double(l[order[i]]) - mx) / p.temperature) / z;
    r.kept.push_back(order[i]);
  }
  std::sort(r.kept.begin(), r.kept.end());
  return r;
}

std::vector<double> refProbs(const std::vector<float> &logits, const SamplerParams &p,
                             const std::vector<int32_t> &history = {}) {
  return refChain(logits, p, history).probs;
}

// ---------------------------------------------------------------- chi-square

// Regularised upper incomplete gamma Q(a, x): series for x < a + 1, Lentz's
// continued fraction otherwise.
double gammaQ(double a, double x) {
  if (x <= 0)
    return 1.0;
  const double lead = std::exp(-x + a * std::log(x) - std::lgamma(a));
  if (x < a + 1) {
    double term = 1.0 / a, sum = term;
    for (int n = 1; n < 10000; ++n) {
      term *= x / (a + n);
      sum += term;
      if (std::fabs(term) < std::fabs(sum) * 1e-15)
        break;
    }
    return 1.0 - sum * lead;
  }
  const double tiny = 1e-300;
  double b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
  for (int i = 1; i < 10000; ++i) {
    const double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (std::fabs(d) < tiny)
      d = tiny;
    c = b + an / c;
    if (std::fabs(c) < tiny)
      c = tiny;
    d = 1 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < 1e-15)
      break;
  }
  return lead * h;
}

TEST(ChiSquare, GammaQMatchesKnownValues) {
  // Chi-square survival function: df = 1, x = 3.841 -> 0.05; df = 10,
  // x = 23.209 -> 0.01; df = 2, x = 2 ln 2 * ... -> e^{-x/2}.
  EXPECT_NEAR(gammaQ(0.5, 3.841459 / 2), 0.05, 1e-5);
  EXPECT_NEAR(gammaQ(5.0, 23.209251 / 2), 0.01, 1e-5);
  EXPECT_NEAR(gammaQ(1.0, 1.7), std::exp(-1.7), 1e-12);
  EXPECT_NEAR(gammaQ(50.0, 40.0), 0.935, 0.01); // chi2(100) at 80 ~ 0.935
}

// Draws kDraws tokens and checks them against `expect` ([V]): tokens of
// probability 0 never appear; the rest pass a chi-square goodness-of-fit test
// at p > 0.001 (categories with expected count < 5 pooled).
void expectDistribution(Sampler &s, const std::vector<float> &logits,
                        const std::vector<double> &expect) {
  std::vector<int64_t> seen(logits.size(), 0);
  for (int i = 0; i < kDraws; ++i) {
    absl::StatusOr<int32_t> t = s.sample(logits);
    ASSERT_TRUE(t.ok()) << t.status();
    ASSERT_GE(*t, 0);
    ASSERT_LT(size_t(*t), logits.size());
    ++seen[*t];
  }
  double chi2 = 0, poolE = 0, poolO = 0;
  int cats = 0;
  for (size_t t = 0; t < logits.size(); ++t) {
    if (expect[t] == 0) {
      EXPECT_EQ(seen[t], 0) << "token " << t << " has probability 0";
      continue;
    }
    const double e = expect[t] * kDraws;
    if (e < 5) {
      poolE += e;
      poolO += double(seen[t]);
      continue;
    }
    chi2 += (seen[t] - e) * (seen[t] - e) / e;
    ++cats;
  }
  if (poolE > 0) {
    chi2 += (poolO - poolE) * (poolO - poolE) / poolE;
    ++cats;
  }
  if (cats < 2) {
    // One category: the draw must always be it.
    SUCCEED();
    return;
  }
  const double pv = gammaQ((cats - 1) / 2.0, chi2 / 2.0);
  EXPECT_GT(pv, 0.001) << "chi2 " << chi2 << " with " << cats - 1 << " degrees of freedom";
}

SamplerParams plain() {
  SamplerParams p;
  p.temperature = 1.0f;
  p.topK = 0;
  p.topP = 1.0f;
  p.minP = 0.0f;
  p.seed = 1234;
  return p;
}

std::vector<float> smallLogits() {
  return {1.0f, 2.5f, -0.5f, 0.0f, 3.0f, 2.5f, -2.0f, 1.7f, 0.3f, -1.0f, 2.9f, 0.9f};
}

std::vector<float> normalLogits(size_t V, uint64_t seed, float scale = 3.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> l(V);
  for (float &x : l)
    x = d(g) * scale;
  return l;
}

Sampler make(const SamplerParams &p, int32_t V) {
  absl::StatusOr<Sampler> s = Sampler::create(p, V);
  EXPECT_TRUE(s.ok()) << s.status();
  return *std::move(s);
}

// ---------------------------------------------------- each processor, chi-square

TEST(SamplerDistribution, SoftmaxOnly) {
  const auto l = smallLogits();
  Sampler s = make(plain(), int32_t(l.size()));
  expectDistribution(s, l, refProbs(l, plain()));
}

TEST(SamplerDistribution, Temperature) {
  const auto l = smallLogits();
  for (float t : {0.5f, 1.7f}) {
    SamplerParams p = plain();
    p.temperature = t;
    Sampler s = make(p, int32_t(l.size()));
    expectDistribution(s, l, refProbs(l, p));
  }
}

TEST(SamplerDistribution, TopK) {
  const auto l = smallLogits();
  SamplerParams p = plain();
  p.topK = 4; // 3.0, 2.9, 2.5 (id 1), 2.5 (id 5): the tie at the cut is kept by id
  Sampler s = make(p, int32_t(l.size()));
  const auto e = refProbs(l, p);
  EXPECT_GT(e[1], 0);
  EXPECT_GT(e[5], 0);
  EXPECT_EQ(e[7], 0);
  expectDistribution(s, l, e);
  p.topK = 3; // the tie at 2.5 is cut: id 1 stays, id 5 goes
  Sampler s3 = make(p, int32_t(l.size()));
  const auto e3 = refProbs(l, p);
  EXPECT_GT(e3[1], 0);
  EXPECT_EQ(e3[5], 0);
  expectDistribution(s3, l, e3);
}

TEST(SamplerDistribution, TopP) {
  const auto l = smallLogits();
  SamplerParams p = plain();
  p.topP = 0.8f;
  Sampler s = make(p, int32_t(l.size()));
  const auto e = refProbs(l, p);
  EXPECT_LT(std::count_if(e.begin(), e.end(), [](double x) { return x > 0; }), int(l.size()));
  expectDistribution(s, l, e);
}

TEST(SamplerDistribution, MinP) {
  const auto l = smallLogits();
  SamplerParams p = plain();
  p.minP = 0.2f; // keeps logits >= 3 + ln 0.2 = 1.39
  Sampler s = make(p, int32_t(l.size()));
  const auto e = refProbs(l, p);
  EXPECT_GT(e[7], 0);
  EXPECT_EQ(e[0], 0);
  expectDistribution(s, l, e);
}

TEST(SamplerDistribution, LogitBias) {
  const auto l = smallLogits();
  SamplerParams p = plain();
  p.logitBias = {{4, -kInf}, {6, 4.0f}, {0, -1.5f}, {0, 0.5f}}; // two entries for 0 add up
  Sampler s = make(p, int32_t(l.size()));
  const auto e = refProbs(l, p);
  EXPECT_EQ(e[4], 0);
  expectDistribution(s, l, e);
}

TEST(SamplerDistribution, Penalties) {
  const auto l = smallLogits();
  SamplerParams p = plain();
  p.repeatPenalty = 1.5f;
  p.frequencyPenalty = 0.3f;
  p.presencePenalty = 0.4f;
  p.repeatLastN = 5;
  // Token 9 leaves the window; 4 (positive logit) twice, 2 (negative) once.
  const std::vector<int32_t> hist = {9, 4, 2, 4, 10, 3};
  Sampler s = make(p, int32_t(l.size()));
  for (int32_t t : hist)
    s.accept(t);
  EXPECT_EQ(s.history(), std::vector<int32_t>(hist.begin() + 1, hist.end()));
  expectDistribution(s, l, refProbs(l, p, hist));
}

TEST(SamplerDistribution, DefaultChain) {
  // Default parameters (top-k 40, top-p 0.95, min-p 0.05, temp 0.8) on 2000
  // tokens of normal * 3 logits.
  const auto l = normalLogits(2000, 7);
  SamplerParams p;
  p.seed = 99;
  Sampler s = make(p, int32_t(l.size()));
  expectDistribution(s, l, refProbs(l, p));
}

TEST(SamplerDistribution, TopKOffOverLargeVocabulary) {
  // top-k 0: top-p 0.95 + min-p 0.05 over all of a 32000-token vocabulary.
  const auto l = normalLogits(32000, 8);
  SamplerParams p;
  p.topK = 0;
  p.seed = 5;
  Sampler s = make(p, int32_t(l.size()));
  expectDistribution(s, l, refProbs(l, p));
}

TEST(SamplerDistribution, TopPQuickselectPath) {
  // Flat logits, min-p off: thousands of survivors, so top-p goes through the
  // weighted quickselect rather than a sort.
  const auto l = normalLogits(1500, 9, 0.5f);
  SamplerParams p = plain();
  p.topP = 0.6f;
  p.temperature = 0.9f;
  Sampler s = make(p, int32_t(l.size()));
  const auto e = refProbs(l, p);
  EXPECT_GT(std::count_if(e.begin(), e.end(), [](double x) { return x > 0; }),
            300); // > 256: not sorted
  expectDistribution(s, l, e);
}

// ------------------------------------------ fused chain == naive chain, exactly

TEST(SamplerChain, MatchesNaiveChainOnRandomConfigs) {
  std::mt19937_64 g(2024);
  const int32_t V = 3000;
  int checked = 0;
  for (int round = 0; round < 300; ++round) {
    // Quantised logits: many ties.
    std::vector<float> l = normalLogits(V, 1000 + round, round % 2 ? 3.0f : 0.7f);
    if (round % 3 == 0)
      for (float &x : l)
        x = std::round(x * 4) / 4;
    SamplerParams p;
    const int32_t ks[] = {0, 1, 5, 40, 300, V - 1, V, V + 7};
    const float ps[] = {1.0f, 0.95f, 0.5f, 0.1f, 0.999f};
    const float mins[] = {0.0f, 0.05f, 0.2f, 1.0f, 0.001f};
    const float temps[] = {0.8f, 1.0f, 2.5f, 0.1f};
    p.topK = ks[g() % 8];
    p.topP = ps[g() % 5];
    p.minP = mins[g() % 5];
    p.temperature = temps[g() % 4];
    std::vector<int32_t> hist;
    if (round % 4 == 1) {
      p.repeatPenalty = 1.3f;
      p.frequencyPenalty = 0.1f;
      p.presencePenalty = 0.2f;
      for (int i = 0; i < 100; ++i)
        hist.push_back(int32_t(g() % 50));
    }
    if (round % 5 == 2)
      p.logitBias = {{int32_t(g() % V), 5.0f}, {int32_t(g() % V), -kInf}};
    Sampler s = make(p, V);
    for (int32_t t : hist)
      s.accept(t);
    std::vector<TokenProb> got;
    ASSERT_TRUE(s.distribution(l, got).ok());
    const RefChain ref = refChain(l, p, hist);
    const std::vector<double> &e = ref.probs;
    const std::vector<int32_t> &want = ref.kept;
    std::vector<int32_t> have;
    for (const TokenProb &tp : got) {
      have.push_back(tp.token);
      EXPECT_NEAR(tp.prob, e[tp.token], 1e-5 + 1e-4 * e[tp.token]) << "round " << round;
    }
    std::sort(have.begin(), have.end());
    ASSERT_EQ(have, want) << "round " << round << " k " << p.topK << " p " << p.topP << " min-p "
                          << p.minP << " temp " << p.temperature;
    // distribution() lists highest first.
    for (size_t i = 1; i < got.size(); ++i)
      ASSERT_GE(got[i - 1].prob, got[i].prob);
    ++checked;
  }
  EXPECT_EQ(checked, 300);
}

// ---------------------------------------------------------------- greedy

TEST(SamplerGreedy, TiesGoToTheLowestId) {
  const std::vector<float> l = {1.0f, 3.0f, -1.0f, 3.0f, 2.0f, 3.0f};
  for (float t : {0.0f, -1.0f, -0.5f}) {
    SamplerParams p;
    p.temperature = t;
    Sampler s = make(p, 6);
    for (int i = 0; i < 10; ++i)
      EXPECT_EQ(*s.sample(l), 1);
    std::vector<TokenProb> d;
    ASSERT_TRUE(s.distribution(l, d).ok());
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].token, 1);
    EXPECT_EQ(d[0].prob, 1.0f);
  }
}

TEST(SamplerGreedy, SeesBiasAndPenalties) {
  const std::vector<float> l = {1.0f, 3.0f, -1.0f, 2.9f};
  SamplerParams p;
  p.temperature = 0;
  p.repeatPenalty = 1.2f; // 3.0 / 1.2 = 2.5 < 2.9
  Sampler s = make(p, 4);
  EXPECT_EQ(*s.sample(l), 1);
  s.accept(1);
  EXPECT_EQ(*s.sample(l), 3);
  p.logitBias = {{2, 10.0f}};
  Sampler b = make(p, 4);
  EXPECT_EQ(*b.sample(l), 2);
}

TEST(SamplerGreedy, LargeVocabulary) {
  auto l = normalLogits(128256, 3);
  const int32_t best = int32_t(std::max_element(l.begin(), l.end()) - l.begin());
  SamplerParams p;
  p.temperature = 0;
  Sampler s = make(p, int32_t(l.size()));
  EXPECT_EQ(*s.sample(l), best);
  l[128255] = l[best]; // a tie at the end: still the lower id
  EXPECT_EQ(*s.sample(l), best);
}

// ---------------------------------------------------------------- edge cases

TEST(SamplerEdges, TopKLargerThanVocabularyIsANoOp) {
  const auto l = smallLogits();
  SamplerParams p = plain();
  p.topK = 1000;
  Sampler s = make(p, int32_t(l.size()));
  std::vector<TokenProb> d;
  ASSERT_TRUE(s.distribution(l, d).ok());
  EXPECT_EQ(d.size(), l.size());
}

TEST(SamplerEdges, TopPOneKeepsEverything) {
  const auto l = smallLogits();
  SamplerParams p = plain();
  p.topP = 1.0f;
  Sampler s = make(p, int32_t(l.size()));
  std::vector<TokenProb> d;
  ASSERT_TRUE(s.distribution(l, d).ok());
  EXPECT_EQ(d.size(), l.size());
  double sum = 0;
  for (const TokenProb &t : d)
    sum += t.prob;
  EXPECT_NEAR(sum, 1.0, 1e-6);
}

TEST(SamplerEdges, TopKOneIsGreedy) {
  const auto l = normalLogits(1000, 11);
  SamplerParams p;
  p.topK = 1;
  p.temperature = 5;
  Sampler s = make(p, 1000);
  const int32_t best = int32_t(std::max_element(l.begin(), l.end()) - l.begin());
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(*s.sample(l), best);
}

TEST(SamplerEdges, MinPOneKeepsOnlyTheMaxima) {
  const std::vector<float> l = {1.0f, 3.0f, -1.0f, 3.0f, 2.999f};
  SamplerParams p = plain();
  p.minP = 1.0f;
  Sampler s = make(p, 5);
  std::vector<TokenProb> d;
  ASSERT_TRUE(s.distribution(l, d).ok());
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].token, 1);
  EXPECT_EQ(d[1].token, 3);
  EXPECT_NEAR(d[0].prob, 0.5, 1e-6);
}

TEST(SamplerEdges, AllBannedButOne) {
  std::vector<float> l = normalLogits(500, 12);
  SamplerParams p; // defaults, with temperature
  for (int32_t t = 0; t < 500; ++t)
    if (t != 321)
      p.logitBias.push_back({t, -kInf});
  Sampler s = make(p, 500);
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(*s.sample(l), 321);
  // Every chain shape: no top-k, no filters at all.
  p.topK = 0;
  p.topP = 1;
  p.minP = 0;
  Sampler t = make(p, 500);
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(*t.sample(l), 321);
}

TEST(SamplerEdges, BannedTokensAreNeverDrawnEvenWithTooFewLeftForTopK) {
  std::vector<float> l = {0.0f, -kInf, 1.0f, -kInf, 0.5f};
  SamplerParams p = plain();
  p.topK = 4; // only 3 finite logits
  Sampler s = make(p, 5);
  std::vector<TokenProb> d;
  ASSERT_TRUE(s.distribution(l, d).ok());
  EXPECT_EQ(d.size(), 3u);
  for (int i = 0; i < 1000; ++i) {
    const int32_t t = *s.sample(l);
    EXPECT_TRUE(t == 0 || t == 2 || t == 4) << t;
  }
}

TEST(SamplerEdges, PenaltyWindowForgetsOldTokens) {
  const std::vector<float> l = {2.0f, 2.0f, 2.0f};
  SamplerParams p;
  p.temperature = 0;
  p.repeatLastN = 2;
  p.presencePenalty = 1.0f;
  Sampler s = make(p, 3);
  s.accept(0);
  s.accept(1);
  EXPECT_EQ(*s.sample(l), 2); // 0 and 1 penalised
  s.accept(2);                // window {1, 2}
  EXPECT_EQ(*s.sample(l), 0);
  s.accept(7); // outside the vocabulary: ignored
  EXPECT_EQ(s.history(), (std::vector<int32_t>{1, 2}));
  s.resetHistory();
  EXPECT_TRUE(s.history().empty());
  EXPECT_EQ(*s.sample(l), 0);
}

TEST(SamplerEdges, RepeatLastNZeroOrMinusOne) {
  const std::vector<float> l = {2.0f, 1.0f};
  SamplerParams p;
  p.temperature = 0;
  p.repeatPenalty = 10;
  p.repeatLastN = 0; // off
  Sampler s = make(p, 2);
  s.accept(0);
  EXPECT_EQ(*s.sample(l), 0);
  p.repeatLastN = -1; // the context size
  EXPECT_FALSE(Sampler::create(p, 2).ok());
  absl::StatusOr<Sampler> c = Sampler::create(p, 2, /*contextSize=*/4);
  ASSERT_TRUE(c.ok());
  c->accept(0);
  EXPECT_EQ(*c->sample(l), 1);
  for (int i = 0; i < 4; ++i)
    c->accept(1);
  EXPECT_EQ(c->history().size(), 4u);
}

TEST(SamplerEdges, RepeatPenaltySignRule) {
  // Positive logits are divided, negative (and zero) ones multiplied.
  const std::vector<float> l = {2.0f, -2.0f, 0.0f, 1.0f};
  SamplerParams p = plain();
  p.repeatPenalty = 2.0f;
  Sampler s = make(p, 4);
  for (int32_t t : {0, 1, 2})
    s.accept(t);
  std::vector<TokenProb> d;
  ASSERT_TRUE(s.distribution(l, d).ok());
  // Adjusted: {1, -4, 0, 1}.
  const double z = 2 * std::exp(1.0) + std::exp(-4.0) + 1;
  std::vector<double> want = {std::exp(1.0) / z, std::exp(-4.0) / z, 1 / z, std::exp(1.0) / z};
  for (const TokenProb &t : d)
    EXPECT_NEAR(t.prob, want[t.token], 1e-6) << t.token;
}

// ---------------------------------------------------------------- determinism

std::vector<int32_t> run(Sampler s, const std::vector<float> &l, int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i)
    out.push_back(*s.sampleAndAccept(l));
  return out;
}

TEST(SamplerDeterminism, SameSeedSameTokens) {
  const auto l = normalLogits(128256, 21, 1.0f);
  SamplerParams p;
  p.seed = 42;
  p.repeatPenalty = 1.1f;
  const auto a = run(make(p, 128256), l, 200);
  const auto b = run(make(p, 128256), l, 200);
  EXPECT_EQ(a, b);
  p.seed = 43;
  const auto c = run(make(p, 128256), l, 200);
  EXPECT_NE(a, c);
}

TEST(SamplerDeterminism, ReseedAndCopyRestart) {
  const auto l = normalLogits(1000, 22, 1.0f);
  SamplerParams p;
  p.seed = 7;
  Sampler s = make(p, 1000);
  const auto first = run(s, l, 50);
  Sampler t = make(p, 1000);
  for (int i = 0; i < 10; ++i)
    (void)t.sample(l);
  t.reseed(7);
  EXPECT_EQ(run(t, l, 50), first);
  // A copy (a forked session) continues exactly like the original.
  Sampler u = make(p, 1000);
  (void)u.sampleAndAccept(l);
  Sampler v = u;
  EXPECT_EQ(run(u, l, 30), run(v, l, 30));
}

TEST(SamplerDeterminism, ConcurrentSamplersMatchSequentialOnes) {
  // One sampler per session, each single-threaded: running sessions on
  // several threads changes nothing.
  const auto l = normalLogits(128256, 23);
  SamplerParams p;
  std::vector<std::vector<int32_t>> seq(4), par(4);
  for (int i = 0; i < 4; ++i) {
    p.seed = 100 + i;
    seq[i] = run(make(p, 128256), l, 100);
  }
  std::vector<std::thread> th;
  for (int i = 0; i < 4; ++i)
    th.emplace_back([&, i] {
      SamplerParams q = p;
      q.seed = 100 + i;
      par[i] = run(make(q, 128256), l, 100);
    });
  for (auto &t : th)
    t.join();
  EXPECT_EQ(seq, par);
}

TEST(SamplerDeterminism, RandomSeedFitsIn32Bits) {
  for (int i = 0; i < 10; ++i)
    EXPECT_LE(randomSeed(), 0xffffffffull);
}

// ---------------------------------------------------------------- errors

TEST(SamplerErrors, BadParameters) {
  struct Case {
    void (*set)(SamplerParams &);
    const char *flag;
  };
  const Case cases[] = {
      {[](SamplerParams &p) { p.topP = 0; }, "--top-p"},
      {[](SamplerParams &p) { p.topP = 1.5f; }, "--top-p"},
      {[](SamplerParams &p) { p.topP = -0.1f; }, "--top-p"},
      {[](SamplerParams &p) { p.topP = std::nanf(""); }, "--top-p"},
      {[](SamplerParams &p) { p.minP = -0.01f; }, "--min-p"},
      {[](SamplerParams &p) { p.minP = 1.01f; }, "--min-p"},
      {[](SamplerParams &p) { p.topK = -1; }, "--top-k"},
      {[](SamplerParams &p) { p.temperature = std::nanf(""); }, "--temp"},
      {[](SamplerParams &p) { p.temperature = kInf; }, "--temp"},
      {[](SamplerParams &p) { p.repeatPenalty = 0; }, "--repeat-penalty"},
      {[](SamplerParams &p) { p.repeatPenalty = -1; }, "--repeat-penalty"},
      {[](SamplerParams &p) { p.repeatLastN = -2; }, "--repeat-last-n"},
      {[](SamplerParams &p) { p.frequencyPenalty = kInf; }, "--frequency-penalty"},
      {[](SamplerParams &p) { p.presencePenalty = std::nanf(""); }, "--presence-penalty"},
      {[](SamplerParams &p) { p.logitBias = {{10, 1.0f}}; }, "--logit-bias"},
      {[](SamplerParams &p) { p.logitBias = {{-1, 1.0f}}; }, "--logit-bias"},
      {[](SamplerParams &p) { p.logitBias = {{1, kInf}}; }, "--logit-bias"},
  };
  for (const Case &c : cases) {
    SamplerParams p;
    c.set(p);
    absl::StatusOr<Sampler> s = Sampler::create(p, 10);
    ASSERT_FALSE(s.ok()) << c.flag;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(s.status().message()).find(c.flag), std::string::npos) << s.status();
  }
  EXPECT_FALSE(Sampler::create(SamplerParams{}, 0).ok());
}

TEST(SamplerErrors, AcceptedEdgesOfTheRanges) {
  SamplerParams p;
  p.temperature = -3; // negative: greedy, as in llama.cpp
  p.topP = 1;
  p.minP = 1;
  p.topK = 0;
  p.frequencyPenalty = -0.5f;
  p.presencePenalty = -0.5f;
  p.logitBias = {{9, -kInf}, {0, 100.0f}};
  EXPECT_TRUE(Sampler::create(p, 10).ok());
  EXPECT_TRUE(p.greedy());
}

TEST(SamplerErrors, BadLogits) {
  SamplerParams p;
  Sampler s = make(p, 4);
  absl::StatusOr<int32_t> r = s.sample(std::vector<float>{1, 2, 3});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("3 logits"), std::string::npos);
  r = s.sample(std::vector<float>{1, std::nanf(""), 3, 4});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("token 1 is NaN"), std::string::npos);
  r = s.sample(std::vector<float>{1, 2, kInf, 4});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("token 2 is +inf"), std::string::npos);
  r = s.sample(std::vector<float>{-kInf, -kInf, -kInf, -kInf});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("banned"), std::string::npos);
  p.logitBias = {{0, -kInf}, {1, -kInf}};
  Sampler b = make(p, 2);
  EXPECT_FALSE(b.sample(std::vector<float>{1, 2}).ok());
}

TEST(LogitBiasFlag, Parses) {
  auto b = parseLogitBias("15043+1");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->token, 15043);
  EXPECT_EQ(b->bias, 1.0f);
  b = parseLogitBias("7-0.5");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->token, 7);
  EXPECT_EQ(b->bias, -0.5f);
  b = parseLogitBias("0-inf");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->bias, -kInf);
  b = parseLogitBias("12+2.5e1");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->bias, 25.0f);
}

TEST(LogitBiasFlag, Errors) {
  for (const char *v :
       {"", "+1", "-1+1", "abc", "15043", "15043+", "15043*2", "15043+x", "15043+1x", "15043+-1",
        "15043--1", "15043+inf", "15043+nan", "99999999999+1", "15043+1e99", " 1+1", "1+ 1"}) {
    absl::StatusOr<LogitBias> b = parseLogitBias(v);
    EXPECT_FALSE(b.ok()) << "'" << v << "'";
    if (!b.ok()) {
      const std::string m(b.status().message());
      EXPECT_NE(m.find("--logit-bias '"), std::string::npos) << m;
      EXPECT_NE(m.find("TOKEN_ID(+|-)BIAS"), std::string::npos) << m;
    }
  }
}

TEST(LogitBiasFlag, BanTokensForIgnoreEos) {
  SamplerParams p;
  p.temperature = 0;
  const int32_t eog[] = {2, 3};
  banTokens(p, eog);
  Sampler s = make(p, 4);
  EXPECT_EQ(*s.sample(std::vector<float>{0, 1, 9, 8}), 1);
}

} // namespace
} // namespace tern::sampling
