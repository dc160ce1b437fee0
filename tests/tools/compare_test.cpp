// `tern compare GOLDEN RESULTS` (tools/tern/compare_cmd.cpp): the fixtures'
// rule applied to `tern eval --json` output read from files, its exit codes
// and its refusals.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "nlohmann/json.hpp"
#include "tools/tern/cli.h"
#include "gtest/gtest.h"

namespace tern::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Result {
  int rc;
  std::string out, err;
};
Result compare(std::vector<std::string> args) {
  args.insert(args.begin(), "compare");
  std::ostringstream out, err;
  const int rc = ternMain(args, out, err);
  return {rc, out.str(), err.str()};
}

std::string write(const std::string &name, const std::string &text) {
  const fs::path dir = fs::path(TERN_TEST_OUT_DIR) / "compare";
  fs::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}

// One entry over a 4-token vocabulary: steps of (pick, distribution).
json entry(std::vector<int> input, std::vector<std::pair<int, std::vector<double>>> steps,
           size_t topN) {
  json e = {{"prompt", nullptr}, {"tokens", input}, {"input", input}};
  json js = json::array();
  for (const auto &[pick, probs] : steps) {
    std::vector<int> ids = {0, 1, 2, 3};
    std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) { return probs[a] > probs[b]; });
    json top = json::array();
    for (size_t i = 0; i < topN && i < ids.size(); ++i)
      top.push_back({ids[i], probs[size_t(ids[i])]});
    js.push_back({{"token", pick}, {"top", top}});
  }
  e["steps"] = js;
  return e;
}

std::string jsonLines(const std::vector<json> &entries) {
  std::string s;
  for (const json &e : entries)
    s += e.dump() + "\n";
  return s;
}

const std::vector<double> kA = {0.6, 0.3, 0.08, 0.02}, kB = {0.1, 0.7, 0.15, 0.05};

TEST(TernCompare, EqualResultsPassAsLinesOrArray) {
  const std::vector<json> g = {entry({354, 1}, {{0, kA}, {1, kB}}, 2),
                               entry({354, 2, 3}, {{1, kB}, {0, kA}}, 2)};
  const std::string golden = write("golden.json", json(g).dump());
  const std::vector<json> ours = {entry({354, 1}, {{0, kA}, {1, kB}}, 4),
                                  entry({354, 2, 3}, {{1, kB}, {0, kA}}, 4)};
  Result r = compare({golden, write("ours.jsonl", jsonLines(ours))});
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("ok 2/2 entries"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("entry 1 (3 input tokens): 2 steps compared"), std::string::npos) << r.out;
  r = compare({golden, write("ours-array.json", json(ours).dump(1)), "--brief"});
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("entry 0"), std::string::npos) << r.out; // --brief: the summary only
}

TEST(TernCompare, ProbabilityBeyondToleranceIsAMismatch) {
  const std::string golden =
      write("golden1.json", json({entry({354}, {{0, kA}, {1, kB}}, 2)}).dump());
  std::vector<double> off = kB;
  off[1] -= 0.06, off[3] += 0.06;
  const std::string ours = write("off.jsonl", jsonLines({entry({354}, {{0, kA}, {1, off}}, 4)}));
  Result r = compare({golden, ours, "--tolerance", "0.05"});
  EXPECT_EQ(r.rc, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("MISMATCH 0/1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("max dp 0.06000 at step 1"), std::string::npos) << r.out;
  r = compare({golden, ours, "--tolerance", "0.07"});
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
}

TEST(TernCompare, PartedPickIsAnErrorOnlyBeyondTheGap) {
  const std::vector<double> close = {0.41, 0.39, 0.1, 0.1}, mine = {0.39, 0.41, 0.1, 0.1};
  const std::string golden =
      write("golden2.json", json({entry({354}, {{0, close}, {0, kA}}, 2)}).dump());
  const std::string ours = write("parted.jsonl", jsonLines({entry({354}, {{1, mine}}, 4)}));
  // Fewer steps computed than the golden holds is a mismatch, a parting or
  // not (compareWithGolden's rule).
  Result r = compare({golden, ours, "--gap", "0.05"});
  EXPECT_EQ(r.rc, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("1 steps computed, golden has 2"), std::string::npos) << r.out;
  const std::string ours2 =
      write("parted2.jsonl", jsonLines({entry({354}, {{1, mine}, {0, kA}}, 4)}));
  r = compare({golden, ours2, "--gap", "0.05"});
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("picks part at step 0 (golden margin 0.0200)"), std::string::npos) << r.out;
  r = compare({golden, ours2, "--gap", "0.01"});
  EXPECT_EQ(r.rc, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("picked 1 but golden picked 0"), std::string::npos) << r.out;
}

TEST(TernCompare, ResultsThatCannotBeComparedAreRefused) {
  const std::string golden = write("golden3.json", json({entry({354}, {{0, kA}}, 3)}).dump());
  // Only the top 2 listed: the golden's third id has no probability.
  Result r = compare({golden, write("short.jsonl", jsonLines({entry({354}, {{0, kA}}, 2)}))});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("no probability for the golden's id 2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--top"), std::string::npos) << r.err;
  r = compare({golden, write("other-input.jsonl", jsonLines({entry({354, 9}, {{0, kA}}, 4)}))});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("another input"), std::string::npos) << r.err;
  r = compare({golden, write("two.jsonl",
                             jsonLines({entry({354}, {{0, kA}}, 4), entry({354}, {{0, kA}}, 4)}))});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("holds 2 entries"), std::string::npos) << r.err;
  r = compare({golden, write("garbage.jsonl", "{\"tokens\": [1]\nnot json\n")});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("line 1"), std::string::npos) << r.err;
  r = compare({golden, "/nonexistent/results.jsonl"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("/nonexistent/results.jsonl"), std::string::npos) << r.err;
  r = compare({golden});
  EXPECT_EQ(r.rc, 2);
  r = compare({golden, golden, "--tolerance", "2"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--tolerance"), std::string::npos) << r.err;
}

} // namespace
} // namespace tern::cli
