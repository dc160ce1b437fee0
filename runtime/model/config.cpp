#include "runtime/model/config.h"

#include <cmath>

#include "absl/status/status.h"
#include "fmt/format.h"

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

absl::StatusOr<uint32_t> requireU32(const gguf::File &f, const std::string &key) {
  std::optional<uint64_t> v = f.getUInt(key);
  if (!v)
    return absl::InvalidArgumentError(
        fmt::format("GGUF key '{}' is missing or not an unsigned integer", key));
  if (*v == 0 || *v > (1u << 30))
    return absl::InvalidArgumentError(fmt::format("GGUF key '{}' = {} is out of range", key, *v));
  return static_cast<uint32_t>(*v);
}

uint32_t optionalU32(const gguf::File &f, const std::string &key, uint32_t dflt) {
  std::optional<uint64_t> v = f.getUInt(key);
  return v && *v <= (1u << 30) ? static_cast<uint32_t>(*v) : dflt;
}

int32_t optionalTokenId(const gguf::File &f, const std::string &key) {
  std::optional<uint64_t> v = f.getUInt(key);
  return v && *v < (1u << 31) ? static_cast<int32_t>(*v) : -1;
}

} // namespace

absl::StatusOr<ModelConfig> readModelConfig(const gguf::File &f) {
  ModelConfig c;
  std::optional<std::string> arch = f.getString("general.architecture");
  if (!arch)
    return absl::InvalidArgumentError("GGUF key 'general.architecture' is missing");
  c.arch = *arch;
  if (c.arch == "bitnet")
    c.ffnAct = FfnActivation::SiluGated;
  else if (c.arch == "bitnet-b1.58" || c.arch == "bitnet-25")
    c.ffnAct = FfnActivation::Relu2Gated;
  else
    return absl::UnimplementedError(
        fmt::format("general.architecture '{}' is not supported (expected "
                    "bitnet, bitnet-b1.58 or bitnet-25)",
                    c.arch));
  c.name = f.getString("general.name").value_or("");
  const std::string p = c.arch + ".";

  absl::StatusOr<uint32_t> v = requireU32(f, p + "embedding_length");
  if (!v.ok())
    return v.status();
  c.nEmbd = *v;
  if (!(v = requireU32(f, p + "block_count")).ok())
    return v.status();
  c.nLayer = *v;
  if (!(v = requireU32(f, p + "feed_forward_length")).ok())
    return v.status();
  c.nFf = *v;
  if (!(v = requireU32(f, p + "attention.head_count")).ok())
    return v.status();
  c.nHead = *v;
  c.nHeadKv = optionalU32(f, p + "attention.head_count_kv", c.nHead);
  if (c.nHeadKv == 0 || c.nHead % c.nHeadKv != 0)
    return absl::InvalidArgumentError(
        fmt::format("GGUF key '{}attention.head_count_kv' = {} does not divide "
                    "head_count {}",
                    p, c.nHeadKv, c.nHead));
  if (c.nEmbd % c.nHead != 0 && !f.getUInt(p + "attention.key_length"))
    return absl::InvalidArgumentError(
        fmt::format("embedding_length {} is not a multiple of head_count {}", c.nEmbd, c.nHead));
  c.headDim = optionalU32(f, p + "attention.key_length", c.nEmbd / c.nHead);
  uint32_t valueLen = optionalU32(f, p + "attention.value_length", c.headDim);
  if (valueLen != c.headDim)
    return absl::UnimplementedError(
        fmt::format("GGUF key '{}attention.value_length' = {} differs from key_length {}", p,
                    valueLen, c.headDim));
  c.nRot = optionalU32(f, p + "rope.dimension_count", c.headDim);
  if (c.nRot == 0 || c.nRot > c.headDim || c.nRot % 2 != 0)
    return absl::InvalidArgumentError(
        fmt::format("GGUF key '{}rope.dimension_count' = {} must be even and "
                    "<= head dim {}",
                    p, c.nRot, c.headDim));
  c.nCtxTrain = optionalU32(f, p + "context_length", 0);

  std::optional<double> eps = f.getFloat(p + "attention.layer_norm_rms_epsilon");
  if (!eps)
    return absl::InvalidArgumentError(
        fmt::format("GGUF key '{}attention.layer_norm_rms_epsilon' is missing", p));
  if (!(*eps > 0.0 && *eps < 1.0))
    return absl::InvalidArgumentError(
        fmt::format("GGUF key '{}attention.layer_norm_rms_epsilon' = {} is out of range", p, *eps));
  c.rmsEps = static_cast<float>(*eps);
  std::optional<double> base = f.getFloat(p + "rope.freq_base");
  if (base) {
    if (!(*base > 0.0 && std::isfinite(*base)))
      return absl::InvalidArgumentError(
          fmt::format("GGUF key '{}rope.freq_base' = {} is out of range", p, *base));
    c.ropeFreqBase = static_cast<float>(*base);
  }

  // Vocabulary: the key if present, else the embedding's row count (checked
  // against the tensor by the weight loader either way).
  c.nVocab = optionalU32(f, p + "vocab_size", 0);
  if (c.nVocab == 0) {
    if (const gguf::TensorInfo *t = f.findTensor("token_embd.weight"); t && t->dims.size() == 2)
      c.nVocab = static_cast<uint32_t>(t->dims[1]);
  }
  if (c.nVocab == 0)
    return absl::InvalidArgumentError(
        fmt::format("cannot tell the vocabulary size: no '{}vocab_size' and no "
                    "token_embd.weight",
                    p));

  c.bosId = optionalTokenId(f, "tokenizer.ggml.bos_token_id");
  c.eosId = optionalTokenId(f, "tokenizer.ggml.eos_token_id");
  c.eotId = optionalTokenId(f, "tokenizer.ggml.eot_token_id");
  return c;
}

} // namespace tern::model
