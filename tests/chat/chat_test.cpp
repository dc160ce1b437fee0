// Chat templates: recognition of the fixture template strings and their
// variants, names, errors; rendering compared with expected strings written
// out by hand from the templates; the incremental identities; trim; the BOS
// rule on the LLaMA-3 vocabulary. (The byte-for-byte comparison with Hugging
// Face's renderer is the `chat-oracle` test; GGUF round trips are in
// chat_gguf_test.cpp.)
#include "runtime/chat/chat.h"

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

#include "runtime/gguf/gguf.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/chat/fixtures.h"

namespace tern::chat {
namespace {

using testing::fixtureTemplate;

std::string msg(const absl::Status &s) { return std::string(s.message()); }

Message sys(std::string c) { return {Role::System, std::move(c)}; }
Message user(std::string c) { return {Role::User, std::move(c)}; }
Message asst(std::string c) { return {Role::Assistant, std::move(c)}; }

RenderOptions opts(bool agp) {
  RenderOptions o;
  o.bosToken = "<|begin_of_text|>";
  o.eosToken = "<|end_of_text|>";
  o.addGenerationPrompt = agp;
  return o;
}

// ---------------------------------------------------------------------------
// Names and recognition.

TEST(ChatNames, RoundTrip) {
  EXPECT_EQ(supportedTemplateNames(), "bitnet, llama3, chatml");
  for (TemplateKind k : allTemplates()) {
    auto r = templateByName(templateName(k));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r, k);
  }
  EXPECT_EQ(kDefaultTemplate, TemplateKind::Bitnet);
}

TEST(ChatNames, UnknownNameListsSupported) {
  for (std::string_view bad : {"Llama3", "llama-3", "", "zephyr", "chatml "}) {
    auto r = templateByName(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(msg(r.status()).find("--chat-template"), std::string::npos) << r.status();
    EXPECT_NE(msg(r.status()).find("\"" + std::string(bad) + "\""), std::string::npos)
        << r.status();
    EXPECT_NE(msg(r.status()).find("bitnet, llama3, chatml"), std::string::npos) << r.status();
  }
}

TEST(ChatNames, Roles) {
  for (Role r : {Role::System, Role::User, Role::Assistant}) {
    auto p = parseRole(roleName(r));
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(*p, r);
  }
  auto bad = parseRole("tool");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(msg(bad.status()).find("\"tool\""), std::string::npos) << bad.status();
  EXPECT_FALSE(parseRole("User").ok());
}

// The built-in reference strings are the fixture files, byte for byte.
TEST(ChatRecognize, ReferenceStringsAreTheFixtures) {
  for (TemplateKind k : allTemplates())
    EXPECT_EQ(referenceTemplate(k), fixtureTemplate(k)) << templateName(k);
}

TEST(ChatRecognize, FixtureTemplatesExactly) {
  for (TemplateKind k : allTemplates()) {
    auto r = recognizeTemplate(fixtureTemplate(k));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->kind, k);
    EXPECT_TRUE(r->exact) << r->reason;
  }
}

TEST(ChatRecognize, TemplateTextThatIsAName) {
  for (TemplateKind k : allTemplates()) {
    auto r = recognizeTemplate(templateName(k));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->kind, k);
    EXPECT_TRUE(r->exact);
  }
}

// Family members that are not the reference string: recognised, not exact.
TEST(ChatRecognize, FamilyVariants) {
  struct Case {
    std::string text;
    TemplateKind kind;
    std::string reasonHas;
  };
  const std::vector<Case> cases = {
      // What Microsoft's convert-ms-to-gguf-bitnet.py embeds in 2B4T GGUFs.
      {"{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}{% if "
       "message['role'] == 'user' %}{{ 'Human: ' + message['content'] + "
       "'\\n\\nBITNETAssistant: ' + eos_token }}{% elif message['role'] == 'assistant' %}{{ "
       "message['content'] + eos_token }}{% endif %}{% endfor %}",
       TemplateKind::Bitnet, "Microsoft"},
      // The 2B4T template with Jinja whitespace control.
      {"{%- for message in messages -%}{{- message['role'] | capitalize + ': ' + "
       "message['content'] | trim + '<|eot_id|>' -}}{%- endfor -%}{%- if add_generation_prompt "
       "-%}{{- 'Assistant: ' -}}{%- endif -%}",
       TemplateKind::Bitnet, "<|eot_id|>"},
      // LLaMA-3.1 style (bos_token up front, a system block).
      {"{{- bos_token }}\n{%- if messages[0]['role'] == 'system' %}{%- set system_message = "
       "messages[0]['content']|trim %}{%- endif %}{{- '<|start_header_id|>system<|end_header_id|>"
       "\\n\\n' }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + "
       "'<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}{%- endfor %}",
       TemplateKind::Llama3, "<|start_header_id|>"},
      // Qwen2-style ChatML with a default system message.
      {"{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' "
       "%}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif "
       "%}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
       "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% "
       "endif %}",
       TemplateKind::Chatml, "<|im_start|>"},
      // The reference with a trailing newline is no longer the reference.
      {std::string(referenceTemplate(TemplateKind::Chatml)) + "\n", TemplateKind::Chatml, "ChatML"},
  };
  for (const Case &c : cases) {
    auto r = recognizeTemplate(c.text);
    ASSERT_TRUE(r.ok()) << r.status() << "\n" << c.text;
    EXPECT_EQ(r->kind, c.kind) << c.text;
    EXPECT_FALSE(r->exact) << c.text;
    EXPECT_NE(r->reason.find(c.reasonHas), std::string::npos) << r->reason;
  }
}

TEST(ChatRecognize, UnknownTemplatesAreErrors) {
  const std::vector<std::string> unknown = {
      // Gemma
      "{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + role + '\\n' + "
      "message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}",
      // Orion (Human:/Assistant: without BITNET)
      "{% for message in messages %}{% if message['role'] == 'user' %}{{ 'Human: ' + "
      "message['content'] + '\\n\\nAssistant: ' + eos_token }}{% endif %}{% endfor %}",
      // Phi-4 uses <|im_start|> but is not ChatML.
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '<|im_sep|>' + "
      "message['content'] + '<|im_end|>'}}{% endfor %}",
      // LLaMA-4 headers.
      "{{ '<|header_start|>' + message['role'] + '<|header_end|>' }}",
      "",
      "\x01\xff\n\tnot a template",
  };
  for (const std::string &t : unknown) {
    auto r = recognizeTemplate(t);
    ASSERT_FALSE(r.ok()) << t;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string m = msg(r.status());
    EXPECT_NE(m.find("tokenizer.chat_template"), std::string::npos) << m;
    EXPECT_NE(m.find(std::to_string(t.size()) + " bytes"), std::string::npos) << m;
    EXPECT_NE(m.find("bitnet, llama3, chatml"), std::string::npos) << m;
    EXPECT_NE(m.find("--chat-template NAME"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << "one line: " << m;
  }
  // The quoted start of the text: escaped, cut with "...".
  auto r = recognizeTemplate("\x01\xff\n\tnot a template" + std::string(100, 'x'));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(msg(r.status()).find("\"\\x01\\xff\\n\\tnot a template"), std::string::npos)
      << r.status();
  EXPECT_NE(msg(r.status()).find("xxx...\""), std::string::npos) << r.status();
}

// ---------------------------------------------------------------------------
// Rendering against expected strings.

struct Expected {
  std::vector<Message> messages;
  std::string bitnet, llama3, chatml; // with add_generation_prompt
};

std::vector<Expected> expectedCases() {
  return {
      {{user("Hello")},
       "User: Hello<|eot_id|>Assistant: ",
       "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
       "<|start_header_id|>assistant<|end_header_id|>\n\n",
       "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"},
      {{sys("You are helpful."), user("Hi"), asst("Hello! How can I help?"), user("What is 2+2?")},
       "System: You are helpful.<|eot_id|>User: Hi<|eot_id|>Assistant: Hello! How can I "
       "help?<|eot_id|>User: What is 2+2?<|eot_id|>Assistant: ",
       "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are "
       "helpful.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
       "<|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?<|eot_id|>"
       "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
       "<|start_header_id|>assistant<|end_header_id|>\n\n",
       "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
       "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n<|im_start|>user\nWhat is "
       "2+2?<|im_end|>\n<|im_start|>assistant\n"},
      // Unicode, and whitespace the trimming templates strip: NBSP, U+3000,
      // U+FEFF, U+2028 at the ends; inner newlines stay.
      {{user("  Grüße, 世界 🌍\n\nline two\n"), asst("\u00a0Привет\u3000"),
        user("\ufeffשלום\u2028")},
       "User: Grüße, 世界 🌍\n\nline two<|eot_id|>Assistant: Привет<|eot_id|>User: "
       "שלום<|eot_id|>Assistant: ",
       "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nGrüße, 世界 🌍\n\nline "
       "two<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nПривет<|eot_id|>"
       "<|start_header_id|>user<|end_header_id|>\n\nשלום<|eot_id|>"
       "<|start_header_id|>assistant<|end_header_id|>\n\n",
       "<|im_start|>user\n  Grüße, 世界 🌍\n\nline two\n<|im_end|>\n<|im_start|>assistant\n"
       "\u00a0Привет\u3000<|im_end|>\n<|im_start|>user\n\ufeffשלום\u2028<|im_end|>\n"
       "<|im_start|>assistant\n"},
      // Empty content (and content that is only whitespace).
      {{sys(""), user(" \t\n")},
       "System: <|eot_id|>User: <|eot_id|>Assistant: ",
       "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n<|eot_id|>"
       "<|start_header_id|>user<|end_header_id|>\n\n<|eot_id|>"
       "<|start_header_id|>assistant<|end_header_id|>\n\n",
       "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n \t\n<|im_end|>\n"
       "<|im_start|>assistant\n"},
      // Template syntax inside content is data.
      {{user("{{ bos_token }}{% if x %}<|eot_id|>")},
       "User: {{ bos_token }}{% if x %}<|eot_id|><|eot_id|>Assistant: ",
       "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{{ bos_token }}{% if x "
       "%}<|eot_id|><|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
       "<|im_start|>user\n{{ bos_token }}{% if x %}<|eot_id|><|im_end|>\n"
       "<|im_start|>assistant\n"},
      // No messages: only the generation prompt (llama3 writes BOS with the
      // first message only, so none here).
      {{},
       "Assistant: ",
       "<|start_header_id|>assistant<|end_header_id|>\n\n",
       "<|im_start|>assistant\n"},
  };
}

std::string expectedFor(const Expected &e, TemplateKind k) {
  switch (k) {
  case TemplateKind::Bitnet:
    return e.bitnet;
  case TemplateKind::Llama3:
    return e.llama3;
  case TemplateKind::Chatml:
    return e.chatml;
  }
  return "";
}

TEST(ChatRender, ExpectedStrings) {
  for (const Expected &e : expectedCases()) {
    for (TemplateKind k : allTemplates()) {
      const std::string want = expectedFor(e, k);
      EXPECT_EQ(render(k, e.messages, opts(true)), want) << templateName(k);
      // Without the generation prompt: the same text minus its tail.
      const std::string_view gp = generationPrompt(k);
      ASSERT_TRUE(std::string_view(want).ends_with(gp));
      EXPECT_EQ(render(k, e.messages, opts(false)), want.substr(0, want.size() - gp.size()))
          << templateName(k);
    }
  }
}

TEST(ChatRender, BosTokenIsTheCallersText) {
  RenderOptions o = opts(true);
  o.bosToken = "<s>";
  const std::vector<Message> m = {user("a"), user("b")};
  EXPECT_EQ(render(TemplateKind::Llama3, m, o),
            "<s><|start_header_id|>user<|end_header_id|>\n\na<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nb<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  for (TemplateKind k : {TemplateKind::Bitnet, TemplateKind::Chatml})
    EXPECT_EQ(render(k, m, o).find("<s>"), std::string::npos);
  EXPECT_TRUE(templateEmitsBos(TemplateKind::Llama3));
  EXPECT_FALSE(templateEmitsBos(TemplateKind::Bitnet));
  EXPECT_FALSE(templateEmitsBos(TemplateKind::Chatml));
}

TEST(ChatRender, TurnMarkers) {
  EXPECT_EQ(endOfTurn(TemplateKind::Bitnet), "<|eot_id|>");
  EXPECT_EQ(endOfTurn(TemplateKind::Llama3), "<|eot_id|>");
  EXPECT_EQ(endOfTurn(TemplateKind::Chatml), "<|im_end|>");
  for (TemplateKind k : allTemplates()) {
    // An assistant message renders as generation prompt + content + suffix.
    const std::vector<Message> one = {user("q")};
    const std::vector<Message> two = {user("q"), asst("reply")};
    EXPECT_EQ(render(k, two, opts(false)),
              render(k, one, opts(true)) + "reply" + std::string(assistantSuffix(k)));
    EXPECT_TRUE(assistantSuffix(k).starts_with(endOfTurn(k)));
  }
}

// ---------------------------------------------------------------------------
// Incremental rendering.

std::vector<Message> randomConversation(std::mt19937 &rng) {
  static const std::vector<std::string> pieces = {
      "hello", " ",  "\n", "\t",         "\u00a0",  "\u3000", "\ufeff", "\u0085",
      "世界",  "🌍", "",   "<|eot_id|>", "{{ x }}", "Привет", "a b",    "\r\n"};
  std::vector<Message> m;
  const int n = std::uniform_int_distribution<int>(0, 7)(rng);
  for (int i = 0; i < n; ++i) {
    Message x;
    x.role = static_cast<Role>(std::uniform_int_distribution<int>(0, 2)(rng));
    const int parts = std::uniform_int_distribution<int>(0, 5)(rng);
    for (int p = 0; p < parts; ++p)
      x.content += pieces[std::uniform_int_distribution<size_t>(0, pieces.size() - 1)(rng)];
    m.push_back(std::move(x));
  }
  return m;
}

// render(history + added) == render(history, no generation prompt) + delta,
// for every split of every conversation.
TEST(ChatIncremental, DeltaIdentity) {
  std::vector<std::vector<Message>> convs;
  for (const Expected &e : expectedCases())
    convs.push_back(e.messages);
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i)
    convs.push_back(randomConversation(rng));
  int checked = 0;
  for (const auto &c : convs) {
    for (size_t k = 0; k <= c.size(); ++k) {
      std::span<const Message> all(c), history = all.first(k), added = all.subspan(k);
      for (TemplateKind t : allTemplates()) {
        for (bool agp : {true, false}) {
          EXPECT_EQ(render(t, all, opts(agp)),
                    render(t, history, opts(false)) + renderDelta(t, history, added, opts(agp)))
              << templateName(t) << " split " << k << " of " << c.size();
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 1000);
}

// The chat loop: the session holds the first prompt and the model's reply;
// continueAfterReply brings it to the full rendering of the next turn.
TEST(ChatIncremental, SessionKeepsConversation) {
  for (TemplateKind t : allTemplates()) {
    for (bool eotFed : {false, true}) {
      std::vector<Message> conv = {sys("Be brief."), user("Hi")};
      std::string session = render(t, conv, opts(true));
      for (const std::string reply : {"Hello!", "2+2 = 4.", "Привет 🌍"}) {
        // Generation writes the reply, then stops at the end-of-turn token
        // (fed to the session or not).
        session += reply;
        if (eotFed)
          session += endOfTurn(t);
        conv.push_back(asst(reply));
        const std::vector<Message> next = {user("next " + reply)};
        session += continueAfterReply(t, conv, next, eotFed, opts(true));
        conv.insert(conv.end(), next.begin(), next.end());
        EXPECT_EQ(session, render(t, conv, opts(true)))
            << templateName(t) << " eotFed " << eotFed << " after " << reply;
      }
    }
  }
}

// The Conversation helper hands out exactly the text that makes the session
// hold the full rendering after every user turn.
TEST(ChatConversation, FedTextIsTheRendering) {
  for (TemplateKind t : allTemplates()) {
    for (bool eotFed : {false, true}) {
      for (bool withSystem : {false, true}) {
        Conversation c(t, opts(false)); // addGenerationPrompt is forced on
        EXPECT_TRUE(c.startOfSession());
        if (withSystem) {
          ASSERT_TRUE(c.addSystem("Be brief.").ok());
        }
        std::string session;
        for (const std::string reply : {"Hello!", "", "Привет 🌍", "4"}) {
          const bool first = c.startOfSession();
          auto turn = c.addUser("question " + reply);
          ASSERT_TRUE(turn.ok()) << turn.status();
          EXPECT_EQ(turn->startOfSession, first);
          EXPECT_EQ(first, session.empty());
          EXPECT_FALSE(c.startOfSession());
          EXPECT_TRUE(c.awaitingReply());
          session += turn->text;
          EXPECT_EQ(session, render(t, c.messages(), opts(true)))
              << templateName(t) << " eotFed " << eotFed << " system " << withSystem;
          session += reply;
          if (eotFed)
            session += endOfTurn(t);
          ASSERT_TRUE(c.addReply(reply, eotFed).ok());
        }
        EXPECT_EQ(c.messages().size(), 8u + withSystem);
      }
    }
  }
}

TEST(ChatConversation, OrderErrors) {
  Conversation c(TemplateKind::Bitnet, opts(true));
  EXPECT_EQ(c.addReply("x", false).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(c.addUser("a").ok());
  EXPECT_EQ(c.addUser("b").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(c.addSystem("s").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(c.addReply("r", false).ok());
  EXPECT_EQ(c.addReply("r", false).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(c.messages().size(), 2u);
}

// ---------------------------------------------------------------------------
// trim.

TEST(ChatTrim, JavaScriptWhitespaceSet) {
  const std::vector<std::string> stripped = {
      "\t",     "\n",     "\v",     "\f",     "\r",     " ",      "\u00a0", "\u1680", "\u2000",
      "\u2005", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\ufeff"};
  for (const std::string &w : stripped)
    EXPECT_EQ(trimContent(w + "x y" + w + w), "x y") << "U+" << std::hex << int(w[0]);
  // Kept by JavaScript's trim (Python's str.strip would strip the first five).
  const std::vector<std::string> kept = {
      "\x1c", "\x1f", "\u0085", "\u200b", "\u180e", "\u2060", std::string(1, '\0')};
  for (const std::string &w : kept) {
    const std::string s = w + "x" + w;
    EXPECT_EQ(trimContent(s), s);
  }
  EXPECT_EQ(trimContent(""), "");
  EXPECT_EQ(trimContent(" \u3000\t\ufeff "), "");
  EXPECT_EQ(trimContent(" a \n b "), "a \n b");
}

TEST(ChatTrim, IllFormedUtf8IsNeverStripped) {
  // A lone continuation byte 0xA0 is not NBSP; C0 A0 is an overlong space;
  // a truncated NBSP; a truncated U+3000.
  for (const std::string s : {"\xa0x\xa0", "\xc0\xa0x\xc0\xa0", "x\xc2", "\xe3\x80x\xe3\x80"})
    EXPECT_EQ(trimContent(s), s);
  EXPECT_EQ(trimContent(" \xff "), "\xff");
  EXPECT_EQ(trimContent("\xed\xa0\x80 "), "\xed\xa0\x80"); // a UTF-16 surrogate: ill-formed
}

// ---------------------------------------------------------------------------
// The BOS rule on the LLaMA-3 vocabulary (what 2B4T uses).

class ChatTokens : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    auto f = gguf::File::open(std::string(TERN_SHARED_DIR) + "/fixtures/vocab/llama3-vocab.gguf");
    ASSERT_TRUE(f.ok()) << f.status();
    auto t = tokenizer::Tokenizer::fromGGUF(**f);
    ASSERT_TRUE(t.ok()) << t.status();
    tok_ = new tokenizer::Tokenizer(std::move(*t));
  }
  static void TearDownTestSuite() {
    delete tok_;
    tok_ = nullptr;
  }
  static tokenizer::Tokenizer *tok_;
};
tokenizer::Tokenizer *ChatTokens::tok_ = nullptr;

constexpr int32_t kBos = 128000, kEot = 128009;

TEST_F(ChatTokens, SpecialTokenText) {
  ASSERT_NE(tok_, nullptr);
  RenderOptions o = specialTokenText(*tok_);
  EXPECT_EQ(o.bosToken, "<|begin_of_text|>");
  EXPECT_EQ(o.eosToken, "<|end_of_text|>");
  EXPECT_TRUE(tok_->addBos());
}

TEST_F(ChatTokens, ExactlyOneBos) {
  ASSERT_NE(tok_, nullptr);
  RenderOptions o = specialTokenText(*tok_);
  const std::vector<Message> conv = {sys("Be brief."), user("Hi"), asst("Hello!"), user("Bye")};
  for (TemplateKind t : allTemplates()) {
    const std::string text = render(t, conv, o);
    EXPECT_EQ(shouldAddBos(*tok_, text, true), !templateEmitsBos(t)) << templateName(t);
    std::vector<int32_t> ids = tokenizePrompt(*tok_, text, true);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], kBos) << templateName(t);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), kBos), 1) << templateName(t);
    // Deltas never get a BOS.
    EXPECT_FALSE(shouldAddBos(*tok_, text, false));
    std::vector<int32_t> d = tokenizePrompt(*tok_, "User: x", false);
    EXPECT_EQ(std::count(d.begin(), d.end(), kBos), 0);
    // Special-token text is parsed: one <|eot_id|> per message (bitnet,
    // llama3; ChatML's markers are not in this vocabulary).
    if (t != TemplateKind::Chatml) {
      EXPECT_EQ(std::count(ids.begin(), ids.end(), kEot), 4) << templateName(t);
    }
  }
}

// Tokenizing the first prompt and then each delta gives the ids of the whole
// rendering (every delta starts right after a special token).
TEST_F(ChatTokens, DeltaTokensConcatenate) {
  ASSERT_NE(tok_, nullptr);
  RenderOptions o = specialTokenText(*tok_);
  const std::vector<Message> conv = {sys(" You are terse. "), user("Grüße 🌍"), asst("Hallo!"),
                                     user("2+2?\n"),          asst("4"),        user("thanks")};
  for (TemplateKind t : {TemplateKind::Bitnet, TemplateKind::Llama3}) {
    for (size_t k = 1; k < conv.size(); ++k) {
      std::span<const Message> all(conv), history = all.first(k);
      o.addGenerationPrompt = false;
      std::vector<int32_t> ids = tokenizePrompt(*tok_, render(t, history, o), true);
      o.addGenerationPrompt = true;
      std::vector<int32_t> d =
          tokenizePrompt(*tok_, renderDelta(t, history, all.subspan(k), o), false);
      ids.insert(ids.end(), d.begin(), d.end());
      EXPECT_EQ(ids, tokenizePrompt(*tok_, render(t, all, o), true))
          << templateName(t) << " split " << k;
    }
  }
}

} // namespace
} // namespace tern::chat
