// Registration shared by tern-opt and ternc: the dialects the tern IR uses
// and every tern pass and pipeline.
#pragma once

#include "mlir/IR/DialectRegistry.h"

namespace tern::compiler {

// tern, func and the builtin dialect.
void registerTernDialects(mlir::DialectRegistry &registry);
// Every pass of passes/Passes.td and the named pipelines.
void registerTernPasses();

} // namespace tern::compiler
