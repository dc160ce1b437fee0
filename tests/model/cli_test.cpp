// Tests of the `tern` command line: help, flag errors, eval JSON shape, run
// output against the reference model.
#include <fstream>
#include <set>
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
                                                         {"chat", "--help"},
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
           {{"run", kTq2, "--tokens", "1", "--temp", "hot"}, "--temp: 'hot' is not a number"},
           {{"run", kTq2, "--tokens", "1", "--temp", "inf"}, "--temp"},
           {{"run", kTq2, "--tokens", "1", "--top-k", "-1"}, "--top-k"},
           {{"run", kTq2, "--tokens", "1", "--top-p", "1.5"}, "--top-p"},
           {{"run", kTq2, "--tokens", "1", "--top-p", "0"}, "--top-p must be in (0, 1]"},
           {{"run", kTq2, "--tokens", "1", "--min-p", "-0.1"}, "--min-p"},
           {{"run", kTq2, "--tokens", "1", "--repeat-penalty", "0"}, "--repeat-penalty"},
           {{"run", kTq2, "--tokens", "1", "--repeat-last-n", "-2"}, "--repeat-last-n"},
           {{"run", kTq2, "--tokens", "1", "--presence-penalty", "x"}, "--presence-penalty"},
           {{"run", kTq2, "--tokens", "1", "--frequency-penalty", "nan"}, "--frequency-penalty"},
           {{"run", kTq2, "--tokens", "1", "-l", "5x"}, "-l '5x'"},
           {{"run", kTq2, "--tokens", "1", "--logit-bias", "5+inf"}, "+inf"},
           {{"run", kTq2, "--tokens", "1", "--logit-bias", "99999+1"}, "outside the vocabulary"},
           {{"run", kTq2, "--tokens", "1", "--seed", "-2"}, "--seed"},
           {{"run", kTq2, "--tokens", "1", "-r", ""}, "-r: the text is empty"},
           {{"run", kTq2, "--tokens", "1", "-n", "-2"}, "-n"},
           {{"run", kTq2, "--tokens", "1", "--keep", "x"}, "--keep"},
           {{"run", kTq2, "--tokens", "1,2,3,4,5", "-c", "4"}, "the prompt has 5 tokens"},
           {{"eval", kTq2, "--tokens", "1", "--n-probs", "many"}, "--n-probs"},
           {{"eval", kTq2, "--tokens", "1", "--temp", "1", "--top-p", "2"}, "--top-p"},
           {{"bench", "--sampling", kTq2}, "--sampling"},
           {{"bench", kTq2, "--vocab", "10"}, "--vocab"},
           {{"bench", kTq2, "--min-time", "1"}, "--min-time applies to --sampling only"},
           {{"bench", "--sampling", "--vocab", "0"}, "--vocab"},
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

// `tern run --temp 0` prints the reference's greedy continuation; --seed
// changes nothing (greedy decoding), and so does the thread count.
TEST(Cli, RunGeneratesFromTokens) {
  const std::string want = referenceContinuation(kTq2, {354, 111, 150}, 5);
  ASSERT_GT(want.size(), 1u);
  for (auto extra : std::vector<std::vector<std::string>>{{"--temp", "0", "--seed", "7"},
                                                          {"--temp=0", "-s", "8"},
                                                          {"--temp", "0", "-t", "2"},
                                                          {"--temp", "-1", "--top-k", "1"}}) {
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

// Sampling: a seed gives the same tokens every time (whatever -t); without
// one the seed is random, printed, and reproduces the run when passed back.
TEST(Cli, RunSamplesWithASeed) {
  const std::vector<std::string> base = {"run",         kTq2, "--reference", "--tokens",
                                         "354,111,150", "-n", "12",          "--ignore-eos"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return run(args);
  };
  Result a = with({"--seed", "5"}), b = with({"--seed", "5", "-t", "2"});
  ASSERT_EQ(a.rc, 0) << a.err;
  ASSERT_EQ(b.rc, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.err.find("seed:"), std::string::npos) << "a given seed is not printed";
  Result r = with({});
  ASSERT_EQ(r.rc, 0) << r.err;
  const size_t at = r.err.find("seed: ");
  ASSERT_NE(at, std::string::npos) << r.err;
  const std::string seed = r.err.substr(at + 6, r.err.find('\n', at) - at - 6);
  EXPECT_EQ(with({"--seed", seed}).out, r.out);
  // Greedy prints no seed; different seeds give different text (over 12
  // tokens of a near-uniform tiny model, five seeds never all agree).
  EXPECT_EQ(with({"--temp", "0"}).err.find("seed:"), std::string::npos);
  std::set<std::string> outs;
  for (const char *s : {"1", "2", "3", "4", "5"})
    outs.insert(with({"--seed", s}).out);
  EXPECT_GT(outs.size(), 1u);
  // A banned token never appears: -l 111-inf on every step (greedy).
  Result banned = run({"eval", kTq2, "--tokens", "354,111,150", "--greedy", "6", "--json", "--temp",
                       "0", "-l", "111-inf", "--logit-bias", "150-inf"});
  ASSERT_EQ(banned.rc, 0) << banned.err;
  const nlohmann::json bannedJson = nlohmann::json::parse(banned.out);
  for (const auto &st : bannedJson["steps"]) {
    EXPECT_NE(st["token"], 111);
    EXPECT_NE(st["token"], 150);
  }
}

// The end of the context: a notice and exit 0 (not an error after the
// text); --context-shift keeps generating.
TEST(Cli, RunStopsOrShiftsAtTheEndOfTheContext) {
  Result r = run({"run", kTq2, "--reference", "--tokens", "354,111,150", "-n", "100000", "-c", "64",
                  "--temp", "0", "--ignore-eos"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("context full (64 of 64 positions)"), std::string::npos) << r.err;
  // 61 tokens fed after the 3 of the prompt, and the last one sampled.
  EXPECT_NE(r.err.find("generated: 62 tokens"), std::string::npos) << r.err;
  Result s = run({"run", kTq2, "--reference", "--tokens", "354,111,150", "-n", "150", "-c", "64",
                  "--temp", "0", "--ignore-eos", "--context-shift", "--keep", "-1"});
  ASSERT_EQ(s.rc, 0) << s.err;
  EXPECT_NE(s.err.find("context shift: kept 3"), std::string::npos) << s.err;
  EXPECT_NE(s.err.find("generated: 150 tokens"), std::string::npos) << s.err;
  // Up to the first shift, the same tokens as without one.
  const std::string full = r.out.substr(0, r.out.size() - 1);
  EXPECT_EQ(s.out.substr(0, full.size()), full);
}

// eval: --n-probs is --top; --top-k is the sampling chain's (a note when it
// cannot matter); --temp > 0 samples, reproducibly with --seed.
TEST(Cli, EvalProbsAndSampling) {
  Result a = run({"eval", kTq2, "--tokens", "354,111", "--greedy", "2", "--json", "--top", "3"});
  Result b =
      run({"eval", kTq2, "--tokens", "354,111", "--greedy", "2", "--json", "--n-probs", "3"});
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  Result k = run({"eval", kTq2, "--tokens", "354,111", "--greedy", "2", "--json", "--top", "3",
                  "--top-k", "7"});
  ASSERT_EQ(k.rc, 0) << k.err;
  EXPECT_EQ(k.out, a.out);
  EXPECT_NE(k.err.find("--top-k is the sampling chain's top-k"), std::string::npos) << k.err;
  std::vector<std::string> sampled = {"eval", kTq2,     "--tokens", "354,111", "--greedy",
                                      "8",    "--json", "--temp",   "1.5",     "--top-k",
                                      "0",    "--seed", "3"};
  Result s1 = run(sampled), s2 = run(sampled);
  ASSERT_EQ(s1.rc, 0) << s1.err;
  EXPECT_EQ(s1.out, s2.out);
  // The listed probabilities stay the model's own: step 0 as in greedy.
  EXPECT_EQ(nlohmann::json::parse(s1.out)["steps"][0]["top"][0],
            nlohmann::json::parse(a.out)["steps"][0]["top"][0]);
}

// tern bench --sampling: the JSON keys the issue names.
TEST(Cli, BenchSampling) {
  Result r = run({"bench", "--sampling", "--json", "--vocab", "4096", "--min-time", "0.01"});
  ASSERT_EQ(r.rc, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["chain_samples_per_s"].get<double>(), 0);
  EXPECT_GT(j["greedy_samples_per_s"].get<double>(), 0);
  EXPECT_EQ(j["vocab"], 4096);
  EXPECT_LE(j["chain_samples_per_s"].get<double>(), j["default_chain_samples_per_s"].get<double>());
  EXPECT_LE(j["chain_samples_per_s"].get<double>(), j["top_k0_chain_samples_per_s"].get<double>());
  Result t = run({"bench", "--sampling", "--vocab", "4096", "--min-time", "0.01"});
  ASSERT_EQ(t.rc, 0) << t.err;
  EXPECT_NE(t.out.find("greedy"), std::string::npos) << t.out;
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
                  "-p", "once upon a time", "-n", "6", "-t", "2", "--seed", "1"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.rfind("once upon a time", 0), 0u) << r.out;
  EXPECT_GT(r.out.size(), std::string("once upon a time").size());
}

} // namespace
} // namespace tern::cli
#endif
