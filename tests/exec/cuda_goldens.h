// Helpers of the cuda targets' end-to-end tests (cuda_e2e_test.cpp, the
// emulated device; cuda_fake_driver_test.cpp, the CUDA driver device through
// the tests' driver double): the fixtures' cuda artifacts and their goldens.
#pragma once

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "runtime/model/eval.h"
#include "runtime/support/status.h"
#include "tests/exec/e2e_util.h"
#include "gtest/gtest.h"

namespace tern::exec {

inline const std::string kFixtures = std::string(TERN_SHARED_DIR) + "/fixtures";

struct CudaCase {
  const char *model;
  double tolerance, gap;
};

// The five fixtures and their tolerances, as a test suite's parameters, and
// the test names they get (cuda_e2e_test.cpp and cuda_fake_driver_test.cpp).
inline auto cudaFixtureCases() {
  return ::testing::Values(
      CudaCase{"tiny-bitnet-i2s", 0.05, 0.03}, CudaCase{"tiny-bitnet-tq2", 0.10, 0.05},
      CudaCase{"tiny-bitnet-tq1", 0.10, 0.05}, CudaCase{"tiny-bitnet-f16", 0.10, 0.05},
      CudaCase{"gqa-bitnet-tq2", 0.10, 0.05});
}
inline std::string cudaCaseName(const ::testing::TestParamInfo<CudaCase> &info) {
  std::string n = info.param.model;
  for (char &ch : n)
    if (!isalnum(static_cast<unsigned char>(ch)))
      ch = '_';
  return n;
}

// `tag` keeps the artifacts of tests that ctest runs in parallel apart.
inline std::string cudaArtifact(const std::string &model, const std::string &tag = "") {
  return e2e::compile(fmt::format("{}/models/{}.gguf", kFixtures, model),
                      fmt::format("{}-cuda{}", model, tag), {"--target", "cuda"});
}

inline double runGoldens(model::Model &m, const CudaCase &c) {
  auto golden = model::readGoldenFile(fmt::format("{}/golden/{}.json", kFixtures, c.model));
  EXPECT_TRUE(golden.ok()) << statusMessage(golden.status());
  if (!golden.ok())
    return 1;
  double worst = 0;
  for (const model::EvalResult &g : *golden) {
    std::vector<int32_t> forced;
    for (const model::EvalStep &s : g.steps)
      forced.push_back(s.token);
    model::GreedyOptions go;
    go.steps = int(g.steps.size());
    go.keepProbs = true;
    go.forced = forced;
    auto steps = model::greedyEval(m, g.input, go);
    EXPECT_TRUE(steps.ok()) << statusMessage(steps.status());
    if (!steps.ok())
      return 1;
    model::GoldenComparison cmp = model::compareWithGolden(g, *steps, c.tolerance, c.gap);
    worst = std::max(worst, cmp.maxDeltaP);
    EXPECT_TRUE(cmp.ok) << c.model << " prompt '" << g.prompt.value_or("?") << "': " << cmp.detail;
  }
  return worst;
}

} // namespace tern::exec
