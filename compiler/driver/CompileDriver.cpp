#include "compiler/driver/CompileDriver.h"

#include <chrono>
#include <malloc.h>
#include <mutex>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

#include "compiler/codegen/Codegen.h"
#include "compiler/driver/ArtifactAssembly.h"
#include "compiler/import/Importer.h"
#include "compiler/pipeline/Pipeline.h"
#include "compiler/pipeline/Registration.h"
#include "compiler/target/TargetInfo.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ThreadPool.h"
#include "llvm/Support/Threading.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#ifndef TERN_COMPILER_VERSION
#define TERN_COMPILER_VERSION "0.1.0"
#endif

namespace tern::compiler {

namespace {

constexpr const char *kUsage = R"(usage: ternc compile MODEL.gguf [-o OUT] [options]

Compiles a BitNet b1.58 GGUF model through the tern pipeline:
  import -> tern-verify-quant-mapping -> tern-fuse -> tern-select-kernels
  -> tern-pack-weights -> tern-lower-to-kernels -> tern-lower-to-llvm
  -> LLVM IR + ukernel bitcode -> O3 -> object -> ld.lld -shared -> artifact

options:
  -o OUT                 output file (the artifact; '-' = stdout, the default for --emit)
  --target T             avx2 | x86-64-v3 | avx512_vnni | x86-64-v4 | neon | aarch64 |
                         neon_dotprod | aarch64-dotprod | native | cuda (default avx2;
                         cuda: --emit=import|tern|kernels only)
  --kernel K             auto | ref (every ukernel the scalar `_ref` one) | a forced ternary
                         layout i2s | tl1 | tl2 | tq2 | tq1, optionally with tiles,
                         e.g. i2s:32x256 (default auto)
  --act-quant A          token (int8 per-token activations, default) | none (float
                         activations: f32act matmuls, no tern-fuse)
  --max-batch N          most tokens one forward call takes (default 512)
  --ukernels FILE        ukernel bitcode to link (default: the build's ukernels-<arch>.bc)
  -O N                   LLVM optimization level 0..3 (default 3)
  --emit=E               import   the module as imported (graph level, no passes)
                         tern     graph level after verify, fuse, kernel selection, packing
                         kernels  ukernel calls with static shapes and offsets
                         llvm-dialect  after tern-lower-to-llvm (MLIR LLVM dialect)
                         llvm     LLVM IR, ukernels linked, internalized, optimized
                         asm      assembly for the target
                         obj      the object file
                         so       the linked shared object
                         (no --emit: write the .tern artifact to -o)
  --no-fuse              keep one bitlinear per matrix (skip tern-fuse)
  --explain              print why each kernel was chosen (remarks on stderr)
  --weights-out FILE     write the packed-weight blob (tern-pack-weights out=) to FILE
  -j N                   threads packing weights (default: every core)
  -q, --quiet            no progress on stderr (the default when stderr is not a terminal)
  -v, --verbose          step timings on stderr even when it is not a terminal
  --i2s-layout L         I2_S packing of the input: x86 (default) | arm | x86-1x4
  --max-context N        KV cache capacity (default: the model's context_length)
  --print-ir-after-all   print the IR after every pass (stderr)
  --mlir-timing          time every pass (report on stderr)
  --mlir-print-debuginfo print locations (tensor names) in the output
  -h, --help             this text

On a terminal, stderr shows each step's time and a bar of matrices packed.
Weights are never printed: IR refers to them as
#tern.weight<"name", [shape], format, offset = N, bytes = N>.
)";

int usageError(const std::string &msg) {
  llvm::errs() << "ternc compile: " << msg << "\n(see 'ternc compile --help')\n";
  return 2;
}

} // namespace

int runCompileCommand(int argc, char **argv) {
  std::string model, out, emit, ukernels, maxBatchText, optText, jobsText;
  PipelineOptions popts;
  ImportOptions iopts;
  bool printAfterAll = false, debugInfo = false, quiet = false, verbose = false, timing = false;
  unsigned jobs = 0; // 0: every core
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
    } else if (a.size() > 2 && (a.rfind("-O", 0) == 0 || a.rfind("-j", 0) == 0)) {
      value = a.substr(2);
      a = a.substr(0, 2);
      hasInline = true;
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
      if (!createTargetInfo(popts.target) || !resolveMachineTarget(popts.target))
        return usageError("unknown --target '" + popts.target + "' (known: " + targetNames() + ")");
    } else if (a == "--kernel") {
      if (!take(popts.kernel))
        return usageError("--kernel needs a value");
      popts.refKernels = popts.kernel == "ref";
    } else if (a == "--act-quant") {
      if (!take(popts.actQuant))
        return usageError("--act-quant needs a value");
      if (popts.actQuant != "token" && popts.actQuant != "none")
        return usageError("--act-quant must be token or none");
    } else if (a == "--max-batch") {
      if (!take(maxBatchText) || llvm::StringRef(maxBatchText).getAsInteger(10, popts.maxBatch) ||
          popts.maxBatch <= 0)
        return usageError("--max-batch needs a positive integer");
    } else if (a == "--ukernels") {
      if (!take(ukernels))
        return usageError("--ukernels needs a file");
    } else if (a == "-O") {
      if (!take(optText) || optText.size() != 1 || optText[0] < '0' || optText[0] > '3')
        return usageError("-O needs 0, 1, 2 or 3");
    } else if (a == "--emit") {
      if (!take(emit))
        return usageError("--emit needs a value");
      if (emit != "import" && emit != "tern" && emit != "kernels" && emit != "llvm-dialect" &&
          emit != "llvm" && emit != "asm" && emit != "obj" && emit != "so")
        return usageError("unknown --emit '" + emit +
                          "' (import, tern, kernels, llvm-dialect, llvm, asm, obj, so)");
    } else if (a == "--no-fuse") {
      popts.fuse = false;
    } else if (a == "--explain") {
      popts.explain = true;
    } else if (a == "-q" || a == "--quiet") {
      quiet = true;
    } else if (a == "-v" || a == "--verbose") {
      verbose = true;
    } else if (a == "-j" || a == "--jobs") {
      if (!take(jobsText) || llvm::StringRef(jobsText).getAsInteger(10, jobs) || jobs == 0)
        return usageError("-j needs a positive integer");
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
    } else if (a == "--mlir-timing" || a == "--timing") {
      timing = true;
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
  const bool artifact = emit.empty();
  const bool codegen = artifact || emit == "llvm" || emit == "asm" || emit == "obj" || emit == "so";
  const bool binaryOut = artifact || emit == "obj" || emit == "so";
  if (artifact && (out.empty() || out == "-"))
    return usageError("writing an artifact needs -o OUT.tern (or use --emit=...)");
  if (out.empty())
    out = "-";
  std::optional<MachineTarget> machine = resolveMachineTarget(popts.target);
  if (codegen && (!machine || machine->triple.empty()))
    return usageError("--target " + popts.target + " has no CPU code generation; use " +
                      "--emit=import, tern or kernels");
  const int optLevel = optText.empty() ? 3 : optText[0] - '0';
  if (machine && machine->refOnly)
    popts.refKernels = true; // the host cannot run any ISA ukernel

  // Progress: on a terminal (or with -v) one line per step; on a terminal
  // also a bar of matrices packed while tern-pack-weights runs.
  const bool terminal = ::isatty(2) == 1;
  const bool showSteps = !quiet && (terminal || verbose);
  const bool showBar = !quiet && terminal;
  auto t0 = std::chrono::steady_clock::now();
  auto tick = t0;
  auto progress = [&](const char *step) {
    auto now = std::chrono::steady_clock::now();
    if (showSteps)
      llvm::errs() << llvm::format("ternc: %-8s %7.2f s\n", step,
                                   std::chrono::duration<double>(now - tick).count());
    tick = now;
  };

  // Packing allocates and frees a few tens of MB per matrix and thread:
  // keep that memory in the heap rather than mapping fresh (zeroed) pages for
  // every matrix (~2 s of page faults on a 2B model). Peak RSS still stays at
  // the matrices in flight.
  ::mallopt(M_MMAP_THRESHOLD, 256 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 512 << 20);

  // One thread pool for MLIR and for packing: -j N threads.
  llvm::DefaultThreadPool threads(llvm::hardware_concurrency(jobs));
  mlir::DialectRegistry registry;
  registerTernDialects(registry);
  mlir::MLIRContext ctx(registry, mlir::MLIRContext::Threading::DISABLED);
  if (!printAfterAll)
    ctx.setThreadPool(threads);
  ctx.loadAllAvailableDialects();
  // Without a handler MLIR prints errors only; --explain's remarks (and
  // warnings, notes) must reach stderr too.
  llvm::SourceMgr diagSources;
  mlir::SourceMgrDiagnosticHandler diagHandler(diagSources, &ctx);

  // The GGUF is opened, mapped and its quant mapping verified once; the
  // importer, the passes and the artifact assembly all read this.
  absl::StatusOr<std::shared_ptr<const SourceModel>> source =
      openSourceModel(model, iopts.i2sLayout);
  if (!source.ok()) {
    mlir::emitError(mlir::FileLineColLoc::get(&ctx, model, 0, 0))
        << std::string(source.status().message());
    return 1;
  }
  mlir::OwningOpRef<mlir::ModuleOp> module = importGGUF(ctx, **source, iopts);
  if (!module)
    return 1;
  if (codegen)
    progress("import");

  // An artifact's weights section comes first in the file: tern-pack-weights
  // writes each packed matrix straight to its place there.
  std::unique_ptr<artifact::ArtifactOutput> output;
  popts.io.source = *source;
  if (artifact) {
    auto created = artifact::ArtifactOutput::create(out, kArtifactSections);
    if (!created.ok()) {
      llvm::errs() << "ternc compile: " << created.status().ToString() << "\n";
      return 1;
    }
    output = std::move(*created);
    if (auto at = output->beginSection(TERN_SECTION_WEIGHTS); !at.ok()) {
      llvm::errs() << "ternc compile: " << at.status().ToString() << "\n";
      return 1;
    }
    popts.io.writePacked = [&](uint64_t offset, std::span<const uint8_t> b) {
      return output->writeAt(offset, b);
    };
  }
  std::mutex barMutex;
  if (showBar)
    popts.io.progress = [&](size_t done, size_t total) {
      std::lock_guard<std::mutex> lock(barMutex);
      constexpr size_t kWidth = 30;
      const size_t filled = total ? done * kWidth / total : kWidth;
      llvm::errs() << "\rternc: packing [" << std::string(filled, '#')
                   << std::string(kWidth - filled, '.') << "] " << done << "/" << total
                   << " matrices" << (done == total ? "\n" : "");
      llvm::errs().flush();
    };

  if (emit != "import") {
    mlir::PassManager pm(&ctx);
    if (printAfterAll)
      pm.enableIRPrinting([](mlir::Pass *, mlir::Operation *) { return false; },
                          [](mlir::Pass *, mlir::Operation *) { return true; },
                          /*printModuleScope=*/true, /*printAfterOnlyOnChange=*/false);
    if (timing)
      pm.enableTiming();
    popts.lower = emit != "tern";
    popts.lowerToLLVM = emit != "tern" && emit != "kernels";
    buildTernPipeline(pm, popts);
    if (mlir::failed(pm.run(*module)))
      return 1;
    if (codegen)
      progress("passes");
  }

  std::vector<uint8_t> bytes; // binary output, or text for llvm/asm
  std::string text;
  if (codegen) {
    CodegenOptions copts;
    copts.target = *machine;
    copts.optLevel = optLevel;
    copts.ukernelBitcode = ukernels.empty() ? defaultUkernelBitcode(machine->arch()) : ukernels;
    llvm::LLVMContext llctx;
    std::string err;
    std::unique_ptr<llvm::Module> llm = buildLLVMModule(*module, llctx, copts, err);
    if (!llm) {
      llvm::errs() << "ternc compile: " << err << "\n";
      return 1;
    }
    progress("optimize");
    if (emit == "llvm") {
      llvm::raw_string_ostream os(text);
      llm->print(os, nullptr);
    } else {
      if (!emitMachineCode(*llm, *machine, emit == "asm", bytes, err)) {
        llvm::errs() << "ternc compile: " << err << "\n";
        return 1;
      }
      progress("codegen");
      if (emit == "so" || artifact) {
        std::vector<uint8_t> so;
        if (!linkSharedObject(bytes, machine->arch(), so, err)) {
          llvm::errs() << "ternc compile: " << err << "\n";
          return 1;
        }
        bytes = std::move(so);
        progress("link");
      }
    }
    if (artifact) {
      ArtifactInputs in;
      in.module = *module;
      in.source = source->get();
      in.target = *machine;
      in.kernelOption = popts.kernel;
      in.code = std::move(bytes);
      in.compilerVersion = std::string("ternc ") + TERN_COMPILER_VERSION;
      if (!writeArtifact(in, *output, err)) {
        llvm::errs() << "ternc compile: " << err << "\n";
        return 1;
      }
      progress("write");
      if (showSteps)
        llvm::errs() << llvm::format("ternc: wrote %s (%.2f s total)\n", out.c_str(),
                                     std::chrono::duration<double>(tick - t0).count());
      return 0;
    }
  }

  std::string err;
  std::unique_ptr<llvm::ToolOutputFile> file = mlir::openOutputFile(out, &err);
  if (!file) {
    llvm::errs() << "ternc compile: cannot open '" << out << "': " << err << "\n";
    return 1;
  }
  if (binaryOut || emit == "asm") {
    file->os().write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
  } else if (emit == "llvm") {
    file->os() << text;
  } else {
    mlir::OpPrintingFlags flags;
    flags.elideLargeElementsAttrs(16);
    if (debugInfo)
      flags.enableDebugInfo();
    module->print(file->os(), flags);
    file->os() << "\n";
  }
  file->keep();
  return 0;
}

} // namespace tern::compiler
