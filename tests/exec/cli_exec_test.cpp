// `tern eval/run/bench` on a .tern, and `--compile` through the artifact
// cache with a stand-in ternc (a shell script copying a prebuilt artifact).
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "nlohmann/json.hpp"
#include "runtime/artifact/artifact.h"
#include "runtime/exec/compile_cache.h"
#include "runtime/support/status.h"
#include "tests/artifact/test_util.h"
#include "tools/tern/cli.h"
#include "gtest/gtest.h"

namespace tern::cli {
namespace {

namespace fs = std::filesystem;
namespace at = artifact::testing;

struct Result {
  int rc;
  std::string out, err;
};
Result run(std::vector<std::string> args) {
  std::ostringstream out, err;
  int rc = ternMain(args, out, err);
  return {rc, out.str(), err.str()};
}

class CliExec : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("cli_exec_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    tern_ = (dir_ / "tiny.tern").string();
    ASSERT_TRUE(at::tinyWriter(TINY_MODEL_SO).write(tern_).ok());
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::string tern_;
};

TEST_F(CliExec, EvalRunBenchOnArtifact) {
  Result r = run({"eval", tern_, "--tokens", "1,2,3", "--json", "--greedy", "3"});
  ASSERT_EQ(r.rc, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["steps"].size(), 3u);
  r = run({"run", tern_, "--tokens", "1,2", "-n", "4", "--ignore-eos"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("ukernels run: tern_uk_lm_head_f16_ref x1, tern_uk_matmul_i2s_ref x2"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("tokens/s"), std::string::npos);
  r = run({"bench", tern_, "--json", "-p", "8", "-n", "4", "-r", "1", "-t", "2"});
  ASSERT_EQ(r.rc, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["path"], "compiled");
  EXPECT_EQ(j["threads"], 2);
  EXPECT_GT(j["pp_tokens_per_s"].get<double>(), 0);
  EXPECT_GT(j["tg_tokens_per_s"].get<double>(), 0);
  EXPECT_EQ(j["kernels"]["tern_uk_matmul_i2s_ref"], 2);
  r = run({"bench", tern_, "-p", "8", "-n", "4", "-r", "1"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("decode"), std::string::npos);
  r = run({"eval", tern_, "--tokens", "1", "--act-quant", "none"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("compiled with --act-quant token"), std::string::npos) << r.err;
  r = run({"eval", tern_, "--tokens", "1", "--act-quant", "token"});
  EXPECT_EQ(r.rc, 0) << r.err;
  r = run({"eval", tern_, "--tokens", "1", "--compile"});
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("already compiled"), std::string::npos) << r.err;
}

// --no-mmap and --mlock change where the weights live, never the numbers.
TEST_F(CliExec, WeightsMemoryModesGiveTheSameLogits) {
  Result base = run({"eval", tern_, "--tokens", "1,2,3", "--json"});
  ASSERT_EQ(base.rc, 0) << base.err;
  for (const char *flag : {"--no-mmap", "--mlock"}) {
    Result r = run({"eval", tern_, "--tokens", "1,2,3", "--json", flag});
    if (std::string(flag) == "--mlock" && r.rc != 0 &&
        r.err.find("cannot lock") != std::string::npos)
      continue; // unprivileged, small `ulimit -l`: the error names the flag
    ASSERT_EQ(r.rc, 0) << flag << ": " << r.err;
    EXPECT_EQ(r.out, base.out) << flag;
  }
}

TEST_F(CliExec, NoVerifyWeightsSkipsOnlyTheWeightsHash) {
  auto a = artifact::Artifact::open(tern_);
  ASSERT_TRUE(a.ok());
  uint64_t weightsAt = 0, codeAt = 0;
  for (const tern_artifact_section &s : (*a)->sections()) {
    if (s.kind == TERN_SECTION_WEIGHTS)
      weightsAt = s.offset;
    if (s.kind == TERN_SECTION_CODE)
      codeAt = s.offset;
  }
  a->reset();
  auto corrupt = [&](uint64_t at, const std::string &name) {
    const std::string path = (dir_ / name).string();
    fs::copy_file(tern_, path);
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(at + 8));
    f.put('\x7e');
    return path;
  };
  const std::string w = corrupt(weightsAt, "w.tern"), c = corrupt(codeAt, "c.tern");
  Result r = run({"eval", w, "--tokens", "1"});
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("weights"), std::string::npos) << r.err;
  r = run({"eval", w, "--tokens", "1", "--no-verify-weights"});
  EXPECT_EQ(r.rc, 0) << r.err;
  r = run({"eval", c, "--tokens", "1", "--no-verify-weights"});
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("code"), std::string::npos) << r.err;
}

TEST_F(CliExec, CompileGoesThroughTheCache) {
  // A stand-in ternc: prints a version, "compiles" by copying tiny.tern.
  const fs::path fake = dir_ / "ternc";
  const fs::path counter = dir_ / "calls";
  {
    std::ofstream f(fake);
    f << "#!/bin/sh\n"
         "if [ \"$1\" = --version ]; then echo 'ternc fake 1'; exit 0; fi\n"
         "echo \"fake ternc: $*\" >&2\n"
         "echo x >> '"
      << counter.string()
      << "'\n"
         "out=\"\"; prev=\"\"\n"
         "for a in \"$@\"; do if [ \"$prev\" = -o ]; then out=\"$a\"; fi; prev=\"$a\"; done\n"
         "cp '"
      << tern_ << "' \"$out\"\n";
  }
  fs::permissions(fake, fs::perms::owner_all);
  const fs::path gguf = dir_ / "model.gguf";
  {
    std::ofstream(gguf) << "not really a gguf; the fake compiler ignores it";
  }
  ::setenv("TERNC", fake.c_str(), 1);
  ::setenv("TERN_CACHE_DIR", (dir_ / "cache").c_str(), 1);
  auto calls = [&] {
    std::ifstream f(counter);
    return std::count(std::istreambuf_iterator<char>(f), {}, 'x');
  };
  Result r = run({"eval", gguf.string(), "--compile", "--tokens", "1,2", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(calls(), 1);
  // (ternc's own output goes straight to the process's stderr.)
  EXPECT_NE(r.err.find("tern: compiling:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--target native"), std::string::npos) << r.err;
  r = run({"eval", gguf.string(), "--compile", "--tokens", "1,2", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(calls(), 1) << "second run must reuse the cache";
  EXPECT_NE(r.err.find("using cached"), std::string::npos) << r.err;
  // Other flags, other key.
  r = run({"eval", gguf.string(), "--compile", "--kernel", "ref", "--tokens", "1"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(calls(), 2);
  EXPECT_NE(r.err.find("--kernel ref"), std::string::npos) << r.err;
  // A changed GGUF is a new key.
  {
    std::ofstream(gguf, std::ios::app) << "!";
  }
  r = run({"eval", gguf.string(), "--compile", "--tokens", "1"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(calls(), 3);
  // A corrupt cache entry is rebuilt.
  for (const auto &e : fs::directory_iterator(dir_ / "cache")) {
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(3);
    f.put('Z');
  }
  r = run({"eval", gguf.string(), "--compile", "--tokens", "1"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(calls(), 4);
  // A rebuilt compiler (same --version line, other executable) never reuses
  // the artifacts of the old one.
  {
    std::ofstream(fake, std::ios::app) << "# rebuilt\n";
  }
  r = run({"eval", gguf.string(), "--compile", "--tokens", "1"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(calls(), 5) << r.err;
  // A failing compiler is a clear error.
  ::setenv("TERNC", "/bin/false", 1);
  r = run({"eval", (dir_ / "other.gguf").string(), "--compile", "--tokens", "1"});
  EXPECT_NE(r.rc, 0);
  ::unsetenv("TERNC");
  ::unsetenv("TERN_CACHE_DIR");
}

// `tern bench --parallel N`: N sessions decode in shared forward calls (one
// call per step with one token of each), reported as aggregate and
// per-session tokens/s.
TEST_F(CliExec, BenchParallelReportsAggregateAndPerSession) {
  Result r = run({"bench", tern_, "--json", "-p", "5", "-n", "6", "-r", "1", "--parallel", "3"});
  ASSERT_EQ(r.rc, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["parallel"], 3);
  ASSERT_TRUE(j["aggregate_tg_tokens_per_s"].is_number());
  EXPECT_GT(j["aggregate_tg_tokens_per_s"].get<double>(), 0);
  ASSERT_TRUE(j["per_session_tg_tokens_per_s"].is_array());
  ASSERT_EQ(j["per_session_tg_tokens_per_s"].size(), 3u);
  double sum = 0;
  for (const auto &v : j["per_session_tg_tokens_per_s"]) {
    EXPECT_GT(v.get<double>(), 0);
    sum += v.get<double>();
  }
  EXPECT_NEAR(sum, j["aggregate_tg_tokens_per_s"].get<double>(), 1e-6 * sum);
  r = run({"bench", tern_, "-p", "5", "-n", "6", "-r", "1", "-np", "2"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("parallel decode: 2 sessions"), std::string::npos) << r.out;
  // Without --parallel: no parallel keys.
  r = run({"bench", tern_, "--json", "-p", "5", "-n", "2", "-r", "1"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_FALSE(nlohmann::json::parse(r.out).contains("aggregate_tg_tokens_per_s"));
}

// `tern bench A --versus B`: both models' prompts and decode steps
// alternated in the same repetitions; each side's medians and B / A per
// repetition. Wrong combinations and a missing B are errors naming them.
TEST_F(CliExec, BenchVersusAlternatesTwoModels) {
  Result r = run({"bench", tern_, "--versus", tern_, "--json", "-p", "4", "-n", "3", "-r", "3"});
  ASSERT_EQ(r.rc, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.contains("versus")) << r.out;
  const nlohmann::json &v = j["versus"];
  EXPECT_EQ(v["a"]["model"], tern_);
  EXPECT_EQ(v["b"]["model"], tern_);
  for (const char *side : {"a", "b"}) {
    EXPECT_GT(v[side]["pp_tokens_per_s"].get<double>(), 0) << side;
    EXPECT_GT(v[side]["tg_tokens_per_s"].get<double>(), 0) << side;
  }
  for (const char *key : {"pp_b_over_a_runs", "tg_b_over_a_runs"}) {
    ASSERT_TRUE(v[key].is_array()) << key;
    ASSERT_EQ(v[key].size(), 3u) << key;
    std::vector<double> runs;
    for (const auto &x : v[key])
      runs.push_back(x.get<double>());
    std::sort(runs.begin(), runs.end());
    const std::string agg = std::string(key).substr(0, 2) + "_b_over_a";
    EXPECT_GT(runs[0], 0) << key;
    EXPECT_DOUBLE_EQ(v[agg]["median"].get<double>(), runs[1]) << agg;
    EXPECT_DOUBLE_EQ(v[agg]["min"].get<double>(), runs[0]) << agg;
    EXPECT_DOUBLE_EQ(v[agg]["max"].get<double>(), runs[2]) << agg;
  }
  r = run({"bench", tern_, "--versus", tern_, "-p", "4", "-n", "2", "-r", "2"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("decode: 2 tokens: A "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("B / A "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ukernels run, B: "), std::string::npos) << r.out;

  for (const char *flag : {"--profile", "--parallel"}) {
    std::vector<std::string> args = {"bench", tern_, "--versus", tern_, flag};
    if (std::string(flag) == "--parallel")
      args.push_back("2");
    r = run(args);
    EXPECT_EQ(r.rc, 2) << flag;
    EXPECT_NE(r.err.find(std::string(flag) + " and --versus"), std::string::npos) << r.err;
  }
  const std::string missing = (dir_ / "missing.tern").string();
  r = run({"bench", tern_, "--versus", missing, "-p", "4", "-n", "1", "-r", "1"});
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("bench --versus"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("missing.tern"), std::string::npos) << r.err;
}

} // namespace
} // namespace tern::cli
