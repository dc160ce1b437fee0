// Tests of the public C API (libtern.so through tern.h): every function, its
// results against the C++ runtime it wraps, and its error paths (each returns
// the documented code and a message naming the problem, never a crash).
// The reference path runs everywhere (the sanitizer build included); the
// compiled path runs where ctest sets $TERNC (full build).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "runtime/chat/chat.h"
#include "runtime/exec/artifact_model.h"
#include "runtime/exec/compile_cache.h"
#include "runtime/include/tern/tern.h"
#include "runtime/model/eval.h"
#include "runtime/model/model.h"
#include "runtime/support/status.h"
#include "runtime/tokenizer/tokenizer.h"
#include "gtest/gtest.h"

namespace {

namespace fs = std::filesystem;
using namespace tern;

const std::string kTq2 = std::string(TERN_SHARED_DIR) + "/fixtures/models/tiny-bitnet-tq2.gguf";
constexpr int32_t kVocab = 356, kBos = 354, kEos = 355;
const std::vector<int32_t> kPrompt = {354, 116, 262, 281, 101, 32,  119, 101, 114, 101,
                                      32,  104, 97,  112, 112, 121, 32,  116, 111};

std::string lastError() { return tern_last_error(); }

// The message of the last failure contains every one of `parts`.
#define EXPECT_ERROR(call, code, ...)                                                              \
  do {                                                                                             \
    EXPECT_EQ((call), (code)) << lastError();                                                      \
    for (const char *part : {__VA_ARGS__})                                                         \
      EXPECT_NE(lastError().find(part), std::string::npos)                                         \
          << "message '" << lastError() << "' lacks '" << part << "'";                             \
  } while (0)

tern_model_options refOptions() {
  tern_model_options o;
  tern_model_options_init(&o);
  o.path = TERN_PATH_REFERENCE;
  return o;
}

struct ModelPtr {
  tern_model *m = nullptr;
  ~ModelPtr() { tern_model_free(m); }
};
struct SessionPtr {
  tern_session *s = nullptr;
  ~SessionPtr() { tern_session_free(s); }
};
struct SamplerPtr {
  tern_sampler *s = nullptr;
  ~SamplerPtr() { tern_sampler_free(s); }
};

tern_model *openRef(tern_model_options o = refOptions(), const std::string &path = kTq2) {
  tern_model *m = nullptr;
  EXPECT_EQ(tern_model_open(path.c_str(), &o, &m), TERN_OK) << lastError();
  return m;
}

std::vector<float> logitsOf(const tern_session *s) {
  const float *l = nullptr;
  size_t n = 0;
  EXPECT_EQ(tern_session_logits(s, &l, &n), TERN_OK) << lastError();
  return l ? std::vector<float>(l, l + n) : std::vector<float>();
}

std::string tmpDir() {
  fs::path d = fs::path(TERN_CAPI_TMP);
  fs::create_directories(d);
  return d.string();
}

// The C++ path on the same file and options, for comparisons.
std::unique_ptr<model::Model> openCxx(const std::string &path, uint32_t ctx = 0) {
  model::ModelOptions o;
  o.contextLength = ctx;
  auto m = exec::openModel(path, o);
  EXPECT_TRUE(m.ok()) << statusMessage(m.status());
  return m.ok() ? std::move(*m) : nullptr;
}

std::vector<float> cxxLogits(model::Model &m, std::span<const int32_t> tokens) {
  auto s = m.newSession();
  EXPECT_TRUE(s.ok());
  std::vector<float> logits(m.config().nVocab);
  EXPECT_TRUE(m.decode(**s, tokens, logits).ok());
  return logits;
}

// ---------------------------------------------------------------------------

TEST(CApi, VersionAndStatusNames) {
  EXPECT_STREQ(tern_version(), TERN_PROJECT_VERSION);
  EXPECT_EQ(std::string(tern_version()), std::to_string(TERN_VERSION_MAJOR) + "." +
                                             std::to_string(TERN_VERSION_MINOR) + "." +
                                             std::to_string(TERN_VERSION_PATCH));
  EXPECT_STREQ(tern_status_name(TERN_OK), "TERN_OK");
  EXPECT_STREQ(tern_status_name(TERN_ERR_KV_EXHAUSTED), "TERN_ERR_KV_EXHAUSTED");
  EXPECT_STREQ(tern_status_name(TERN_ERR_INTERNAL), "TERN_ERR_INTERNAL");
  EXPECT_STREQ(tern_status_name(tern_status(999)), "TERN_ERR_UNKNOWN");
  for (int c = TERN_OK; c <= TERN_ERR_INTERNAL; ++c)
    EXPECT_STRNE(tern_status_name(tern_status(c)), "TERN_ERR_UNKNOWN") << c;
}

TEST(CApi, OptionDefaults) {
  tern_model_options o;
  std::memset(&o, 0x5a, sizeof(o));
  tern_model_options_init(&o);
  EXPECT_EQ(o.threads, 1);
  EXPECT_EQ(o.ctx_size, 0u);
  EXPECT_EQ(o.parallel, 1u);
  EXPECT_EQ(o.kv_mem_bytes, 0u);
  EXPECT_EQ(o.kv_page_size, 16u);
  EXPECT_EQ(o.prefix_cache, 1);
  EXPECT_EQ(o.verify_weights, 1);
  EXPECT_EQ(o.path, TERN_PATH_AUTO);
  EXPECT_EQ(o.target, nullptr);
  EXPECT_EQ(o.log, nullptr);
  tern_model_options_init(nullptr); // no crash

  tern_sampler_params p;
  tern_sampler_params_init(&p);
  EXPECT_FLOAT_EQ(p.temperature, 0.8f);
  EXPECT_EQ(p.top_k, 40);
  EXPECT_FLOAT_EQ(p.top_p, 0.95f);
  EXPECT_FLOAT_EQ(p.min_p, 0.05f);
  EXPECT_EQ(p.repeat_last_n, 64);
  EXPECT_FLOAT_EQ(p.repeat_penalty, 1.0f);
  EXPECT_FLOAT_EQ(p.frequency_penalty, 0.0f);
  EXPECT_FLOAT_EQ(p.presence_penalty, 0.0f);
  EXPECT_EQ(p.seed, TERN_SEED_RANDOM);
  EXPECT_EQ(p.n_logit_bias, 0u);
  EXPECT_EQ(p.ignore_eos, 0);
  tern_sampler_params_init(nullptr);
}

TEST(CApi, OpenErrors) {
  tern_model *m = reinterpret_cast<tern_model *>(0x1);
  tern_model_options o = refOptions();
  EXPECT_ERROR(tern_model_open(kTq2.c_str(), &o, nullptr), TERN_ERR_INVALID_ARGUMENT, "model");
  EXPECT_ERROR(tern_model_open(nullptr, &o, &m), TERN_ERR_INVALID_ARGUMENT, "path");
  EXPECT_EQ(m, nullptr);

  EXPECT_ERROR(tern_model_open("/nonexistent/model.gguf", &o, &m), TERN_ERR_NOT_FOUND,
               "/nonexistent/model.gguf");
  EXPECT_EQ(m, nullptr);

  // Files that are not models.
  const std::string bad = tmpDir() + "/garbage.gguf";
  std::ofstream(bad) << "this is not a GGUF file, just text long enough to be read";
  EXPECT_ERROR(tern_model_open(bad.c_str(), &o, &m), TERN_ERR_BAD_MODEL, "garbage.gguf");
  EXPECT_EQ(m, nullptr);
  const std::string badTern = tmpDir() + "/garbage.tern";
  std::ofstream(badTern) << "not an artifact either";
  EXPECT_ERROR(tern_model_open(badTern.c_str(), &o, &m), TERN_ERR_BAD_MODEL, "garbage.tern");
  const std::string truncated = tmpDir() + "/truncated.gguf";
  {
    std::ifstream in(kTq2, std::ios::binary);
    std::string head(4096, '\0');
    in.read(head.data(), std::streamsize(head.size()));
    std::ofstream(truncated, std::ios::binary) << head;
  }
  EXPECT_ERROR(tern_model_open(truncated.c_str(), &o, &m), TERN_ERR_BAD_MODEL, "truncated.gguf");

  // Bad options name the field.
  tern_model_options b = o;
  b.threads = -1;
  EXPECT_ERROR(tern_model_open(kTq2.c_str(), &b, &m), TERN_ERR_INVALID_ARGUMENT, "threads");
  b = o;
  b.parallel = 0;
  EXPECT_ERROR(tern_model_open(kTq2.c_str(), &b, &m), TERN_ERR_INVALID_ARGUMENT, "parallel");
  b = o;
  b.kv_page_size = 0;
  EXPECT_ERROR(tern_model_open(kTq2.c_str(), &b, &m), TERN_ERR_INVALID_ARGUMENT, "kv_page_size");
  b = o;
  b.path = tern_model_path(7);
  EXPECT_ERROR(tern_model_open(kTq2.c_str(), &b, &m), TERN_ERR_INVALID_ARGUMENT, "path", "7");
  b = o;
  b.target = "";
  EXPECT_ERROR(tern_model_open(kTq2.c_str(), &b, &m), TERN_ERR_INVALID_ARGUMENT, "target");
  EXPECT_EQ(m, nullptr);

  tern_model_free(nullptr); // no crash
}

TEST(CApi, CompileWithoutTerncIsNotFound) {
  const char *old = std::getenv("TERNC");
  std::string saved = old ? old : "";
  setenv("TERNC", "/nonexistent/ternc", 1);
  tern_model_options o;
  tern_model_options_init(&o);
  o.path = TERN_PATH_COMPILE;
  tern_model *m = nullptr;
  EXPECT_ERROR(tern_model_open(kTq2.c_str(), &o, &m), TERN_ERR_NOT_FOUND, "/nonexistent/ternc");
  EXPECT_EQ(m, nullptr);
  if (old)
    setenv("TERNC", saved.c_str(), 1);
  else
    unsetenv("TERNC");
}

TEST(CApi, ModelInfoAndDescribe) {
  tern_model_options o = refOptions();
  o.ctx_size = 128;
  o.threads = 2;
  ModelPtr m{openRef(o)};
  ASSERT_NE(m.m, nullptr);
  tern_model_info info;
  ASSERT_EQ(tern_model_get_info(m.m, &info), TERN_OK);
  EXPECT_EQ(info.n_vocab, kVocab);
  EXPECT_EQ(info.n_ctx, 128u);
  EXPECT_EQ(info.n_embd, 256u);
  EXPECT_EQ(info.n_layer, 2u);
  EXPECT_EQ(info.n_head, 4u);
  EXPECT_EQ(info.n_head_kv, 2u);
  EXPECT_EQ(info.threads, 2u);
  EXPECT_EQ(info.bos, kBos);
  EXPECT_EQ(info.eos, kEos);
  EXPECT_EQ(info.compiled, 0);
  EXPECT_EQ(info.has_tokenizer, 1);
  EXPECT_STREQ(info.arch, "bitnet");
  ASSERT_NE(info.name, nullptr);
  const char *d = tern_model_describe(m.m);
  ASSERT_NE(d, nullptr);
  EXPECT_NE(std::string(d).find("reference"), std::string::npos) << d;
  EXPECT_NE(std::string(d).find("ctx 128"), std::string::npos) << d;

  EXPECT_ERROR(tern_model_get_info(nullptr, &info), TERN_ERR_INVALID_ARGUMENT, "model");
  EXPECT_ERROR(tern_model_get_info(m.m, nullptr), TERN_ERR_INVALID_ARGUMENT, "info");
  EXPECT_EQ(tern_model_describe(nullptr), nullptr);
  EXPECT_NE(lastError().find("model is NULL"), std::string::npos) << lastError();

  // Default context: min(model's, 4096).
  ModelPtr m2{openRef()};
  ASSERT_EQ(tern_model_get_info(m2.m, &info), TERN_OK);
  EXPECT_EQ(info.n_ctx, std::min<uint32_t>(info.n_ctx_train, 4096));
}

TEST(CApi, Tokenize) {
  ModelPtr m{openRef()};
  ASSERT_NE(m.m, nullptr);
  auto cxxTok = tokenizer::Tokenizer::fromGGUF(*openCxx(kTq2)->ggufFile());
  ASSERT_TRUE(cxxTok.ok());
  const std::string text = "Hello world, once upon a time.";

  size_t n = 0;
  EXPECT_ERROR(
      tern_tokenize(m.m, text.data(), text.size(), TERN_TOKENIZE_ADD_SPECIAL, nullptr, 0, &n),
      TERN_ERR_BUFFER_TOO_SMALL, "do not fit");
  const std::vector<int32_t> want = cxxTok->encode(text, true);
  ASSERT_EQ(n, want.size());
  std::vector<int32_t> ids(n);
  ASSERT_EQ(tern_tokenize(m.m, text.data(), text.size(), TERN_TOKENIZE_ADD_SPECIAL, ids.data(),
                          ids.size(), &n),
            TERN_OK)
      << lastError();
  EXPECT_EQ(ids, want);
  EXPECT_EQ(ids.front(), kBos);
  // Too small a buffer: the count needed, nothing else.
  std::vector<int32_t> small(2);
  EXPECT_EQ(tern_tokenize(m.m, text.data(), text.size(), TERN_TOKENIZE_ADD_SPECIAL, small.data(),
                          small.size(), &n),
            TERN_ERR_BUFFER_TOO_SMALL);
  EXPECT_EQ(n, want.size());
  // Without special tokens, and parsing them.
  ids.assign(64, 0);
  ASSERT_EQ(tern_tokenize(m.m, text.data(), text.size(), 0, ids.data(), ids.size(), &n), TERN_OK);
  ids.resize(n);
  EXPECT_EQ(ids, cxxTok->encode(text, false));
  const std::string special = "<|begin_of_text|>hi";
  ids.assign(64, 0);
  ASSERT_EQ(tern_tokenize(m.m, special.data(), special.size(), TERN_TOKENIZE_PARSE_SPECIAL,
                          ids.data(), ids.size(), &n),
            TERN_OK);
  ASSERT_GE(n, 1u);
  EXPECT_EQ(ids[0], kBos);
  // Empty text is fine (NULL with length 0 too).
  EXPECT_EQ(tern_tokenize(m.m, nullptr, 0, 0, nullptr, 0, &n), TERN_OK) << lastError();
  EXPECT_EQ(n, 0u);

  EXPECT_ERROR(tern_tokenize(nullptr, "a", 1, 0, ids.data(), ids.size(), &n),
               TERN_ERR_INVALID_ARGUMENT, "model");
  EXPECT_ERROR(tern_tokenize(m.m, nullptr, 3, 0, ids.data(), ids.size(), &n),
               TERN_ERR_INVALID_ARGUMENT, "text");
  EXPECT_ERROR(tern_tokenize(m.m, "a", 1, 0, ids.data(), ids.size(), nullptr),
               TERN_ERR_INVALID_ARGUMENT, "n_tokens");
  EXPECT_ERROR(tern_tokenize(m.m, "a", 1, 0x80, ids.data(), ids.size(), &n),
               TERN_ERR_INVALID_ARGUMENT, "flag", "0x80");
  EXPECT_ERROR(tern_tokenize(m.m, "abc", 3, 0, nullptr, 8, &n), TERN_ERR_INVALID_ARGUMENT,
               "tokens");
}

TEST(CApi, Detokenize) {
  ModelPtr m{openRef()};
  ASSERT_NE(m.m, nullptr);
  const std::string text = "Once upon a time, there was a cat.";
  std::vector<int32_t> ids(64);
  size_t n = 0;
  ASSERT_EQ(tern_tokenize(m.m, text.data(), text.size(), TERN_TOKENIZE_ADD_SPECIAL, ids.data(),
                          ids.size(), &n),
            TERN_OK);
  ids.resize(n);

  std::string out(256, '\0');
  size_t len = 0;
  ASSERT_EQ(tern_detokenize(m.m, ids.data(), ids.size(), 0, out.data(), out.size(), &len), TERN_OK)
      << lastError();
  EXPECT_EQ(out.substr(0, len), text);
  // Pieces concatenate to the same text; BOS renders only when asked.
  std::string joined;
  for (int32_t id : ids) {
    char buf[64];
    ASSERT_EQ(tern_token_to_piece(m.m, id, 0, buf, sizeof(buf), &len), TERN_OK) << lastError();
    joined.append(buf, len);
  }
  EXPECT_EQ(joined, text);
  char buf[64];
  ASSERT_EQ(tern_token_to_piece(m.m, kBos, 0, buf, sizeof(buf), &len), TERN_OK);
  EXPECT_EQ(len, 0u);
  ASSERT_EQ(tern_token_to_piece(m.m, kBos, TERN_DETOKENIZE_RENDER_SPECIAL, buf, sizeof(buf), &len),
            TERN_OK);
  EXPECT_EQ(std::string(buf, len), "<|begin_of_text|>");
  ASSERT_EQ(tern_detokenize(m.m, ids.data(), ids.size(), TERN_DETOKENIZE_RENDER_SPECIAL, out.data(),
                            out.size(), &len),
            TERN_OK);
  EXPECT_EQ(out.substr(0, len), "<|begin_of_text|>" + text);

  // Sizes.
  EXPECT_ERROR(tern_detokenize(m.m, ids.data(), ids.size(), 0, out.data(), 3, &len),
               TERN_ERR_BUFFER_TOO_SMALL, "do not fit");
  EXPECT_EQ(len, text.size());
  EXPECT_EQ(tern_token_to_piece(m.m, 262, TERN_DETOKENIZE_RENDER_SPECIAL, nullptr, 0, &len),
            TERN_ERR_BUFFER_TOO_SMALL);
  EXPECT_GT(len, 0u);

  // Bad ids name the id.
  EXPECT_ERROR(tern_token_to_piece(m.m, kVocab, 0, buf, sizeof(buf), &len),
               TERN_ERR_INVALID_ARGUMENT, "356", "vocabulary");
  EXPECT_ERROR(tern_token_to_piece(m.m, -1, 0, buf, sizeof(buf), &len), TERN_ERR_INVALID_ARGUMENT,
               "-1");
  const int32_t bad[] = {1, 2, 9999};
  EXPECT_ERROR(tern_detokenize(m.m, bad, 3, 0, out.data(), out.size(), &len),
               TERN_ERR_INVALID_ARGUMENT, "9999", "index 2");
  EXPECT_ERROR(tern_detokenize(m.m, nullptr, 3, 0, out.data(), out.size(), &len),
               TERN_ERR_INVALID_ARGUMENT, "tokens");
  EXPECT_ERROR(tern_detokenize(nullptr, bad, 1, 0, out.data(), out.size(), &len),
               TERN_ERR_INVALID_ARGUMENT, "model");
  EXPECT_ERROR(tern_detokenize(m.m, bad, 1, 0, out.data(), out.size(), nullptr),
               TERN_ERR_INVALID_ARGUMENT, "len");
  EXPECT_ERROR(tern_token_to_piece(m.m, 1, 0x10, buf, sizeof(buf), &len), TERN_ERR_INVALID_ARGUMENT,
               "flag");

  EXPECT_EQ(tern_token_is_eog(m.m, kEos), 1);
  EXPECT_EQ(tern_token_is_eog(m.m, 100), 0);
  EXPECT_EQ(tern_token_is_eog(m.m, -3), 0);
  EXPECT_EQ(tern_token_is_eog(m.m, kVocab), 0);
  EXPECT_EQ(tern_token_is_eog(nullptr, kEos), 0);
}

TEST(CApi, StreamingDetokenizer) {
  ModelPtr m{openRef()};
  ASSERT_NE(m.m, nullptr);
  const std::string text = "h\xc3\xa9llo w\xc3\xb6rld \xe6\x97\xa5\xe6\x9c\xac!";
  std::vector<int32_t> ids(128);
  size_t n = 0;
  ASSERT_EQ(tern_tokenize(m.m, text.data(), text.size(), 0, ids.data(), ids.size(), &n), TERN_OK);
  ids.resize(n);
  tern_detokenizer *d = nullptr;
  ASSERT_EQ(tern_detokenizer_create(m.m, 0, &d), TERN_OK) << lastError();
  std::string out;
  int heldBack = 0;
  for (int32_t id : ids) {
    const char *t = nullptr;
    size_t len = 99;
    ASSERT_EQ(tern_detokenizer_push(d, id, &t, &len), TERN_OK) << lastError();
    out.append(t, len);
    heldBack += len == 0;
  }
  EXPECT_GT(heldBack, 0); // the multi-byte characters came in pieces
  const char *t = nullptr;
  size_t len = 0;
  ASSERT_EQ(tern_detokenizer_flush(d, &t, &len), TERN_OK);
  EXPECT_EQ(len, 0u);
  EXPECT_EQ(out, text);
  // An unfinished character at the end becomes U+FFFD on flush.
  std::vector<int32_t> lead(8);
  ASSERT_EQ(tern_tokenize(m.m, "\xe6", 1, 0, lead.data(), lead.size(), &n), TERN_OK);
  ASSERT_EQ(n, 1u);
  ASSERT_EQ(tern_detokenizer_push(d, lead[0], &t, &len), TERN_OK);
  EXPECT_EQ(len, 0u);
  ASSERT_EQ(tern_detokenizer_flush(d, &t, &len), TERN_OK);
  EXPECT_EQ(std::string(t, len), "\xef\xbf\xbd");

  EXPECT_ERROR(tern_detokenizer_push(d, kVocab, &t, &len), TERN_ERR_INVALID_ARGUMENT, "356");
  EXPECT_ERROR(tern_detokenizer_push(nullptr, 1, &t, &len), TERN_ERR_INVALID_ARGUMENT,
               "detokenizer");
  EXPECT_ERROR(tern_detokenizer_push(d, 1, nullptr, &len), TERN_ERR_INVALID_ARGUMENT, "text");
  EXPECT_ERROR(tern_detokenizer_push(d, 1, &t, nullptr), TERN_ERR_INVALID_ARGUMENT, "len");
  EXPECT_ERROR(tern_detokenizer_flush(nullptr, &t, &len), TERN_ERR_INVALID_ARGUMENT, "detokenizer");
  EXPECT_ERROR(tern_detokenizer_flush(d, nullptr, &len), TERN_ERR_INVALID_ARGUMENT, "text");
  tern_detokenizer_free(d);
  tern_detokenizer_free(nullptr);
  tern_detokenizer *x = reinterpret_cast<tern_detokenizer *>(0x1);
  EXPECT_ERROR(tern_detokenizer_create(nullptr, 0, &x), TERN_ERR_INVALID_ARGUMENT, "model");
  EXPECT_EQ(x, nullptr);
  EXPECT_ERROR(tern_detokenizer_create(m.m, 0, nullptr), TERN_ERR_INVALID_ARGUMENT, "detokenizer");
  EXPECT_ERROR(tern_detokenizer_create(m.m, 0x40, &x), TERN_ERR_INVALID_ARGUMENT, "flag");
}

TEST(CApi, DecodeMatchesCxxAndSessionState) {
  ModelPtr m{openRef()};
  ASSERT_NE(m.m, nullptr);
  SessionPtr s;
  ASSERT_EQ(tern_session_create(m.m, &s.s), TERN_OK) << lastError();
  EXPECT_EQ(tern_session_position(s.s), 0);
  const float *l = nullptr;
  size_t nl = 0;
  EXPECT_ERROR(tern_session_logits(s.s, &l, &nl), TERN_ERR_STATE, "no logits");
  EXPECT_EQ(l, nullptr);

  ASSERT_EQ(tern_decode(s.s, kPrompt.data(), kPrompt.size()), TERN_OK) << lastError();
  EXPECT_EQ(tern_session_position(s.s), int64_t(kPrompt.size()));
  const int32_t *toks = nullptr;
  size_t nt = 0;
  ASSERT_EQ(tern_session_tokens(s.s, &toks, &nt), TERN_OK);
  EXPECT_EQ(std::vector<int32_t>(toks, toks + nt), kPrompt);
  std::vector<float> got = logitsOf(s.s);
  ASSERT_EQ(got.size(), size_t(kVocab));
  auto cxx = openCxx(kTq2);
  EXPECT_EQ(got, cxxLogits(*cxx, kPrompt)); // same path, bit for bit

  // Errors.
  tern_session *none = reinterpret_cast<tern_session *>(0x1);
  EXPECT_ERROR(tern_session_create(nullptr, &none), TERN_ERR_INVALID_ARGUMENT, "model");
  EXPECT_EQ(none, nullptr);
  EXPECT_ERROR(tern_session_create(m.m, nullptr), TERN_ERR_INVALID_ARGUMENT, "session");
  EXPECT_ERROR(tern_decode(nullptr, kPrompt.data(), 1), TERN_ERR_INVALID_ARGUMENT, "session");
  EXPECT_ERROR(tern_decode(s.s, nullptr, 2), TERN_ERR_INVALID_ARGUMENT, "tokens");
  EXPECT_ERROR(tern_decode(s.s, kPrompt.data(), 0), TERN_ERR_INVALID_ARGUMENT, "no tokens");
  const int32_t bad[] = {5, kVocab + 4};
  EXPECT_ERROR(tern_decode(s.s, bad, 2), TERN_ERR_INVALID_ARGUMENT, "360", "vocabulary");
  const int32_t neg[] = {-7};
  EXPECT_ERROR(tern_decode(s.s, neg, 1), TERN_ERR_INVALID_ARGUMENT, "-7");
  // A failed decode leaves the session (and its logits) as they were.
  EXPECT_EQ(tern_session_position(s.s), int64_t(kPrompt.size()));
  EXPECT_EQ(logitsOf(s.s), got);
  EXPECT_EQ(tern_session_position(nullptr), -1);
  EXPECT_NE(lastError().find("session"), std::string::npos);
  EXPECT_ERROR(tern_session_tokens(nullptr, &toks, &nt), TERN_ERR_INVALID_ARGUMENT, "session");
  EXPECT_ERROR(tern_session_tokens(s.s, nullptr, &nt), TERN_ERR_INVALID_ARGUMENT, "tokens");
  EXPECT_ERROR(tern_session_tokens(s.s, &toks, nullptr), TERN_ERR_INVALID_ARGUMENT, "n_tokens");
  EXPECT_ERROR(tern_session_logits(nullptr, &l, &nl), TERN_ERR_INVALID_ARGUMENT, "session");
  EXPECT_ERROR(tern_session_logits(s.s, nullptr, &nl), TERN_ERR_INVALID_ARGUMENT, "logits");
  EXPECT_ERROR(tern_session_logits(s.s, &l, nullptr), TERN_ERR_INVALID_ARGUMENT, "n_logits");
  tern_session_free(nullptr);
}

TEST(CApi, ForkAndTruncate) {
  ModelPtr m{openRef()};
  ASSERT_NE(m.m, nullptr);
  SessionPtr s, f;
  ASSERT_EQ(tern_session_create(m.m, &s.s), TERN_OK);
  ASSERT_EQ(tern_decode(s.s, kPrompt.data(), kPrompt.size()), TERN_OK) << lastError();
  const std::vector<float> afterPrompt = logitsOf(s.s);
  tern_kv_usage before, after;
  ASSERT_EQ(tern_model_kv_usage(m.m, &before), TERN_OK);
  ASSERT_EQ(tern_session_fork(s.s, &f.s), TERN_OK) << lastError();
  ASSERT_EQ(tern_model_kv_usage(m.m, &after), TERN_OK);
  EXPECT_EQ(after.used_blocks, before.used_blocks); // shared, not copied
  EXPECT_EQ(after.sessions, before.sessions + 1);
  EXPECT_EQ(tern_session_position(f.s), int64_t(kPrompt.size()));
  EXPECT_EQ(logitsOf(f.s), afterPrompt);

  // Both continue alike; the fork's copy-on-write leaves the parent intact.
  const int32_t next = 262;
  ASSERT_EQ(tern_decode(f.s, &next, 1), TERN_OK) << lastError();
  ASSERT_EQ(tern_decode(s.s, &next, 1), TERN_OK) << lastError();
  EXPECT_EQ(logitsOf(f.s), logitsOf(s.s));

  // Truncate: back to the prompt, logits dropped; refeeding gives the same.
  ASSERT_EQ(tern_session_truncate(s.s, kPrompt.size() - 1), TERN_OK) << lastError();
  EXPECT_EQ(tern_session_position(s.s), int64_t(kPrompt.size() - 1));
  const float *l;
  size_t nl;
  EXPECT_EQ(tern_session_logits(s.s, &l, &nl), TERN_ERR_STATE);
  ASSERT_EQ(tern_decode(s.s, &kPrompt.back(), 1), TERN_OK);
  EXPECT_EQ(logitsOf(s.s), afterPrompt);
  const std::string held = std::to_string(kPrompt.size());
  EXPECT_ERROR(tern_session_truncate(s.s, 1000), TERN_ERR_INVALID_ARGUMENT, "1000", held.c_str());
  ASSERT_EQ(tern_session_truncate(s.s, 0), TERN_OK);
  EXPECT_EQ(tern_session_position(s.s), 0);

  EXPECT_ERROR(tern_session_truncate(nullptr, 0), TERN_ERR_INVALID_ARGUMENT, "session");
  tern_session *g = reinterpret_cast<tern_session *>(0x1);
  EXPECT_ERROR(tern_session_fork(nullptr, &g), TERN_ERR_INVALID_ARGUMENT, "session");
  EXPECT_EQ(g, nullptr);
  EXPECT_ERROR(tern_session_fork(s.s, nullptr), TERN_ERR_INVALID_ARGUMENT, "fork");
  EXPECT_ERROR(tern_model_kv_usage(nullptr, &after), TERN_ERR_INVALID_ARGUMENT, "model");
  EXPECT_ERROR(tern_model_kv_usage(m.m, nullptr), TERN_ERR_INVALID_ARGUMENT, "usage");
}

TEST(CApi, BatchedForwardIsBatchInvariantWithPerItemStatus) {
  ModelPtr m{openRef()};
  ASSERT_NE(m.m, nullptr);
  auto cxx = openCxx(kTq2);
  const std::vector<std::vector<int32_t>> prompts = {
      kPrompt, {354, 72, 101, 108, 108, 111}, {354, 262, 281}};
  SessionPtr s[3];
  tern_batch_item items[3] = {};
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(tern_session_create(m.m, &s[i].s), TERN_OK);
    items[i].session = s[i].s;
    items[i].tokens = prompts[size_t(i)].data();
    items[i].n_tokens = prompts[size_t(i)].size();
    items[i].want_logits = 1;
  }
  ASSERT_EQ(tern_forward(m.m, items, 3), TERN_OK) << lastError();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(items[i].status, TERN_OK);
    EXPECT_STREQ(items[i].message, "");
    EXPECT_EQ(logitsOf(s[i].s), cxxLogits(*cxx, prompts[size_t(i)])) << i;
  }

  // One bad item: the others run, it is left as it was.
  const int32_t good = 262, badTok = 4000;
  for (int i = 0; i < 3; ++i) {
    items[i].tokens = i == 1 ? &badTok : &good;
    items[i].n_tokens = 1;
    items[i].want_logits = i != 2;
  }
  EXPECT_ERROR(tern_forward(m.m, items, 3), TERN_ERR_BATCH, "1 of 3", "item 1", "4000");
  EXPECT_EQ(items[0].status, TERN_OK);
  EXPECT_EQ(items[1].status, TERN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(items[1].message).find("4000"), std::string::npos) << items[1].message;
  EXPECT_EQ(items[2].status, TERN_OK);
  EXPECT_EQ(tern_session_position(s[0].s), int64_t(prompts[0].size() + 1));
  EXPECT_EQ(tern_session_position(s[1].s), int64_t(prompts[1].size()));
  EXPECT_EQ(tern_session_position(s[2].s), int64_t(prompts[2].size() + 1));
  EXPECT_EQ(logitsOf(s[1].s), cxxLogits(*cxx, prompts[1])); // kept
  const float *l;
  size_t nl;
  EXPECT_EQ(tern_session_logits(s[2].s, &l, &nl), TERN_ERR_STATE); // not asked for
  std::vector<int32_t> p0 = prompts[0];
  p0.push_back(good);
  EXPECT_EQ(logitsOf(s[0].s), cxxLogits(*cxx, p0));

  // Malformed calls: nothing runs, every item gets the call's status.
  items[1].tokens = &good;
  items[2].session = s[0].s;
  EXPECT_ERROR(tern_forward(m.m, items, 3), TERN_ERR_INVALID_ARGUMENT, "item 2", "twice");
  for (auto &it : items) {
    EXPECT_EQ(it.status, TERN_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(it.message).find("twice"), std::string::npos);
  }
  EXPECT_EQ(tern_session_position(s[0].s), int64_t(prompts[0].size() + 1));
  items[2].session = nullptr;
  EXPECT_ERROR(tern_forward(m.m, items, 3), TERN_ERR_INVALID_ARGUMENT, "item 2", "NULL");
  ModelPtr other{openRef()};
  EXPECT_ERROR(tern_forward(other.m, items, 2), TERN_ERR_INVALID_ARGUMENT, "item 0",
               "another model");
  items[0].tokens = nullptr;
  EXPECT_ERROR(tern_forward(m.m, items, 1), TERN_ERR_INVALID_ARGUMENT, "tokens is NULL");
  EXPECT_ERROR(tern_forward(m.m, nullptr, 2), TERN_ERR_INVALID_ARGUMENT, "items");
  EXPECT_ERROR(tern_forward(m.m, items, 0), TERN_ERR_INVALID_ARGUMENT, "no items");
  EXPECT_ERROR(tern_forward(nullptr, items, 1), TERN_ERR_INVALID_ARGUMENT, "model");
}

TEST(CApi, ContextFull) {
  tern_model_options o = refOptions();
  o.ctx_size = 16;
  ModelPtr m{openRef(o)};
  ASSERT_NE(m.m, nullptr);
  SessionPtr s;
  ASSERT_EQ(tern_session_create(m.m, &s.s), TERN_OK);
  ASSERT_EQ(tern_decode(s.s, kPrompt.data(), 10), TERN_OK) << lastError();
  EXPECT_ERROR(tern_decode(s.s, kPrompt.data(), 7), TERN_ERR_CONTEXT_FULL, "context full", "16");
  EXPECT_EQ(tern_session_position(s.s), 10);
  EXPECT_EQ(tern_decode(s.s, kPrompt.data(), 6), TERN_OK) << lastError(); // exactly full
  EXPECT_ERROR(tern_decode(s.s, kPrompt.data(), 1), TERN_ERR_CONTEXT_FULL, "context full");
}

TEST(CApi, KvPoolExhaustedLeavesOthersIntact) {
  tern_model_options o = refOptions();
  o.ctx_size = 32; // x parallel 1: the pool holds 32 positions (2 blocks of 16)
  o.parallel = 1;
  o.kv_page_size = 16;
  ModelPtr m{openRef(o)};
  ASSERT_NE(m.m, nullptr);
  tern_kv_usage u;
  ASSERT_EQ(tern_model_kv_usage(m.m, &u), TERN_OK);
  EXPECT_EQ(u.page_size, 16u);
  EXPECT_EQ(u.total_blocks, 2u);
  SessionPtr a, b;
  ASSERT_EQ(tern_session_create(m.m, &a.s), TERN_OK);
  ASSERT_EQ(tern_session_create(m.m, &b.s), TERN_OK);
  ASSERT_EQ(tern_decode(a.s, kPrompt.data(), kPrompt.size()), TERN_OK) << lastError();
  const std::vector<float> aLogits = logitsOf(a.s);
  const int32_t other[] = {354, 50, 60, 70};
  EXPECT_ERROR(tern_decode(b.s, other, 4), TERN_ERR_KV_EXHAUSTED, "exhausted");
  EXPECT_EQ(tern_session_position(b.s), 0);
  ASSERT_EQ(tern_model_kv_usage(m.m, &u), TERN_OK);
  EXPECT_EQ(u.sessions, 2u);
  // a is untouched and continues.
  EXPECT_EQ(logitsOf(a.s), aLogits);
  const int32_t next = 262;
  EXPECT_EQ(tern_decode(a.s, &next, 1), TERN_OK) << lastError();
  // Once a is gone, b fits.
  tern_session_free(a.s);
  a.s = nullptr;
  EXPECT_EQ(tern_decode(b.s, other, 4), TERN_OK) << lastError();
  ASSERT_EQ(tern_model_kv_usage(m.m, &u), TERN_OK);
  EXPECT_EQ(u.sessions, 1u);
  EXPECT_GE(u.used_blocks, 1u);
}

TEST(CApi, PrefixCacheHits) {
  ModelPtr m{openRef()};
  ASSERT_NE(m.m, nullptr);
  std::vector<int32_t> longPrompt;
  for (int i = 0; i < 40; ++i)
    longPrompt.push_back(kPrompt[size_t(i) % kPrompt.size()]);
  SessionPtr a, b;
  ASSERT_EQ(tern_session_create(m.m, &a.s), TERN_OK);
  ASSERT_EQ(tern_session_create(m.m, &b.s), TERN_OK);
  ASSERT_EQ(tern_decode(a.s, longPrompt.data(), longPrompt.size()), TERN_OK);
  ASSERT_EQ(tern_decode(b.s, longPrompt.data(), longPrompt.size()), TERN_OK);
  tern_kv_usage u;
  ASSERT_EQ(tern_model_kv_usage(m.m, &u), TERN_OK);
  EXPECT_GE(u.prefix_hit_positions, 32u);
  EXPECT_EQ(logitsOf(a.s), logitsOf(b.s));
}

TEST(CApi, Sampler) {
  ModelPtr m{openRef()};
  ASSERT_NE(m.m, nullptr);
  SessionPtr s;
  ASSERT_EQ(tern_session_create(m.m, &s.s), TERN_OK);
  ASSERT_EQ(tern_decode(s.s, kPrompt.data(), kPrompt.size()), TERN_OK);
  const std::vector<float> logits = logitsOf(s.s);
  const int32_t argmax = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());

  tern_sampler_params p;
  tern_sampler_params_init(&p);
  p.temperature = 0;
  SamplerPtr greedy;
  ASSERT_EQ(tern_sampler_create(m.m, &p, &greedy.s), TERN_OK) << lastError();
  int32_t t = -1;
  ASSERT_EQ(tern_sampler_sample(greedy.s, logits.data(), logits.size(), &t), TERN_OK);
  EXPECT_EQ(t, argmax);

  // Banning the argmax through a logit bias: greedy takes another.
  const tern_logit_bias ban = {argmax, -std::numeric_limits<float>::infinity()};
  p.logit_bias = &ban;
  p.n_logit_bias = 1;
  SamplerPtr banned;
  ASSERT_EQ(tern_sampler_create(m.m, &p, &banned.s), TERN_OK) << lastError();
  ASSERT_EQ(tern_sampler_sample(banned.s, logits.data(), logits.size(), &t), TERN_OK);
  EXPECT_NE(t, argmax);
  p.logit_bias = nullptr;
  p.n_logit_bias = 0;

  // ignore_eos: EOS at the top is never picked.
  std::vector<float> eosTop(logits);
  eosTop[size_t(kEos)] = 100.0f;
  p.ignore_eos = 1;
  SamplerPtr noEos;
  ASSERT_EQ(tern_sampler_create(m.m, &p, &noEos.s), TERN_OK) << lastError();
  ASSERT_EQ(tern_sampler_sample(noEos.s, eosTop.data(), eosTop.size(), &t), TERN_OK);
  EXPECT_NE(t, kEos);
  p.ignore_eos = 0;

  // Seeded draws repeat; a clone continues the same stream; reset restarts.
  tern_sampler_params_init(&p);
  p.seed = 1234;
  p.top_k = 0;
  p.min_p = 0;
  p.temperature = 1.5f;
  SamplerPtr a, b, c;
  ASSERT_EQ(tern_sampler_create(m.m, &p, &a.s), TERN_OK);
  ASSERT_EQ(tern_sampler_create(m.m, &p, &b.s), TERN_OK);
  EXPECT_EQ(tern_sampler_seed(a.s), 1234u);
  std::vector<int32_t> da, db, dc;
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(tern_sampler_sample(a.s, logits.data(), logits.size(), &t), TERN_OK);
    da.push_back(t);
    ASSERT_EQ(tern_sampler_accept(a.s, t), TERN_OK);
    if (i == 9) {
      ASSERT_EQ(tern_sampler_clone(a.s, &c.s), TERN_OK);
    }
  }
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(tern_sampler_sample(b.s, logits.data(), logits.size(), &t), TERN_OK);
    db.push_back(t);
    ASSERT_EQ(tern_sampler_accept(b.s, t), TERN_OK);
  }
  EXPECT_EQ(da, db);
  EXPECT_GT(std::set<int32_t>(da.begin(), da.end()).size(), 1u); // really random
  for (int i = 10; i < 20; ++i) {
    ASSERT_EQ(tern_sampler_sample(c.s, logits.data(), logits.size(), &t), TERN_OK);
    dc.push_back(t);
    ASSERT_EQ(tern_sampler_accept(c.s, t), TERN_OK);
  }
  EXPECT_EQ(dc, std::vector<int32_t>(da.begin() + 10, da.end()));
  ASSERT_EQ(tern_sampler_reset(a.s, 1234), TERN_OK);
  ASSERT_EQ(tern_sampler_sample(a.s, logits.data(), logits.size(), &t), TERN_OK);
  EXPECT_EQ(t, da[0]);
  ASSERT_EQ(tern_sampler_reset(a.s, TERN_SEED_RANDOM), TERN_OK);
  EXPECT_LT(tern_sampler_seed(a.s), uint64_t(1) << 32);
  SamplerPtr r;
  ASSERT_EQ(tern_sampler_create(m.m, nullptr, &r.s), TERN_OK); // defaults, random seed
  EXPECT_LT(tern_sampler_seed(r.s), uint64_t(1) << 32);

  // Errors.
  tern_sampler_params bad;
  tern_sampler_params_init(&bad);
  bad.top_p = 1.5f;
  tern_sampler *x = reinterpret_cast<tern_sampler *>(0x1);
  EXPECT_ERROR(tern_sampler_create(m.m, &bad, &x), TERN_ERR_INVALID_ARGUMENT, "--top-p", "1.5");
  EXPECT_EQ(x, nullptr);
  tern_sampler_params_init(&bad);
  bad.n_logit_bias = 2;
  EXPECT_ERROR(tern_sampler_create(m.m, &bad, &x), TERN_ERR_INVALID_ARGUMENT, "logit_bias");
  const tern_logit_bias outOfRange = {kVocab + 1, 1.0f};
  bad.logit_bias = &outOfRange;
  bad.n_logit_bias = 1;
  EXPECT_ERROR(tern_sampler_create(m.m, &bad, &x), TERN_ERR_INVALID_ARGUMENT, "357");
  EXPECT_ERROR(tern_sampler_create(nullptr, &p, &x), TERN_ERR_INVALID_ARGUMENT, "model");
  EXPECT_ERROR(tern_sampler_create(m.m, &p, nullptr), TERN_ERR_INVALID_ARGUMENT, "sampler");
  EXPECT_ERROR(tern_sampler_sample(a.s, logits.data(), 10, &t), TERN_ERR_INVALID_ARGUMENT,
               "n_logits is 10", "356");
  EXPECT_ERROR(tern_sampler_sample(a.s, nullptr, logits.size(), &t), TERN_ERR_INVALID_ARGUMENT,
               "logits");
  EXPECT_ERROR(tern_sampler_sample(a.s, logits.data(), logits.size(), nullptr),
               TERN_ERR_INVALID_ARGUMENT, "token");
  EXPECT_ERROR(tern_sampler_sample(nullptr, logits.data(), logits.size(), &t),
               TERN_ERR_INVALID_ARGUMENT, "sampler");
  std::vector<float> nan(logits);
  nan[7] = std::nanf("");
  EXPECT_NE(tern_sampler_sample(a.s, nan.data(), nan.size(), &t), TERN_OK);
  EXPECT_NE(lastError().find("7"), std::string::npos) << lastError();
  EXPECT_ERROR(tern_sampler_accept(a.s, kVocab), TERN_ERR_INVALID_ARGUMENT, "356");
  EXPECT_ERROR(tern_sampler_accept(nullptr, 1), TERN_ERR_INVALID_ARGUMENT, "sampler");
  EXPECT_ERROR(tern_sampler_reset(nullptr, 1), TERN_ERR_INVALID_ARGUMENT, "sampler");
  EXPECT_ERROR(tern_sampler_clone(nullptr, &x), TERN_ERR_INVALID_ARGUMENT, "sampler");
  EXPECT_ERROR(tern_sampler_clone(a.s, nullptr), TERN_ERR_INVALID_ARGUMENT, "clone");
  EXPECT_EQ(tern_sampler_seed(nullptr), 0u);
  tern_sampler_free(nullptr);
}

// 0.3: a sampler for a bare vocabulary draws exactly what a model's sampler
// of the same parameters draws; ignore_eos needs a model.
TEST(CApi, SamplerWithoutAModel) {
  ModelPtr m{openRef()};
  ASSERT_NE(m.m, nullptr);
  SessionPtr s;
  ASSERT_EQ(tern_session_create(m.m, &s.s), TERN_OK);
  ASSERT_EQ(tern_decode(s.s, kPrompt.data(), kPrompt.size()), TERN_OK);
  const std::vector<float> logits = logitsOf(s.s);
  tern_model_info info;
  ASSERT_EQ(tern_model_get_info(m.m, &info), TERN_OK);
  tern_sampler_params p;
  tern_sampler_params_init(&p);
  p.seed = 77;
  p.temperature = 1.2f;
  p.top_k = 0;
  SamplerPtr withModel, bare;
  ASSERT_EQ(tern_sampler_create(m.m, &p, &withModel.s), TERN_OK) << lastError();
  ASSERT_EQ(tern_sampler_create_vocab(info.n_vocab, int32_t(info.n_ctx), &p, &bare.s), TERN_OK)
      << lastError();
  for (int i = 0; i < 50; ++i) {
    int32_t a = -1, b = -2;
    ASSERT_EQ(tern_sampler_sample(withModel.s, logits.data(), logits.size(), &a), TERN_OK);
    ASSERT_EQ(tern_sampler_sample(bare.s, logits.data(), logits.size(), &b), TERN_OK);
    EXPECT_EQ(a, b) << "draw " << i;
    ASSERT_EQ(tern_sampler_accept(withModel.s, a), TERN_OK);
    ASSERT_EQ(tern_sampler_accept(bare.s, b), TERN_OK);
  }
  int32_t t = 0;
  EXPECT_EQ(tern_sampler_sample(bare.s, logits.data(), logits.size() - 1, &t),
            TERN_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(tern_sampler_accept(bare.s, info.n_vocab), TERN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(lastError().find("outside the vocabulary"), std::string::npos) << lastError();

  tern_sampler *x = reinterpret_cast<tern_sampler *>(0x1);
  EXPECT_EQ(tern_sampler_create_vocab(0, 0, &p, &x), TERN_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(x, nullptr);
  EXPECT_NE(lastError().find("n_vocab"), std::string::npos) << lastError();
  EXPECT_EQ(tern_sampler_create_vocab(10, -1, &p, &x), TERN_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(tern_sampler_create_vocab(10, 0, &p, nullptr), TERN_ERR_INVALID_ARGUMENT);
  p.ignore_eos = 1;
  EXPECT_EQ(tern_sampler_create_vocab(10, 0, &p, &x), TERN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(lastError().find("ignore_eos"), std::string::npos) << lastError();
  p.ignore_eos = 0;
  p.repeat_last_n = -1; // the context size, unknown without one
  EXPECT_EQ(tern_sampler_create_vocab(10, 0, &p, &x), TERN_ERR_INVALID_ARGUMENT);
  SamplerPtr ok, ok2;
  EXPECT_EQ(tern_sampler_create_vocab(10, 16, &p, &ok.s), TERN_OK) << lastError();
  EXPECT_EQ(tern_sampler_create_vocab(10, 0, nullptr, &ok2.s), TERN_OK) << lastError();
}

TEST(CApi, ChatTemplate) {
  ModelPtr m{openRef()};
  ASSERT_NE(m.m, nullptr);
  const char *name = nullptr;
  ASSERT_EQ(tern_chat_template(m.m, nullptr, &name), TERN_OK) << lastError();
  EXPECT_STREQ(name, "bitnet"); // the fixture names none
  ASSERT_EQ(tern_chat_template(m.m, "chatml", &name), TERN_OK);
  EXPECT_STREQ(name, "chatml");
  EXPECT_ERROR(tern_chat_template(m.m, "vicuna", &name), TERN_ERR_NOT_FOUND, "vicuna", "chatml");

  const tern_chat_message msgs[] = {{"system", "Be brief."}, {"user", "Hi there"}};
  auto cxxTok = tokenizer::Tokenizer::fromGGUF(*openCxx(kTq2)->ggufFile());
  ASSERT_TRUE(cxxTok.ok());
  const std::vector<chat::Message> cxxMsgs = {{chat::Role::System, "Be brief."},
                                              {chat::Role::User, "Hi there"}};
  for (const char *tmpl : {static_cast<const char *>(nullptr), "bitnet", "llama3", "chatml"}) {
    for (int gen : {0, 1}) {
      chat::RenderOptions ro = chat::specialTokenText(*cxxTok);
      ro.addGenerationPrompt = gen != 0;
      auto kind = chat::templateByName(tmpl ? tmpl : "bitnet");
      ASSERT_TRUE(kind.ok());
      const std::string want = chat::render(*kind, cxxMsgs, ro);
      size_t len = 0;
      EXPECT_ERROR(tern_chat_apply_template(m.m, tmpl, msgs, 2, gen, nullptr, 0, &len),
                   TERN_ERR_BUFFER_TOO_SMALL, "do not fit");
      ASSERT_EQ(len, want.size());
      std::string buf(len + 1, 'x');
      ASSERT_EQ(tern_chat_apply_template(m.m, tmpl, msgs, 2, gen, buf.data(), buf.size(), &len),
                TERN_OK)
          << lastError();
      EXPECT_EQ(std::string(buf.c_str()), want);
      // Exactly len bytes (no room for the NUL) is too small.
      EXPECT_EQ(tern_chat_apply_template(m.m, tmpl, msgs, 2, gen, buf.data(), len, &len),
                TERN_ERR_BUFFER_TOO_SMALL);
    }
  }
  char buf[512];
  size_t len = 0;
  ASSERT_EQ(tern_chat_apply_template(m.m, nullptr, msgs, 2, 1, buf, sizeof(buf), &len), TERN_OK);
  EXPECT_EQ(std::string(buf), "System: Be brief.<|eot_id|>User: Hi there<|eot_id|>Assistant: ");

  // Chat tokenization: special tokens parsed, BOS only at the start.
  std::vector<int32_t> ids(256);
  size_t n = 0;
  ASSERT_EQ(tern_chat_tokenize(m.m, buf, len, 1, ids.data(), ids.size(), &n), TERN_OK)
      << lastError();
  ids.resize(n);
  EXPECT_EQ(ids, chat::tokenizePrompt(*cxxTok, buf, true));
  EXPECT_EQ(ids.front(), kBos);
  ids.assign(256, 0);
  ASSERT_EQ(tern_chat_tokenize(m.m, buf, len, 0, ids.data(), ids.size(), &n), TERN_OK);
  EXPECT_NE(ids.front(), kBos);
  EXPECT_EQ(tern_chat_tokenize(m.m, buf, len, 1, ids.data(), 1, &n), TERN_ERR_BUFFER_TOO_SMALL);

  // Errors name the message and field.
  const tern_chat_message badRole[] = {{"user", "a"}, {"robot", "b"}};
  EXPECT_ERROR(tern_chat_apply_template(m.m, nullptr, badRole, 2, 1, buf, sizeof(buf), &len),
               TERN_ERR_INVALID_ARGUMENT, "messages[1].role", "robot");
  const tern_chat_message nullContent[] = {{"user", nullptr}};
  EXPECT_ERROR(tern_chat_apply_template(m.m, nullptr, nullContent, 1, 1, buf, sizeof(buf), &len),
               TERN_ERR_INVALID_ARGUMENT, "messages[0].content");
  const tern_chat_message nullRole[] = {{nullptr, "x"}};
  EXPECT_ERROR(tern_chat_apply_template(m.m, nullptr, nullRole, 1, 1, buf, sizeof(buf), &len),
               TERN_ERR_INVALID_ARGUMENT, "messages[0].role");
  EXPECT_ERROR(tern_chat_apply_template(m.m, nullptr, nullptr, 2, 1, buf, sizeof(buf), &len),
               TERN_ERR_INVALID_ARGUMENT, "messages");
  EXPECT_ERROR(tern_chat_apply_template(m.m, "nope", msgs, 2, 1, buf, sizeof(buf), &len),
               TERN_ERR_NOT_FOUND, "nope");
  EXPECT_ERROR(tern_chat_apply_template(nullptr, nullptr, msgs, 2, 1, buf, sizeof(buf), &len),
               TERN_ERR_INVALID_ARGUMENT, "model");
  EXPECT_ERROR(tern_chat_apply_template(m.m, nullptr, msgs, 2, 1, buf, sizeof(buf), nullptr),
               TERN_ERR_INVALID_ARGUMENT, "len");
  EXPECT_ERROR(tern_chat_template(nullptr, nullptr, &name), TERN_ERR_INVALID_ARGUMENT, "model");
  EXPECT_ERROR(tern_chat_template(m.m, nullptr, nullptr), TERN_ERR_INVALID_ARGUMENT,
               "template_name");
  EXPECT_ERROR(tern_chat_tokenize(nullptr, "a", 1, 1, ids.data(), ids.size(), &n),
               TERN_ERR_INVALID_ARGUMENT, "model");
  EXPECT_ERROR(tern_chat_tokenize(m.m, nullptr, 1, 1, ids.data(), ids.size(), &n),
               TERN_ERR_INVALID_ARGUMENT, "text");
}

// The stop matcher over pieces of text: what it releases, what it holds
// back, a stop spanning pieces, and its errors.
TEST(CApi, StopMatcher) {
  const char *stops[] = {"<|end|>", "STOP"};
  tern_stop_matcher *sm = nullptr;
  ASSERT_EQ(tern_stop_matcher_create(stops, 2, &sm), TERN_OK) << lastError();
  std::string shown;
  int stopped = -1;
  auto push = [&](const std::string &piece) {
    const char *o = nullptr;
    size_t n = 99;
    EXPECT_EQ(tern_stop_matcher_push(sm, piece.data(), piece.size(), &o, &n, &stopped), TERN_OK)
        << lastError();
    shown.append(o, n);
  };
  push("Hello <|e"); // "<|e" could start a stop: held back
  EXPECT_EQ(shown, "Hello ");
  EXPECT_EQ(stopped, 0);
  push("x"); // not a stop after all
  EXPECT_EQ(shown, "Hello <|ex");
  push(" ST");
  EXPECT_EQ(shown, "Hello <|ex ");
  push("OP and more"); // the stop spans two pieces; it and the rest are dropped
  EXPECT_EQ(shown, "Hello <|ex ");
  EXPECT_EQ(stopped, 1);
  push("later"); // after a stop: nothing
  EXPECT_EQ(shown, "Hello <|ex ");
  EXPECT_EQ(stopped, 1);
  const char *o = nullptr;
  size_t n = 99;
  ASSERT_EQ(tern_stop_matcher_flush(sm, &o, &n), TERN_OK);
  EXPECT_EQ(n, 0u);
  tern_stop_matcher_free(sm);

  // No match: flush releases the held-back tail; no stops at all: pass-through.
  ASSERT_EQ(tern_stop_matcher_create(stops, 2, &sm), TERN_OK);
  shown.clear();
  push("abc <|en");
  ASSERT_EQ(tern_stop_matcher_flush(sm, &o, &n), TERN_OK);
  shown.append(o, n);
  EXPECT_EQ(shown, "abc <|en");
  EXPECT_EQ(stopped, 0);
  tern_stop_matcher_free(sm);
  ASSERT_EQ(tern_stop_matcher_create(nullptr, 0, &sm), TERN_OK);
  shown.clear();
  push("<|end|> STOP");
  EXPECT_EQ(shown, "<|end|> STOP");
  EXPECT_EQ(stopped, 0);

  EXPECT_ERROR(tern_stop_matcher_push(nullptr, "a", 1, &o, &n, &stopped), TERN_ERR_INVALID_ARGUMENT,
               "matcher is NULL");
  EXPECT_ERROR(tern_stop_matcher_push(sm, nullptr, 1, &o, &n, &stopped), TERN_ERR_INVALID_ARGUMENT,
               "text is NULL");
  EXPECT_ERROR(tern_stop_matcher_push(sm, "a", 1, nullptr, &n, &stopped), TERN_ERR_INVALID_ARGUMENT,
               "out is NULL");
  EXPECT_ERROR(tern_stop_matcher_push(sm, "a", 1, &o, &n, nullptr), TERN_ERR_INVALID_ARGUMENT,
               "stopped is NULL");
  EXPECT_ERROR(tern_stop_matcher_flush(sm, &o, nullptr), TERN_ERR_INVALID_ARGUMENT,
               "out_len is NULL");
  tern_stop_matcher_free(sm);
  tern_stop_matcher_free(nullptr);
  tern_stop_matcher *x = reinterpret_cast<tern_stop_matcher *>(0x1);
  const char *withNull[] = {"a", nullptr};
  EXPECT_ERROR(tern_stop_matcher_create(withNull, 2, &x), TERN_ERR_INVALID_ARGUMENT,
               "stops[1] is NULL");
  EXPECT_EQ(x, nullptr);
  EXPECT_ERROR(tern_stop_matcher_create(nullptr, 1, &x), TERN_ERR_INVALID_ARGUMENT, "stops");
  EXPECT_ERROR(tern_stop_matcher_create(stops, 2, nullptr), TERN_ERR_INVALID_ARGUMENT, "matcher");
}

// argmax and top probabilities of a logits row equal the C++ helpers that
// `tern eval` and the goldens use.
TEST(CApi, LogitsArgmaxAndTopProbs) {
  ModelPtr m{openRef()};
  ASSERT_NE(m.m, nullptr);
  SessionPtr s;
  ASSERT_EQ(tern_session_create(m.m, &s.s), TERN_OK);
  ASSERT_EQ(tern_decode(s.s, kPrompt.data(), kPrompt.size()), TERN_OK) << lastError();
  const std::vector<float> logits = logitsOf(s.s);
  ASSERT_EQ(logits.size(), size_t(kVocab));
  int32_t best = -1;
  ASSERT_EQ(tern_logits_argmax(logits.data(), logits.size(), &best), TERN_OK);
  EXPECT_EQ(best, model::argmax(logits));
  const auto want = model::topK(model::softmax(logits), 7);
  std::vector<int32_t> ids(7);
  std::vector<double> probs(7);
  size_t n = 0;
  ASSERT_EQ(tern_logits_top_probs(logits.data(), logits.size(), 7, ids.data(), probs.data(), &n),
            TERN_OK);
  ASSERT_EQ(n, 7u);
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(ids[i], want[i].first);
    EXPECT_EQ(probs[i], want[i].second); // bit for bit: the goldens' numbers
  }
  EXPECT_EQ(ids[0], best);
  // Ties: the lowest id first; k beyond the row: the whole row.
  const float tied[] = {1.0f, 3.0f, 3.0f, -2.0f};
  ASSERT_EQ(tern_logits_argmax(tied, 4, &best), TERN_OK);
  EXPECT_EQ(best, 1);
  ids.assign(9, -1);
  probs.assign(9, -1);
  ASSERT_EQ(tern_logits_top_probs(tied, 4, 9, ids.data(), probs.data(), &n), TERN_OK);
  ASSERT_EQ(n, 4u);
  EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + 4), (std::vector<int32_t>{1, 2, 0, 3}));
  EXPECT_NEAR(probs[0] + probs[1] + probs[2] + probs[3], 1.0, 1e-12);
  ASSERT_EQ(tern_logits_top_probs(tied, 4, 0, nullptr, nullptr, &n), TERN_OK);
  EXPECT_EQ(n, 0u);

  EXPECT_ERROR(tern_logits_argmax(nullptr, 4, &best), TERN_ERR_INVALID_ARGUMENT, "logits is NULL");
  EXPECT_ERROR(tern_logits_argmax(tied, 0, &best), TERN_ERR_INVALID_ARGUMENT, "n_logits");
  EXPECT_ERROR(tern_logits_argmax(tied, 4, nullptr), TERN_ERR_INVALID_ARGUMENT, "token is NULL");
  EXPECT_ERROR(tern_logits_top_probs(tied, 4, 2, nullptr, probs.data(), &n),
               TERN_ERR_INVALID_ARGUMENT, "ids is NULL");
  EXPECT_ERROR(tern_logits_top_probs(tied, 4, 2, ids.data(), nullptr, &n),
               TERN_ERR_INVALID_ARGUMENT, "probs is NULL");
  EXPECT_ERROR(tern_logits_top_probs(tied, 4, 2, ids.data(), probs.data(), nullptr),
               TERN_ERR_INVALID_ARGUMENT, "n is NULL");
  EXPECT_ERROR(tern_logits_top_probs(tied, 0, 2, ids.data(), probs.data(), &n),
               TERN_ERR_INVALID_ARGUMENT, "n_logits");
}

// A conversation through tern_chat_*: each user message hands out only the
// tokens to append, and after every turn the session's tokens are exactly the
// whole conversation rendered and tokenized at once (no re-prefill).
TEST(CApi, ChatDeltasKeepOneSession) {
  ModelPtr m{openRef()};
  ASSERT_NE(m.m, nullptr);
  auto cxxTok = tokenizer::Tokenizer::fromGGUF(*openCxx(kTq2)->ggufFile());
  ASSERT_TRUE(cxxTok.ok());
  EXPECT_STREQ(tern_chat_template_names(), "bitnet, llama3, chatml");
  for (const char *tmpl : {static_cast<const char *>(nullptr), "bitnet", "llama3", "chatml"}) {
    SCOPED_TRACE(tmpl ? tmpl : "(model's)");
    tern_chat *c = nullptr;
    ASSERT_EQ(tern_chat_create(m.m, tmpl, &c), TERN_OK) << lastError();
    tern_chat_info info;
    ASSERT_EQ(tern_chat_get_info(c, &info), TERN_OK);
    const auto kind = chat::templateByName(tmpl ? tmpl : "bitnet");
    ASSERT_TRUE(kind.ok());
    EXPECT_STREQ(info.template_name, tmpl ? tmpl : "bitnet");
    EXPECT_EQ(info.source, tmpl ? TERN_CHAT_TEMPLATE_OVERRIDE : TERN_CHAT_TEMPLATE_DEFAULT);
    EXPECT_STREQ(info.source_name, tmpl ? "override" : "default");
    EXPECT_EQ(std::string(info.end_of_turn), chat::endOfTurn(*kind));
    const std::optional<int32_t> eot = cxxTok->findToken(chat::endOfTurn(*kind));
    EXPECT_EQ(info.end_of_turn_token, eot ? *eot : -1);

    const std::string system = "Be brief.";
    ASSERT_EQ(tern_chat_add_system(c, system.data(), system.size()), TERN_OK) << lastError();
    chat::RenderOptions ro = chat::specialTokenText(*cxxTok);
    ro.addGenerationPrompt = false;
    std::vector<chat::Message> conv = {{chat::Role::System, system}};
    size_t prefix = 0;
    ASSERT_EQ(tern_chat_prefix_tokens(c, &prefix), TERN_OK);
    EXPECT_EQ(prefix, chat::tokenizePrompt(*cxxTok, chat::render(*kind, conv, ro), true).size());

    // The C++ conversation the tool used before: the deltas are its texts.
    chat::Conversation cxx(*kind, chat::specialTokenText(*cxxTok));
    ASSERT_TRUE(cxx.addSystem(system).ok());
    SessionPtr s;
    ASSERT_EQ(tern_session_create(m.m, &s.s), TERN_OK);
    bool first = true;
    for (const std::string &user : {std::string("Hi there"), std::string("And again?")}) {
      const int32_t *ids = nullptr;
      size_t n = 0;
      ASSERT_EQ(tern_chat_add_user(c, user.data(), user.size(), &ids, &n), TERN_OK) << lastError();
      auto turn = cxx.addUser(user);
      ASSERT_TRUE(turn.ok());
      EXPECT_EQ(std::vector<int32_t>(ids, ids + n),
                chat::tokenizePrompt(*cxxTok, turn->text, turn->startOfSession));
      // The first turn is the whole prompt; later ones only their delta.
      if (first) {
        conv.push_back({chat::Role::User, user});
        ro.addGenerationPrompt = true;
        EXPECT_EQ(std::vector<int32_t>(ids, ids + n),
                  chat::tokenizePrompt(*cxxTok, chat::render(*kind, conv, ro), true));
      }
      const int64_t before = tern_session_position(s.s);
      ASSERT_EQ(tern_decode(s.s, ids, n), TERN_OK) << lastError();
      EXPECT_EQ(tern_session_position(s.s), before + int64_t(n));
      // A reply as generated, its end-of-turn token fed (when it is one).
      const std::string reply = "Sure";
      std::vector<int32_t> r(16);
      size_t nr = 0;
      ASSERT_EQ(tern_tokenize(m.m, reply.data(), reply.size(), 0, r.data(), r.size(), &nr),
                TERN_OK);
      r.resize(nr);
      const bool eotFed = info.end_of_turn_token >= 0;
      if (eotFed)
        r.push_back(info.end_of_turn_token);
      ASSERT_EQ(tern_decode(s.s, r.data(), r.size()), TERN_OK);
      ASSERT_EQ(tern_chat_add_reply(c, reply.data(), reply.size(), eotFed), TERN_OK) << lastError();
      ASSERT_TRUE(cxx.addReply(reply, eotFed).ok());
      first = false;
    }
    // Errors: the order of turns, NULL arguments.
    const int32_t *ids = nullptr;
    size_t n = 0;
    EXPECT_ERROR(tern_chat_add_system(c, "late", 4), TERN_ERR_STATE, "system");
    EXPECT_ERROR(tern_chat_add_reply(c, "x", 1, 0), TERN_ERR_STATE, "reply");
    ASSERT_EQ(tern_chat_add_user(c, "q", 1, &ids, &n), TERN_OK);
    EXPECT_ERROR(tern_chat_add_user(c, "q", 1, &ids, &n), TERN_ERR_STATE, "reply");
    EXPECT_ERROR(tern_chat_add_user(c, nullptr, 1, &ids, &n), TERN_ERR_INVALID_ARGUMENT,
                 "content is NULL");
    EXPECT_ERROR(tern_chat_add_user(c, "q", 1, nullptr, &n), TERN_ERR_INVALID_ARGUMENT,
                 "tokens is NULL");
    EXPECT_ERROR(tern_chat_add_reply(nullptr, "x", 1, 0), TERN_ERR_INVALID_ARGUMENT, "chat");
    EXPECT_ERROR(tern_chat_get_info(c, nullptr), TERN_ERR_INVALID_ARGUMENT, "info");
    EXPECT_ERROR(tern_chat_prefix_tokens(nullptr, &prefix), TERN_ERR_INVALID_ARGUMENT, "chat");
    tern_chat_free(c);
  }
  // Without a system message the prefix is the BOS the tokenizer adds.
  tern_chat *c = nullptr;
  ASSERT_EQ(tern_chat_create(m.m, "chatml", &c), TERN_OK);
  size_t prefix = 9;
  ASSERT_EQ(tern_chat_prefix_tokens(c, &prefix), TERN_OK);
  EXPECT_EQ(prefix, chat::shouldAddBos(*cxxTok, "", true) ? 1u : 0u);
  tern_chat_free(c);
  tern_chat_free(nullptr);

  // Names: checked without a model; unknown ones are NOT_FOUND listing the built-ins.
  const char *name = nullptr;
  ASSERT_EQ(tern_chat_template(nullptr, "llama3", &name), TERN_OK) << lastError();
  EXPECT_STREQ(name, "llama3");
  EXPECT_ERROR(tern_chat_template(nullptr, "gemma", &name), TERN_ERR_NOT_FOUND, "gemma", "chatml");
  EXPECT_ERROR(tern_chat_template(nullptr, "", &name), TERN_ERR_NOT_FOUND, "chatml");
  tern_chat *x = reinterpret_cast<tern_chat *>(0x1);
  EXPECT_ERROR(tern_chat_create(m.m, "gemma", &x), TERN_ERR_NOT_FOUND, "gemma");
  EXPECT_EQ(x, nullptr);
  EXPECT_ERROR(tern_chat_create(nullptr, nullptr, &x), TERN_ERR_INVALID_ARGUMENT, "model");
  EXPECT_ERROR(tern_chat_create(m.m, nullptr, nullptr), TERN_ERR_INVALID_ARGUMENT, "chat");
}

// Sessions on different threads at once: same logits as alone; the last
// error is per thread.
TEST(CApi, ThreadsUseDifferentSessions) {
  tern_model_options o = refOptions();
  o.parallel = 4;
  o.ctx_size = 256;
  ModelPtr m{openRef(o)};
  ASSERT_NE(m.m, nullptr);
  auto cxx = openCxx(kTq2, 256);
  std::vector<std::vector<int32_t>> prompts;
  for (int t = 0; t < 4; ++t) {
    std::vector<int32_t> p = {kBos};
    for (int i = 0; i < 12 + t; ++i)
      p.push_back(int32_t(100 + 7 * i + t));
    prompts.push_back(p);
  }
  std::vector<std::vector<float>> got(4);
  std::vector<std::string> errs(4);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      tern_session *s = nullptr;
      if (tern_session_create(m.m, &s) != TERN_OK) {
        ++failures;
        return;
      }
      for (int rep = 0; rep < 3; ++rep) {
        if (tern_session_truncate(s, 0) != TERN_OK ||
            tern_decode(s, prompts[size_t(t)].data(), prompts[size_t(t)].size()) != TERN_OK)
          ++failures;
      }
      const float *l;
      size_t n;
      if (tern_session_logits(s, &l, &n) == TERN_OK)
        got[size_t(t)].assign(l, l + n);
      // A failure of this thread's own.
      const int32_t bad = 100000 + t;
      tern_decode(s, &bad, 1);
      errs[size_t(t)] = tern_last_error();
      tern_session_free(s);
    });
  for (auto &th : threads)
    th.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < 4; ++t) {
    EXPECT_EQ(got[size_t(t)], cxxLogits(*cxx, prompts[size_t(t)])) << t;
    EXPECT_NE(errs[size_t(t)].find(std::to_string(100000 + t)), std::string::npos)
        << errs[size_t(t)];
  }
}

// The compiled path, where the build has a ternc (TERN_CAPI_TERNC: this
// build's, or -DTERN_E2E_TERNC): open a GGUF through the artifact cache and
// get the C++ path's logits on the same artifact.
TEST(CApi, CompiledGgufMatchesCxx) {
  if (std::string(TERN_CAPI_TERNC).empty())
    GTEST_SKIP() << "no ternc in this build: the compiled path is not tested here";
  setenv("TERNC", TERN_CAPI_TERNC, 1);
  setenv("TERN_CACHE_DIR", TERN_CAPI_CACHE, 1);
  std::string log;
  tern_model_options o;
  tern_model_options_init(&o);
  o.path = TERN_PATH_COMPILE;
  o.log = [](void *user, const char *line) {
    *static_cast<std::string *>(user) += std::string(line) + "\n";
  };
  o.log_user = &log;
  ModelPtr m;
  ASSERT_EQ(tern_model_open(kTq2.c_str(), &o, &m.m), TERN_OK) << lastError() << "\n" << log;
  EXPECT_NE(log.find(".tern"), std::string::npos) << log; // the compile / cache note came through
  tern_model_info info;
  ASSERT_EQ(tern_model_get_info(m.m, &info), TERN_OK);
  EXPECT_EQ(info.compiled, 1);
  EXPECT_EQ(std::string(tern_model_describe(m.m)).find("reference"), std::string::npos);
  SessionPtr s;
  ASSERT_EQ(tern_session_create(m.m, &s.s), TERN_OK);
  ASSERT_EQ(tern_decode(s.s, kPrompt.data(), kPrompt.size()), TERN_OK) << lastError();

  std::ostringstream clog;
  auto path = exec::compileToCache(kTq2, {}, clog);
  ASSERT_TRUE(path.ok()) << statusMessage(path.status());
  auto cxx = openCxx(*path);
  ASSERT_NE(cxx, nullptr);
  EXPECT_EQ(logitsOf(s.s), cxxLogits(*cxx, kPrompt));

  // The .tern itself opens directly too.
  ModelPtr t;
  tern_model_options to;
  tern_model_options_init(&to);
  ASSERT_EQ(tern_model_open(path->c_str(), &to, &t.m), TERN_OK) << lastError();
  ASSERT_EQ(tern_model_get_info(t.m, &info), TERN_OK);
  EXPECT_EQ(info.compiled, 1);
  EXPECT_EQ(info.has_tokenizer, 1);
}

} // namespace
