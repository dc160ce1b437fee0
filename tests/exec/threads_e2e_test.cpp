// The spinning thread pool under compiled artifacts, and `tern bench`'s
// bytes and --profile report:
//  - thread-count invariance: the logits of every step are bit-identical
//    for 1, 2, 3 and 4 threads (static partitions, disjoint outputs);
//  - concurrent forward calls from several threads on one model (the
//    model's mutex, one pool) give each session the logits it gets alone;
//  - `tern bench --json --profile` on a compiled fixture: the keys exist
//    and are sane (op times sum to at most the wall time, every matmul has
//    a role, bytes > 0).
//
// Built only with TERN_BUILD_COMPILER (exec_e2e_test).
#include <cstring>
#include <filesystem>
#include <sstream>
#include <thread>
#include <unistd.h>

#include "nlohmann/json.hpp"
#include "runtime/exec/artifact_model.h"
#include "runtime/model/eval.h"
#include "runtime/support/status.h"
#include "tests/exec/e2e_util.h"
#include "tools/tern/cli.h"
#include "gtest/gtest.h"

namespace tern::exec {
namespace {

const std::string kFixture = std::string(TERN_SHARED_DIR) + "/fixtures/models/gqa-bitnet-tq2.gguf";

// One compile per process (ctest runs tests in parallel processes).
const std::string &artifactPath() {
  static const std::string path = [] {
    return e2e::compile(kFixture, "threads-" + std::to_string(::getpid()), {});
  }();
  return path;
}

struct CleanUp : ::testing::Environment {
  void TearDown() override {
    if (!artifactPath().empty())
      std::filesystem::remove(artifactPath());
  }
};
[[maybe_unused]] ::testing::Environment *const gCleanUp =
    ::testing::AddGlobalTestEnvironment(new CleanUp);

std::vector<int32_t> promptOf(uint32_t n, uint32_t vocab, uint64_t seed) {
  std::vector<int32_t> p(n);
  for (uint32_t i = 0; i < n; ++i) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    p[i] = int32_t((seed >> 33) % vocab);
  }
  return p;
}

// Prefill then `steps` greedy steps; every step's logits, concatenated.
std::vector<float> runSession(model::Model &m, const std::vector<int32_t> &prompt, int steps) {
  std::vector<float> all, logits(m.config().nVocab);
  auto s = m.newSession();
  EXPECT_TRUE(s.ok());
  if (!s.ok())
    return all;
  std::vector<int32_t> feed = prompt;
  for (int step = 0; step <= steps; ++step) {
    absl::Status st = m.decode(**s, feed, logits);
    EXPECT_TRUE(st.ok()) << statusMessage(st);
    all.insert(all.end(), logits.begin(), logits.end());
    feed = {model::argmax(logits)};
  }
  return all;
}

bool bitIdentical(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(ThreadPoolE2E, LogitsBitIdenticalForAnyThreadCount) {
  ASSERT_FALSE(artifactPath().empty());
  std::vector<float> first;
  for (int threads : {1, 2, 3, 4}) {
    model::ModelOptions o;
    o.threads = threads;
    auto m = ArtifactModel::open(artifactPath(), o);
    ASSERT_TRUE(m.ok()) << statusMessage(m.status());
    const std::vector<float> got =
        runSession(**m, promptOf(13, (*m)->config().nVocab, 7), /*steps=*/6);
    if (first.empty())
      first = got;
    else
      EXPECT_TRUE(bitIdentical(got, first)) << threads << " threads differ from 1 thread";
  }
}

TEST(ThreadPoolE2E, ConcurrentForwardCallsOnOneModel) {
  ASSERT_FALSE(artifactPath().empty());
  model::ModelOptions o;
  o.threads = 3;
  auto m = ArtifactModel::open(artifactPath(), o);
  ASSERT_TRUE(m.ok()) << statusMessage(m.status());
  constexpr int kCallers = 4;
  std::vector<std::vector<float>> alone(kCallers), together(kCallers);
  for (int c = 0; c < kCallers; ++c)
    alone[size_t(c)] = runSession(**m, promptOf(5 + 3 * uint32_t(c), (*m)->config().nVocab, c), 8);
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c)
    callers.emplace_back([&, c] {
      together[size_t(c)] =
          runSession(**m, promptOf(5 + 3 * uint32_t(c), (*m)->config().nVocab, c), 8);
    });
  for (std::thread &t : callers)
    t.join();
  for (int c = 0; c < kCallers; ++c)
    EXPECT_TRUE(bitIdentical(together[size_t(c)], alone[size_t(c)])) << "caller " << c;
}

struct Result {
  int rc;
  std::string out, err;
};
Result tern(const std::vector<std::string> &args) {
  std::ostringstream out, err;
  const int rc = cli::ternMain(args, out, err);
  return {rc, out.str(), err.str()};
}

TEST(BenchProfileE2E, JsonKeysAreSane) {
  ASSERT_FALSE(artifactPath().empty());
  const int nGen = 4;
  Result r = tern({"bench", artifactPath(), "--json", "--profile", "-p", "8", "-n",
                   std::to_string(nGen), "-r", "1", "-t", "2"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_GT(j.value("decode_bytes_per_token", 0.0), 0.0);
  EXPECT_GT(j.value("decode_weight_bytes_per_token", 0.0), 0.0);
  EXPECT_GT(j.value("decode_kv_bytes_per_token", 0.0), 0.0);
  EXPECT_DOUBLE_EQ(j.value("decode_bytes_per_token", 0.0),
                   j.value("decode_weight_bytes_per_token", 0.0) +
                       j.value("decode_kv_bytes_per_token", 0.0));
  EXPECT_GT(j.value("decode_gbps", 0.0), 0.0);
  EXPECT_GT(j.value("read_bandwidth_gbps", 0.0), 0.0);
  ASSERT_TRUE(j.contains("profile")) << r.out;
  auto m = ArtifactModel::open(artifactPath(), {});
  ASSERT_TRUE(m.ok());
  const uint64_t nLayer = (*m)->config().nLayer;
  for (const char *phase : {"prefill", "decode"}) {
    SCOPED_TRACE(phase);
    const nlohmann::json &p = j["profile"][phase];
    const double wall = p.value("wall_ms", -1.0);
    EXPECT_GT(wall, 0.0);
    const uint64_t calls = p.value("forward_calls", uint64_t(0));
    EXPECT_EQ(calls, std::string(phase) == "decode" ? uint64_t(nGen) : 1u);
    double sum = 0, opWaits = 0;
    for (const char *op :
         {"matmul_qkv", "matmul_o", "matmul_gate_up", "matmul_down", "matmul_other", "head",
          "embed", "norm", "quantize", "rope", "attention", "add", "act_mul"}) {
      ASSERT_TRUE(p["ops"].contains(op)) << op;
      const double ms = p["ops"][op].value("ms", -1.0);
      EXPECT_GE(ms, 0.0) << op;
      sum += ms;
      // The forward thread's waiting at the op's barriers is part of its time.
      const double waited = p["ops"][op].value("wait_ms", -1.0);
      EXPECT_GE(waited, 0.0) << op;
      EXPECT_LE(waited, ms + 1e-6) << op;
      opWaits += waited;
    }
    EXPECT_LE(opWaits, p.value("wait_ms", -1.0) + 1e-6);
    EXPECT_NEAR(sum, p.value("ops_ms", -1.0), 1e-6 * std::max(1.0, sum));
    EXPECT_LE(sum, wall);
    EXPECT_NEAR(p.value("other_ms", -1.0), wall - sum, 1e-3 + 1e-6 * wall);
    EXPECT_GE(p.value("wait_ms", -1.0), 0.0);
    // Waiting is summed over the region's threads (the pool's caller and
    // every barrier arrival), so with -t 2 it is bounded by twice the wall
    // time, not by thread 0's op time (a descheduled peer on a loaded
    // machine makes the other thread wait longer than its own ops ran).
    EXPECT_LE(p.value("wait_ms", -1.0), 2 * wall);
    // Every matmul has a role; each layer runs o and down once per call, the
    // head and the embedding once per call.
    EXPECT_EQ(p["ops"]["matmul_other"].value("calls", 99), 0);
    EXPECT_EQ(p["ops"]["matmul_o"].value("calls", uint64_t(0)), nLayer * calls);
    EXPECT_EQ(p["ops"]["matmul_down"].value("calls", uint64_t(0)), nLayer * calls);
    EXPECT_GE(p["ops"]["matmul_qkv"].value("calls", uint64_t(0)), nLayer * calls);
    EXPECT_GE(p["ops"]["matmul_gate_up"].value("calls", uint64_t(0)), nLayer * calls);
    EXPECT_EQ(p["ops"]["attention"].value("calls", uint64_t(0)), nLayer * calls);
    EXPECT_EQ(p["ops"]["head"].value("calls", uint64_t(0)), calls);
    EXPECT_EQ(p["ops"]["embed"].value("calls", uint64_t(0)), calls);
    EXPECT_GT(p["ops"]["norm"].value("calls", uint64_t(0)), 0u);
  }

  r = tern({"bench", artifactPath(), "--profile", "-p", "8", "-n", "2", "-r", "1"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("profile, prefill: 8 tokens"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("profile, decode: 2 tokens"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("GB/s achieved"), std::string::npos) << r.out;

  // The reference forward pass has no ukernels to time.
  r = tern({"bench", kFixture, "--reference", "--profile", "-p", "4", "-n", "1", "-r", "1"});
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("compiled artifact"), std::string::npos) << r.err;
}

} // namespace
} // namespace tern::exec
