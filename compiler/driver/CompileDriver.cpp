#include "compiler/driver/CompileDriver.h"

#include <string>
#include <vector>

#include "compiler/import/Importer.h"
#include "compiler/pipeline/Pipeline.h"
#include "compiler/pipeline/Registration.h"
#include "compiler/target/TargetInfo.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"

namespace tern::compiler {

namespace {

constexpr const char *kUsage = R"(usage: ternc compile MODEL.gguf [-o OUT] [options]

Compiles a BitNet b1.58 GGUF model through the tern pipeline:
  import -> tern-verify-quant-mapping -> tern-fuse -> tern-select-kernels
  -> tern-pack-weights -> tern-lower-to-kernels

options:
  -o OUT                 output file ('-' = stdout, the default for --emit)
  --target T             avx2 | avx512_vnni | neon | neon_dotprod | cuda | native (default avx2)
  --kernel K             force a ternary layout: auto | i2s | tl1 | tl2 | tq2 | tq1,
                         optionally with tiles, e.g. i2s:32x256 (default auto)
  --emit=E               import   the module as imported (graph level, no passes)
                         tern     graph level after verify, fuse, kernel selection, packing
                         kernels  ukernel calls with static shapes and offsets
  --no-fuse              keep one bitlinear per matrix (skip tern-fuse)
  --explain              print why each kernel was chosen (remarks on stderr)
  --weights-out FILE     write the packed-weight blob to FILE
  --i2s-layout L         I2_S packing of the input: x86 (default) | arm | x86-1x4
  --max-context N        KV cache capacity (default: the model's context_length)
  --print-ir-after-all   print the IR after every pass (stderr)
  --mlir-print-debuginfo print locations (tensor names) in the output
  -h, --help             this text

Weights are never printed: IR refers to them as
#tern.weight<"name", [shape], format, offset = N, bytes = N>.
)";

int usageError(const std::string &msg) {
  llvm::errs() << "ternc compile: " << msg << "\n(see 'ternc compile --help')\n";
  return 2;
}

} // namespace

int runCompileCommand(int argc, char **argv) {
  std::string model, out, emit;
  PipelineOptions popts;
  ImportOptions iopts;
  bool printAfterAll = false, debugInfo = false;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    std::string value;
    bool hasInline = false;
    if (a.rfind("--", 0) == 0) {
      size_t eq = a.find('=');
      if (eq != std::string::npos) {
        value = a.substr(eq + 1);
        a = a.substr(0, eq);
        hasInline = true;
      }
    }
    auto take = [&](std::string &dst) -> bool {
      if (hasInline) {
        dst = value;
        return true;
      }
      if (i + 1 >= args.size())
        return false;
      dst = args[++i];
      return true;
    };
    if (a == "-h" || a == "--help") {
      llvm::outs() << kUsage;
      return 0;
    } else if (a == "-o" || a == "--output") {
      if (!take(out))
        return usageError("-o needs a file");
    } else if (a == "--target") {
      if (!take(popts.target))
        return usageError("--target needs a value");
      if (!createTargetInfo(popts.target))
        return usageError("unknown --target '" + popts.target + "' (known: " + targetNames() + ")");
    } else if (a == "--kernel") {
      if (!take(popts.kernel))
        return usageError("--kernel needs a value");
    } else if (a == "--emit") {
      if (!take(emit))
        return usageError("--emit needs a value");
      if (emit != "import" && emit != "tern" && emit != "kernels")
        return usageError("unknown --emit '" + emit + "' (import, tern, kernels)");
    } else if (a == "--no-fuse") {
      popts.fuse = false;
    } else if (a == "--explain") {
      popts.explain = true;
    } else if (a == "--weights-out") {
      if (!take(popts.weightsOut))
        return usageError("--weights-out needs a file");
    } else if (a == "--i2s-layout") {
      if (!take(iopts.i2sLayout))
        return usageError("--i2s-layout needs a value");
    } else if (a == "--max-context") {
      std::string n;
      if (!take(n) || llvm::StringRef(n).getAsInteger(10, iopts.maxContext) ||
          iopts.maxContext <= 0)
        return usageError("--max-context needs a positive integer");
    } else if (a == "--print-ir-after-all" || a == "--mlir-print-ir-after-all") {
      printAfterAll = true;
    } else if (a == "--mlir-print-debuginfo") {
      debugInfo = true;
    } else if (!a.empty() && a[0] == '-' && a != "-") {
      return usageError("unknown option '" + args[i] + "'");
    } else if (model.empty()) {
      model = a;
    } else {
      return usageError("more than one model given ('" + model + "', '" + a + "')");
    }
  }
  if (model.empty())
    return usageError("no model given");
  if (emit.empty())
    return usageError("the artifact writer is not part of this build yet; use --emit=import, "
                      "--emit=tern or --emit=kernels");
  if (out.empty())
    out = "-";

  mlir::DialectRegistry registry;
  registerTernDialects(registry);
  mlir::MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  if (printAfterAll)
    ctx.disableMultithreading();

  mlir::OwningOpRef<mlir::ModuleOp> module = importGGUF(ctx, model, iopts);
  if (!module)
    return 1;
  if (emit != "import") {
    mlir::PassManager pm(&ctx);
    if (printAfterAll)
      pm.enableIRPrinting([](mlir::Pass *, mlir::Operation *) { return false; },
                          [](mlir::Pass *, mlir::Operation *) { return true; },
                          /*printModuleScope=*/true, /*printAfterOnlyOnChange=*/false);
    popts.lower = emit == "kernels";
    buildTernPipeline(pm, popts);
    if (mlir::failed(pm.run(*module)))
      return 1;
  }
  std::string err;
  std::unique_ptr<llvm::ToolOutputFile> file = mlir::openOutputFile(out, &err);
  if (!file) {
    llvm::errs() << "ternc compile: cannot open '" << out << "': " << err << "\n";
    return 1;
  }
  mlir::OpPrintingFlags flags;
  flags.elideLargeElementsAttrs(16);
  if (debugInfo)
    flags.enableDebugInfo();
  module->print(file->os(), flags);
  file->os() << "\n";
  file->keep();
  return 0;
}

} // namespace tern::compiler
