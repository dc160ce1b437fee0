// --emit=ptx for the cuda:sm_80 / cuda:sm_90 targets (docs/cuda.md): the
// kernel-level module's ukernel calls mapped to the GPU kernels of
// runtime/cuda (with their launch plans), followed by the PTX those kernels
// compile to for the target's architecture. UNTESTED ON HARDWARE.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compiler/target/TargetInfo.h"
#include "mlir/IR/BuiltinOps.h"

namespace tern::compiler {

// The PTX file of `gpuArch` built with ternc (runtime/cuda/CMakeLists.txt).
std::string defaultCudaPtx(const std::string &gpuArch);

// The PTX of `gpuArch` and its cubin (empty where the build found no ptxas)
// for a cuda artifact's GPU_CODE section. False with `err` when the PTX is
// missing.
bool readCudaKernels(const std::string &gpuArch, std::string &ptx, std::vector<uint8_t> &cubin,
                     std::string &err);

// Appends to `out` the listing (PTX comments) and the PTX read from
// `ptxPath`. False with `err` set when the PTX cannot be read.
bool emitCudaPtx(mlir::ModuleOp module, const MachineTarget &target, int64_t maxBatch,
                 const std::string &ptxPath, std::string &out, std::string &err);

} // namespace tern::compiler
