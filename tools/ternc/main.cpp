// ternc: the ternary-model compiler (built with TERN_BUILD_COMPILER only;
// the inspect library behind `ternc inspect` needs no MLIR).
#include <cstring>
#include <iostream>

#include "compiler/driver/CompileDriver.h"
#include "runtime/support/hash.h"
#include "tools/ternc/inspect.h"
#include "tools/ternc/tune.h"

static void usage(std::ostream &os) {
  os << "usage: ternc <command> [options]\n\n"
        "commands:\n"
        "  inspect MODEL.gguf [--json]     metadata, tensor table, quant-mapping verdict\n"
        "  compile MODEL.gguf -o OUT ...   compile a model (ternc compile --help)\n"
        "  tune MODEL.gguf -o TUNING.json  time the kernels on this host for compile --tuning\n"
        "\n  ternc <command> --help for the command's options; ternc --version\n";
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(std::cerr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!std::strcmp(cmd, "-h") || !std::strcmp(cmd, "--help") || !std::strcmp(cmd, "help")) {
    usage(std::cout);
    return 0;
  }
  if (!std::strcmp(cmd, "--version")) {
    std::cout << "ternc " << TERN_VERSION;
#ifdef TERN_UKERNEL_BC_DIR
    // The ukernel bitcode is linked into every model at compile time, so it
    // is part of what this compiler is (tern's artifact cache keys on this
    // line): a rebuilt ukernel library must not reuse stale artifacts.
    for (const char *arch : {"x86_64", "aarch64"}) {
      auto h =
          tern::hashFileContents(std::string(TERN_UKERNEL_BC_DIR) + "/ukernels-" + arch + ".bc");
      if (h.ok())
        std::cout << " ukernels-" << arch << "=" << std::hex << *h << std::dec;
    }
#endif
    std::cout << "\n";
    return 0;
  }
  if (!std::strcmp(cmd, "inspect"))
    return tern::inspect::runInspectCommand(argc - 1, argv + 1, std::cout, std::cerr);
  if (!std::strcmp(cmd, "compile"))
    return tern::compiler::runCompileCommand(argc - 1, argv + 1);
  if (!std::strcmp(cmd, "tune"))
    return tern::tune::runTuneCommand(argc - 1, argv + 1);
  std::cerr << "ternc: unknown command '" << cmd << "'\n";
  usage(std::cerr);
  return 2;
}
