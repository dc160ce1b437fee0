// Model hyperparameters read from GGUF `<arch>.*` keys.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/gguf/gguf.h"

namespace tern::model {

// Gated FFN activation: `bitnet` (1bitLLM) uses SiLU, `bitnet-b1.58` and
// `bitnet-25` (BitNet b1.58 2B4T) use squared ReLU: relu(gate)^2 * up.
enum class FfnActivation : uint8_t { SiluGated, Relu2Gated };
const char *ffnActivationName(FfnActivation a);

struct ModelConfig {
  std::string arch; // general.architecture
  std::string name; // general.name (may be empty)
  FfnActivation ffnAct = FfnActivation::SiluGated;
  uint32_t nVocab = 0;
  uint32_t nEmbd = 0; // hidden size
  uint32_t nLayer = 0;
  uint32_t nHead = 0;
  uint32_t nHeadKv = 0;
  uint32_t headDim = 0;   // per head, for Q/K/V
  uint32_t nFf = 0;       // FFN inner size
  uint32_t nRot = 0;      // rotated dims per head (NEOX pairs i, i + nRot/2)
  uint32_t nCtxTrain = 0; // <arch>.context_length (0 if absent)
  float rmsEps = 1e-5f;
  float ropeFreqBase = 10000.0f;
  int32_t bosId = -1;
  int32_t eosId = -1;
  int32_t eotId = -1;

  uint32_t qDim() const { return nHead * headDim; }
  uint32_t kvDim() const { return nHeadKv * headDim; }
};

// Reads and checks the hyperparameters. Errors name the missing/bad key.
absl::StatusOr<ModelConfig> readModelConfig(const gguf::File &file);

} // namespace tern::model
