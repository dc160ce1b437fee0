// End to end on the cuda targets without a GPU (docs/cuda.md): every fixture
// compiled with `ternc --target cuda` runs on the emulated device (the GPU
// kernels' code on the host, through the launchers and the tern_gpu hooks,
// weights / scratch / KV pool in "device" memory) and matches the goldens
// within the fixtures' tolerances; several sessions in one call (prefix-
// cache sharing and copy-on-write of KV blocks on the device) give the bits
// each gives alone; the device errors. With a CUDA driver and a GPU present
// the same goldens run on the GPU (DeviceCuda), else that test checks the
// error message.
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "fmt/format.h"
#include "runtime/exec/artifact_model.h"
#include "runtime/model/eval.h"
#include "runtime/support/status.h"
#include "tests/exec/cuda_goldens.h"
#include "tests/exec/e2e_util.h"
#include "tools/tern/cli.h"
#include "gtest/gtest.h"

namespace tern::exec {
namespace {

class CudaEmulated : public ::testing::TestWithParam<CudaCase> {};

TEST_P(CudaEmulated, MatchesGoldens) {
  const CudaCase &c = GetParam();
  const std::string tern = cudaArtifact(c.model);
  ASSERT_FALSE(tern.empty());
  model::ModelOptions o;
  o.contextLength = 128;
  o.device = "cuda-emulated";
  auto m = ArtifactModel::open(tern, o);
  ASSERT_TRUE(m.ok()) << statusMessage(m.status());
  std::printf("  %s\n", (*m)->describe().c_str());
  ASSERT_NE((*m)->gpu(), nullptr);
  const double worst = runGoldens(**m, c);
  EXPECT_GT((*m)->gpu()->launches(), 0u);
  std::printf("MEASURED cuda-emulated %s: max dp %.4f (tolerance %.2f), %llu launches\n", c.model,
              worst, c.tolerance, (unsigned long long)(*m)->gpu()->launches());
  RecordProperty("max_delta_p", fmt::format("{:.5f}", worst));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaEmulated, cudaFixtureCases(), cudaCaseName);

// Logits of `prompts` fed as sessions: all in shared calls, or each alone.
std::vector<std::vector<float>>
runSessions(model::Model &m, const std::vector<std::vector<int32_t>> &prompts, bool together) {
  const size_t vocab = size_t(m.config().nVocab);
  std::vector<std::unique_ptr<model::Session>> sessions;
  std::vector<std::vector<float>> logits(prompts.size(), std::vector<float>(vocab));
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto s = m.newSession();
    EXPECT_TRUE(s.ok());
    sessions.push_back(std::move(*s));
  }
  if (together) {
    std::vector<model::BatchItem> items(prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i)
      items[i] = {sessions[i].get(), prompts[i], logits[i], {}};
    EXPECT_TRUE(m.forward(items).ok());
    for (const model::BatchItem &it : items)
      EXPECT_TRUE(it.status.ok()) << statusMessage(it.status);
  } else {
    for (size_t i = 0; i < prompts.size(); ++i)
      EXPECT_TRUE(m.decode(*sessions[i], prompts[i], logits[i]).ok());
  }
  // One decode step of every session, together, then compare again.
  std::vector<std::vector<float>> next(prompts.size(), std::vector<float>(vocab));
  std::vector<int32_t> one = {42};
  if (together) {
    std::vector<model::BatchItem> items(prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i)
      items[i] = {sessions[i].get(), one, next[i], {}};
    EXPECT_TRUE(m.forward(items).ok());
  } else {
    for (size_t i = 0; i < prompts.size(); ++i)
      EXPECT_TRUE(m.decode(*sessions[i], one, next[i]).ok());
  }
  logits.insert(logits.end(), next.begin(), next.end());
  return logits;
}

TEST(CudaEmulatedSessions, BatchedSessionsGiveTheBitsOfEachAlone) {
  const std::string tern = cudaArtifact("gqa-bitnet-tq2", "-sessions");
  ASSERT_FALSE(tern.empty());
  // Two prompts share 20 tokens (one full 16-position page is shared by the
  // prefix cache, then written by both: copy-on-write on the device).
  std::vector<int32_t> common;
  for (int i = 0; i < 20; ++i)
    common.push_back(int32_t(10 + 7 * i % 300));
  std::vector<int32_t> a = common, b = common, c = {354, 1, 2, 3}, d;
  a.insert(a.end(), {5, 6, 7});
  b.insert(b.end(), {8, 9});
  // A 40-token prompt: its calls reach position 32, where the attention
  // launcher switches to the split kernel for the whole call; the short
  // sessions' tokens in those calls must keep the one-warp kernel's bits
  // they get alone (docs/cuda.md, the split attention).
  for (int i = 0; i < 40; ++i)
    d.push_back(int32_t(5 + 13 * i % 330));
  model::ModelOptions o;
  o.contextLength = 64;
  o.parallel = 4;
  o.device = "cuda-emulated";
  auto alone = ArtifactModel::open(tern, o);
  ASSERT_TRUE(alone.ok()) << statusMessage(alone.status());
  auto together = ArtifactModel::open(tern, o);
  ASSERT_TRUE(together.ok()) << statusMessage(together.status());
  const auto la = runSessions(**alone, {a, b, c, d}, false);
  const auto lt = runSessions(**together, {a, b, c, d}, true);
  ASSERT_EQ(la.size(), lt.size());
  for (size_t i = 0; i < la.size(); ++i)
    EXPECT_EQ(la[i], lt[i]) << "logits " << i;
}

// A fork shares every block, the partly filled last one included: the first
// write to it copies the block on the device (KvPool's block copier).
TEST(CudaEmulatedSessions, ForkCopiesSharedBlocksOnTheDevice) {
  const std::string tern = cudaArtifact("tiny-bitnet-tq2", "-fork");
  ASSERT_FALSE(tern.empty());
  model::ModelOptions o;
  o.contextLength = 64;
  o.parallel = 4;
  o.device = "cuda-emulated";
  auto m = ArtifactModel::open(tern, o);
  ASSERT_TRUE(m.ok()) << statusMessage(m.status());
  const size_t vocab = size_t((*m)->config().nVocab);
  std::vector<int32_t> prompt;
  for (int i = 0; i < 21; ++i)
    prompt.push_back(int32_t(3 + 11 * i % 340));
  std::vector<float> l(vocab), x(vocab), y(vocab), wantX(vocab), wantY(vocab);
  auto s = (*m)->newSession();
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*m)->decode(**s, prompt, l).ok());
  auto f = (*m)->fork(**s);
  ASSERT_TRUE(f.ok()) << statusMessage(f.status());
  const uint64_t copiesBefore = (*m)->kvPool().stats().copies;
  std::vector<int32_t> tx = {77}, ty = {78};
  std::vector<model::BatchItem> items = {{s->get(), tx, x, {}}, {f->get(), ty, y, {}}};
  ASSERT_TRUE((*m)->forward(items).ok());
  EXPECT_GT((*m)->kvPool().stats().copies, copiesBefore);
  // The same continuations from scratch, each alone.
  for (auto [tok, want] : {std::pair{77, &wantX}, std::pair{78, &wantY}}) {
    auto fresh = (*m)->newSession();
    ASSERT_TRUE(fresh.ok());
    std::vector<int32_t> p = prompt;
    std::vector<float> ignore(vocab);
    ASSERT_TRUE((*m)->decode(**fresh, p, ignore).ok());
    std::vector<int32_t> t = {tok};
    ASSERT_TRUE((*m)->decode(**fresh, t, *want).ok());
  }
  EXPECT_EQ(x, wantX);
  EXPECT_EQ(y, wantY);
}

TEST(CudaDevice, WrongDeviceForTheArtifactIsAClearError) {
  const std::string gpu = cudaArtifact("tiny-bitnet-i2s", "-wrong-device");
  ASSERT_FALSE(gpu.empty());
  const std::string cpu = e2e::compile(fmt::format("{}/models/tiny-bitnet-i2s.gguf", kFixtures),
                                       "tiny-i2s-cpu-wrong-device", {});
  ASSERT_FALSE(cpu.empty());
  model::ModelOptions o;
  o.contextLength = 64;
  o.device = "cpu";
  auto m = ArtifactModel::open(gpu, o);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("--device cuda"), std::string::npos) << m.status();
  o.device = "cuda-emulated";
  m = ArtifactModel::open(cpu, o);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("compiled for the CPU"), std::string::npos) << m.status();
  o.device = "tpu";
  m = ArtifactModel::open(gpu, o);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("unknown device 'tpu'"), std::string::npos) << m.status();
}

// The CUDA driver: without one (CI) a clear error; with a GPU, the goldens.
TEST(CudaDevice, DriverRunsTheGoldensOrSaysWhyNot) {
  const std::string tern = cudaArtifact("tiny-bitnet-i2s", "-driver");
  ASSERT_FALSE(tern.empty());
  model::ModelOptions o;
  o.contextLength = 128;
  o.device = "cuda";
  auto m = ArtifactModel::open(tern, o);
  if (!m.ok()) {
    const std::string msg(m.status().message());
    EXPECT_NE(msg.find("--device cuda"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cuda-emulated"), std::string::npos) << msg;
    EXPECT_TRUE(msg.find("no CUDA driver") != std::string::npos ||
                msg.find("CUDA:") != std::string::npos)
        << msg;
    std::printf("no GPU run: %s\n", msg.c_str());
    return;
  }
  std::printf("  %s\n", (*m)->describe().c_str());
  const double worst = runGoldens(**m, {"tiny-bitnet-i2s", 0.05, 0.03});
  std::printf("MEASURED cuda (GPU) tiny-bitnet-i2s: max dp %.4f\n", worst);
}

// `tern eval ... --device`: the flag reaches the runtime, its errors are the
// command's; a .gguf with --device cuda-emulated compiles for --target cuda.
TEST(CudaCli, EvalWithDeviceFlag) {
  const std::string gpu = cudaArtifact("tiny-bitnet-tq2", "-cli");
  const std::string cpu = e2e::compile(fmt::format("{}/models/tiny-bitnet-tq2.gguf", kFixtures),
                                       "tiny-tq2-cpu-cli", {});
  ASSERT_FALSE(gpu.empty());
  ASSERT_FALSE(cpu.empty());
  auto eval = [](const std::string &model, std::vector<std::string> extra, std::string *errOut) {
    std::vector<std::string> args = {
        "eval", model, "--tokens", "354,111,110,97", "--json", "--greedy", "4", "-c", "64"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::ostringstream out, err;
    const int rc = cli::ternMain(args, out, err);
    *errOut = err.str();
    return rc;
  };
  std::string err;
  EXPECT_EQ(eval(gpu, {"--device", "cuda-emulated"}, &err), 0) << err;
  EXPECT_NE(eval(cpu, {"--device", "cuda-emulated"}, &err), 0);
  EXPECT_NE(err.find("compiled for the CPU"), std::string::npos) << err;
  EXPECT_NE(eval(gpu, {"--device", "cpu"}, &err), 0);
  EXPECT_NE(err.find("--device cuda"), std::string::npos) << err;
  if (eval(gpu, {}, &err) != 0) // the default for a cuda artifact: the driver
    EXPECT_NE(err.find("cuda-emulated"), std::string::npos) << err;
  namespace fs = std::filesystem;
  const fs::path cache = fs::path(TERN_E2E_DIR) / "cuda-cache";
  fs::remove_all(cache);
  ::setenv("TERNC", TERNC_PATH, 1);
  ::setenv("TERN_CACHE_DIR", cache.c_str(), 1);
  EXPECT_EQ(eval(kFixtures + "/models/tiny-bitnet-tq2.gguf",
                 {"--compile", "--device", "cuda-emulated"}, &err),
            0)
      << err;
  EXPECT_NE(eval(kFixtures + "/models/tiny-bitnet-tq2.gguf",
                 {"--reference", "--device", "cuda-emulated"}, &err),
            0);
  EXPECT_NE(err.find("runs compiled code only"), std::string::npos) << err;
}

} // namespace
} // namespace tern::exec
