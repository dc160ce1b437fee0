#include "compiler/driver/CudaEmit.h"

#include <fstream>
#include <iterator>
#include <sstream>

#include "dialect/TernDialect.h"
#include "fmt/format.h"
#include "runtime/cuda/kernels.h"
#include "runtime/cuda/launch.h"
#include "llvm/ADT/StringRef.h"

#ifndef TERN_CUDA_PTX_DIR
#define TERN_CUDA_PTX_DIR ""
#endif

namespace tern::compiler {

std::string defaultCudaPtx(const std::string &gpuArch) {
  std::string dir = TERN_CUDA_PTX_DIR;
  if (dir.empty() || gpuArch.empty())
    return "";
  return dir + "/tern-cuda-" + gpuArch + ".ptx";
}

bool readCudaKernels(const std::string &gpuArch, std::string &ptx, std::vector<uint8_t> &cubin,
                     std::string &err) {
  const std::string ptxPath = defaultCudaPtx(gpuArch);
  std::ifstream in(ptxPath, std::ios::binary);
  if (ptxPath.empty() || !in) {
    err = fmt::format("no PTX for {} at '{}' (ternc's build makes it with clang-22: target "
                      "tern_cuda_ptx)",
                      gpuArch, ptxPath);
    return false;
  }
  std::stringstream text;
  text << in.rdbuf();
  ptx = text.str();
  cubin.clear();
  std::string cubinPath = ptxPath.substr(0, ptxPath.size() - 4) + ".cubin";
  if (std::ifstream cb(cubinPath, std::ios::binary); cb)
    cubin.assign(std::istreambuf_iterator<char>(cb), std::istreambuf_iterator<char>());
  return true;
}

namespace {

int64_t intArg(mlir::DictionaryAttr args, llvm::StringRef name) {
  if (auto a = llvm::dyn_cast_or_null<mlir::IntegerAttr>(args.get(name)))
    return a.getInt();
  return 0;
}

// The GPU kernel of one ukernel call and its launch plan for n tokens; empty
// kernel name when runtime/cuda has none yet. The f16 attention is two
// launches in order (kernels.h): the K/V store (kernel, plan), then the
// attention (then, thenPlan).
struct GpuCall {
  std::string kernel;
  cuda::LaunchDims plan;
  std::string then;
  cuda::LaunchDims thenPlan;
  std::string orThen; // the launcher's alternative to `then` (the split attention)
  cuda::LaunchDims orThenPlan;
};

GpuCall gpuCallFor(llvm::StringRef callee, mlir::DictionaryAttr a, int64_t n) {
  GpuCall g;
  if (callee.starts_with("tern_uk_matmul_i2s_") && !callee.contains("f32act")) {
    // The launcher's choice (runtime/cuda/launchers.cpp).
    const bool mma = n >= cuda::kMmaMinTokens;
    g.kernel = mma ? "tern_gpu_matmul_i2s_i8_mma" : "tern_gpu_matmul_i2s_i8";
    g.plan = (mma ? cuda::planMatmulI2sMma : cuda::planMatmulI2s)(
        n, intArg(a, "m"), intArg(a, "k"), intArg(a, "tile_m"), intArg(a, "tile_k"));
  } else if (callee.starts_with("tern_uk_lm_head_f16_")) {
    g.kernel = "tern_gpu_lm_head_f16";
    g.plan = cuda::planLmHead(n, intArg(a, "vocab"), intArg(a, "hidden"));
  } else if (callee.starts_with("tern_uk_rms_norm_quantize_i8_")) {
    g.kernel = "tern_gpu_rms_norm_quantize_i8";
    g.plan = cuda::planRmsNormQuantize(n, intArg(a, "n"));
  } else if (callee.starts_with("tern_uk_rms_norm_f32_")) {
    g.kernel = "tern_gpu_rms_norm_f32";
    g.plan = cuda::planRmsNormQuantize(n, intArg(a, "n"));
  } else if (callee.starts_with("tern_uk_quantize_i8_")) {
    g.kernel = "tern_gpu_quantize_i8";
    g.plan = cuda::planRmsNormQuantize(n, intArg(a, "n"));
  } else if (callee.starts_with("tern_uk_add_f32_")) {
    g.kernel = "tern_gpu_add_f32";
    g.plan = cuda::planElementwise(n, intArg(a, "n"));
  } else if (callee.starts_with("tern_uk_relu2_mul_f32_")) {
    g.kernel = "tern_gpu_relu2_mul_f32";
    g.plan = cuda::planElementwise(n, intArg(a, "n"));
  } else if (callee.starts_with("tern_uk_silu_mul_f32_")) {
    g.kernel = "tern_gpu_silu_mul_f32";
    g.plan = cuda::planElementwise(n, intArg(a, "n"));
  } else if (callee.starts_with("tern_uk_rope_neox_f32_")) {
    const int64_t half = intArg(a, "rot_dim") / 2, rest = intArg(a, "head_dim") - 2 * half;
    g.kernel = "tern_gpu_rope_neox_f32";
    g.plan = cuda::planElementwise(n, half > rest ? half : rest);
  } else if (callee.starts_with("tern_uk_embed_f16_")) {
    g.kernel = "tern_gpu_embed_f16";
    g.plan = cuda::planElementwise(n, intArg(a, "hidden"));
  } else if (callee.starts_with("tern_uk_attention_gqa_f16_")) {
    const int64_t heads = intArg(a, "n_heads"), kvHeads = intArg(a, "n_kv_heads"),
                  headDim = intArg(a, "head_dim");
    g.kernel = "tern_gpu_kv_store_f16";
    g.plan = cuda::planKvStoreF16(n, kvHeads * headDim);
    g.then = "tern_gpu_attention_gqa_f16";
    g.thenPlan = cuda::planAttentionF16(n, heads, kvHeads, headDim);
    // The launcher's choice by the call's positions (attn_use_split).
    g.orThen = "tern_gpu_attention_gqa_f16_split";
    g.orThenPlan = cuda::planAttentionF16Split(n, heads, kvHeads, headDim);
  }
  return g;
}

} // namespace

bool emitCudaPtx(mlir::ModuleOp module, const MachineTarget &target, int64_t maxBatch,
                 const std::string &ptxPath, std::string &out, std::string &err) {
  std::ifstream in(ptxPath, std::ios::binary);
  if (ptxPath.empty() || !in) {
    err = fmt::format("no PTX for {} at '{}' (ternc's build makes it with clang-22: target "
                      "tern_cuda_ptx)",
                      target.gpuArch, ptxPath);
    return false;
  }
  std::stringstream ptx;
  ptx << in.rdbuf();

  out += fmt::format("// ternc --target {} --emit=ptx: GPU kernels for {}.\n", target.name,
                     target.gpuArch);
  out += "// UNTESTED ON HARDWARE: no GPU has run these kernels yet (docs/cuda.md).\n";
  out += fmt::format("// Launch plan per ukernel call, decode (n = 1) | prefill (n = {}):\n",
                     maxBatch);
  int calls = 0, missing = 0;
  module.walk([&](ir::UKernelCallOp op) {
    ++calls;
    llvm::StringRef callee = op.getCallee();
    mlir::DictionaryAttr a = op.getStaticArgs();
    GpuCall one = gpuCallFor(callee, a, 1), batch = gpuCallFor(callee, a, maxBatch);
    if (one.kernel.empty()) {
      ++missing;
      out += fmt::format("//   {:<36} -> no GPU kernel yet\n", callee.str());
      return;
    }
    if (one.kernel == batch.kernel)
      out += fmt::format("//   {:<36} -> {} {} | {}\n", callee.str(), one.kernel,
                         one.plan.describe(), batch.plan.describe());
    else // another kernel for prefill (the i2s matmul's tensor-core GEMM)
      out += fmt::format("//   {:<36} -> {} {} | {} {}\n", callee.str(), one.kernel,
                         one.plan.describe(), batch.kernel, batch.plan.describe());
    if (!one.then.empty())
      out += fmt::format("//   {:<36}    then {} {} | {}\n", "", one.then, one.thenPlan.describe(),
                         batch.thenPlan.describe());
    if (!one.orThen.empty())
      out += fmt::format("//   {:<36}    or, once a position >= {}, {} {} | {}\n", "",
                         cuda::kAttnSplitMinPos, one.orThen, one.orThenPlan.describe(),
                         batch.orThenPlan.describe());
  });
  out += fmt::format("// {} calls, {} with a GPU kernel, {} without one yet.\n", calls,
                     calls - missing, missing);
  out += ptx.str();
  return true;
}

} // namespace tern::compiler
