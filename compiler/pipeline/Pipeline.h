// The tern pass pipeline, built the same way by ternc and tern-opt.
#pragma once

#include <string>

#include "mlir/Pass/PassManager.h"
#include "passes/Passes.h"

namespace tern::compiler {

struct PipelineOptions {
  std::string target = "avx2"; // TargetInfo name
  std::string kernel = "auto"; // forced layout (select-kernels kernel=)
  std::string source;          // GGUF override (default: module's tern.source)
  std::string weightsOut;      // write the packed-weight blob here
  passes::WeightsIO io;        // ternc: the opened source, where packed weights go, progress
  bool fuse = true;
  bool explain = false;
  bool lower = true;              // run tern-lower-to-kernels
  std::string actQuant = "token"; // token | none (none skips tern-fuse)
  bool refKernels = false;        // --kernel=ref: every callee `_ref`
  bool lowerToLLVM = false;       // run tern-lower-to-llvm after lowering to kernels
  int64_t maxBatch = 512;
  std::string head = "f16";          // f16 | q8 (select-kernels head=)
  std::string kvType = "f16";        // f16 | f32 (lower-to-kernels kv-type=)
  std::string tuning;                // tuning file (select-kernels tuning=); empty: built-in table
  std::string decodeLayout = "none"; // none | tl2v (select-kernels decode-layout=)
  int64_t decodeBelow = 0;           // select-kernels decode-below= (0: built-in threshold)
};

// verify-quant-mapping -> fuse -> select-kernels -> pack-weights
// [-> lower-to-kernels [-> lower-to-llvm]]. act-quant=none skips fuse.
void buildTernPipeline(mlir::OpPassManager &pm, const PipelineOptions &opts);

} // namespace tern::compiler
