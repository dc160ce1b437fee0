// End to end: `ternc compile` every fixture model (native kernels and
// --kernel=ref; tiny-bitnet-f16 also with --act-quant none) into the build
// tree, run the artifact through ArtifactModel and compare with the
// llama.cpp / bitnet.cpp goldens by the fixtures' rule (runtime/model/eval.h)
// and tolerances (docs/reference-forward.md). Also a bitnet-b1.58 model from
// tern-synth, compiled and compared against the reference forward pass.
//
// Built only with TERN_BUILD_COMPILER. A compiler that cannot produce an
// artifact yet makes these tests FAIL with its output, never skip.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "runtime/exec/artifact_model.h"
#include "runtime/model/eval.h"
#include "runtime/support/status.h"
#include "tests/exec/e2e_util.h"
#include "tools/tern/cli.h"
#include "gtest/gtest.h"

namespace tern::exec {
namespace {

namespace fs = std::filesystem;
using model::ActQuant;
using model::EvalResult;
using model::EvalStep;

const std::string kFixtures = std::string(TERN_SHARED_DIR) + "/fixtures";

using e2e::compile;
using e2e::runTool;
using e2e::tail;

struct E2ECase {
  const char *model;
  bool refKernels;
  ActQuant actQuant;
  double tolerance, gap;
};

std::string caseName(const ::testing::TestParamInfo<E2ECase> &info) {
  std::string n =
      fmt::format("{}_{}_{}", info.param.model, info.param.refKernels ? "ref" : "native",
                  model::actQuantName(info.param.actQuant));
  for (char &c : n)
    if (!isalnum(static_cast<unsigned char>(c)))
      c = '_';
  return n;
}

class E2E : public ::testing::TestWithParam<E2ECase> {};

TEST_P(E2E, CompiledMatchesGoldens) {
  const E2ECase &c = GetParam();
  std::vector<std::string> flags;
  if (c.refKernels)
    flags.push_back("--kernel=ref");
  if (c.actQuant == ActQuant::None)
    flags.insert(flags.end(), {"--act-quant", "none"});
  const std::string tern =
      compile(fmt::format("{}/models/{}.gguf", kFixtures, c.model), caseName({c, 0}), flags);
  ASSERT_FALSE(tern.empty());
  model::ModelOptions o;
  o.threads = 2;
  o.contextLength = 128;
  auto m = ArtifactModel::open(tern, o);
  ASSERT_TRUE(m.ok()) << statusMessage(m.status());
  std::printf("  %s\n", (*m)->describe().c_str());
  auto golden = model::readGoldenFile(fmt::format("{}/golden/{}.json", kFixtures, c.model));
  ASSERT_TRUE(golden.ok()) << statusMessage(golden.status());
  double worst = 0;
  for (const EvalResult &g : *golden) {
    std::vector<int32_t> forced;
    for (const EvalStep &s : g.steps)
      forced.push_back(s.token);
    model::GreedyOptions go;
    go.steps = int(g.steps.size());
    go.keepProbs = true;
    go.forced = forced;
    auto steps = model::greedyEval(**m, g.input, go);
    ASSERT_TRUE(steps.ok()) << statusMessage(steps.status());
    model::GoldenComparison cmp = model::compareWithGolden(g, *steps, c.tolerance, c.gap);
    worst = std::max(worst, cmp.maxDeltaP);
    EXPECT_TRUE(cmp.ok) << c.model << " prompt '" << g.prompt.value_or("?") << "': " << cmp.detail;
  }
  std::printf("MEASURED e2e %s: max dp %.4f (tolerance %.2f)\n", caseName({c, 0}).c_str(), worst,
              c.tolerance);
  RecordProperty("max_delta_p", fmt::format("{:.5f}", worst));
}

std::vector<E2ECase> cases() {
  std::vector<E2ECase> v;
  for (bool ref : {false, true}) {
    v.push_back({"tiny-bitnet-f16", ref, ActQuant::None, 0.01, 0.01});
    v.push_back({"tiny-bitnet-i2s", ref, ActQuant::PerToken, 0.05, 0.03});
    v.push_back({"tiny-bitnet-f16", ref, ActQuant::PerToken, 0.10, 0.05});
    v.push_back({"tiny-bitnet-tq2", ref, ActQuant::PerToken, 0.10, 0.05});
    v.push_back({"tiny-bitnet-tq1", ref, ActQuant::PerToken, 0.10, 0.05});
    v.push_back({"gqa-bitnet-tq2", ref, ActQuant::PerToken, 0.10, 0.05});
  }
  return v;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, E2E, ::testing::ValuesIn(cases()), caseName);

// A bitnet-b1.58 (relu^2 FFN) model from tern-synth, I2_S: compiled vs the
// reference forward pass on the same GGUF (same per-token scheme): within
// 0.05 with the native kernels, identical with --kernel=ref; with the exact
// f16 head and with --head q8 (the reference model quantizing its head the
// same way: the artifact's metadata says so).
TEST(E2ESynth, Bitnet158CompiledMatchesReference) {
  const fs::path dir = fs::path(TERN_E2E_DIR);
  fs::create_directories(dir);
  const std::string gguf = (dir / "synth-b158-i2s.gguf").string();
  const std::string log = (dir / "synth-b158-i2s.synth.log").string();
  ASSERT_EQ(runTool({TERN_SYNTH_PATH, "--preset", "tiny", "--arch", "bitnet-b1.58", "--format",
                     "i2_s", "--seed", "5", "-o", gguf},
                    log),
            0)
      << tail(log);
  for (bool q8 : {false, true})
    for (bool ref : {false, true}) {
      std::vector<std::string> flags;
      if (ref)
        flags.push_back("--kernel=ref");
      if (q8)
        flags.insert(flags.end(), {"--head", "q8"});
      const std::string tern = compile(
          gguf, fmt::format("synth-b158-i2s_{}{}", ref ? "ref" : "native", q8 ? "_q8" : ""), flags);
      ASSERT_FALSE(tern.empty());
      model::ModelOptions o;
      o.threads = 2;
      o.contextLength = 128;
      auto compiled = ArtifactModel::open(tern, o);
      ASSERT_TRUE(compiled.ok()) << statusMessage(compiled.status());
      EXPECT_EQ((*compiled)->options().q8Head, q8);
      EXPECT_NE((*compiled)->describe().find(q8 ? "head q8" : "head f16"), std::string::npos)
          << (*compiled)->describe();
      o.q8Head = q8;
      auto reference = model::openReferenceModel(gguf, o);
      ASSERT_TRUE(reference.ok()) << statusMessage(reference.status());
      EXPECT_EQ((*compiled)->config().nVocab, (*reference)->config().nVocab);
      double worst = 0;
      for (std::vector<int32_t> input : {std::vector<int32_t>{354, 72, 101, 108, 108, 111},
                                         std::vector<int32_t>{354, 1, 2, 3, 200, 17, 99, 300, 5}}) {
        model::GreedyOptions go;
        go.steps = 8;
        go.keepProbs = true;
        auto want = model::greedyEval(**reference, input, go);
        ASSERT_TRUE(want.ok()) << statusMessage(want.status());
        std::vector<int32_t> forced;
        for (const EvalStep &s : *want)
          forced.push_back(s.token);
        go.forced = forced;
        auto got = model::greedyEval(**compiled, input, go);
        ASSERT_TRUE(got.ok()) << statusMessage(got.status());
        EvalResult g;
        g.input = input;
        g.tokens = input;
        g.steps = *want;
        // --kernel=ref is the reference's own arithmetic: exact.
        model::GoldenComparison cmp =
            model::compareWithGolden(g, *got, ref ? 0.0 : 0.05, ref ? 0.0 : 0.03);
        worst = std::max(worst, cmp.maxDeltaP);
        EXPECT_TRUE(cmp.ok) << (ref ? "ref" : "native") << ": " << cmp.detail;
        if (ref) {
          for (size_t i = 0; i < want->size(); ++i)
            EXPECT_EQ((*want)[i].probs, (*got)[i].probs) << "step " << i;
        }
      }
      std::printf("MEASURED e2e synth bitnet-b1.58 i2s %s head %s vs reference: max dp %.5f\n",
                  ref ? "ref" : "native", q8 ? "q8" : "f16", worst);
    }
}

// `tern eval MODEL.gguf --compile`: ternc as a subprocess into the cache,
// then the compiled code; same picks as the reference path.
TEST(E2ECli, EvalGgufWithCompileGoesThroughTheCache) {
  const fs::path cache = fs::path(TERN_E2E_DIR) / "cache";
  fs::remove_all(cache);
  ::setenv("TERNC", TERNC_PATH, 1);
  ::setenv("TERN_CACHE_DIR", cache.c_str(), 1);
  const std::string gguf = kFixtures + "/models/tiny-bitnet-tq2.gguf";
  auto eval = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"eval",   gguf,       "--tokens", "354,111,110,97",
                                     "--json", "--greedy", "6"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::ostringstream out, err;
    const int rc = cli::ternMain(args, out, err);
    EXPECT_EQ(rc, 0) << err.str();
    return std::make_pair(out.str(), err.str());
  };
  auto [refOut, refErr] = eval({"--reference"});
  auto [c1Out, c1Err] = eval({"--compile"});
  EXPECT_NE(c1Err.find("tern: cached"), std::string::npos) << c1Err;
  auto [c2Out, c2Err] = eval({"--compile"});
  EXPECT_NE(c2Err.find("using cached"), std::string::npos) << c2Err;
  EXPECT_EQ(c1Out, c2Out);
  nlohmann::json r = nlohmann::json::parse(refOut, nullptr, false),
                 c = nlohmann::json::parse(c1Out, nullptr, false);
  ASSERT_FALSE(r.is_discarded() || c.is_discarded()) << refOut << c1Out;
  ASSERT_EQ(r["steps"].size(), c["steps"].size());
  for (size_t i = 0; i < r["steps"].size(); ++i) {
    EXPECT_EQ(r["steps"][i]["token"], c["steps"][i]["token"]) << "step " << i;
    EXPECT_NEAR(r["steps"][i]["top"][0][1].get<double>(), c["steps"][i]["top"][0][1].get<double>(),
                0.05);
  }
  ::unsetenv("TERNC");
  ::unsetenv("TERN_CACHE_DIR");
}

} // namespace
} // namespace tern::exec
