// The C API (runtime/include/tern/tern.h) over the C++ runtime: models and
// sessions (model.h), the executor and compile cache (exec), the tokenizer,
// the sampler and the chat templates. Every entry point turns absl::Status
// values into tern_status codes plus the thread's last-error message, and
// catches whatever the C++ layer might throw (std::bad_alloc), so nothing
// crosses the C boundary but codes. docs/c-api.md has the design.
#include "runtime/include/tern/tern.h"
#include "runtime/capi/bridge.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <iostream>
#include <memory>
#include <new>
#include <optional>
#include <streambuf>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "fmt/format.h"
#include "runtime/chat/chat.h"
#include "runtime/exec/artifact_model.h"
#include "runtime/exec/compile_cache.h"
#include "runtime/model/eval.h"
#include "runtime/model/model.h"
#include "runtime/sampling/sampler.h"
#include "runtime/sampling/stop.h"
#include "runtime/support/status.h"
#include "runtime/tokenizer/tokenizer.h"

using namespace tern;

struct tern_model {
  model::Model *m = nullptr; // owned (owned) or borrowed (capi::borrowModel)
  std::unique_ptr<model::Model> owned;
  std::optional<tokenizer::Tokenizer> tok;
  std::string tokError; // why there is no tokenizer
  std::string describe, arch, name;
  bool compiled = false;
  int32_t nVocab = 0;
  uint32_t nCtx = 0;
};

struct tern_session {
  tern_model *model = nullptr;
  std::unique_ptr<model::Session> s;
  std::vector<float> logits;  // [n_vocab] of the last forward that asked, when hasLogits
  std::vector<float> pending; // [n_vocab] written by a forward in flight
  bool hasLogits = false;
  std::string message; // the last item status message ("" when ok)
};

struct tern_detokenizer {
  const tern_model *model = nullptr;
  tokenizer::StreamDecoder d;
  std::string text; // the last push / flush result
};

struct tern_sampler {
  int32_t nVocab = 0; // the vocabulary it samples (its model's, or tern_sampler_create_vocab's)
  sampling::Sampler s;
  uint64_t seed = 0;
};

struct tern_stop_matcher {
  sampling::StopStrings s;
  std::string text; // the last push / flush result
};

struct tern_chat {
  tern_chat(const tern_model *m, chat::Selection selection, chat::RenderOptions o)
      : model(m), sel(std::move(selection)), opts(o), conv(sel.kind, std::move(o)) {}
  const tern_model *model;
  chat::Selection sel;
  chat::RenderOptions opts; // the model's BOS / EOS text
  chat::Conversation conv;
  std::string_view eotText; // static
  int32_t eotId = -1;
  size_t prefix = 0;        // tokens before the first user message
  std::vector<int32_t> ids; // the last tern_chat_add_user result
};

namespace {

thread_local std::string tLastError;

// Sets the thread's message and returns the code.
tern_status fail(tern_status code, std::string message) {
  tLastError = std::move(message);
  return code;
}

// Which kind of call a status comes from: opening maps file problems to
// TERN_ERR_BAD_MODEL, everything else keeps InvalidArgument as such.
enum class Ctx { General, Open, Compile };

tern_status codeOf(const absl::Status &s, Ctx ctx = Ctx::General) {
  const std::string msg = statusMessage(s);
  switch (s.code()) {
  case absl::StatusCode::kOk:
    return TERN_OK;
  case absl::StatusCode::kNotFound:
    return TERN_ERR_NOT_FOUND;
  case absl::StatusCode::kUnimplemented:
    return TERN_ERR_UNSUPPORTED;
  case absl::StatusCode::kResourceExhausted:
    // model::contextFullError is the one "context full" error of every model.
    return msg.rfind("context full", 0) == 0 ? TERN_ERR_CONTEXT_FULL : TERN_ERR_KV_EXHAUSTED;
  case absl::StatusCode::kPermissionDenied:
    return TERN_ERR_IO;
  case absl::StatusCode::kInvalidArgument:
  case absl::StatusCode::kDataLoss:
  case absl::StatusCode::kOutOfRange:
  case absl::StatusCode::kFailedPrecondition:
    if (ctx == Ctx::Open)
      return TERN_ERR_BAD_MODEL;
    if (ctx == Ctx::Compile)
      return TERN_ERR_IO;
    return s.code() == absl::StatusCode::kFailedPrecondition ? TERN_ERR_STATE
                                                             : TERN_ERR_INVALID_ARGUMENT;
  case absl::StatusCode::kInternal:
    return ctx == Ctx::General ? TERN_ERR_INTERNAL : TERN_ERR_IO;
  default:
    return TERN_ERR_INTERNAL;
  }
}

tern_status fail(const absl::Status &s, std::string_view prefix, Ctx ctx = Ctx::General) {
  return fail(codeOf(s, ctx), fmt::format("{}: {}", prefix, statusMessage(s)));
}

// Runs an entry point's body; exceptions become codes.
template <class F> tern_status guarded(const char *fn, F &&body) {
  try {
    return body();
  } catch (const std::bad_alloc &) {
    return fail(TERN_ERR_OUT_OF_MEMORY, fmt::format("{}: out of memory", fn));
  } catch (const std::exception &e) {
    return fail(TERN_ERR_INTERNAL, fmt::format("{}: internal error: {}", fn, e.what()));
  } catch (...) {
    return fail(TERN_ERR_INTERNAL, fmt::format("{}: internal error", fn));
  }
}

tern_status nullArg(const char *fn, const char *arg) {
  return fail(TERN_ERR_INVALID_ARGUMENT, fmt::format("{}: {} is NULL", fn, arg));
}

// A pointer argument an entry point needs, with its name in tern.h.
struct Arg {
  const char *name;
  const void *ptr;
};

// The preamble every entry point shares: the first of `args` that is NULL is
// the error (TERN_ERR_INVALID_ARGUMENT naming it); then `body` runs with
// exceptions turned into codes (guarded).
template <class F> tern_status entry(const char *fn, std::initializer_list<Arg> args, F &&body) {
  for (const Arg &a : args)
    if (!a.ptr)
      return nullArg(fn, a.name);
  return guarded(fn, std::forward<F>(body));
}

// Sets *out to NULL when out is not NULL (creation functions promise it on error).
template <class T> void clearOut(T **out) {
  if (out)
    *out = nullptr;
}

// Sends whole lines to a tern_log_fn.
class LogBuf final : public std::streambuf {
public:
  LogBuf(tern_log_fn fn, void *user) : fn_(fn), user_(user) {}
  ~LogBuf() override {
    if (!line_.empty())
      emit();
  }

protected:
  int overflow(int c) override {
    if (c == traits_type::eof())
      return 0;
    if (c == '\n')
      emit();
    else
      line_.push_back(char(c));
    return c;
  }

private:
  void emit() {
    fn_(user_, line_.c_str());
    line_.clear();
  }
  tern_log_fn fn_;
  void *user_;
  std::string line_;
};

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

tern_status needTokenizer(const tern_model *m, const char *fn) {
  if (m->tok)
    return TERN_OK;
  return fail(TERN_ERR_UNSUPPORTED,
              fmt::format("{}: this model has no usable tokenizer: {}", fn, m->tokError));
}

tern_status checkToken(const tern_model *m, int32_t token, const char *fn, const char *what) {
  if (token < 0 || token >= m->nVocab)
    return fail(
        TERN_ERR_INVALID_ARGUMENT,
        fmt::format("{}: {} {} is outside the vocabulary [0, {})", fn, what, token, m->nVocab));
  return TERN_OK;
}

tern_status checkFlags(unsigned flags, unsigned known, const char *fn) {
  if (flags & ~known)
    return fail(
        TERN_ERR_INVALID_ARGUMENT,
        fmt::format("{}: unknown flag bits 0x{:x} in flags 0x{:x}", fn, flags & ~known, flags));
  return TERN_OK;
}

// Copies `ids` out with the size rules of tern_tokenize.
tern_status putTokens(const std::vector<int32_t> &ids, int32_t *out, size_t capacity, size_t *n,
                      const char *fn) {
  *n = ids.size();
  if (ids.size() > capacity)
    return fail(TERN_ERR_BUFFER_TOO_SMALL, fmt::format("{}: {} tokens do not fit in a buffer of {}",
                                                       fn, ids.size(), capacity));
  if (!ids.empty()) {
    if (!out)
      return nullArg(fn, "tokens");
    std::memcpy(out, ids.data(), ids.size() * sizeof(int32_t));
  }
  return TERN_OK;
}

// Copies bytes out (no NUL) with the same rules.
tern_status putBytes(std::string_view bytes, char *out, size_t capacity, size_t *len,
                     const char *fn) {
  *len = bytes.size();
  if (bytes.size() > capacity)
    return fail(TERN_ERR_BUFFER_TOO_SMALL, fmt::format("{}: {} bytes do not fit in a buffer of {}",
                                                       fn, bytes.size(), capacity));
  if (!bytes.empty()) {
    if (!out)
      return nullArg(fn, "buf");
    std::memcpy(out, bytes.data(), bytes.size());
  }
  return TERN_OK;
}

absl::StatusOr<std::unique_ptr<model::Model>> openAny(const std::string &path,
                                                      const tern_model_options &o,
                                                      const model::ModelOptions &mo,
                                                      std::ostream &log, Ctx &ctx) {
  ctx = Ctx::Open;
  if (endsWith(path, ".tern"))
    return exec::openModel(path, mo);
  bool compile = o.path == TERN_PATH_COMPILE;
  if (o.path == TERN_PATH_AUTO) {
    compile = exec::findTernc().ok();
    if (!compile)
      log << "tern: note: no ternc found ($TERNC, next to the executable, $PATH): running " << path
          << " on the scalar reference forward pass\n";
  }
  if (!compile)
    return exec::openModel(path, mo);
  exec::CompileRequest req;
  if (o.target)
    req.target = o.target;
  ctx = Ctx::Compile;
  absl::StatusOr<std::string> compiled = exec::compileToCache(path, req, log);
  if (!compiled.ok())
    return compiled.status();
  ctx = Ctx::Open;
  return exec::openModel(*compiled, mo);
}

// A handle for an opened model: what tern_model_open and adoptModel share.
// `owned` NULL: the handle borrows `m` (capi::borrowModel).
std::unique_ptr<tern_model> adopt(model::Model *m, std::unique_ptr<model::Model> owned) {
  auto h = std::make_unique<tern_model>();
  h->m = m;
  h->owned = std::move(owned);
  const model::ModelConfig &cfg = h->m->config();
  h->nVocab = int32_t(cfg.nVocab);
  h->nCtx = h->m->options().contextLength;
  h->describe = h->m->describe();
  h->arch = cfg.arch;
  h->name = cfg.name;
  h->compiled = dynamic_cast<const exec::ArtifactModel *>(h->m) != nullptr;
  if (const gguf::File *g = h->m->ggufFile()) {
    absl::StatusOr<tokenizer::Tokenizer> t = tokenizer::Tokenizer::fromGGUF(*g);
    if (t.ok())
      h->tok.emplace(std::move(*t));
    else
      h->tokError = statusMessage(t.status());
  } else {
    h->tokError = "the model source carries no vocabulary";
  }
  return h;
}

// The chat template for `name` (a built-in's; NULL: the model's
// tokenizer.chat_template, else the default). m may be NULL with a name.
absl::StatusOr<chat::Selection> selection(const tern_model *m, const char *name) {
  chat::Selection sel;
  if (name) { // checked first: "" is a bad name, not "the model's"
    absl::StatusOr<chat::TemplateKind> k = chat::templateByName(name);
    if (!k.ok())
      return k.status();
    sel.kind = *k;
    sel.source = chat::TemplateSource::Override;
    sel.exact = true;
    sel.reason = fmt::format("--chat-template {}", chat::templateName(*k));
    return sel;
  }
  if (m)
    if (const gguf::File *g = m->m->ggufFile())
      return chat::selectTemplate(*g);
  return sel;
}

// The model's BOS / EOS text for the templates.
chat::RenderOptions renderOptions(const tern_model *m) {
  return m->tok ? chat::specialTokenText(*m->tok) : chat::RenderOptions{};
}

} // namespace

extern "C" {

#define TERN_STR2(x) #x
#define TERN_STR(x) TERN_STR2(x)
const char *tern_version(void) {
  return TERN_STR(TERN_VERSION_MAJOR) "." TERN_STR(TERN_VERSION_MINOR) "." TERN_STR(
      TERN_VERSION_PATCH);
}

const char *tern_last_error(void) { return tLastError.c_str(); }

const char *tern_status_name(tern_status status) {
  switch (status) {
  case TERN_OK:
    return "TERN_OK";
  case TERN_ERR_INVALID_ARGUMENT:
    return "TERN_ERR_INVALID_ARGUMENT";
  case TERN_ERR_NOT_FOUND:
    return "TERN_ERR_NOT_FOUND";
  case TERN_ERR_BAD_MODEL:
    return "TERN_ERR_BAD_MODEL";
  case TERN_ERR_UNSUPPORTED:
    return "TERN_ERR_UNSUPPORTED";
  case TERN_ERR_BUFFER_TOO_SMALL:
    return "TERN_ERR_BUFFER_TOO_SMALL";
  case TERN_ERR_CONTEXT_FULL:
    return "TERN_ERR_CONTEXT_FULL";
  case TERN_ERR_KV_EXHAUSTED:
    return "TERN_ERR_KV_EXHAUSTED";
  case TERN_ERR_STATE:
    return "TERN_ERR_STATE";
  case TERN_ERR_BATCH:
    return "TERN_ERR_BATCH";
  case TERN_ERR_IO:
    return "TERN_ERR_IO";
  case TERN_ERR_OUT_OF_MEMORY:
    return "TERN_ERR_OUT_OF_MEMORY";
  case TERN_ERR_INTERNAL:
    return "TERN_ERR_INTERNAL";
  case TERN_STATUS_MAX_ENUM:
    break;
  }
  return "TERN_ERR_UNKNOWN";
}

// ---------------------------------------------------------------------------
// Models

void tern_model_options_init(tern_model_options *o) {
  if (!o)
    return;
  std::memset(o, 0, sizeof(*o));
  o->threads = 1;
  o->ctx_size = 0;
  o->parallel = 1;
  o->kv_mem_bytes = 0;
  o->kv_page_size = 16;
  o->prefix_cache = 1;
  o->verify_weights = 1;
  o->path = TERN_PATH_AUTO;
  o->target = nullptr;
  o->log = nullptr;
  o->log_user = nullptr;
}

tern_status tern_model_open(const char *path, const tern_model_options *options, tern_model **out) {
  static constexpr const char *fn = "tern_model_open";
  clearOut(out);
  return entry(fn, {{"model", out}, {"path", path}}, [&]() -> tern_status {
    tern_model_options o;
    tern_model_options_init(&o);
    if (options)
      o = *options;
    if (o.threads < 0)
      return fail(TERN_ERR_INVALID_ARGUMENT,
                  fmt::format("{}: threads must be >= 0 (0 = all cores), got {}", fn, o.threads));
    if (o.parallel == 0)
      return fail(TERN_ERR_INVALID_ARGUMENT, fmt::format("{}: parallel must be >= 1", fn));
    if (o.kv_page_size == 0)
      return fail(TERN_ERR_INVALID_ARGUMENT, fmt::format("{}: kv_page_size must be >= 1", fn));
    if (o.path != TERN_PATH_AUTO && o.path != TERN_PATH_COMPILE && o.path != TERN_PATH_REFERENCE)
      return fail(TERN_ERR_INVALID_ARGUMENT,
                  fmt::format("{}: path must be TERN_PATH_AUTO, _COMPILE or _REFERENCE, got {}", fn,
                              int(o.path)));
    if (o.target && !*o.target)
      return fail(TERN_ERR_INVALID_ARGUMENT,
                  fmt::format("{}: target is empty (NULL means native)", fn));
    model::ModelOptions mo;
    mo.threads = o.threads;
    mo.contextLength = o.ctx_size;
    mo.parallel = o.parallel;
    mo.kvMemBytes = o.kv_mem_bytes;
    mo.pageSize = o.kv_page_size;
    mo.prefixCache = o.prefix_cache != 0;
    mo.verifyWeightsHash = o.verify_weights != 0;

    std::optional<LogBuf> logBuf;
    std::optional<std::ostream> logStream;
    std::ostream *log = &std::cerr;
    if (o.log) {
      logBuf.emplace(o.log, o.log_user);
      logStream.emplace(&*logBuf);
      log = &*logStream;
    }
    Ctx ctx = Ctx::Open;
    absl::StatusOr<std::unique_ptr<model::Model>> m = openAny(path, o, mo, *log, ctx);
    log->flush();
    if (!m.ok())
      return fail(m.status(), fmt::format("{}: {}", fn, path), ctx);
    model::Model *raw = m->get();
    *out = adopt(raw, std::move(*m)).release();
    return TERN_OK;
  });
}

void tern_model_free(tern_model *model) { delete model; }

tern_status tern_model_get_info(const tern_model *m, tern_model_info *info) {
  return entry("tern_model_get_info", {{"model", m}, {"info", info}}, [&]() -> tern_status {
    const model::ModelConfig &c = m->m->config();
    std::memset(info, 0, sizeof(*info));
    info->n_vocab = m->nVocab;
    info->n_ctx = m->nCtx;
    info->n_ctx_train = c.nCtxTrain;
    info->n_embd = c.nEmbd;
    info->n_layer = c.nLayer;
    info->n_head = c.nHead;
    info->n_head_kv = c.nHeadKv;
    info->threads = uint32_t(std::max(m->m->options().threads, 0));
    info->bos = m->tok ? m->tok->bos() : c.bosId;
    info->eos = m->tok ? m->tok->eos() : c.eosId;
    info->eot = m->tok ? m->tok->eot() : c.eotId;
    info->compiled = m->compiled ? 1 : 0;
    info->has_tokenizer = m->tok ? 1 : 0;
    info->arch = m->arch.c_str();
    info->name = m->name.c_str();
    return TERN_OK;
  });
}

const char *tern_model_describe(const tern_model *m) {
  if (!m) {
    nullArg("tern_model_describe", "model");
    return nullptr;
  }
  return m->describe.c_str();
}

tern_status tern_model_kv_usage(const tern_model *m, tern_kv_usage *u) {
  return entry("tern_model_kv_usage", {{"model", m}, {"usage", u}}, [&]() -> tern_status {
    model::KvUsage k = m->m->kvUsage();
    u->page_size = k.pageSize;
    u->total_blocks = k.totalBlocks;
    u->free_blocks = k.freeBlocks;
    u->used_blocks = k.usedBlocks;
    u->cached_blocks = k.cachedBlocks;
    u->sessions = k.sessions;
    u->prefix_hit_positions = k.prefixHitPositions;
    return TERN_OK;
  });
}

// ---------------------------------------------------------------------------
// Tokenizer

tern_status tern_tokenize(const tern_model *m, const char *text, size_t text_len, unsigned flags,
                          int32_t *tokens, size_t capacity, size_t *n_tokens) {
  static constexpr const char *fn = "tern_tokenize";
  return entry(fn, {{"model", m}, {"n_tokens", n_tokens}}, [&]() -> tern_status {
    *n_tokens = 0;
    if (!text && text_len)
      return nullArg(fn, "text");
    if (tern_status s =
            checkFlags(flags, TERN_TOKENIZE_ADD_SPECIAL | TERN_TOKENIZE_PARSE_SPECIAL, fn))
      return s;
    if (tern_status s = needTokenizer(m, fn))
      return s;
    std::vector<int32_t> ids = m->tok->encode(std::string_view(text ? text : "", text_len),
                                              (flags & TERN_TOKENIZE_ADD_SPECIAL) != 0,
                                              (flags & TERN_TOKENIZE_PARSE_SPECIAL) != 0);
    return putTokens(ids, tokens, capacity, n_tokens, fn);
  });
}

tern_status tern_token_to_piece(const tern_model *m, int32_t token, unsigned flags, char *buf,
                                size_t capacity, size_t *len) {
  static constexpr const char *fn = "tern_token_to_piece";
  return entry(fn, {{"model", m}, {"len", len}}, [&]() -> tern_status {
    *len = 0;
    if (tern_status s = checkFlags(
            flags, TERN_DETOKENIZE_RENDER_SPECIAL | TERN_DETOKENIZE_KEEP_LEADING_SPACE, fn))
      return s;
    if (tern_status s = needTokenizer(m, fn))
      return s;
    if (tern_status s = checkToken(m, token, fn, "token id"))
      return s;
    return putBytes(m->tok->tokenPiece(token, (flags & TERN_DETOKENIZE_RENDER_SPECIAL) != 0), buf,
                    capacity, len, fn);
  });
}

tern_status tern_detokenize(const tern_model *m, const int32_t *tokens, size_t n_tokens,
                            unsigned flags, char *buf, size_t capacity, size_t *len) {
  static constexpr const char *fn = "tern_detokenize";
  return entry(fn, {{"model", m}, {"len", len}}, [&]() -> tern_status {
    *len = 0;
    if (!tokens && n_tokens)
      return nullArg(fn, "tokens");
    if (tern_status s = checkFlags(
            flags, TERN_DETOKENIZE_RENDER_SPECIAL | TERN_DETOKENIZE_KEEP_LEADING_SPACE, fn))
      return s;
    if (tern_status s = needTokenizer(m, fn))
      return s;
    for (size_t i = 0; i < n_tokens; ++i)
      if (tokens[i] < 0 || tokens[i] >= m->nVocab)
        return fail(TERN_ERR_INVALID_ARGUMENT,
                    fmt::format("{}: token id {} (index {}) is outside the vocabulary [0, {})", fn,
                                tokens[i], i, m->nVocab));
    tokenizer::DecodeOptions o;
    o.renderSpecial = (flags & TERN_DETOKENIZE_RENDER_SPECIAL) != 0;
    o.stripLeadingSpace = (flags & TERN_DETOKENIZE_KEEP_LEADING_SPACE) == 0;
    std::string text = m->tok->decode(std::span<const int32_t>(tokens, n_tokens), o);
    return putBytes(text, buf, capacity, len, fn);
  });
}

tern_status tern_detokenizer_create(const tern_model *m, unsigned flags, tern_detokenizer **out) {
  static constexpr const char *fn = "tern_detokenizer_create";
  clearOut(out);
  return entry(fn, {{"detokenizer", out}, {"model", m}}, [&]() -> tern_status {
    if (tern_status s = checkFlags(
            flags, TERN_DETOKENIZE_RENDER_SPECIAL | TERN_DETOKENIZE_KEEP_LEADING_SPACE, fn))
      return s;
    if (tern_status s = needTokenizer(m, fn))
      return s;
    tokenizer::DecodeOptions o;
    o.renderSpecial = (flags & TERN_DETOKENIZE_RENDER_SPECIAL) != 0;
    o.stripLeadingSpace = (flags & TERN_DETOKENIZE_KEEP_LEADING_SPACE) == 0;
    *out = new tern_detokenizer{m, tokenizer::StreamDecoder(*m->tok, o), {}};
    return TERN_OK;
  });
}

tern_status tern_detokenizer_push(tern_detokenizer *d, int32_t token, const char **text,
                                  size_t *len) {
  static constexpr const char *fn = "tern_detokenizer_push";
  return entry(fn, {{"detokenizer", d}, {"text", text}, {"len", len}}, [&]() -> tern_status {
    *text = nullptr;
    *len = 0;
    if (tern_status s = checkToken(d->model, token, fn, "token id"))
      return s;
    d->text = d->d.push(token);
    *text = d->text.data();
    *len = d->text.size();
    return TERN_OK;
  });
}

tern_status tern_detokenizer_flush(tern_detokenizer *d, const char **text, size_t *len) {
  return entry("tern_detokenizer_flush", {{"detokenizer", d}, {"text", text}, {"len", len}},
               [&]() -> tern_status {
                 d->text = d->d.flush();
                 *text = d->text.data();
                 *len = d->text.size();
                 return TERN_OK;
               });
}

void tern_detokenizer_free(tern_detokenizer *d) { delete d; }

int tern_token_is_eog(const tern_model *m, int32_t token) {
  if (!m || token < 0 || token >= m->nVocab)
    return 0;
  if (m->tok)
    return m->tok->isEog(token) ? 1 : 0;
  const model::ModelConfig &c = m->m->config();
  return token == c.eosId || token == c.eotId;
}

tern_status tern_stop_matcher_create(const char *const *stops, size_t n_stops,
                                     tern_stop_matcher **out) {
  static constexpr const char *fn = "tern_stop_matcher_create";
  clearOut(out);
  return entry(fn, {{"matcher", out}}, [&]() -> tern_status {
    if (!stops && n_stops)
      return nullArg(fn, "stops");
    std::vector<std::string> v;
    v.reserve(n_stops);
    for (size_t i = 0; i < n_stops; ++i) {
      if (!stops[i])
        return fail(TERN_ERR_INVALID_ARGUMENT, fmt::format("{}: stops[{}] is NULL", fn, i));
      v.emplace_back(stops[i]);
    }
    *out = new tern_stop_matcher{sampling::StopStrings(std::move(v)), {}};
    return TERN_OK;
  });
}

tern_status tern_stop_matcher_push(tern_stop_matcher *m, const char *text, size_t len,
                                   const char **out, size_t *out_len, int *stopped) {
  static constexpr const char *fn = "tern_stop_matcher_push";
  return entry(fn, {{"matcher", m}, {"out", out}, {"out_len", out_len}, {"stopped", stopped}},
               [&]() -> tern_status {
                 *out = nullptr;
                 *out_len = 0;
                 if (!text && len)
                   return nullArg(fn, "text");
                 sampling::StopStrings::Step st =
                     m->s.push(std::string_view(text ? text : "", len));
                 m->text = std::move(st.text);
                 *out = m->text.data();
                 *out_len = m->text.size();
                 *stopped = st.stopped ? 1 : 0;
                 return TERN_OK;
               });
}

tern_status tern_stop_matcher_flush(tern_stop_matcher *m, const char **out, size_t *out_len) {
  return entry("tern_stop_matcher_flush", {{"matcher", m}, {"out", out}, {"out_len", out_len}},
               [&]() -> tern_status {
                 m->text = m->s.flush();
                 *out = m->text.data();
                 *out_len = m->text.size();
                 return TERN_OK;
               });
}

void tern_stop_matcher_free(tern_stop_matcher *m) { delete m; }

// ---------------------------------------------------------------------------
// Sessions

tern_status tern_session_create(tern_model *m, tern_session **out) {
  static constexpr const char *fn = "tern_session_create";
  clearOut(out);
  return entry(fn, {{"session", out}, {"model", m}}, [&]() -> tern_status {
    absl::StatusOr<std::unique_ptr<model::Session>> s = m->m->newSession();
    if (!s.ok())
      return fail(s.status(), fn);
    auto h = std::make_unique<tern_session>();
    h->model = m;
    h->s = std::move(*s);
    *out = h.release();
    return TERN_OK;
  });
}

tern_status tern_session_fork(const tern_session *src, tern_session **out) {
  static constexpr const char *fn = "tern_session_fork";
  clearOut(out);
  return entry(fn, {{"fork", out}, {"session", src}}, [&]() -> tern_status {
    absl::StatusOr<std::unique_ptr<model::Session>> s = src->model->m->fork(*src->s);
    if (!s.ok())
      return fail(s.status(), fn);
    auto h = std::make_unique<tern_session>();
    h->model = src->model;
    h->s = std::move(*s);
    if (src->hasLogits) {
      h->logits = src->logits;
      h->hasLogits = true;
    }
    *out = h.release();
    return TERN_OK;
  });
}

tern_status tern_session_truncate(tern_session *s, uint64_t n_positions) {
  static constexpr const char *fn = "tern_session_truncate";
  return entry(fn, {{"session", s}}, [&]() -> tern_status {
    if (absl::Status st = s->model->m->truncate(*s->s, n_positions); !st.ok())
      return fail(st, fn);
    s->hasLogits = false;
    return TERN_OK;
  });
}

void tern_session_free(tern_session *s) { delete s; }

int64_t tern_session_position(const tern_session *s) {
  if (!s) {
    nullArg("tern_session_position", "session");
    return -1;
  }
  return int64_t(s->s->position());
}

tern_status tern_session_tokens(const tern_session *s, const int32_t **tokens, size_t *n) {
  return entry("tern_session_tokens", {{"session", s}, {"tokens", tokens}, {"n_tokens", n}},
               [&]() -> tern_status {
                 std::span<const int32_t> t = s->s->tokens();
                 *tokens = t.data();
                 *n = t.size();
                 return TERN_OK;
               });
}

tern_status tern_forward(tern_model *m, tern_batch_item *items, size_t n_items) {
  static constexpr const char *fn = "tern_forward";
  // A malformed call: nothing runs, every item gets the call's status.
  auto malformed = [&](tern_status code, std::string msg) {
    fail(code, std::move(msg));
    for (size_t i = 0; i < n_items; ++i) {
      items[i].status = code;
      items[i].message = tLastError.c_str();
    }
    return code;
  };
  return entry(fn, {{"model", m}}, [&]() -> tern_status {
    if (!items && n_items)
      return nullArg(fn, "items");
    if (n_items == 0)
      return fail(TERN_ERR_INVALID_ARGUMENT, fmt::format("{}: no items", fn));
    std::unordered_set<const tern_session *> seen;
    for (size_t i = 0; i < n_items; ++i) {
      const tern_batch_item &it = items[i];
      if (!it.session)
        return malformed(TERN_ERR_INVALID_ARGUMENT,
                         fmt::format("{}: item {}: session is NULL", fn, i));
      if (it.session->model != m)
        return malformed(TERN_ERR_INVALID_ARGUMENT,
                         fmt::format("{}: item {}: the session belongs to another model", fn, i));
      if (!seen.insert(it.session).second)
        return malformed(
            TERN_ERR_INVALID_ARGUMENT,
            fmt::format("{}: item {}: the same session appears twice in one call", fn, i));
      if (!it.tokens && it.n_tokens)
        return malformed(TERN_ERR_INVALID_ARGUMENT,
                         fmt::format("{}: item {}: tokens is NULL", fn, i));
    }
    std::vector<model::BatchItem> batch;
    std::vector<size_t> index; // batch entry -> item
    batch.reserve(n_items);
    for (size_t i = 0; i < n_items; ++i) {
      tern_batch_item &it = items[i];
      tern_session &s = *it.session;
      s.message.clear();
      it.status = TERN_OK;
      it.message = s.message.c_str();
      // Checked here too so that the code is exact whatever the model's text.
      const uint64_t pos = s.s->position();
      if (it.n_tokens && pos + it.n_tokens > m->nCtx) {
        s.message = statusMessage(model::contextFullError(pos, it.n_tokens, m->nCtx));
        it.status = TERN_ERR_CONTEXT_FULL;
        it.message = s.message.c_str();
        continue;
      }
      model::BatchItem b;
      b.session = s.s.get();
      b.tokens = std::span<const int32_t>(it.tokens, it.n_tokens);
      if (it.want_logits) {
        s.pending.resize(size_t(m->nVocab));
        b.logits = s.pending;
      }
      batch.push_back(std::move(b));
      index.push_back(i);
    }
    if (!batch.empty()) {
      if (absl::Status st = m->m->forward(batch); !st.ok())
        return malformed(codeOf(st), fmt::format("{}: {}", fn, statusMessage(st)));
    }
    size_t failed = 0, first = n_items;
    for (size_t b = 0; b < batch.size(); ++b) {
      tern_batch_item &it = items[index[b]];
      tern_session &s = *it.session;
      if (batch[b].status.ok()) {
        if (it.want_logits) {
          s.logits.swap(s.pending);
          s.hasLogits = true;
        } else {
          s.hasLogits = false;
        }
        continue;
      }
      s.message = statusMessage(batch[b].status);
      it.status = codeOf(batch[b].status);
      it.message = s.message.c_str();
    }
    for (size_t i = 0; i < n_items; ++i)
      if (items[i].status != TERN_OK) {
        ++failed;
        first = std::min(first, i);
      }
    if (failed == 0)
      return TERN_OK;
    return fail(TERN_ERR_BATCH,
                fmt::format("{}: {} of {} items failed; item {}: {} ({})", fn, failed, n_items,
                            first, items[first].message, tern_status_name(items[first].status)));
  });
}

tern_status tern_decode(tern_session *s, const int32_t *tokens, size_t n_tokens) {
  static constexpr const char *fn = "tern_decode";
  return entry(fn, {{"session", s}}, [&]() -> tern_status {
    if (!tokens && n_tokens)
      return nullArg(fn, "tokens");
    tern_batch_item it{};
    it.session = s;
    it.tokens = tokens;
    it.n_tokens = n_tokens;
    it.want_logits = 1;
    tern_status r = tern_forward(s->model, &it, 1);
    if (r == TERN_ERR_BATCH)
      return fail(it.status, fmt::format("{}: {}", fn, it.message));
    return r;
  });
}

tern_status tern_session_logits(const tern_session *s, const float **logits, size_t *n) {
  static constexpr const char *fn = "tern_session_logits";
  return entry(fn, {{"session", s}, {"logits", logits}, {"n_logits", n}}, [&]() -> tern_status {
    *logits = nullptr;
    *n = 0;
    if (!s->hasLogits)
      return fail(TERN_ERR_STATE,
                  fmt::format("{}: the session has no logits (its last forward did not ask for "
                              "them, failed, or it was truncated)",
                              fn));
    *logits = s->logits.data();
    *n = s->logits.size();
    return TERN_OK;
  });
}

// ---------------------------------------------------------------------------
// Logits

tern_status tern_logits_argmax(const float *logits, size_t n_logits, int32_t *token) {
  static constexpr const char *fn = "tern_logits_argmax";
  return entry(fn, {{"logits", logits}, {"token", token}}, [&]() -> tern_status {
    if (n_logits == 0 || n_logits > size_t(INT32_MAX))
      return fail(TERN_ERR_INVALID_ARGUMENT,
                  fmt::format("{}: n_logits must be in [1, 2^31), got {}", fn, n_logits));
    *token = model::argmax(std::span<const float>(logits, n_logits));
    return TERN_OK;
  });
}

tern_status tern_logits_top_probs(const float *logits, size_t n_logits, size_t k, int32_t *ids,
                                  double *probs, size_t *n) {
  static constexpr const char *fn = "tern_logits_top_probs";
  return entry(fn, {{"logits", logits}, {"n", n}}, [&]() -> tern_status {
    *n = 0;
    if (n_logits == 0 || n_logits > size_t(INT32_MAX))
      return fail(TERN_ERR_INVALID_ARGUMENT,
                  fmt::format("{}: n_logits must be in [1, 2^31), got {}", fn, n_logits));
    if (k && !ids)
      return nullArg(fn, "ids");
    if (k && !probs)
      return nullArg(fn, "probs");
    const std::vector<double> p = model::softmax(std::span<const float>(logits, n_logits));
    const std::vector<std::pair<int32_t, double>> top =
        model::topK(p, int(std::min<size_t>(k, n_logits)));
    for (size_t i = 0; i < top.size(); ++i) {
      ids[i] = top[i].first;
      probs[i] = top[i].second;
    }
    *n = top.size();
    return TERN_OK;
  });
}

// ---------------------------------------------------------------------------
// Sampling

void tern_sampler_params_init(tern_sampler_params *p) {
  if (!p)
    return;
  std::memset(p, 0, sizeof(*p));
  const sampling::SamplerParams d;
  p->temperature = d.temperature;
  p->top_k = d.topK;
  p->top_p = d.topP;
  p->min_p = d.minP;
  p->repeat_last_n = d.repeatLastN;
  p->repeat_penalty = d.repeatPenalty;
  p->frequency_penalty = d.frequencyPenalty;
  p->presence_penalty = d.presencePenalty;
  p->seed = TERN_SEED_RANDOM;
  p->logit_bias = nullptr;
  p->n_logit_bias = 0;
  p->ignore_eos = 0;
}

} // extern "C"

namespace {

// What tern_sampler_create and tern_sampler_create_vocab share: `m` (NULL for
// a bare vocabulary) gives the end-of-generation tokens ignore_eos bans.
tern_status makeSampler(const tern_model *m, int32_t nVocab, int32_t nCtx,
                        const tern_sampler_params *params, tern_sampler **out, const char *fn) {
  tern_sampler_params p;
  tern_sampler_params_init(&p);
  if (params)
    p = *params;
  if (!p.logit_bias && p.n_logit_bias)
    return nullArg(fn, "params->logit_bias");
  sampling::SamplerParams sp;
  sp.temperature = p.temperature;
  sp.topK = p.top_k;
  sp.topP = p.top_p;
  sp.minP = p.min_p;
  sp.repeatLastN = p.repeat_last_n;
  sp.repeatPenalty = p.repeat_penalty;
  sp.frequencyPenalty = p.frequency_penalty;
  sp.presencePenalty = p.presence_penalty;
  sp.seed = p.seed == TERN_SEED_RANDOM ? sampling::randomSeed() : p.seed;
  for (size_t i = 0; i < p.n_logit_bias; ++i)
    sp.logitBias.push_back({p.logit_bias[i].token, p.logit_bias[i].bias});
  if (p.ignore_eos) {
    if (!m)
      return fail(TERN_ERR_INVALID_ARGUMENT,
                  fmt::format("{}: params->ignore_eos needs a model (its end-of-generation "
                              "tokens); ban tokens with params->logit_bias instead",
                              fn));
    std::vector<int32_t> eog;
    for (int32_t t = 0; t < m->nVocab; ++t)
      if (tern_token_is_eog(m, t))
        eog.push_back(t);
    sampling::banTokens(sp, eog);
  }
  const uint64_t seed = sp.seed;
  absl::StatusOr<sampling::Sampler> s = sampling::Sampler::create(std::move(sp), nVocab, nCtx);
  if (!s.ok())
    return fail(s.status(), fn);
  *out = new tern_sampler{nVocab, std::move(*s), seed};
  return TERN_OK;
}

} // namespace

extern "C" {

tern_status tern_sampler_create(const tern_model *m, const tern_sampler_params *params,
                                tern_sampler **out) {
  static constexpr const char *fn = "tern_sampler_create";
  clearOut(out);
  return entry(fn, {{"sampler", out}, {"model", m}}, [&]() -> tern_status {
    return makeSampler(m, m->nVocab, int32_t(m->nCtx), params, out, fn);
  });
}

tern_status tern_sampler_create_vocab(int32_t n_vocab, int32_t n_ctx,
                                      const tern_sampler_params *params, tern_sampler **out) {
  static constexpr const char *fn = "tern_sampler_create_vocab";
  clearOut(out);
  return entry(fn, {{"sampler", out}}, [&]() -> tern_status {
    if (n_vocab < 1)
      return fail(TERN_ERR_INVALID_ARGUMENT,
                  fmt::format("{}: n_vocab must be >= 1, got {}", fn, n_vocab));
    if (n_ctx < 0)
      return fail(TERN_ERR_INVALID_ARGUMENT,
                  fmt::format("{}: n_ctx must be >= 0 (0: none), got {}", fn, n_ctx));
    return makeSampler(nullptr, n_vocab, n_ctx, params, out, fn);
  });
}

tern_status tern_sampler_clone(const tern_sampler *s, tern_sampler **out) {
  clearOut(out);
  return entry("tern_sampler_clone", {{"clone", out}, {"sampler", s}}, [&]() -> tern_status {
    *out = new tern_sampler(*s);
    return TERN_OK;
  });
}

void tern_sampler_free(tern_sampler *s) { delete s; }

uint64_t tern_sampler_seed(const tern_sampler *s) {
  if (!s) {
    nullArg("tern_sampler_seed", "sampler");
    return 0;
  }
  return s->seed;
}

tern_status tern_sampler_sample(tern_sampler *s, const float *logits, size_t n_logits,
                                int32_t *token) {
  static constexpr const char *fn = "tern_sampler_sample";
  return entry(fn, {{"sampler", s}, {"logits", logits}, {"token", token}}, [&]() -> tern_status {
    if (n_logits != size_t(s->nVocab))
      return fail(
          TERN_ERR_INVALID_ARGUMENT,
          fmt::format("{}: n_logits is {}, the vocabulary has {}", fn, n_logits, s->nVocab));
    absl::StatusOr<int32_t> t = s->s.sample(std::span<const float>(logits, n_logits));
    if (!t.ok())
      return fail(t.status(), fn);
    *token = *t;
    return TERN_OK;
  });
}

tern_status tern_sampler_accept(tern_sampler *s, int32_t token) {
  static constexpr const char *fn = "tern_sampler_accept";
  return entry(fn, {{"sampler", s}}, [&]() -> tern_status {
    if (token < 0 || token >= s->nVocab)
      return fail(
          TERN_ERR_INVALID_ARGUMENT,
          fmt::format("{}: token id {} is outside the vocabulary [0, {})", fn, token, s->nVocab));
    s->s.accept(token);
    return TERN_OK;
  });
}

tern_status tern_sampler_reset(tern_sampler *s, uint64_t seed) {
  return entry("tern_sampler_reset", {{"sampler", s}}, [&]() -> tern_status {
    s->seed = seed == TERN_SEED_RANDOM ? sampling::randomSeed() : seed;
    s->s.resetHistory();
    s->s.reseed(s->seed);
    return TERN_OK;
  });
}

// ---------------------------------------------------------------------------
// Chat

const char *tern_chat_template_names(void) {
  static const std::string names = chat::supportedTemplateNames();
  return names.c_str();
}

tern_status tern_chat_template(const tern_model *m, const char *name, const char **out) {
  static constexpr const char *fn = "tern_chat_template";
  if (out)
    *out = nullptr;
  if (!m && !name)
    return nullArg(fn, "model");
  return entry(fn, {{"template_name", out}}, [&]() -> tern_status {
    absl::StatusOr<chat::Selection> sel = selection(m, name);
    if (!sel.ok())
      return fail(codeOf(sel.status()) == TERN_ERR_INVALID_ARGUMENT && name ? TERN_ERR_NOT_FOUND
                                                                            : codeOf(sel.status()),
                  fmt::format("{}: {}", fn, statusMessage(sel.status())));
    *out = chat::templateName(sel->kind).data(); // static, NUL-terminated literals
    return TERN_OK;
  });
}

tern_status tern_chat_apply_template(const tern_model *m, const char *name,
                                     const tern_chat_message *messages, size_t n_messages,
                                     int add_generation_prompt, char *buf, size_t capacity,
                                     size_t *len) {
  static constexpr const char *fn = "tern_chat_apply_template";
  return entry(fn, {{"model", m}, {"len", len}}, [&]() -> tern_status {
    *len = 0;
    if (!messages && n_messages)
      return nullArg(fn, "messages");
    const char *kindName = nullptr;
    if (tern_status s = tern_chat_template(m, name, &kindName))
      return s;
    absl::StatusOr<chat::TemplateKind> k = chat::templateByName(kindName);
    if (!k.ok())
      return fail(k.status(), fn);
    std::vector<chat::Message> msgs;
    msgs.reserve(n_messages);
    for (size_t i = 0; i < n_messages; ++i) {
      if (!messages[i].role)
        return fail(TERN_ERR_INVALID_ARGUMENT, fmt::format("{}: messages[{}].role is NULL", fn, i));
      if (!messages[i].content)
        return fail(TERN_ERR_INVALID_ARGUMENT,
                    fmt::format("{}: messages[{}].content is NULL", fn, i));
      absl::StatusOr<chat::Role> r = chat::parseRole(messages[i].role);
      if (!r.ok())
        return fail(TERN_ERR_INVALID_ARGUMENT,
                    fmt::format("{}: messages[{}].role: {}", fn, i, statusMessage(r.status())));
      msgs.push_back({*r, messages[i].content});
    }
    chat::RenderOptions o = renderOptions(m);
    o.addGenerationPrompt = add_generation_prompt != 0;
    std::string text = chat::render(*k, msgs, o);
    *len = text.size();
    if (text.size() >= capacity)
      return fail(TERN_ERR_BUFFER_TOO_SMALL,
                  fmt::format("{}: {} bytes and the NUL do not fit in a buffer of {}", fn,
                              text.size(), capacity));
    if (!buf)
      return nullArg(fn, "buf");
    std::memcpy(buf, text.c_str(), text.size() + 1);
    return TERN_OK;
  });
}

tern_status tern_chat_tokenize(const tern_model *m, const char *text, size_t text_len,
                               int start_of_session, int32_t *tokens, size_t capacity,
                               size_t *n_tokens) {
  static constexpr const char *fn = "tern_chat_tokenize";
  return entry(fn, {{"model", m}, {"n_tokens", n_tokens}}, [&]() -> tern_status {
    *n_tokens = 0;
    if (!text && text_len)
      return nullArg(fn, "text");
    if (tern_status s = needTokenizer(m, fn))
      return s;
    std::vector<int32_t> ids = chat::tokenizePrompt(
        *m->tok, std::string_view(text ? text : "", text_len), start_of_session != 0);
    return putTokens(ids, tokens, capacity, n_tokens, fn);
  });
}

tern_status tern_chat_create(const tern_model *m, const char *name, tern_chat **out) {
  static constexpr const char *fn = "tern_chat_create";
  clearOut(out);
  return entry(fn, {{"chat", out}, {"model", m}}, [&]() -> tern_status {
    if (tern_status s = needTokenizer(m, fn))
      return s;
    absl::StatusOr<chat::Selection> sel = selection(m, name);
    if (!sel.ok())
      return fail(codeOf(sel.status()) == TERN_ERR_INVALID_ARGUMENT && name ? TERN_ERR_NOT_FOUND
                                                                            : codeOf(sel.status()),
                  fmt::format("{}: {}", fn, statusMessage(sel.status())));
    auto c = std::make_unique<tern_chat>(m, std::move(*sel), renderOptions(m));
    c->eotText = chat::endOfTurn(c->sel.kind);
    if (std::optional<int32_t> id = m->tok->findToken(c->eotText); id && *id < m->nVocab)
      c->eotId = *id;
    // Without a system message the session starts with the BOS (when the
    // tokenizer adds one, or the template writes it: llama3).
    c->prefix =
        chat::shouldAddBos(*m->tok, "", true) || chat::templateEmitsBos(c->sel.kind) ? 1 : 0;
    *out = c.release();
    return TERN_OK;
  });
}

void tern_chat_free(tern_chat *c) { delete c; }

tern_status tern_chat_get_info(const tern_chat *c, tern_chat_info *info) {
  return entry("tern_chat_get_info", {{"chat", c}, {"info", info}}, [&]() -> tern_status {
    std::memset(info, 0, sizeof(*info));
    info->template_name = chat::templateName(c->sel.kind).data();
    switch (c->sel.source) {
    case chat::TemplateSource::Override:
      info->source = TERN_CHAT_TEMPLATE_OVERRIDE;
      break;
    case chat::TemplateSource::Gguf:
      info->source = TERN_CHAT_TEMPLATE_GGUF;
      break;
    case chat::TemplateSource::Default:
      info->source = TERN_CHAT_TEMPLATE_DEFAULT;
      break;
    }
    info->source_name = chat::templateSourceName(c->sel.source).data();
    info->exact = c->sel.exact ? 1 : 0;
    info->reason = c->sel.reason.c_str();
    info->end_of_turn = c->eotText.data();
    info->end_of_turn_token = c->eotId;
    return TERN_OK;
  });
}

tern_status tern_chat_add_system(tern_chat *c, const char *content, size_t len) {
  static constexpr const char *fn = "tern_chat_add_system";
  return entry(fn, {{"chat", c}}, [&]() -> tern_status {
    if (!content && len)
      return nullArg(fn, "content");
    std::string text(content ? content : "", len);
    if (absl::Status s = c->conv.addSystem(text); !s.ok())
      return fail(s, fn);
    // What the session holds before the first user message: the system
    // message rendered alone, tokenized at the start of the session.
    chat::RenderOptions o = c->opts;
    o.addGenerationPrompt = false;
    const chat::Message sys{chat::Role::System, std::move(text)};
    c->prefix =
        chat::tokenizePrompt(*c->model->tok, chat::render(c->sel.kind, std::span(&sys, 1), o),
                             /*startOfSession=*/true)
            .size();
    return TERN_OK;
  });
}

tern_status tern_chat_prefix_tokens(const tern_chat *c, size_t *n) {
  return entry("tern_chat_prefix_tokens", {{"chat", c}, {"n_tokens", n}}, [&]() -> tern_status {
    *n = c->prefix;
    return TERN_OK;
  });
}

tern_status tern_chat_add_user(tern_chat *c, const char *content, size_t len,
                               const int32_t **tokens, size_t *n_tokens) {
  static constexpr const char *fn = "tern_chat_add_user";
  return entry(fn, {{"chat", c}, {"tokens", tokens}, {"n_tokens", n_tokens}}, [&]() -> tern_status {
    *tokens = nullptr;
    *n_tokens = 0;
    if (!content && len)
      return nullArg(fn, "content");
    absl::StatusOr<chat::Conversation::Turn> turn =
        c->conv.addUser(std::string(content ? content : "", len));
    if (!turn.ok())
      return fail(turn.status(), fn);
    c->ids = chat::tokenizePrompt(*c->model->tok, turn->text, turn->startOfSession);
    *tokens = c->ids.data();
    *n_tokens = c->ids.size();
    return TERN_OK;
  });
}

tern_status tern_chat_add_reply(tern_chat *c, const char *content, size_t len,
                                int end_of_turn_in_session) {
  static constexpr const char *fn = "tern_chat_add_reply";
  return entry(fn, {{"chat", c}}, [&]() -> tern_status {
    if (!content && len)
      return nullArg(fn, "content");
    if (absl::Status s =
            c->conv.addReply(std::string(content ? content : "", len), end_of_turn_in_session != 0);
        !s.ok())
      return fail(s, fn);
    return TERN_OK;
  });
}

} // extern "C"

// ---------------------------------------------------------------------------
// The C++ bridge for the tools (runtime/capi/bridge.h)

namespace tern::capi {

tern_sampler_params samplerParams(const sampling::SamplerParams &s, uint64_t seed, bool ignoreEos,
                                  std::vector<tern_logit_bias> &bias) {
  tern_sampler_params p;
  tern_sampler_params_init(&p);
  p.temperature = s.temperature;
  p.top_k = s.topK;
  p.top_p = s.topP;
  p.min_p = s.minP;
  p.repeat_last_n = s.repeatLastN;
  p.repeat_penalty = s.repeatPenalty;
  p.frequency_penalty = s.frequencyPenalty;
  p.presence_penalty = s.presencePenalty;
  p.seed = seed;
  bias.clear();
  for (const sampling::LogitBias &b : s.logitBias)
    bias.push_back({b.token, b.bias});
  p.logit_bias = bias.data();
  p.n_logit_bias = bias.size();
  p.ignore_eos = ignoreEos ? 1 : 0;
  return p;
}

tern_status adoptModel(std::unique_ptr<model::Model> m, tern_model **out) {
  static constexpr const char *fn = "tern::capi::adoptModel";
  clearOut(out);
  return entry(fn, {{"model", out}, {"m", m.get()}}, [&]() -> tern_status {
    model::Model *raw = m.get();
    *out = adopt(raw, std::move(m)).release();
    return TERN_OK;
  });
}

tern_status borrowModel(model::Model &m, tern_model **out) {
  static constexpr const char *fn = "tern::capi::borrowModel";
  clearOut(out);
  return entry(fn, {{"model", out}}, [&]() -> tern_status {
    *out = adopt(&m, nullptr).release();
    return TERN_OK;
  });
}

const model::Model &cxxModel(const tern_model *m) { return *m->m; }
model::Model &cxxModel(tern_model *m) { return *m->m; }

absl::Status toStatus(tern_status code, std::string_view message) {
  if (code == TERN_OK)
    return absl::OkStatus();
  std::string_view msg = message;
  // Drop the entry point's name ("tern_decode: "): a tool names itself.
  if (msg.rfind("tern_", 0) == 0)
    if (size_t colon = msg.find(": ");
        colon != std::string_view::npos && msg.substr(0, colon).find(' ') == std::string_view::npos)
      msg.remove_prefix(colon + 2);
  const std::string text(msg);
  switch (code) {
  case TERN_ERR_INVALID_ARGUMENT:
    return absl::InvalidArgumentError(text);
  case TERN_ERR_NOT_FOUND:
    return absl::NotFoundError(text);
  case TERN_ERR_BAD_MODEL:
    return absl::DataLossError(text);
  case TERN_ERR_UNSUPPORTED:
    return absl::UnimplementedError(text);
  case TERN_ERR_CONTEXT_FULL:
  case TERN_ERR_KV_EXHAUSTED:
  case TERN_ERR_OUT_OF_MEMORY:
    return absl::ResourceExhaustedError(text);
  case TERN_ERR_STATE:
    return absl::FailedPreconditionError(text);
  case TERN_ERR_IO:
    return absl::UnavailableError(text);
  default:
    return absl::InternalError(text);
  }
}

absl::Status lastStatus(tern_status code) { return toStatus(code, tLastError); }

} // namespace tern::capi
