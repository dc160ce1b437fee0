// Host emulation of the launch grid of kernels.h's kernels (tests only).
//
// Runs every block of a launch one after another and, inside a block, every
// warp's 32 lanes in turn, calling the same per-lane and finish functions as
// the GPU entries (kernels.cu). Emulated warp-level operations, and their
// scope: only full-warp (mask 0xffffffff) butterfly reductions -- sum and max
// by __shfl_xor_sync with offsets 16, 8, 4, 2, 1 -- reproduced in that order
// (lane l combines its value with lane l ^ off's), so float sums come out
// bit-identical with the GPU's; and the full-warp broadcast of one lane's
// value (__shfl_sync idx: the attention's weights); and the warp-wide int8
// tensor-core product mma.sync m16n8k32 s8 (mma_m16n8k32_s8: the PTX ISA's
// fragment layout, exact int32 arithmetic). At block level, for the split
// attention only: whole-block barriers between phases that communicate
// through shared memory (for_each_block_phased, below, with its scope).
// Nothing else (no divergence or memory-ordering effects, no shared-memory
// atomics) is emulated: the kernels use none.
#pragma once

#include <cstdint>
#include <cstring>

#include "runtime/cuda/kernels.h"
#include "runtime/cuda/launch.h"

namespace tern::cuda::emulate {

template <class T, class Op> void warp_butterfly(T (&v)[kWarp], Op op) {
  for (int off = kWarp / 2; off > 0; off /= 2) {
    T next[kWarp];
    for (int l = 0; l < kWarp; ++l)
      next[l] = op(v[l], v[l ^ off]);
    for (int l = 0; l < kWarp; ++l)
      v[l] = next[l];
  }
}

// Calls body(Thread) for every warp (lane 0's coordinates) of the grid.
template <class Body> void for_each_warp(const LaunchDims &d, Body body) {
  for (uint32_t by = 0; by < d.gridY; ++by)
    for (uint32_t bx = 0; bx < d.gridX; ++bx)
      for (uint32_t w = 0; w < d.blockX / kWarp; ++w)
        body(Thread{bx, by, w * kWarp, d.blockX});
}
template <class Body> void for_each_thread(const LaunchDims &d, Body body) {
  for (uint32_t by = 0; by < d.gridY; ++by)
    for (uint32_t bx = 0; bx < d.gridX; ++bx)
      for (uint32_t t = 0; t < d.blockX; ++t)
        body(Thread{bx, by, t, d.blockX});
}

inline void matmul_i2s_i8(const LaunchDims &d, const I2sParams &p) {
  for_each_warp(d, [&](Thread th) {
    int64_t row, t0;
    int nt;
    if (!i2s_work(p, th, &row, &t0, &nt))
      return;
    int32_t acc[kTokenTile][kWarp], sa[kTokenTile][kWarp];
    for (int lane = 0; lane < kWarp; ++lane) {
      int32_t a[kTokenTile], s[kTokenTile];
      i2s_lane(p, row, t0, nt, lane, a, s);
      for (int t = 0; t < kTokenTile; ++t) {
        acc[t][lane] = a[t];
        sa[t][lane] = s[t];
      }
    }
    int32_t a0[kTokenTile], s0[kTokenTile];
    for (int t = 0; t < kTokenTile; ++t) {
      warp_butterfly(acc[t], [](int32_t x, int32_t y) { return x + y; });
      warp_butterfly(sa[t], [](int32_t x, int32_t y) { return x + y; });
      a0[t] = acc[t][0];
      s0[t] = sa[t][0];
    }
    i2s_finish(p, row, t0, nt, a0, s0);
  });
}

// mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 over a warp: d = a * b + c
// with the operands held as the PTX ISA's fragments (kernels.h lists the
// layout: lane l, g = l >> 2, i = l & 3). The 32 lanes' registers are
// scattered into A [16][32], B [32][8] and C [16][8] by the documented
// layout, multiplied exactly in int32, and D gathered back the same way;
// so a kernel whose fragment index arithmetic disagrees with the layout
// computes wrong products here, as it would on the GPU. Scope: the
// arithmetic and the register layout of this one shape and type; not the
// instruction's timing, its .aligned/.sync requirements (the kernel keeps
// the whole warp converged) or any other mma shape.
inline void mma_m16n8k32_s8(const uint32_t (&a)[kWarp][4], const uint32_t (&b)[kWarp][2],
                            int32_t (&c)[kWarp][4]) {
  int32_t A[16][32], B[32][8], C[16][8];
  auto s8 = [](uint32_t r, int byte) { return int32_t(int8_t(uint8_t(r >> (8 * byte)))); };
  for (int lane = 0; lane < kWarp; ++lane) {
    const int g = lane >> 2, i = lane & 3;
    for (int e = 0; e < 16; ++e) { // a_e: register e / 4, byte e % 4
      const int row = g + ((e < 4 || (e >= 8 && e < 12)) ? 0 : 8);
      const int col = 4 * i + (e & 3) + (e >= 8 ? 16 : 0);
      A[row][col] = s8(a[lane][e / 4], e % 4);
    }
    for (int e = 0; e < 8; ++e) { // b_e
      const int row = 4 * i + (e & 3) + (e >= 4 ? 16 : 0);
      B[row][g] = s8(b[lane][e / 4], e % 4);
    }
    for (int e = 0; e < 4; ++e) // c_e
      C[g + (e >= 2 ? 8 : 0)][2 * i + (e & 1)] = c[lane][e];
  }
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 8; ++n) {
      int32_t sum = C[r][n];
      for (int kk = 0; kk < 32; ++kk)
        sum += A[r][kk] * B[kk][n];
      C[r][n] = sum;
    }
  for (int lane = 0; lane < kWarp; ++lane) {
    const int g = lane >> 2, i = lane & 3;
    for (int e = 0; e < 4; ++e)
      c[lane][e] = C[g + (e >= 2 ? 8 : 0)][2 * i + (e & 1)];
  }
}

// tern_gpu_matmul_i2s_i8_mma (kernels.cu) with the warp's loop run lane by
// lane and each mma.sync by mma_m16n8k32_s8.
inline void matmul_i2s_i8_mma(const LaunchDims &d, const I2sParams &p) {
  for_each_warp(d, [&](Thread th) {
    int64_t row0, t0;
    if (!i2s_mma_work(p, th, &row0, &t0))
      return;
    int32_t c[kMmaRowTiles][kMmaTokenTiles][kWarp][4] = {};
    for (int64_t blk = 0; blk < p.k / 128; ++blk) {
      uint32_t w[kWarp][kMmaRowTiles][4];
      for (int lane = 0; lane < kWarp; ++lane)
        i2s_mma_lane_words(p, row0, blk, lane, w[lane]);
      for (int s = 0; s < 4; ++s) {
        uint32_t b[kWarp][kMmaTokenTiles][2];
        for (int lane = 0; lane < kWarp; ++lane)
          i2s_mma_lane_b(p, t0, blk * 128 + 32 * s, lane, b[lane]);
        for (int mt = 0; mt < kMmaRowTiles; ++mt) {
          uint32_t a[kWarp][4];
          for (int lane = 0; lane < kWarp; ++lane)
            for (int r = 0; r < 4; ++r)
              a[lane][r] = i2s_mma_a(w[lane][mt][r], s);
          for (int nt = 0; nt < kMmaTokenTiles; ++nt) {
            uint32_t bt[kWarp][2];
            for (int lane = 0; lane < kWarp; ++lane) {
              bt[lane][0] = b[lane][nt][0];
              bt[lane][1] = b[lane][nt][1];
            }
            mma_m16n8k32_s8(a, bt, c[mt][nt]);
          }
        }
      }
    }
    for (int lane = 0; lane < kWarp; ++lane) {
      int32_t cl[kMmaRowTiles][kMmaTokenTiles][4];
      for (int mt = 0; mt < kMmaRowTiles; ++mt)
        for (int nt = 0; nt < kMmaTokenTiles; ++nt)
          for (int e = 0; e < 4; ++e)
            cl[mt][nt][e] = c[mt][nt][lane][e];
      i2s_mma_lane_store(p, row0, t0, lane, cl);
    }
  });
}

inline void lm_head_f16(const LaunchDims &d, const LmHeadParams &p) {
  for_each_warp(d, [&](Thread th) {
    int64_t row, t0;
    int nt;
    if (!lm_head_work(p, th, &row, &t0, &nt))
      return;
    float acc[kTokenTile][kWarp];
    for (int lane = 0; lane < kWarp; ++lane) {
      float a[kTokenTile];
      lm_head_lane(p, row, t0, nt, lane, a);
      for (int t = 0; t < kTokenTile; ++t)
        acc[t][lane] = a[t];
    }
    float a0[kTokenTile];
    for (int t = 0; t < kTokenTile; ++t) {
      warp_butterfly(acc[t], [](float x, float y) { return x + y; });
      a0[t] = acc[t][0];
    }
    lm_head_finish(p, row, t0, nt, a0);
  });
}

inline void rms_norm_quantize_i8(const LaunchDims &d, const RmsQuantParams &p) {
  for_each_warp(d, [&](Thread th) {
    int64_t t;
    if (!rms_work(p, th, &t))
      return;
    double ss[kWarp];
    for (int lane = 0; lane < kWarp; ++lane)
      ss[lane] = rms_lane_squares(p, t, lane);
    warp_butterfly(ss, [](double x, double y) { return x + y; });
    const float s = rms_scale_of(p, ss[0]);
    float amax[kWarp];
    for (int lane = 0; lane < kWarp; ++lane)
      amax[lane] = rms_lane_amax(p, t, lane, s);
    warp_butterfly(amax, [](float x, float y) { return x < y ? y : x; });
    const float qsv = rms_qscale(amax[0]);
    for (int lane = 0; lane < kWarp; ++lane)
      rms_lane_quantize(p, t, lane, s, qsv);
  });
}

inline void rms_norm_f32(const LaunchDims &d, const RmsParams &p) {
  const RmsQuantParams pq = rms_as_quant(p);
  for_each_warp(d, [&](Thread th) {
    int64_t t;
    if (!rms_work(pq, th, &t))
      return;
    double ss[kWarp];
    for (int lane = 0; lane < kWarp; ++lane)
      ss[lane] = rms_lane_squares(pq, t, lane);
    warp_butterfly(ss, [](double x, double y) { return x + y; });
    const float s = rms_scale_of(pq, ss[0]);
    for (int lane = 0; lane < kWarp; ++lane)
      rms_lane_store(p, t, lane, s);
  });
}

inline void quantize_i8(const LaunchDims &d, const QuantParams &p) {
  for_each_warp(d, [&](Thread th) {
    int64_t t;
    if (!quant_work(p, th, &t))
      return;
    float amax[kWarp];
    for (int lane = 0; lane < kWarp; ++lane)
      amax[lane] = quant_lane_amax(p, t, lane);
    warp_butterfly(amax, [](float x, float y) { return x < y ? y : x; });
    const float qsv = rms_qscale(amax[0]);
    for (int lane = 0; lane < kWarp; ++lane)
      quant_lane_store(p, t, lane, qsv);
  });
}

inline void add_f32(const LaunchDims &d, const ElementwiseParams &p) {
  for_each_thread(d, [&](Thread th) { add_thread(p, th); });
}
inline void relu2_mul_f32(const LaunchDims &d, const ElementwiseParams &p) {
  for_each_thread(d, [&](Thread th) { relu2_mul_thread(p, th); });
}
inline void silu_mul_f32(const LaunchDims &d, const ElementwiseParams &p) {
  for_each_thread(d, [&](Thread th) { silu_mul_thread(p, th); });
}
inline void rope_neox_f32(const LaunchDims &d, const RopeParams &p) {
  for_each_thread(d, [&](Thread th) { rope_thread(p, th); });
}
inline void gather_rows(const LaunchDims &d, const GatherParams &p) {
  for_each_thread(d, [&](Thread th) { gather_rows_thread(p, th); });
}
inline void embed_f16(const LaunchDims &d, const EmbedParams &p) {
  for_each_thread(d, [&](Thread th) { embed_f16_thread(p, th); });
}

// The two launches of the f16 attention, in order (kernels.h); lane j's
// weight broadcast to the warp (__shfl_sync idx on the GPU) is e[j].
inline void kv_store_f16(const LaunchDims &d, const AttnF16Params &p) {
  for_each_thread(d, [&](Thread th) { kv_store_f16_thread(p, th); });
}
// The chunk loop of one warp (kernels.cu's attention_chunks), lane by lane:
// chunks c0, c0 + stride, ... of positions 0..pos[t]; m, l and the 32
// lanes' accumulators o carried in and out.
template <int P>
void attention_chunks(const AttnF16Params &p, int64_t t, int64_t h, int64_t c0, int64_t stride,
                      float &m, double &l, float (&o)[kWarp][2 * P]) {
  const int64_t np = int64_t(p.pos[t]) + 1;
  for (int64_t c = c0; c < np; c += stride) {
    float s[kWarp], mx[kWarp], e[kWarp];
    double es[kWarp];
    for (int lane = 0; lane < kWarp; ++lane)
      mx[lane] = s[lane] = attn_lane_score<P>(p, t, h, c + lane);
    warp_butterfly(mx, [](float x, float y) { return x < y ? y : x; });
    const float mn = attn_max(m, mx[0]);
    for (int lane = 0; lane < kWarp; ++lane)
      es[lane] = double(e[lane] = attn_weight(s[lane], mn));
    warp_butterfly(es, [](double x, double y) { return x + y; });
    const float alpha = attn_weight(m, mn);
    l = l * double(alpha) + es[0];
    for (int lane = 0; lane < kWarp; ++lane)
      attn_lane_rescale<P>(o[lane], alpha);
    const int nj = np - c < kAttnChunk ? int(np - c) : kAttnChunk;
    for (int j = 0; j < nj; ++j)
      for (int lane = 0; lane < kWarp; ++lane)
        attn_lane_add_v<P>(p, t, h, c + j, lane, e[j], o[lane]);
    m = mn;
  }
}
template <int P> void attention_warp(const AttnF16Params &p, int64_t t, int64_t h) {
  float m = -__builtin_inff(), o[kWarp][2 * P] = {};
  double l = 0.0;
  attention_chunks<P>(p, t, h, 0, kAttnChunk, m, l, o);
  for (int lane = 0; lane < kWarp; ++lane)
    attn_lane_store<P>(p, t, h, lane, o[lane], l);
}
inline void attention_gqa_f16(const LaunchDims &d, const AttnF16Params &p) {
  for_each_warp(d, [&](Thread th) {
    int64_t t, h;
    if (!attn_work(p, th, &t, &h))
      return;
    switch (p.headDim) {
    case 64:
      return attention_warp<1>(p, t, h);
    case 128:
      return attention_warp<2>(p, t, h);
    case 192:
      return attention_warp<3>(p, t, h);
    case 256:
      return attention_warp<4>(p, t, h);
    default: // refused by planAttentionF16
      return;
    }
  });
}

// ---- block-level emulation (kernels with shared memory and barriers) ----
//
// A kernel written as phases separated by __syncthreads(), whose phases
// communicate only through the block's shared memory S (no per-thread state
// crosses a barrier; each phase recomputes what it needs from the thread's
// coordinates), runs here block by block: a fresh S filled with 0xff bytes
// (NaN in every float and double: a read of shared memory no phase wrote
// shows in the results, as the GPU's uninitialized shared memory would),
// then phase 0 of every warp of the block, then phase 1 of every warp, ...
// -- the barrier's guarantee, nothing more. Within a phase the warps run in
// DESCENDING index order (warp 3 before warp 0), so a phase that read
// another warp's shared data without a barrier in between would read poison
// or stale data instead of the value a lockstep run in index order happens
// to give. Each phase(Thread, S &) is called once per warp with lane 0's
// coordinates and emulates that warp's 32 lanes itself, as for_each_warp's
// bodies do. Scope: barriers over the whole block (__syncthreads) reached by
// every thread (or by none: a block that returns before its first barrier);
// not named barriers, partial-block or conditional barriers, shared-memory
// atomics, bank conflicts or any timing.
template <class S, class... Phase> void for_each_block_phased(const LaunchDims &d, Phase... phase) {
  for (uint32_t by = 0; by < d.gridY; ++by)
    for (uint32_t bx = 0; bx < d.gridX; ++bx) {
      S sh;
      std::memset(static_cast<void *>(&sh), 0xff, sizeof sh);
      auto run = [&](auto &ph) {
        for (uint32_t w = d.blockX / kWarp; w-- > 0;)
          ph(Thread{bx, by, w * kWarp, d.blockX}, sh);
      };
      (run(phase), ...);
    }
}

// tern_gpu_attention_gqa_f16_split: phase 0, each warp's chunks published
// to shared memory; barrier; phase 1, warp 0's combine (kernels.h).
template <int P> void attention_split(const LaunchDims &d, const AttnF16Params &p) {
  for_each_block_phased<AttnSplitShared>(
      d,
      [&](Thread th, AttnSplitShared &sh) {
        int64_t t, h;
        if (!attn_split_work(p, th, &t, &h))
          return;
        const int w = attn_split_warp(th);
        float m = -__builtin_inff(), o[kWarp][2 * P] = {};
        double l = 0.0;
        attention_chunks<P>(p, t, h, int64_t(w) * kAttnChunk, int64_t(kAttnSplitWarps) * kAttnChunk,
                            m, l, o);
        for (int lane = 0; lane < kWarp; ++lane)
          attn_split_lane_publish<P>(sh, w, lane, m, l, o[lane]);
      },
      [&](Thread th, AttnSplitShared &sh) {
        int64_t t, h;
        if (!attn_split_work(p, th, &t, &h) || attn_split_warp(th) != 0)
          return;
        for (int lane = 0; lane < kWarp; ++lane)
          attn_split_lane_combine<P>(p, t, h, lane, sh);
      });
}
inline void attention_gqa_f16_split(const LaunchDims &d, const AttnF16Params &p) {
  switch (p.headDim) {
  case 64:
    return attention_split<1>(d, p);
  case 128:
    return attention_split<2>(d, p);
  case 192:
    return attention_split<3>(d, p);
  case 256:
    return attention_split<4>(d, p);
  default: // refused by planAttentionF16Split
    return;
  }
}

} // namespace tern::cuda::emulate
