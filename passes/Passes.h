// The tern passes (declared in Passes.td) and the pipeline shared by ternc
// and tern-opt.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "compiler/import/Source.h"
#include "dialect/TernDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

namespace tern::passes {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

// What ternc hands the passes that read weights, beyond their options: the
// source it already opened (so that the GGUF is mapped and its quant
// mapping verified once per compile) and where packed matrices go.
struct WeightsIO {
  // Null: the pass opens the module's tern.source (or source=) itself.
  std::shared_ptr<const compiler::SourceModel> source;
  // tern-pack-weights calls this with each packed matrix and its offset in
  // the packed blob, from several threads at once (ranges never overlap).
  // Null: the bytes go to out= if set, else only into the checksums.
  std::function<absl::Status(uint64_t offset, std::span<const uint8_t> bytes)> writePacked;
  // tern-pack-weights calls this (from any thread) after each matrix.
  std::function<void(size_t done, size_t total)> progress;
};

std::unique_ptr<mlir::Pass>
createVerifyQuantMappingPass(const VerifyQuantMappingPassOptions &options, WeightsIO io);
std::unique_ptr<mlir::Pass> createPackWeightsPass(const PackWeightsPassOptions &options,
                                                  WeightsIO io);

} // namespace tern::passes
