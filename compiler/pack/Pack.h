// Compile-time repacking of ternary weights into the kernel layouts.
//
// Input is a canonical formats::TernaryMatrix (codes in {-1,0,+1} + scales)
// made of one or more row segments (fused q/k/v or gate/up: the weights
// stacked along M). Every layout pads M to a multiple of tile_m and K to a
// multiple of tile_k (TQ: of 256) with zero weights. Byte layouts (M rows,
// K columns, rt = row tile, kt = K tile, r = row in tile):
//
//   i2s  codes c = w + 1 in 2 bits. For rt, kt, r, each 128-column block b of
//        the K tile: 32 bytes, byte j = c[j]<<6 | c[j+32]<<4 | c[j+64]<<2 |
//        c[j+96] (bitnet.cpp's x86 QK=128 block, tiled).
//   tl1  pairs (w0, w1) as index 3(w0+1) + (w1+1) in 0..8. For rt, kt, each
//        pair-of-pairs p of the K tile, r: byte = idx(2p) | idx(2p+1) << 4
//        (consecutive bytes = consecutive rows: 16 rows per tbl vector).
//   tl2  triples v = 9w0 + 3w1 + w2 in -13..13. For rt, kt: magnitudes, for
//        each pair of triples p, r: byte = |v(2p)| | |v(2p+1)| << 4; then
//        signs, for each group g of 16 triples, r: uint16 (LE) with bit
//        15 - i set when triple 16g + i is negative. 5 bits per 3 weights.
//   tl2v triples too, but rows contiguous and K not tiled (tile_k only has
//        to be a multiple of 64; M is padded to tile_m). Each row (bytes
//        formats' tl2v_row_bytes(K)): K / 192 groups of 64 triples, triple
//        p of group g = columns (192g + p, 192g + 64 + p, 192g + 128 + p):
//        32 bytes, byte j = |v(j)| | |v(32 + j)| << 4, then 8 bytes (LE
//        uint64) with bit p set when triple p is negative: 40 bytes per 192
//        weights. Then the last K % 192 columns in 64-column chunks of 16
//        bytes: bits 2l..2l+1 of byte j = code c = w + 1 of column 16l + j
//        (zero weights past K).
//   tq2, tq1  GGML TQ2_0 / TQ1_0 blocks, row-major (scales in the blocks).
//
// i2s/tl1/tl2/tl2v are followed, at the next multiple of 64 bytes, by one f32
// scale per segment: every segment must have one scale (the packer refuses
// a weight whose blocks have different scales for those layouts).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "dialect/TernDialect.h"
#include "runtime/formats/ternary.h"

namespace tern::compiler::pack {

struct PackParams {
  ir::KernelLayout layout = ir::KernelLayout::I2S;
  int64_t tileM = 32;
  int64_t tileK = 256;
};

// Byte size of the packed form of a [rows, cols] matrix of `segments` segments.
uint64_t packedBytes(const PackParams &p, uint64_t rows, uint64_t cols, size_t segments);

// Packs `m` (rows = sum of segmentRows) into p.layout.
absl::StatusOr<std::vector<uint8_t>> packTernary(const formats::TernaryMatrix &m,
                                                 std::span<const int64_t> segmentRows,
                                                 const PackParams &p);

// Inverse of packTernary. The result has one scale per row (blockElems ==
// cols) for i2s/tl1/tl2/tl2v, per 256-block for TQ layouts.
absl::StatusOr<formats::TernaryMatrix> unpackTernary(std::span<const uint8_t> bytes, uint64_t rows,
                                                     uint64_t cols,
                                                     std::span<const int64_t> segmentRows,
                                                     const PackParams &p);

// Same codes and same scale for every element.
bool sameMatrix(const formats::TernaryMatrix &a, const formats::TernaryMatrix &b);

// Stacks matrices of equal cols into one (per-row scales), for fused ops.
absl::StatusOr<formats::TernaryMatrix> stackRows(std::span<const formats::TernaryMatrix> parts);

} // namespace tern::compiler::pack
