// Reference (scalar) pack/unpack of the ternary storage formats. Bit layouts
// follow ../shared/refs/FORMATS.md and ggml's quantize_row_tq{1,2}_0_ref /
// dequantize_row_tq{1,2}_0 and bitnet.cpp's quantize_i2_s; they are checked
// against the fixture models in tests/formats.
#include "runtime/formats/ternary.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "fmt/format.h"
#include "runtime/formats/half.h"
#include "runtime/formats/ternary_decode.h"

namespace tern::formats {
namespace {

constexpr uint64_t kQK = 256;                           // TQ block size
constexpr uint64_t kTQ2Bytes = layouts::kTQ2BlockBytes; // qs[64] + f16 d
constexpr uint64_t kTQ1Bytes = layouts::kTQ1BlockBytes; // qs[48] + qh[4] + f16 d
constexpr uint64_t kI2SPad = 32;                        // f32 scale + 28 bytes

uint16_t loadU16(const uint8_t *p) { return uint16_t(p[0]) | uint16_t(p[1]) << 8; }
void storeU16(uint8_t *p, uint16_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
}

absl::Status checkShape(const char *fmtName, uint64_t rows, uint64_t cols) {
  if (rows == 0 || cols == 0)
    return absl::InvalidArgumentError(
        fmt::format("{}: empty shape [{}, {}] (K={}, M={})", fmtName, cols, rows, cols, rows));
  if (rows > (std::numeric_limits<uint64_t>::max() / 4) / cols)
    return absl::InvalidArgumentError(
        fmt::format("{}: shape [{}, {}] overflows", fmtName, cols, rows));
  return absl::OkStatus();
}

absl::Status checkTQShape(const char *fmtName, uint64_t rows, uint64_t cols) {
  if (auto s = checkShape(fmtName, rows, cols); !s.ok())
    return s;
  if (cols % kQK != 0)
    return absl::InvalidArgumentError(fmt::format(
        "{}: row length K={} is not a multiple of the block size {}", fmtName, cols, kQK));
  return absl::OkStatus();
}

absl::Status checkSize(const char *fmtName, size_t have, uint64_t want, uint64_t rows,
                       uint64_t cols) {
  if (have != want)
    return absl::InvalidArgumentError(fmt::format("{}: shape [K={}, M={}] needs {} bytes, got {}",
                                                  fmtName, cols, rows, want, have));
  return absl::OkStatus();
}

// Validates a matrix about to be packed: shape, code values, scale table.
absl::Status checkMatrix(const char *fmtName, const TernaryMatrix &m) {
  if (auto s = checkShape(fmtName, m.rows, m.cols); !s.ok())
    return s;
  const uint64_t n = m.rows * m.cols;
  if (m.codes.size() != n)
    return absl::InvalidArgumentError(fmt::format("{}: matrix [{}x{}] has {} codes, expected {}",
                                                  fmtName, m.rows, m.cols, m.codes.size(), n));
  if (m.blockElems == 0 || n % m.blockElems != 0)
    return absl::InvalidArgumentError(
        fmt::format("{}: blockElems={} does not divide the {} elements", fmtName, m.blockElems, n));
  if (m.scales.size() != n / m.blockElems)
    return absl::InvalidArgumentError(fmt::format("{}: {} scales for {} blocks of {}", fmtName,
                                                  m.scales.size(), n / m.blockElems, m.blockElems));
  for (uint64_t i = 0; i < n; ++i) {
    int8_t c = m.codes[i];
    if (c < -1 || c > 1)
      return absl::InvalidArgumentError(
          fmt::format("{}: code {} at element {} (row {}, col {}) is not in {{-1, 0, +1}}", fmtName,
                      int(c), i, i / m.cols, i % m.cols));
  }
  for (size_t b = 0; b < m.scales.size(); ++b)
    if (!std::isfinite(m.scales[b]))
      return absl::InvalidArgumentError(
          fmt::format("{}: scale {} of block {} is not finite", fmtName, m.scales[b], b));
  return absl::OkStatus();
}

// The single scale that applies to elements [begin, begin+count): an error if
// the matrix's scale blocks give that range more than one value.
absl::StatusOr<float> uniformScale(const char *fmtName, const TernaryMatrix &m, uint64_t begin,
                                   uint64_t count) {
  uint64_t first = begin / m.blockElems, last = (begin + count - 1) / m.blockElems;
  float s = m.scales[first];
  for (uint64_t b = first + 1; b <= last; ++b)
    if (std::bit_cast<uint32_t>(m.scales[b]) != std::bit_cast<uint32_t>(s))
      return absl::InvalidArgumentError(fmt::format(
          "{}: elements {}..{} need one scale, but scale blocks {} and {} differ ({} vs {})",
          fmtName, begin, begin + count - 1, first, b, s, m.scales[b]));
  return s;
}

absl::Status badScale(const char *fmtName, uint64_t block, uint64_t byteOffset, float v) {
  return absl::InvalidArgumentError(fmt::format(
      "{}: scale of block {} (byte offset {}) is not finite ({})", fmtName, block, byteOffset, v));
}

} // namespace

// ---------------------------------------------------------------------------
// Half precision

float f16ToF32(uint16_t h) { return half::f16_to_f32(h); }

uint16_t f32ToF16(float f) { return half::f32_to_f16(f); }

float bf16ToF32(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }

uint16_t f32ToBf16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) // NaN: keep quiet NaN
    return uint16_t((x >> 16) | 0x40);
  uint32_t lsb = (x >> 16) & 1;
  x += 0x7fff + lsb;
  return uint16_t(x >> 16);
}

const char *i2sLayoutName(I2SLayout l) {
  switch (l) {
  case I2SLayout::X86_QK128:
    return "x86-qk128";
  case I2SLayout::ARM_QK64:
    return "arm-qk64";
  case I2SLayout::X86_1x4:
    return "x86-1x4";
  }
  return "?";
}

std::optional<I2SLayout> parseI2SLayout(std::string_view name) {
  for (I2SLayout l : {I2SLayout::X86_QK128, I2SLayout::ARM_QK64, I2SLayout::X86_1x4})
    if (name == i2sLayoutName(l))
      return l;
  if (name == "x86")
    return I2SLayout::X86_QK128;
  if (name == "arm")
    return I2SLayout::ARM_QK64;
  return std::nullopt;
}

const char *i2sLayoutChoices() { return "x86-qk128 (alias x86), arm-qk64 (alias arm), x86-1x4"; }

// ---------------------------------------------------------------------------
// Sizes

uint64_t tq2_0Bytes(uint64_t rows, uint64_t cols) {
  if (cols % kQK != 0)
    return 0;
  return rows * (cols / kQK) * kTQ2Bytes;
}
uint64_t tq1_0Bytes(uint64_t rows, uint64_t cols) {
  if (cols % kQK != 0)
    return 0;
  return rows * (cols / kQK) * kTQ1Bytes;
}
uint64_t i2sBytes(uint64_t rows, uint64_t cols) {
  if ((rows * cols) % 4 != 0)
    return 0;
  return rows * cols / 4 + kI2SPad;
}

// ---------------------------------------------------------------------------
// TQ2_0

namespace {
// The frame both TQ unpackers share: shape and size checks, one f16 scale
// per 256-block at byte `scaleAt` of each `blockBytes` block, and
// `decode(b, blk, out)` for the block's 256 codes (it may refuse a block).
template <typename DecodeBlock>
absl::StatusOr<TernaryMatrix> unpackTQ(const char *name, std::span<const uint8_t> bytes,
                                       uint64_t rows, uint64_t cols, uint64_t expectBytes,
                                       uint64_t blockBytes, uint64_t scaleAt, DecodeBlock decode) {
  if (auto s = checkTQShape(name, rows, cols); !s.ok())
    return s;
  if (auto s = checkSize(name, bytes.size(), expectBytes, rows, cols); !s.ok())
    return s;
  const uint64_t nblocks = rows * cols / kQK;
  TernaryMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.blockElems = kQK;
  m.codes.resize(rows * cols);
  m.scales.resize(nblocks);
  for (uint64_t b = 0; b < nblocks; ++b) {
    const uint8_t *blk = bytes.data() + b * blockBytes;
    float d = f16ToF32(loadU16(blk + scaleAt));
    if (!std::isfinite(d))
      return badScale(name, b, b * blockBytes + scaleAt, d);
    m.scales[b] = d;
    if (absl::Status s = decode(b, blk, m.codes.data() + b * kQK); !s.ok())
      return s;
  }
  return m;
}
} // namespace

absl::StatusOr<TernaryMatrix> unpackTQ2_0(std::span<const uint8_t> bytes, uint64_t rows,
                                          uint64_t cols) {
  return unpackTQ("TQ2_0", bytes, rows, cols, tq2_0Bytes(rows, cols), kTQ2Bytes,
                  layouts::kTQ2ScaleAt,
                  [&](uint64_t b, const uint8_t *blk, int8_t *out) -> absl::Status {
                    layouts::decode_tq2_block(blk, out);
                    for (int e = 0; e < int(kQK); ++e)
                      if (out[e] > 1) {
                        const uint64_t el = b * kQK + uint64_t(e);
                        return absl::InvalidArgumentError(fmt::format(
                            "TQ2_0: code 3 (not ternary) for element {} (row {}, col {}) at byte "
                            "offset {}",
                            el, el / cols, el % cols, b * kTQ2Bytes + layouts::tq2_byte_of(e)));
                      }
                    return absl::OkStatus();
                  });
}

namespace {
// The frame both TQ packers share: shape and code checks, one f16 scale per
// 256-block (the matrix's, which must be uniform over the block) at byte
// `scaleAt`, and `encode(in, blk)` for the block's 256 codes.
template <typename EncodeBlock>
absl::StatusOr<std::vector<uint8_t>> packTQ(const char *name, const TernaryMatrix &m,
                                            uint64_t blockBytes, uint64_t scaleAt,
                                            EncodeBlock encode) {
  if (auto s = checkTQShape(name, m.rows, m.cols); !s.ok())
    return s;
  if (auto s = checkMatrix(name, m); !s.ok())
    return s;
  const uint64_t nblocks = m.rows * m.cols / kQK;
  std::vector<uint8_t> out(nblocks * blockBytes, 0);
  for (uint64_t b = 0; b < nblocks; ++b) {
    auto s = uniformScale(name, m, b * kQK, kQK);
    if (!s.ok())
      return s.status();
    uint8_t *blk = out.data() + b * blockBytes;
    encode(m.codes.data() + b * kQK, blk);
    storeU16(blk + scaleAt, f32ToF16(*s));
  }
  return out;
}
} // namespace

absl::StatusOr<std::vector<uint8_t>> packTQ2_0(const TernaryMatrix &m) {
  return packTQ("TQ2_0", m, kTQ2Bytes, layouts::kTQ2ScaleAt, [](const int8_t *in, uint8_t *blk) {
    for (int c = 0; c < 2; ++c)
      for (int mm = 0; mm < 32; ++mm) {
        uint8_t q = 0;
        for (int l = 0; l < 4; ++l)
          q |= uint8_t((in[c * 128 + l * 32 + mm] + 1) << (2 * l));
        blk[c * 32 + mm] = q;
      }
  });
}

// ---------------------------------------------------------------------------
// TQ1_0

namespace {
inline uint8_t tq1Byte(uint32_t v) { // v in 0..242
  return uint8_t((v * 256 + 242) / 243);
}
} // namespace

absl::StatusOr<TernaryMatrix> unpackTQ1_0(std::span<const uint8_t> bytes, uint64_t rows,
                                          uint64_t cols) {
  return unpackTQ("TQ1_0", bytes, rows, cols, tq1_0Bytes(rows, cols), kTQ1Bytes,
                  layouts::kTQ1ScaleAt, [](uint64_t, const uint8_t *blk, int8_t *out) {
                    layouts::decode_tq1_block(blk, out);
                    return absl::OkStatus();
                  });
}

absl::StatusOr<std::vector<uint8_t>> packTQ1_0(const TernaryMatrix &m) {
  return packTQ("TQ1_0", m, kTQ1Bytes, layouts::kTQ1ScaleAt, [](const int8_t *in, uint8_t *blk) {
    for (int mm = 0; mm < 32; ++mm) {
      uint32_t v = 0;
      for (int n = 0; n < 5; ++n)
        v = v * 3 + uint32_t(in[mm + 32 * n] + 1);
      blk[mm] = tq1Byte(v);
    }
    for (int mm = 0; mm < 16; ++mm) {
      uint32_t v = 0;
      for (int n = 0; n < 5; ++n)
        v = v * 3 + uint32_t(in[160 + mm + 16 * n] + 1);
      blk[32 + mm] = tq1Byte(v);
    }
    for (int j = 0; j < 4; ++j) {
      uint32_t v = 0;
      for (int n = 0; n < 4; ++n)
        v = v * 3 + uint32_t(in[240 + j + 4 * n] + 1);
      blk[48 + j] = tq1Byte(v * 3);
    }
  });
}

// ---------------------------------------------------------------------------
// I2_S

namespace {
absl::Status checkI2SShape(uint64_t rows, uint64_t cols, I2SLayout layout) {
  if (auto s = checkShape("I2_S", rows, cols); !s.ok())
    return s;
  const uint64_t n = rows * cols;
  switch (layout) {
  case I2SLayout::X86_QK128:
    if (n % 128 != 0)
      return absl::InvalidArgumentError(fmt::format(
          "I2_S ({}): {} elements ([K={}, M={}]) is not a multiple of the 128-element block",
          i2sLayoutName(layout), n, cols, rows));
    break;
  case I2SLayout::ARM_QK64:
    if (n % 64 != 0)
      return absl::InvalidArgumentError(fmt::format(
          "I2_S ({}): {} elements ([K={}, M={}]) is not a multiple of the 64-element block",
          i2sLayoutName(layout), n, cols, rows));
    break;
  case I2SLayout::X86_1x4:
    if (rows % 4 != 0)
      return absl::InvalidArgumentError(
          fmt::format("I2_S ({}): M={} rows is not a multiple of 4", i2sLayoutName(layout), rows));
    break;
  }
  return absl::OkStatus();
}

// Byte index and shift of flat element i in each layout.
inline void i2sPos(I2SLayout layout, uint64_t i, uint64_t cols, uint64_t &byte, int &shift) {
  switch (layout) {
  case I2SLayout::X86_QK128: {
    uint64_t blk = i / 128, j = i % 128;
    byte = blk * 32 + j % 32;
    shift = 6 - 2 * int(j / 32);
    return;
  }
  case I2SLayout::ARM_QK64: {
    uint64_t blk = i / 64, j = i % 64;
    byte = blk * 16 + j % 16;
    shift = 6 - 2 * int(j / 16);
    return;
  }
  case I2SLayout::X86_1x4: {
    uint64_t r = i / cols, c = i % cols;
    byte = (r / 4) * cols + c;
    shift = 6 - 2 * int(r % 4);
    return;
  }
  }
}
} // namespace

absl::StatusOr<TernaryMatrix> unpackI2S(std::span<const uint8_t> bytes, uint64_t rows,
                                        uint64_t cols, I2SLayout layout) {
  if (auto s = checkI2SShape(rows, cols, layout); !s.ok())
    return s;
  if (auto s = checkSize("I2_S", bytes.size(), i2sBytes(rows, cols), rows, cols); !s.ok())
    return s;
  const uint64_t n = rows * cols;
  float scale;
  std::memcpy(&scale, bytes.data() + n / 4, 4);
  if (!std::isfinite(scale))
    return absl::InvalidArgumentError(
        fmt::format("I2_S: tensor scale at byte offset {} is not finite ({})", n / 4, scale));
  TernaryMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.blockElems = n;
  m.scales = {scale};
  m.codes.resize(n);
  int8_t *w = m.codes.data();
  switch (layout) {
  case I2SLayout::X86_QK128:
    for (uint64_t b = 0; b < n / 128; ++b)
      layouts::decode_i2s_block<32>(bytes.data() + b * 32, w + b * 128);
    break;
  case I2SLayout::ARM_QK64:
    for (uint64_t b = 0; b < n / 64; ++b)
      layouts::decode_i2s_block<16>(bytes.data() + b * 16, w + b * 64);
    break;
  case I2SLayout::X86_1x4:
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t byte = 0;
      int shift = 0;
      i2sPos(layout, i, cols, byte, shift);
      w[i] = layouts::i2s_weight(bytes[byte], (6 - shift) / 2);
    }
    break;
  }
  for (uint64_t i = 0; i < n; ++i)
    if (w[i] > 1) {
      uint64_t byte = 0;
      int shift = 0;
      i2sPos(layout, i, cols, byte, shift);
      return absl::InvalidArgumentError(fmt::format(
          "I2_S ({}): code 3 (unused) for element {} (row {}, col {}) at byte offset {}",
          i2sLayoutName(layout), i, i / cols, i % cols, byte));
    }
  return m;
}

absl::StatusOr<std::vector<uint8_t>> packI2S(const TernaryMatrix &m, I2SLayout layout) {
  if (auto s = checkI2SShape(m.rows, m.cols, layout); !s.ok())
    return s;
  if (auto s = checkMatrix("I2_S", m); !s.ok())
    return s;
  const uint64_t n = m.rows * m.cols;
  auto s = uniformScale("I2_S", m, 0, n);
  if (!s.ok())
    return s.status();
  std::vector<uint8_t> out(i2sBytes(m.rows, m.cols), 0);
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t byte = 0;
    int shift = 0;
    i2sPos(layout, i, m.cols, byte, shift);
    out[byte] |= uint8_t((m.codes[i] + 1) << shift);
  }
  float scale = *s;
  std::memcpy(out.data() + n / 4, &scale, 4);
  return out;
}

// ---------------------------------------------------------------------------
// Float storage

namespace {
// Generic ternary detection over "storage words" W: magnitude(w) returns the
// bits without the sign, isNeg the sign, toFloat the value.
template <typename W, typename MagFn, typename ToF>
absl::StatusOr<TernaryMatrix> ternaryFrom(const char *typeName, std::span<const W> values,
                                          uint64_t rows, uint64_t cols, MagFn mag, ToF toF) {
  if (auto s = checkShape(typeName, rows, cols); !s.ok())
    return s;
  const uint64_t n = rows * cols;
  if (values.size() != n)
    return absl::InvalidArgumentError(
        fmt::format("{}: shape [K={}, M={}] has {} elements, got {} values", typeName, cols, rows,
                    n, values.size()));
  // Find the scale: the magnitude of the first non-zero element.
  uint64_t first = n;
  for (uint64_t i = 0; i < n; ++i) {
    float v = toF(values[i]);
    if (!std::isfinite(v))
      return absl::InvalidArgumentError(
          fmt::format("{}: element {} (row {}, col {}) is {}, not a ternary value", typeName, i,
                      i / cols, i % cols, v));
    if (v != 0.0f) {
      first = i;
      break;
    }
  }
  TernaryMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.blockElems = n;
  m.codes.assign(n, 0);
  if (first == n) { // all zero: a ternary matrix with scale 0
    m.scales = {0.0f};
    return m;
  }
  const W sMag = mag(values[first]);
  const float s = std::fabs(toF(values[first]));
  m.scales = {s};
  for (uint64_t i = first; i < n; ++i) {
    const W w = values[i];
    const float v = toF(w);
    if (v == 0.0f)
      continue;
    if (mag(w) != sMag)
      return absl::InvalidArgumentError(fmt::format(
          "{}: element {} (row {}, col {}) is {}, expected 0 or ±{} (the scale set by element "
          "{})",
          typeName, i, i / cols, i % cols, v, s, first));
    m.codes[i] = v > 0 ? 1 : -1;
  }
  return m;
}
} // namespace

absl::StatusOr<TernaryMatrix> ternaryFromF32(std::span<const float> values, uint64_t rows,
                                             uint64_t cols) {
  return ternaryFrom<float>(
      "F32", values, rows, cols,
      [](float f) { return std::bit_cast<float>(std::bit_cast<uint32_t>(f) & 0x7fffffffu); },
      [](float f) { return f; });
}

absl::StatusOr<TernaryMatrix> ternaryFromF16(std::span<const uint16_t> values, uint64_t rows,
                                             uint64_t cols) {
  return ternaryFrom<uint16_t>(
      "F16", values, rows, cols, [](uint16_t h) { return uint16_t(h & 0x7fff); }, f16ToF32);
}

absl::StatusOr<TernaryMatrix> ternaryFromBF16(std::span<const uint16_t> values, uint64_t rows,
                                              uint64_t cols) {
  return ternaryFrom<uint16_t>(
      "BF16", values, rows, cols, [](uint16_t h) { return uint16_t(h & 0x7fff); }, bf16ToF32);
}

std::vector<float> toF32(const TernaryMatrix &m) {
  const uint64_t n = m.rows * m.cols;
  std::vector<float> out(n);
  for (uint64_t i = 0; i < n && i < m.codes.size(); ++i)
    out[i] = m.blockElems ? float(m.codes[i]) * m.scaleAt(i) : 0.0f;
  return out;
}

} // namespace tern::formats
