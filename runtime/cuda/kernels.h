// GPU kernels of the cuda targets (docs/cuda.md), written once as plain
// functions of (blockIdx, threadIdx, blockDim) and compiled twice:
//  - for the GPU by kernels.cu (clang's NVPTX backend, -x cuda, no CUDA
//    headers: TERN_GPU_FN is __device__ there), to PTX for sm_80 / sm_90;
//  - for the host as ordinary C++ (TERN_GPU_FN is inline), driven by
//    emulate.h's launch-grid emulation, and tested against the `_ref` twins.
//
// Each kernel is split at its warp-level reduction: a per-lane function
// computes the lane's partial values, the caller sums them over the warp (on
// the GPU with __shfl_xor_sync's butterfly; emulated on the host in the same
// order, see warp_sum_emulated) and a finish function run by lane 0 writes the
// result. No shared memory, no block-level barriers: every warp is
// independent -- except in the split attention (tern_gpu_attention_gqa_f16_
// split, at the end), whose 4 warps per block combine through shared memory
// after one __syncthreads (emulated by emulate.h's for_each_block_phased).
// Every kernel is batch-invariant (a token's result depends on
// its own row of activations only).
#pragma once

#include <stdint.h>

#include "runtime/formats/half.h"

#if defined(__CUDA__)
#define TERN_GPU_FN __attribute__((device)) inline __attribute__((always_inline))
// Full unrolling of a constant-trip-count loop where clang's heuristics
// would keep the loop (and its small array in local memory).
#define TERN_GPU_UNROLL _Pragma("unroll")
#else
#define TERN_GPU_FN inline
#define TERN_GPU_UNROLL
#endif

namespace tern::cuda {

constexpr int kWarp = 32;
// Rows (or tokens) per block: 4 warps of 32 threads.
constexpr int kWarpsPerBlock = 4;
constexpr int kBlockThreads = kWarp * kWarpsPerBlock;
// Tokens one warp of the ternary matmul and the lm_head handles per pass over
// a weight row (the GEMM reuse of a row's codes; decode uses one of them).
constexpr int kTokenTile = 8;

// The thread coordinates a kernel body reads.
struct Thread {
  uint32_t blockX, blockY; // blockIdx.x, blockIdx.y
  uint32_t threadX;        // threadIdx.x (0 .. blockDim.x)
  uint32_t blockDimX;      // blockDim.x
};
TERN_GPU_FN int lane_of(const Thread &th) { return int(th.threadX % kWarp); }
TERN_GPU_FN int64_t warp_global(const Thread &th) {
  return int64_t(th.blockX) * (th.blockDimX / kWarp) + th.threadX / kWarp;
}

// IEEE half <-> float: runtime/formats/half.h's functions, the CPU's (host
// and device functions under -x cuda): f16_to_f32 exact, f32_to_f16 rounding
// to nearest even (the ref's f16 K/V write, so the GPU's cache is the ref's
// bit for bit).
using half::f16_to_f32;
using half::f32_to_f16;

// A 32-bit load of 4-byte aligned memory of another type (codes, int8
// activations, f16 pairs): one ld.u32 on the GPU; memcpy on the host (no
// strict-aliasing assumption for the host compiler).
TERN_GPU_FN uint32_t load_u32(const void *p) {
#if defined(__CUDA__) && defined(__CUDA_ARCH__)
  return *static_cast<const uint32_t *>(p);
#else
  uint32_t v;
  __builtin_memcpy(&v, p, 4);
  return v;
#endif
}

// dp4a: c + sum of the four signed byte products of a and b. On the GPU one
// instruction (sm_61+); on the host its definition.
TERN_GPU_FN int32_t dp4a(uint32_t a, uint32_t b, int32_t c) {
#if defined(__CUDA__) && defined(__CUDA_ARCH__)
  int32_t r;
  asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  return r;
#else
  for (int i = 0; i < 4; ++i)
    c += int32_t(int8_t(uint8_t(a >> (8 * i)))) * int32_t(int8_t(uint8_t(b >> (8 * i))));
  return c;
#endif
}

// ---- ternary matmul, i2s layout, int8 activations (dp4a) ----
//
// The packed weight is compiler/pack's i2s: for row tile rt, K tile kt, row
// r of the tile, each 128-column block: 32 bytes, byte j = c[j]<<6 |
// c[j+32]<<4 | c[j+64]<<2 | c[j+96], c = w + 1. A 32-bit word of bytes j..j+3
// shifted right by 6 - 2s and masked with 0x03030303 is the four codes of
// columns 32s + j .. 32s + j + 3 as bytes: one dp4a with the four
// activations of those columns, minus dp4a(0x01010101, same) for the +1.
// The GPU-friendly choice (tern-select-kernels for cuda:*): tile_k = K, so a
// row's codes are contiguous and a warp reads 32 consecutive words.
// Segments (fused q/k/v, gate/up) and the per-segment scales after the codes
// (at the next multiple of 64 bytes) are as for the CPU ukernels.
struct I2sParams {
  int64_t n;       // tokens
  const int8_t *q; // [n][k]
  const float *qs; // [n]
  const uint8_t *packed;
  int64_t m, k, tileM, tileK;
  float *out[3];
  int64_t ms[3];
};

TERN_GPU_FN int64_t round_up64(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Lane partial sums of row `row` (the warp's) for tokens t0 .. t0 + nt:
// acc[t] = sum over the lane's words of (codes . q), sa[t] = sum of q.
TERN_GPU_FN void i2s_lane(const I2sParams &p, int64_t row, int64_t t0, int nt, int lane,
                          int32_t *acc, int32_t *sa) {
  for (int t = 0; t < kTokenTile; ++t)
    acc[t] = sa[t] = 0;
  const int64_t kp = round_up64(p.k, p.tileK), nkt = kp / p.tileK;
  const int64_t rt = row / p.tileM, rr = row % p.tileM;
  const int64_t tileBytes = p.tileM * p.tileK / 4;
  const int64_t words = p.k / 16; // 8 words per 128 columns; k % 128 == 0 (launch plan)
  for (int64_t wi = lane; wi < words; wi += kWarp) {
    const int64_t blk = wi / 8, j = (wi % 8) * 4;
    const int64_t col0 = blk * 128, kt = col0 / p.tileK, off = col0 % p.tileK;
    const uint8_t *b =
        p.packed + (rt * nkt + kt) * tileBytes + rr * (p.tileK / 4) + (off / 128) * 32 + j;
    const uint32_t word = load_u32(b);
    for (int s = 0; s < 4; ++s) {
      const uint32_t codes = (word >> (6 - 2 * s)) & 0x03030303u;
      const int64_t col = col0 + 32 * s + j;
      for (int t = 0; t < nt; ++t) {
        const uint32_t a = load_u32(p.q + (t0 + t) * p.k + col);
        acc[t] = dp4a(codes, a, acc[t]);
        sa[t] = dp4a(0x01010101u, a, sa[t]);
      }
    }
  }
}

// Lane 0, with the warp's sums: out = float(sum) * scale / qs, the ref's
// expression (so the result is bit-identical with tern_uk_matmul_i2s_ref).
TERN_GPU_FN void i2s_finish(const I2sParams &p, int64_t row, int64_t t0, int nt, const int32_t *acc,
                            const int32_t *sa) {
  const int64_t mp = round_up64(p.m, p.tileM), kp = round_up64(p.k, p.tileK);
  const uint8_t *scales = p.packed + round_up64(mp * kp / 4, 64); // one f32 per segment
  int seg = 0;
  int64_t r = row;
  while (seg < 2 && r >= p.ms[seg]) {
    r -= p.ms[seg];
    ++seg;
  }
  int present = 0; // the scales of the segments with rows, in order (as the CPU kernels)
  for (int i = 0; i < seg; ++i)
    present += p.ms[i] > 0;
  const float scale = __builtin_bit_cast(float, load_u32(scales + 4 * present));
  for (int t = 0; t < nt; ++t)
    p.out[seg][(t0 + t) * p.ms[seg] + r] = float(acc[t] - sa[t]) * scale / p.qs[t0 + t];
}

// Which (row, tokens) a warp computes; false for warps past the last row.
TERN_GPU_FN bool i2s_work(const I2sParams &p, const Thread &th, int64_t *row, int64_t *t0,
                          int *nt) {
  *row = warp_global(th);
  *t0 = int64_t(th.blockY) * kTokenTile;
  const int64_t left = p.n - *t0;
  *nt = int(left < kTokenTile ? left : kTokenTile);
  return *row < p.m && *nt > 0;
}

// ---- ternary matmul, i2s, int8 activations, tensor cores (prefill) ----
//
// tern_gpu_matmul_i2s_i8_mma: the same product as tern_gpu_matmul_i2s_i8 on
// the int8 tensor cores, mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32
// (sm_80+): D[16 rows][8 tokens] += A[16 rows][32 cols] * B[32 cols][8 tokens]
// with A the weights w = c - 1 in {-1, 0, 1} as s8 and B the activations q.
// The launchers use it for n >= kMmaMinTokens (a tile of 16 tokens is then at
// least full; the dp4a kernel keeps decode and small batches).
//
// A warp computes kMmaWarpRows output rows x kMmaWarpTokens tokens
// (kMmaRowTiles x kMmaTokenTiles mma tiles), 4 warps per block along the rows:
// blockIdx.x covers 4 * kMmaWarpRows rows, blockIdx.y kMmaWarpTokens tokens.
// No shared memory, no barriers: the fragments are loaded straight from
// global memory. Per 128-column block a lane loads 4 code words per row
// tile, and the same word gives the A fragment of all 4 k32 steps of the
// block (shift 6 - 2s selects columns 32s + j .. 32s + j + 3, as for dp4a).
//
// Fragment layout of m16n8k32 with s8 inputs (PTX ISA, "Matrix Fragments for
// mma.m16n8k32"): lane l, group g = l >> 2, thread-in-group i = l & 3; a
// 32-bit register holds 4 consecutive s8 elements, the lowest byte first.
//   A (row major 16x32): a0 = A[g][4i..4i+3],     a1 = A[g+8][4i..4i+3],
//                        a2 = A[g][16+4i..+3],    a3 = A[g+8][16+4i..+3]
//   B (col major 32x8):  b0 = B[4i..4i+3][g],     b1 = B[16+4i..16+4i+3][g]
//   C/D (16x8 s32):      c0 = C[g][2i], c1 = C[g][2i+1], c2 = C[g+8][2i],
//                        c3 = C[g+8][2i+1]
// On the host, emulate.h's mma_m16n8k32_s8 implements exactly this layout
// (it rebuilds the matrices from the 32 lanes' registers), so a wrong index
// here gives wrong products in cuda_kernels_test.
//
// Exact: the int32 sums are Σ w q (|Σ| <= 128 k < 2^31 for k < 2^24), the
// dp4a kernel's acc - sa; the epilogue is the ref's float(sum) * scale / qs,
// so the result is bit-identical with tern_uk_matmul_i2s_ref. Rows past m
// read no codes (A rows of zeros) and are not stored; tokens past n are zero
// activations and are not stored: a token's sums depend on its own q only
// (batch-invariant, whatever tile it falls in).
constexpr int kMmaMinTokens = 16;
constexpr int kMmaRowTiles = 2;   // m16 tiles per warp
constexpr int kMmaTokenTiles = 2; // n8 tiles per warp
constexpr int kMmaWarpRows = 16 * kMmaRowTiles;
constexpr int kMmaWarpTokens = 8 * kMmaTokenTiles;

// The warp's first row and first token; false for warps past the last row.
TERN_GPU_FN bool i2s_mma_work(const I2sParams &p, const Thread &th, int64_t *row0, int64_t *t0) {
  *row0 = warp_global(th) * kMmaWarpRows;
  *t0 = int64_t(th.blockY) * kMmaWarpTokens;
  return *row0 < p.m && *t0 < p.n;
}

// The 32-bit code word at byte j (0, 4, .., 28) of row `row`'s 32 bytes of
// 128-column block `blk` (the i2s layout above); all codes 1 (w = 0) for a
// row past m.
TERN_GPU_FN uint32_t i2s_code_word(const I2sParams &p, int64_t row, int64_t blk, int j) {
  if (row >= p.m)
    return 0x55555555u;
  const int64_t nkt = round_up64(p.k, p.tileK) / p.tileK;
  const int64_t rt = row / p.tileM, rr = row % p.tileM, tileBytes = p.tileM * p.tileK / 4;
  const int64_t col0 = blk * 128, kt = col0 / p.tileK, off = col0 % p.tileK;
  return load_u32(p.packed + (rt * nkt + kt) * tileBytes + rr * (p.tileK / 4) + (off / 128) * 32 +
                  j);
}

// The lane's code words of block blk, per row tile in A-register order:
// rows g, g + 8 of the tile at bytes 4i (a0, a1) and 16 + 4i (a2, a3).
TERN_GPU_FN void i2s_mma_lane_words(const I2sParams &p, int64_t row0, int64_t blk, int lane,
                                    uint32_t (&w)[kMmaRowTiles][4]) {
  const int g = lane >> 2, i = lane & 3;
  TERN_GPU_UNROLL
  for (int mt = 0; mt < kMmaRowTiles; ++mt) {
    const int64_t r = row0 + 16 * mt + g;
    w[mt][0] = i2s_code_word(p, r, blk, 4 * i);
    w[mt][1] = i2s_code_word(p, r + 8, blk, 4 * i);
    w[mt][2] = i2s_code_word(p, r, blk, 16 + 4 * i);
    w[mt][3] = i2s_code_word(p, r + 8, blk, 16 + 4 * i);
  }
}

// A register of k32 step s (columns 32s .. 32s + 31 of the block) from a code
// word: the four codes c in {0, 1, 2} as bytes, then c - 1 per byte as s8
// (each byte biased by 0x80 so the subtraction borrows nothing).
TERN_GPU_FN uint32_t i2s_mma_a(uint32_t word, int s) {
  const uint32_t codes = (word >> (6 - 2 * s)) & 0x03030303u;
  return ((codes | 0x80808080u) - 0x01010101u) ^ 0x80808080u;
}

// The lane's B registers for the columns col .. col + 31 (one k32 step), per
// token tile: token t0 + 8 nt + g, columns col + 4i (b0) and col + 16 + 4i
// (b1); zeros for a token past n.
TERN_GPU_FN void i2s_mma_lane_b(const I2sParams &p, int64_t t0, int64_t col, int lane,
                                uint32_t (&b)[kMmaTokenTiles][2]) {
  const int g = lane >> 2, i = lane & 3;
  TERN_GPU_UNROLL
  for (int nt = 0; nt < kMmaTokenTiles; ++nt) {
    const int64_t t = t0 + 8 * nt + g;
    const int8_t *qt = p.q + t * p.k + col + 4 * i;
    b[nt][0] = t < p.n ? load_u32(qt) : 0u;
    b[nt][1] = t < p.n ? load_u32(qt + 16) : 0u;
  }
}

// out[row][t] = float(sum) * scale[seg] / qs[t], the ref's expression, for
// row < m, t < n (the segment lookup as i2s_finish).
TERN_GPU_FN void i2s_mma_store_one(const I2sParams &p, int64_t row, int64_t t, int32_t sum) {
  if (row >= p.m || t >= p.n)
    return;
  const int64_t mp = round_up64(p.m, p.tileM), kp = round_up64(p.k, p.tileK);
  const uint8_t *scales = p.packed + round_up64(mp * kp / 4, 64);
  int seg = 0;
  int64_t r = row;
  while (seg < 2 && r >= p.ms[seg]) {
    r -= p.ms[seg];
    ++seg;
  }
  int present = 0;
  for (int s = 0; s < seg; ++s)
    present += p.ms[s] > 0;
  const float scale = __builtin_bit_cast(float, load_u32(scales + 4 * present));
  p.out[seg][t * p.ms[seg] + r] = float(sum) * scale / p.qs[t];
}

// The lane's accumulators (C layout above) to the outputs.
TERN_GPU_FN void i2s_mma_lane_store(const I2sParams &p, int64_t row0, int64_t t0, int lane,
                                    const int32_t (&c)[kMmaRowTiles][kMmaTokenTiles][4]) {
  const int g = lane >> 2, i = lane & 3;
  TERN_GPU_UNROLL
  for (int mt = 0; mt < kMmaRowTiles; ++mt) {
    TERN_GPU_UNROLL
    for (int nt = 0; nt < kMmaTokenTiles; ++nt) {
      TERN_GPU_UNROLL
      for (int e = 0; e < 4; ++e)
        i2s_mma_store_one(p, row0 + 16 * mt + g + (e >= 2 ? 8 : 0), t0 + 8 * nt + 2 * i + (e & 1),
                          c[mt][nt][e]);
    }
  }
}

// ---- lm_head, f16 weights [vocab][hidden], f32 activations ----
// Lane sums of columns 2 * (lane + 32 i) and the next (hidden % 64 == 0 in
// the launch plan), the warp's butterfly, lane 0 writes. Not the ref's
// sequential order: close to the ref, not bit-identical (like the CPU heads).
struct LmHeadParams {
  int64_t n;
  const float *x;    // [n][hidden]
  const uint16_t *w; // [vocab][hidden]
  float *logits;     // [n][vocab]
  int64_t hidden, vocab;
};

TERN_GPU_FN bool lm_head_work(const LmHeadParams &p, const Thread &th, int64_t *row, int64_t *t0,
                              int *nt) {
  *row = warp_global(th);
  *t0 = int64_t(th.blockY) * kTokenTile;
  const int64_t left = p.n - *t0;
  *nt = int(left < kTokenTile ? left : kTokenTile);
  return *row < p.vocab && *nt > 0;
}

TERN_GPU_FN void lm_head_lane(const LmHeadParams &p, int64_t row, int64_t t0, int nt, int lane,
                              float *acc) {
  for (int t = 0; t < kTokenTile; ++t)
    acc[t] = 0.0f;
  const uint16_t *w = p.w + row * p.hidden;
  for (int64_t i = lane; i < p.hidden / 2; i += kWarp) {
    const uint32_t two = load_u32(w + 2 * i);
    const float w0 = f16_to_f32(uint16_t(two)), w1 = f16_to_f32(uint16_t(two >> 16));
    for (int t = 0; t < nt; ++t) {
      const float *xt = p.x + (t0 + t) * p.hidden + 2 * i;
      acc[t] = acc[t] + w0 * xt[0];
      acc[t] = acc[t] + w1 * xt[1];
    }
  }
}

TERN_GPU_FN void lm_head_finish(const LmHeadParams &p, int64_t row, int64_t t0, int nt,
                                const float *acc) {
  for (int t = 0; t < nt; ++t)
    p.logits[(t0 + t) * p.vocab + row] = acc[t];
}

// ---- fused rms_norm + per-token int8 quantization: one warp per token ----
// Sum of squares in double per lane (float products are exact in double),
// warp butterfly, then the ref's expressions: scale s, amax (a max: order
// free), qs = 127 / max(amax, 1e-5), q = clamp(round(y * qs)). The double sum
// is in another order than the ref's: s can differ from the ref's by 1 ulp in
// a rounding tie (then a q by 1), as for the CPU fast variants.
struct RmsQuantParams {
  int64_t n;
  const float *x, *w; // x [n][dim], w [dim]
  int8_t *q;          // [n][dim]
  float *qs;          // [n]
  int64_t dim;
  float eps;
};

TERN_GPU_FN bool rms_work(const RmsQuantParams &p, const Thread &th, int64_t *t) {
  *t = warp_global(th);
  return *t < p.n;
}
TERN_GPU_FN double rms_lane_squares(const RmsQuantParams &p, int64_t t, int lane) {
  const float *xt = p.x + t * p.dim;
  double ss = 0.0;
  for (int64_t i = lane; i < p.dim; i += kWarp)
    ss += double(xt[i]) * xt[i];
  return ss;
}
TERN_GPU_FN float rms_scale_of(const RmsQuantParams &p, double ss) {
  return float(1.0 / __builtin_sqrt(ss / double(p.dim) + p.eps));
}
TERN_GPU_FN float fabs_gpu(float v) { return v < 0.0f ? -v : v; }
TERN_GPU_FN float rms_lane_amax(const RmsQuantParams &p, int64_t t, int lane, float s) {
  const float *xt = p.x + t * p.dim;
  float amax = 0.0f;
  for (int64_t i = lane; i < p.dim; i += kWarp) {
    const float a = fabs_gpu(xt[i] * s * p.w[i]);
    amax = amax < a ? a : amax;
  }
  return amax;
}
TERN_GPU_FN float rms_qscale(float amax) { return 127.0f / (amax < 1e-5f ? 1e-5f : amax); }
TERN_GPU_FN void rms_lane_quantize(const RmsQuantParams &p, int64_t t, int lane, float s,
                                   float qsv) {
  const float *xt = p.x + t * p.dim;
  int8_t *qt = p.q + t * p.dim;
  for (int64_t i = lane; i < p.dim; i += kWarp) {
    float v = __builtin_roundf((xt[i] * s * p.w[i]) * qsv);
    v = v < -128.0f ? -128.0f : (127.0f < v ? 127.0f : v);
    qt[i] = int8_t(v);
  }
  if (lane == 0)
    p.qs[t] = qsv;
}

// ---- rms_norm, f32 out: one warp per token ----
// The scale as rms_norm_quantize_i8 computes it, then the ref's y = x * s * w
// (equal to tern_uk_rms_norm_f32_ref but in the same rare tie).
struct RmsParams {
  int64_t n;
  const float *x, *w; // x [n][dim], w [dim]
  float *y;           // [n][dim]
  int64_t dim;
  float eps;
};
TERN_GPU_FN RmsQuantParams rms_as_quant(const RmsParams &p) {
  return RmsQuantParams{p.n, p.x, p.w, nullptr, nullptr, p.dim, p.eps};
}
TERN_GPU_FN void rms_lane_store(const RmsParams &p, int64_t t, int lane, float s) {
  const float *xt = p.x + t * p.dim;
  float *yt = p.y + t * p.dim;
  for (int64_t i = lane; i < p.dim; i += kWarp)
    yt[i] = xt[i] * s * p.w[i];
}

// ---- per-token int8 quantization (no norm): one warp per token ----
// Bit-identical with tern_uk_quantize_i8_ref: amax is a max (order free),
// then the ref's expressions.
struct QuantParams {
  int64_t n;
  const float *x; // [n][dim]
  int8_t *q;      // [n][dim]
  float *qs;      // [n]
  int64_t dim;
};
TERN_GPU_FN bool quant_work(const QuantParams &p, const Thread &th, int64_t *t) {
  *t = warp_global(th);
  return *t < p.n;
}
TERN_GPU_FN float quant_lane_amax(const QuantParams &p, int64_t t, int lane) {
  const float *xt = p.x + t * p.dim;
  float amax = 0.0f;
  for (int64_t i = lane; i < p.dim; i += kWarp) {
    const float a = fabs_gpu(xt[i]);
    amax = amax < a ? a : amax;
  }
  return amax;
}
TERN_GPU_FN void quant_lane_store(const QuantParams &p, int64_t t, int lane, float qsv) {
  const float *xt = p.x + t * p.dim;
  int8_t *qt = p.q + t * p.dim;
  for (int64_t i = lane; i < p.dim; i += kWarp) {
    float v = __builtin_roundf(xt[i] * qsv);
    v = v < -128.0f ? -128.0f : (127.0f < v ? 127.0f : v);
    qt[i] = int8_t(v);
  }
  if (lane == 0)
    p.qs[t] = qsv;
}

// ---- elementwise: one thread per element of [n][dim] ----
struct ElementwiseParams {
  int64_t count; // n * dim
  const float *a, *b;
  float *out;
};
TERN_GPU_FN int64_t element_of(const Thread &th) {
  return int64_t(th.blockX) * th.blockDimX + th.threadX;
}
// Residual add: out = a + b (bit-identical with tern_uk_add_f32_ref).
TERN_GPU_FN void add_thread(const ElementwiseParams &p, const Thread &th) {
  const int64_t i = element_of(th);
  if (i < p.count)
    p.out[i] = p.a[i] + p.b[i];
}
// relu(gate)^2 * up (bit-identical with tern_uk_relu2_mul_f32_ref).
TERN_GPU_FN void relu2_mul_thread(const ElementwiseParams &p, const Thread &th) {
  const int64_t i = element_of(th);
  if (i < p.count) {
    const float g = p.a[i] > 0.0f ? p.a[i] : 0.0f;
    p.out[i] = g * g * p.b[i];
  }
}

// e^x in float without libdevice (the PTX build links none): x = n ln2 + r,
// |r| <= ln2 / 2, e^r by its degree-7 Taylor polynomial (truncation < 0.1
// ulp), times 2^n built from exponent bits in two steps (subnormal results).
// Within a few ulp of the C library's expf, not bit-identical; the same bits
// on the host and the GPU (no FMA: -ffp-contract=off on both).
TERN_GPU_FN float pow2i_gpu(int e) { // 2^e for e in [-126, 127]
  return __builtin_bit_cast(float, uint32_t(e + 127) << 23);
}
TERN_GPU_FN float exp_gpu(float x) {
  if (x != x)
    return x;
  if (x > 88.72283935546875f)
    return __builtin_inff();
  if (x < -103.972084045410156f)
    return 0.0f;
  const float n = __builtin_rintf(x * 1.44269504088896341f);
  float r = x - n * 0.693145751953125f; // ln2 high part: n * it is exact
  r = r - n * 1.428606765330187045e-06f;
  float e = 1.0f / 5040.0f;
  e = e * r + 1.0f / 720.0f;
  e = e * r + 1.0f / 120.0f;
  e = e * r + 1.0f / 24.0f;
  e = e * r + 1.0f / 6.0f;
  e = e * r + 0.5f;
  e = e * r + 1.0f;
  e = e * r + 1.0f;
  const int ni = int(n), half = ni / 2;
  return e * pow2i_gpu(half) * pow2i_gpu(ni - half);
}
// silu(gate) * up = gate / (1 + e^-gate) * up, the ref's expression with
// exp_gpu for expf: close to tern_uk_silu_mul_f32_ref (a few ulp).
TERN_GPU_FN void silu_mul_thread(const ElementwiseParams &p, const Thread &th) {
  const int64_t i = element_of(th);
  if (i < p.count)
    p.out[i] = p.a[i] / (1.0f + exp_gpu(-p.a[i])) * p.b[i];
}

// ---- RoPE (NEOX halves) ----
// The ref computes theta = pos * base^(-2i / rot_dim), cos and sin in double,
// then rounds them to float. Without libdevice, double exp / log / sin / cos
// are computed here (fdlibm-style range reductions and Taylor series, about
// 1e-16 relative before the reduction of theta): the floats c and s equal the
// ref's except when the double value lies within its error of a float
// rounding boundary (then 1 ulp), and the rotation is the ref's expression.
TERN_GPU_FN double pow2i_d(int e) { // 2^e, e in [-1022, 1023]
  return __builtin_bit_cast(double, uint64_t(e + 1023) << 52);
}
TERN_GPU_FN double exp_d(double x) { // |x| < 700
  const double n = __builtin_rint(x * 1.44269504088896338700e+00);
  const double r = (x - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
  double e = 1.0 / 6227020800.0; // 1/13!
  const double inv[] = {1.0 / 479001600.0,
                        1.0 / 39916800.0,
                        1.0 / 3628800.0,
                        1.0 / 362880.0,
                        1.0 / 40320.0,
                        1.0 / 5040.0,
                        1.0 / 720.0,
                        1.0 / 120.0,
                        1.0 / 24.0,
                        1.0 / 6.0,
                        0.5,
                        1.0,
                        1.0};
  for (double c : inv)
    e = e * r + c;
  const int ni = int(n), half = ni / 2;
  return e * pow2i_d(half) * pow2i_d(ni - half);
}
TERN_GPU_FN double log_d(double x) { // x positive, normal, finite
  const uint64_t bits = __builtin_bit_cast(uint64_t, x);
  int e = int((bits >> 52) & 0x7ff) - 1023;
  double m = __builtin_bit_cast(double, (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
  if (m > 1.41421356237309504880) {
    m = m * 0.5;
    ++e;
  }
  const double f = (m - 1.0) / (m + 1.0), f2 = f * f;
  double sum = 1.0 / 25.0; // 2 atanh(f) = 2 (f + f^3/3 + ... + f^25/25)
  for (int k = 23; k >= 1; k -= 2)
    sum = sum * f2 + 1.0 / double(k);
  return double(e) * 6.93147180369123816490e-01 +
         (double(e) * 1.90821492927058770002e-10 + 2.0 * f * sum);
}
// sin and cos of theta (|theta| < 2^20 * pi / 2): theta = k pi/2 + r,
// |r| <= pi/4, pi/2 in three parts (each k * part exact).
TERN_GPU_FN void sincos_d(double theta, double *sn, double *cs) {
  const double k = __builtin_rint(theta * 6.36619772367581382433e-01);
  const double r = ((theta - k * 1.57079632673412561417e+00) - k * 6.07710050630396597660e-11) -
                   k * 2.02226624871116645580e-21;
  const double r2 = r * r;
  double sp = -1.0 / 121645100408832000.0; // -1/19!, then 1/17!, ...
  double cp = -1.0 / 6402373705728000.0;   // -1/18!, then 1/16!, ...
  const double sinc[] = {1.0 / 355687428096000.0,
                         -1.0 / 1307674368000.0,
                         1.0 / 6227020800.0,
                         -1.0 / 39916800.0,
                         1.0 / 362880.0,
                         -1.0 / 5040.0,
                         1.0 / 120.0,
                         -1.0 / 6.0,
                         1.0};
  const double cosc[] = {1.0 / 20922789888000.0,
                         -1.0 / 87178291200.0,
                         1.0 / 479001600.0,
                         -1.0 / 3628800.0,
                         1.0 / 40320.0,
                         -1.0 / 720.0,
                         1.0 / 24.0,
                         -0.5,
                         1.0};
  for (double c : sinc)
    sp = sp * r2 + c;
  for (double c : cosc)
    cp = cp * r2 + c;
  const double s0 = sp * r, c0 = cp;
  const int q = int(int64_t(k) & 3);
  *sn = q == 0 ? s0 : q == 1 ? c0 : q == 2 ? -s0 : -c0;
  *cs = q == 0 ? c0 : q == 1 ? -s0 : q == 2 ? -c0 : s0;
}

struct RopeParams {
  int64_t n;
  const float *x;
  const int32_t *pos; // [n]
  float *y;           // [n][n_heads * head_dim]; may be x
  int64_t nHeads, headDim, rotDim;
  float freqBase;
};
// Threads per token: max(rot_dim / 2, head_dim - rot_dim). Thread i rotates
// pair (i, i + rot_dim / 2) of every head and, when y != x, copies the
// unrotated dim rot_dim + i of every head.
TERN_GPU_FN int64_t rope_threads_per_token(const RopeParams &p) {
  const int64_t half = p.rotDim / 2, rest = p.headDim - p.rotDim;
  return half > rest ? half : rest;
}
TERN_GPU_FN void rope_thread(const RopeParams &p, const Thread &th) {
  const int64_t per = rope_threads_per_token(p), id = element_of(th);
  if (id >= p.n * per)
    return;
  const int64_t t = id / per, i = id % per, half = p.rotDim / 2, dim = p.nHeads * p.headDim;
  if (p.y != p.x && i < p.headDim - p.rotDim)
    for (int64_t h = 0; h < p.nHeads; ++h)
      p.y[t * dim + h * p.headDim + p.rotDim + i] = p.x[t * dim + h * p.headDim + p.rotDim + i];
  if (i >= half)
    return;
  const double theta =
      double(p.pos[t]) * exp_d(-2.0 * double(i) / double(p.rotDim) * log_d(double(p.freqBase)));
  double sd, cd;
  sincos_d(theta, &sd, &cd);
  const float c = float(cd), s = float(sd);
  for (int64_t h = 0; h < p.nHeads; ++h) {
    const float *v = p.x + t * dim + h * p.headDim;
    float *o = p.y + t * dim + h * p.headDim;
    const float x0 = v[i], x1 = v[i + half];
    o[i] = x0 * c - x1 * s;
    o[i + half] = x0 * s + x1 * c;
  }
}

// ---- gather of output rows: one thread per 32-bit word ----
// dst row j = src row rows[j] (the rows the lm_head reads; the CPU code's
// memcpy loop, done on the device because src and dst are device scratch).
// rowBytes % 4 == 0 (launch plan).
struct GatherParams {
  int64_t nOut;
  const int32_t *rows; // [nOut]
  const uint8_t *src;  // [*][rowBytes]
  uint8_t *dst;        // [nOut][rowBytes]
  int64_t rowBytes;
};
TERN_GPU_FN void gather_rows_thread(const GatherParams &p, const Thread &th) {
  const int64_t words = p.rowBytes / 4, i = element_of(th);
  if (i >= p.nOut * words)
    return;
  const int64_t j = i / words, w = i % words;
  const uint32_t v = load_u32(p.src + int64_t(p.rows[j]) * p.rowBytes + 4 * w);
  __builtin_memcpy(p.dst + j * p.rowBytes + 4 * w, &v, 4);
}

// ---- embedding, f16 table: one thread per output element ----
struct EmbedParams {
  int64_t n;
  const int32_t *tokens;
  const uint16_t *table; // [vocab][hidden]
  float *out;            // [n][hidden]
  int64_t hidden, vocab;
};
TERN_GPU_FN void embed_f16_thread(const EmbedParams &p, const Thread &th) {
  const int64_t i = element_of(th);
  if (i >= p.n * p.hidden)
    return;
  const int64_t t = i / p.hidden, c = i % p.hidden;
  const int64_t tok = p.tokens[t];
  p.out[i] = tok < 0 || tok >= p.vocab ? 0.0f : f16_to_f32(p.table[tok * p.hidden + c]);
}

// ---- attention over the paged KV cache, f16 cache: two launches ----
// tern_uk_attention_gqa_f16_ref on the GPU, as two kernels launched in this
// order on one stream, both with the same AttnF16Params (the stream order is
// the ref's "every K/V row of the call is written before any is read"; no
// grid-wide barrier, no cooperative launch):
//  1. tern_gpu_kv_store_f16 (planKvStoreF16): one thread per element of
//     [n][kvDim]; writes k and v of token t, rounded to f16 (the ref's
//     f32_to_f16, bit-identical), at position pos[t] of sequence seq[t],
//     layer `layer`;
//  2. tern_gpu_attention_gqa_f16 (planAttentionF16): one warp per (token,
//     query head), causal over positions 0..pos[t] of seq[t].
//
// How the runtime fills the page table: the GPU cannot follow tern_kv_view's
// host pointer-to-pointer page_tables, so it uploads one flat int32 array
//   pageIds[(s * nLayer + l) * maxPages + i] = tern_kv_view.page_tables[s][l][i]
// for every sequence s of the call (s = seq[t] indexes it, as for the CPU
// kernels), every layer l < nLayer and i < maxPages (pages per sequence and
// layer: max_ctx / page_size rounded up). Entries past a sequence's held
// pages are never read (-1 is fine). `pool` is the device address of the KV
// pool: page id g starts at pool + g * pageElems halves and holds K
// [pageSize][kvDim] then V [pageSize][kvDim] (kvDim = nKvHeads * headDim,
// pageElems = 2 * pageSize * kvDim), tern_kv_view's layout; it must be
// 16-byte aligned (the attention reads K rows with 16-byte loads; any
// cuMemAlloc address is). The struct is passed by value as each kernel's only
// parameter, like the other *Params.
//
// A lane of the attention holds dims 2 lane + 64 i, 2 lane + 64 i + 1 of the
// head: head_dim % 64 == 0, at most kAttnMaxHeadDim (launch plan).
constexpr int kAttnMaxHeadDim = 256;
constexpr int kAttnMaxPairs = kAttnMaxHeadDim / 64; // dim pairs per lane
struct AttnF16Params {
  int64_t n;                // tokens of the call
  const float *q;           // [n][nHeads * headDim]
  const float *k, *v;       // [n][nKvHeads * headDim]
  const int32_t *pos, *seq; // [n]: position of token t, its sequence (row of pageIds)
  float *out;               // [n][nHeads * headDim]
  uint16_t *pool;           // device base of the KV pool (IEEE halves)
  const int32_t *pageIds;   // [nSeq][nLayer][maxPages] page ids (above)
  int64_t pageElems, pageSize, nLayer, maxPages;
  int64_t layer, nHeads, nKvHeads, headDim;
  float scale;
};

// Row `ps` of sequence `sq`'s K (v = false) or V pages of p.layer.
TERN_GPU_FN uint16_t *attn_kv_row(const AttnF16Params &p, int64_t sq, int64_t ps, bool v) {
  const int64_t kvDim = p.nKvHeads * p.headDim;
  const int64_t page = p.pageIds[(sq * p.nLayer + p.layer) * p.maxPages + ps / p.pageSize];
  return p.pool + page * p.pageElems + (v ? p.pageSize * kvDim : 0) + (ps % p.pageSize) * kvDim;
}

// Launch 1: element i of [n][kvDim] of k and v into the cache (bit-identical
// with the ref's write). Two tokens of one call must not share (seq, pos)
// (the runtime never does that; the ref would keep the last one).
TERN_GPU_FN void kv_store_f16_thread(const AttnF16Params &p, const Thread &th) {
  const int64_t kvDim = p.nKvHeads * p.headDim, i = element_of(th);
  if (i >= p.n * kvDim)
    return;
  const int64_t t = i / kvDim, d = i % kvDim;
  attn_kv_row(p, p.seq[t], p.pos[t], false)[d] = f32_to_f16(p.k[i]);
  attn_kv_row(p, p.seq[t], p.pos[t], true)[d] = f32_to_f16(p.v[i]);
}

// Launch 2: one warp per (token t, query head h), positions in chunks of 32
// from 0 (chunk boundaries at multiples of 32: independent of the batch and
// of the page size), an online softmax (flash attention) over the chunks:
//  - lane j scores position c + j: (q . k) * scale, the dot summed over d in
//    order in float, as the ref (so the scores are the ref's bit for bit);
//    -inf past pos[t];
//  - the chunk max (warp max) gives the running max m' = max(m, chunk max);
//    weights e_j = exp_gpu(s_j - m'), their warp sum in double; the running
//    sum l (double) and the lane's output accumulators are scaled by
//    alpha = exp_gpu(m - m') (exactly 1 when the max did not grow; 0 on the
//    first chunk);
//  - for each position j of the chunk in order, e_j broadcast from lane j
//    (__shfl_sync), o += e_j * v[c + j] on the lane's dims: 2 lane + 64 i and
//    the next, i < head_dim / 64 (a warp reads a V row's 128 bytes per i);
//  - out = o * float(1 / l).
// Not the ref's order (libm expf, one max, weights normalised before the V
// sum): within |gpu - ref| <= 1e-6 (1 + A) max|v| per element, the CPU fast
// attention's bound (docs/ukernels.md, docs/cuda.md).
TERN_GPU_FN bool attn_work(const AttnF16Params &p, const Thread &th, int64_t *t, int64_t *h) {
  const int64_t w = warp_global(th);
  *t = w / p.nHeads;
  *h = w % p.nHeads;
  return *t < p.n;
}
TERN_GPU_FN int64_t attn_kv_head(const AttnF16Params &p, int64_t h) {
  return h / (p.nHeads / p.nKvHeads);
}
// Eight halves at a 16-byte aligned address (headDim % 64 == 0 keeps every
// K row of a head 16-byte aligned): one ld.v4 on the GPU.
TERN_GPU_FN void load_8h(const uint16_t *src, uint32_t *w) {
#if defined(__CUDA__) && defined(__CUDA_ARCH__)
  typedef unsigned int u32x4 __attribute__((ext_vector_type(4)));
  const u32x4 v = *reinterpret_cast<const u32x4 *>(src);
  w[0] = v.x;
  w[1] = v.y;
  w[2] = v.z;
  w[3] = v.w;
#else
  __builtin_memcpy(w, src, 16);
#endif
}
// The lane functions take P = head_dim / 64 as a template parameter (the
// entries dispatch on it): loops of constant trip count, accumulators in
// registers.
template <int P>
TERN_GPU_FN float attn_lane_score(const AttnF16Params &p, int64_t t, int64_t h, int64_t ps) {
  if (ps > p.pos[t])
    return -__builtin_inff();
  const uint16_t *kr = attn_kv_row(p, p.seq[t], ps, false) + attn_kv_head(p, h) * p.headDim;
  const float *qv = p.q + (t * p.nHeads + h) * p.headDim;
  float dot = 0.0f;
  for (int d = 0; d < 64 * P; d += 8) {
    uint32_t w[4];
    load_8h(kr + d, w);
    TERN_GPU_UNROLL
    for (int i = 0; i < 4; ++i) {
      dot = dot + qv[d + 2 * i] * f16_to_f32(uint16_t(w[i]));
      dot = dot + qv[d + 2 * i + 1] * f16_to_f32(uint16_t(w[i] >> 16));
    }
  }
  return dot * p.scale;
}
TERN_GPU_FN float attn_max(float m, float chunkMax) { return m < chunkMax ? chunkMax : m; }
TERN_GPU_FN float attn_weight(float s, float m) { return exp_gpu(s - m); }
template <int P> TERN_GPU_FN void attn_lane_rescale(float *o, float alpha) {
  TERN_GPU_UNROLL
  for (int i = 0; i < 2 * P; ++i)
    o[i] = o[i] * alpha;
}
template <int P>
TERN_GPU_FN void attn_lane_add_v(const AttnF16Params &p, int64_t t, int64_t h, int64_t ps, int lane,
                                 float e, float *o) {
  const uint16_t *vr = attn_kv_row(p, p.seq[t], ps, true) + attn_kv_head(p, h) * p.headDim;
  TERN_GPU_UNROLL
  for (int i = 0; i < P; ++i) {
    const uint32_t two = load_u32(vr + 64 * i + 2 * lane);
    o[2 * i] = o[2 * i] + e * f16_to_f32(uint16_t(two));
    o[2 * i + 1] = o[2 * i + 1] + e * f16_to_f32(uint16_t(two >> 16));
  }
}
template <int P>
TERN_GPU_FN void attn_lane_store(const AttnF16Params &p, int64_t t, int64_t h, int lane,
                                 const float *o, double l) {
  const float inv = float(1.0 / l);
  float *out = p.out + (t * p.nHeads + h) * p.headDim;
  TERN_GPU_UNROLL
  for (int i = 0; i < P; ++i) {
    out[64 * i + 2 * lane] = o[2 * i] * inv;
    out[64 * i + 2 * lane + 1] = o[2 * i + 1] * inv;
  }
}

// ---- the split attention: one block of 4 warps per (token, head) ----
// tern_gpu_attention_gqa_f16_split (planAttentionF16Split), the same
// AttnF16Params, launched after tern_gpu_kv_store_f16 like the one-warp
// kernel. Flash-decoding inside a block: block b = (token b / nHeads, head
// b % nHeads); warp w of the block runs the one-warp kernel's chunk loop
// (chunks of kAttnChunk positions, the same functions above) over the chunks
// c = kAttnChunk * (w + kAttnSplitWarps * i) only, keeping its own running
// max m_w, sum l_w (double) and f32 accumulators o_w; publishes them to
// shared memory (attn_split_lane_publish); __syncthreads; then warp 0
// combines the non-empty warps in the fixed order w = 0, 1, 2, 3
// (attn_split_lane_combine):
//   M = max_w m_w, f_w = exp_gpu(m_w - M), l = sum_w l_w f_w,
//   o = sum_w o_w f_w, out = o * float(1 / l).
// Warp w is empty (skipped) when kAttnChunk * w > pos[t]; so for pos[t] <
// kAttnChunk only warp 0 contributes, f_0 = exp_gpu(0) = 1 exactly, and the
// output is the one-warp kernel's bit for bit (tested): the launcher may pick
// either kernel for a call whose every position is < kAttnChunk without a
// token's bits depending on the call. A block's arithmetic depends only on
// its token's q, position and sequence: batch- and grid-invariant, the same
// bits run to run (fixed order everywhere, no atomics).
constexpr int kAttnChunk = kWarp;               // positions per chunk, both kernels
constexpr int kAttnSplitWarps = kWarpsPerBlock; // warps per (token, head)
// The launchers' choice (tern_uk_attention_gqa_f16_cuda, host code reading
// the call's host positions): the split kernel once a position of the call
// is >= kAttnSplitMinPos, the one-warp kernel below that. For positions
// below kAttnChunk both kernels give the same bits (above), so the per-call
// choice cannot make a token's result depend on the other tokens of its
// call (a higher threshold could).
constexpr int32_t kAttnSplitMinPos = kAttnChunk;
TERN_GPU_FN bool attn_use_split(int64_t n, const int32_t *pos) {
  for (int64_t t = 0; t < n; ++t)
    if (pos[t] >= kAttnSplitMinPos)
      return true;
  return false;
}
struct AttnSplitShared {
  double l[kAttnSplitWarps];                 // running sums
  float m[kAttnSplitWarps];                  // running maxima
  float o[kAttnSplitWarps][kAttnMaxHeadDim]; // accumulators, head dims in order
};
static_assert(sizeof(AttnSplitShared) <= 48 * 1024, "static shared memory limit");

// Block b -> (token, head); false past the call's tokens (the whole block
// returns before its barrier).
TERN_GPU_FN bool attn_split_work(const AttnF16Params &p, const Thread &th, int64_t *t, int64_t *h) {
  const int64_t b = int64_t(th.blockX);
  *t = b / p.nHeads;
  *h = b % p.nHeads;
  return *t < p.n;
}
TERN_GPU_FN int attn_split_warp(const Thread &th) { return int(th.threadX / kWarp); }
// Warps holding at least one chunk of token t's positions 0..pos[t].
TERN_GPU_FN int attn_split_busy_warps(const AttnF16Params &p, int64_t t) {
  const int64_t chunks = (int64_t(p.pos[t]) + kAttnChunk) / kAttnChunk;
  return chunks < kAttnSplitWarps ? int(chunks) : kAttnSplitWarps;
}
// Warp w's state into shared memory: every lane its dims, lane 0 m and l.
template <int P>
TERN_GPU_FN void attn_split_lane_publish(AttnSplitShared &sh, int w, int lane, float m, double l,
                                         const float *o) {
  TERN_GPU_UNROLL
  for (int i = 0; i < P; ++i) {
    sh.o[w][64 * i + 2 * lane] = o[2 * i];
    sh.o[w][64 * i + 2 * lane + 1] = o[2 * i + 1];
  }
  if (lane == 0) {
    sh.m[w] = m;
    sh.l[w] = l;
  }
}
// After the barrier, warp 0's lane `lane`: the fixed-order combine, then the
// one-warp kernel's store.
template <int P>
TERN_GPU_FN void attn_split_lane_combine(const AttnF16Params &p, int64_t t, int64_t h, int lane,
                                         const AttnSplitShared &sh) {
  const int nw = attn_split_busy_warps(p, t);
  float mx = sh.m[0];
  for (int w = 1; w < nw; ++w)
    mx = attn_max(mx, sh.m[w]);
  float f = attn_weight(sh.m[0], mx), o[2 * P];
  double l = sh.l[0] * double(f);
  TERN_GPU_UNROLL
  for (int i = 0; i < P; ++i) {
    o[2 * i] = sh.o[0][64 * i + 2 * lane] * f;
    o[2 * i + 1] = sh.o[0][64 * i + 2 * lane + 1] * f;
  }
  for (int w = 1; w < nw; ++w) {
    f = attn_weight(sh.m[w], mx);
    l = l + sh.l[w] * double(f);
    TERN_GPU_UNROLL
    for (int i = 0; i < P; ++i) {
      o[2 * i] = o[2 * i] + sh.o[w][64 * i + 2 * lane] * f;
      o[2 * i + 1] = o[2 * i + 1] + sh.o[w][64 * i + 2 * lane + 1] * f;
    }
  }
  attn_lane_store<P>(p, t, h, lane, o, l);
}

} // namespace tern::cuda
