#include "compiler/codegen/Codegen.h"

#include <mutex>

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/Bitcode/BitcodeReader.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Verifier.h"
#include "llvm/Linker/Linker.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Triple.h"
#include "llvm/Transforms/IPO/Internalize.h"

#ifndef TERN_UKERNEL_BC_DIR
#define TERN_UKERNEL_BC_DIR ""
#endif
#ifndef TERN_LLD_PATH
#define TERN_LLD_PATH "ld.lld"
#endif

namespace tern::compiler {

namespace {

void initTargets() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeAllTargetInfos();
    llvm::InitializeAllTargets();
    llvm::InitializeAllTargetMCs();
    llvm::InitializeAllAsmPrinters();
    // The ukernel bitcode holds inline assembly (the AMX availability check:
    // cpuid, xgetbv, the arch_prctl syscall); emitting an object from it
    // needs the target's assembly parser.
    llvm::InitializeAllAsmParsers();
  });
}

std::unique_ptr<llvm::TargetMachine> makeTargetMachine(const MachineTarget &t, int optLevel,
                                                       std::string &err) {
  initTargets();
  if (t.triple.empty()) {
    err = "target '" + t.name + "' has no CPU code generation";
    return nullptr;
  }
  llvm::Triple triple(t.triple);
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(triple, err);
  if (!target)
    return nullptr;
  llvm::TargetOptions to;
  llvm::CodeGenOptLevel level = optLevel >= 3   ? llvm::CodeGenOptLevel::Aggressive
                                : optLevel == 2 ? llvm::CodeGenOptLevel::Default
                                : optLevel == 1 ? llvm::CodeGenOptLevel::Less
                                                : llvm::CodeGenOptLevel::None;
  std::unique_ptr<llvm::TargetMachine> tm(target->createTargetMachine(
      triple, t.cpu, t.features, to, llvm::Reloc::PIC_, std::nullopt, level));
  if (!tm)
    err = "cannot create a target machine for " + t.triple + " (" + t.cpu + ")";
  return tm;
}

bool isEntryPoint(const llvm::GlobalValue &gv) {
  return gv.getName() == "tern_model_forward" || gv.getName() == "tern_model_describe";
}

} // namespace

std::string defaultUkernelBitcode(const std::string &arch) {
  std::string dir = TERN_UKERNEL_BC_DIR;
  if (dir.empty() || arch.empty())
    return "";
  return dir + "/ukernels-" + arch + ".bc";
}

std::string defaultCudaLauncherBitcode(const std::string &arch) {
  std::string dir = TERN_UKERNEL_BC_DIR;
  if (dir.empty() || arch.empty())
    return "";
  return dir + "/cuda-launchers-" + arch + ".bc";
}

std::unique_ptr<llvm::Module> buildLLVMModule(mlir::ModuleOp module, llvm::LLVMContext &ctx,
                                              const CodegenOptions &opts, std::string &err) {
  std::unique_ptr<llvm::TargetMachine> tm = makeTargetMachine(opts.target, opts.optLevel, err);
  if (!tm)
    return nullptr;

  // Translate a copy without the tern.* attributes (no translation for them).
  mlir::OwningOpRef<mlir::ModuleOp> copy(module.clone());
  for (mlir::NamedAttribute a : llvm::to_vector(copy.get()->getAttrs()))
    if (a.getName().getValue().starts_with("tern."))
      copy.get()->removeAttr(a.getName());
  mlir::DialectRegistry registry;
  mlir::registerBuiltinDialectTranslation(registry);
  mlir::registerLLVMDialectTranslation(registry);
  module->getContext()->appendDialectRegistry(registry);
  std::unique_ptr<llvm::Module> m = mlir::translateModuleToLLVMIR(*copy, ctx, "tern_model");
  if (!m) {
    err = "translation to LLVM IR failed (is the module in the LLVM dialect? run "
          "tern-lower-to-llvm)";
    return nullptr;
  }
  m->setTargetTriple(llvm::Triple(opts.target.triple));
  m->setDataLayout(tm->createDataLayout());

  if (!opts.ukernelBitcode.empty()) {
    auto buf = llvm::MemoryBuffer::getFile(opts.ukernelBitcode);
    if (!buf) {
      err = "cannot read ukernel bitcode '" + opts.ukernelBitcode +
            "': " + buf.getError().message() + " (build the tern_ukernels_bc target)";
      return nullptr;
    }
    llvm::Expected<std::unique_ptr<llvm::Module>> uk =
        llvm::parseBitcodeFile((*buf)->getMemBufferRef(), ctx);
    if (!uk) {
      err = "bad ukernel bitcode '" + opts.ukernelBitcode + "': " + llvm::toString(uk.takeError());
      return nullptr;
    }
    llvm::Triple ukTriple = (*uk)->getTargetTriple();
    if (ukTriple.getArch() != llvm::Triple(opts.target.triple).getArch()) {
      err = "ukernel bitcode '" + opts.ukernelBitcode + "' is for " + ukTriple.str() + ", not " +
            opts.target.triple;
      return nullptr;
    }
    (*uk)->setTargetTriple(m->getTargetTriple());
    (*uk)->setDataLayout(m->getDataLayout());
    if (llvm::Linker::linkModules(*m, std::move(*uk), llvm::Linker::LinkOnlyNeeded)) {
      err = "linking the ukernel bitcode '" + opts.ukernelBitcode + "' failed";
      return nullptr;
    }
  }

  // Every definition is compiled for the target CPU; ISA kernels keep the
  // features they were written for (merged in).
  for (llvm::Function &f : *m) {
    if (f.isDeclaration())
      continue;
    std::string features = opts.target.features;
    if (f.hasFnAttribute("target-features")) {
      llvm::StringRef own = f.getFnAttribute("target-features").getValueAsString();
      if (!own.empty())
        features = features.empty() ? own.str() : features + "," + own.str();
    }
    f.addFnAttr("target-cpu", opts.target.cpu);
    if (!features.empty())
      f.addFnAttr("target-features", features);
    f.removeFnAttr("tune-cpu");
  }
  for (llvm::Function &f : *m)
    if (!f.isDeclaration() && !isEntryPoint(f))
      f.removeFnAttr(llvm::Attribute::NoInline);

  llvm::internalizeModule(*m, [](const llvm::GlobalValue &gv) { return isEntryPoint(gv); });
  for (const char *name : {"tern_model_forward", "tern_model_describe"})
    if (llvm::Function *f = m->getFunction(name))
      f->setVisibility(llvm::GlobalValue::DefaultVisibility);

  if (llvm::verifyModule(*m, &llvm::errs())) {
    err = "the generated LLVM module does not verify";
    return nullptr;
  }

  if (opts.optLevel > 0) {
    llvm::LoopAnalysisManager lam;
    llvm::FunctionAnalysisManager fam;
    llvm::CGSCCAnalysisManager cgam;
    llvm::ModuleAnalysisManager mam;
    llvm::PassBuilder pb(tm.get());
    pb.registerModuleAnalyses(mam);
    pb.registerCGSCCAnalyses(cgam);
    pb.registerFunctionAnalyses(fam);
    pb.registerLoopAnalyses(lam);
    pb.crossRegisterProxies(lam, fam, cgam, mam);
    llvm::OptimizationLevel level = opts.optLevel >= 3   ? llvm::OptimizationLevel::O3
                                    : opts.optLevel == 2 ? llvm::OptimizationLevel::O2
                                                         : llvm::OptimizationLevel::O1;
    llvm::ModulePassManager mpm = pb.buildPerModuleDefaultPipeline(level);
    mpm.run(*m, mam);
  }
  return m;
}

bool emitMachineCode(llvm::Module &m, const MachineTarget &target, bool asmText,
                     std::vector<uint8_t> &out, std::string &err) {
  std::unique_ptr<llvm::TargetMachine> tm = makeTargetMachine(target, 3, err);
  if (!tm)
    return false;
  llvm::SmallVector<char, 0> buf;
  llvm::raw_svector_ostream os(buf);
  llvm::legacy::PassManager pm;
  if (tm->addPassesToEmitFile(pm, os, nullptr,
                              asmText ? llvm::CodeGenFileType::AssemblyFile
                                      : llvm::CodeGenFileType::ObjectFile)) {
    err = "the target machine cannot emit this file type";
    return false;
  }
  pm.run(m);
  out.assign(buf.begin(), buf.end());
  return true;
}

static std::string findLibm(const std::string &arch) {
  if (arch.empty())
    return "";
  for (std::string dir : {"/lib/" + arch + "-linux-gnu", "/usr/lib/" + arch + "-linux-gnu",
                          "/usr/" + arch + "-linux-gnu/lib"}) {
    std::string p = dir + "/libm.so.6";
    if (llvm::sys::fs::exists(p))
      return p;
  }
  return "";
}

bool linkSharedObject(const std::vector<uint8_t> &object, const std::string &arch,
                      std::vector<uint8_t> &so, std::string &err) {
  llvm::SmallString<128> objPath, soPath;
  if (std::error_code ec = llvm::sys::fs::createTemporaryFile("tern-model", "o", objPath)) {
    err = "cannot create a temporary file: " + ec.message();
    return false;
  }
  if (std::error_code ec = llvm::sys::fs::createTemporaryFile("tern-model", "so", soPath)) {
    llvm::sys::fs::remove(objPath);
    err = "cannot create a temporary file: " + ec.message();
    return false;
  }
  struct Cleanup {
    llvm::SmallString<128> &a, &b;
    ~Cleanup() {
      llvm::sys::fs::remove(a);
      llvm::sys::fs::remove(b);
    }
  } cleanup{objPath, soPath};
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(objPath, ec);
    if (ec) {
      err = "cannot write " + objPath.str().str() + ": " + ec.message();
      return false;
    }
    os.write(reinterpret_cast<const char *>(object.data()), object.size());
  }
  std::string lld = TERN_LLD_PATH;
  if (!llvm::sys::fs::can_execute(lld)) {
    auto found = llvm::sys::findProgramByName("ld.lld-22");
    if (!found)
      found = llvm::sys::findProgramByName("ld.lld");
    if (!found) {
      err = "ld.lld not found (looked for " + lld + ", ld.lld-22, ld.lld)";
      return false;
    }
    lld = *found;
  }
  std::string libm = findLibm(arch);
  llvm::SmallVector<llvm::StringRef> args{
      lld,   "-shared",         "-o",  soPath, "-z", "noexecstack", "-z",
      "now", "--build-id=none", "-O2", objPath};
  if (!libm.empty())
    args.append({"--as-needed", libm});
  std::string msg;
  int rc = llvm::sys::ExecuteAndWait(lld, args, std::nullopt, {}, 0, 0, &msg);
  if (rc != 0) {
    err = "ld.lld failed (" + std::to_string(rc) + ")" + (msg.empty() ? "" : ": " + msg);
    return false;
  }
  auto buf = llvm::MemoryBuffer::getFile(soPath);
  if (!buf) {
    err = "cannot read the linked shared object: " + buf.getError().message();
    return false;
  }
  so.assign((*buf)->getBufferStart(), (*buf)->getBufferEnd());
  return true;
}

} // namespace tern::compiler
