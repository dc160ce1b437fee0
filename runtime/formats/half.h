// IEEE binary16 <-> binary32, the one implementation every path uses: the
// GGUF readers and packers (formats::f16ToF32 / f32ToF16), the reference
// model (the f16 KV cache, roundToF16) and the ukernels (f16 weights, the
// f16 KV write and reads). Freestanding: no libc, no STL, no globals, so the
// ukernels can include it in their bitcode; internal linkage (static), as
// in ternary_decode.h, so each ukernel file compiles its own copy under its
// target attributes. The GPU kernels (runtime/cuda/kernels.h) use it too:
// under clang's CUDA compilation (-x cuda, no CUDA headers) TERN_HD makes the
// functions host and device functions; elsewhere it is empty. Only builtins,
// no libc: the NVPTX device build has none.
#ifndef TERN_FORMATS_HALF_H
#define TERN_FORMATS_HALF_H

#include <stdint.h>

#ifndef TERN_HD
#if defined(__CUDA__)
#define TERN_HD __attribute__((host, device))
#else
#define TERN_HD
#endif
#endif

namespace tern::half {

// Exact (every half is a float); NaN payload kept.
[[gnu::always_inline]] TERN_HD static inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { // subnormal: man * 2^-24 (exact in float)
      const float v = float(man) * 5.9604644775390625e-8f;
      bits = sign | __builtin_bit_cast(uint32_t, v);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13); // inf / NaN
  } else {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  }
  return __builtin_bit_cast(float, bits);
}

// Round to nearest, ties to even (what F16C's vcvtps2ph with imm 0 and
// NEON's vcvt_f16_f32 do); >= 65520 becomes infinity; NaN stays a quiet NaN.
[[gnu::always_inline]] TERN_HD static inline uint16_t f32_to_f16(float f) {
  const uint32_t x = __builtin_bit_cast(uint32_t, f);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000);
  const uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) // NaN
    return uint16_t(sign | 0x7c00 | 0x200 | ((absx >> 13) & 0x3ff));
  if (absx >= 0x477ff000u) // >= 65520 rounds to infinity (and inf itself)
    return uint16_t(sign | 0x7c00);
  const int32_t exp = int32_t(absx >> 23) - 127;
  if (exp >= -14) { // normal half
    const uint32_t man = absx & 0x7fffff;
    uint32_t h = (uint32_t(exp + 15) << 10) | (man >> 13);
    const uint32_t rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
      ++h; // may carry into the exponent: correct
    return uint16_t(sign | h);
  }
  if (exp < -25) // below half the smallest subnormal (2^-25): zero
    return sign;
  // Subnormal: m = round(|f| * 2^24); the significand man is in units of
  // 2^(exp-23), so shift right by -(exp+1), in [14, 24].
  const uint32_t man = (absx & 0x7fffff) | 0x800000;
  const int shift = -exp - 1;
  uint32_t m = man >> shift;
  const uint32_t rest = man & ((1u << shift) - 1);
  const uint32_t halfway = 1u << (shift - 1);
  if (rest > halfway || (rest == halfway && (m & 1)))
    ++m;
  return uint16_t(sign | m);
}

} // namespace tern::half

#endif // TERN_FORMATS_HALF_H
