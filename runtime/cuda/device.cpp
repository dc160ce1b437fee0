#include "runtime/cuda/device.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "fmt/format.h"
#include "runtime/abi/tern_abi.h"
#include "runtime/cuda/emulate.h"
#include "runtime/cuda/kernels.h"

namespace tern::cuda {

const char *kernelName(int32_t kernel) {
  switch (kernel) {
  case TERN_GPU_MATMUL_I2S_I8:
    return "tern_gpu_matmul_i2s_i8";
  case TERN_GPU_LM_HEAD_F16:
    return "tern_gpu_lm_head_f16";
  case TERN_GPU_RMS_NORM_QUANTIZE_I8:
    return "tern_gpu_rms_norm_quantize_i8";
  case TERN_GPU_RMS_NORM_F32:
    return "tern_gpu_rms_norm_f32";
  case TERN_GPU_QUANTIZE_I8:
    return "tern_gpu_quantize_i8";
  case TERN_GPU_ADD_F32:
    return "tern_gpu_add_f32";
  case TERN_GPU_RELU2_MUL_F32:
    return "tern_gpu_relu2_mul_f32";
  case TERN_GPU_SILU_MUL_F32:
    return "tern_gpu_silu_mul_f32";
  case TERN_GPU_ROPE_NEOX_F32:
    return "tern_gpu_rope_neox_f32";
  case TERN_GPU_EMBED_F16:
    return "tern_gpu_embed_f16";
  case TERN_GPU_GATHER_ROWS:
    return "tern_gpu_gather_rows";
  case TERN_GPU_KV_STORE_F16:
    return "tern_gpu_kv_store_f16";
  case TERN_GPU_ATTENTION_GQA_F16:
    return "tern_gpu_attention_gqa_f16";
  case TERN_GPU_MATMUL_I2S_I8_MMA:
    return "tern_gpu_matmul_i2s_i8_mma";
  default:
    return nullptr;
  }
}

namespace {

LaunchDims failDims(std::string why) {
  LaunchDims d;
  d.error = std::move(why);
  return d;
}

// The parameter struct of each kernel id.
template <class F> auto withParams(int32_t kernel, const void *params, F f) {
  switch (kernel) {
  case TERN_GPU_MATMUL_I2S_I8:
  case TERN_GPU_MATMUL_I2S_I8_MMA:
    return f(*static_cast<const I2sParams *>(params));
  case TERN_GPU_LM_HEAD_F16:
    return f(*static_cast<const LmHeadParams *>(params));
  case TERN_GPU_RMS_NORM_QUANTIZE_I8:
    return f(*static_cast<const RmsQuantParams *>(params));
  case TERN_GPU_RMS_NORM_F32:
    return f(*static_cast<const RmsParams *>(params));
  case TERN_GPU_QUANTIZE_I8:
    return f(*static_cast<const QuantParams *>(params));
  case TERN_GPU_ADD_F32:
  case TERN_GPU_RELU2_MUL_F32:
  case TERN_GPU_SILU_MUL_F32:
    return f(*static_cast<const ElementwiseParams *>(params));
  case TERN_GPU_ROPE_NEOX_F32:
    return f(*static_cast<const RopeParams *>(params));
  case TERN_GPU_EMBED_F16:
    return f(*static_cast<const EmbedParams *>(params));
  case TERN_GPU_GATHER_ROWS:
    return f(*static_cast<const GatherParams *>(params));
  default: // TERN_GPU_KV_STORE_F16, TERN_GPU_ATTENTION_GQA_F16
    return f(*static_cast<const AttnF16Params *>(params));
  }
}

} // namespace

LaunchDims planKernel(int32_t kernel, const void *params, uint64_t bytes) {
  if (!kernelName(kernel))
    return failDims(fmt::format("unknown GPU kernel id {}", kernel));
  const char *name = kernelName(kernel);
  return withParams(kernel, params, [&](const auto &p) -> LaunchDims {
    if (bytes != sizeof p)
      return failDims(fmt::format("{}: parameters of {} bytes, expected {} (code built for "
                                  "another kernels.h?)",
                                  name, bytes, sizeof p));
    using P = std::decay_t<decltype(p)>;
    if constexpr (std::is_same_v<P, I2sParams>) {
      if (kernel == TERN_GPU_MATMUL_I2S_I8_MMA)
        return planMatmulI2sMma(p.n, p.m, p.k, p.tileM, p.tileK);
      return planMatmulI2s(p.n, p.m, p.k, p.tileM, p.tileK);
    } else if constexpr (std::is_same_v<P, LmHeadParams>) {
      return planLmHead(p.n, p.vocab, p.hidden);
    } else if constexpr (std::is_same_v<P, RmsQuantParams> || std::is_same_v<P, RmsParams> ||
                         std::is_same_v<P, QuantParams>) {
      return planRmsNormQuantize(p.n, p.dim);
    } else if constexpr (std::is_same_v<P, ElementwiseParams>) {
      return planElementwise(1, p.count);
    } else if constexpr (std::is_same_v<P, RopeParams>) {
      return planElementwise(p.n, rope_threads_per_token(p));
    } else if constexpr (std::is_same_v<P, EmbedParams>) {
      return planElementwise(p.n, p.hidden);
    } else if constexpr (std::is_same_v<P, GatherParams>) {
      return planGatherRows(p.nOut, p.rowBytes);
    } else {
      if (kernel == TERN_GPU_KV_STORE_F16)
        return planKvStoreF16(p.n, p.nKvHeads * p.headDim);
      return planAttentionF16(p.n, p.nHeads, p.nKvHeads, p.headDim);
    }
  });
}

namespace {

// Host memory standing for device memory; launches run emulate.h.
class EmulatedDevice final : public Device {
public:
  std::string describe() const override {
    return "cuda-emulated (host memory; the GPU kernels' code run by the launch-grid emulation)";
  }
  bool emulated() const override { return true; }
  absl::StatusOr<void *> alloc(uint64_t bytes) override {
    void *p = ::operator new[](size_t(bytes ? bytes : 1), std::align_val_t(256), std::nothrow);
    if (!p)
      return absl::ResourceExhaustedError(
          fmt::format("cuda-emulated: cannot allocate {} MiB", bytes >> 20));
    std::memset(p, 0, size_t(bytes));
    return p;
  }
  void release(void *p) override {
    if (p)
      ::operator delete[](p, std::align_val_t(256));
  }
  absl::Status upload(void *dst, const void *src, uint64_t bytes) override {
    std::memcpy(dst, src, size_t(bytes));
    return absl::OkStatus();
  }
  absl::Status download(void *dst, const void *src, uint64_t bytes) override {
    std::memcpy(dst, src, size_t(bytes));
    return absl::OkStatus();
  }
  absl::Status copy(void *dst, const void *src, uint64_t bytes) override {
    std::memmove(dst, src, size_t(bytes));
    return absl::OkStatus();
  }
  absl::Status loadKernels(const GpuCode &code) override {
    if (code.ptx.empty())
      return absl::InvalidArgumentError("cuda-emulated: the artifact carries no PTX");
    return absl::OkStatus();
  }
  absl::Status launch(int32_t kernel, const LaunchDims &d, const void *params,
                      uint64_t bytes) override {
    if (!kernelName(kernel) || !d.ok())
      return absl::InvalidArgumentError(
          fmt::format("cuda-emulated: cannot launch kernel {}: {}", kernel, d.describe()));
    (void)bytes; // checked by planKernel
    switch (kernel) {
    case TERN_GPU_MATMUL_I2S_I8:
      emulate::matmul_i2s_i8(d, *static_cast<const I2sParams *>(params));
      break;
    case TERN_GPU_LM_HEAD_F16:
      emulate::lm_head_f16(d, *static_cast<const LmHeadParams *>(params));
      break;
    case TERN_GPU_RMS_NORM_QUANTIZE_I8:
      emulate::rms_norm_quantize_i8(d, *static_cast<const RmsQuantParams *>(params));
      break;
    case TERN_GPU_RMS_NORM_F32:
      emulate::rms_norm_f32(d, *static_cast<const RmsParams *>(params));
      break;
    case TERN_GPU_QUANTIZE_I8:
      emulate::quantize_i8(d, *static_cast<const QuantParams *>(params));
      break;
    case TERN_GPU_ADD_F32:
      emulate::add_f32(d, *static_cast<const ElementwiseParams *>(params));
      break;
    case TERN_GPU_RELU2_MUL_F32:
      emulate::relu2_mul_f32(d, *static_cast<const ElementwiseParams *>(params));
      break;
    case TERN_GPU_SILU_MUL_F32:
      emulate::silu_mul_f32(d, *static_cast<const ElementwiseParams *>(params));
      break;
    case TERN_GPU_ROPE_NEOX_F32:
      emulate::rope_neox_f32(d, *static_cast<const RopeParams *>(params));
      break;
    case TERN_GPU_EMBED_F16:
      emulate::embed_f16(d, *static_cast<const EmbedParams *>(params));
      break;
    case TERN_GPU_GATHER_ROWS:
      emulate::gather_rows(d, *static_cast<const GatherParams *>(params));
      break;
    case TERN_GPU_KV_STORE_F16:
      emulate::kv_store_f16(d, *static_cast<const AttnF16Params *>(params));
      break;
    case TERN_GPU_ATTENTION_GQA_F16:
      emulate::attention_gqa_f16(d, *static_cast<const AttnF16Params *>(params));
      break;
    case TERN_GPU_MATMUL_I2S_I8_MMA:
      emulate::matmul_i2s_i8_mma(d, *static_cast<const I2sParams *>(params));
      break;
    default:
      return absl::UnimplementedError(
          fmt::format("cuda-emulated: no emulation of {}", kernelName(kernel)));
    }
    return absl::OkStatus();
  }
  absl::Status synchronize() override { return absl::OkStatus(); }
};

} // namespace

absl::StatusOr<std::unique_ptr<Device>> openEmulatedDevice() {
  return std::unique_ptr<Device>(new EmulatedDevice());
}

} // namespace tern::cuda
