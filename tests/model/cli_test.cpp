// Tests of the `tern` command line: help, flag errors, eval JSON shape, run
// output against the reference model.
#include <fstream>
#include <sstream>
#include <string>

#include "nlohmann/json.hpp"
#include "runtime/model/eval.h"
#include "runtime/model/model.h"
#include "tools/tern/cli.h"
#include "gtest/gtest.h"
#ifdef TERN_HAVE_TOKENIZER
#include "runtime/tokenizer/tokenizer.h"
#endif

namespace tern::cli {
namespace {

const std::string kTq2 = std::string(TERN_SHARED_DIR) + "/fixtures/models/tiny-bitnet-tq2.gguf";

struct Result {
  int rc;
  std::string out, err;
};

Result run(std::vector<std::string> args) {
  std::ostringstream out, err;
  int rc = ternMain(args, out, err);
  return {rc, out.str(), err.str()};
}

TEST(Cli, HelpEverywhere) {
  for (auto args : std::vector<std::vector<std::string>>{{"--help"},
                                                         {"help"},
                                                         {"eval", "--help"},
                                                         {"run", "--help"},
                                                         {"eval", "-h"},
                                                         {"bench", "--help"},
                                                         {"run", kTq2, "--tokens", "1", "-h"}}) {
    Result r = run(args);
    EXPECT_EQ(r.rc, 0) << args[0];
    EXPECT_NE(r.out.find("usage"), std::string::npos) << r.out;
  }
}

TEST(Cli, BadFlagsFailWithAMessage) {
  struct Case {
    std::vector<std::string> args;
    const char *mentions;
  };
  for (const Case &c : std::vector<Case>{
           {{}, "usage"},
           {{"frobnicate"}, "frobnicate"},
           {{"eval", kTq2, "--tokens", "1,2", "--bogus"}, "--bogus"},
           {{"eval", kTq2, "--tokens", "1,x"}, "--tokens"},
           {{"eval", kTq2, "--tokens", "1", "--act-quant", "int4"}, "--act-quant"},
           {{"eval", kTq2, "--tokens", "1", "--greedy"}, "--greedy"},
           {{"eval", kTq2, "--tokens", "1", "-t", "-3"}, "-t"},
           {{"eval", kTq2, "--tokens", "1", "--json=yes"}, "--json"},
           {{"eval", kTq2, "--tokens", "1", "--kernel", "avx9"}, "--kernel"},
           {{"eval", kTq2}, "--tokens"},
           {{"eval", "--tokens", "1"}, "model"},
           {{"eval", "/nonexistent.gguf", "--tokens", "1"}, "nonexistent"},
           {{"eval", kTq2, "--tokens", "999"}, "999"},
           {{"run", kTq2}, "-p"},
           {{"run", kTq2, "--tokens", "1", "-n", "many"}, "-n"},
           {{"run", kTq2, "--tokens", "1", "-p", "hello"}, "one prompt"},
           {{"eval", kTq2, "--tokens", "1", "--i2s-layout", "sideways"}, "--i2s-layout"},
           {{"eval", kTq2, kTq2, "--tokens", "1"}, "unexpected argument"},
           {{"eval", kTq2, "--tokens", "1", "--top-kk", "3"}, "did you mean '--top-k'"},
           {{"bench", kTq2, "-r", "0"}, "-r: 0 is out of range"},
       }) {
    Result r = run(c.args);
    std::string joined;
    for (const auto &a : c.args)
      joined += a + " ";
    EXPECT_NE(r.rc, 0) << joined;
    EXPECT_NE(r.err.find(c.mentions), std::string::npos) << joined << "\n" << r.err;
  }
}

TEST(Cli, ActQuantQ8K) {
  Result h = run({"eval", "--help"});
  EXPECT_NE(h.out.find("q8k"), std::string::npos) << h.out;
  Result r = run(
      {"eval", kTq2, "--tokens", "354,111,150", "--greedy", "2", "--json", "--act-quant", "q8k"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("\"steps\""), std::string::npos) << r.out;
  Result bad = run({"eval", kTq2, "--tokens", "1", "--act-quant", "q8"});
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.err.find("q8k"), std::string::npos) << bad.err;
}

TEST(Cli, EvalTokensPrintsGoldenShapedJson) {
  Result r = run({"eval", kTq2, "--tokens", "354,111,150", "--tokens=354,120", "--greedy", "3",
                  "--top=4", "--json", "-t", "2", "--act-quant=token"});
  ASSERT_EQ(r.rc, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    EXPECT_TRUE(j["prompt"].is_null());
    EXPECT_EQ(j["input"], j["tokens"]); // --tokens feeds exactly those ids
    ASSERT_EQ(j["steps"].size(), 3u);
    for (const auto &s : j["steps"]) {
      ASSERT_EQ(s["top"].size(), 4u);
      EXPECT_EQ(s["token"], s["top"][0][0]);
      EXPECT_GE(s["top"][0][1].get<double>(), s["top"][1][1].get<double>());
    }
    ++n;
  }
  EXPECT_EQ(n, 2);
  EXPECT_EQ(nlohmann::json::parse(r.out.substr(0, r.out.find('\n')))["input"],
            nlohmann::json({354, 111, 150}));
}

// What `tern run --tokens IDS -n N` must print for the reference path: the
// reference model's greedy continuation of IDS (stopping before an
// end-of-generation token), detokenized where the build has a tokenizer.
std::string referenceContinuation(const std::string &path, const std::vector<int32_t> &ids, int n) {
  absl::StatusOr<std::unique_ptr<model::Model>> m = model::openReferenceModel(path, {});
  EXPECT_TRUE(m.ok()) << m.status();
  if (!m.ok())
    return "";
  model::GreedyOptions go;
  go.steps = n;
  go.topK = 1;
  absl::StatusOr<std::vector<model::EvalStep>> steps = model::greedyEval(**m, ids, go);
  EXPECT_TRUE(steps.ok()) << steps.status();
  if (!steps.ok())
    return "";
  std::string text;
#ifdef TERN_HAVE_TOKENIZER
  absl::StatusOr<tokenizer::Tokenizer> tok = tokenizer::Tokenizer::fromGGUF(*(*m)->ggufFile());
  EXPECT_TRUE(tok.ok()) << tok.status();
  if (!tok.ok())
    return "";
  tokenizer::StreamDecoder stream(*tok);
  for (const model::EvalStep &s : *steps) {
    if (tok->isEog(s.token))
      break;
    text += stream.push(s.token);
  }
  text += stream.flush();
#else
  const model::ModelConfig &cfg = (*m)->config();
  for (const model::EvalStep &s : *steps) {
    if (s.token == cfg.eosId || s.token == cfg.eotId)
      break;
    text += " " + std::to_string(s.token);
  }
#endif
  return text + "\n";
}

// `tern run` prints the reference's greedy continuation; --seed changes
// nothing (greedy decoding), and so does the thread count.
TEST(Cli, RunGeneratesFromTokens) {
  const std::string want = referenceContinuation(kTq2, {354, 111, 150}, 5);
  ASSERT_GT(want.size(), 1u);
  for (auto extra : std::vector<std::vector<std::string>>{
           {"--seed", "7"}, {"-s", "8"}, {"--seed=7", "-t", "2"}}) {
    std::vector<std::string> args = {"run", kTq2, "--reference", "--tokens", "354,111,150",
                                     "-n",  "5"};
    args.insert(args.end(), extra.begin(), extra.end());
    Result r = run(args);
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, want) << extra[0];
    EXPECT_NE(r.err.find("generated: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << r.err;
  }
}

} // namespace
} // namespace tern::cli

#ifdef TERN_HAVE_TOKENIZER
namespace tern::cli {
namespace {

// `tern eval --prompt` tokenizes like llama.cpp did for the goldens (BOS
// from the metadata) and its greedy picks agree with the golden's.
TEST(Cli, EvalPromptMatchesGoldenInputs) {
  const std::string fixtures = std::string(TERN_SHARED_DIR) + "/fixtures";
  std::ifstream in(fixtures + "/golden/tiny-bitnet-f16.json");
  nlohmann::json golden = nlohmann::json::parse(in);
  for (const auto &g : golden) {
    Result r =
        run({"eval", fixtures + "/models/tiny-bitnet-f16.gguf", "--prompt",
             g["prompt"].get<std::string>(), "--greedy", "1", "--json", "--act-quant", "none"});
    ASSERT_EQ(r.rc, 0) << r.err;
    nlohmann::json j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["prompt"], g["prompt"]);
    EXPECT_EQ(j["tokens"], g["tokens"]);
    EXPECT_EQ(j["input"], g["input"]);
    EXPECT_EQ(j["steps"][0]["token"], g["steps"][0]["token"]);
    // Keys in the goldens' order.
    EXPECT_EQ(r.out.rfind("{\"prompt\":", 0), 0u) << r.out;
  }
}

TEST(Cli, RunPrintsPromptAndContinuation) {
  Result r = run({"run", std::string(TERN_SHARED_DIR) + "/fixtures/models/tiny-bitnet-tq2.gguf",
                  "-p", "once upon a time", "-n", "6", "-t", "2"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.rfind("once upon a time", 0), 0u) << r.out;
  EXPECT_GT(r.out.size(), std::string("once upon a time").size());
}

} // namespace
} // namespace tern::cli
#endif
