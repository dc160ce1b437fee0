// Host emulation of the launch grid of kernels.h's kernels (tests only).
//
// Runs every block of a launch one after another and, inside a block, every
// warp's 32 lanes in turn, calling the same per-lane and finish functions as
// the GPU entries (kernels.cu). Emulated warp-level operations, and their
// scope: only full-warp (mask 0xffffffff) butterfly reductions -- sum and max
// by __shfl_xor_sync with offsets 16, 8, 4, 2, 1 -- reproduced in that order
// (lane l combines its value with lane l ^ off's), so float sums come out
// bit-identical with the GPU's; and the full-warp broadcast of one lane's
// value (__shfl_sync idx: the attention's weights). Nothing else (no shared memory, barriers,
// divergence or memory-ordering effects) is emulated: the kernels use none.
#pragma once

#include <cstdint>

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
template <int P> void attention_warp(const AttnF16Params &p, int64_t t, int64_t h) {
  const int64_t np = int64_t(p.pos[t]) + 1;
  float m = -__builtin_inff(), o[kWarp][2 * P] = {};
  double l = 0.0;
  for (int64_t c = 0; c < np; c += kWarp) {
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
    const int nj = np - c < kWarp ? int(np - c) : kWarp;
    for (int j = 0; j < nj; ++j)
      for (int lane = 0; lane < kWarp; ++lane)
        attn_lane_add_v<P>(p, t, h, c + j, lane, e[j], o[lane]);
    m = mn;
  }
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

} // namespace tern::cuda::emulate
