#include "compiler/pack/Pack.h"

#include <cstring>

#include "absl/status/status.h"
#include "fmt/format.h"
#include "runtime/formats/ternary_decode.h"

namespace tern::compiler::pack {

using ir::KernelLayout;

namespace {

uint64_t roundUp(uint64_t x, uint64_t m) { return (x + m - 1) / m * m; }

bool isTq(KernelLayout l) { return l == KernelLayout::TQ1 || l == KernelLayout::TQ2; }

uint64_t codeBytes(const PackParams &p, uint64_t rows, uint64_t cols) {
  const uint64_t mp = roundUp(rows, p.tileM), kp = roundUp(cols, p.tileK);
  switch (p.layout) {
  case KernelLayout::I2S:
  case KernelLayout::TL1:
    return mp * kp / 4;
  case KernelLayout::TL2: {
    const uint64_t triples = kp / 3;
    return mp * (triples / 2) + mp * (triples / 16) * 2;
  }
  case KernelLayout::TL2V:
    return mp * uint64_t(layouts::tl2v_row_bytes(int64_t(cols)));
  case KernelLayout::TQ2:
    return formats::tq2_0Bytes(rows, roundUp(cols, 256));
  case KernelLayout::TQ1:
    return formats::tq1_0Bytes(rows, roundUp(cols, 256));
  default:
    return 0;
  }
}

absl::Status checkParams(const PackParams &p) {
  if (p.tileM <= 0 || p.tileK <= 0)
    return absl::InvalidArgumentError(
        fmt::format("tiles must be positive ({}x{})", p.tileM, p.tileK));
  switch (p.layout) {
  case KernelLayout::I2S:
    if (p.tileK % 128)
      return absl::InvalidArgumentError(
          fmt::format("i2s needs tile_k % 128 == 0, got {}", p.tileK));
    break;
  case KernelLayout::TL1:
    if (p.tileK % 4)
      return absl::InvalidArgumentError(fmt::format("tl1 needs tile_k % 4 == 0, got {}", p.tileK));
    break;
  case KernelLayout::TL2:
    if (p.tileK % 48)
      return absl::InvalidArgumentError(
          fmt::format("tl2 needs tile_k % 48 == 0 (16 triples), got {}", p.tileK));
    break;
  case KernelLayout::TL2V:
    if (p.tileK % 64)
      return absl::InvalidArgumentError(
          fmt::format("tl2v needs tile_k % 64 == 0, got {}", p.tileK));
    break;
  case KernelLayout::TQ1:
  case KernelLayout::TQ2:
    break;
  default:
    return absl::InvalidArgumentError(fmt::format("layout {} is not a ternary layout",
                                                  ir::stringifyKernelLayout(p.layout).str()));
  }
  return absl::OkStatus();
}

// One scale per segment, or an error naming the segment.
absl::StatusOr<std::vector<float>> segmentScales(const formats::TernaryMatrix &m,
                                                 std::span<const int64_t> segs) {
  std::vector<float> out;
  uint64_t row = 0;
  for (size_t s = 0; s < segs.size(); ++s) {
    float sc = m.scaleAt(row * m.cols);
    for (uint64_t r = row; r < row + segs[s]; ++r)
      for (uint64_t c = 0; c < m.cols; c += std::max<uint64_t>(1, std::min(m.blockElems, m.cols)))
        if (m.scaleAt(r * m.cols + c) != sc)
          return absl::InvalidArgumentError(fmt::format(
              "segment {} has more than one scale ({} at row {}, {} at row {} col {}); this "
              "layout stores one scale per matrix (use tq2 or tq1)",
              s, sc, row, m.scaleAt(r * m.cols + c), r, c));
    out.push_back(sc);
    row += segs[s];
  }
  return out;
}

// tl2v rows (Pack.h): for each of mp rows (rows past m.rows are zero
// weights), k / 192 groups of 64 triples (magnitude nibbles, sign bits),
// then 64-column chunks of 2-bit codes for the rest (zero-padded).
void packTl2vRows(const formats::TernaryMatrix &m, uint8_t *out, uint64_t mp) {
  namespace ly = tern::layouts;
  const uint64_t k = m.cols, groups = k / ly::kTl2vGroupCols;
  auto w = [&](uint64_t r, uint64_t c) -> int {
    return r < m.rows && c < k ? m.codes[r * k + c] : 0;
  };
  for (uint64_t r = 0; r < mp; ++r) {
    for (uint64_t g = 0; g < groups; ++g, out += ly::kTl2vGroupBytes) {
      const uint64_t c0 = g * ly::kTl2vGroupCols;
      uint64_t signs = 0;
      for (uint64_t t = 0; t < 64; ++t) {
        const int v = 9 * w(r, c0 + t) + 3 * w(r, c0 + 64 + t) + w(r, c0 + 128 + t);
        out[t % 32] |= uint8_t(std::abs(v) << (4 * (t / 32)));
        signs |= uint64_t(v < 0) << t;
      }
      for (int b = 0; b < 8; ++b)
        out[32 + b] = uint8_t(signs >> (8 * b));
    }
    for (uint64_t c0 = groups * ly::kTl2vGroupCols; c0 < k;
         c0 += ly::kTl2vTailCols, out += ly::kTl2vTailBytes)
      for (uint64_t j = 0; j < 16; ++j) {
        uint8_t b = 0;
        for (uint64_t l = 0; l < 4; ++l)
          b |= uint8_t((w(r, c0 + 16 * l + j) + 1) << (2 * l));
        out[j] = b;
      }
  }
}

void writeScales(std::vector<uint8_t> &out, uint64_t codeSize, const std::vector<float> &scales) {
  uint64_t at = roundUp(codeSize, 64);
  out.resize(at + 4 * scales.size(), 0);
  std::memcpy(out.data() + at, scales.data(), 4 * scales.size());
}

} // namespace

uint64_t packedBytes(const PackParams &p, uint64_t rows, uint64_t cols, size_t segments) {
  uint64_t c = codeBytes(p, rows, cols);
  return isTq(p.layout) ? c : roundUp(c, 64) + 4 * segments;
}

absl::StatusOr<std::vector<uint8_t>> packTernary(const formats::TernaryMatrix &m,
                                                 std::span<const int64_t> segmentRows,
                                                 const PackParams &p) {
  if (absl::Status s = checkParams(p); !s.ok())
    return s;
  uint64_t total = 0;
  for (int64_t r : segmentRows)
    total += r;
  if (total != m.rows || m.rows == 0 || m.cols == 0)
    return absl::InvalidArgumentError(
        fmt::format("segments cover {} rows, matrix has {}", total, m.rows));
  if (m.codes.size() != m.rows * m.cols)
    return absl::InvalidArgumentError("matrix codes do not match its shape");

  if (isTq(p.layout)) {
    // Pad K to a whole block, keep each block's scale.
    formats::TernaryMatrix padded;
    padded.rows = m.rows;
    padded.cols = roundUp(m.cols, 256);
    padded.blockElems = 256;
    padded.codes.assign(padded.rows * padded.cols, 0);
    padded.scales.resize(padded.rows * padded.cols / 256);
    for (uint64_t r = 0; r < m.rows; ++r) {
      for (uint64_t c = 0; c < m.cols; ++c)
        padded.codes[r * padded.cols + c] = m.codes[r * m.cols + c];
      for (uint64_t b = 0; b < padded.cols / 256; ++b) {
        uint64_t c0 = b * 256, c1 = std::min<uint64_t>(m.cols, c0 + 256);
        float sc = m.scaleAt(r * m.cols + c0);
        for (uint64_t c = c0; c < c1; ++c)
          if (m.scaleAt(r * m.cols + c) != sc)
            return absl::InvalidArgumentError(fmt::format(
                "row {} block {} mixes scales; TQ layouts need one scale per 256 weights", r, b));
        padded.scales[r * (padded.cols / 256) + b] = sc;
      }
    }
    return p.layout == KernelLayout::TQ2 ? formats::packTQ2_0(padded) : formats::packTQ1_0(padded);
  }

  absl::StatusOr<std::vector<float>> scales = segmentScales(m, segmentRows);
  if (!scales.ok())
    return scales.status();
  if (p.layout == KernelLayout::TL2V) {
    const uint64_t codeSize = codeBytes(p, m.rows, m.cols);
    std::vector<uint8_t> out(codeSize, 0);
    packTl2vRows(m, out.data(), roundUp(m.rows, p.tileM));
    writeScales(out, codeSize, *scales);
    return out;
  }
  const uint64_t mp = roundUp(m.rows, p.tileM), kp = roundUp(m.cols, p.tileK);
  const uint64_t tm = p.tileM, tk = p.tileK;
  const uint64_t codeSize = codeBytes(p, m.rows, m.cols);
  std::vector<uint8_t> out(codeSize, 0);
  // One K tile of one row tile at a time, zero-padded, so that the layout
  // loops below read plain arrays (tl2: the triple values, computed once).
  std::vector<int8_t> tile(tm * tk);
  const uint64_t triples = tk / 3;
  std::vector<int8_t> tv(p.layout == KernelLayout::TL2 ? tm * triples : 0);
  uint64_t o = 0;
  for (uint64_t rt = 0; rt < mp / tm; ++rt) {
    for (uint64_t kt = 0; kt < kp / tk; ++kt) {
      const uint64_t r0 = rt * tm, c0 = kt * tk;
      const uint64_t width = c0 < m.cols ? std::min(tk, m.cols - c0) : 0;
      for (uint64_t r = 0; r < tm; ++r) {
        int8_t *dst = tile.data() + r * tk;
        uint64_t n = r0 + r < m.rows ? width : 0;
        if (n)
          std::memcpy(dst, m.codes.data() + (r0 + r) * m.cols + c0, n);
        std::memset(dst + n, 0, tk - n);
      }
      const int8_t *t = tile.data();
      switch (p.layout) {
      case KernelLayout::I2S:
        for (uint64_t r = 0; r < tm; ++r)
          for (uint64_t b = 0; b < tk / 128; ++b) {
            const int8_t *q = t + r * tk + b * 128;
            for (uint64_t j = 0; j < 32; ++j)
              out[o++] = uint8_t((q[j] + 1) << 6 | (q[j + 32] + 1) << 4 | (q[j + 64] + 1) << 2 |
                                 (q[j + 96] + 1));
          }
        break;
      case KernelLayout::TL1:
        for (uint64_t pp = 0; pp < tk / 4; ++pp)
          for (uint64_t r = 0; r < tm; ++r) {
            const int8_t *q = t + r * tk + 4 * pp;
            const int lo = 3 * (q[0] + 1) + (q[1] + 1), hi = 3 * (q[2] + 1) + (q[3] + 1);
            out[o++] = uint8_t(lo | hi << 4);
          }
        break;
      case KernelLayout::TL2: {
        for (uint64_t r = 0; r < tm; ++r)
          for (uint64_t i = 0; i < triples; ++i) {
            const int8_t *q = t + r * tk + 3 * i;
            tv[r * triples + i] = int8_t(9 * q[0] + 3 * q[1] + q[2]);
          }
        for (uint64_t tp = 0; tp < triples / 2; ++tp)
          for (uint64_t r = 0; r < tm; ++r) {
            int a = tv[r * triples + 2 * tp], b = tv[r * triples + 2 * tp + 1];
            out[o++] = uint8_t(std::abs(a) | (std::abs(b) << 4));
          }
        for (uint64_t g = 0; g < triples / 16; ++g)
          for (uint64_t r = 0; r < tm; ++r) {
            const int8_t *v = tv.data() + r * triples + 16 * g;
            unsigned bits = 0; // branch-free: the signs are random
            for (uint64_t i = 0; i < 16; ++i)
              bits |= unsigned(uint8_t(v[i]) >> 7) << (15 - i);
            out[o++] = uint8_t(bits & 0xff);
            out[o++] = uint8_t(bits >> 8);
          }
        break;
      }
      default:
        break;
      }
    }
  }
  writeScales(out, codeSize, *scales);
  return out;
}

absl::StatusOr<formats::TernaryMatrix> unpackTernary(std::span<const uint8_t> bytes, uint64_t rows,
                                                     uint64_t cols,
                                                     std::span<const int64_t> segmentRows,
                                                     const PackParams &p) {
  if (absl::Status s = checkParams(p); !s.ok())
    return s;
  const uint64_t want = packedBytes(p, rows, cols, segmentRows.size());
  if (bytes.size() != want)
    return absl::InvalidArgumentError(fmt::format("packed {} weight has {} bytes, expected {}",
                                                  ir::stringifyKernelLayout(p.layout).str(),
                                                  bytes.size(), want));
  if (isTq(p.layout)) {
    const uint64_t kp = roundUp(cols, 256);
    auto padded = p.layout == KernelLayout::TQ2 ? formats::unpackTQ2_0(bytes, rows, kp)
                                                : formats::unpackTQ1_0(bytes, rows, kp);
    if (!padded.ok())
      return padded.status();
    formats::TernaryMatrix m;
    m.rows = rows;
    m.cols = cols;
    m.blockElems = cols; // per-row scale when K is not a whole number of blocks
    const bool blocks = cols % 256 == 0;
    if (blocks)
      m.blockElems = 256;
    m.codes.resize(rows * cols);
    for (uint64_t r = 0; r < rows; ++r)
      for (uint64_t c = 0; c < cols; ++c)
        m.codes[r * cols + c] = padded->codes[r * kp + c];
    if (blocks)
      m.scales = padded->scales;
    else
      for (uint64_t r = 0; r < rows; ++r)
        m.scales.push_back(padded->scaleAt(r * kp));
    return m;
  }

  const uint64_t mp = roundUp(rows, p.tileM),
                 kp = p.layout == KernelLayout::TL2V ? cols : roundUp(cols, p.tileK);
  const uint64_t tm = p.layout == KernelLayout::TL2V ? mp : p.tileM,
                 tk = p.layout == KernelLayout::TL2V ? cols : p.tileK;
  formats::TernaryMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.blockElems = cols;
  m.codes.assign(rows * cols, 0);
  auto put = [&](uint64_t r, uint64_t c, int v) -> absl::Status {
    if (r < rows && c < cols)
      m.codes[r * cols + c] = int8_t(v);
    else if (v != 0)
      return absl::InvalidArgumentError(fmt::format("padding at row {} col {} is not zero", r, c));
    return absl::OkStatus();
  };
  // The tiles in storage order, each decoded by runtime/formats/
  // ternary_decode.h's decoder of its layout (the kernels' own).
  namespace ly = tern::layouts;
  const uint8_t *cur = bytes.data();
  for (uint64_t t = 0; t < (mp / tm) * (kp / tk); ++t) {
    const uint64_t r0 = (t / (kp / tk)) * tm, c0 = (t % (kp / tk)) * tk;
    if (p.layout == KernelLayout::TL2V) { // one "tile": every row, all of K
      const uint64_t groups = cols / ly::kTl2vGroupCols;
      int8_t w[64];
      for (uint64_t r = 0; r < mp; ++r) {
        for (uint64_t g = 0; g < groups; ++g, cur += ly::kTl2vGroupBytes) {
          for (int t = 0; t < 64; ++t)
            if (ly::tl2v_magnitude(cur, t) > 13)
              return absl::InvalidArgumentError(fmt::format("triple magnitude {} > 13 at byte {}",
                                                            ly::tl2v_magnitude(cur, t),
                                                            cur - bytes.data() + t % 32));
          for (int i = 0; i < 3; ++i) {
            ly::decode_tl2v_digit(cur, i, w);
            for (int t = 0; t < 64; ++t)
              if (auto s = put(r, g * ly::kTl2vGroupCols + 64 * i + t, w[t]); !s.ok())
                return s;
          }
        }
        for (uint64_t c0 = groups * ly::kTl2vGroupCols; c0 < cols;
             c0 += ly::kTl2vTailCols, cur += ly::kTl2vTailBytes) {
          ly::decode_tl2v_tail(cur, w);
          for (uint64_t c = 0; c < 64; ++c) {
            if (w[c] > 1)
              return absl::InvalidArgumentError(
                  fmt::format("code 3 at byte {}", cur - bytes.data() + c % 16));
            if (auto s = put(r, c0 + c, w[c]); !s.ok())
              return s;
          }
        }
      }
    } else if (p.layout == KernelLayout::I2S) {
      int8_t w[128];
      for (uint64_t r = 0; r < tm; ++r)
        for (uint64_t b = 0; b < tk / 128; ++b, cur += 32) {
          ly::decode_i2s_block<32>(cur, w);
          for (uint64_t c = 0; c < 128; ++c) {
            if (w[c] > 1)
              return absl::InvalidArgumentError(
                  fmt::format("code 3 cur byte {}", cur - bytes.data() + c % 32));
            if (auto s = put(r0 + r, c0 + b * 128 + c, w[c]); !s.ok())
              return s;
          }
        }
    } else if (p.layout == KernelLayout::TL1) {
      int8_t w[4];
      for (uint64_t c = c0; c < c0 + tk; c += 4)
        for (uint64_t r = r0; r < r0 + tm; ++r, ++cur) {
          ly::decode_tl1_byte(*cur, w);
          if (w[0] > 1 || w[2] > 1)
            return absl::InvalidArgumentError(fmt::format(
                "pair index {} cur byte {}", w[0] > 1 ? *cur & 15 : *cur >> 4, cur - bytes.data()));
          for (int i = 0; i < 4; ++i)
            if (auto s = put(r, c + i, w[i]); !s.ok())
              return s;
        }
    } else { // TL2: magnitudes of triple pairs, then 16-triple sign words
      const uint64_t triples = tk / 3;
      const uint8_t *mags = cur, *signs = cur + tm * (triples / 2);
      for (uint64_t tr = 0; tr < triples; ++tr)
        for (uint64_t r = 0; r < tm; ++r) {
          const int mag = (mags[(tr / 2) * tm + r] >> (4 * (tr & 1))) & 15;
          if (mag > 13)
            return absl::InvalidArgumentError(fmt::format("triple magnitude {} > 13", mag));
          const uint8_t *sw = signs + ((tr / 16) * tm + r) * 2;
          const uint16_t bits = uint16_t(sw[0] | (sw[1] << 8));
          int8_t w[3];
          ly::decode_tl2_triple(mag, bits & (1u << (15 - tr % 16)), w);
          for (int d = 0; d < 3; ++d)
            if (auto s = put(r0 + r, c0 + 3 * tr + d, w[d]); !s.ok())
              return s;
        }
      cur = signs + (triples / 16) * tm * 2;
    }
  }
  const uint64_t o = uint64_t(cur - bytes.data());
  const uint64_t at = roundUp(o, 64);
  std::vector<float> segScales(segmentRows.size());
  std::memcpy(segScales.data(), bytes.data() + at, 4 * segScales.size());
  for (size_t s = 0; s < segmentRows.size(); ++s)
    for (int64_t r = 0; r < segmentRows[s]; ++r)
      m.scales.push_back(segScales[s]);
  return m;
}

bool sameMatrix(const formats::TernaryMatrix &a, const formats::TernaryMatrix &b) {
  if (a.rows != b.rows || a.cols != b.cols || a.codes != b.codes)
    return false;
  for (uint64_t i = 0; i < a.rows * a.cols; ++i)
    if (a.codes[i] != 0 && a.scaleAt(i) != b.scaleAt(i))
      return false;
  return true;
}

absl::StatusOr<formats::TernaryMatrix> stackRows(std::span<const formats::TernaryMatrix> parts) {
  formats::TernaryMatrix out;
  if (parts.empty())
    return absl::InvalidArgumentError("nothing to stack");
  out.cols = parts[0].cols;
  out.blockElems = out.cols;
  for (const auto &p : parts) {
    if (p.cols != out.cols)
      return absl::InvalidArgumentError(
          fmt::format("cannot stack matrices of {} and {} columns", out.cols, p.cols));
    const bool perBlock = p.blockElems < p.cols;
    if (perBlock) {
      if (p.cols % p.blockElems != 0)
        return absl::InvalidArgumentError("blocks straddle rows");
      out.blockElems = std::min(out.blockElems, p.blockElems);
    }
  }
  // Common scale granularity: the smallest block among the parts (all divide cols).
  for (const auto &p : parts)
    if (out.blockElems < p.cols && (p.blockElems % out.blockElems) != 0 && p.blockElems < p.cols)
      return absl::InvalidArgumentError("parts have incompatible scale blocks");
  for (const auto &p : parts) {
    out.codes.insert(out.codes.end(), p.codes.begin(), p.codes.end());
    for (uint64_t i = 0; i < p.rows * p.cols; i += out.blockElems)
      out.scales.push_back(p.scaleAt(i));
    out.rows += p.rows;
  }
  return out;
}

} // namespace tern::compiler::pack
