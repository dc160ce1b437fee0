// Reference (scalar) pack/unpack of every ternary storage format, and
// half-precision conversions. These are the ground truth every fast kernel
// and every compile-time repacking is tested against.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tern::formats {

float f16ToF32(uint16_t h);
uint16_t f32ToF16(float f); // round to nearest even
float bf16ToF32(uint16_t h);
uint16_t f32ToBf16(float f);

// I2_S packing depends on the machine that quantized the file (FORMATS.md).
enum class I2SLayout : uint8_t {
  X86_QK128, // on-disk default: 128-element blocks, byte b = elems b,b+32,b+64,b+96 (MSB pair
             // first)
  ARM_QK64,  // 64-element blocks, byte b = elems b,b+16,b+32,b+48 (MSB pair first)
  X86_1x4,   // rows in groups of 4: byte(group,col) = r0<<6|r1<<4|r2<<2|r3
};
// The one spelling of I2_S layout names, printed and parsed by every tool and
// pass: i2sLayoutName gives the canonical name ("x86-qk128", "arm-qk64",
// "x86-1x4"); parseI2SLayout is its inverse and also takes the short aliases
// "x86" and "arm" (older flags); parseI2SLayout(i2sLayoutName(l)) == l.
const char *i2sLayoutName(I2SLayout l);
std::optional<I2SLayout> parseI2SLayout(std::string_view name);
// "x86-qk128 (alias x86), arm-qk64 (alias arm), x86-1x4": for error messages.
const char *i2sLayoutChoices();

// A ternary matrix in canonical form: weight(r, c) = codes[r*cols + c] *
// scale of the block holding it. Blocks are `blockElems` consecutive
// elements of the flattened row-major matrix (blockElems == rows*cols means
// one scale for the whole tensor).
//
// The one ternary-matrix type of the project: the reference model holds its
// weights in it (runtime/model/weights.h), the compiler packs from it.
struct TernaryMatrix {
  uint64_t rows = 0;         // M (ne1)
  uint64_t cols = 0;         // K (ne0)
  std::vector<int8_t> codes; // [rows][cols], each in {-1, 0, +1}
  uint64_t blockElems = 0;   // elements sharing one scale
  std::vector<float> scales; // [rows*cols / blockElems]
  std::string name;          // provenance for messages (a GGUF tensor name), may be empty
  std::string storage;       // what it was decoded from ("TQ2_0", "I2_S/x86-qk128", ...)

  float scaleAt(uint64_t flatIndex) const { return scales[flatIndex / blockElems]; }
  float weight(uint64_t r, uint64_t c) const { return codes[r * cols + c] * scaleAt(r * cols + c); }

  // Row view, for blocks that divide a row or span whole rows
  // (rowBlocksOk()): a row is blocksPerRow() blocks of blockCols() columns,
  // block b's scale is rowScales(r)[b].
  bool rowBlocksOk() const {
    return blockElems != 0 &&
           (blockElems >= cols ? blockElems % cols == 0 : cols % blockElems == 0);
  }
  uint64_t blockCols() const { return blockElems < cols ? blockElems : cols; }
  uint64_t blocksPerRow() const { return cols / blockCols(); }
  const float *rowScales(uint64_t r) const { return scales.data() + r * cols / blockElems; }
};

// Byte sizes of the packed forms (same rules as ggml_types.h); 0 when the
// shape cannot be stored (TQ: K not a multiple of 256; I2_S: M*K not a
// multiple of 4 -- each I2_S layout adds its own block rule on unpack/pack).
uint64_t tq2_0Bytes(uint64_t rows, uint64_t cols);
uint64_t tq1_0Bytes(uint64_t rows, uint64_t cols);
uint64_t i2sBytes(uint64_t rows, uint64_t cols);

// Unpack. Errors name what is wrong (size mismatch, K not a multiple of 256,
// a code of 3 in I2_S, a non-finite scale, ...).
absl::StatusOr<TernaryMatrix> unpackTQ2_0(std::span<const uint8_t> bytes, uint64_t rows,
                                          uint64_t cols);
absl::StatusOr<TernaryMatrix> unpackTQ1_0(std::span<const uint8_t> bytes, uint64_t rows,
                                          uint64_t cols);
// One f32 scale per tensor (at byte rows*cols/4).
absl::StatusOr<TernaryMatrix> unpackI2S(std::span<const uint8_t> bytes, uint64_t rows,
                                        uint64_t cols, I2SLayout layout = I2SLayout::X86_QK128);

// Pack. TQ formats store one f16 scale per 256-block; a TernaryMatrix with a
// per-tensor scale is written with that scale in every block. I2_S needs a
// single scale (blockElems == rows*cols) and writes 28 zero bytes after it.
absl::StatusOr<std::vector<uint8_t>> packTQ2_0(const TernaryMatrix &m);
absl::StatusOr<std::vector<uint8_t>> packTQ1_0(const TernaryMatrix &m);
absl::StatusOr<std::vector<uint8_t>> packI2S(const TernaryMatrix &m,
                                             I2SLayout layout = I2SLayout::X86_QK128);

// Float storage holding ternary values (as HF converters write them):
// succeeds only when every element is 0 or ±s for one s > 0 per tensor
// (tolerance: exact after the storage type's rounding). The error says
// which element broke the rule and how.
absl::StatusOr<TernaryMatrix> ternaryFromF32(std::span<const float> values, uint64_t rows,
                                             uint64_t cols);
absl::StatusOr<TernaryMatrix> ternaryFromF16(std::span<const uint16_t> values, uint64_t rows,
                                             uint64_t cols);
absl::StatusOr<TernaryMatrix> ternaryFromBF16(std::span<const uint16_t> values, uint64_t rows,
                                              uint64_t cols);

// Float storage of a ternary matrix (per-tensor scale only).
std::vector<float> toF32(const TernaryMatrix &m);

} // namespace tern::formats
