// The i2s int8 prefill GEMM on AMX-INT8 (include in ukernels_avx512_vnni.cpp,
// inside a target region that adds amx-tile,amx-int8 to the AVX-512 VNNI
// features, after the Vnni traits). Selected at run time by the
// avx512_vnni entry (I2sVnniAmx::batch) for batches of >= kAmxMinTokens
// tokens when the CPU has AMX-TILE + AMX-INT8, the OS enabled the tile
// state (XCR0 bits 17, 18) and Linux granted this process the tile data
// permission (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)); anything
// else keeps the VNNI kernel. No change to the packed layout: the weight
// tiles are built from the i2s bytes per 32-row block, once per call and
// token super-block.
//
// TDPBSSD C[16 x 16] += A[16 x 64] . B[16 x 64]: A = 16 tokens' int8
// activations, loaded straight from q with stride k (no repacking); B = 16
// weight rows x 64 columns as s8 w in {-1, 0, 1}, "VNNI" order
// (B[kk][4 r + j] = w[r][4 kk + j]); C[token][row] is the exact int32 sum of
// w * q, so the epilogue float(acc) * scale / qs is the ref's, bit for bit.
// Tiles: 0-3 C (2 token blocks x 2 row halves), 4-5 A, 6-7 B.
//
// B from the i2s bytes: byte j of a row's 32-byte block holds the codes of
// columns j, j + 32, j + 64, j + 96 (bits 7-6, 5-4, 3-2, 1-0). Dword d of
// the block thus holds, per shift, 4 consecutive columns -- exactly one
// B-tile dword. So the 16 rows' blocks are transposed as 16 x 8 dwords
// (8 x 8 within each 256-bit half, 24 shuffles), then each of the 8 dword
// vectors gives 4 B rows by shift, and 3, minus 1.
//
// Loop nest per task (row tiles [begin, end)): 32-row blocks; token
// super-blocks of 256; K chunks of 2048 columns, whose 64 KiB weight panel
// (2 B tiles per 64 columns) every 32-token pair of the super-block streams
// past; C (4 tiles) accumulates in an int32 buffer across chunks. (Chunks of
// 512, 1024, 2048, 4096 columns measured 620, 620, 665, 685 G/s at 2560 x
// 2560, n = 128: fewer C reloads beat an L1-resident panel.) The first token
// pair builds the panel as it goes, one 128-column block ahead of its
// tdpbssds, so the vector unpack overlaps the tile unit instead of preceding
// it; the raw codes are prefetched 4 blocks ahead (a model's weights come
// from DRAM); in the last chunk each pair's epilogue runs after the next
// pair's tiles are issued. A partial last token block and the K tail are
// copied, zero-padded, into a 16 x 64 buffer, so every token runs on AMX.
// Memory: all on the stack, ~98 KiB (64 KiB panel, 32 KiB accumulator of 256
// tokens x 32 rows, 2 KiB of A copies).
#ifndef TERN_UKERNELS_X86_AMX_H
#define TERN_UKERNELS_X86_AMX_H

#include <cpuid.h>
#include <immintrin.h>

#include "runtime/ukernels/matmul_i2s.h"

namespace tern_uk {
namespace { // internal: each ISA file has its own copy, compiled for its target

#ifndef TERN_UK_AMX_MIN_TOKENS
#define TERN_UK_AMX_MIN_TOKENS 6
#endif
constexpr int64_t kAmxMinTokens = TERN_UK_AMX_MIN_TOKENS; // smaller batches stay on VNNI
#ifndef TERN_UK_AMX_PANEL_COLS
#define TERN_UK_AMX_PANEL_COLS 2048
#endif
constexpr int64_t kAmxPanelCols = TERN_UK_AMX_PANEL_COLS; // K columns per weight panel
constexpr int64_t kAmxSuperTokens = 256;                  // tokens per accumulator pass
#ifndef TERN_UK_AMX_PREFETCH_BLOCKS
#define TERN_UK_AMX_PREFETCH_BLOCKS 4
#endif
constexpr int64_t kAmxPrefetchBlocks = TERN_UK_AMX_PREFETCH_BLOCKS; // weight prefetch distance
constexpr int64_t kAmxRows = 32; // weight rows per block (two B tiles)
constexpr int64_t kAmxPanelBytes = kAmxPanelCols / 64 * 2 * 1024;

// Whether this process may run AMX-INT8 now; requests the Linux tile data
// permission (idempotent, process-wide) on the way. cpuid + xgetbv + one
// syscall: only called for batches of >= kAmxMinTokens tokens.
inline bool amx_usable() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7)
    return false;
  __cpuid_count(7, 0, a, b, c, d);
  if (!(d & (1u << 24)) || !(d & (1u << 25))) // AMX-TILE, AMX-INT8
    return false;
  __cpuid(1, a, b, c, d);
  if (!(c & (1u << 27))) // OSXSAVE
    return false;
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & (3u << 17)) != (3u << 17)) // XTILECFG, XTILEDATA enabled by the OS
    return false;
#if defined(__linux__)
  // arch_prctl(ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18); 0 when
  // granted (also when already granted), -errno when the kernel refuses.
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(158L), "D"(0x1023L), "S"(18L)
                   : "rcx", "r11", "memory");
  return ret == 0;
#else
  return false;
#endif
}

// Palette 1, tiles 0-7 of 16 rows x 64 bytes.
struct alignas(64) AmxTileConfig {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// Two B tiles' worth (one 128-column block) of 16 rows: raw[i] points at
// row i's 32 code bytes of the block. Writes B rows 0..15 (columns 0..63)
// at out and 16..31 (columns 64..127) at out + 2048 (the next K step of the
// same row half in the panel).
__attribute__((always_inline)) inline void amx_b_tiles(const uint8_t *const *raw, uint8_t *out) {
  __m512i z[8];
  for (int p = 0; p < 8; ++p)
    z[p] = _mm512_inserti64x4(_mm512_castsi256_si512(load256(raw[p])), load256(raw[p + 8]), 1);
  __m512i t[8], u[8], tr[8];
  for (int p = 0; p < 8; p += 2) {
    t[p] = _mm512_unpacklo_epi32(z[p], z[p + 1]);
    t[p + 1] = _mm512_unpackhi_epi32(z[p], z[p + 1]);
  }
  for (int h = 0; h < 8; h += 4) { // rows 0-3 (t0..t3) and 4-7 (t4..t7) of each half
    u[h + 0] = _mm512_unpacklo_epi64(t[h + 0], t[h + 2]);
    u[h + 1] = _mm512_unpackhi_epi64(t[h + 0], t[h + 2]);
    u[h + 2] = _mm512_unpacklo_epi64(t[h + 1], t[h + 3]);
    u[h + 3] = _mm512_unpackhi_epi64(t[h + 1], t[h + 3]);
  }
  // u[d] (d < 4): 128-bit lanes = rows 0-3 dword d, rows 0-3 dword d + 4,
  // rows 8-11 dword d, rows 8-11 dword d + 4; u[d + 4] the same for rows 4-7
  // and 12-15.
  const __m512i lo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
  const __m512i hi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
  for (int d = 0; d < 4; ++d) {
    tr[d] = _mm512_permutex2var_epi64(u[d], lo, u[d + 4]);
    tr[d + 4] = _mm512_permutex2var_epi64(u[d], hi, u[d + 4]);
  }
  // tr[d]: lane i = dword d of row i. Column 32 g + 4 d + j sits at shift
  // 6 - 2 g: B row 8 g + d.
  const __m512i m3 = _mm512_set1_epi8(3), one = _mm512_set1_epi8(1);
  for (int g = 0; g < 4; ++g)
    for (int d = 0; d < 8; ++d) {
      const __m512i c = _mm512_and_si512(_mm512_srli_epi16(tr[d], 6 - 2 * g), m3);
      const int brow = 8 * g + d;
      _mm512_store_si512(out + (brow / 16) * 2048 + (brow % 16) * 64, _mm512_sub_epi8(c, one));
    }
}

// The A tile of tokens [t0, t0 + nt) (nt <= 16), columns [col, col + 64) of
// q, zero-padded past nt tokens and past column k, at dst (16 x 64 bytes).
__attribute__((always_inline)) inline void amx_a_copy(const MatmulArgs &a, int64_t t0, int64_t nt,
                                                      int64_t col, int8_t *dst) {
  const int64_t valid = min64(64, a.k - col);
  const __mmask64 mask = valid >= 64 ? ~__mmask64(0) : (__mmask64(1) << valid) - 1;
  for (int64_t t = 0; t < 16; ++t) {
    const __m512i v =
        t < nt ? _mm512_maskz_loadu_epi8(mask, a.q + (t0 + t) * a.k + col) : _mm512_setzero_si512();
    _mm512_store_si512(dst + t * 64, v);
  }
}

// The AMX task: row tiles [begin, end), every token. Full 16-token blocks
// read A straight from q; a partial last block and the K tail go through a
// zero-padded copy (amx_a_copy), so a token's sums never depend on the batch.
__attribute__((noinline)) void amx_i2s_task(void *arg, int64_t begin, int64_t end) {
  const MatmulArgs &a = *static_cast<const MatmulArgs *>(arg);
  const int64_t r_begin = begin * a.tm, r_end = min64(end * a.tm, a.m);
  const int64_t nsteps = (a.k + 63) / 64;
  const int64_t bpt = a.tk / 128, tbytes = a.tm * a.tk / 4, rstride = a.tk / 4;
  const int64_t nblocks = a.nkt * bpt; // 128-column blocks per row, padding included

  AmxTileConfig cfg = {};
  cfg.palette = 1;
  for (int i = 0; i < 8; ++i) {
    cfg.colsb[i] = 64;
    cfg.rows[i] = 16;
  }
  _tile_loadconfig(&cfg);

  alignas(64) uint8_t panel[kAmxPanelBytes];
  alignas(64) int32_t acc[kAmxSuperTokens * kAmxRows];
  alignas(64) int8_t acopy[2][16 * 64];
  alignas(32) uint8_t zero_codes[32]; // code 1 = weight 0: rows past the task's
  for (int i = 0; i < 32; ++i)
    zero_codes[i] = 0x55;

  for (int64_t rb = r_begin; rb < r_end; rb += kAmxRows) {
    const int64_t nrows = min64(kAmxRows, r_end - rb);
    const uint8_t *rowbase[kAmxRows];
    for (int64_t i = 0; i < kAmxRows; ++i) {
      const int64_t r = rb + i;
      rowbase[i] =
          i < nrows ? a.packed + (r / a.tm) * a.nkt * tbytes + (r % a.tm) * rstride : nullptr;
    }
    // The B tiles of 128-column block b (K steps 2 b, 2 b + 1, both row
    // halves) into the panel of the chunk starting at step s0.
    auto build = [&](int64_t b, int64_t s0) {
      const int64_t boff = (b / bpt) * tbytes + (b % bpt) * 32;
      if (b + kAmxPrefetchBlocks < nblocks) {
        // The raw codes kAmxPrefetchBlocks blocks ahead (a model's weights
        // come from DRAM): one line per row holds two blocks.
        const int64_t pb = b + kAmxPrefetchBlocks, poff = (pb / bpt) * tbytes + (pb % bpt) * 32;
        for (int64_t i = 0; i < nrows; ++i)
          _mm_prefetch(reinterpret_cast<const char *>(rowbase[i] + poff), _MM_HINT_T0);
      }
      for (int h = 0; h < 2; ++h) {
        const uint8_t *raw[16];
        for (int i = 0; i < 16; ++i)
          raw[i] = rowbase[16 * h + i] ? rowbase[16 * h + i] + boff : zero_codes;
        amx_b_tiles(raw, panel + ((2 * b - s0) * 2 + h) * 1024);
      }
    };
    // Epilogue of tokens [t0, t1) (accumulator rows from ts): float(acc) *
    // scale / qs[t], the ref's order (mul, then div).
    auto epilogue = [&](int64_t ts, int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int32_t *ct = acc + (t - ts) * kAmxRows;
        for (int64_t i0 = 0; i0 < nrows; i0 += 16) {
          const int64_t r = rb + i0;
          const int seg = segment_of(a, r);
          if (i0 + 16 <= nrows && segment_of(a, r + 15) == seg) {
            __m512 v = _mm512_cvtepi32_ps(_mm512_load_si512(ct + i0));
            v = _mm512_div_ps(_mm512_mul_ps(v, _mm512_set1_ps(a.scale[seg])),
                              _mm512_set1_ps(a.qs[t]));
            _mm512_storeu_ps(a.out[seg] + t * a.ms[seg] + (r - a.seg_begin[seg]), v);
          } else {
            for (int64_t i = i0; i < min64(i0 + 16, nrows); ++i) {
              const int sg = segment_of(a, rb + i);
              store(a, sg, rb + i, t, float(ct[i]) * a.scale[sg] / a.qs[t]);
            }
          }
        }
      }
    };
    for (int64_t ts = 0; ts < a.n; ts += kAmxSuperTokens) {
      const int64_t te = min64(ts + kAmxSuperTokens, a.n);
      for (int64_t s0 = 0; s0 < nsteps; s0 += kAmxPanelCols / 64) {
        const int64_t s1 = min64(nsteps, s0 + kAmxPanelCols / 64);
        const int64_t bend = (s1 + 1) / 2; // 128-column blocks [s0 / 2, bend)
        const bool last = s1 == nsteps;
        // The first token pair builds the panel one block ahead of its
        // tdpbssds (block b + 1 before the steps of block b): the vector
        // unpack runs while the tile unit works, and the stores have retired
        // by the time the tile loads read them.
        build(s0 / 2, s0);
        for (int64_t t0 = ts; t0 < te; t0 += 32) {
          const int64_t nt0 = min64(16, te - t0), nt1 = te - t0 - 16;
          const bool two = nt1 > 0, first = t0 == ts;
          int32_t *cb = acc + (t0 - ts) * kAmxRows;
          if (s0 == 0) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
          } else {
            _tile_loadd(0, cb, kAmxRows * 4);
            _tile_loadd(1, cb + 16, kAmxRows * 4);
            if (two) {
              _tile_loadd(2, cb + 16 * kAmxRows, kAmxRows * 4);
              _tile_loadd(3, cb + 16 * kAmxRows + 16, kAmxRows * 4);
            }
          }
          // Loads interleaved with the tdpbssds that do not need them (tile
          // registers are not renamed: a load waits for the earlier readers of
          // its register). Measured in isolation (2 x 2 tiles, L2-resident):
          // 10.1 ns per tdpbssd against 11.5 ns for four loads, then four
          // tdpbssds; 5.96 ns without loads.
          for (int64_t s = s0; s < s1; ++s) {
            if (first && (s & 1) == 0 && s / 2 + 1 < bend)
              build(s / 2 + 1, s0);
            const uint8_t *bt = panel + (s - s0) * 2 * 1024;
            const bool full_k = (s + 1) * 64 <= a.k;
            const bool direct0 = full_k && nt0 == 16, direct1 = full_k && nt1 >= 16;
            if (!direct0)
              amx_a_copy(a, t0, nt0, s * 64, acopy[0]);
            if (two && !direct1)
              amx_a_copy(a, t0 + 16, min64(16, nt1), s * 64, acopy[1]);
            if (direct0)
              _tile_loadd(4, a.q + t0 * a.k + s * 64, a.k);
            else
              _tile_loadd(4, acopy[0], 64);
            _tile_loadd(6, bt, 64);
            _tile_dpbssd(0, 4, 6);
            _tile_loadd(7, bt + 1024, 64);
            _tile_dpbssd(1, 4, 7);
            if (two) {
              if (direct1)
                _tile_loadd(5, a.q + (t0 + 16) * a.k + s * 64, a.k);
              else
                _tile_loadd(5, acopy[1], 64);
              _tile_dpbssd(2, 5, 6);
              _tile_dpbssd(3, 5, 7);
            }
          }
          _tile_stored(0, cb, kAmxRows * 4);
          _tile_stored(1, cb + 16, kAmxRows * 4);
          if (two) {
            _tile_stored(2, cb + 16 * kAmxRows, kAmxRows * 4);
            _tile_stored(3, cb + 16 * kAmxRows + 16, kAmxRows * 4);
          }
          // The previous pair's epilogue (its sums are final after the last
          // chunk) runs while the tile unit works on this pair.
          if (last && !first)
            epilogue(ts, t0 - 32, t0);
        }
        if (last)
          epilogue(ts, ts + (te - ts - 1) / 32 * 32, te);
      }
    }
  }
  _tile_release();
}

} // namespace
} // namespace tern_uk

#endif // TERN_UKERNELS_X86_AMX_H
