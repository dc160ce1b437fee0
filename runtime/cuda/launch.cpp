#include "runtime/cuda/launch.h"

#include "fmt/format.h"
#include "runtime/cuda/kernels.h"

namespace tern::cuda {

std::string LaunchDims::describe() const {
  if (!ok())
    return "error: " + error;
  return fmt::format("grid=({},{}) block={}", gridX, gridY, blockX);
}

namespace {

LaunchDims fail(std::string why) {
  LaunchDims d;
  d.error = std::move(why);
  return d;
}

// One warp per row, kWarpsPerBlock rows per block, kTokenTile tokens per
// blockIdx.y.
LaunchDims warpPerRow(int64_t n, int64_t rows) {
  LaunchDims d;
  d.blockX = kBlockThreads;
  const int64_t gx = (rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
  const int64_t gy = (n + kTokenTile - 1) / kTokenTile;
  if (gx > kMaxGridX || gy > kMaxGridY)
    return fail(fmt::format("{} rows x {} tokens exceed the grid limits", rows, n));
  d.gridX = uint32_t(gx);
  d.gridY = uint32_t(gy);
  return d;
}

} // namespace

LaunchDims planMatmulI2s(int64_t n, int64_t m, int64_t k, int64_t tileM, int64_t tileK) {
  if (n < 1 || m < 1 || k < 1)
    return fail(fmt::format("empty matmul (n={}, m={}, k={})", n, m, k));
  if (k % 128 != 0)
    return fail(fmt::format("k={} is not a multiple of 128 (the GPU i2s kernel reads whole "
                            "128-column blocks)",
                            k));
  if (tileM < 1 || tileK < 128 || tileK % 128 != 0)
    return fail(fmt::format("i2s tile {}x{}: tile_k must be a multiple of 128", tileM, tileK));
  return warpPerRow(n, m);
}

LaunchDims planMatmulI2sMma(int64_t n, int64_t m, int64_t k, int64_t tileM, int64_t tileK) {
  LaunchDims d = planMatmulI2s(1, 1, k, tileM, tileK); // the shape checks of the dp4a kernel
  if (n < 1 || m < 1 || k < 1)
    return fail(fmt::format("empty matmul (n={}, m={}, k={})", n, m, k));
  if (!d.ok())
    return d;
  constexpr int64_t rowsPerBlock = int64_t(kWarpsPerBlock) * kMmaWarpRows;
  const int64_t gx = (m + rowsPerBlock - 1) / rowsPerBlock;
  const int64_t gy = (n + kMmaWarpTokens - 1) / kMmaWarpTokens;
  if (gx > kMaxGridX || gy > kMaxGridY)
    return fail(fmt::format("{} rows x {} tokens exceed the grid limits of the mma matmul", m, n));
  d.blockX = kBlockThreads;
  d.gridX = uint32_t(gx);
  d.gridY = uint32_t(gy);
  return d;
}

LaunchDims planLmHead(int64_t n, int64_t vocab, int64_t hidden) {
  if (n < 1 || vocab < 1 || hidden < 1)
    return fail(fmt::format("empty lm_head (n={}, vocab={}, hidden={})", n, vocab, hidden));
  if (hidden % 2 != 0)
    return fail(fmt::format("hidden={} is odd (the GPU lm_head reads f16 pairs)", hidden));
  return warpPerRow(n, vocab);
}

LaunchDims planRmsNormQuantize(int64_t n, int64_t dim) {
  if (n < 1 || dim < 1)
    return fail(fmt::format("empty rms_norm (n={}, dim={})", n, dim));
  LaunchDims d;
  d.blockX = kBlockThreads;
  const int64_t gx = (n + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (gx > kMaxGridX)
    return fail(fmt::format("{} tokens exceed the grid limits", n));
  d.gridX = uint32_t(gx);
  return d;
}

LaunchDims planElementwise(int64_t n, int64_t dim) {
  if (n < 1 || dim < 1)
    return fail(fmt::format("empty elementwise op (n={}, dim={})", n, dim));
  constexpr int64_t kThreads = 256;
  LaunchDims d;
  d.blockX = kThreads;
  const int64_t gx = (n * dim + kThreads - 1) / kThreads;
  if (gx > kMaxGridX)
    return fail(fmt::format("{} elements exceed the grid limits", n * dim));
  d.gridX = uint32_t(gx);
  return d;
}

LaunchDims planKvStoreF16(int64_t n, int64_t kvDim) {
  if (n < 1 || kvDim < 1)
    return fail(fmt::format("empty K/V store (n={}, kv_dim={})", n, kvDim));
  return planElementwise(n, kvDim);
}

namespace {
// The shape checks of both attention kernels; "" when they can run it.
std::string attentionShapeError(int64_t n, int64_t nHeads, int64_t nKvHeads, int64_t headDim) {
  if (n < 1 || nHeads < 1 || nKvHeads < 1 || headDim < 1)
    return (fmt::format("empty attention (n={}, n_heads={}, n_kv_heads={}, head_dim={})", n, nHeads,
                        nKvHeads, headDim));
  if (nHeads % nKvHeads != 0)
    return (fmt::format("n_heads={} is not a multiple of n_kv_heads={}", nHeads, nKvHeads));
  if (headDim % 64 != 0 || headDim > kAttnMaxHeadDim)
    return (fmt::format("head_dim={} is not a multiple of 64 up to {} (a lane of the GPU "
                        "attention holds 2 dims of every 64)",
                        headDim, kAttnMaxHeadDim));
  return "";
}
} // namespace

LaunchDims planAttentionF16(int64_t n, int64_t nHeads, int64_t nKvHeads, int64_t headDim) {
  if (std::string e = attentionShapeError(n, nHeads, nKvHeads, headDim); !e.empty())
    return fail(std::move(e));
  LaunchDims d; // one warp per (token, head), kWarpsPerBlock per block
  d.blockX = kBlockThreads;
  const int64_t gx = (n * nHeads + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (gx > kMaxGridX)
    return fail(fmt::format("{} tokens x {} heads exceed the grid limits", n, nHeads));
  d.gridX = uint32_t(gx);
  return d;
}

LaunchDims planAttentionF16Split(int64_t n, int64_t nHeads, int64_t nKvHeads, int64_t headDim) {
  if (std::string e = attentionShapeError(n, nHeads, nKvHeads, headDim); !e.empty())
    return fail(std::move(e));
  LaunchDims d; // one block of kAttnSplitWarps warps per (token, head)
  d.blockX = kAttnSplitWarps * kWarp;
  if (n > kMaxGridX / nHeads)
    return fail(fmt::format("{} tokens x {} heads exceed the grid limits", n, nHeads));
  d.gridX = uint32_t(n * nHeads);
  return d;
}

LaunchDims planGatherRows(int64_t nOut, int64_t rowBytes) {
  if (rowBytes % 4 != 0)
    return fail(fmt::format("gather row of {} bytes is not whole 32-bit words", rowBytes));
  return planElementwise(nOut, rowBytes / 4);
}

} // namespace tern::cuda
