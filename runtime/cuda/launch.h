// Launch plans of the cuda targets' kernels (kernels.h): grid and block
// sizes for a call's shapes, or the reason the kernel cannot run them. Plain
// C++ (no CUDA, no MLIR): used by ternc's --emit=ptx listing, the tests and
// (later) the runtime's CUDA backend.
#pragma once

#include <cstdint>
#include <string>

namespace tern::cuda {

struct LaunchDims {
  uint32_t gridX = 0, gridY = 1, blockX = 0;
  std::string error; // non-empty: the kernel cannot run these shapes
  bool ok() const { return error.empty(); }
  std::string describe() const; // "grid=(X,Y) block=B" or the error
};

// CUDA's limits the plans respect (every sm_80+ GPU).
constexpr int64_t kMaxGridX = 2147483647, kMaxGridY = 65535;

// Ternary matmul, i2s, int8 activations: one warp per output row, 4 rows per
// block, kTokenTile tokens per blockIdx.y. Needs k % 128 == 0.
LaunchDims planMatmulI2s(int64_t n, int64_t m, int64_t k, int64_t tileM, int64_t tileK);
// The same on the int8 tensor cores (tern_gpu_matmul_i2s_i8_mma, kernels.h):
// one warp per kMmaWarpRows rows x kMmaWarpTokens tokens, 4 warps per block
// along the rows, no shared memory. Needs k % 128 == 0 and the same tiles;
// the launchers choose it for n >= kMmaMinTokens (it runs any n >= 1).
LaunchDims planMatmulI2sMma(int64_t n, int64_t m, int64_t k, int64_t tileM, int64_t tileK);
// lm_head f16: one warp per vocab row, as the matmul. Needs hidden % 2 == 0.
LaunchDims planLmHead(int64_t n, int64_t vocab, int64_t hidden);
// rms_norm + quantize, quantize: one warp per token.
LaunchDims planRmsNormQuantize(int64_t n, int64_t dim);
// add, relu2_mul, silu_mul, embed: one thread per element of [n][dim]; rope:
// dim = rope_threads_per_token.
LaunchDims planElementwise(int64_t n, int64_t dim);
// Attention over the f16 paged KV cache, two launches (kernels.h): the K/V
// store, one thread per element of [n][kvDim]; then the attention, one warp
// per (token, query head), 4 per block. Needs n_heads % n_kv_heads == 0 and
// head_dim % 64 == 0, head_dim <= 256 (a lane holds 2 dims per 64).
LaunchDims planKvStoreF16(int64_t n, int64_t kvDim);
LaunchDims planAttentionF16(int64_t n, int64_t nHeads, int64_t nKvHeads, int64_t headDim);
// The split attention (tern_gpu_attention_gqa_f16_split, kernels.h): one
// block of kAttnSplitWarps warps per (token, head), grid n * n_heads, 4144 B
// of static shared memory (AttnSplitShared; no dynamic shared memory). The
// same shape checks. The launcher picks it when a position of the call is
// >= kAttnSplitMinPos (attn_use_split).
LaunchDims planAttentionF16Split(int64_t n, int64_t nHeads, int64_t nKvHeads, int64_t headDim);
// gather_rows: one thread per 32-bit word of the n_out rows. Needs
// rowBytes % 4 == 0.
LaunchDims planGatherRows(int64_t nOut, int64_t rowBytes);

} // namespace tern::cuda
