// `tern chat` driven through stdin (in-process, --reference, --temp 0) on the
// tiny fixture model copied with a chat template put into its GGUF: the
// second turn feeds only its own tokens, the session then holds exactly the
// whole conversation's rendering, and the reply equals what a fresh session
// fed that whole rendering at once picks.
#include <filesystem>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>

#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "runtime/chat/chat.h"
#include "runtime/gguf/gguf.h"
#include "runtime/gguf/writer.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/chat/fixtures.h"
#include "tools/tern-synth/synth.h"
#include "tools/tern/cli.h"

namespace tern::chat {
namespace {

const std::string kModel = std::string(TERN_SHARED_DIR) + "/fixtures/models/tiny-bitnet-tq2.gguf";

struct Result {
  int rc;
  std::string out, err;
};

Result tern(const std::vector<std::string> &args, const std::string &stdinText = "",
            bool terminal = false) {
  std::istringstream in(stdinText);
  std::ostringstream out, err;
  const int rc = cli::ternMain(args, in, terminal, out, err);
  return {rc, out.str(), err.str()};
}

// The fixture model with tokenizer.chat_template = `text`, in the build tree.
std::string modelWithTemplate(const std::string &name, const std::string &text) {
  auto in = gguf::File::open(kModel);
  EXPECT_TRUE(in.ok()) << in.status();
  if (!in.ok())
    return "";
  gguf::Writer w((*in)->version());
  for (const gguf::KeyValue &kv : (*in)->metadata())
    w.set(kv.key, kv.value);
  for (const gguf::TensorInfo &t : (*in)->tensors())
    EXPECT_TRUE(
        w.addTensor(t.name, t.dims, t.typeId, std::vector<uint8_t>(t.data, t.data + t.minBytes))
            .ok());
  w.setString(std::string(kChatTemplateKey), text);
  std::filesystem::create_directories(TERN_TEST_OUT_DIR);
  const std::string path = std::string(TERN_TEST_OUT_DIR) + "/" + name + ".gguf";
  EXPECT_TRUE(w.writeFile(path).ok());
  return path;
}

std::vector<int32_t> parseIds(const std::string &s) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty())
      ids.push_back(std::stoi(item));
  return ids;
}

// --verbose-prompt's lines: per turn, the position of the first token fed and
// the ids fed; per reply, its ids.
struct Trace {
  std::vector<uint64_t> firstPos;
  std::vector<std::vector<int32_t>> fed, reply;
};
Trace parseTrace(const std::string &err) {
  Trace t;
  std::istringstream lines(err);
  std::string line;
  const std::regex turnRe(R"(^turn \d+: fed (\d+) tokens at positions (\d+)\.\.(\d+): ([\d,]*)$)");
  const std::regex replyRe(R"(^reply \d+: (\d+) tokens: ([\d,]*)$)");
  std::smatch m;
  while (std::getline(lines, line)) {
    if (std::regex_match(line, m, turnRe)) {
      t.firstPos.push_back(std::stoull(m[2]));
      t.fed.push_back(parseIds(m[4]));
      EXPECT_EQ(t.fed.back().size(), std::stoul(m[1])) << line;
    } else if (std::regex_match(line, m, replyRe)) {
      t.reply.push_back(parseIds(m[2]));
    }
  }
  return t;
}

tokenizer::Tokenizer fixtureTokenizer() {
  auto f = gguf::File::open(kModel);
  EXPECT_TRUE(f.ok());
  absl::StatusOr<tokenizer::Tokenizer> t = tokenizer::Tokenizer::fromGGUF(**f);
  EXPECT_TRUE(t.ok()) << t.status();
  return std::move(*t);
}

TEST(ChatCli, SecondTurnFeedsOnlyItsOwnTokens) {
  const std::string model =
      modelWithTemplate("chatml", testing::fixtureTemplate(TemplateKind::Chatml));
  const std::string u1 = "Hello there", u2 = "What comes next?";
  const int n = 6;
  Result r = tern(
      {"chat", model, "--reference", "--temp", "0", "-n", std::to_string(n), "--verbose-prompt"},
      u1 + "\n\n" + u2 + "\n");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("chat template: chatml (gguf)"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("> "), std::string::npos) << "no prompt marker without a terminal";
  const Trace tr = parseTrace(r.err);
  ASSERT_EQ(tr.fed.size(), 2u) << r.err; // the empty line is no turn
  ASSERT_EQ(tr.reply.size(), 2u) << r.err;
  const std::vector<int32_t> &f1 = tr.fed[0], &r1 = tr.reply[0], &f2 = tr.fed[1];
  ASSERT_FALSE(r1.empty());
  EXPECT_EQ(tr.firstPos[0], 0u);

  // Turn 2 starts where turn 1's reply left off: the reply's tokens were fed
  // as they were sampled, but the last (cut by -n) comes first in turn 2.
  size_t replyFed = r1.size();
  if (int(r1.size()) == n) {
    replyFed = r1.size() - 1;
    ASSERT_FALSE(f2.empty());
    EXPECT_EQ(f2.front(), r1.back());
  }
  EXPECT_EQ(tr.firstPos[1], f1.size() + replyFed);
  std::vector<int32_t> whole = f1;
  whole.insert(whole.end(), r1.begin(), r1.begin() + replyFed);
  whole.insert(whole.end(), f2.begin(), f2.end());

  // The session now holds the whole conversation as the template renders it.
  tokenizer::Tokenizer tok = fixtureTokenizer();
  std::vector<int32_t> body = whole;
  if (!body.empty() && body.front() == tok.bos())
    body.erase(body.begin());
  const std::vector<Message> conv = {
      {Role::User, u1}, {Role::Assistant, tok.decode(r1)}, {Role::User, u2}};
  RenderOptions ro = specialTokenText(tok);
  EXPECT_EQ(tok.decode(body), render(TemplateKind::Chatml, conv, ro));
  // Nothing was fed twice: the positions fed in all are those the session
  // holds (reply 2's last token is fed only when it ended at an
  // end-of-generation token).
  const size_t r2Fed = tr.reply[1].size() - (int(tr.reply[1].size()) == n ? 1 : 0);
  EXPECT_NE(r.err.find(fmt::format("session holds {} of", whole.size() + r2Fed)), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(fmt::format(", {} positions fed in all", whole.size() + r2Fed)),
            std::string::npos)
      << r.err;

  // A fresh session fed the whole conversation at once picks the same tokens.
  std::string ids;
  for (int32_t id : whole) {
    if (!ids.empty())
      ids += ',';
    ids += std::to_string(id);
  }
  Result e = tern({"eval", model, "--reference", "--tokens", ids, "--greedy", std::to_string(n),
                   "--json", "--top", "1"});
  ASSERT_EQ(e.rc, 0) << e.err;
  nlohmann::json j = nlohmann::json::parse(e.out);
  const std::vector<int32_t> &r2 = tr.reply[1];
  ASSERT_LE(r2.size(), j["steps"].size());
  for (size_t i = 0; i < r2.size(); ++i)
    EXPECT_EQ(j["steps"][i]["token"].get<int32_t>(), r2[i]) << "step " << i;
  if (int(r2.size()) < n) { // the reply ended at an end-of-generation token
    EXPECT_TRUE(tok.isEog(j["steps"][r2.size()]["token"].get<int32_t>()));
  }
}

// On the LLaMA-3 vocabulary (BitNet b1.58 2B4T's) with the 2B4T template in
// the GGUF, <|eot_id|> is one special token: the reply that ends with it
// (forced here by a logit bias) leaves it to be fed at the start of the next
// turn, and the session holds exactly the tokens of the whole conversation's
// rendering.
TEST(ChatCli, EndOfTurnTokenOnTheLlama3Vocabulary) {
  absl::StatusOr<synth::Config> cfg = synth::preset("tiny");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  cfg->vocabFrom = std::string(TERN_SHARED_DIR) + "/fixtures/vocab/llama3-vocab.gguf";
  absl::StatusOr<gguf::Writer> w = synth::makeWriter(*cfg);
  ASSERT_TRUE(w.ok()) << w.status();
  w->setString(std::string(kChatTemplateKey), testing::fixtureTemplate(TemplateKind::Bitnet));
  std::filesystem::create_directories(TERN_TEST_OUT_DIR);
  const std::string model = std::string(TERN_TEST_OUT_DIR) + "/llama3-vocab-2b4t-template.gguf";
  ASSERT_TRUE(w->writeFile(model).ok());

  const std::string u1 = "Hello!", u2 = "  And again  ";
  Result r =
      tern({"chat", model, "--reference", "--temp", "0", "--verbose-prompt", "-l", "128009+100"},
           u1 + "\n" + u2 + "\n");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("chat template: bitnet (gguf)"), std::string::npos) << r.err;
  const Trace tr = parseTrace(r.err);
  ASSERT_EQ(tr.fed.size(), 2u) << r.err;
  ASSERT_EQ(tr.reply.size(), 2u) << r.err;
  EXPECT_TRUE(tr.reply[0].empty());
  ASSERT_FALSE(tr.fed[1].empty());
  EXPECT_EQ(tr.fed[1].front(), 128009); // <|eot_id|>, sampled by turn 1
  EXPECT_EQ(tr.firstPos[1], tr.fed[0].size());
  std::vector<int32_t> whole = tr.fed[0];
  whole.insert(whole.end(), tr.fed[1].begin(), tr.fed[1].end());

  auto f = gguf::File::open(model);
  ASSERT_TRUE(f.ok());
  absl::StatusOr<tokenizer::Tokenizer> tok = tokenizer::Tokenizer::fromGGUF(**f);
  ASSERT_TRUE(tok.ok());
  const std::vector<Message> conv = {{Role::User, u1}, {Role::Assistant, ""}, {Role::User, u2}};
  EXPECT_EQ(whole, tokenizePrompt(*tok, render(TemplateKind::Bitnet, conv, specialTokenText(*tok)),
                                  /*startOfSession=*/true));
  EXPECT_EQ(whole.front(), tok->bos()); // one BOS, from the tokenizer (2B4T: add_bos)
}

TEST(ChatCli, TemplateSystemAndPromptMarker) {
  tokenizer::Tokenizer tok = fixtureTokenizer();
  // No template in the GGUF: BitNet b1.58 2B4T's, with the system message.
  Result r = tern({"chat", kModel, "--reference", "--temp", "0", "-n", "2", "--verbose-prompt",
                   "--system", "Be brief."},
                  "Hi\n", /*terminal=*/true);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("chat template: bitnet (default)"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.rfind("> ", 0), 0u) << r.out;
  Trace tr = parseTrace(r.err);
  ASSERT_EQ(tr.fed.size(), 1u) << r.err;
  std::vector<int32_t> body = tr.fed[0];
  if (!body.empty() && body.front() == tok.bos())
    body.erase(body.begin());
  const std::vector<Message> conv = {{Role::System, "Be brief."}, {Role::User, "Hi"}};
  EXPECT_EQ(tok.decode(body), render(TemplateKind::Bitnet, conv, specialTokenText(tok)));

  // --chat-template overrides.
  r = tern({"chat", kModel, "--reference", "--temp", "0", "-n", "1", "--verbose-prompt",
            "--chat-template", "llama3"},
           "Hi\n");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("chat template: llama3 (override)"), std::string::npos) << r.err;
  tr = parseTrace(r.err);
  ASSERT_EQ(tr.fed.size(), 1u);
  tokenizer::DecodeOptions special;
  special.renderSpecial = true; // llama3 writes the BOS text itself
  EXPECT_EQ(tok.decode(tr.fed[0], special),
            render(TemplateKind::Llama3, std::vector<Message>{{Role::User, "Hi"}},
                   specialTokenText(tok)));
}

TEST(ChatCli, ContextEndStopsOrShifts) {
  // 40 positions: the first turn fits, the reply runs into the end.
  Result r = tern({"chat", kModel, "--reference", "--temp", "0", "-c", "40", "--ignore-eos"},
                  "Hello\nAgain\n");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("context full (40 of 40 positions)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("1 turns"), std::string::npos) << r.err;
  // --context-shift: keeps going (two replies of 40 tokens in 64 positions).
  r = tern({"chat", kModel, "--reference", "--temp", "0", "-c", "64", "--ignore-eos", "-n", "40",
            "--context-shift"},
           "Hello\nAgain\n");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("context shift"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("2 turns, 80 reply tokens"), std::string::npos) << r.err;
  // A turn that cannot fit even after dropping everything but the kept
  // tokens: an error naming the context.
  r = tern({"chat", kModel, "--reference", "--temp", "0", "-c", "16", "--context-shift"},
           "Hello\n");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("context of 16"), std::string::npos) << r.err;
}

TEST(ChatCli, BadFlags) {
  struct Case {
    std::vector<std::string> args;
    const char *mentions;
  };
  for (const Case &c : std::vector<Case>{
           {{"chat", kModel, "--chat-template", "gemma"}, "--chat-template"},
           {{"chat", kModel, "--temp", "warm"}, "--temp"},
           {{"chat", kModel, "--top-p", "0"}, "--top-p"},
           {{"chat", kModel, "-n", "-2"}, "-n"},
           {{"chat", kModel, "--stop", ""}, "--stop"},
           {{"chat"}, "no model"},
       }) {
    Result r = tern(c.args, "Hi\n");
    EXPECT_EQ(r.rc, 2) << c.args.back() << "\n" << r.err;
    EXPECT_NE(r.err.find(c.mentions), std::string::npos) << r.err;
  }
}

} // namespace
} // namespace tern::chat
