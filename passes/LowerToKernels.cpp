// tern-lower-to-kernels: every graph op becomes a tern.ukernel_call with
// static shapes, tiles and weight offsets.
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/Transforms/DialectConversion.h"
#include "passes/Common.h"

namespace tern::passes {
#define GEN_PASS_DEF_LOWERTOKERNELSPASS
#include "passes/Passes.h.inc"
} // namespace tern::passes

using namespace mlir;
using namespace tern::ir;

namespace {

struct Args {
  Builder b;
  llvm::SmallVector<NamedAttribute> list;
  explicit Args(MLIRContext *ctx) : b(ctx) {}
  Args &i(llvm::StringRef k, int64_t v) {
    list.push_back(b.getNamedAttr(k, b.getI64IntegerAttr(v)));
    return *this;
  }
  Args &f(llvm::StringRef k, FloatAttr v) {
    list.push_back(b.getNamedAttr(k, v));
    return *this;
  }
  Args &s(llvm::StringRef k, llvm::StringRef v) {
    list.push_back(b.getNamedAttr(k, b.getStringAttr(v)));
    return *this;
  }
  Args &weight(WeightAttr w, llvm::StringRef prefix = "weight") {
    s(prefix, w.getName());
    i((prefix + "_offset").str(), w.getOffset());
    i((prefix + "_bytes").str(), w.getBytes());
    return *this;
  }
  Args &kernel(KernelAttr k, PackedAttr p) {
    i("tile_m", k.getTileM()).i("tile_k", k.getTileK());
    if (p)
      i("packed_offset", p.getOffset()).i("packed_bytes", p.getBytes());
    return *this;
  }
  DictionaryAttr dict() { return b.getDictionaryAttr(list); }
};

int64_t width(Value v) { return cast<RankedTensorType>(v.getType()).getDimSize(1); }

std::string matmulCallee(llvm::StringRef what, KernelAttr k) {
  return ("tern_uk_" + what + "_" + stringifyKernelLayout(k.getLayout()) + "_" +
          stringifyIsa(k.getIsa()))
      .str();
}

template <typename Op>
struct Lower : OpConversionPattern<Op> {
  using OpConversionPattern<Op>::OpConversionPattern;
  using Adaptor = typename OpConversionPattern<Op>::OpAdaptor;

  LogicalResult replace(Op op, ConversionPatternRewriter &rw, llvm::StringRef callee,
                        ValueRange args, Args &a) const {
    rw.replaceOpWithNewOp<UKernelCallOp>(op, op->getResultTypes(), rw.getStringAttr(callee),
                                         args, a.dict());
    return success();
  }
};

struct LowerEmbed : Lower<EmbedOp> {
  using Lower::Lower;
  LogicalResult matchAndRewrite(EmbedOp op, OpAdaptor ad,
                                ConversionPatternRewriter &rw) const override {
    Args a(op.getContext());
    a.i("vocab", op.getWeight().getRows()).i("hidden", op.getWeight().getCols()).weight(op.getWeight());
    std::string callee =
        ("tern_uk_embed_" + stringifyWeightFormat(op.getWeight().getFormat())).str();
    return replace(op, rw, callee, ad.getOperands(), a);
  }
};

struct LowerNorm : Lower<RmsNormOp> {
  using Lower::Lower;
  LogicalResult matchAndRewrite(RmsNormOp op, OpAdaptor ad,
                                ConversionPatternRewriter &rw) const override {
    Args a(op.getContext());
    a.i("n", width(op.getInput())).f("eps", op.getEpsAttr()).weight(op.getWeight());
    return replace(op, rw, "tern_uk_rms_norm_f32", ad.getOperands(), a);
  }
};

struct LowerNormQuant : Lower<RmsNormQuantizeOp> {
  using Lower::Lower;
  LogicalResult matchAndRewrite(RmsNormQuantizeOp op, OpAdaptor ad,
                                ConversionPatternRewriter &rw) const override {
    Args a(op.getContext());
    a.i("n", width(op.getInput())).f("eps", op.getEpsAttr()).weight(op.getWeight());
    return replace(op, rw, "tern_uk_rms_norm_quantize_i8", ad.getOperands(), a);
  }
};

struct LowerQuant : Lower<QuantizeOp> {
  using Lower::Lower;
  LogicalResult matchAndRewrite(QuantizeOp op, OpAdaptor ad,
                                ConversionPatternRewriter &rw) const override {
    Args a(op.getContext());
    a.i("n", width(op.getInput()));
    return replace(op, rw, "tern_uk_quantize_i8", ad.getOperands(), a);
  }
};

struct LowerBitLinear : Lower<BitLinearOp> {
  using Lower::Lower;
  LogicalResult matchAndRewrite(BitLinearOp op, OpAdaptor ad,
                                ConversionPatternRewriter &rw) const override {
    KernelAttr k = op.getKernelAttr();
    if (!k)
      return rw.notifyMatchFailure(op, "no kernel chosen");
    auto xType = cast<RankedTensorType>(op.getInput().getType());
    auto qType = RankedTensorType::get(xType.getShape(), rw.getI8Type());
    auto sType = RankedTensorType::get({xType.getDimSize(0)}, rw.getF32Type());
    Args qa(op.getContext());
    qa.i("n", xType.getDimSize(1));
    auto quant = UKernelCallOp::create(rw, op.getLoc(), TypeRange{qType, sType},
                                       rw.getStringAttr("tern_uk_quantize_i8"),
                                       ValueRange{ad.getInput()}, qa.dict());
    Args a(op.getContext());
    a.i("m", op.getWeight().getRows()).i("k", op.getWeight().getCols()).i("segments", 1);
    a.kernel(k, op.getPackedAttr()).weight(op.getWeight(), "weight0");
    return replace(op, rw, matmulCallee("matmul", k), quant.getResults(), a);
  }
};

struct LowerMatmul : Lower<TernaryMatmulOp> {
  using Lower::Lower;
  LogicalResult matchAndRewrite(TernaryMatmulOp op, OpAdaptor ad,
                                ConversionPatternRewriter &rw) const override {
    KernelAttr k = op.getKernelAttr();
    if (!k)
      return rw.notifyMatchFailure(op, "no kernel chosen");
    Args a(op.getContext());
    a.i("m", op.getTotalRows()).i("k", width(op.getInput()));
    a.i("segments", op.getWeights().size()).kernel(k, op.getPackedAttr());
    for (auto [idx, attr] : llvm::enumerate(op.getWeights())) {
      auto w = cast<WeightAttr>(attr);
      a.i(("m" + std::to_string(idx)), w.getRows());
      a.weight(w, "weight" + std::to_string(idx));
    }
    return replace(op, rw, matmulCallee("matmul", k), ad.getOperands(), a);
  }
};

struct LowerRope : Lower<RopeOp> {
  using Lower::Lower;
  LogicalResult matchAndRewrite(RopeOp op, OpAdaptor ad,
                                ConversionPatternRewriter &rw) const override {
    Args a(op.getContext());
    a.i("n_heads", op.getNHeads()).i("head_dim", op.getHeadDim()).i("rot_dim", op.getRotDim());
    a.f("freq_base", op.getFreqBaseAttr());
    return replace(op, rw, "tern_uk_rope_neox_f32", ad.getOperands(), a);
  }
};

struct LowerAttention : Lower<AttentionOp> {
  using Lower::Lower;
  LogicalResult matchAndRewrite(AttentionOp op, OpAdaptor ad,
                                ConversionPatternRewriter &rw) const override {
    Args a(op.getContext());
    a.i("layer", op.getLayer()).i("n_heads", op.getNHeads()).i("n_kv_heads", op.getNKvHeads());
    a.i("head_dim", op.getHeadDim()).i("max_ctx", op.getMaxCtx()).f("scale", op.getScaleAttr());
    return replace(op, rw, "tern_uk_attention_gqa_f32", ad.getOperands(), a);
  }
};

template <typename Op>
struct LowerElementwise : Lower<Op> {
  LowerElementwise(MLIRContext *ctx, llvm::StringRef callee)
      : Lower<Op>(ctx), callee(callee.str()) {}
  LogicalResult matchAndRewrite(Op op, typename Lower<Op>::Adaptor ad,
                                ConversionPatternRewriter &rw) const override {
    Args a(op.getContext());
    a.i("n", width(op.getResult()));
    return this->replace(op, rw, callee, ad.getOperands(), a);
  }
  std::string callee;
};

struct LowerLmHead : Lower<LmHeadOp> {
  using Lower::Lower;
  LogicalResult matchAndRewrite(LmHeadOp op, OpAdaptor ad,
                                ConversionPatternRewriter &rw) const override {
    KernelAttr k = op.getKernelAttr();
    if (!k)
      return rw.notifyMatchFailure(op, "no kernel chosen");
    Args a(op.getContext());
    a.i("vocab", op.getWeight().getRows()).i("hidden", op.getWeight().getCols());
    a.kernel(k, op.getPackedAttr()).weight(op.getWeight());
    return replace(op, rw, matmulCallee("lm_head", k), ad.getOperands(), a);
  }
};

struct LowerToKernelsPass : tern::passes::impl::LowerToKernelsPassBase<LowerToKernelsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    bool ok = true;
    module.walk([&](Operation *op) {
      if (!tern::passes::matrixInfo(op))
        return;
      if (!tern::passes::kernelOf(op)) {
        op->emitOpError() << "cannot be lowered: no kernel chosen (run tern-select-kernels)";
        ok = false;
      } else if (requirePacked && !tern::passes::packedOf(op)) {
        op->emitOpError() << "cannot be lowered: weight not packed (run tern-pack-weights)";
        ok = false;
      }
    });
    if (!ok)
      return signalPassFailure();

    MLIRContext *ctx = &getContext();
    ConversionTarget target(*ctx);
    target.addLegalDialect<func::FuncDialect>();
    target.addLegalOp<UKernelCallOp, ModuleOp>();
    target.addIllegalDialect<TernDialect>();
    RewritePatternSet patterns(ctx);
    patterns.add<LowerEmbed, LowerNorm, LowerNormQuant, LowerQuant, LowerBitLinear, LowerMatmul,
                 LowerRope, LowerAttention, LowerLmHead>(ctx);
    patterns.add<LowerElementwise<SiluMulOp>>(ctx, "tern_uk_silu_mul_f32");
    patterns.add<LowerElementwise<Relu2MulOp>>(ctx, "tern_uk_relu2_mul_f32");
    patterns.add<LowerElementwise<AddOp>>(ctx, "tern_uk_add_f32");
    if (failed(applyFullConversion(module, target, std::move(patterns))))
      return signalPassFailure();
    module->setAttr("tern.level", StringAttr::get(ctx, "kernels"));
  }
};

} // namespace
