// tern-opt: mlir-opt with the tern dialect and every tern pass registered.
#include "compiler/pipeline/Registration.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  tern::compiler::registerTernDialects(registry);
  tern::compiler::registerTernPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "tern-opt: the tern dialect and passes\n", registry));
}
