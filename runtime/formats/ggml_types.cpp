#include "runtime/formats/ggml_types.h"

#include <array>
#include <cstring>

namespace tern::formats {
namespace {

using enum Format;
using NS = Namespace;

// Block sizes from ggml-common.h (upstream) and bitnet.cpp's fork.
constexpr TypeInfo kTypes[] = {
    // id fmt      name      ns          blk  bytes rule              tern   float
    {0, F32, "F32", NS::Common, 1, 4, SizeRule::Blocked, false, true},
    {1, F16, "F16", NS::Common, 1, 2, SizeRule::Blocked, false, true},
    {2, Q4_0, "Q4_0", NS::Common, 32, 18, SizeRule::Blocked, false, false},
    {3, Q4_1, "Q4_1", NS::Common, 32, 20, SizeRule::Blocked, false, false},
    {6, Q5_0, "Q5_0", NS::Common, 32, 22, SizeRule::Blocked, false, false},
    {7, Q5_1, "Q5_1", NS::Common, 32, 24, SizeRule::Blocked, false, false},
    {8, Q8_0, "Q8_0", NS::Common, 32, 34, SizeRule::Blocked, false, false},
    {9, Q8_1, "Q8_1", NS::Common, 32, 36, SizeRule::Blocked, false, false},
    {10, Q2_K, "Q2_K", NS::Common, 256, 84, SizeRule::Blocked, false, false},
    {11, Q3_K, "Q3_K", NS::Common, 256, 110, SizeRule::Blocked, false, false},
    {12, Q4_K, "Q4_K", NS::Common, 256, 144, SizeRule::Blocked, false, false},
    {13, Q5_K, "Q5_K", NS::Common, 256, 176, SizeRule::Blocked, false, false},
    {14, Q6_K, "Q6_K", NS::Common, 256, 210, SizeRule::Blocked, false, false},
    {15, Q8_K, "Q8_K", NS::Common, 256, 292, SizeRule::Blocked, false, false},
    {16, IQ2_XXS, "IQ2_XXS", NS::Common, 256, 66, SizeRule::Blocked, false, false},
    {17, IQ2_XS, "IQ2_XS", NS::Common, 256, 74, SizeRule::Blocked, false, false},
    {18, IQ3_XXS, "IQ3_XXS", NS::Common, 256, 98, SizeRule::Blocked, false, false},
    {19, IQ1_S, "IQ1_S", NS::Common, 256, 50, SizeRule::Blocked, false, false},
    {20, IQ4_NL, "IQ4_NL", NS::Common, 32, 18, SizeRule::Blocked, false, false},
    {21, IQ3_S, "IQ3_S", NS::Common, 256, 110, SizeRule::Blocked, false, false},
    {22, IQ2_S, "IQ2_S", NS::Common, 256, 82, SizeRule::Blocked, false, false},
    {23, IQ4_XS, "IQ4_XS", NS::Common, 256, 136, SizeRule::Blocked, false, false},
    {24, I8, "I8", NS::Common, 1, 1, SizeRule::Blocked, false, false},
    {25, I16, "I16", NS::Common, 1, 2, SizeRule::Blocked, false, false},
    {26, I32, "I32", NS::Common, 1, 4, SizeRule::Blocked, false, false},
    {27, I64, "I64", NS::Common, 1, 8, SizeRule::Blocked, false, false},
    {28, F64, "F64", NS::Common, 1, 8, SizeRule::Blocked, false, true},
    {29, IQ1_M, "IQ1_M", NS::Common, 256, 56, SizeRule::Blocked, false, false},
    {30, BF16, "BF16", NS::Common, 1, 2, SizeRule::Blocked, false, true},
    {34, TQ1_0, "TQ1_0", NS::Common, 256, 54, SizeRule::Blocked, true, false},
    {35, TQ2_0, "TQ2_0", NS::Common, 256, 66, SizeRule::Blocked, true, false},
    {36, I2_S, "I2_S", NS::Bitnet, 4, 1, SizeRule::I2S, true, false},
    {37, I8_S, "I8_S", NS::Bitnet, 1, 1, SizeRule::None, false, false},
    {38, TL1, "TL1", NS::Bitnet, 4, 1, SizeRule::TL1, true, false},
    {39, MXFP4, "MXFP4", NS::Upstream, 32, 17, SizeRule::Blocked, false, false},
    {39, TL2, "TL2", NS::Bitnet, 3, 1, SizeRule::TL2, true, false},
};

constexpr const TypeInfo &entry(Format f) {
  for (const TypeInfo &t : kTypes)
    if (t.format == f)
      return t;
  return kTypes[0];
}
// Compile-time checks of the block arithmetic against FORMATS.md.
static_assert(entry(TQ1_0).blockBytes == 48 + 4 + 2, "TQ1_0: qs[48] qh[4] f16 d");
static_assert(entry(TQ2_0).blockBytes == 64 + 2, "TQ2_0: qs[64] f16 d");
static_assert(entry(Q8_0).blockBytes == 32 + 2, "Q8_0: qs[32] f16 d");
static_assert(entry(Q4_0).blockBytes == 16 + 2, "Q4_0: qs[16] f16 d");
static_assert(entry(MXFP4).blockBytes == 16 + 1, "MXFP4: e8m0 + qs[16]");
static_assert(entry(MXFP4).id == 39 && entry(TL2).id == 39, "39 collides");

} // namespace

const char *namespaceName(Namespace ns) {
  switch (ns) {
  case Namespace::Common:
    return "ggml+bitnet.cpp";
  case Namespace::Upstream:
    return "upstream ggml";
  case Namespace::Bitnet:
    return "bitnet.cpp";
  }
  return "?";
}

std::span<const TypeInfo> allTypes() { return kTypes; }

std::vector<const TypeInfo *> lookupId(uint32_t id) {
  std::vector<const TypeInfo *> out;
  for (const TypeInfo &t : kTypes)
    if (t.id == id)
      out.push_back(&t);
  return out;
}

const TypeInfo &typeInfo(Format f) {
  for (const TypeInfo &t : kTypes)
    if (t.format == f)
      return t;
  return kTypes[0]; // unreachable: every Format has an entry
}

const char *formatName(Format f) { return typeInfo(f).name; }

std::optional<Format> parseFormatName(std::string_view name) {
  for (const TypeInfo &t : kTypes) {
    std::string_view n = t.name;
    if (n.size() != name.size())
      continue;
    bool eq = true;
    for (size_t i = 0; i < n.size() && eq; ++i)
      eq = (n[i] | 0x20) == (name[i] | 0x20);
    if (eq)
      return t.format;
  }
  return std::nullopt;
}

std::optional<uint64_t> byteSize(const TypeInfo &t, std::span<const uint64_t> dims) {
  if (dims.empty())
    return std::nullopt;
  uint64_t n = 1;
  for (uint64_t d : dims) {
    if (d == 0 || n > UINT64_MAX / d)
      return std::nullopt;
    n *= d;
  }
  const uint64_t k = dims[0];
  switch (t.rule) {
  case SizeRule::Blocked:
    if (k % t.blockElems != 0)
      return std::nullopt;
    if (n / t.blockElems > UINT64_MAX / t.blockBytes)
      return std::nullopt;
    return n / t.blockElems * t.blockBytes;
  case SizeRule::I2S:
    if (n % 4 != 0)
      return std::nullopt;
    return n / 4 + 32;
  case SizeRule::TL1:
    if (k % 2 != 0)
      return std::nullopt;
    return n / 4;
  case SizeRule::TL2: {
    // Smallest TL2 payload: every K triple packed (4-bit |v| + 1 sign bit per
    // triple); the K tail that does not fill a triple uses TL1 pairs.
    const uint64_t m = n / k;
    const uint64_t k3 = k - k % 3;
    const uint64_t tail = k - k3;
    return m * k3 / 3 / 2 + m * k3 / 3 / 8 + (m * tail + 3) / 4;
  }
  case SizeRule::None:
    return std::nullopt;
  }
  return std::nullopt;
}

} // namespace tern::formats
