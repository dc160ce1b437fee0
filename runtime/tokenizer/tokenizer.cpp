#include "runtime/tokenizer/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstring>
#include <queue>

#include "runtime/gguf/gguf.h"
#include <fmt/format.h>

namespace tern::tokenizer {

//===----------------------------------------------------------------------===//
// UTF-8
//===----------------------------------------------------------------------===//

namespace {

template <typename... A> std::string cat(const A &...a) {
  std::string s;
  ((s += fmt::format("{}", a)), ...);
  return s;
}

// Printable ASCII as is, other bytes as \xNN (for error messages).
std::string escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F && c != '\\')
      out += static_cast<char>(c);
    else
      out += fmt::format("\\x{:02X}", c);
  }
  return out;
}

// One step of UTF-8 scanning at p[0..n).
//   status 1: well-formed sequence of `len` bytes;
//   status 0: ill-formed; `len` = maximal subpart to replace by one U+FFFD;
//   status -1: truncated: the `len` = n bytes are a valid prefix of a sequence.
struct Utf8Step {
  int status;
  size_t len;
};

Utf8Step utf8Step(const unsigned char *p, size_t n) {
  const unsigned b0 = p[0];
  if (b0 < 0x80)
    return {1, 1};
  size_t need;
  unsigned lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 == 0xE0) {
    need = 3, lo = 0xA0;
  } else if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) {
    need = 3;
  } else if (b0 == 0xED) {
    need = 3, hi = 0x9F;
  } else if (b0 == 0xF0) {
    need = 4, lo = 0x90;
  } else if (b0 >= 0xF1 && b0 <= 0xF3) {
    need = 4;
  } else if (b0 == 0xF4) {
    need = 4, hi = 0x8F;
  } else {
    return {0, 1};
  }
  if (n < 2)
    return {-1, n};
  if (p[1] < lo || p[1] > hi)
    return {0, 1};
  for (size_t i = 2; i < need; ++i) {
    if (n <= i)
      return {-1, n};
    if (p[i] < 0x80 || p[i] > 0xBF)
      return {0, i};
  }
  return {1, need};
}

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
constexpr std::string_view kSpmSpace = "\xE2\x96\x81"; // U+2581

void appendUtf8(uint32_t cp, std::string &out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

uint32_t decodeValid(const unsigned char *p, size_t len) {
  switch (len) {
  case 1:
    return p[0];
  case 2:
    return ((p[0] & 0x1F) << 6) | (p[1] & 0x3F);
  case 3:
    return ((p[0] & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
  default:
    return ((p[0] & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
  }
}

//===----------------------------------------------------------------------===//
// GPT-2 byte <-> unicode mapping
//===----------------------------------------------------------------------===//

struct ByteMap {
  uint32_t byteToCp[256];
  std::string byteToUtf8[256];
  int16_t cpToByte[0x200]; // all mapped code points are < 0x144
  ByteMap() {
    std::fill(std::begin(cpToByte), std::end(cpToByte), int16_t(-1));
    uint32_t n = 0;
    for (int b = 0; b < 256; ++b) {
      bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      byteToCp[b] = self ? b : 256 + n++;
      appendUtf8(byteToCp[b], byteToUtf8[b]);
      cpToByte[byteToCp[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteMap &byteMap() {
  static const ByteMap m;
  return m;
}

// Byte-level text (as in GGUF) -> raw bytes. Characters outside the mapping
// (or ill-formed UTF-8) are copied through unchanged.
std::string decodeByteLevel(std::string_view s) {
  const ByteMap &m = byteMap();
  std::string out;
  out.reserve(s.size());
  const auto *p = reinterpret_cast<const unsigned char *>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    Utf8Step st = utf8Step(p + i, s.size() - i);
    if (st.status == 1) {
      uint32_t cp = decodeValid(p + i, st.len);
      if (cp < 0x200 && m.cpToByte[cp] >= 0) {
        out += static_cast<char>(m.cpToByte[cp]);
      } else {
        out.append(s.substr(i, st.len));
      }
      i += st.len;
    } else {
      out.append(s.substr(i, st.len));
      i += st.len;
    }
  }
  return out;
}

void replaceAll(std::string &s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (true) {
    size_t f = s.find(from, pos);
    if (f == std::string::npos)
      break;
    out.append(s, pos, f - pos);
    out.append(to);
    pos = f + from.size();
  }
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

} // namespace

namespace utf8 {

size_t validPrefixLen(std::string_view s) {
  if (s.empty())
    return 0;
  Utf8Step st = utf8Step(reinterpret_cast<const unsigned char *>(s.data()), s.size());
  return st.status == 1 ? st.len : 0;
}

// End of the longest well-formed UTF-8 run of p[0, n) that starts at i.
size_t wellFormedRunEnd(const unsigned char *p, size_t n, size_t i) {
  while (i < n) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    Utf8Step st = utf8Step(p + i, n - i);
    if (st.status != 1)
      break;
    i += st.len;
  }
  return i;
}

size_t sanitize(std::string_view s, std::string &out, bool holdIncomplete) {
  const auto *p = reinterpret_cast<const unsigned char *>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    size_t runStart = i;
    i = wellFormedRunEnd(p, s.size(), i); // fast path over ASCII / valid runs
    out.append(s.substr(runStart, i - runStart));
    if (i >= s.size())
      break;
    Utf8Step st = utf8Step(p + i, s.size() - i);
    if (st.status == -1) {
      if (holdIncomplete)
        return st.len;
      out.append(kReplacement);
      return 0;
    }
    out.append(kReplacement);
    i += st.len;
  }
  return 0;
}

} // namespace utf8

//===----------------------------------------------------------------------===//
// Pre-tokenizer: a list of PCRE2 regexes applied in sequence
//===----------------------------------------------------------------------===//

namespace {

// llama.cpp's whitespace set (unicode_cpt_flags::is_whitespace), used instead
// of PCRE2's \s (which also matches U+180E).
#define TERN_WS                                                                                    \
  "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}"                              \
  "\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

const char *const kGpt2Regex = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" TERN_WS
                               "\\p{L}\\p{N}]+|[" TERN_WS "]+(?![^" TERN_WS "])";

// (?i:...) spelled as llama.cpp does ('[sS] ...) so that caseless matching
// cannot pull in U+017F and friends.
const char *const kLlama3Regex = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
                                 "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"
                                 "|\\p{N}{1,3}"
                                 "| ?[^" TERN_WS "\\p{L}\\p{N}]+[\\r\\n]*"
                                 "|[" TERN_WS "]*[\\r\\n]+"
                                 "|[" TERN_WS "]+(?![^" TERN_WS "])"
                                 "|[" TERN_WS "]+";

#undef TERN_WS

struct CodeDeleter {
  void operator()(pcre2_code *c) const { pcre2_code_free(c); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data *m) const { pcre2_match_data_free(m); }
};

} // namespace

struct Tokenizer::PreTok {
  std::vector<std::unique_ptr<pcre2_code, CodeDeleter>> codes;

  static absl::StatusOr<std::shared_ptr<const PreTok>>
  create(const std::vector<const char *> &patterns) {
    auto pt = std::make_shared<PreTok>();
    for (const char *pat : patterns) {
      int err = 0;
      PCRE2_SIZE errOff = 0;
      pcre2_code *code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat), PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP, &err, &errOff, nullptr);
      if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return absl::InternalError(fmt::format("pre-tokenizer regex '{}' does not compile at "
                                               "offset {}: {}",
                                               pat, static_cast<int>(errOff),
                                               reinterpret_cast<const char *>(msg)));
      }
      pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); // best effort
      pt->codes.emplace_back(code);
    }
    return std::shared_ptr<const PreTok>(std::move(pt));
  }

  // Splits the well-formed UTF-8 `seg` into chunks (offsets into seg).
  void split(std::string_view seg, std::vector<std::pair<size_t, size_t>> &out,
             pcre2_match_data *md) const {
    std::vector<std::pair<size_t, size_t>> cur{{0, seg.size()}}, next;
    for (const auto &code : codes) {
      next.clear();
      for (auto [off, len] : cur) {
        auto subj = reinterpret_cast<PCRE2_SPTR>(seg.data() + off);
        size_t pos = 0, gap = 0;
        while (pos < len) {
          int rc = pcre2_match(code.get(), subj, len, pos, PCRE2_NO_UTF_CHECK, md, nullptr);
          if (rc < 0) // no match, or a resource limit: the rest is one chunk
            break;
          PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
          size_t s = ov[0], e = ov[1];
          if (e <= s) { // empty match (not produced by our patterns): step on
            size_t l = utf8::validPrefixLen(seg.substr(off + s, len - s));
            pos = s + (l ? l : 1);
            continue;
          }
          if (s > gap)
            next.emplace_back(off + gap, s - gap);
          next.emplace_back(off + s, e - s);
          pos = gap = e;
        }
        if (gap < len)
          next.emplace_back(off + gap, len - gap);
      }
      std::swap(cur, next);
    }
    out.insert(out.end(), cur.begin(), cur.end());
  }
};

//===----------------------------------------------------------------------===//
// Construction
//===----------------------------------------------------------------------===//

Tokenizer::Tokenizer() { std::fill(std::begin(byteToken_), std::end(byteToken_), -1); }
Tokenizer::Tokenizer(Tokenizer &&) noexcept = default;
Tokenizer &Tokenizer::operator=(Tokenizer &&) noexcept = default;
Tokenizer::Tokenizer(const Tokenizer &) = default;
Tokenizer &Tokenizer::operator=(const Tokenizer &) = default;
Tokenizer::~Tokenizer() = default;

namespace {

constexpr std::string_view kKeyModel = "tokenizer.ggml.model";
constexpr std::string_view kKeyPre = "tokenizer.ggml.pre";
constexpr std::string_view kKeyTokens = "tokenizer.ggml.tokens";
constexpr std::string_view kKeyTypes = "tokenizer.ggml.token_type";
constexpr std::string_view kKeyScores = "tokenizer.ggml.scores";
constexpr std::string_view kKeyMerges = "tokenizer.ggml.merges";

bool isIntType(gguf::ValueType t) {
  using T = gguf::ValueType;
  return t == T::UINT8 || t == T::INT8 || t == T::UINT16 || t == T::INT16 || t == T::UINT32 ||
         t == T::INT32 || t == T::UINT64 || t == T::INT64;
}

absl::Status typeError(std::string_view key, std::string_view want, const gguf::Value &v) {
  std::string got = gguf::valueTypeName(v.type);
  if (v.type == gguf::ValueType::ARRAY)
    got = cat("array of ", gguf::valueTypeName(v.elemType));
  return absl::InvalidArgumentError(cat(key, ": expected ", want, ", found ", got));
}

absl::StatusOr<std::optional<std::string>> getStr(const gguf::File &f, std::string_view key) {
  const gguf::Value *v = f.find(key);
  if (!v)
    return std::optional<std::string>();
  if (v->type != gguf::ValueType::STRING)
    return typeError(key, "a string", *v);
  return std::optional<std::string>(v->str);
}

absl::StatusOr<std::optional<int64_t>> getInt(const gguf::File &f, std::string_view key) {
  const gguf::Value *v = f.find(key);
  if (!v)
    return std::optional<int64_t>();
  if (!isIntType(v->type))
    return typeError(key, "an integer", *v);
  if (auto i = v->asInt())
    return std::optional<int64_t>(*i);
  return absl::InvalidArgumentError(cat(key, ": value ", v->toString(), " is out of range"));
}

absl::StatusOr<std::optional<bool>> getBool(const gguf::File &f, std::string_view key) {
  const gguf::Value *v = f.find(key);
  if (!v)
    return std::optional<bool>();
  if (v->type == gguf::ValueType::BOOL)
    return std::optional<bool>(v->u != 0);
  if (isIntType(v->type)) {
    auto u = v->asInt();
    return std::optional<bool>(u && *u != 0);
  }
  return typeError(key, "a bool", *v);
}

const gguf::Value *findArray(const gguf::File &f, std::string_view key) { return f.find(key); }

} // namespace

absl::StatusOr<Tokenizer> Tokenizer::fromGGUF(const gguf::File &f) {
  VocabData v;
  {
    auto m = getStr(f, kKeyModel);
    if (!m.ok())
      return m.status();
    if (!m->has_value())
      return absl::NotFoundError(cat(kKeyModel, ": missing (the file has no tokenizer)"));
    v.model = **m;
  }
  {
    auto p = getStr(f, kKeyPre);
    if (!p.ok())
      return p.status();
    v.pre = p->value_or("");
  }
  // tokens
  {
    const gguf::Value *a = findArray(f, kKeyTokens);
    if (!a)
      return absl::NotFoundError(cat(kKeyTokens, ": missing"));
    if (a->type != gguf::ValueType::ARRAY || a->elemType != gguf::ValueType::STRING)
      return typeError(kKeyTokens, "an array of strings", *a);
    v.tokens.reserve(a->arr.size());
    for (const auto &e : a->arr) {
      if (e.type != gguf::ValueType::STRING)
        return typeError(kKeyTokens, "an array of strings", e);
      v.tokens.push_back(e.str);
    }
  }
  if (const gguf::Value *a = findArray(f, kKeyTypes)) {
    if (a->type != gguf::ValueType::ARRAY || !isIntType(a->elemType))
      return typeError(kKeyTypes, "an array of integers", *a);
    v.tokenTypes.reserve(a->arr.size());
    for (size_t i = 0; i < a->arr.size(); ++i) {
      auto x = a->arr[i].asInt();
      if (!x || *x < INT32_MIN || *x > INT32_MAX)
        return absl::InvalidArgumentError(
            fmt::format("{}[{}]: value out of range", kKeyTypes, static_cast<int64_t>(i)));
      v.tokenTypes.push_back(static_cast<int32_t>(*x));
    }
  }
  if (const gguf::Value *a = findArray(f, kKeyScores)) {
    if (a->type != gguf::ValueType::ARRAY ||
        !(a->elemType == gguf::ValueType::FLOAT32 || a->elemType == gguf::ValueType::FLOAT64))
      return typeError(kKeyScores, "an array of floats", *a);
    v.scores.reserve(a->arr.size());
    for (const auto &e : a->arr)
      v.scores.push_back(static_cast<float>(e.asDouble().value_or(0.0)));
  }
  if (const gguf::Value *a = findArray(f, kKeyMerges)) {
    if (a->type != gguf::ValueType::ARRAY || a->elemType != gguf::ValueType::STRING)
      return typeError(kKeyMerges, "an array of strings", *a);
    v.merges.reserve(a->arr.size());
    for (const auto &e : a->arr) {
      if (e.type != gguf::ValueType::STRING)
        return typeError(kKeyMerges, "an array of strings", e);
      v.merges.push_back(e.str);
    }
  }
  struct IdKey {
    std::string_view key;
    std::optional<int64_t> *dst;
  };
  for (IdKey k :
       {IdKey{"tokenizer.ggml.bos_token_id", &v.bos}, IdKey{"tokenizer.ggml.eos_token_id", &v.eos},
        IdKey{"tokenizer.ggml.eot_token_id", &v.eot}, IdKey{"tokenizer.ggml.eom_token_id", &v.eom},
        IdKey{"tokenizer.ggml.unknown_token_id", &v.unk},
        IdKey{"tokenizer.ggml.padding_token_id", &v.pad}}) {
    auto x = getInt(f, k.key);
    if (!x.ok())
      return x.status();
    *k.dst = *x;
  }
  struct BoolKey {
    std::string_view key;
    std::optional<bool> *dst;
  };
  for (BoolKey k : {BoolKey{"tokenizer.ggml.add_bos_token", &v.addBos},
                    BoolKey{"tokenizer.ggml.add_eos_token", &v.addEos},
                    BoolKey{"tokenizer.ggml.add_space_prefix", &v.addSpacePrefix}}) {
    auto x = getBool(f, k.key);
    if (!x.ok())
      return x.status();
    *k.dst = *x;
  }
  return fromVocab(std::move(v));
}

absl::StatusOr<Tokenizer> Tokenizer::fromVocab(VocabData v) {
  Tokenizer t;
  if (absl::Status s = t.build(v); !s.ok())
    return s;
  return t;
}

absl::Status Tokenizer::build(VocabData &v) {
  // Model and pre-tokenizer.
  std::vector<const char *> patterns;
  if (v.model == "gpt2") {
    kind_ = VocabKind::BytePairGpt2;
    if (v.pre.empty() || v.pre == "default") {
      pre_ = PreTokenizerKind::Default;
      patterns = {"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2Regex, "\\p{N}+", "[0-9][0-9][0-9]"};
    } else if (v.pre == "gpt2" || v.pre == "gpt-2") {
      pre_ = PreTokenizerKind::Gpt2;
      patterns = {kGpt2Regex};
    } else if (v.pre == "llama-bpe" || v.pre == "llama3" || v.pre == "llama-v3" ||
               v.pre == "falcon3") {
      pre_ = PreTokenizerKind::Llama3;
      patterns = {kLlama3Regex};
      ignoreMerges_ = true;
      addBos_ = true;
    } else {
      return absl::UnimplementedError(
          cat(kKeyPre, ": unsupported pre-tokenizer '", v.pre,
              "' (supported: default, gpt2, gpt-2, llama-bpe, llama3, llama-v3, "
              "falcon3)"));
    }
  } else if (v.model == "llama") {
    kind_ = VocabKind::SentencePiece;
    pre_ = PreTokenizerKind::None;
    addBos_ = true;
    addSpacePrefix_ = true;
  } else {
    return absl::UnimplementedError(
        cat(kKeyModel, ": unsupported tokenizer model '", v.model, "' (supported: gpt2, llama)"));
  }
  if (!patterns.empty()) {
    auto pt = PreTok::create(patterns);
    if (!pt.ok())
      return pt.status();
    preTok_ = *std::move(pt);
  }

  // Tokens.
  const size_t n = v.tokens.size();
  if (n == 0)
    return absl::InvalidArgumentError(cat(kKeyTokens, ": empty"));
  if (n > static_cast<size_t>(INT32_MAX))
    return absl::InvalidArgumentError(cat(kKeyTokens, ": too many tokens"));
  if (!v.tokenTypes.empty() && v.tokenTypes.size() != n)
    return absl::InvalidArgumentError(fmt::format("{}: has {} entries but {} has {}", kKeyTypes,
                                                  v.tokenTypes.size(), kKeyTokens, n));
  if (!v.scores.empty() && v.scores.size() != n)
    return absl::InvalidArgumentError(fmt::format("{}: has {} entries but {} has {}", kKeyScores,
                                                  v.scores.size(), kKeyTokens, n));
  tokens_ = std::move(v.tokens);
  types_.resize(n, TokenType::Normal);
  scores_.assign(n, 0.0f);
  if (!v.scores.empty())
    scores_ = std::move(v.scores);
  for (size_t i = 0; i < v.tokenTypes.size(); ++i) {
    int32_t ty = v.tokenTypes[i];
    types_[i] = (ty >= 0 && ty <= 6) ? static_cast<TokenType>(ty) : TokenType::Undefined;
  }
  tokenToId_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (tokens_[i].empty()) // as llama.cpp: keep the vocabulary addressable
      tokens_[i] = cat("[EMPTY_", i, "]");
    auto [it, inserted] = tokenToId_.emplace(tokens_[i], static_cast<int32_t>(i));
    if (!inserted)
      return absl::InvalidArgumentError(
          fmt::format("{}[{}]: duplicate token '{}' (same text as token {})", kKeyTokens, i,
                      escape(tokens_[i]), it->second));
  }

  // Special ids.
  auto checkId = [&](std::string_view key, const std::optional<int64_t> &in, int32_t dflt,
                     int32_t &out) -> absl::Status {
    if (!in) {
      out = (dflt >= 0 && static_cast<size_t>(dflt) < n) ? dflt : -1;
      return absl::OkStatus();
    }
    if (*in < 0 || static_cast<uint64_t>(*in) >= n)
      return absl::OutOfRangeError(
          fmt::format("{}: id {} is out of range (vocabulary has {} tokens)", key, *in, n));
    out = static_cast<int32_t>(*in);
    return absl::OkStatus();
  };
  const bool spm = kind_ == VocabKind::SentencePiece;
  for (auto [key, in, dflt, out] :
       {std::tuple{"tokenizer.ggml.bos_token_id", &v.bos, spm ? 1 : -1, &bos_},
        std::tuple{"tokenizer.ggml.eos_token_id", &v.eos, spm ? 2 : -1, &eos_},
        std::tuple{"tokenizer.ggml.eot_token_id", &v.eot, -1, &eot_},
        std::tuple{"tokenizer.ggml.eom_token_id", &v.eom, -1, &eom_},
        std::tuple{"tokenizer.ggml.unknown_token_id", &v.unk, spm ? 0 : -1, &unk_},
        std::tuple{"tokenizer.ggml.padding_token_id", &v.pad, -1, &pad_}}) {
    if (absl::Status s = checkId(key, *in, dflt, *out); !s.ok())
      return s;
  }
  if (v.addBos)
    addBos_ = *v.addBos;
  if (v.addEos)
    addEos_ = *v.addEos;
  if (v.addSpacePrefix)
    addSpacePrefix_ = *v.addSpacePrefix;

  // End-of-generation set (llama.cpp's text heuristics included).
  static constexpr std::string_view kEotNames[] = {"<|eot_id|>",    "<|im_end|>",    "<|end|>",
                                                   "<end_of_turn>", "<|endoftext|>", "<EOT>"};
  if (eot_ < 0) {
    for (std::string_view name : kEotNames)
      if (auto it = tokenToId_.find(name); it != tokenToId_.end()) {
        eot_ = it->second;
        break;
      }
  }
  if (eom_ < 0)
    if (auto it = tokenToId_.find("<|eom_id|>"); it != tokenToId_.end())
      eom_ = it->second;
  for (std::string_view name : kEotNames)
    if (auto it = tokenToId_.find(name); it != tokenToId_.end())
      eog_.insert(it->second);
  if (auto it = tokenToId_.find("<|eom_id|>"); it != tokenToId_.end())
    eog_.insert(it->second);
  for (int32_t id : {eos_, eot_, eom_})
    if (id >= 0)
      eog_.insert(id);
  for (int32_t id : eog_) // as llama.cpp: EOG tokens are control tokens
    types_[id] = TokenType::Control;

  // Special-token cache, longest text first.
  for (size_t i = 0; i < n; ++i) {
    TokenType ty = types_[i];
    if (ty == TokenType::Control || ty == TokenType::UserDefined || ty == TokenType::Unknown)
      specials_.push_back(static_cast<int32_t>(i));
    if (ty == TokenType::UserDefined)
      hasUserDefined_ = true;
  }
  std::stable_sort(specials_.begin(), specials_.end(),
                   [&](int32_t a, int32_t b) { return tokens_[a].size() > tokens_[b].size(); });

  // Byte tokens and merges.
  if (kind_ == VocabKind::BytePairGpt2) {
    const ByteMap &m = byteMap();
    for (int b = 0; b < 256; ++b) {
      auto it = tokenToId_.find(m.byteToUtf8[b]);
      if (it == tokenToId_.end())
        return absl::InvalidArgumentError(
            fmt::format("{}: byte-level BPE vocabulary has no token for byte 0x{:02X} "
                        "('{}')",
                        kKeyTokens, b, m.byteToUtf8[b]));
      byteToken_[b] = it->second;
    }
    merges_.reserve(v.merges.size());
    std::string joined;
    for (size_t i = 0; i < v.merges.size(); ++i) {
      std::string_view mg = v.merges[i];
      size_t sp = mg.size() > 1 ? mg.find(' ', 1) : std::string_view::npos;
      if (sp == std::string_view::npos)
        return absl::InvalidArgumentError(fmt::format(
            "{}[{}]: '{}' is not two tokens separated by a space", kKeyMerges, i, escape(mg)));
      std::string_view l = mg.substr(0, sp), r = mg.substr(sp + 1);
      auto li = tokenToId_.find(l), ri = tokenToId_.find(r);
      if (li == tokenToId_.end() || ri == tokenToId_.end())
        return absl::InvalidArgumentError(fmt::format("{}[{}]: '{}' references unknown token '{}'",
                                                      kKeyMerges, i, escape(mg),
                                                      escape(li == tokenToId_.end() ? l : r)));
      joined.assign(l);
      joined.append(r);
      auto ji = tokenToId_.find(joined);
      if (ji == tokenToId_.end())
        return absl::InvalidArgumentError(
            fmt::format("{}[{}]: '{}' merges into '{}', which is not a token", kKeyMerges, i,
                        escape(mg), escape(joined)));
      uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(li->second)) << 32) |
                     static_cast<uint32_t>(ri->second);
      // First occurrence wins (lowest rank), as llama.cpp's emplace.
      merges_.try_emplace(key, MergeInfo{static_cast<int32_t>(i), ji->second});
    }
  } else {
    if (!v.merges.empty()) {
      // SentencePiece merges by score; a merges list is not used.
    }
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      char buf[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
      auto it = tokenToId_.find(std::string_view(buf, 6));
      if (it == tokenToId_.end()) {
        char c = static_cast<char>(b);
        it = tokenToId_.find(std::string_view(&c, 1));
      }
      byteToken_[b] = it == tokenToId_.end() ? -1 : it->second;
    }
  }

  // Pieces (what each token decodes to, special tokens rendered empty).
  pieces_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string &text = tokens_[i];
    switch (types_[i]) {
    case TokenType::Normal:
      if (spm) {
        pieces_[i] = text;
        replaceAll(pieces_[i], kSpmSpace, " ");
      } else {
        pieces_[i] = decodeByteLevel(text);
      }
      break;
    case TokenType::UserDefined:
      pieces_[i] = text;
      break;
    case TokenType::Byte:
      if (spm && text.size() == 6 && text.starts_with("<0x") && text.back() == '>') {
        unsigned val = 0;
        bool ok = true;
        for (int k = 3; k < 5; ++k) {
          char c = text[k];
          val <<= 4;
          if (c >= '0' && c <= '9')
            val |= c - '0';
          else if (c >= 'A' && c <= 'F')
            val |= c - 'A' + 10;
          else if (c >= 'a' && c <= 'f')
            val |= c - 'a' + 10;
          else
            ok = false;
        }
        if (ok)
          pieces_[i] = std::string(1, static_cast<char>(val));
      }
      break;
    default: // control, unknown, unused, undefined: nothing
      break;
    }
  }
  return absl::OkStatus();
}

//===----------------------------------------------------------------------===//
// Accessors
//===----------------------------------------------------------------------===//

std::string_view Tokenizer::tokenText(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size())
    return {};
  return tokens_[id];
}

std::string_view Tokenizer::tokenPiece(int32_t id, bool renderSpecial) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size())
    return {};
  if (renderSpecial && (types_[id] == TokenType::Control || types_[id] == TokenType::Unknown))
    return tokens_[id];
  return pieces_[id];
}

TokenType Tokenizer::tokenType(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size())
    return TokenType::Undefined;
  return types_[id];
}

std::optional<int32_t> Tokenizer::findToken(std::string_view text) const {
  auto it = tokenToId_.find(text);
  if (it == tokenToId_.end())
    return std::nullopt;
  return it->second;
}

//===----------------------------------------------------------------------===//
// Encoding
//===----------------------------------------------------------------------===//

void Tokenizer::partition(std::string_view text, bool parseSpecial,
                          std::vector<Fragment> &out) const {
  out.clear();
  if (text.empty())
    return;
  out.push_back({false, -1, 0, text.size()});
  if (!parseSpecial && !hasUserDefined_)
    return;
  std::vector<Fragment> next;
  for (int32_t id : specials_) {
    TokenType ty = types_[id];
    if (!parseSpecial && ty != TokenType::UserDefined)
      continue;
    const std::string &st = tokens_[id];
    next.clear();
    bool changed = false;
    for (const Fragment &f : out) {
      if (f.isToken || f.len < st.size()) {
        next.push_back(f);
        continue;
      }
      std::string_view region = text.substr(f.off, f.len);
      size_t pos = 0;
      while (true) {
        size_t m = region.find(st, pos);
        if (m == std::string_view::npos)
          break;
        changed = true;
        if (m > pos)
          next.push_back({false, -1, f.off + pos, m - pos});
        next.push_back({true, id, 0, 0});
        pos = m + st.size();
      }
      if (pos < region.size())
        next.push_back({false, -1, f.off + pos, region.size() - pos});
    }
    if (changed)
      std::swap(out, next);
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool addSpecial,
                                       bool parseSpecial) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (addSpecial && addBos_ && bos_ >= 0)
    out.push_back(bos_);
  std::vector<Fragment> frags;
  partition(text, parseSpecial, frags);
  bool prevSpecial = true; // SentencePiece: space prefix at start / after special
  for (const Fragment &f : frags) {
    if (f.isToken) {
      out.push_back(f.id);
      prevSpecial = true;
      continue;
    }
    std::string_view piece = text.substr(f.off, f.len);
    if (kind_ == VocabKind::SentencePiece) {
      encodeSpmFragment(piece, addSpacePrefix_ && prevSpecial, out);
    } else {
      encodeBpeFragment(piece, out);
    }
    prevSpecial = false;
  }
  if (addSpecial && addEos_ && eos_ >= 0)
    out.push_back(eos_);
  return out;
}

std::string Tokenizer::toByteLevel(std::string_view raw) const {
  const ByteMap &m = byteMap();
  std::string s;
  s.reserve(raw.size() * 2);
  for (unsigned char c : raw)
    s += m.byteToUtf8[c];
  return s;
}

void Tokenizer::encodeBpeFragment(std::string_view text, std::vector<int32_t> &out) const {
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> md(pcre2_match_data_create(1, nullptr));
  std::vector<std::pair<size_t, size_t>> chunks;
  const auto *p = reinterpret_cast<const unsigned char *>(text.data());
  size_t i = 0;
  while (i < text.size()) {
    size_t j = utf8::wellFormedRunEnd(p, text.size(), i);
    if (j > i) {
      std::string_view seg = text.substr(i, j - i);
      chunks.clear();
      preTok_->split(seg, chunks, md.get());
      for (auto [off, len] : chunks)
        bpeWord(seg.substr(off, len), out);
      i = j;
    }
    if (i < text.size()) {
      // The run stopped at an ill-formed byte: a pre-token of its own.
      bpeWord(text.substr(i, 1), out);
      ++i;
    }
  }
}

void Tokenizer::bpeWord(std::string_view word, std::vector<int32_t> &out) const {
  const size_t n = word.size();
  if (n == 0)
    return;
  if (n == 1) {
    out.push_back(byteToken_[static_cast<unsigned char>(word[0])]);
    return;
  }
  if (ignoreMerges_) {
    if (auto it = tokenToId_.find(toByteLevel(word)); it != tokenToId_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  struct Sym {
    int32_t id, prev, next;
    bool alive;
  };
  struct Bigram {
    int32_t rank, left, right, lid, rid, result;
  };
  struct Cmp {
    bool operator()(const Bigram &a, const Bigram &b) const {
      return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
  };
  std::vector<Sym> syms(n);
  for (size_t k = 0; k < n; ++k)
    syms[k] = {byteToken_[static_cast<unsigned char>(word[k])], static_cast<int32_t>(k) - 1,
               k + 1 < n ? static_cast<int32_t>(k + 1) : -1, true};
  std::vector<Bigram> storage;
  storage.reserve(n);
  std::priority_queue<Bigram, std::vector<Bigram>, Cmp> q(Cmp{}, std::move(storage));
  auto tryAdd = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0)
      return;
    uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(syms[l].id)) << 32) |
                   static_cast<uint32_t>(syms[r].id);
    auto it = merges_.find(key);
    if (it == merges_.end())
      return;
    q.push({it->second.rank, l, r, syms[l].id, syms[r].id, it->second.result});
  };
  for (size_t k = 1; k < n; ++k)
    tryAdd(static_cast<int32_t>(k - 1), static_cast<int32_t>(k));
  while (!q.empty()) {
    Bigram b = q.top();
    q.pop();
    Sym &L = syms[b.left];
    Sym &R = syms[b.right];
    if (!L.alive || !R.alive || L.next != b.right || L.id != b.lid || R.id != b.rid)
      continue;
    L.id = b.result;
    L.next = R.next;
    if (R.next >= 0)
      syms[R.next].prev = b.left;
    R.alive = false;
    tryAdd(L.prev, b.left);
    tryAdd(b.left, L.next);
  }
  for (int32_t k = 0; k != -1; k = syms[k].next)
    out.push_back(syms[k].id);
}

void Tokenizer::emitSpmByte(uint8_t b, std::vector<int32_t> &out) const {
  if (byteToken_[b] >= 0)
    out.push_back(byteToken_[b]);
  else if (unk_ >= 0)
    out.push_back(unk_);
}

void Tokenizer::encodeSpmFragment(std::string_view raw, bool prefixSpace,
                                  std::vector<int32_t> &out) const {
  std::string text;
  text.reserve(raw.size() + 8);
  if (prefixSpace)
    text.append(kSpmSpace);
  for (char c : raw) {
    if (c == ' ')
      text.append(kSpmSpace);
    else
      text += c;
  }
  if (text.empty())
    return;
  struct Sym {
    size_t start, len;
    int32_t prev, next;
  };
  struct Bigram {
    float score;
    int32_t left, right;
    size_t size;
  };
  struct Cmp {
    bool operator()(const Bigram &a, const Bigram &b) const {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
  };
  std::vector<Sym> syms;
  syms.reserve(text.size());
  const auto *p = reinterpret_cast<const unsigned char *>(text.data());
  for (size_t off = 0; off < text.size();) {
    Utf8Step st = utf8Step(p + off, text.size() - off);
    size_t len = st.status == 1 ? st.len : 1;
    int32_t idx = static_cast<int32_t>(syms.size());
    syms.push_back({off, len, idx - 1, -1});
    if (idx > 0)
      syms[idx - 1].next = idx;
    off += len;
  }
  std::priority_queue<Bigram, std::vector<Bigram>, Cmp> q;
  auto tryAdd = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0)
      return;
    std::string_view s(text.data() + syms[l].start, syms[l].len + syms[r].len);
    auto it = tokenToId_.find(s);
    if (it == tokenToId_.end())
      return;
    q.push({scores_[it->second], l, r, s.size()});
  };
  for (size_t k = 1; k < syms.size(); ++k)
    tryAdd(static_cast<int32_t>(k - 1), static_cast<int32_t>(k));
  while (!q.empty()) {
    Bigram b = q.top();
    q.pop();
    Sym &L = syms[b.left];
    Sym &R = syms[b.right];
    if (L.len == 0 || R.len == 0 || L.len + R.len != b.size)
      continue;
    L.len += R.len;
    R.len = 0;
    L.next = R.next;
    if (R.next >= 0)
      syms[R.next].prev = b.left;
    tryAdd(L.prev, b.left);
    tryAdd(b.left, L.next);
  }
  for (int32_t k = 0; k != -1; k = syms[k].next) {
    std::string_view s(text.data() + syms[k].start, syms[k].len);
    if (auto it = tokenToId_.find(s); it != tokenToId_.end()) {
      out.push_back(it->second);
    } else {
      for (unsigned char c : s)
        emitSpmByte(c, out);
    }
  }
}

//===----------------------------------------------------------------------===//
// Decoding
//===----------------------------------------------------------------------===//

namespace {

// llama.cpp's clean_up_tokenization_spaces passes.
std::string cleanSpaces(const std::string &in) {
  std::string a;
  a.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char x = in[i];
    if (i > 0 && !a.empty() && a.back() == ' ' && in[i - 1] == ' ' &&
        (x == '?' || x == '!' || x == '.' || x == ','))
      a.pop_back();
    a += x;
  }
  std::string b;
  b.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    if (i > 0 && x == '\'' && i + 1 < a.size() && a[i - 1] == ' ' && a[i + 1] == ' ') {
      if (!b.empty())
        b.pop_back();
      b += x;
      ++i; // drop the next space
      continue;
    }
    b += x;
  }
  std::string c;
  c.reserve(b.size());
  for (size_t i = 0; i < b.size(); ++i) {
    char x = b[i];
    if (i > 0 && b[i - 1] == ' ' && x == '\'' && i + 1 < b.size()) {
      char x1 = b[i + 1];
      bool drop = x1 == 's' || x1 == 'm';
      if (!drop && x1 != 't' && x1 != 'd' && i + 2 < b.size()) {
        char x2 = b[i + 2];
        drop = (x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e');
      }
      if (drop && !c.empty())
        c.pop_back();
    }
    c += x;
  }
  return c;
}

} // namespace

std::string Tokenizer::decode(std::span<const int32_t> ids, const DecodeOptions &opts) const {
  std::string out;
  bool strip = opts.stripLeadingSpace && addSpacePrefix_ && kind_ == VocabKind::SentencePiece;
  for (int32_t id : ids) {
    std::string_view piece = tokenPiece(id, opts.renderSpecial);
    if (piece.empty())
      continue;
    if (strip && piece.front() == ' ')
      piece.remove_prefix(1);
    strip = false;
    out.append(piece);
  }
  if (opts.cleanSpaces)
    out = cleanSpaces(out);
  return out;
}

StreamDecoder::StreamDecoder(const Tokenizer &tok, DecodeOptions opts) : tok_(&tok), opts_(opts) {
  opts_.cleanSpaces = false; // needs look-ahead; not applied when streaming
}

void StreamDecoder::reset() {
  atStart_ = true;
  pending_.clear();
}

std::string StreamDecoder::push(int32_t id) {
  std::string_view piece = tok_->tokenPiece(id, opts_.renderSpecial);
  std::string out;
  if (piece.empty())
    return out;
  if (atStart_ && opts_.stripLeadingSpace && tok_->addSpacePrefix() &&
      tok_->kind() == VocabKind::SentencePiece && piece.front() == ' ')
    piece.remove_prefix(1);
  atStart_ = false;
  pending_.append(piece);
  size_t held = utf8::sanitize(pending_, out, /*holdIncomplete=*/true);
  pending_.erase(0, pending_.size() - held);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  utf8::sanitize(pending_, out, /*holdIncomplete=*/false);
  reset();
  return out;
}

} // namespace tern::tokenizer
