#include "compiler/pipeline/Pipeline.h"

#include "passes/Passes.h"

namespace tern::compiler {

void buildTernPipeline(mlir::OpPassManager &pm, const PipelineOptions &opts) {
  tern::passes::VerifyQuantMappingPassOptions verify;
  verify.source = opts.source;
  pm.addPass(tern::passes::createVerifyQuantMappingPass(verify, opts.io));
  if (opts.fuse && opts.actQuant != "none")
    pm.addPass(tern::passes::createFusePass());
  tern::passes::SelectKernelsPassOptions select;
  select.target = opts.target;
  select.kernel = opts.kernel == "ref" ? std::string("auto") : opts.kernel;
  select.explain = opts.explain;
  select.actQuant = opts.actQuant;
  select.maxBatch = opts.maxBatch;
  select.head = opts.head;
  select.tuning = opts.tuning;
  select.decodeLayout = opts.decodeLayout;
  select.decodeBelow = opts.decodeBelow;
  pm.addPass(tern::passes::createSelectKernelsPass(select));
  tern::passes::PackWeightsPassOptions pack;
  pack.source = opts.source;
  pack.out = opts.weightsOut;
  pm.addPass(tern::passes::createPackWeightsPass(pack, opts.io));
  if (opts.lower) {
    tern::passes::LowerToKernelsPassOptions lower;
    lower.actQuant = opts.actQuant;
    lower.refKernels = opts.refKernels;
    lower.kvType = opts.kvType;
    pm.addPass(tern::passes::createLowerToKernelsPass(lower));
    if (opts.lowerToLLVM) {
      tern::passes::LowerToLLVMPassOptions llvmOpts;
      llvmOpts.maxBatch = opts.maxBatch;
      pm.addPass(tern::passes::createLowerToLLVMPass(llvmOpts));
    }
  }
}

} // namespace tern::compiler
