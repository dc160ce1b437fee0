// The GPU entry points of kernels.h: compiled by clang's NVPTX backend only
// (runtime/cuda/CMakeLists.txt: -x cuda --cuda-device-only -nocudainc
// -nocudalib, no CUDA headers), to PTX for each cuda target. Each entry reads
// its coordinates, calls the shared body and, where the body has a warp
// reduction, sums over the warp with __shfl_xor_sync's butterfly (the order
// emulate.h reproduces on the host). UNTESTED ON HARDWARE: docs/cuda.md.
#include "runtime/cuda/kernels.h"

#define TERN_GPU_KERNEL extern "C" __attribute__((global)) __attribute__((used))

namespace {

using namespace tern::cuda;

__attribute__((device)) inline Thread thread_here() {
  return Thread{uint32_t(__nvvm_read_ptx_sreg_ctaid_x()), uint32_t(__nvvm_read_ptx_sreg_ctaid_y()),
                uint32_t(__nvvm_read_ptx_sreg_tid_x()), uint32_t(__nvvm_read_ptx_sreg_ntid_x())};
}

__attribute__((device)) inline int32_t warp_sum(int32_t v) {
  for (int off = kWarp / 2; off > 0; off /= 2)
    v += __nvvm_shfl_sync_bfly_i32(0xffffffffu, v, off, 31);
  return v;
}
__attribute__((device)) inline float warp_sum(float v) {
  for (int off = kWarp / 2; off > 0; off /= 2)
    v = v + __nvvm_shfl_sync_bfly_f32(0xffffffffu, v, off, 31);
  return v;
}
__attribute__((device)) inline double warp_sum(double v) {
  for (int off = kWarp / 2; off > 0; off /= 2) {
    const uint64_t bits = __builtin_bit_cast(uint64_t, v);
    const uint32_t lo =
        uint32_t(__nvvm_shfl_sync_bfly_i32(0xffffffffu, int(uint32_t(bits)), off, 31));
    const uint32_t hi =
        uint32_t(__nvvm_shfl_sync_bfly_i32(0xffffffffu, int(uint32_t(bits >> 32)), off, 31));
    v = v + __builtin_bit_cast(double, uint64_t(hi) << 32 | lo);
  }
  return v;
}
__attribute__((device)) inline float warp_max(float v) {
  for (int off = kWarp / 2; off > 0; off /= 2) {
    const float o = __nvvm_shfl_sync_bfly_f32(0xffffffffu, v, off, 31);
    v = v < o ? o : v;
  }
  return v;
}

__attribute__((device)) inline float warp_broadcast(float v, int lane) {
  return __nvvm_shfl_sync_idx_f32(0xffffffffu, v, lane, 31);
}

} // namespace

TERN_GPU_KERNEL void tern_gpu_matmul_i2s_i8(I2sParams p) {
  const Thread th = thread_here();
  int64_t row, t0;
  int nt;
  if (!i2s_work(p, th, &row, &t0, &nt))
    return;
  int32_t acc[kTokenTile], sa[kTokenTile];
  i2s_lane(p, row, t0, nt, lane_of(th), acc, sa);
  for (int t = 0; t < kTokenTile; ++t) {
    acc[t] = warp_sum(acc[t]);
    sa[t] = warp_sum(sa[t]);
  }
  if (lane_of(th) == 0)
    i2s_finish(p, row, t0, nt, acc, sa);
}

// The int8 tensor-core product (kernels.h: fragment layout, exactness):
// d = a * b + c on one m16n8k32 tile, every lane of the warp together.
namespace {
__attribute__((device)) inline void mma_m16n8k32_s8(const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                    int32_t (&c)[4]) {
  asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
               "{%8,%9}, {%0,%1,%2,%3};"
               : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
} // namespace

// Prefill GEMM on the tensor cores (n >= kMmaMinTokens; planMatmulI2sMma).
// The whole warp takes the same path (i2s_mma_work is per warp), as
// mma.sync requires.
TERN_GPU_KERNEL void tern_gpu_matmul_i2s_i8_mma(I2sParams p) {
  const Thread th = thread_here();
  int64_t row0, t0;
  if (!i2s_mma_work(p, th, &row0, &t0))
    return;
  const int lane = lane_of(th);
  int32_t c[kMmaRowTiles][kMmaTokenTiles][4] = {};
  for (int64_t blk = 0; blk < p.k / 128; ++blk) {
    uint32_t w[kMmaRowTiles][4];
    i2s_mma_lane_words(p, row0, blk, lane, w);
    TERN_GPU_UNROLL
    for (int s = 0; s < 4; ++s) {
      uint32_t b[kMmaTokenTiles][2];
      i2s_mma_lane_b(p, t0, blk * 128 + 32 * s, lane, b);
      TERN_GPU_UNROLL
      for (int mt = 0; mt < kMmaRowTiles; ++mt) {
        const uint32_t a[4] = {i2s_mma_a(w[mt][0], s), i2s_mma_a(w[mt][1], s),
                               i2s_mma_a(w[mt][2], s), i2s_mma_a(w[mt][3], s)};
        TERN_GPU_UNROLL
        for (int nt = 0; nt < kMmaTokenTiles; ++nt)
          mma_m16n8k32_s8(a, b[nt], c[mt][nt]);
      }
    }
  }
  i2s_mma_lane_store(p, row0, t0, lane, c);
}

TERN_GPU_KERNEL void tern_gpu_lm_head_f16(LmHeadParams p) {
  const Thread th = thread_here();
  int64_t row, t0;
  int nt;
  if (!lm_head_work(p, th, &row, &t0, &nt))
    return;
  float acc[kTokenTile];
  lm_head_lane(p, row, t0, nt, lane_of(th), acc);
  for (int t = 0; t < kTokenTile; ++t)
    acc[t] = warp_sum(acc[t]);
  if (lane_of(th) == 0)
    lm_head_finish(p, row, t0, nt, acc);
}

TERN_GPU_KERNEL void tern_gpu_rms_norm_quantize_i8(RmsQuantParams p) {
  const Thread th = thread_here();
  int64_t t;
  if (!rms_work(p, th, &t))
    return;
  const int lane = lane_of(th);
  const float s = rms_scale_of(p, warp_sum(rms_lane_squares(p, t, lane)));
  const float qsv = rms_qscale(warp_max(rms_lane_amax(p, t, lane, s)));
  rms_lane_quantize(p, t, lane, s, qsv);
}

TERN_GPU_KERNEL void tern_gpu_rms_norm_f32(RmsParams p) {
  const Thread th = thread_here();
  const RmsQuantParams pq = rms_as_quant(p);
  int64_t t;
  if (!rms_work(pq, th, &t))
    return;
  const int lane = lane_of(th);
  rms_lane_store(p, t, lane, rms_scale_of(pq, warp_sum(rms_lane_squares(pq, t, lane))));
}

TERN_GPU_KERNEL void tern_gpu_quantize_i8(QuantParams p) {
  const Thread th = thread_here();
  int64_t t;
  if (!quant_work(p, th, &t))
    return;
  const int lane = lane_of(th);
  quant_lane_store(p, t, lane, rms_qscale(warp_max(quant_lane_amax(p, t, lane))));
}

TERN_GPU_KERNEL void tern_gpu_add_f32(ElementwiseParams p) { add_thread(p, thread_here()); }
TERN_GPU_KERNEL void tern_gpu_relu2_mul_f32(ElementwiseParams p) {
  relu2_mul_thread(p, thread_here());
}
TERN_GPU_KERNEL void tern_gpu_silu_mul_f32(ElementwiseParams p) {
  silu_mul_thread(p, thread_here());
}
TERN_GPU_KERNEL void tern_gpu_rope_neox_f32(RopeParams p) { rope_thread(p, thread_here()); }
TERN_GPU_KERNEL void tern_gpu_embed_f16(EmbedParams p) { embed_f16_thread(p, thread_here()); }
TERN_GPU_KERNEL void tern_gpu_gather_rows(GatherParams p) { gather_rows_thread(p, thread_here()); }

TERN_GPU_KERNEL void tern_gpu_kv_store_f16(AttnF16Params p) {
  kv_store_f16_thread(p, thread_here());
}

namespace {
// The chunk loop of one warp over the chunks c = c0, c0 + stride, ... of
// positions 0..pos[t] (both attention kernels): the running max m, sum l
// and the lane's accumulators o (kernels.h).
template <int P>
__attribute__((device)) inline __attribute__((always_inline)) void
attention_chunks(const AttnF16Params &p, int64_t t, int64_t h, int lane, int64_t c0, int64_t stride,
                 float &m, double &l, float (&o)[2 * P]) {
  const int64_t np = int64_t(p.pos[t]) + 1;
  for (int64_t c = c0; c < np; c += stride) {
    const float s = attn_lane_score<P>(p, t, h, c + lane);
    const float mn = attn_max(m, warp_max(s));
    const float e = attn_weight(s, mn), alpha = attn_weight(m, mn);
    l = l * double(alpha) + warp_sum(double(e));
    attn_lane_rescale<P>(o, alpha);
    const int nj = np - c < kAttnChunk ? int(np - c) : kAttnChunk;
    for (int j = 0; j < nj; ++j)
      attn_lane_add_v<P>(p, t, h, c + j, lane, warp_broadcast(e, j), o);
    m = mn;
  }
}
template <int P>
__attribute__((device)) inline void attention_warp(const AttnF16Params &p, int64_t t, int64_t h,
                                                   int lane) {
  float m = -__builtin_inff(), o[2 * P] = {};
  double l = 0.0;
  attention_chunks<P>(p, t, h, lane, 0, kAttnChunk, m, l, o);
  attn_lane_store<P>(p, t, h, lane, o, l);
}
// The split kernel's block (kernels.h): warp w's chunks, publish, barrier,
// warp 0 combines. Every thread of the block reaches the barrier (the
// block's (t, h) is uniform; the early return in the entry is per block).
template <int P>
__attribute__((device)) inline void attention_split_block(const AttnF16Params &p, int64_t t,
                                                          int64_t h, int w, int lane,
                                                          AttnSplitShared &sh) {
  float m = -__builtin_inff(), o[2 * P] = {};
  double l = 0.0;
  attention_chunks<P>(p, t, h, lane, int64_t(w) * kAttnChunk, int64_t(kAttnSplitWarps) * kAttnChunk,
                      m, l, o);
  attn_split_lane_publish<P>(sh, w, lane, m, l, o);
  __syncthreads();
  if (w == 0)
    attn_split_lane_combine<P>(p, t, h, lane, sh);
}
} // namespace

// Launched after tern_gpu_kv_store_f16 on the same stream (kernels.h);
// head_dim in {64, 128, 192, 256} (planAttentionF16).
TERN_GPU_KERNEL void tern_gpu_attention_gqa_f16(AttnF16Params p) {
  const Thread th = thread_here();
  int64_t t, h;
  if (!attn_work(p, th, &t, &h))
    return;
  switch (p.headDim) {
  case 64:
    return attention_warp<1>(p, t, h, lane_of(th));
  case 128:
    return attention_warp<2>(p, t, h, lane_of(th));
  case 192:
    return attention_warp<3>(p, t, h, lane_of(th));
  case 256:
    return attention_warp<4>(p, t, h, lane_of(th));
  default: // refused by planAttentionF16
    return;
  }
}

// One block of kAttnSplitWarps warps per (token, head), kAttnSplitWarps *
// kWarp threads (planAttentionF16Split); the launcher's choice once a
// position of the call is >= kAttnChunk (docs/cuda.md).
TERN_GPU_KERNEL void tern_gpu_attention_gqa_f16_split(AttnF16Params p) {
  __attribute__((shared)) AttnSplitShared sh;
  const Thread th = thread_here();
  int64_t t, h;
  if (!attn_split_work(p, th, &t, &h))
    return;
  const int w = attn_split_warp(th), lane = lane_of(th);
  switch (p.headDim) {
  case 64:
    return attention_split_block<1>(p, t, h, w, lane, sh);
  case 128:
    return attention_split_block<2>(p, t, h, w, lane, sh);
  case 192:
    return attention_split_block<3>(p, t, h, w, lane, sh);
  case 256:
    return attention_split_block<4>(p, t, h, w, lane, sh);
  default: // refused by planAttentionF16Split
    return;
  }
}
