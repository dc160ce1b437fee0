#include "runtime/model/config.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "fmt/format.h"
#include "runtime/formats/mapping.h"

namespace tern::model {

const char *ffnActivationName(FfnActivation a) {
  switch (a) {
  case FfnActivation::SiluGated:
    return "silu";
  case FfnActivation::Relu2Gated:
    return "relu2";
  }
  return "?";
}

namespace {

constexpr uint64_t kMaxDim = 1u << 30;

absl::Status badKey(const std::string &key, std::string_view what) {
  return absl::InvalidArgumentError(fmt::format("GGUF key '{}' {}", key, what));
}

// An unsigned integer key: nullopt when absent; an error when present with
// another type or out of [1, 2^30].
absl::StatusOr<std::optional<uint32_t>> u32Key(const gguf::File &f, const std::string &key) {
  const gguf::Value *v = f.find(key);
  if (!v)
    return std::optional<uint32_t>();
  std::optional<uint64_t> u = f.getUInt(key);
  if (!u)
    return badKey(key, "is not an unsigned integer");
  if (*u == 0 || *u > kMaxDim)
    return badKey(key, fmt::format("= {} is out of range [1, {}]", *u, kMaxDim));
  return std::optional<uint32_t>(static_cast<uint32_t>(*u));
}

absl::StatusOr<uint32_t> requiredU32(const gguf::File &f, const std::string &key) {
  absl::StatusOr<std::optional<uint32_t>> v = u32Key(f, key);
  if (!v.ok())
    return v.status();
  if (!*v)
    return badKey(key, "is missing");
  return **v;
}

absl::StatusOr<uint32_t> optionalU32(const gguf::File &f, const std::string &key, uint32_t dflt) {
  absl::StatusOr<std::optional<uint32_t>> v = u32Key(f, key);
  if (!v.ok())
    return v.status();
  return v->value_or(dflt);
}

absl::StatusOr<std::optional<double>> floatKey(const gguf::File &f, const std::string &key) {
  if (!f.find(key))
    return std::optional<double>();
  std::optional<double> d = f.getFloat(key);
  if (!d)
    return badKey(key, "is not a floating-point number");
  return d;
}

int32_t optionalTokenId(const gguf::File &f, const std::string &key) {
  std::optional<uint64_t> v = f.getUInt(key);
  return v && *v < (1u << 31) ? static_cast<int32_t>(*v) : -1;
}

#define TERN_TRY_ASSIGN(lhs, expr)                                                                 \
  do {                                                                                             \
    auto _r = (expr);                                                                              \
    if (!_r.ok())                                                                                  \
      return _r.status();                                                                          \
    lhs = *_r;                                                                                     \
  } while (0)

} // namespace

absl::Status checkModelConfig(const ModelConfig &c) {
  const std::string p = c.arch + ".";
  if (!formats::isSupportedArch(c.arch))
    return absl::UnimplementedError(fmt::format("general.architecture '{}' is not supported "
                                                "(supported: bitnet, bitnet-b1.58, bitnet-25)",
                                                c.arch));
  struct Dim {
    const char *key;
    uint32_t v;
  };
  for (const Dim &d : {Dim{"embedding_length", c.nEmbd}, Dim{"block_count", c.nLayer},
                       Dim{"feed_forward_length", c.nFf}, Dim{"attention.head_count", c.nHead},
                       Dim{"attention.head_count_kv", c.nHeadKv},
                       Dim{"attention.key_length", c.headDim}, Dim{"rope.dimension_count", c.nRot},
                       Dim{"context_length", c.nCtxTrain}, Dim{"vocab_size", c.nVocab}})
    if (d.v == 0 || d.v > kMaxDim)
      return badKey(p + d.key, fmt::format("= {} is out of range [1, {}]", d.v, kMaxDim));
  if (c.nHead % c.nHeadKv != 0)
    return badKey(p + "attention.head_count_kv",
                  fmt::format("= {} does not divide attention.head_count {}", c.nHeadKv, c.nHead));
  if (uint64_t(c.nHead) * c.headDim > kMaxDim)
    return badKey(
        p + "attention.key_length",
        fmt::format("= {} times attention.head_count {} is too large", c.headDim, c.nHead));
  if (c.nRot > c.headDim || c.nRot % 2 != 0)
    return badKey(p + "rope.dimension_count",
                  fmt::format("= {} must be even and at most the head dim {}", c.nRot, c.headDim));
  if (!(c.rmsEps > 0.0f && c.rmsEps < 1.0f))
    return badKey(p + "attention.layer_norm_rms_epsilon",
                  fmt::format("= {} is out of range (0, 1)", c.rmsEps));
  if (!(c.ropeFreqBase > 0.0f && std::isfinite(c.ropeFreqBase)))
    return badKey(p + "rope.freq_base", fmt::format("= {} is out of range", c.ropeFreqBase));
  const FfnActivation want =
      c.arch == "bitnet" ? FfnActivation::SiluGated : FfnActivation::Relu2Gated;
  if (c.ffnAct != want)
    return absl::InvalidArgumentError(fmt::format("arch '{}' has a {}-gated FFN, not {}", c.arch,
                                                  ffnActivationName(want),
                                                  ffnActivationName(c.ffnAct)));
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> readModelConfig(const gguf::File &f) {
  ModelConfig c;
  std::optional<std::string> arch = f.getString("general.architecture");
  if (!arch)
    return badKey("general.architecture",
                  f.find("general.architecture") ? "is not a string" : "is missing");
  c.arch = *arch;
  if (!formats::isSupportedArch(c.arch))
    return checkModelConfig(c); // the unsupported-arch error
  c.ffnAct = c.arch == "bitnet" ? FfnActivation::SiluGated : FfnActivation::Relu2Gated;
  c.name = f.getString("general.name").value_or("");
  const std::string p = c.arch + ".";

  // Required by llama.cpp's loader for these archs.
  TERN_TRY_ASSIGN(c.nCtxTrain, requiredU32(f, p + "context_length"));
  TERN_TRY_ASSIGN(c.nEmbd, requiredU32(f, p + "embedding_length"));
  TERN_TRY_ASSIGN(c.nLayer, requiredU32(f, p + "block_count"));
  // Optional in llama.cpp's generic reader (default 0), but a BitNet graph
  // without them cannot be built: required here.
  TERN_TRY_ASSIGN(c.nFf, requiredU32(f, p + "feed_forward_length"));
  TERN_TRY_ASSIGN(c.nHead, requiredU32(f, p + "attention.head_count"));
  TERN_TRY_ASSIGN(c.nHeadKv, optionalU32(f, p + "attention.head_count_kv", c.nHead));
  if (c.nHead % c.nHeadKv != 0)
    return badKey(p + "attention.head_count_kv",
                  fmt::format("= {} does not divide attention.head_count {}", c.nHeadKv, c.nHead));

  // Head dims: key_length / value_length, default n_embd / n_head.
  const bool divisible = c.nEmbd % c.nHead == 0;
  absl::StatusOr<std::optional<uint32_t>> keyLen = u32Key(f, p + "attention.key_length");
  if (!keyLen.ok())
    return keyLen.status();
  absl::StatusOr<std::optional<uint32_t>> valueLen = u32Key(f, p + "attention.value_length");
  if (!valueLen.ok())
    return valueLen.status();
  for (const auto &[key, v] :
       {std::pair{"attention.key_length", *keyLen}, std::pair{"attention.value_length", *valueLen}})
    if (!v && !divisible)
      return badKey(p + key, fmt::format("is missing, and embedding_length {} is not a multiple "
                                         "of attention.head_count {}",
                                         c.nEmbd, c.nHead));
  c.headDim = keyLen->value_or(divisible ? c.nEmbd / c.nHead : 0);
  const uint32_t vDim = valueLen->value_or(divisible ? c.nEmbd / c.nHead : 0);
  if (vDim != c.headDim)
    return absl::UnimplementedError(
        fmt::format("GGUF key '{}attention.value_length' = {} differs from the key length {}", p,
                    vDim, c.headDim));
  TERN_TRY_ASSIGN(c.nRot, optionalU32(f, p + "rope.dimension_count", c.headDim));

  std::optional<double> eps, base;
  TERN_TRY_ASSIGN(eps, floatKey(f, p + "attention.layer_norm_rms_epsilon"));
  if (!eps)
    return badKey(p + "attention.layer_norm_rms_epsilon", "is missing");
  c.rmsEps = static_cast<float>(*eps);
  TERN_TRY_ASSIGN(base, floatKey(f, p + "rope.freq_base"));
  c.ropeFreqBase = base ? static_cast<float>(*base) : 10000.0f;

  // Vocabulary: the key, else token_embd.weight's rows; both when present
  // must agree.
  const gguf::TensorInfo *embd = f.findTensor("token_embd.weight");
  const uint64_t embdRows = embd && embd->dims.size() == 2 ? embd->dims[1] : 0;
  TERN_TRY_ASSIGN(c.nVocab,
                  optionalU32(f, p + "vocab_size", uint32_t(std::min(embdRows, kMaxDim))));
  if (c.nVocab == 0)
    return badKey(p + "vocab_size", "is missing and there is no token_embd.weight matrix to "
                                    "take the vocabulary size from");
  if (embdRows && embdRows != c.nVocab)
    return badKey(p + "vocab_size",
                  fmt::format("= {} but token_embd.weight has {} rows", c.nVocab, embdRows));
  c.tiedOutput = f.findTensor("output.weight") == nullptr;

  c.bosId = optionalTokenId(f, "tokenizer.ggml.bos_token_id");
  c.eosId = optionalTokenId(f, "tokenizer.ggml.eos_token_id");
  c.eotId = optionalTokenId(f, "tokenizer.ggml.eot_token_id");
  if (absl::Status s = checkModelConfig(c); !s.ok())
    return s;
  return c;
}

nlohmann::ordered_json toJson(const ModelConfig &c) {
  nlohmann::ordered_json j;
  j["arch"] = c.arch;
  j["name"] = c.name;
  j["ffn_act"] = ffnActivationName(c.ffnAct);
  j["vocab"] = c.nVocab;
  j["hidden"] = c.nEmbd;
  j["layers"] = c.nLayer;
  j["heads"] = c.nHead;
  j["kv_heads"] = c.nHeadKv;
  j["head_dim"] = c.headDim;
  j["ffn"] = c.nFf;
  j["rot_dim"] = c.nRot;
  j["context_train"] = c.nCtxTrain;
  j["rms_eps"] = c.rmsEps;
  j["rope_freq_base"] = c.ropeFreqBase;
  j["tied_output"] = c.tiedOutput;
  j["bos_id"] = c.bosId;
  j["eos_id"] = c.eosId;
  j["eot_id"] = c.eotId;
  return j;
}

absl::StatusOr<ModelConfig> modelConfigFromJson(const nlohmann::json &j) {
  auto missing = [](const char *field, const char *type) {
    return absl::InvalidArgumentError(
        fmt::format("{}.{} is missing or not {}", kModelConfigKey, field, type));
  };
  if (!j.is_object())
    return absl::InvalidArgumentError(fmt::format("{} is not a JSON object", kModelConfigKey));
  ModelConfig c;
  auto str = [&](const char *k, std::string &out) -> absl::Status {
    auto it = j.find(k);
    if (it == j.end() || !it->is_string())
      return missing(k, "a string");
    out = it->get<std::string>();
    return absl::OkStatus();
  };
  auto u32 = [&](const char *k, uint32_t &out) -> absl::Status {
    auto it = j.find(k);
    if (it == j.end() || !it->is_number_unsigned() || it->get<uint64_t>() > kMaxDim)
      return missing(k, "an unsigned integer");
    out = it->get<uint32_t>();
    return absl::OkStatus();
  };
  auto i32 = [&](const char *k, int32_t &out) -> absl::Status {
    auto it = j.find(k);
    if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() < -1 ||
        it->get<int64_t>() >= (int64_t(1) << 31))
      return missing(k, "an integer");
    out = it->get<int32_t>();
    return absl::OkStatus();
  };
  auto f32 = [&](const char *k, float &out) -> absl::Status {
    auto it = j.find(k);
    if (it == j.end() || !it->is_number())
      return missing(k, "a number");
    out = static_cast<float>(it->get<double>());
    return absl::OkStatus();
  };
  std::string act;
  for (absl::Status s :
       {str("arch", c.arch), str("name", c.name), str("ffn_act", act), u32("vocab", c.nVocab),
        u32("hidden", c.nEmbd), u32("layers", c.nLayer), u32("heads", c.nHead),
        u32("kv_heads", c.nHeadKv), u32("head_dim", c.headDim), u32("ffn", c.nFf),
        u32("rot_dim", c.nRot), u32("context_train", c.nCtxTrain), f32("rms_eps", c.rmsEps),
        f32("rope_freq_base", c.ropeFreqBase), i32("bos_id", c.bosId), i32("eos_id", c.eosId),
        i32("eot_id", c.eotId)})
    if (!s.ok())
      return s;
  auto tied = j.find("tied_output");
  if (tied == j.end() || !tied->is_boolean())
    return missing("tied_output", "a boolean");
  c.tiedOutput = tied->get<bool>();
  if (act == "silu")
    c.ffnAct = FfnActivation::SiluGated;
  else if (act == "relu2")
    c.ffnAct = FfnActivation::Relu2Gated;
  else
    return absl::InvalidArgumentError(
        fmt::format("{}.ffn_act is '{}' (silu or relu2)", kModelConfigKey, act));
  if (absl::Status s = checkModelConfig(c); !s.ok())
    return absl::InvalidArgumentError(
        fmt::format("{}: {}", kModelConfigKey, std::string(s.message())));
  return c;
}

} // namespace tern::model
