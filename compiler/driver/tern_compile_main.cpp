// tern-compile: `ternc compile` as a standalone tool (tests, and until the
// ternc main links the driver). `tern-compile ARGS` == `ternc compile ARGS`.
#include "compiler/driver/CompileDriver.h"

int main(int argc, char **argv) {
  static char name[] = "compile";
  argv[0] = name;
  return tern::compiler::runCompileCommand(argc, argv);
}
