// Quant-mapping verification: what every tensor of a GGUF file really is.
//
// For each tensor, decide its storage format from type id, arch,
// general.file_type and byte size (the decisive fact: GGUF ids 36..39 mean
// different formats in upstream ggml and bitnet.cpp), then check the format
// against the tensor's role in the BitNet graph. Non-ternary quantizations in
// a ternary role are refused, never reinterpreted; ternary values stored in
// a float type are recognised by checking the values. Used by `ternc
// inspect`, the compiler's tern-verify-quant-mapping pass and the runtime's
// reference loader alike.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "runtime/formats/ggml_types.h"
#include "runtime/formats/ternary.h"
#include "runtime/gguf/gguf.h"

namespace tern::formats {

enum class TensorRole : uint8_t {
  TokenEmbd, // token_embd.weight (also the lm_head when there is no output.weight)
  Output,    // output.weight (lm_head)
  Norm,      // *_norm.weight (attn_norm, ffn_norm, attn_sub_norm, ffn_sub_norm, output_norm)
  AttnQ,
  AttnK,
  AttnV,
  AttnOutput,
  FfnGate,
  FfnUp,
  FfnDown,
  WeightScale, // "<weight>_scale" / "<weight>.scale" companions of TL1/TL2
  Unknown,
};
const char *roleName(TensorRole r);
// Role and layer (-1 for global tensors) from a llama.cpp-style tensor name.
TensorRole roleOf(std::string_view name, int *layer = nullptr);
// Roles whose matrices BitNet runs as ternary BitLinear layers.
bool isTernaryRole(TensorRole r);

// The archs ternc knows (FFN activation differs).
bool isSupportedArch(std::string_view arch);

struct TensorMapping {
  std::string name;
  TensorRole role = TensorRole::Unknown;
  int layer = -1;
  uint32_t typeId = 0;
  std::vector<uint64_t> dims;
  uint64_t offset = 0;     // relative to the data section
  uint64_t fileOffset = 0; // absolute
  uint64_t extent = 0;
  std::vector<const TypeInfo *> candidates; // every table entry for typeId
  const TypeInfo *resolved = nullptr;       // the format chosen, if any
  uint64_t bytes = 0;                       // byte size in the resolved format
  bool ternary = false;                     // values are ternary (native format or checked float)
  float floatScale = 0;                     // the s of {-s,0,+s} for ternary-in-float tensors
  std::optional<I2SLayout> i2sLayout;       // assumed I2_S packing
  bool ok = false;
  std::string reason; // why this format, or why refused
};

struct MappingOptions {
  I2SLayout i2sLayout = I2SLayout::X86_QK128;
  // Scan float weights in ternary roles for {-s, 0, +s}.
  bool checkFloatValues = true;
};

struct ModelMapping {
  std::string arch;
  std::optional<uint64_t> fileType;
  std::string fileTypeName; // both tables' reading where they differ
  std::vector<TensorMapping> tensors;
  std::vector<std::string> errors; // model-level and per-tensor refusals
  bool ok() const { return errors.empty(); }
  // Ok, or InvalidArgument listing every refusal.
  absl::Status status() const;
  const TensorMapping *find(std::string_view name) const;
};

// Never fails as a call: refusals are collected in ModelMapping::errors.
ModelMapping verifyMapping(const gguf::File &file, const MappingOptions &opts = {});

// general.file_type as each table reads it ("MOSTLY_TQ2_0", or
// "MOSTLY_MXFP4_MOE (upstream) / MOSTLY_TL1 (bitnet.cpp)").
std::string fileTypeName(uint64_t ft);

} // namespace tern::formats
