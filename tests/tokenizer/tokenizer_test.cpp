// Tokenizer tests: llama.cpp goldens (LLaMA-3 vocabulary and the fixture
// models' small BPE), SentencePiece on a constructed vocabulary, special
// tokens, streaming decode, invalid UTF-8, malformed metadata.
#include "runtime/tokenizer/tokenizer.h"

#include <chrono>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtime/gguf/gguf.h"
#include "runtime/gguf/writer.h"

namespace tern::tokenizer {
namespace {

const std::string kShared = TERN_SHARED_DIR;
const std::string kLlama3Vocab = kShared + "/fixtures/vocab/llama3-vocab.gguf";

nlohmann::json readJson(const std::string &path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return nlohmann::json::parse(in);
}

bool isValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t l = utf8::validPrefixLen(s.substr(i));
    if (l == 0)
      return false;
    i += l;
  }
  return true;
}

std::string idsToString(const std::vector<int32_t> &v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i)
    s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// Loaded once for the whole binary (the vocabulary is 7.8 MB).
class Llama3 : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    auto t0 = std::chrono::steady_clock::now();
    auto f = gguf::File::open(kLlama3Vocab);
    ASSERT_TRUE(f.ok()) << f.status();
    auto t1 = std::chrono::steady_clock::now();
    auto t = Tokenizer::fromGGUF(**f);
    ASSERT_TRUE(t.ok()) << t.status();
    auto t2 = std::chrono::steady_clock::now();
    using ms = std::chrono::duration<double, std::milli>;
    std::printf("llama3 vocab: gguf open %.1f ms, tokenizer build %.1f ms\n", ms(t1 - t0).count(),
                ms(t2 - t1).count());
    buildMs_ = ms(t2 - t1).count();
    tok_ = new Tokenizer(*std::move(t));
  }
  static void TearDownTestSuite() {
    delete tok_;
    tok_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(tok_, nullptr); }
  static Tokenizer *tok_;
  static double buildMs_;
};
Tokenizer *Llama3::tok_ = nullptr;
double Llama3::buildMs_ = 0;

TEST_F(Llama3, Metadata) {
  EXPECT_EQ(tok_->vocabSize(), 128256u);
  EXPECT_EQ(tok_->numMerges(), 280147u);
  EXPECT_EQ(tok_->kind(), VocabKind::BytePairGpt2);
  EXPECT_EQ(tok_->preTokenizer(), PreTokenizerKind::Llama3);
  EXPECT_EQ(tok_->bos(), 128000);
  EXPECT_EQ(tok_->eos(), 128001);
  EXPECT_EQ(tok_->eot(), 128009);
  EXPECT_TRUE(tok_->addBos());
  EXPECT_TRUE(tok_->isEog(128001));
  EXPECT_TRUE(tok_->isEog(128009));
  EXPECT_FALSE(tok_->isEog(128000));
  EXPECT_FALSE(tok_->isEog(9906));
  EXPECT_EQ(tok_->tokenText(128000), "<|begin_of_text|>");
  EXPECT_EQ(tok_->tokenText(9906), "Hello");
  EXPECT_EQ(tok_->tokenText(22691), "\xC4\xA0Hello"); // "ĠHello"
  EXPECT_EQ(tok_->tokenPiece(22691), " Hello");
  EXPECT_EQ(tok_->tokenPiece(128000), "");
  EXPECT_EQ(tok_->tokenPiece(128000, /*renderSpecial=*/true), "<|begin_of_text|>");
  EXPECT_EQ(tok_->tokenText(-1), "");
  EXPECT_EQ(tok_->tokenText(128256), "");
  // Loading must be well under a second (Release build; generous bound for
  // sanitizer / debug builds).
  EXPECT_LT(buildMs_, 5000.0);
}

TEST_F(Llama3, GoldenIdsAndDetok) {
  auto cases = readJson(kShared + "/fixtures/golden/llama3-tokenizer.json");
  ASSERT_EQ(cases.size(), 43u);
  int failures = 0;
  for (const auto &c : cases) {
    std::string text = c["text"];
    std::vector<int32_t> want = c["ids"].get<std::vector<int32_t>>();
    std::string detok = c["detok"];
    auto got = tok_->encode(text, /*addSpecial=*/false);
    if (got != want)
      ++failures;
    EXPECT_EQ(idsToString(got), idsToString(want)) << "text: " << c["text"].dump();
    EXPECT_EQ(tok_->decode(want), detok) << "text: " << c["text"].dump();
    // With BOS.
    auto withBos = tok_->encode(text, /*addSpecial=*/true);
    ASSERT_FALSE(withBos.empty());
    EXPECT_EQ(withBos[0], 128000);
    EXPECT_EQ(std::vector<int32_t>(withBos.begin() + 1, withBos.end()), got);
    EXPECT_EQ(tok_->decode(withBos), detok);
  }
  EXPECT_EQ(failures, 0);
}

TEST_F(Llama3, StreamDecoderMatchesDecodeAndIsValidUtf8) {
  auto cases = readJson(kShared + "/fixtures/golden/llama3-tokenizer.json");
  for (const auto &c : cases) {
    std::vector<int32_t> ids = c["ids"].get<std::vector<int32_t>>();
    StreamDecoder sd(*tok_);
    std::string all;
    for (int32_t id : ids) {
      std::string part = sd.push(id);
      EXPECT_TRUE(isValidUtf8(part)) << c["text"].dump();
      all += part;
    }
    all += sd.flush();
    EXPECT_EQ(all, c["detok"].get<std::string>());
  }
}

TEST_F(Llama3, StreamDecoderHoldsSplitEmoji) {
  // "🎉" (F0 9F 8E 89) is split over tokens " \xF0\x9F" (11410), "\x8E" (236),
  // "\x89" (231) in the golden.
  EXPECT_EQ(tok_->tokenPiece(11410), " \xF0\x9F");
  StreamDecoder sd(*tok_);
  EXPECT_EQ(sd.push(38623), "emoji");
  EXPECT_EQ(sd.push(11410), " ");
  EXPECT_EQ(sd.pending(), 2u);
  EXPECT_EQ(sd.push(236), "");
  EXPECT_EQ(sd.pending(), 3u);
  EXPECT_EQ(sd.push(231), "\xF0\x9F\x8E\x89");
  EXPECT_EQ(sd.pending(), 0u);
  // An incomplete tail comes out as U+FFFD on flush.
  EXPECT_EQ(sd.push(11410), " ");
  EXPECT_EQ(sd.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(sd.pending(), 0u);
  // A continuation byte with nothing before it is ill-formed right away.
  EXPECT_EQ(sd.push(236), "\xEF\xBF\xBD");
  // Special tokens render only on request.
  EXPECT_EQ(sd.push(128009), "");
  StreamDecoder special(*tok_, DecodeOptions{.renderSpecial = true});
  EXPECT_EQ(special.push(128009), "<|eot_id|>");
}

TEST_F(Llama3, ParseSpecial) {
  std::string text = "<|begin_of_text|>not special here<|eot_id|>";
  // Off (default): golden ids, the text is tokenized as text.
  EXPECT_EQ(tok_->encode(text, false),
            (std::vector<int32_t>{27, 91, 7413, 3659, 4424, 91, 29, 1962, 3361, 1618, 27, 91, 68,
                                  354, 851, 91, 29}));
  auto ids = tok_->encode(text, false, /*parseSpecial=*/true);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 128000);
  EXPECT_EQ(ids.back(), 128009);
  EXPECT_EQ(std::vector<int32_t>(ids.begin() + 1, ids.end() - 1),
            tok_->encode("not special here", false));
  EXPECT_EQ(tok_->decode(ids, DecodeOptions{.renderSpecial = true}), text);
  EXPECT_EQ(tok_->decode(ids), "not special here");
  // Adjacent special tokens and text around them.
  auto ids2 = tok_->encode("a<|eot_id|><|eot_id|>b", false, true);
  EXPECT_EQ(ids2, (std::vector<int32_t>{64, 128009, 128009, 65}));
}

TEST_F(Llama3, InvalidUtf8IsDefinedAndLossless) {
  const std::string inputs[] = {
      std::string("\xFF"),
      std::string("caf\xE9 au lait"),        // latin-1 e-acute
      std::string("\xC3"),                   // truncated 2-byte sequence
      std::string("ok \xF0\x9F\x8E"),        // truncated emoji
      std::string("\xED\xA0\x80 surrogate"), // UTF-16 surrogate, ill-formed
      std::string("\xC0\xAF overlong"),
      std::string("a\0b", 3),
  };
  for (const std::string &s : inputs) {
    auto ids = tok_->encode(s, false);
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(tok_->decode(ids), s);
    StreamDecoder sd(*tok_);
    std::string streamed;
    for (int32_t id : ids)
      streamed += sd.push(id);
    streamed += sd.flush();
    EXPECT_TRUE(isValidUtf8(streamed));
  }
  // Random bytes: never crash, always round-trip.
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 200; ++iter) {
    std::string s(rng() % 64, '\0');
    for (char &c : s)
      c = static_cast<char>(rng() & 0xFF);
    auto ids = tok_->encode(s, false, /*parseSpecial=*/iter % 2);
    EXPECT_EQ(tok_->decode(ids), s);
  }
}

TEST_F(Llama3, LongInputsAreFast) {
  std::string text;
  for (int i = 0; i < 2000; ++i)
    text += "The quick brown fox jumps over the lazy dog; 12345 times! ";
  std::string word(200000, 'a'); // one pre-token: merges must not be O(n^2)
  std::string spaces(100000, ' ');
  auto t0 = std::chrono::steady_clock::now();
  auto a = tok_->encode(text, false);
  auto b = tok_->encode(word, false);
  auto c = tok_->encode(spaces + "x", false);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(tok_->decode(a), text);
  EXPECT_EQ(tok_->decode(b), word);
  EXPECT_EQ(tok_->decode(c), spaces + "x");
  EXPECT_LT(secs, 10.0);
  std::printf("encoded %zu bytes in %.3f s\n", text.size() + word.size() + spaces.size(), secs);
}

// The fixture models' vocabulary (pre = default) against their goldens.
TEST(TinyVocab, GoldenPrompts) {
  const char *models[] = {"tiny-bitnet-tq2", "tiny-bitnet-tq1", "tiny-bitnet-f16", "gqa-bitnet-tq2",
                          "tiny-bitnet-i2s"};
  for (const char *m : models) {
    SCOPED_TRACE(m);
    auto f = gguf::File::open(kShared + "/fixtures/models/" + m + ".gguf");
    ASSERT_TRUE(f.ok()) << f.status();
    auto t = Tokenizer::fromGGUF(**f);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->preTokenizer(), PreTokenizerKind::Default);
    EXPECT_EQ(t->bos(), 354);
    EXPECT_EQ(t->eos(), 355);
    EXPECT_TRUE(t->addBos());
    EXPECT_TRUE(t->isEog(355));
    auto golden = readJson(kShared + "/fixtures/golden/" + m + ".json");
    ASSERT_FALSE(golden.empty());
    for (const auto &c : golden) {
      std::string prompt = c["prompt"];
      auto tokens = c["tokens"].get<std::vector<int32_t>>();
      auto input = c["input"].get<std::vector<int32_t>>();
      EXPECT_EQ(idsToString(t->encode(prompt, false)), idsToString(tokens)) << "prompt: " << prompt;
      EXPECT_EQ(idsToString(t->encode(prompt, true)), idsToString(input)) << "prompt: " << prompt;
      EXPECT_EQ(t->decode(input), prompt);
    }
  }
}

TEST(TinyVocab, DefaultPreTokenizerSplits) {
  auto f = gguf::File::open(kShared + "/fixtures/models/tiny-bitnet-tq2.gguf");
  ASSERT_TRUE(f.ok()) << f.status();
  auto t = Tokenizer::fromGGUF(**f);
  ASSERT_TRUE(t.ok()) << t.status();
  // Digits go in runs of three, punctuation splits from letters; everything
  // round-trips (byte tokens cover what merges do not).
  for (std::string s : {"1234567", "don't stop", "a+b=c", "  x  ", "\n\n", "\xC3\xA9t\xC3\xA9"}) {
    EXPECT_EQ(t->decode(t->encode(s, false)), s) << s;
  }
  auto ids = t->encode("1234567", false);
  EXPECT_EQ(ids.size(), 7u); // no digit merges in this vocab
}

//===----------------------------------------------------------------------===//
// SentencePiece ("llama") on a constructed vocabulary
//===----------------------------------------------------------------------===//

VocabData spmVocab() {
  VocabData v;
  v.model = "llama";
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.tokenTypes = {2, 3, 3};
  v.scores = {0, 0, 0};
  static const char hex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
    v.tokenTypes.push_back(6);
    v.scores.push_back(0);
  }
  const std::pair<const char *, float> normal[] = {
      {"\xE2\x96\x81", -1},
      {"h", -2},
      {"e", -2},
      {"l", -2},
      {"o", -2},
      {"w", -2},
      {"r", -2},
      {"d", -2},
      {"a", -2},
      {"b", -2},
      {"c", -2},
      {"he", -3},
      {"ll", -3},
      {"llo", -4},
      {"hello", -5},
      {"\xE2\x96\x81hello", -6},
      {"\xE2\x96\x81w", -3},
      {"or", -3},
      {"\xE2\x96\x81wor", -4},
      {"ld", -3},
      {"\xE2\x96\x81world", -5},
      {"ab", -9},
      {"bc", -1},
      {"<user>", 0},
  };
  for (auto [text, score] : normal) {
    v.tokens.push_back(text);
    v.tokenTypes.push_back(std::string_view(text) == "<user>" ? 4 : 1);
    v.scores.push_back(score);
  }
  return v;
}

int32_t idOf(const Tokenizer &t, std::string_view text) {
  auto id = t.findToken(text);
  EXPECT_TRUE(id.has_value()) << text;
  return id.value_or(-1);
}

TEST(SentencePiece, EncodeDecode) {
  auto t = Tokenizer::fromVocab(spmVocab());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->kind(), VocabKind::SentencePiece);
  EXPECT_EQ(t->bos(), 1);
  EXPECT_EQ(t->eos(), 2);
  EXPECT_EQ(t->unk(), 0);
  EXPECT_TRUE(t->addBos());
  EXPECT_TRUE(t->addSpacePrefix());

  auto ids = t->encode("hello world", true);
  EXPECT_EQ(
      ids, (std::vector<int32_t>{1, idOf(*t, "\xE2\x96\x81hello"), idOf(*t, "\xE2\x96\x81world")}));
  EXPECT_EQ(t->decode(ids), "hello world");
  EXPECT_EQ(t->decode(ids, DecodeOptions{.stripLeadingSpace = false}), " hello world");

  // Highest score merges first: "bc" (-1) beats "ab" (-9).
  EXPECT_EQ(t->encode("abc", false),
            (std::vector<int32_t>{idOf(*t, "\xE2\x96\x81"), idOf(*t, "a"), idOf(*t, "bc")}));

  // Byte fallback for characters with no token: "i" and the 3 bytes of "€".
  auto fb = t->encode("hi\xE2\x82\xAC", false);
  EXPECT_EQ(fb, (std::vector<int32_t>{idOf(*t, "\xE2\x96\x81"), idOf(*t, "h"), idOf(*t, "<0x69>"),
                                      idOf(*t, "<0xE2>"), idOf(*t, "<0x82>"), idOf(*t, "<0xAC>")}));
  EXPECT_EQ(t->decode(fb), "hi\xE2\x82\xAC");

  // Stream decoding holds the euro sign until its last byte.
  StreamDecoder sd(*t);
  std::vector<std::string> parts;
  for (int32_t id : fb)
    parts.push_back(sd.push(id));
  EXPECT_EQ(parts, (std::vector<std::string>{"", "h", "i", "", "", "\xE2\x82\xAC"}));
  EXPECT_EQ(sd.flush(), "");

  // Empty input: nothing (BOS only with addSpecial).
  EXPECT_TRUE(t->encode("", false).empty());
  EXPECT_EQ(t->encode("", true), (std::vector<int32_t>{1}));

  // User-defined tokens are always split out; the text after a special token
  // gets the space prefix again (llama.cpp). Control tokens only with
  // parseSpecial.
  auto ud = t->encode("hello<user>hello", false);
  EXPECT_EQ(ud, (std::vector<int32_t>{idOf(*t, "\xE2\x96\x81hello"), idOf(*t, "<user>"),
                                      idOf(*t, "\xE2\x96\x81hello")}));
  EXPECT_EQ(t->decode(ud), "hello<user> hello");
  auto ctl = t->encode("<s>hello", false, /*parseSpecial=*/true);
  EXPECT_EQ(ctl, (std::vector<int32_t>{1, idOf(*t, "\xE2\x96\x81hello")}));
  EXPECT_NE(t->encode("<s>hello", false, false).front(), 1);

  // Invalid UTF-8 goes through byte fallback and round-trips.
  std::string bad = "he\xFFllo";
  EXPECT_EQ(t->decode(t->encode(bad, false)), bad);
}

TEST(SentencePiece, FromGGUFMetadata) {
  VocabData v = spmVocab();
  gguf::Writer w;
  w.setString("general.architecture", "llama");
  w.setString("tokenizer.ggml.model", "llama");
  w.set("tokenizer.ggml.tokens", gguf::val::strings(v.tokens));
  w.set("tokenizer.ggml.token_type", gguf::val::i32s(v.tokenTypes));
  w.set("tokenizer.ggml.scores", gguf::val::f32s(v.scores));
  w.setU32("tokenizer.ggml.bos_token_id", 1);
  w.setU32("tokenizer.ggml.eos_token_id", 2);
  w.setU32("tokenizer.ggml.unknown_token_id", 0);
  w.setBool("tokenizer.ggml.add_bos_token", false);
  w.setBool("tokenizer.ggml.add_space_prefix", false);
  auto bytes = w.toBytes();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto f = gguf::File::fromBuffer(*bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  auto t = Tokenizer::fromGGUF(**f);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_FALSE(t->addBos());
  EXPECT_FALSE(t->addSpacePrefix());
  // No space prefix: "hello" is not "▁hello".
  EXPECT_EQ(t->encode("hello", true), (std::vector<int32_t>{idOf(*t, "hello")}));
  EXPECT_EQ(t->decode(t->encode(" hello world", false)), " hello world");
}

//===----------------------------------------------------------------------===//
// Malformed metadata
//===----------------------------------------------------------------------===//

std::vector<std::string> byteLevelTokens() {
  // GPT-2 bytes_to_unicode order.
  std::vector<std::string> toks;
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    uint32_t cp = self ? b : 256 + n++;
    std::string s;
    if (cp < 0x80) {
      s += char(cp);
    } else {
      s += char(0xC0 | (cp >> 6));
      s += char(0x80 | (cp & 0x3F));
    }
    toks.push_back(s);
  }
  return toks;
}

gguf::Writer goodBpeWriter() {
  gguf::Writer w;
  w.setString("general.architecture", "bitnet");
  w.setString("tokenizer.ggml.model", "gpt2");
  w.setString("tokenizer.ggml.pre", "default");
  auto toks = byteLevelTokens();
  toks.push_back("ab");
  toks.push_back("<|bos|>");
  w.set("tokenizer.ggml.tokens", gguf::val::strings(toks));
  std::vector<int32_t> types(toks.size(), 1);
  types.back() = 3;
  w.set("tokenizer.ggml.token_type", gguf::val::i32s(types));
  w.set("tokenizer.ggml.merges", gguf::val::strings({"a b"}));
  w.setU32("tokenizer.ggml.bos_token_id", 257);
  return w;
}

absl::Status loadFrom(const gguf::Writer &w) {
  auto bytes = w.toBytes();
  if (!bytes.ok())
    return bytes.status();
  auto f = gguf::File::fromBuffer(*bytes);
  if (!f.ok())
    return f.status();
  return Tokenizer::fromGGUF(**f).status();
}

TEST(PreTokenizers, ChunkBoundariesDecideMerges) {
  // One merge "' s" -> "'s": it applies only where the pre-tokenizer keeps
  // the apostrophe and the s in one chunk.
  auto make = [](std::string pre) {
    VocabData v;
    v.model = "gpt2";
    v.pre = pre;
    v.tokens = byteLevelTokens();
    v.tokens.push_back("'s");
    v.merges = {"' s"};
    auto t = Tokenizer::fromVocab(v);
    EXPECT_TRUE(t.ok()) << t.status();
    return *std::move(t);
  };
  const std::vector<int32_t> split = {'i', 't', '\'', 's'}, merged = {'i', 't', 256};
  // default: [\p{P}...]+ runs first and isolates the apostrophe.
  EXPECT_EQ(make("default").encode("it's", false), split);
  EXPECT_EQ(make("").encode("it's", false), split);
  EXPECT_EQ(make("gpt2").encode("it's", false), merged);
  EXPECT_EQ(make("gpt-2").encode("it's", false), merged);
  EXPECT_EQ(make("llama-bpe").encode("it's", false), merged);
  // LLaMA-3 matches contractions case-insensitively, GPT-2 does not.
  EXPECT_EQ(make("llama-bpe").preTokenizer(), PreTokenizerKind::Llama3);
  EXPECT_TRUE(make("llama-bpe").addBos());
  EXPECT_FALSE(make("gpt2").addBos());
}

TEST_F(Llama3, CleanSpacesOption) {
  auto ids = tok_->encode("Hello , world ' s end . Ok ?", false);
  EXPECT_EQ(tok_->decode(ids), "Hello , world ' s end . Ok ?");
  EXPECT_EQ(tok_->decode(ids, DecodeOptions{.cleanSpaces = true}), "Hello, world's end. Ok?");
}

TEST(Malformed, GoodBaselineLoads) {
  gguf::Writer w = goodBpeWriter();
  auto bytes = w.toBytes();
  ASSERT_TRUE(bytes.ok());
  auto f = gguf::File::fromBuffer(*bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  auto t = Tokenizer::fromGGUF(**f);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->encode("abc", false), (std::vector<int32_t>{256, 'c'}));
  EXPECT_FALSE(t->addBos()); // gpt2 + default pre: no BOS unless add_bos_token
  EXPECT_EQ(t->encode("ab", true), (std::vector<int32_t>{256}));
}

void expectError(const gguf::Writer &w, std::string_view mentions) {
  absl::Status s = loadFrom(w);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find(mentions), std::string::npos)
      << "status: " << s << "\nexpected to mention: " << mentions;
}

TEST(Malformed, Errors) {
  {
    auto w = goodBpeWriter();
    w.remove("tokenizer.ggml.tokens");
    expectError(w, "tokenizer.ggml.tokens");
  }
  {
    auto w = goodBpeWriter();
    w.set("tokenizer.ggml.tokens", gguf::val::i32s({1, 2, 3}));
    expectError(w, "tokenizer.ggml.tokens");
  }
  {
    auto w = goodBpeWriter();
    w.set("tokenizer.ggml.tokens", gguf::val::strings({}));
    expectError(w, "tokenizer.ggml.tokens");
  }
  {
    auto w = goodBpeWriter();
    w.remove("tokenizer.ggml.model");
    expectError(w, "tokenizer.ggml.model");
  }
  {
    auto w = goodBpeWriter();
    w.setU32("tokenizer.ggml.model", 2);
    expectError(w, "tokenizer.ggml.model");
  }
  {
    auto w = goodBpeWriter();
    w.setString("tokenizer.ggml.model", "bert");
    expectError(w, "tokenizer.ggml.model");
  }
  {
    auto w = goodBpeWriter();
    w.setString("tokenizer.ggml.pre", "no-such-pre");
    expectError(w, "tokenizer.ggml.pre");
  }
  {
    auto w = goodBpeWriter();
    w.set("tokenizer.ggml.merges", gguf::val::strings({"a b", "zz q"}));
    expectError(w, "tokenizer.ggml.merges[1]");
  }
  {
    auto w = goodBpeWriter();
    w.set("tokenizer.ggml.merges", gguf::val::strings({"b c"})); // "bc" is no token
    expectError(w, "tokenizer.ggml.merges[0]");
  }
  {
    auto w = goodBpeWriter();
    w.set("tokenizer.ggml.merges", gguf::val::strings({"ab"})); // no separator
    expectError(w, "tokenizer.ggml.merges[0]");
  }
  {
    auto w = goodBpeWriter();
    w.set("tokenizer.ggml.merges", gguf::val::u32s({1}));
    expectError(w, "tokenizer.ggml.merges");
  }
  {
    auto w = goodBpeWriter();
    w.setU32("tokenizer.ggml.bos_token_id", 100000);
    expectError(w, "tokenizer.ggml.bos_token_id");
  }
  {
    auto w = goodBpeWriter();
    w.setI32("tokenizer.ggml.eos_token_id", -5);
    expectError(w, "tokenizer.ggml.eos_token_id");
  }
  {
    auto w = goodBpeWriter();
    w.setString("tokenizer.ggml.eot_token_id", "x");
    expectError(w, "tokenizer.ggml.eot_token_id");
  }
  {
    auto w = goodBpeWriter();
    w.set("tokenizer.ggml.token_type", gguf::val::i32s({1, 1}));
    expectError(w, "tokenizer.ggml.token_type");
  }
  {
    auto w = goodBpeWriter();
    w.set("tokenizer.ggml.scores", gguf::val::strings({"x"}));
    expectError(w, "tokenizer.ggml.scores");
  }
  {
    auto w = goodBpeWriter();
    w.setString("tokenizer.ggml.add_bos_token", "yes");
    expectError(w, "tokenizer.ggml.add_bos_token");
  }
  {
    // A byte-level vocabulary missing one of the 256 byte tokens.
    auto w = goodBpeWriter();
    auto toks = byteLevelTokens();
    toks[0] = "zzz";
    toks.push_back("ab");
    toks.push_back("<|bos|>");
    w.set("tokenizer.ggml.tokens", gguf::val::strings(toks));
    expectError(w, "tokenizer.ggml.tokens");
  }
  {
    auto w = goodBpeWriter();
    auto toks = byteLevelTokens();
    toks.push_back("ab");
    toks.push_back("ab");
    w.set("tokenizer.ggml.tokens", gguf::val::strings(toks));
    expectError(w, "tokenizer.ggml.tokens[257]");
  }
}

TEST(Malformed, FromVocabErrors) {
  VocabData v;
  v.model = "gpt2";
  EXPECT_FALSE(Tokenizer::fromVocab(v).ok()); // no tokens
  VocabData s = spmVocab();
  s.scores.pop_back();
  auto r = Tokenizer::fromVocab(s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("tokenizer.ggml.scores"), std::string::npos);
}

} // namespace
} // namespace tern::tokenizer
