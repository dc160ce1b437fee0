// The model configuration: hyperparameters, arch rules and the tied-head
// fact, read once from a GGUF's `<arch>.*` keys by the one reader every path
// uses (the compiler's importer, the reference model, `ternc inspect`), and
// carried resolved in a compiled artifact's metadata (toJson / fromJson), so
// the runtime never re-derives it. Which keys are required and which default:
// docs/model-config.md (llama.cpp's loader rules for the bitnet archs).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/gguf/gguf.h"

namespace tern::model {

// Gated FFN activation: `bitnet` (1bitLLM) uses SiLU, `bitnet-b1.58` and
// `bitnet-25` (BitNet b1.58 2B4T) use squared ReLU: relu(gate)^2 * up.
enum class FfnActivation : uint8_t { SiluGated, Relu2Gated };
const char *ffnActivationName(FfnActivation a); // "silu", "relu2"

struct ModelConfig {
  std::string arch; // general.architecture
  std::string name; // general.name (may be empty)
  FfnActivation ffnAct = FfnActivation::SiluGated;
  uint32_t nVocab = 0;
  uint32_t nEmbd = 0; // hidden size
  uint32_t nLayer = 0;
  uint32_t nHead = 0;
  uint32_t nHeadKv = 0;
  uint32_t headDim = 0;   // per head, for Q/K/V (attention.key_length)
  uint32_t nFf = 0;       // FFN inner size
  uint32_t nRot = 0;      // rotated dims per head (NEOX pairs i, i + nRot/2)
  uint32_t nCtxTrain = 0; // <arch>.context_length
  float rmsEps = 0.0f;
  float ropeFreqBase = 10000.0f;
  bool tiedOutput = true; // no output.weight: token_embd is the lm_head
  int32_t bosId = -1;
  int32_t eosId = -1;
  int32_t eotId = -1;

  uint32_t qDim() const { return nHead * headDim; }
  uint32_t kvDim() const { return nHeadKv * headDim; }
};

// Reads and checks the configuration. The first missing or inconsistent key
// gives an error naming it (InvalidArgument; Unimplemented for an arch or a
// shape this project does not run); every path reports that same text.
absl::StatusOr<ModelConfig> readModelConfig(const gguf::File &file);

// The consistency rules readModelConfig applies, for a config from elsewhere.
absl::Status checkModelConfig(const ModelConfig &c);

// The artifact metadata key holding toJson(config).
inline constexpr const char *kModelConfigKey = "model_config";

// Every field, keys as docs/model-config.md lists them.
nlohmann::ordered_json toJson(const ModelConfig &c);
// The inverse; errors name the field ("model_config.rms_eps is missing").
absl::StatusOr<ModelConfig> modelConfigFromJson(const nlohmann::json &j);

} // namespace tern::model
