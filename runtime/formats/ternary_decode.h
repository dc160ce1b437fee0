// One decoder per packed ternary layout, shared by the GGUF readers
// (runtime/formats/ternary.cpp), the compile-time packer's inverse
// (compiler/pack/Pack.cpp) and the ukernels (runtime/ukernels/common.h).
//
// Freestanding: no libc, no STL, no globals, so the ukernels can include it
// in their bitcode. Every decoder writes weights w = code - 1; an invalid
// code (a 3 in a 2-bit field, a pair index above 8) decodes to a weight
// above 1, which callers that validate input check with `> 1`. Byte layouts:
// ../shared/refs/FORMATS.md (GGUF types) and compiler/pack/Pack.h (kernel
// layouts). Internal linkage (static): the ukernel files compile these under
// their own target attributes, and no copy may stand in for another.
#ifndef TERN_FORMATS_TERNARY_DECODE_H
#define TERN_FORMATS_TERNARY_DECODE_H

#include <stdint.h>

namespace tern::layouts {

// ---- 2-bit codes, four per byte, most significant pair first ----

// Weight q (0..3) of an I2_S byte: bits 7-6 hold q = 0, bits 1-0 q = 3.
[[gnu::always_inline]] static inline int8_t i2s_weight(uint8_t byte, int q) {
  return int8_t(((byte >> (6 - 2 * q)) & 3) - 1);
}

// One interleaved I2_S block of G bytes and 4G weights: byte j holds weights
// j, j + G, j + 2G, j + 3G. G = 32 is bitnet.cpp's x86 QK=128 block (and the
// kernels' i2s layout), G = 16 its ARM QK=64 block.
template <int G>
[[gnu::always_inline]] static inline void decode_i2s_block(const uint8_t *p, int8_t *w) {
  for (int j = 0; j < G; ++j)
    for (int q = 0; q < 4; ++q)
      w[j + G * q] = i2s_weight(p[j], q);
}

// ---- GGML TQ2_0: 256 weights as 2-bit codes (qs[64]) + f16 scale ----
constexpr int kTQ2BlockBytes = 66;
constexpr int kTQ2ScaleAt = 64;

// Weight e = 128 c + 32 l + m is bits 2l..2l+1 of byte 32 c + m.
[[gnu::always_inline]] static inline void decode_tq2_block(const uint8_t *blk, int8_t *w) {
  for (int c = 0; c < 2; ++c)
    for (int l = 0; l < 4; ++l)
      for (int m = 0; m < 32; ++m)
        w[c * 128 + l * 32 + m] = int8_t(((blk[c * 32 + m] >> (2 * l)) & 3) - 1);
}

// Byte offset, inside a TQ2_0 block, of the code of weight e.
[[gnu::always_inline]] static inline int tq2_byte_of(int e) { return (e / 128) * 32 + e % 32; }

// ---- GGML TQ1_0: 256 weights as base-3 digits (qs[48], qh[4]) + f16 ----
constexpr int kTQ1BlockBytes = 54;
constexpr int kTQ1ScaleAt = 52;

// Digit d of a TQ1 byte: the byte is ceil(v * 256 / 243) of v's five
// base-3 digits, so digit d is the top of (byte * 3^d mod 256) * 3.
[[gnu::always_inline]] static inline int8_t tq1_weight(uint8_t byte, int d) {
  const uint8_t pow3[5] = {1, 3, 9, 27, 81};
  return int8_t(((uint16_t(uint8_t(byte * pow3[d])) * 3) >> 8) - 1);
}

// Weights 0..159: digit d of byte m (m < 32) is weight m + 32 d; 160..239:
// digit d of byte 32 + m (m < 16) is 160 + m + 16 d; 240..255: digit d < 4
// of byte 48 + j is 240 + j + 4 d.
[[gnu::always_inline]] static inline void decode_tq1_block(const uint8_t *blk, int8_t *w) {
  for (int d = 0; d < 5; ++d)
    for (int m = 0; m < 32; ++m)
      w[m + 32 * d] = tq1_weight(blk[m], d);
  for (int d = 0; d < 5; ++d)
    for (int m = 0; m < 16; ++m)
      w[160 + m + 16 * d] = tq1_weight(blk[32 + m], d);
  for (int d = 0; d < 4; ++d)
    for (int j = 0; j < 4; ++j)
      w[240 + j + 4 * d] = tq1_weight(blk[48 + j], d);
}

// ---- kernel layout tl1: pairs (w0, w1) as index 3 (w0 + 1) + (w1 + 1) ----

// The four weights of one tl1 byte: low nibble (w[0], w[1]), high (w[2],
// w[3]). An index above 8 gives w[0] or w[2] above 1.
[[gnu::always_inline]] static inline void decode_tl1_byte(uint8_t byte, int8_t *w) {
  const int lo = byte & 15, hi = byte >> 4;
  w[0] = int8_t(lo / 3 - 1);
  w[1] = int8_t(lo % 3 - 1);
  w[2] = int8_t(hi / 3 - 1);
  w[3] = int8_t(hi % 3 - 1);
}

// ---- kernel layout tl2: triples v = 9 w0 + 3 w1 + w2 as |v| (0..13) + sign ----

// The balanced-ternary digits of magnitude `mag` (0..13; the caller
// validates), negated when `neg`.
[[gnu::always_inline]] static inline void decode_tl2_triple(int mag, bool neg, int8_t *w) {
  const int d2 = (mag + 1) % 3 - 1;
  const int v1 = (mag - d2) / 3;
  const int d1 = (v1 + 1) % 3 - 1;
  const int d0 = (v1 - d1) / 3;
  const int s = neg ? -1 : 1;
  w[0] = int8_t(s * d0);
  w[1] = int8_t(s * d1);
  w[2] = int8_t(s * d2);
}

// ---- kernel layout tl2v: rows of 192-column groups of 64 triples, then
// 64-column 2-bit tail chunks (compiler/pack/Pack.h) ----
constexpr int64_t kTl2vGroupCols = 192, kTl2vGroupBytes = 40;
constexpr int64_t kTl2vTailCols = 64, kTl2vTailBytes = 16;

// Bytes of one packed row of k columns: k / 192 groups, then the rest in
// 64-column tail chunks.
[[gnu::always_inline]] static inline int64_t tl2v_row_bytes(int64_t k) {
  const int64_t groups = k / kTl2vGroupCols, rest = k - groups * kTl2vGroupCols;
  return groups * kTl2vGroupBytes + (rest + kTl2vTailCols - 1) / kTl2vTailCols * kTl2vTailBytes;
}

// Magnitude (0..15) of triple p (0..63) of a tl2v group: byte p % 32, low
// nibble for p < 32, high nibble for p >= 32.
[[gnu::always_inline]] static inline int tl2v_magnitude(const uint8_t *group, int p) {
  return (group[p & 31] >> (4 * (p >> 5))) & 15;
}

// Sign of triple p of a tl2v group: bit p of the 8 bytes after the
// magnitudes (little endian).
[[gnu::always_inline]] static inline bool tl2v_negative(const uint8_t *group, int p) {
  return (group[32 + p / 8] >> (p % 8)) & 1;
}

// The 64 weights of digit i (0..2) of a tl2v group: columns 64 i .. 64 i + 63
// of the group, weight p = digit i of triple p (v = 9 w0 + 3 w1 + w2). A
// magnitude above 13 gives digit 0 a weight of magnitude 2 (callers that
// validate check tl2v_magnitude).
[[gnu::always_inline]] static inline void decode_tl2v_digit(const uint8_t *group, int i,
                                                            int8_t *w) {
  for (int p = 0; p < 64; ++p) {
    int8_t t[3];
    decode_tl2_triple(tl2v_magnitude(group, p), tl2v_negative(group, p), t);
    w[p] = t[i];
  }
}

// The 64 weights of a tl2v tail chunk: weight 16 l + j is bits 2l..2l+1 of
// byte j (codes c = w + 1, least significant pair first).
[[gnu::always_inline]] static inline void decode_tl2v_tail(const uint8_t *chunk, int8_t *w) {
  for (int l = 0; l < 4; ++l)
    for (int j = 0; j < 16; ++j)
      w[16 * l + j] = int8_t(((chunk[j] >> (2 * l)) & 3) - 1);
}

} // namespace tern::layouts

#endif // TERN_FORMATS_TERNARY_DECODE_H
