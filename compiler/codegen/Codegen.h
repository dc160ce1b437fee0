// CPU code generation: the LLVM-dialect module of tern-lower-to-llvm ->
// LLVM IR linked with the ukernel bitcode -> internalized, optimized ->
// object / assembly -> a shared object linked with ld.lld.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compiler/target/TargetInfo.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"

namespace tern::compiler {

struct CodegenOptions {
  MachineTarget target;
  std::string ukernelBitcode; // empty: link nothing (the ukernels stay undefined)
  int optLevel = 3;           // 0..3
};

// The ukernel bitcode file built for `arch` ("x86_64", "aarch64"):
// TERN_UKERNEL_BC_DIR/ukernels-<arch>.bc (the build's tern_ukernels_bc).
std::string defaultUkernelBitcode(const std::string &arch);
// The cuda targets' launcher bitcode for the host arch (runtime/cuda's
// tern_cuda_launchers_bc): TERN_UKERNEL_BC_DIR/cuda-launchers-<arch>.bc.
std::string defaultCudaLauncherBitcode(const std::string &arch);

// Translates `module` (LLVM dialect, tern.* attributes ignored), sets the
// triple / data layout / CPU / features, links the ukernel bitcode
// (LinkOnlyNeeded), internalizes everything but tern_model_forward and
// tern_model_describe, and runs the O<optLevel> pipeline. Null + `err` on
// failure.
std::unique_ptr<llvm::Module> buildLLVMModule(mlir::ModuleOp module, llvm::LLVMContext &ctx,
                                              const CodegenOptions &opts, std::string &err);

// Object file (asm = false) or assembly text for `m`.
bool emitMachineCode(llvm::Module &m, const MachineTarget &target, bool asmText,
                     std::vector<uint8_t> &out, std::string &err);

// `ld.lld -shared` of one object into a shared object. libm.so.6 of the
// target's arch is added with --as-needed when one is found (host libdirs,
// /usr/<arch>-linux-gnu/lib for cross targets), so the object records
// DT_NEEDED libm only if the code calls libm; without one, libm and libc
// symbols (memcpy) stay undefined and are resolved when the runtime dlopens it.
bool linkSharedObject(const std::vector<uint8_t> &object, const std::string &arch,
                      std::vector<uint8_t> &so, std::string &err);

} // namespace tern::compiler
