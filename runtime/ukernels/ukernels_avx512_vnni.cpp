// x86 AVX-512 VNNI ukernels (+ avx512f/bw/vl, on top of AVX2/FMA/F16C): the
// i2s int8 driver over two VNNI traits (two rows per zmm, the odd last row
// of a tile in a ymm) and the AVX2-level bodies recompiled for this target.
// Scalar twins: ukernels_ref.cpp.
#if defined(__x86_64__)

#include <cpuid.h>
#include <immintrin.h>

#include "runtime/ukernels/target.h"
#include "runtime/ukernels/ukernels.h"

TERN_UK_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
                     "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")

#include "runtime/ukernels/common.h"
#include "runtime/ukernels/matmul_i2s.h"
#include "runtime/ukernels/x86_avx2.h"

namespace tern_uk {
namespace {

// One row per ymm, vpdpbusd (u8 x s8, summed into i32 lanes).
struct Vnni256 : Avx2 {
  static TERN_UK_INLINE Acc dot(Acc acc, const Codes &c, const int8_t *qp) {
    acc = _mm256_dpbusd_epi32(acc, c.c[0], load256(qp));
    acc = _mm256_dpbusd_epi32(acc, c.c[1], load256(qp + 32));
    acc = _mm256_dpbusd_epi32(acc, c.c[2], load256(qp + 64));
    return _mm256_dpbusd_epi32(acc, c.c[3], load256(qp + 96));
  }
};

// Two rows per zmm (row r in the low 256 bits, r + 1 in the high),
// activations broadcast to both halves: one decode and one vpdpbusd serve
// two rows.
struct Vnni512 {
  static constexpr int kRows = 2;
  static constexpr bool kOffsetCodes = true;
  using Acc = __m512i;
  struct Codes {
    __m512i c[4];
  };

  static TERN_UK_INLINE Acc zero() { return _mm512_setzero_si512(); }

  static TERN_UK_INLINE Codes decode(const uint8_t *p, int64_t rstride) {
    const __m512i raw =
        _mm512_inserti64x4(_mm512_castsi256_si512(load256(p)), load256(p + rstride), 1);
    const __m512i m3 = _mm512_set1_epi8(3);
    return {{_mm512_and_si512(_mm512_srli_epi16(raw, 6), m3),
             _mm512_and_si512(_mm512_srli_epi16(raw, 4), m3),
             _mm512_and_si512(_mm512_srli_epi16(raw, 2), m3), _mm512_and_si512(raw, m3)}};
  }

  static TERN_UK_INLINE Acc dot(Acc acc, const Codes &c, const int8_t *qp) {
    for (int g = 0; g < 4; ++g)
      acc = _mm512_dpbusd_epi32(acc, c.c[g], _mm512_broadcast_i64x4(load256(qp + 32 * g)));
    return acc;
  }

  static TERN_UK_INLINE int32_t hsum(Acc acc, int row) {
    return hsum_epi32(row == 0 ? _mm512_castsi512_si256(acc) : _mm512_extracti64x4_epi64(acc, 1));
  }

  static TERN_UK_INLINE int32_t sum_q(const int8_t *q, int64_t len) { return Avx2::sum_q(q, len); }
};

} // namespace
} // namespace tern_uk

TERN_UK_TARGET_END()

// The AMX-INT8 GEMM (x86_amx.h): its own region, the VNNI features plus
// amx-tile,amx-int8. Nothing here is inlined into the VNNI functions: the
// entry calls the AMX task only after amx_usable() said yes.
TERN_UK_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-int8",
                     "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-int8")
#include "runtime/ukernels/x86_amx.h"
TERN_UK_TARGET_END()

TERN_UK_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
                     "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")

namespace tern_uk {
namespace {

// i2s int8: the VNNI kernel (two rows per zmm, up to 4 tokens per decoded
// block); batches of >= kAmxMinTokens tokens go to the AMX GEMM when this
// CPU and kernel allow it.
struct I2sVnniAmx : I2sI8<Vnni512, Vnni256> {
  static TERN_UK_INLINE bool batch(MatmulArgs &a) {
    if (a.n < kAmxMinTokens || a.tk % 128 != 0 || !amx_usable())
      return false;
    run_parallel(a.ctx, a.mp / a.tm, &amx_i2s_task, &a);
    return true;
  }
};

template <Layout L, bool kF32> struct MatmulBody : X86Body<L, kF32, I2sVnniAmx> {};

} // namespace
} // namespace tern_uk

#define TERN_UK_DEFINE_avx512_vnni(layout, act) TERN_UK_ENTRY_##act(layout, avx512_vnni)
#include "runtime/ukernels/entries.h"

extern "C" void tern_uk_lm_head_f16_avx512_vnni(TERN_UK_LM_HEAD_ARGS) {
  tern_uk::lm_head<tern_uk::Avx2>(TERN_UK_LM_HEAD_NAMES);
}

TERN_UK_TARGET_END()

#endif // __x86_64__
