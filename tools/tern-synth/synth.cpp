#include "tools/tern-synth/synth.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <numbers>
#include <string>

#include "fmt/format.h"
#include "runtime/support/args.h"
#include "runtime/support/status.h"

namespace tern::synth {
namespace {

// ---------------------------------------------------------------------------
// Deterministic randomness (own generator and distributions: identical on
// every platform and standard library).

uint64_t splitmix64(uint64_t &s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class Rng {
public:
  Rng(uint64_t seed, std::string_view stream) {
    // A seed mixer, not a content hash (content hashes are XXH3:
    // runtime/support/hash.h): the stream name is folded into the seed with
    // FNV-1a's xor-multiply, which every model generated so far depends on
    // (changing it would change their bytes); splitmix64 then spreads it.
    uint64_t h = 0xcbf29ce484222325ull;
    for (char c : stream)
      h = (h ^ uint8_t(c)) * 0x100000001b3ull;
    s_ = seed * 0x9e3779b97f4a7c15ull ^ h;
    splitmix64(s_);
  }
  uint64_t next() { return splitmix64(s_); }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; } // [0, 1)
  double normal() {
    double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log1p(-u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

private:
  uint64_t s_;
};

std::string lower(std::string_view s) {
  std::string r(s);
  for (char &c : r)
    c = char(std::tolower(uint8_t(c)));
  return r;
}

// ---------------------------------------------------------------------------
// Built-in byte-level BPE: GPT-2's byte-to-unicode map, and merges learnt
// (greedily, deterministic tie-break) from a small built-in text.

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xc0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3f));
  } else {
    s += char(0xe0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3f));
    s += char(0x80 | (cp & 0x3f));
  }
  return s;
}

std::vector<std::string> byteTokens() {
  std::vector<std::string> t(256);
  uint32_t n = 0;
  for (uint32_t b = 0; b < 256; ++b) {
    bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    t[b] = utf8(keep ? b : 256 + n++);
  }
  return t;
}

constexpr const char *kCorpus =
    "Once upon a time there was a little girl who lived in a village near the forest. "
    "Whenever she went out, the little girl wore a red riding cloak, so everyone in the "
    "village called her Little Red Riding Hood. One morning, Little Red Riding Hood asked "
    "her mother if she could go to visit her grandmother as it had been awhile since they "
    "had seen each other. That is a good idea, her mother said. So they packed a nice "
    "basket for Little Red Riding Hood to take to her grandmother. The quick brown fox "
    "jumps over the lazy dog. The model reads the weights of the network and computes the "
    "next token of the text. A ternary weight is minus one, zero or plus one, and every "
    "matrix has one scale. The compiler turns the graph into code for the machine, then "
    "the runtime loads the code and runs it on the prompt. In the beginning there were "
    "numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 2024. What is the answer? It is forty two. "
    "They said that the story was true, and that the wolf was not so clever after all. "
    "She thought about the path through the woods, the flowers, the birds and the trees, "
    "and she walked on until she reached the house of her grandmother at the end of the "
    "road where the river turns toward the mountains and the sun goes down.";

// Merges learnt from kCorpus; at most `n` (fewer if the corpus runs out).
std::vector<std::string> learnMerges(size_t n, const std::vector<std::string> &bytes) {
  // Words: split on spaces, a space joins the next word (GPT-2 style "Ġword").
  std::map<std::vector<std::string>, uint64_t> words;
  std::string_view text(kCorpus);
  size_t i = 0;
  // Pre-split like GPT-2: an optional leading space, then a run of letters,
  // of digits or of other characters.
  auto cls = [](char ch) {
    return std::isalpha(uint8_t(ch)) ? 0 : std::isdigit(uint8_t(ch)) ? 1 : 2;
  };
  while (i < text.size()) {
    size_t j = i + 1;
    if (text[i] == ' ' && j < text.size() && text[j] != ' ')
      ++j;
    const int k0 = cls(text[j - 1]);
    while (j < text.size() && text[j] != ' ' && cls(text[j]) == k0)
      ++j;
    std::vector<std::string> w;
    for (size_t k = i; k < j; ++k)
      w.push_back(bytes[uint8_t(text[k])]);
    ++words[w];
    i = j;
  }
  std::vector<std::pair<std::vector<std::string>, uint64_t>> ws(words.begin(), words.end());
  std::vector<std::string> merges;
  while (merges.size() < n) {
    std::map<std::pair<std::string, std::string>, uint64_t> counts;
    for (const auto &[w, c] : ws)
      for (size_t k = 0; k + 1 < w.size(); ++k)
        counts[{w[k], w[k + 1]}] += c;
    if (counts.empty())
      break;
    auto best = counts.begin();
    for (auto it = counts.begin(); it != counts.end(); ++it)
      if (it->second > best->second) // first (lexicographically smallest) on ties
        best = it;
    const auto [a, b] = best->first;
    merges.push_back(a + " " + b);
    for (auto &[w, c] : ws) {
      std::vector<std::string> out;
      for (size_t k = 0; k < w.size(); ++k) {
        if (k + 1 < w.size() && w[k] == a && w[k + 1] == b) {
          out.push_back(a + b);
          ++k;
        } else {
          out.push_back(w[k]);
        }
      }
      w = std::move(out);
    }
  }
  return merges;
}

constexpr size_t kDefaultMerges = 98; // like the fixtures: 256 + 98 + 2 = 356 tokens

size_t maxBuiltinMerges() {
  static const size_t n = learnMerges(100000, byteTokens()).size();
  return n;
}

std::string defaultName(const Config &c) {
  return fmt::format("synthetic-{}-{}x{}", c.arch, c.hidden, c.layers);
}

absl::Status flagError(std::string_view flag, std::string msg) {
  return absl::InvalidArgumentError(fmt::format("{}: {}", flag, msg));
}

uint64_t storedBytes(const Config &c, const TensorSpec &t) {
  uint64_t n = 1;
  for (uint64_t d : t.dims)
    n *= d;
  switch (t.kind) {
  case TensorKind::Embedding:
    return n * 2;
  case TensorKind::Norm:
    return n * 4;
  case TensorKind::Ternary:
    break;
  }
  const uint64_t K = t.dims[0], M = t.dims[1];
  switch (c.storage) {
  case Storage::TQ1_0:
    return formats::tq1_0Bytes(M, K);
  case Storage::TQ2_0:
    return formats::tq2_0Bytes(M, K);
  case Storage::I2_S:
    return formats::i2sBytes(M, K);
  case Storage::F16:
    return n * 2;
  case Storage::F32:
    return n * 4;
  }
  return 0;
}

uint32_t tensorTypeId(const Config &c, const TensorSpec &t) {
  switch (t.kind) {
  case TensorKind::Embedding:
    return 1;
  case TensorKind::Norm:
    return 0;
  case TensorKind::Ternary:
    return storageTypeId(c.storage);
  }
  return 0;
}

template <typename T> std::vector<uint8_t> asBytes(const std::vector<T> &v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

} // namespace

// ---------------------------------------------------------------------------

const char *storageName(Storage s) {
  switch (s) {
  case Storage::TQ1_0:
    return "tq1_0";
  case Storage::TQ2_0:
    return "tq2_0";
  case Storage::I2_S:
    return "i2_s";
  case Storage::F16:
    return "f16";
  case Storage::F32:
    return "f32";
  }
  return "?";
}

std::optional<Storage> parseStorage(std::string_view name) {
  std::string n = lower(name);
  for (Storage s : {Storage::TQ1_0, Storage::TQ2_0, Storage::I2_S, Storage::F16, Storage::F32})
    if (n == storageName(s))
      return s;
  if (n == "i2s")
    return Storage::I2_S;
  return std::nullopt;
}

uint32_t storageTypeId(Storage s) {
  switch (s) {
  case Storage::TQ1_0:
    return 34;
  case Storage::TQ2_0:
    return 35;
  case Storage::I2_S:
    return 36; // bitnet.cpp's id
  case Storage::F16:
    return 1;
  case Storage::F32:
    return 0;
  }
  return 0;
}

uint32_t storageFileType(Storage s) {
  switch (s) {
  case Storage::TQ1_0:
    return 36; // LLAMA_FTYPE_MOSTLY_TQ1_0 (upstream)
  case Storage::TQ2_0:
    return 37; // LLAMA_FTYPE_MOSTLY_TQ2_0 (upstream)
  case Storage::I2_S:
    return 40; // LLAMA_FTYPE_MOSTLY_I2_S (bitnet.cpp)
  case Storage::F16:
    return 1;
  case Storage::F32:
    return 0;
  }
  return 0;
}

absl::StatusOr<Config> preset(std::string_view name) {
  Config c;
  if (name == "tiny")
    return c;
  if (name == "2b4t") {
    c.arch = "bitnet-b1.58";
    c.hidden = 2560;
    c.layers = 30;
    c.heads = 20;
    c.kvHeads = 5;
    c.ffn = 6912;
    c.ctx = 4096;
    c.storage = Storage::I2_S;
    return c;
  }
  return flagError("--preset", fmt::format("unknown preset '{}' (tiny, 2b4t)", name));
}

absl::Status validate(const Config &c) {
  if (c.arch != "bitnet" && c.arch != "bitnet-b1.58")
    return flagError("--arch", fmt::format("'{}' is not bitnet or bitnet-b1.58", c.arch));
  const std::pair<const char *, uint64_t> positive[] = {
      {"--hidden", c.hidden},    {"--layers", c.layers}, {"--heads", c.heads},
      {"--kv-heads", c.kvHeads}, {"--ffn", c.ffn},       {"--ctx", c.ctx}};
  for (auto [flag, v] : positive)
    if (v == 0)
      return flagError(flag, "must be positive");
  if (c.hidden % c.heads != 0)
    return flagError("--heads",
                     fmt::format("{} heads do not divide hidden size {}", c.heads, c.hidden));
  if ((c.hidden / c.heads) % 2 != 0)
    return flagError("--heads",
                     fmt::format("head dim {} is odd (RoPE needs pairs)", c.hidden / c.heads));
  if (c.heads % c.kvHeads != 0)
    return flagError("--kv-heads",
                     fmt::format("{} KV heads do not divide {} heads", c.kvHeads, c.heads));
  if (c.hidden > (1u << 20) || c.ffn > (1u << 20) || c.layers > 1024)
    return flagError("--hidden/--ffn/--layers", "unreasonably large");
  if (!(c.zeroFraction >= 0 && c.zeroFraction < 1))
    return flagError("zeroFraction", "must be in [0, 1)");
  if (c.vocabFrom.empty() && c.vocabSize != 0 &&
      (c.vocabSize < 258 || c.vocabSize - 258 > maxBuiltinMerges())) {
    return flagError("--vocab-size",
                     fmt::format("the built-in vocabulary has 258..{} tokens (asked {}); use "
                                 "--vocab-from for a bigger one",
                                 258 + maxBuiltinMerges(), c.vocabSize));
  }
  // Storage rules, checked on every ternary matrix.
  for (const TensorSpec &t : tensorList(c)) {
    if (t.kind != TensorKind::Ternary)
      continue;
    const uint64_t K = t.dims[0], M = t.dims[1];
    switch (c.storage) {
    case Storage::TQ1_0:
    case Storage::TQ2_0:
      if (K % 256 != 0)
        return flagError("--format", fmt::format("{} needs row lengths that are multiples of "
                                                 "256; {} has K={}",
                                                 storageName(c.storage), t.name, K));
      break;
    case Storage::I2_S: {
      bool ok = true;
      std::string rule;
      switch (c.i2sLayout) {
      case formats::I2SLayout::X86_QK128:
        ok = (K * M) % 128 == 0;
        rule = "a multiple of 128 elements";
        break;
      case formats::I2SLayout::ARM_QK64:
        ok = (K * M) % 64 == 0;
        rule = "a multiple of 64 elements";
        break;
      case formats::I2SLayout::X86_1x4:
        ok = M % 4 == 0;
        rule = "a multiple of 4 rows";
        break;
      }
      if (!ok)
        return flagError("--format",
                         fmt::format("i2_s ({}) needs {}; {} is [{}, {}]",
                                     formats::i2sLayoutName(c.i2sLayout), rule, t.name, K, M));
      break;
    }
    case Storage::F16:
    case Storage::F32:
      break;
    }
  }
  return absl::OkStatus();
}

std::vector<TensorSpec> tensorList(const Config &c) {
  const uint64_t headDim = c.heads ? c.hidden / c.heads : 0;
  const uint64_t qDim = c.heads * headDim, kvDim = c.kvHeads * headDim;
  const uint64_t vocab =
      c.vocabSize ? c.vocabSize : (c.vocabFrom.empty() ? 256 + kDefaultMerges + 2 : 0);
  std::vector<TensorSpec> t;
  t.push_back({"token_embd.weight", {c.hidden, vocab}, TensorKind::Embedding});
  t.push_back({"output_norm.weight", {c.hidden}, TensorKind::Norm});
  for (uint64_t l = 0; l < c.layers; ++l) {
    auto n = [&](const char *s) { return fmt::format("blk.{}.{}.weight", l, s); };
    t.push_back({n("attn_norm"), {c.hidden}, TensorKind::Norm});
    t.push_back({n("attn_q"), {c.hidden, qDim}, TensorKind::Ternary});
    t.push_back({n("attn_k"), {c.hidden, kvDim}, TensorKind::Ternary});
    t.push_back({n("attn_v"), {c.hidden, kvDim}, TensorKind::Ternary});
    t.push_back({n("attn_sub_norm"), {qDim}, TensorKind::Norm});
    t.push_back({n("attn_output"), {qDim, c.hidden}, TensorKind::Ternary});
    t.push_back({n("ffn_norm"), {c.hidden}, TensorKind::Norm});
    t.push_back({n("ffn_gate"), {c.hidden, c.ffn}, TensorKind::Ternary});
    t.push_back({n("ffn_up"), {c.hidden, c.ffn}, TensorKind::Ternary});
    t.push_back({n("ffn_sub_norm"), {c.ffn}, TensorKind::Norm});
    t.push_back({n("ffn_down"), {c.ffn, c.hidden}, TensorKind::Ternary});
  }
  return t;
}

formats::TernaryMatrix ternaryWeight(const Config &c, const TensorSpec &t) {
  Rng rng(c.seed, t.name);
  formats::TernaryMatrix m;
  m.cols = t.dims[0];
  m.rows = t.dims.size() > 1 ? t.dims[1] : 1;
  const uint64_t n = m.rows * m.cols;
  m.blockElems = n;
  // One scale per tensor, exactly representable in f16 (so F16 / TQ storage
  // hold the very same value).
  m.scales = {formats::f16ToF32(formats::f32ToF16(float(0.03 + 0.09 * rng.uniform())))};
  m.codes.resize(n);
  const uint64_t zeroBelow = uint64_t(c.zeroFraction * 4294967296.0);
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t r = rng.next();
    m.codes[i] = (r >> 32) < zeroBelow ? 0 : ((r & 1) ? 1 : -1);
  }
  return m;
}

std::vector<float> normWeight(const Config &c, const TensorSpec &t) {
  Rng rng(c.seed, t.name);
  std::vector<float> v(t.dims[0]);
  for (float &x : v)
    x = float(0.8 + 0.4 * rng.uniform());
  return v;
}

std::vector<uint16_t> embeddingF16(const Config &c, const TensorSpec &t) {
  Rng rng(c.seed, t.name);
  std::vector<uint16_t> v(t.dims[0] * t.dims[1]);
  for (uint16_t &x : v)
    x = formats::f32ToF16(float(0.15 * rng.normal()));
  return v;
}

namespace {
absl::StatusOr<Config> resolved(const Config &c) {
  if (auto s = validate(c); !s.ok())
    return s;
  Config r = c;
  if (r.name.empty())
    r.name = defaultName(c);
  if (!c.vocabFrom.empty()) {
    auto f = gguf::File::open(c.vocabFrom);
    if (!f.ok())
      return withContext(f.status(), fmt::format("--vocab-from '{}'", c.vocabFrom));
    const gguf::Value *tok = (*f)->find("tokenizer.ggml.tokens");
    if (!tok || tok->type != gguf::ValueType::ARRAY || tok->arr.empty())
      return flagError("--vocab-from",
                       fmt::format("'{}' has no tokenizer.ggml.tokens array", c.vocabFrom));
    if (c.vocabSize != 0 && c.vocabSize != tok->arr.size())
      return flagError("--vocab-size",
                       fmt::format("{} disagrees with the {} tokens of --vocab-from '{}'",
                                   c.vocabSize, tok->arr.size(), c.vocabFrom));
    r.vocabSize = tok->arr.size();
  } else if (r.vocabSize == 0) {
    r.vocabSize = 256 + kDefaultMerges + 2;
  }
  return r;
}
} // namespace

absl::StatusOr<std::vector<uint8_t>> tensorBytes(const Config &c, const TensorSpec &t) {
  switch (t.kind) {
  case TensorKind::Embedding:
    return asBytes(embeddingF16(c, t));
  case TensorKind::Norm:
    return asBytes(normWeight(c, t));
  case TensorKind::Ternary:
    break;
  }
  formats::TernaryMatrix m = ternaryWeight(c, t);
  switch (c.storage) {
  case Storage::TQ1_0:
    return formats::packTQ1_0(m);
  case Storage::TQ2_0:
    return formats::packTQ2_0(m);
  case Storage::I2_S:
    return formats::packI2S(m, c.i2sLayout);
  case Storage::F16: {
    std::vector<float> f = formats::toF32(m);
    std::vector<uint16_t> h(f.size());
    for (size_t i = 0; i < f.size(); ++i)
      h[i] = formats::f32ToF16(f[i]);
    return asBytes(h);
  }
  case Storage::F32:
    return asBytes(formats::toF32(m));
  }
  return absl::InternalError("unknown storage");
}

absl::StatusOr<std::vector<std::pair<std::string, gguf::Value>>>
tokenizerMetadata(const Config &c) {
  std::vector<std::pair<std::string, gguf::Value>> kv;
  if (!c.vocabFrom.empty()) {
    auto f = gguf::File::open(c.vocabFrom);
    if (!f.ok())
      return withContext(f.status(), fmt::format("--vocab-from '{}'", c.vocabFrom));
    for (const auto &e : (*f)->metadata())
      if (e.key.rfind("tokenizer.", 0) == 0)
        kv.emplace_back(e.key, e.value);
    return kv;
  }
  const uint64_t vocab = c.vocabSize ? c.vocabSize : 256 + kDefaultMerges + 2;
  std::vector<std::string> tokens = byteTokens();
  std::vector<std::string> merges = learnMerges(vocab - 258, tokens);
  if (merges.size() != vocab - 258)
    return flagError("--vocab-size",
                     fmt::format("the built-in corpus yields only {} merges", merges.size()));
  std::vector<int32_t> types(256, 1);
  for (const std::string &m : merges) {
    std::string joined = m;
    joined.erase(joined.find(' '), 1);
    tokens.push_back(joined);
    types.push_back(1);
  }
  tokens.push_back("<|begin_of_text|>");
  tokens.push_back("<|end_of_text|>");
  types.push_back(3);
  types.push_back(3);
  const uint32_t bos = uint32_t(tokens.size() - 2), eos = uint32_t(tokens.size() - 1);
  kv.emplace_back("tokenizer.ggml.model", gguf::val::str("gpt2"));
  kv.emplace_back("tokenizer.ggml.pre", gguf::val::str("default"));
  kv.emplace_back("tokenizer.ggml.tokens", gguf::val::strings(tokens));
  kv.emplace_back("tokenizer.ggml.token_type", gguf::val::i32s(types));
  kv.emplace_back("tokenizer.ggml.merges", gguf::val::strings(merges));
  kv.emplace_back("tokenizer.ggml.bos_token_id", gguf::val::u32(bos));
  kv.emplace_back("tokenizer.ggml.eos_token_id", gguf::val::u32(eos));
  kv.emplace_back("tokenizer.ggml.add_bos_token", gguf::val::boolean(true));
  return kv;
}

absl::StatusOr<std::vector<std::pair<std::string, gguf::Value>>> metadata(const Config &c0) {
  auto rc = resolved(c0);
  if (!rc.ok())
    return rc.status();
  const Config &c = *rc;
  const std::string &a = c.arch;
  std::vector<std::pair<std::string, gguf::Value>> kv;
  auto u32 = [](uint64_t v) { return gguf::val::u32(uint32_t(v)); };
  kv.emplace_back("general.architecture", gguf::val::str(a));
  kv.emplace_back("general.name", gguf::val::str(c.name));
  kv.emplace_back(a + ".context_length", u32(c.ctx));
  kv.emplace_back(a + ".embedding_length", u32(c.hidden));
  kv.emplace_back(a + ".block_count", u32(c.layers));
  kv.emplace_back(a + ".feed_forward_length", u32(c.ffn));
  kv.emplace_back(a + ".attention.head_count", u32(c.heads));
  kv.emplace_back(a + ".attention.head_count_kv", u32(c.kvHeads));
  kv.emplace_back(a + ".rope.dimension_count", u32(c.hidden / c.heads));
  kv.emplace_back(a + ".rope.freq_base", gguf::val::f32(c.ropeFreqBase));
  kv.emplace_back(a + ".attention.layer_norm_rms_epsilon", gguf::val::f32(c.rmsEps));
  kv.emplace_back(a + ".vocab_size", u32(c.vocabSize));
  auto tok = tokenizerMetadata(c);
  if (!tok.ok())
    return tok.status();
  for (auto &e : *tok)
    kv.push_back(std::move(e));
  kv.emplace_back("general.quantization_version", gguf::val::u32(2));
  kv.emplace_back("general.file_type", gguf::val::u32(storageFileType(c.storage)));
  kv.emplace_back("general.alignment", gguf::val::u32(uint32_t(gguf::kDefaultAlignment)));
  return kv;
}

absl::StatusOr<Model> generate(const Config &c0) {
  auto rc = resolved(c0);
  if (!rc.ok())
    return rc.status();
  Model m;
  m.config = *rc;
  auto md = metadata(*rc);
  if (!md.ok())
    return md.status();
  m.metadata = std::move(*md);
  for (const TensorSpec &t : tensorList(*rc)) {
    TensorData d;
    d.spec = t;
    switch (t.kind) {
    case TensorKind::Embedding:
      d.f16 = embeddingF16(*rc, t);
      break;
    case TensorKind::Norm:
      d.f32 = normWeight(*rc, t);
      break;
    case TensorKind::Ternary:
      d.ternary = ternaryWeight(*rc, t);
      break;
    }
    m.tensors.push_back(std::move(d));
  }
  return m;
}

absl::StatusOr<gguf::Writer> makeWriter(const Config &c0) {
  auto rc = resolved(c0);
  if (!rc.ok())
    return rc.status();
  const Config c = *rc;
  auto md = metadata(c);
  if (!md.ok())
    return md.status();
  gguf::Writer w(3);
  for (auto &[k, v] : *md)
    w.set(k, std::move(v));
  for (const TensorSpec &t : tensorList(c)) {
    auto s = w.addTensorLazy(t.name, t.dims, tensorTypeId(c, t), storedBytes(c, t),
                             [c, t] { return tensorBytes(c, t); });
    if (!s.ok())
      return s;
  }
  return w;
}

absl::Status writeModel(const Config &c, const std::string &path) {
  auto w = makeWriter(c);
  if (!w.ok())
    return w.status();
  return w->writeFile(path);
}

// ---------------------------------------------------------------------------
// Command line

int runMain(int argc, char **argv) {
  std::string presetName = "tiny", out;
  Config flags; // the explicit flags' values, copied over the preset below
  args::Parser p("tern-synth",
                 R"(tern-synth: write a synthetic BitNet GGUF model with random ternary weights.

usage: tern-synth [--preset tiny|2b4t] [options] -o OUT.gguf

Explicit flags override the preset, whatever their order. The output is a
pure function of all flags.
)");
  p.choice("--preset", &presetName, {"tiny", "2b4t"}, "NAME",
           "tiny: 256 hidden, 2 layers, 4/2 heads, FFN 512, arch bitnet,\n"
           "      TQ2_0, built-in 356-token vocabulary (like the fixtures)\n"
           "2b4t: BitNet b1.58 2B4T shapes (2560 hidden, 30 layers, 20/5\n"
           "      heads, FFN 6912), arch bitnet-b1.58, I2_S; needs\n"
           "      --vocab-from (LLaMA-3 vocabulary)");
  p.string("--arch", &flags.arch, "A", "bitnet (SiLU FFN) | bitnet-b1.58 (relu^2 FFN)");
  p.parsed("--format", &flags.storage, parseStorage, "tq1_0, tq2_0, i2_s, f16, f32", "F",
           "tq1_0 | tq2_0 | i2_s | f16 | f32 (storage of the ternary matrices)");
  p.parsed("--i2s-layout", &flags.i2sLayout, formats::parseI2SLayout, formats::i2sLayoutChoices(),
           "L", "x86-qk128 (default; alias x86) | arm-qk64 (alias arm) | x86-1x4");
  p.integer("--hidden", &flags.hidden, 0, UINT64_MAX, "N", "embedding width");
  p.integer("--layers", &flags.layers, 0, UINT64_MAX, "N", "transformer blocks");
  p.integer("--heads", &flags.heads, 0, UINT64_MAX, "N", "attention heads");
  p.integer("--kv-heads", &flags.kvHeads, 0, UINT64_MAX, "N", "key/value heads");
  p.integer("--ffn", &flags.ffn, 0, UINT64_MAX, "N", "FFN width");
  p.integer("--ctx", &flags.ctx, 0, UINT64_MAX, "N", "context length");
  p.integer("--vocab-size", &flags.vocabSize, 0, UINT64_MAX, "N",
            "built-in vocabulary size (258 + number of merges)");
  p.string("--vocab-from", &flags.vocabFrom, "FILE",
           "copy every tokenizer.* key from another GGUF");
  p.string("--name", &flags.name, "S", "general.name");
  p.number("--rope-base", &flags.ropeFreqBase, 1e-30, 1e30, "X", "RoPE frequency base (500000)");
  p.number("--eps", &flags.rmsEps, 1e-30, 1e30, "X", "RMSNorm epsilon (1e-5)");
  p.integer("--seed", &flags.seed, 0, UINT64_MAX, "N", "random seed (1)");
  p.string("-o,--output", &out, "FILE", "where to write");
  if (std::optional<int> rc =
          p.parseOrExit(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr))
    return *rc;
  auto cfg = preset(presetName);
  if (!cfg.ok()) {
    std::fprintf(stderr, "tern-synth: %s\n", statusMessage(cfg.status()).c_str());
    return 2;
  }
  Config c = *cfg;
  auto take = [&](const char *flag, auto Config::*member) {
    if (p.given(flag))
      c.*member = flags.*member;
  };
  take("--arch", &Config::arch);
  take("--format", &Config::storage);
  take("--i2s-layout", &Config::i2sLayout);
  take("--hidden", &Config::hidden);
  take("--layers", &Config::layers);
  take("--heads", &Config::heads);
  take("--kv-heads", &Config::kvHeads);
  take("--ffn", &Config::ffn);
  take("--ctx", &Config::ctx);
  take("--vocab-size", &Config::vocabSize);
  take("--vocab-from", &Config::vocabFrom);
  take("--name", &Config::name);
  take("--rope-base", &Config::ropeFreqBase);
  take("--eps", &Config::rmsEps);
  take("--seed", &Config::seed);
  if (presetName == "2b4t" && c.vocabFrom.empty()) {
    std::fprintf(stderr, "tern-synth: --preset 2b4t needs --vocab-from (a LLaMA-3 vocabulary "
                         "GGUF, e.g. ../shared/fixtures/vocab/llama3-vocab.gguf)\n");
    return 2;
  }
  if (out.empty()) {
    std::fprintf(stderr, "tern-synth: -o OUT.gguf is required (see --help)\n");
    return 2;
  }
  if (auto s = writeModel(c, out); !s.ok()) {
    std::fprintf(stderr, "tern-synth: %s\n", statusMessage(s).c_str());
    return 1;
  }
  return 0;
}

} // namespace tern::synth
