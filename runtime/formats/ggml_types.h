// One table of ggml tensor types, upstream ggml and the bitnet.cpp fork.
//
// GGUF type ids 36..39 mean different things in the two (FORMATS.md), so a
// lookup by id returns every candidate; formats/mapping decides which one a
// tensor really is from arch, file type and byte size.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace tern::formats {

// Which id namespace an entry belongs to.
enum class Namespace : uint8_t {
  Common,   // same meaning in upstream ggml and in bitnet.cpp
  Upstream, // upstream ggml / llama.cpp only
  Bitnet,   // bitnet.cpp's fork only
};
const char *namespaceName(Namespace ns);

// The storage formats ternc knows, independent of the id that names them.
enum class Format : uint8_t {
  F32,
  F16,
  BF16,
  F64,
  I8,
  I16,
  I32,
  I64,
  Q4_0,
  Q4_1,
  Q5_0,
  Q5_1,
  Q8_0,
  Q8_1,
  Q2_K,
  Q3_K,
  Q4_K,
  Q5_K,
  Q6_K,
  Q8_K,
  IQ2_XXS,
  IQ2_XS,
  IQ3_XXS,
  IQ1_S,
  IQ4_NL,
  IQ3_S,
  IQ2_S,
  IQ4_XS,
  IQ1_M,
  TQ1_0,
  TQ2_0,
  MXFP4,
  I2_S,
  I8_S,
  TL1,
  TL2,
};

enum class SizeRule : uint8_t {
  Blocked, // ceil-free: nelem must be a multiple of blockElems; bytes = nelem/blockElems*blockBytes
  I2S,     // nelem/4 + 32 (packed codes + one f32 scale + padding)
  TL1,     // nelem/4 (two 4-bit pair indices per byte); scale in "<name>_scale"
  TL2,     // triples: 5 bits per 3 weights along K, TL1 pairs for the K tail
  None,    // never a stored weight (I8_S)
};

struct TypeInfo {
  uint32_t id;
  Format format;
  const char *name; // ggml's spelling, e.g. "TQ2_0"
  Namespace ns;
  uint32_t blockElems; // weights per block (1 for plain types)
  uint32_t blockBytes; // bytes per block
  SizeRule rule;
  bool ternaryNative; // a ternary storage format (TQ*, I2_S, TL*)
  bool isFloat;       // F32/F16/BF16/F64
};

// Every entry, in id order.
std::span<const TypeInfo> allTypes();
// Every entry with this id (two for ids with a collision, none if unknown).
std::vector<const TypeInfo *> lookupId(uint32_t id);
// The entry for a format (each format has exactly one).
const TypeInfo &typeInfo(Format f);
const char *formatName(Format f);
std::optional<Format> parseFormatName(std::string_view name);

// Byte size of a [ne0 = K, ne1 = M, ...] tensor in this type, or nullopt if
// the shape cannot be stored in it (K not a multiple of the block, ...).
std::optional<uint64_t> byteSize(const TypeInfo &t, std::span<const uint64_t> dims);

} // namespace tern::formats
