// Batched decode across sessions on compiled artifacts (ABI v2):
//  - batch invariance: a token's logits are bit-identical whatever else
//    shares its forward call (other sessions, batch size, chunking), for
//    every kernel path this machine runs (targets avx2 and avx512_vnni; the
//    ref kernels; layouts i2s (auto), tl2, tq2 (tl1 is offered on ARM
//    targets only); act-quant token and none), compiled from the fixture
//    models;
//  - the Model-level session suite (tests/model/session_suite.h: pool
//    accounting, exhaustion, fork, truncation, prefix sharing, the
//    10,000-operation churn) on a compiled artifact.
//
// Built only with TERN_BUILD_COMPILER (exec_e2e_test).
#include <cctype>
#include <filesystem>
#include <map>
#include <thread>
#include <unistd.h>

#include "fmt/format.h"
#include "runtime/exec/artifact_model.h"
#include "runtime/support/status.h"
#include "tests/exec/e2e_util.h"
#include "tests/model/session_suite.h"
#include "gtest/gtest.h"

namespace tern::exec {
namespace {

const std::string kModels = std::string(TERN_SHARED_DIR) + "/fixtures/models/";

bool hostRuns(const std::string &target) {
  if (target == "avx512_vnni")
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  if (target == "avx2")
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return true;
}

// One compile per (model, target, kernel, act-quant, max_batch) and process,
// shared by the tests of the process (ctest runs tests in parallel processes:
// the pid keeps their files apart); removed when the process ends.
struct Compiled : ::testing::Environment {
  std::map<std::string, std::string> paths;
  void TearDown() override {
    for (const auto &[name, path] : paths)
      if (!path.empty())
        std::filesystem::remove(path);
  }
};
Compiled *const gCompiled =
    static_cast<Compiled *>(::testing::AddGlobalTestEnvironment(new Compiled));

std::string compiled(const std::string &model, const std::string &target, const std::string &kernel,
                     const std::string &actQuant, int maxBatch) {
  const std::string name = fmt::format("sessions-{}-{}-{}-{}-b{}-{}", model, target, kernel,
                                       actQuant, maxBatch, ::getpid());
  if (auto it = gCompiled->paths.find(name); it != gCompiled->paths.end())
    return it->second;
  // "<layout>+decode-tl2v": --kernel <layout> --decode-layout tl2v (calls
  // of fewer than 6 tokens read a tl2v copy of every ternary matrix).
  const size_t plus = kernel.find("+decode-");
  std::vector<std::string> flags = {
      "--target",    target,   "--kernel",    kernel.substr(0, plus),
      "--act-quant", actQuant, "--max-batch", std::to_string(maxBatch)};
  if (plus != std::string::npos)
    flags.insert(flags.end(), {"--decode-layout", kernel.substr(plus + 8)});
  std::string path = e2e::compile(kModels + model + ".gguf", name, flags);
  gCompiled->paths[name] = path;
  return path;
}

std::unique_ptr<model::Model> open(const std::string &path, const model::ModelOptions &o) {
  auto m = ArtifactModel::open(path, o);
  EXPECT_TRUE(m.ok()) << statusMessage(m.status());
  return m.ok() ? std::unique_ptr<model::Model>(std::move(*m)) : nullptr;
}

struct Variant {
  std::string model, target, kernel, actQuant;
};
void PrintTo(const Variant &v, std::ostream *os) {
  *os << v.model << " " << v.target << " --kernel " << v.kernel << " --act-quant " << v.actQuant;
}

class BatchInvariance : public ::testing::TestWithParam<Variant> {};

// Three sessions (prompts of 11, 5 and 1 tokens, then 4 decode steps each):
// logits of every step alone (one session per call, prefill in chunks of
// max_batch), token by token, and all sessions together (prefills sharing
// calls across chunk boundaries, then decode steps of all sessions in one
// call, and a mix of a prefill with decode steps) must be the same bits.
TEST_P(BatchInvariance, LogitsDoNotDependOnWhatSharesTheCall) {
  const Variant &v = GetParam();
  if (!hostRuns(v.target))
    GTEST_SKIP() << "this machine does not run " << v.target;
  const std::string path = compiled(v.model, v.target, v.kernel, v.actQuant, 8);
  ASSERT_FALSE(path.empty());
  model::ModelOptions o;
  o.contextLength = 64;
  o.threads = 2;
  o.prefixCache = false;
  const uint32_t nSeq = 3;
  auto first = open(path, o);
  ASSERT_TRUE(first);
  const uint32_t V = first->config().nVocab;
  const std::vector<std::vector<int32_t>> prompts = {model::suite::tokensOf(1, 11, V),
                                                     model::suite::tokensOf(2, 5, V),
                                                     model::suite::tokensOf(3, 1, V)};
  const int steps = 4;
  // Decode tokens are fixed (not picked), so every mode feeds the same ones.
  auto stepToken = [&](uint32_t s, int step) { return int32_t((97 * s + 31 * step + 7) % V); };
  using Run = std::vector<std::vector<std::vector<float>>>; // [session][step][vocab]
  enum Mode { Alone, TokenByToken, Together, Staggered };
  struct Feed {
    uint32_t s;
    std::vector<int32_t> toks;
    int step; // where the logits go
  };
  auto run = [&](Mode mode) {
    auto m = open(path, o);
    Run out(nSeq, std::vector<std::vector<float>>(steps + 1, std::vector<float>(V)));
    if (!m)
      return out;
    std::vector<std::unique_ptr<model::Session>> ss;
    for (uint32_t s = 0; s < nSeq; ++s)
      ss.push_back(std::move(*m->newSession()));
    auto call = [&](const std::vector<Feed> &what) {
      std::vector<model::BatchItem> items;
      for (const Feed &f : what)
        items.push_back({ss[f.s].get(), f.toks, out[f.s][size_t(f.step)], {}});
      ASSERT_TRUE(m->forward(items).ok());
      for (const model::BatchItem &it : items)
        ASSERT_TRUE(it.status.ok()) << statusMessage(it.status);
    };
    if (mode == Alone || mode == TokenByToken) {
      for (uint32_t s = 0; s < nSeq; ++s) {
        if (mode == Alone)
          call({{s, prompts[s], 0}});
        else
          for (int32_t t : prompts[s])
            call({{s, {t}, 0}});
        for (int step = 1; step <= steps; ++step)
          call({{s, {stepToken(s, step)}, step}});
      }
    } else if (mode == Together) {
      call({{0, prompts[0], 0}, {1, prompts[1], 0}, {2, prompts[2], 0}});
      for (int step = 1; step <= steps; ++step)
        call({{2, {stepToken(2, step)}, step},
              {0, {stepToken(0, step)}, step},
              {1, {stepToken(1, step)}, step}});
    } else { // Staggered: call c prefills session c while the earlier ones decode.
      for (int c = 0; c <= steps + int(nSeq); ++c) {
        std::vector<Feed> what;
        for (uint32_t s = 0; s < nSeq; ++s) {
          const int d = c - int(s);
          if (d == 0)
            what.push_back({s, prompts[s], 0});
          else if (d >= 1 && d <= steps)
            what.push_back({s, {stepToken(s, d)}, d});
        }
        if (!what.empty())
          call(what);
      }
    }
    return out;
  };
  const Run alone = run(Alone);
  const Run byToken = run(TokenByToken);
  const Run together = run(Together);
  const Run staggered = run(Staggered);
  for (uint32_t s = 0; s < nSeq; ++s)
    for (int step = 0; step <= steps; ++step) {
      const std::vector<float> &want = alone[s][size_t(step)];
      EXPECT_TRUE(model::suite::sameBits(byToken[s][size_t(step)], want))
          << "token by token, session " << s << " step " << step;
      EXPECT_TRUE(model::suite::sameBits(together[s][size_t(step)], want))
          << "together, session " << s << " step " << step;
      EXPECT_TRUE(model::suite::sameBits(staggered[s][size_t(step)], want))
          << "staggered, session " << s << " step " << step;
    }
  // Another max_batch chunks the same calls differently: same bits.
  if (v.kernel == "auto" && v.actQuant == "token") {
    const std::string p3 = compiled(v.model, v.target, v.kernel, v.actQuant, 3);
    ASSERT_FALSE(p3.empty());
    auto m = open(p3, o);
    ASSERT_TRUE(m);
    std::vector<std::unique_ptr<model::Session>> ss;
    std::vector<std::vector<float>> l(nSeq, std::vector<float>(V));
    std::vector<model::BatchItem> items;
    for (uint32_t s = 0; s < nSeq; ++s) {
      ss.push_back(std::move(*m->newSession()));
      items.push_back({ss.back().get(), prompts[s], l[s], {}});
    }
    ASSERT_TRUE(m->forward(items).ok());
    for (uint32_t s = 0; s < nSeq; ++s)
      EXPECT_TRUE(model::suite::sameBits(l[s], alone[s][0])) << "max_batch 3, session " << s;
  }
}

std::vector<Variant> variants() {
  std::vector<Variant> v;
  for (const char *target : {"avx2", "avx512_vnni"}) {
    for (const char *kernel : {"auto", "tl2", "tq2"}) // tl1 is ARM-only
      v.push_back({"tiny-bitnet-tq2", target, kernel, "token"});
    v.push_back({"tiny-bitnet-tq2", target, "auto", "none"});
    if (std::string(target) == "avx2")
      for (const char *kernel : {"tl2", "tq2"})
        v.push_back({"tiny-bitnet-tq2", target, kernel, "none"});
    v.push_back({"tiny-bitnet-i2s", target, "auto", "token"});
  }
  v.push_back({"tiny-bitnet-tq2", "avx2", "ref", "token"});
  v.push_back({"tiny-bitnet-tq2", "avx2", "ref", "none"});
  v.push_back({"gqa-bitnet-tq2", "avx512_vnni", "auto", "token"});
  v.push_back({"tiny-bitnet-tq2", "avx512_vnni", "tl2v", "token"});
  v.push_back({"tiny-bitnet-tq2", "avx512_vnni", "i2s+decode-tl2v", "token"});
  v.push_back({"gqa-bitnet-tq2", "avx512_vnni", "auto+decode-tl2v", "token"});
  v.push_back({"tiny-bitnet-tq2", "avx2", "tl2v", "token"});
  v.push_back({"tiny-bitnet-tq2", "avx2", "i2s+decode-tl2v", "token"});
  return v;
}

INSTANTIATE_TEST_SUITE_P(Kernels, BatchInvariance, ::testing::ValuesIn(variants()),
                         [](const ::testing::TestParamInfo<Variant> &i) {
                           std::string n = i.param.model + "_" + i.param.target + "_" +
                                           i.param.kernel + "_" + i.param.actQuant;
                           for (char &c : n)
                             if (!isalnum(static_cast<unsigned char>(c)))
                               c = '_';
                           return n;
                         });

// The session suite on the compiled fixture (native kernels).
std::unique_ptr<model::Model> openCompiled(const model::ModelOptions &o) {
  const std::string path = compiled("tiny-bitnet-tq2", "native", "auto", "token", 16);
  return path.empty() ? nullptr : open(path, o);
}

TEST(CompiledSessions, PoolAccountingForkAndTruncate) {
  model::suite::poolAccountingForkTruncate(openCompiled, 2);
}

TEST(CompiledSessions, PrefixSharing) { model::suite::prefixSharing(openCompiled, 2); }

TEST(CompiledSessions, ExhaustionFailsOnlyThatRequest) {
  model::suite::exhaustion(openCompiled, 2);
}

TEST(CompiledSessions, ChurnOfTenThousandOperations) {
  model::suite::churn(openCompiled, 2, 10000, 7);
}

// Concurrent callers on one model: threads driving their own sessions get
// what each session computes alone.
TEST(CompiledSessions, ConcurrentCallersAreSafe) {
  model::ModelOptions o = model::suite::baseOptions(4, 64, 2, true);
  auto m = openCompiled(o);
  auto oracle = openCompiled(model::suite::baseOptions(4, 64, 2, false));
  ASSERT_TRUE(m && oracle);
  const uint32_t V = m->config().nVocab;
  const int nThreads = 4, steps = 12;
  std::vector<std::vector<std::vector<float>>> got(nThreads);
  std::vector<std::vector<int32_t>> hist(nThreads);
  std::vector<std::thread> ts;
  for (int t = 0; t < nThreads; ++t)
    ts.emplace_back([&, t] {
      auto s = m->newSession();
      hist[size_t(t)] = model::suite::tokensOf(uint32_t(40 + t % 2), 6, V); // shared prefixes
      std::vector<float> l(V);
      if (!s.ok() || !m->decode(**s, hist[size_t(t)], l).ok())
        return;
      got[size_t(t)].push_back(l);
      for (int i = 0; i < steps; ++i) {
        const int32_t tok = int32_t((t * 13 + i * 5) % V);
        hist[size_t(t)].push_back(tok);
        if (!m->decode(**s, std::span<const int32_t>(&tok, 1), l).ok())
          return;
        got[size_t(t)].push_back(l);
      }
    });
  for (std::thread &t : ts)
    t.join();
  for (int t = 0; t < nThreads; ++t) {
    ASSERT_EQ(got[size_t(t)].size(), size_t(steps + 1)) << "thread " << t;
    EXPECT_TRUE(model::suite::sameBits(got[size_t(t)].back(),
                                       model::suite::aloneLogits(*oracle, hist[size_t(t)])))
        << "thread " << t;
  }
}

} // namespace
} // namespace tern::exec
