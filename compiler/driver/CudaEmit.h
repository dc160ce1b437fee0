// --emit=ptx for the cuda:sm_80 / cuda:sm_90 targets (docs/cuda.md): the
// kernel-level module's ukernel calls mapped to the GPU kernels of
// runtime/cuda (with their launch plans), followed by the PTX those kernels
// compile to for the target's architecture. UNTESTED ON HARDWARE.
#pragma once

#include <string>

#include "compiler/target/TargetInfo.h"
#include "mlir/IR/BuiltinOps.h"

namespace tern::compiler {

// The PTX file of `gpuArch` built with ternc (runtime/cuda/CMakeLists.txt).
std::string defaultCudaPtx(const std::string &gpuArch);

// Appends to `out` the listing (PTX comments) and the PTX read from
// `ptxPath`. False with `err` set when the PTX cannot be read.
bool emitCudaPtx(mlir::ModuleOp module, const MachineTarget &target, int64_t maxBatch,
                 const std::string &ptxPath, std::string &out, std::string &err);

} // namespace tern::compiler
