// Chat templates inside GGUF files: a fixture model (and the LLaMA-3
// vocabulary) copied key by key and tensor by tensor with the gguf writer,
// tokenizer.chat_template added, written into the build tree and read back
// through selectTemplate (and the tokenizer, for the BOS rule).
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <gtest/gtest.h>

#include "runtime/chat/chat.h"
#include "runtime/gguf/gguf.h"
#include "runtime/gguf/writer.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/chat/fixtures.h"

namespace tern::chat {
namespace {

const std::string kShared = TERN_SHARED_DIR;
const std::string kModel = kShared + "/fixtures/models/tiny-bitnet-tq2.gguf";
const std::string kVocab = kShared + "/fixtures/vocab/llama3-vocab.gguf";
const std::string kOut = TERN_TEST_OUT_DIR;

using testing::fixtureTemplate;

// Copies `src` (every key/value in order, every tensor with its bytes), lets
// `edit` change the metadata, writes BUILD/.../chat-gguf/<name>.gguf, opens it.
std::unique_ptr<gguf::File> copyWith(const std::string &src, const std::string &name,
                                     const std::function<void(gguf::Writer &)> &edit) {
  auto in = gguf::File::open(src);
  EXPECT_TRUE(in.ok()) << in.status();
  if (!in.ok())
    return nullptr;
  gguf::Writer w((*in)->version());
  for (const gguf::KeyValue &kv : (*in)->metadata())
    w.set(kv.key, kv.value);
  for (const gguf::TensorInfo &t : (*in)->tensors()) {
    absl::Status s =
        w.addTensor(t.name, t.dims, t.typeId, std::vector<uint8_t>(t.data, t.data + t.minBytes));
    EXPECT_TRUE(s.ok()) << s;
  }
  edit(w);
  std::filesystem::create_directories(kOut);
  const std::string path = kOut + "/" + name + ".gguf";
  absl::Status s = w.writeFile(path);
  EXPECT_TRUE(s.ok()) << s;
  auto out = gguf::File::open(path);
  EXPECT_TRUE(out.ok()) << out.status();
  if (!out.ok())
    return nullptr;
  // The copy is the model plus the edit: same tensors, same bytes.
  EXPECT_EQ((*out)->tensors().size(), (*in)->tensors().size());
  for (size_t i = 0; i < (*in)->tensors().size() && i < (*out)->tensors().size(); ++i) {
    const gguf::TensorInfo &a = (*in)->tensors()[i], &b = (*out)->tensors()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.typeId, b.typeId);
    EXPECT_EQ(0, std::memcmp(a.data, b.data, a.minBytes)) << a.name;
  }
  return std::move(*out);
}

std::function<void(gguf::Writer &)> withTemplate(std::string text) {
  return [text](gguf::Writer &w) { w.setString(std::string(kChatTemplateKey), text); };
}

TEST(ChatGguf, FixtureModelsCarryNoTemplate) {
  auto f = gguf::File::open(kModel);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->find(kChatTemplateKey), nullptr);
  auto s = selectTemplate(**f);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->kind, TemplateKind::Bitnet);
  EXPECT_EQ(s->source, TemplateSource::Default);
  EXPECT_NE(s->reason.find("no tokenizer.chat_template"), std::string::npos) << s->reason;
}

TEST(ChatGguf, RecognisesEachFixtureTemplate) {
  for (TemplateKind k : allTemplates()) {
    auto f =
        copyWith(kModel, "tiny-" + std::string(templateName(k)), withTemplate(fixtureTemplate(k)));
    ASSERT_NE(f, nullptr);
    ASSERT_EQ((*f).getString(kChatTemplateKey), fixtureTemplate(k));
    auto s = selectTemplate(*f);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->kind, k);
    EXPECT_EQ(s->source, TemplateSource::Gguf);
    EXPECT_TRUE(s->exact) << s->reason;
    // The rest of the model still reads: its tokenizer, with the BOS rule.
    auto tok = tokenizer::Tokenizer::fromGGUF(*f);
    ASSERT_TRUE(tok.ok()) << tok.status();
    const std::vector<Message> conv = {{Role::User, "hello world"}};
    const std::vector<int32_t> ids =
        tokenizePrompt(*tok, render(s->kind, conv, specialTokenText(*tok)), true);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], 354); // <|begin_of_text|>: added (bitnet, chatml) or written (llama3)
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 354), 1) << templateName(k);
  }
}

TEST(ChatGguf, OverrideWins) {
  auto f = copyWith(kModel, "tiny-override", withTemplate(fixtureTemplate(TemplateKind::Chatml)));
  ASSERT_NE(f, nullptr);
  for (TemplateKind k : allTemplates()) {
    auto s = selectTemplate(*f, templateName(k));
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->kind, k);
    EXPECT_EQ(s->source, TemplateSource::Override);
  }
  auto bad = selectTemplate(*f, "vicuna");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("--chat-template"), std::string::npos);
  // An override also rescues a GGUF whose template is unknown.
  auto g = copyWith(kModel, "tiny-unknown-override", withTemplate("{{ weird }}"));
  ASSERT_NE(g, nullptr);
  EXPECT_FALSE(selectTemplate(*g).ok());
  auto s = selectTemplate(*g, "chatml");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->kind, TemplateKind::Chatml);
}

TEST(ChatGguf, MicrosoftConversionTemplate) {
  const std::string ms =
      "{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}{% if "
      "message['role'] == 'user' %}{{ 'Human: ' + message['content'] + '\\n\\nBITNETAssistant: "
      "' + eos_token }}{% elif message['role'] == 'assistant' %}{{ message['content'] + "
      "eos_token }}{% endif %}{% endfor %}";
  auto f = copyWith(kModel, "tiny-ms", withTemplate(ms));
  ASSERT_NE(f, nullptr);
  auto s = selectTemplate(*f);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->kind, TemplateKind::Bitnet);
  EXPECT_EQ(s->source, TemplateSource::Gguf);
  EXPECT_FALSE(s->exact);
}

TEST(ChatGguf, Errors) {
  auto f =
      copyWith(kModel, "tiny-gemma", withTemplate("{{ bos_token }}{{ '<start_of_turn>user\\n' }}"));
  ASSERT_NE(f, nullptr);
  auto s = selectTemplate(*f);
  ASSERT_FALSE(s.ok());
  std::string m(s.status().message());
  EXPECT_NE(m.find(f->path()), std::string::npos) << m;
  EXPECT_NE(m.find("tokenizer.chat_template"), std::string::npos) << m;
  EXPECT_NE(m.find("<start_of_turn>"), std::string::npos) << m;
  EXPECT_NE(m.find("bitnet, llama3, chatml"), std::string::npos) << m;

  auto g = copyWith(kModel, "tiny-u32",
                    [](gguf::Writer &w) { w.setU32(std::string(kChatTemplateKey), 7); });
  ASSERT_NE(g, nullptr);
  s = selectTemplate(*g);
  ASSERT_FALSE(s.ok());
  m = std::string(s.status().message());
  EXPECT_NE(m.find("tokenizer.chat_template"), std::string::npos) << m;
  EXPECT_NE(m.find("uint32"), std::string::npos) << m;
}

TEST(ChatGguf, EmptyTemplateMeansDefault) {
  auto f = copyWith(kModel, "tiny-empty", withTemplate(""));
  ASSERT_NE(f, nullptr);
  auto s = selectTemplate(*f);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->kind, kDefaultTemplate);
  EXPECT_EQ(s->source, TemplateSource::Default);
}

// A 2B4T-like file: the LLaMA-3 vocabulary with the 2B4T template; template
// and tokenizer both come from it, and the prompt ids are what the template's
// text and the BOS rule say.
TEST(ChatGguf, Llama3VocabularyWith2B4TTemplate) {
  auto f =
      copyWith(kVocab, "llama3-vocab-bitnet", withTemplate(fixtureTemplate(TemplateKind::Bitnet)));
  ASSERT_NE(f, nullptr);
  auto s = selectTemplate(*f);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->kind, TemplateKind::Bitnet);
  EXPECT_TRUE(s->exact);
  auto tok = tokenizer::Tokenizer::fromGGUF(*f);
  ASSERT_TRUE(tok.ok()) << tok.status();
  const std::vector<Message> conv = {{Role::System, "Be brief."}, {Role::User, "Hi"}};
  const std::string text = render(s->kind, conv, specialTokenText(*tok));
  EXPECT_EQ(text, "System: Be brief.<|eot_id|>User: Hi<|eot_id|>Assistant: ");
  std::vector<int32_t> want = {128000};
  for (std::string_view piece :
       {"System: Be brief.", "<|eot_id|>", "User: Hi", "<|eot_id|>", "Assistant: "}) {
    std::vector<int32_t> p = tok->encode(piece, false, true);
    want.insert(want.end(), p.begin(), p.end());
  }
  EXPECT_EQ(tokenizePrompt(*tok, text, true), want);
}

} // namespace
} // namespace tern::chat
