#include "compiler/driver/CompileDriver.h"

#include <chrono>
#include <climits>
#include <iostream>
#include <malloc.h>
#include <mutex>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

#include "compiler/codegen/Codegen.h"
#include "compiler/driver/ArtifactAssembly.h"
#include "compiler/driver/CudaEmit.h"
#include "compiler/import/Importer.h"
#include "compiler/pipeline/Pipeline.h"
#include "compiler/pipeline/Registration.h"
#include "compiler/target/TargetInfo.h"
#include "compiler/target/Tuning.h"
#include "fmt/format.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "passes/Common.h"
#include "runtime/formats/ternary.h"
#include "runtime/support/args.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ThreadPool.h"
#include "llvm/Support/Threading.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/TargetParser/Host.h"

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
)";

constexpr const char *kEpilog =
    R"(On a terminal, stderr shows each step's time and a bar of matrices packed.
Weights are never printed: IR refers to them as
#tern.weight<"name", [shape], format, offset = N, bytes = N>.
)";

int usageError(const std::string &msg) {
  llvm::errs() << "ternc compile: error: " << msg << " (see 'ternc compile --help')\n";
  return 2;
}

} // namespace

int runCompileCommand(int argc, char **argv) {
  std::string model, out, emit, ukernels;
  int optLevel = 3;
  PipelineOptions popts;
  ImportOptions iopts;
  bool printAfterAll = false, debugInfo = false, quiet = false, verbose = false, timing = false;
  unsigned jobs = 0; // 0: every core

  args::Parser p("ternc compile", kUsage);
  p.positional("MODEL.gguf", "", [&](std::string_view, const std::string &v) -> absl::Status {
    if (!model.empty())
      return absl::InvalidArgumentError(
          fmt::format("more than one model given ('{}', '{}')", model, v));
    model = v;
    return absl::OkStatus();
  });
  p.string("-o,--output", &out, "OUT",
           "output file (the artifact; '-' = stdout, the default for --emit)");
  p.value("--target", "T",
          "avx2 | x86-64-v3 | avx512_vnni | x86-64-v4 | neon | aarch64 |\n"
          "neon_dotprod | aarch64-dotprod | neon_i8mm | aarch64-i8mm | native |\n"
          "cuda:sm_80 | cuda:sm_90\n"
          "(default avx2; cuda = cuda:sm_90; cuda targets: --emit=import|tern|\n"
          "kernels|ptx only, untested on hardware: docs/cuda.md)",
          [&](std::string_view flag, const std::string &v) -> absl::Status {
            if (!createTargetInfo(v) || !resolveMachineTarget(v))
              return absl::InvalidArgumentError(
                  fmt::format("{}: unknown target '{}' (known: {})", flag, v, targetNames()));
            popts.target = v;
            return absl::OkStatus();
          });
  p.value("--kernel", "K",
          "auto | ref (every ukernel the scalar `_ref` one) | a forced ternary\n"
          "layout i2s | tl1 | tl2 | tl2v | tq2 | tq1, optionally with tiles,\n"
          "e.g. i2s:32x256 (default auto)",
          [&](std::string_view, const std::string &v) {
            popts.kernel = v;
            popts.refKernels = v == "ref";
            return absl::OkStatus();
          });
  p.choice("--act-quant", &popts.actQuant, {"token", "none"}, "A",
           "token (int8 per-token activations, default) | none (float\n"
           "activations: f32act matmuls, no tern-fuse)");
  p.choice("--kv-type", &popts.kvType, {"f16", "f32"}, "T",
           "the KV cache's element type: f16 (IEEE half, rounded to\n"
           "nearest even when written; default: half the bytes) | f32");
  p.choice("--head", &popts.head, {"f16", "q8"}, "H",
           "the LM head: f16 (a float head as stored, exact; default) |\n"
           "q8 (int8 rows, one f32 scale per row: half the bytes of f16;\n"
           "activations quantized to int8 per token, integer dot products)");
  p.integer("--max-batch", &popts.maxBatch, 1, INT32_MAX, "N",
            "most tokens one forward call takes (default 512)");
  p.choice("--decode-layout", &popts.decodeLayout, {"none", "tl2v"}, "L",
           "none (default) | tl2v: also pack every ternary matrix in the\n"
           "1.67-bit tl2v layout, which calls of fewer than --decode-below\n"
           "tokens (decode) read, while larger ones (prefill) keep the cost\n"
           "model's layout and its GEMM; bit-identical logits, ~1.8x the\n"
           "ternary bytes on disk. Needs a tl2v kernel (avx2, avx512_vnni)");
  p.integer("--decode-below", &popts.decodeBelow, 2, INT32_MAX, "N",
            "with --decode-layout: calls of fewer than N tokens read the\n"
            "decode copy (default 6)");
  p.string("--ukernels", &ukernels, "FILE",
           "ukernel bitcode to link (default: the build's ukernels-<arch>.bc)");
  p.integer("-O", &optLevel, 0, 3, "N", "LLVM optimization level 0..3 (default 3; also -O2)");
  p.choice("--emit", &emit,
           {"import", "tern", "kernels", "llvm-dialect", "llvm", "asm", "obj", "so", "ptx"}, "E",
           "import   the module as imported (graph level, no passes)\n"
           "tern     graph level after verify, fuse, kernel selection, packing\n"
           "kernels  ukernel calls with static shapes and offsets\n"
           "llvm-dialect  after tern-lower-to-llvm (MLIR LLVM dialect)\n"
           "llvm     LLVM IR, ukernels linked, internalized, optimized\n"
           "asm      assembly for the target\n"
           "obj      the object file\n"
           "so       the linked shared object\n"
           "ptx      cuda targets: the GPU kernels' launch plan and PTX\n"
           "(no --emit: write the .tern artifact to -o)");
  p.flag(
      "--no-fuse", [&] { popts.fuse = false; }, "keep one bitlinear per matrix (skip tern-fuse)");
  p.flag("--explain", &popts.explain, "print why each kernel was chosen (remarks on stderr)");
  p.string("--tuning", &popts.tuning, "FILE",
           "kernel rates measured by `ternc tune` on the target machine:\n"
           "they replace the built-in cost table (docs/cost-model.md)");
  p.string("--weights-out", &popts.weightsOut, "FILE",
           "write the packed-weight blob (tern-pack-weights out=) to FILE");
  p.integer("-j,--jobs", &jobs, 1, 4096, "N", "threads packing weights (default: every core)");
  p.flag("-q,--quiet", &quiet, "no progress on stderr (the default when stderr is not a terminal)");
  p.flag("-v,--verbose", &verbose, "step timings on stderr even when it is not a terminal");
  p.parsed("--i2s-layout", &iopts.i2sLayout, formats::parseI2SLayout, formats::i2sLayoutChoices(),
           "L",
           "I2_S packing of the input: x86-qk128 (default; alias x86) |\n"
           "arm-qk64 (alias arm) | x86-1x4");
  p.integer("--max-context", &iopts.maxContext, 1, INT32_MAX, "N",
            "KV cache capacity (default: the model's context_length)");
  p.flag("--print-ir-after-all,--mlir-print-ir-after-all", &printAfterAll,
         "print the IR after every pass (stderr)");
  p.flag("--mlir-timing,--timing", &timing, "time every pass (report on stderr)");
  p.flag("--mlir-print-debuginfo", &debugInfo, "print locations (tensor names) in the output");
  p.epilog(kEpilog);
  if (std::optional<int> rc =
          p.parseOrExit(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr))
    return *rc;
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
                      "--emit=import, tern, kernels or ptx");
  if (emit == "ptx" && (!machine || machine->gpuArch.empty()))
    return usageError("--emit=ptx needs a GPU target (--target cuda:sm_80 or cuda:sm_90)");
  if (machine && !machine->gpuArch.empty() && popts.kvType == "f32")
    return usageError("--kv-type f32: the cuda targets' attention reads an f16 KV cache only "
                      "(use --kv-type f16, the default)");
  if (machine && !machine->gpuArch.empty() && codegen &&
      (popts.refKernels || popts.actQuant == "none"))
    return usageError("--target " + popts.target +
                      ": the GPU kernels need --kernel auto and --act-quant token");
  if (machine && machine->refOnly)
    popts.refKernels = true; // the host cannot run any ISA ukernel
  if (popts.decodeBelow != 0 && popts.decodeLayout == "none")
    return usageError("--decode-below needs --decode-layout tl2v");
  if (popts.decodeLayout != "none") {
    // Checked before the model is read (tern-select-kernels checks it
    // again, for tern-opt): the decode copy needs a fast kernel.
    const std::string kt = machine ? machine->kernelTarget : popts.target;
    if (popts.actQuant != "token" || !passes::hasUkernelVariant(popts.decodeLayout, "i8", kt)) {
      std::string with = passes::ukernelIsas(popts.decodeLayout, "i8");
      return usageError(fmt::format(
          "--decode-layout {}: target {} (kernels {}{}) has no {} kernel; targets with one: {}",
          popts.decodeLayout, popts.target, kt, popts.actQuant != "token" ? ", act-quant none" : "",
          popts.decodeLayout, with.empty() ? "none" : with + " (act-quant token)"));
    }
  }
  if (!popts.tuning.empty()) {
    // Checked before the model is read: a bad file fails fast (the pass
    // checks it again, for tern-opt).
    absl::StatusOr<Tuning> t = loadTuning(popts.tuning);
    std::string why = t.ok() ? "" : std::string(t.status().message());
    if (t.ok())
      why = tuningMismatch(*t, *createTargetInfo(popts.target),
                           popts.target == "native" ? llvm::sys::getHostCPUName().str() : "");
    if (!why.empty()) {
      llvm::errs() << "ternc compile: error: " << why << "\n";
      return 1;
    }
  }

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
    auto created = artifact::ArtifactOutput::create(
        out, machine->gpuArch.empty() ? kArtifactSections : kCudaArtifactSections);
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
    popts.lowerToLLVM = emit != "tern" && emit != "kernels" && emit != "ptx";
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
    if (!machine->gpuArch.empty() && ukernels.empty())
      copts.ukernelBitcode = defaultCudaLauncherBitcode(machine->arch());
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
      if (!machine->gpuArch.empty() && !readCudaKernels(machine->gpuArch, in.ptx, in.cubin, err)) {
        llvm::errs() << "ternc compile: " << err << "\n";
        return 1;
      }
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
  if (emit == "ptx") {
    if (!emitCudaPtx(*module, *machine, popts.maxBatch, defaultCudaPtx(machine->gpuArch), text,
                     err)) {
      llvm::errs() << "ternc compile: " << err << "\n";
      return 1;
    }
    file->os() << text;
  } else if (binaryOut || emit == "asm") {
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
