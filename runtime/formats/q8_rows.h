// int8 rows with one f32 scale per row: the LM head of `ternc compile --head
// q8` (compiler/pack packs it, runtime/model's reference head computes with
// the same values). Per row: d = max|w| / 127, q = clamp(round_half_away(w /
// d), -127, 127) (all zeros and d = 0 for an all-zero row); w ~ d * q.
#pragma once

#include <cstdint>
#include <span>

namespace tern::formats {

// One row of `cols` floats -> q[cols] and its scale.
void quantizeRowQ8(const float *row, int64_t cols, int8_t *q, float *scale);
// Rows of f16 (the GGUF head's storage): converted to f32 first.
void quantizeRowQ8F16(const uint16_t *row, int64_t cols, int8_t *q, float *scale);

// Byte size of the packed q8 head: [rows][cols] int8, then at the next
// multiple of 64 bytes one f32 scale per row (ukernels.h
// TERN_UK_LM_HEAD_Q8_ARGS reads this).
inline uint64_t q8HeadScalesAt(uint64_t rows, uint64_t cols) {
  return (rows * cols + 63) / 64 * 64;
}
inline uint64_t q8HeadBytes(uint64_t rows, uint64_t cols) {
  return q8HeadScalesAt(rows, cols) + 4 * rows;
}

} // namespace tern::formats
