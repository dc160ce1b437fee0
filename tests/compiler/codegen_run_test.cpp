// End-to-end test of the compiler's code generation, independent of the
// executor: `ternc compile` each fixture model into an artifact for the host,
// open it with the runtime's artifact reader, dlopen the code section, call
// tern_model_forward with a minimal context (serial parallel_for, a paged
// KV pool) and compare with the golden fixtures (../shared/fixtures/golden)
// within the tolerances of ../shared/fixtures/README.md.
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "runtime/abi/tern_abi.h"
#include "runtime/artifact/artifact.h"
#include "runtime/model/eval.h"
#include "runtime/model/reference_model.h"
#include "gtest/gtest.h"

namespace {

void serialFor(void *, int64_t n, int64_t, tern_range_fn fn, void *arg) { fn(arg, 0, n); }

struct Loaded {
  std::unique_ptr<tern::artifact::Artifact> art;
  void *so = nullptr;
  tern_forward_fn forward = nullptr;
  const tern_model_desc *desc = nullptr;
  ~Loaded() {
    if (so)
      dlclose(so);
  }
};

// Unique per call: dlopen of a path already loaded returns the old handle.
std::string tempPath(const std::string &stem) {
  static int counter = 0;
  return ::testing::TempDir() + "/" + stem + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter++);
}

void compileAndLoad(const std::string &model, const std::string &flags, Loaded &out) {
  std::string base = tempPath("model");
  std::string tern = base + ".tern";
  std::string cmd = std::string(TERNC_PATH) + " compile -q " + model + " -o " + tern + " " + flags;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto art = tern::artifact::Artifact::open(tern);
  ASSERT_TRUE(art.ok()) << art.status();
  out.art = std::move(*art);
  std::remove(tern.c_str());
  std::string so = base + ".so";
  {
    std::ofstream f(so, std::ios::binary);
    auto code = out.art->code();
    f.write(reinterpret_cast<const char *>(code.data()), std::streamsize(code.size()));
  }
  out.so = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
  std::remove(so.c_str());
  ASSERT_NE(out.so, nullptr) << dlerror();
  out.forward = reinterpret_cast<tern_forward_fn>(dlsym(out.so, TERN_SYM_FORWARD));
  auto describe = reinterpret_cast<tern_describe_fn>(dlsym(out.so, TERN_SYM_DESCRIBE));
  ASSERT_NE(out.forward, nullptr);
  ASSERT_NE(describe, nullptr);
  out.desc = describe();
  ASSERT_EQ(out.desc->abi_version, TERN_ABI_VERSION);
  ASSERT_EQ(uint64_t(out.desc->weights_bytes), out.art->weights().size());
}

// One sequence on a private pool, called through ABI v2 with one output row
// (the last token).
struct Session {
  int64_t pageSize = 16, ctx = 64;
  std::vector<float> pool;
  std::vector<std::vector<int32_t>> tables;
  std::vector<const int32_t *> tablePtrs;
  const int32_t *const *seqTables[1] = {nullptr};
  float *scratch = nullptr;
  tern_ctx c{};
  Session(const tern_model_desc &d, const uint8_t *weights) {
    int64_t kvDim = d.n_kv_head * d.head_dim, perLayer = ctx / pageSize;
    pool.assign(size_t(d.n_layer * perLayer * 2 * pageSize * kvDim), 0.f);
    for (int64_t l = 0; l < d.n_layer; ++l) {
      tables.emplace_back();
      for (int64_t p = 0; p < perLayer; ++p) // pages of a layer in reverse order
        tables.back().push_back(int32_t(l * perLayer + (perLayer - 1 - p)));
    }
    for (auto &t : tables)
      tablePtrs.push_back(t.data());
    scratch = static_cast<float *>(
        std::aligned_alloc(64, size_t(d.scratch_per_token * ctx + d.scratch_fixed + 64)));
    c.abi_version = TERN_ABI_VERSION;
    c.weights = weights;
    c.scratch = reinterpret_cast<uint8_t *>(scratch);
    seqTables[0] = tablePtrs.data();
    c.kv = {pool.data(), 2 * pageSize * kvDim, pageSize, 1, seqTables};
    c.parallel_for = serialFor;
  }
  ~Session() { std::free(scratch); }
};

// tokens[0..n) at positions[0..n) of sequence 0; the last token's logits.
int32_t run(const Loaded &m, const Session &s, int64_t n, const int32_t *tokens,
            const int32_t *positions, float *logits, int32_t seqId = 0) {
  std::vector<int32_t> seq(size_t(std::max<int64_t>(n, 0)), seqId);
  const int32_t last = int32_t(n - 1);
  tern_batch b{n, tokens, positions, seq.data(), 1, &last, logits};
  return m.forward(&s.c, &b);
}

// Feeds `input`, then takes greedy steps; calls `onStep` with the
// probabilities of each step (softmax of the logits).
std::vector<int> greedy(Loaded &m, const std::vector<int> &input, int steps,
                        const std::function<bool(int, const std::vector<double> &)> &onStep = {}) {
  Session s(*m.desc, m.art->weights().data());
  std::vector<int32_t> toks(input.begin(), input.end()), pos;
  for (size_t i = 0; i < toks.size(); ++i)
    pos.push_back(int32_t(i));
  std::vector<float> logits(size_t(m.desc->vocab));
  std::vector<int> out;
  EXPECT_EQ(run(m, s, int64_t(toks.size()), toks.data(), pos.data(), logits.data()), 0);
  for (int step = 0; step < steps; ++step) {
    int best = 0;
    for (int v = 1; v < m.desc->vocab; ++v)
      if (logits[size_t(v)] > logits[size_t(best)])
        best = v;
    std::vector<double> p(logits.size());
    double sum = 0;
    for (size_t v = 0; v < p.size(); ++v)
      sum += p[v] = std::exp(double(logits[v]) - double(logits[size_t(best)]));
    for (double &x : p)
      x /= sum;
    out.push_back(best);
    if (onStep && !onStep(step, p))
      break;
    int32_t t = best, ps = int32_t(input.size()) + step;
    EXPECT_EQ(run(m, s, 1, &t, &ps, logits.data()), 0);
  }
  return out;
}

struct Case {
  std::string model, flags;
  double dp, gap; // tolerances of ../shared/fixtures/README.md
};
void PrintTo(const Case &c, std::ostream *os) { *os << c.model << " " << c.flags; }

class CodegenRun : public ::testing::TestWithParam<Case> {};

// The fixtures' rule: the largest difference over the golden's top-5
// probabilities stays within dp, compared up to the first step where the
// greedy picks part; a parted pick is an error only where the golden's top
// two differ by more than gap.
TEST_P(CodegenRun, MatchesGoldenWithinTolerance) {
  const Case &c = GetParam();
  std::string dir = std::string(TERN_SHARED_DIR) + "/fixtures";
  std::ifstream g(dir + "/golden/" + c.model + ".json");
  ASSERT_TRUE(g) << "no golden file for " << c.model;
  nlohmann::json golden = nlohmann::json::parse(g);
  Loaded m;
  ASSERT_NO_FATAL_FAILURE(compileAndLoad(dir + "/models/" + c.model + ".gguf", c.flags, m));
  double worst = 0;
  for (const auto &run : golden) {
    std::vector<int> input = run["input"].get<std::vector<int>>();
    const auto &steps = run["steps"];
    greedy(m, input, int(steps.size()), [&](int step, const std::vector<double> &p) {
      const auto &st = steps[size_t(step)];
      const auto &top = st["top"];
      for (const auto &pair : top) {
        double d = std::fabs(p[pair[0].get<size_t>()] - pair[1].get<double>());
        worst = std::max(worst, d);
        EXPECT_LE(d, c.dp) << run["prompt"] << " step " << step << " token " << pair[0];
      }
      int mine = int(std::max_element(p.begin(), p.end()) - p.begin());
      if (mine == st["token"].get<int>())
        return true;
      double margin = top[0][1].get<double>() - top[1][1].get<double>();
      EXPECT_LE(margin, c.gap) << run["prompt"] << " step " << step << ": picked " << mine
                               << ", golden " << st["token"];
      return false;
    });
  }
  RecordProperty("max_dp", std::to_string(worst));
  std::printf("%s %s: max dp %.4f\n", c.model.c_str(), c.flags.c_str(), worst);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, CodegenRun,
    ::testing::Values(Case{"tiny-bitnet-tq2", "--target native", 0.10, 0.05},
                      Case{"tiny-bitnet-tq1", "--target native", 0.10, 0.05},
                      Case{"tiny-bitnet-i2s", "--target native", 0.05, 0.03},
                      Case{"tiny-bitnet-f16", "--target native", 0.10, 0.05},
                      Case{"tiny-bitnet-f16", "--target native --act-quant none", 0.01, 0.01},
                      Case{"gqa-bitnet-tq2", "--target native", 0.10, 0.05},
                      Case{"tiny-bitnet-tq2", "--target native --kernel ref", 0.10, 0.05}));

TEST(CodegenRun, RefusesBadBatchesAndPositions) {
  Loaded m;
  ASSERT_NO_FATAL_FAILURE(
      compileAndLoad(std::string(TERN_SHARED_DIR) + "/fixtures/models/tiny-bitnet-tq2.gguf",
                     "--target native --max-batch 4", m));
  EXPECT_EQ(m.desc->max_batch, 4);
  Session s(*m.desc, m.art->weights().data());
  std::vector<float> logits(size_t(m.desc->vocab));
  int32_t toks[5] = {1, 2, 3, 4, 5}, pos[5] = {0, 1, 2, 3, 4};
  int32_t seq[5] = {0, 0, 0, 0, 0}, rows[2] = {3, 1};
  auto call = [&](int64_t n, const int32_t *p, const int32_t *sq, int64_t nOut, const int32_t *r) {
    tern_batch b{n, toks, p, sq, nOut, r, logits.data()};
    return m.forward(&s.c, &b);
  };
  EXPECT_NE(call(0, pos, seq, 0, rows), 0);
  EXPECT_NE(call(5, pos, seq, 1, rows), 0);
  int32_t far = int32_t(m.desc->max_ctx), neg = -1, other = 1;
  EXPECT_NE(call(1, &far, seq, 1, rows + 1), 0) << "position >= max_ctx";
  EXPECT_NE(call(1, &neg, seq, 0, rows), 0) << "negative position";
  EXPECT_NE(call(1, pos, &other, 0, rows), 0) << "seq >= n_seq";
  EXPECT_NE(call(1, pos, &neg, 0, rows), 0) << "negative seq";
  EXPECT_NE(call(2, pos, seq, 1, rows), 0) << "out row >= n";
  EXPECT_NE(call(2, pos, seq, 3, rows), 0) << "n_out > n";
  EXPECT_NE(call(2, pos, seq, -1, rows), 0) << "negative n_out";
  EXPECT_EQ(call(4, pos, seq, 0, rows), 0) << "no output rows";
  EXPECT_EQ(call(4, pos, seq, 1, rows), 0);
}

// Logits of the prompt and of `steps` greedy steps after it (fed with the
// reference's picks, so both sides see the same context).
struct StepLogits {
  std::vector<std::vector<float>> logits;
  std::vector<int32_t> picks;
};

StepLogits referenceRun(const std::string &gguf, tern::model::ActQuant aq,
                        const std::vector<int> &input, int steps) {
  StepLogits r;
  tern::model::ModelOptions o;
  o.actQuant = aq;
  o.contextLength = 64;
  auto m = tern::model::openReferenceModel(gguf, o);
  EXPECT_TRUE(m.ok()) << m.status();
  if (!m.ok())
    return r;
  auto s = (*m)->newSession();
  std::vector<int32_t> feed(input.begin(), input.end());
  for (int step = 0; step <= steps; ++step) {
    std::vector<float> l((*m)->config().nVocab);
    EXPECT_TRUE((*m)->decode(**s, feed, l).ok());
    r.picks.push_back(tern::model::argmax(l));
    feed = {r.picks.back()};
    r.logits.push_back(std::move(l));
  }
  return r;
}

StepLogits compiledRun(Loaded &m, const std::vector<int> &input,
                       const std::vector<int32_t> &picks) {
  StepLogits r;
  Session s(*m.desc, m.art->weights().data());
  std::vector<int32_t> toks(input.begin(), input.end()), pos;
  for (size_t i = 0; i < toks.size(); ++i)
    pos.push_back(int32_t(i));
  for (size_t step = 0; step < picks.size(); ++step) {
    std::vector<float> l(size_t(m.desc->vocab));
    EXPECT_EQ(run(m, s, int64_t(toks.size()), toks.data(), pos.data(), l.data()), 0);
    r.logits.push_back(std::move(l));
    const int32_t next = int32_t(pos.back()) + 1;
    toks = {picks[step]};
    pos = {next};
  }
  return r;
}

// Largest |a - b| over every step and logit.
double maxDiff(const StepLogits &a, const StepLogits &b) {
  double d = 0;
  for (size_t s = 0; s < std::min(a.logits.size(), b.logits.size()); ++s)
    for (size_t v = 0; v < a.logits[s].size(); ++v)
      d = std::max(d, double(std::fabs(a.logits[s][v] - b.logits[s][v])));
  return d;
}

// --act-quant none and --kernel ref compile, run, and compute what the
// reference forward pass computes: exactly with --kernel ref (either
// act-quant), within the f32act SIMD kernels' summation-order error with
// the native kernels and float activations.
TEST(CodegenRun, ActQuantNoneAndRefKernelsRun) {
  using tern::model::ActQuant;
  std::string model = std::string(TERN_SHARED_DIR) + "/fixtures/models/tiny-bitnet-tq2.gguf";
  Loaded a, b, c;
  ASSERT_NO_FATAL_FAILURE(compileAndLoad(model, "--target native --act-quant none", a));
  ASSERT_NO_FATAL_FAILURE(compileAndLoad(model, "--target native --kernel ref", b));
  ASSERT_NO_FATAL_FAILURE(
      compileAndLoad(model, "--target native --kernel ref --act-quant none", c));
  EXPECT_EQ(a.desc->act_quant, 0u);
  EXPECT_EQ(b.desc->act_quant, 1u);
  EXPECT_EQ(c.desc->act_quant, 0u);
  for (const Loaded *l : {&b, &c}) {
    std::string kernels = l->desc->kernels;
    EXPECT_EQ(kernels.find("_avx"), std::string::npos) << kernels;
    EXPECT_EQ(kernels.find("_neon"), std::string::npos) << kernels;
  }
  EXPECT_NE(std::string(a.desc->kernels).find("_f32act_"), std::string::npos) << a.desc->kernels;
  const std::vector<int> input = {354, 111, 110, 99};
  const int steps = 4;
  const StepLogits refToken = referenceRun(model, ActQuant::PerToken, input, steps);
  const StepLogits refNone = referenceRun(model, ActQuant::None, input, steps);
  ASSERT_EQ(refToken.logits.size(), size_t(steps + 1));
  ASSERT_EQ(refNone.logits.size(), size_t(steps + 1));

  const StepLogits gotB = compiledRun(b, input, refToken.picks);
  const StepLogits gotC = compiledRun(c, input, refNone.picks);
  const StepLogits gotA = compiledRun(a, input, refNone.picks);
  for (size_t s = 0; s < refToken.logits.size(); ++s) {
    EXPECT_EQ(gotB.logits[s], refToken.logits[s]) << "--kernel ref, step " << s;
    EXPECT_EQ(gotC.logits[s], refNone.logits[s]) << "--kernel ref --act-quant none, step " << s;
  }
  // Native f32act: the same math up to float summation order (logits of
  // magnitude ~10).
  const double dA = maxDiff(gotA, refNone);
  EXPECT_LE(dA, 1e-3);
  std::printf("max |logit diff| vs reference: ref/token %g, ref/none %g, native/none %g\n",
              maxDiff(gotB, refToken), maxDiff(gotC, refNone), dA);
}

} // namespace

// ternc --decode-layout tl2v packs every ternary matrix twice and runs the
// tl2v copy for calls of fewer than 6 tokens, the i2s one (AMX GEMM, or the
// VNNI body where AMX is unusable) otherwise. Both are exact integer sums with the same float
// epilogue, so the logits are those of the plain i2s artifact bit for bit, whatever the batch: the
// prompt is fed in chunks of 1, 2, 3, 5, 6 and all at once (every token's logits, n_out = n) to
// both artifacts, and every run must equal the plain artifact's run of the whole prompt in one
// call.
// Both x86 targets with a tl2v kernel (avx2: the AVX2 i2s GEMM from 4 tokens).
TEST(CodegenRun, DecodeLayoutTl2vIsBitIdenticalToI2s) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
    GTEST_SKIP() << "tl2v has kernels only on avx2 and avx512_vnni, which this host lacks";
  const bool vnni = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  const std::string dir = std::string(TERN_SHARED_DIR) + "/fixtures/models/";
  for (const char *target : {"avx2", "avx512_vnni"})
    for (const char *model : {"tiny-bitnet-i2s", "gqa-bitnet-tq2"}) {
      if (std::string(target) == "avx512_vnni" && !vnni) {
        std::printf("skipped: --target avx512_vnni (the host lacks avx512 vnni)\n");
        continue;
      }
      SCOPED_TRACE(std::string(model) + " --target " + target);
      Loaded plain, dual;
      const std::string gguf = dir + model + ".gguf";
      const std::string flags = std::string("--target ") + target + " --kernel i2s";
      ASSERT_NO_FATAL_FAILURE(compileAndLoad(gguf, flags, plain));
      ASSERT_NO_FATAL_FAILURE(compileAndLoad(gguf, flags + " --decode-layout tl2v", dual));
      // The kernel list names both kernels of every ternary matrix.
      const nlohmann::json kernels = nlohmann::json::parse(dual.desc->kernels);
      int withDecode = 0;
      for (const nlohmann::json &k : kernels)
        if (k.contains("decode")) {
          ++withDecode;
          EXPECT_EQ(k.value("layout", ""), "i2s");
          EXPECT_EQ(k["decode"].value("layout", ""), "tl2v");
          EXPECT_EQ(k["decode"].value("callee", ""), std::string("tern_uk_matmul_tl2v_") + target);
          EXPECT_EQ(k["decode"].value("below", 0), 6);
        }
      EXPECT_EQ(withDecode, 4 * int(plain.desc->n_layer)) << "qkv, o, gate+up, down per layer";
      EXPECT_GT(dual.art->weights().size(), plain.art->weights().size());

      const std::vector<int32_t> prompt = {1, 17, 42, 5, 99, 3, 250, 7, 64, 128, 11, 2, 33};
      const int64_t vocab = plain.desc->vocab, n = int64_t(prompt.size());
      // Every token's logits, the prompt fed `chunk` tokens per call.
      auto feed = [&](Loaded &m, int64_t chunk) {
        std::vector<float> all(size_t(n * vocab), NAN);
        Session s(*m.desc, m.art->weights().data());
        for (int64_t t0 = 0; t0 < n; t0 += chunk) {
          const int64_t c = std::min(chunk, n - t0);
          std::vector<int32_t> pos, seq(size_t(c), 0), rows;
          for (int64_t i = 0; i < c; ++i) {
            pos.push_back(int32_t(t0 + i));
            rows.push_back(int32_t(i));
          }
          tern_batch b{c,           prompt.data() + t0,     pos.data(), seq.data(), c,
                       rows.data(), all.data() + t0 * vocab};
          EXPECT_EQ(m.forward(&s.c, &b), 0);
        }
        return all;
      };
      const std::vector<float> want = feed(plain, n);
      for (int64_t chunk : {int64_t(1), int64_t(2), int64_t(3), int64_t(5), int64_t(6), n})
        for (Loaded *m : {&plain, &dual}) {
          const std::vector<float> got = feed(*m, chunk);
          int64_t differ = 0, first = -1;
          for (size_t i = 0; i < got.size(); ++i)
            if (std::memcmp(&got[i], &want[i], 4) != 0 && differ++ == 0)
              first = int64_t(i);
          EXPECT_EQ(differ, 0) << (m == &dual ? "--decode-layout tl2v" : "plain i2s")
                               << ", chunks of " << chunk << ": first difference at token "
                               << first / vocab << " logit " << first % vocab;
        }
    }
}
