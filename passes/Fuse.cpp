// tern-fuse: rms_norm + activation quantization; q/k/v and gate/up as one
// matmul. Bitlinears become quantize (or rms_norm_quantize) + ternary_matmul.
#include "passes/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/MapVector.h"

namespace tern::passes {
#define GEN_PASS_DEF_FUSEPASS
#include "passes/Passes.h.inc"
} // namespace tern::passes

using namespace mlir;
using namespace tern::ir;

namespace {

struct FusePass : tern::passes::impl::FusePassBase<FusePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    llvm::MapVector<Value, llvm::SmallVector<BitLinearOp>> groups;
    bool ok = true;
    module.walk([&](BitLinearOp op) {
      if (op.getKernelAttr() || op.getPackedAttr()) {
        op.emitOpError() << "already has a kernel; run tern-fuse before tern-select-kernels";
        ok = false;
      }
      groups[op.getInput()].push_back(op);
    });
    if (!ok)
      return signalPassFailure();

    for (auto &[x, ops] : groups) {
      auto xType = cast<RankedTensorType>(x.getType());
      OpBuilder b(x.getContext());
      auto qType = RankedTensorType::get(xType.getShape(), b.getI8Type());
      auto sType = RankedTensorType::get({xType.getDimSize(0)}, b.getF32Type());
      Value q, s;
      auto norm = x.getDefiningOp<RmsNormOp>();
      bool onlyBitlinears =
          llvm::all_of(x.getUsers(), [](Operation *u) { return isa<BitLinearOp>(u); });
      llvm::SmallVector<Location> locs;
      for (BitLinearOp op : ops)
        locs.push_back(op.getLoc());
      if (fuseNorm && norm && onlyBitlinears) {
        b.setInsertionPoint(norm);
        auto fused = RmsNormQuantizeOp::create(b, norm.getLoc(), qType, sType, norm.getInput(),
                                               norm.getWeight(), norm.getEpsAttr());
        q = fused.getQuantized();
        s = fused.getScales();
      } else {
        b.setInsertionPointAfterValue(x);
        auto quant = QuantizeOp::create(b, b.getFusedLoc(locs), qType, sType, x);
        q = quant.getQuantized();
        s = quant.getScales();
      }

      // Bitlinears with the same storage format become one matmul.
      llvm::MapVector<unsigned, llvm::SmallVector<BitLinearOp>> byFormat;
      for (BitLinearOp op : ops) {
        unsigned key = static_cast<unsigned>(op.getWeight().getFormat());
        if (!fuseMatmuls)
          key = byFormat.size();
        byFormat[key].push_back(op);
      }
      for (auto &[key, members] : byFormat) {
        llvm::SmallVector<Attribute> weights;
        llvm::SmallVector<Type> types;
        llvm::SmallVector<Location> mlocs;
        for (BitLinearOp op : members) {
          weights.push_back(op.getWeight());
          types.push_back(op.getType());
          mlocs.push_back(op.getLoc());
        }
        b.setInsertionPoint(members.front());
        auto mm =
            TernaryMatmulOp::create(b, b.getFusedLoc(mlocs), types, q, s, b.getArrayAttr(weights),
                                    nullptr, nullptr, nullptr, nullptr);
        for (auto [op, result] : llvm::zip(members, mm.getResults())) {
          op.getResult().replaceAllUsesWith(result);
          op.erase();
        }
      }
      if (norm && norm->use_empty())
        norm.erase();
    }
  }
};

} // namespace
