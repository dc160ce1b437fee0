#include "compiler/pipeline/Registration.h"

#include "compiler/pipeline/Pipeline.h"
#include "dialect/TernDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Pass/PassRegistry.h"
#include "passes/Passes.h"

namespace tern::compiler {

namespace {
struct TernPipelineCLOptions : mlir::PassPipelineOptions<TernPipelineCLOptions> {
  Option<std::string> target{*this, "target", llvm::cl::desc("kernel target"),
                             llvm::cl::init("avx2")};
  Option<std::string> kernel{*this, "kernel", llvm::cl::desc("forced kernel layout"),
                             llvm::cl::init("auto")};
  Option<std::string> source{*this, "source", llvm::cl::desc("source GGUF override"),
                             llvm::cl::init("")};
  Option<bool> fuse{*this, "fuse", llvm::cl::desc("run tern-fuse"), llvm::cl::init(true)};
  Option<bool> lower{*this, "lower", llvm::cl::desc("run tern-lower-to-kernels"),
                     llvm::cl::init(true)};
  Option<std::string> actQuant{*this, "act-quant", llvm::cl::desc("token | none"),
                               llvm::cl::init("token")};
  Option<bool> llvm{*this, "llvm", llvm::cl::desc("run tern-lower-to-llvm"), llvm::cl::init(false)};
  Option<bool> explain{*this, "explain", llvm::cl::desc("explain kernel choices"),
                       llvm::cl::init(false)};
};
} // namespace

void registerTernDialects(mlir::DialectRegistry &registry) {
  registry.insert<tern::ir::TernDialect, mlir::func::FuncDialect, mlir::LLVM::LLVMDialect>();
}

void registerTernPasses() {
  tern::passes::registerTernPasses();
  mlir::PassPipelineRegistration<TernPipelineCLOptions>(
      "tern-pipeline",
      "verify-quant-mapping, fuse, select-kernels, pack-weights, lower-to-kernels (as ternc)",
      [](mlir::OpPassManager &pm, const TernPipelineCLOptions &cl) {
        PipelineOptions o;
        o.target = cl.target;
        o.kernel = cl.kernel;
        o.source = cl.source;
        o.fuse = cl.fuse;
        o.lower = cl.lower;
        o.explain = cl.explain;
        o.actQuant = cl.actQuant;
        o.refKernels = cl.kernel == "ref";
        o.lowerToLLVM = cl.llvm;
        buildTernPipeline(pm, o);
      });
}

} // namespace tern::compiler
