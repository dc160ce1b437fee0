// GGUF -> tern IR.
//
// Builds `func.func @forward(%tokens: tensor<?xi32>, %pos: tensor<?xi32>)
// -> tensor<?xVxf32>` for archs `bitnet` (SiLU-gated FFN) and
// `bitnet-b1.58` / `bitnet-25` (relu^2-gated FFN), with hyperparameters from
// the file's metadata. Weights are `#tern.weight` references into the file
// (name, shape, format, offset, bytes), never copies. The storage format of
// each tensor comes from the quant-mapping verifier (type id, arch, file
// type and byte size), not from the type id alone.
#pragma once

#include <string>

#include "compiler/import/Source.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "runtime/formats/ternary.h"

namespace tern::compiler {

struct ImportOptions {
  // Assumed I2_S packing (x86-qk128 is the on-disk default); recorded in the
  // module's tern.i2s_layout under its canonical name.
  formats::I2SLayout i2sLayout = formats::I2SLayout::X86_QK128;
  // KV cache capacity; 0 takes the model's context_length.
  int64_t maxContext = 0;
};

// Emits diagnostics (naming the tensor or key at fault) to the context's
// diagnostic engine and returns null on failure: unknown arch, missing
// tensor, inconsistent shape, a format the dialect cannot represent. Reads
// the already opened `source` (its mapping was verified for
// source.i2sLayout; opts.i2sLayout is not used).
mlir::OwningOpRef<mlir::ModuleOp> importGGUF(mlir::MLIRContext &ctx, const SourceModel &source,
                                             const ImportOptions &opts = {});
// Opens `path` (openSourceModel with opts.i2sLayout), then imports it.
mlir::OwningOpRef<mlir::ModuleOp> importGGUF(mlir::MLIRContext &ctx, const std::string &path,
                                             const ImportOptions &opts = {});

} // namespace tern::compiler
