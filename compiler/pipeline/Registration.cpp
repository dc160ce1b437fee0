#include "compiler/pipeline/Registration.h"

#include "dialect/TernDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace tern::compiler {

void registerTernDialects(mlir::DialectRegistry &registry) {
  registry.insert<tern::ir::TernDialect, mlir::func::FuncDialect>();
}

void registerTernPasses() {}

} // namespace tern::compiler
