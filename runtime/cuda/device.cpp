#include "runtime/cuda/device.h"

#include <cstdlib>
#include <cstring>
#include <iterator>
#include <new>

#include "fmt/format.h"
#include "runtime/abi/tern_abi.h"
#include "runtime/cuda/emulate.h"
#include "runtime/cuda/kernels.h"

namespace tern::cuda {

namespace {

// One entry per tern_gpu_kernel id (tern_abi.h), at the id's index: the PTX
// entry point, the size of its parameter struct P (kernels.h), the launch
// plan of P's shapes (launch.h) and the host emulation of a launch
// (emulate.h). Adding a kernel is one entry here.
struct KernelEntry {
  int32_t id;
  const char *name;
  uint64_t paramBytes;
  LaunchDims (*plan)(const void *params);
  void (*emulate)(const LaunchDims &d, const void *params);
};

template <class P, void (*Emulate)(const LaunchDims &, const P &), auto Plan>
constexpr KernelEntry entry(int32_t id, const char *name) {
  return {id, name, sizeof(P),
          [](const void *p) -> LaunchDims { return Plan(*static_cast<const P *>(p)); },
          [](const LaunchDims &d, const void *p) { Emulate(d, *static_cast<const P *>(p)); }};
}

constexpr KernelEntry kKernels[] = {
    entry<I2sParams, emulate::matmul_i2s_i8,
          [](const I2sParams &p) { return planMatmulI2s(p.n, p.m, p.k, p.tileM, p.tileK); }>(
        TERN_GPU_MATMUL_I2S_I8, "tern_gpu_matmul_i2s_i8"),
    entry<LmHeadParams, emulate::lm_head_f16,
          [](const LmHeadParams &p) { return planLmHead(p.n, p.vocab, p.hidden); }>(
        TERN_GPU_LM_HEAD_F16, "tern_gpu_lm_head_f16"),
    entry<RmsQuantParams, emulate::rms_norm_quantize_i8,
          [](const RmsQuantParams &p) { return planRmsNormQuantize(p.n, p.dim); }>(
        TERN_GPU_RMS_NORM_QUANTIZE_I8, "tern_gpu_rms_norm_quantize_i8"),
    entry<RmsParams, emulate::rms_norm_f32,
          [](const RmsParams &p) { return planRmsNormQuantize(p.n, p.dim); }>(
        TERN_GPU_RMS_NORM_F32, "tern_gpu_rms_norm_f32"),
    entry<QuantParams, emulate::quantize_i8,
          [](const QuantParams &p) { return planRmsNormQuantize(p.n, p.dim); }>(
        TERN_GPU_QUANTIZE_I8, "tern_gpu_quantize_i8"),
    entry<ElementwiseParams, emulate::add_f32,
          [](const ElementwiseParams &p) { return planElementwise(1, p.count); }>(
        TERN_GPU_ADD_F32, "tern_gpu_add_f32"),
    entry<ElementwiseParams, emulate::relu2_mul_f32,
          [](const ElementwiseParams &p) { return planElementwise(1, p.count); }>(
        TERN_GPU_RELU2_MUL_F32, "tern_gpu_relu2_mul_f32"),
    entry<ElementwiseParams, emulate::silu_mul_f32,
          [](const ElementwiseParams &p) { return planElementwise(1, p.count); }>(
        TERN_GPU_SILU_MUL_F32, "tern_gpu_silu_mul_f32"),
    entry<RopeParams, emulate::rope_neox_f32,
          [](const RopeParams &p) { return planElementwise(p.n, rope_threads_per_token(p)); }>(
        TERN_GPU_ROPE_NEOX_F32, "tern_gpu_rope_neox_f32"),
    entry<EmbedParams, emulate::embed_f16,
          [](const EmbedParams &p) { return planElementwise(p.n, p.hidden); }>(
        TERN_GPU_EMBED_F16, "tern_gpu_embed_f16"),
    entry<GatherParams, emulate::gather_rows,
          [](const GatherParams &p) { return planGatherRows(p.nOut, p.rowBytes); }>(
        TERN_GPU_GATHER_ROWS, "tern_gpu_gather_rows"),
    entry<AttnF16Params, emulate::kv_store_f16,
          [](const AttnF16Params &p) { return planKvStoreF16(p.n, p.nKvHeads * p.headDim); }>(
        TERN_GPU_KV_STORE_F16, "tern_gpu_kv_store_f16"),
    entry<AttnF16Params, emulate::attention_gqa_f16,
          [](const AttnF16Params &p) {
            return planAttentionF16(p.n, p.nHeads, p.nKvHeads, p.headDim);
          }>(TERN_GPU_ATTENTION_GQA_F16, "tern_gpu_attention_gqa_f16"),
    entry<I2sParams, emulate::matmul_i2s_i8_mma,
          [](const I2sParams &p) { return planMatmulI2sMma(p.n, p.m, p.k, p.tileM, p.tileK); }>(
        TERN_GPU_MATMUL_I2S_I8_MMA, "tern_gpu_matmul_i2s_i8_mma"),
    entry<AttnF16Params, emulate::attention_gqa_f16_split,
          [](const AttnF16Params &p) {
            return planAttentionF16Split(p.n, p.nHeads, p.nKvHeads, p.headDim);
          }>(TERN_GPU_ATTENTION_GQA_F16_SPLIT, "tern_gpu_attention_gqa_f16_split"),
};

constexpr bool everyIdAtItsIndex() {
  for (size_t i = 0; i < std::size(kKernels); ++i)
    if (kKernels[i].id != int32_t(i))
      return false;
  return std::size(kKernels) == size_t(TERN_GPU_KERNEL_COUNT);
}
static_assert(everyIdAtItsIndex(), "kKernels: one entry per tern_gpu_kernel id, in id order");

const KernelEntry *entryOf(int32_t kernel) {
  return kernel >= 0 && kernel < TERN_GPU_KERNEL_COUNT ? &kKernels[kernel] : nullptr;
}

LaunchDims failDims(std::string why) {
  LaunchDims d;
  d.error = std::move(why);
  return d;
}

} // namespace

const char *kernelName(int32_t kernel) {
  const KernelEntry *e = entryOf(kernel);
  return e ? e->name : nullptr;
}

int32_t kernelId(const char *name) {
  for (const KernelEntry &e : kKernels)
    if (name && std::strcmp(e.name, name) == 0)
      return e.id;
  return -1;
}

uint64_t kernelParamBytes(int32_t kernel) {
  const KernelEntry *e = entryOf(kernel);
  return e ? e->paramBytes : 0;
}

bool emulateKernel(int32_t kernel, const LaunchDims &dims, const void *params) {
  const KernelEntry *e = entryOf(kernel);
  if (!e)
    return false;
  e->emulate(dims, params);
  return true;
}

LaunchDims planKernel(int32_t kernel, const void *params, uint64_t bytes) {
  const KernelEntry *e = entryOf(kernel);
  if (!e)
    return failDims(fmt::format("unknown GPU kernel id {}", kernel));
  if (bytes != e->paramBytes)
    return failDims(fmt::format("{}: parameters of {} bytes, expected {} (code built for "
                                "another kernels.h?)",
                                e->name, bytes, e->paramBytes));
  return e->plan(params);
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
    emulateKernel(kernel, d, params);
    return absl::OkStatus();
  }
  absl::Status synchronize() override { return absl::OkStatus(); }
};

} // namespace

absl::StatusOr<std::unique_ptr<Device>> openEmulatedDevice() {
  return std::unique_ptr<Device>(new EmulatedDevice());
}

} // namespace tern::cuda
