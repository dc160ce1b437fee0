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
    s("layout", stringifyKernelLayout(k.getLayout()));
    if (p)
      i("packed_offset", p.getOffset()).i("packed_bytes", p.getBytes());
    return *this;
  }
  DictionaryAttr dict() { return b.getDictionaryAttr(list); }
};

int64_t width(Value v) { return cast<RankedTensorType>(v.getType()).getDimSize(1); }

// LM head variants (f16 and q8) beyond ref (TERN_UK_HEAD_VARIANT in variants.def).
bool hasHeadVariant(llvm::StringRef isa) {
  static const char *const kHeads[] = {
      "ref",
#define TERN_UK_VARIANT(l, a, i)
#define TERN_UK_HEAD_VARIANT(i) #i,
#include "runtime/ukernels/variants.def"
#undef TERN_UK_HEAD_VARIANT
#undef TERN_UK_VARIANT
  };
  for (const char *h : kHeads)
    if (isa == h)
      return true;
  return false;
}

// ISAs with a fast variant of every non-matmul op, attention included
// (TERN_UK_OPS_VARIANT in variants.def).
bool hasOpsVariant(llvm::StringRef isa) {
  static const char *const kIsas[] = {
#define TERN_UK_VARIANT(l, a, i)
#define TERN_UK_OPS_VARIANT(i) #i,
#include "runtime/ukernels/variants.def"
#undef TERN_UK_OPS_VARIANT
#undef TERN_UK_VARIANT
  };
  for (const char *i : kIsas)
    if (isa == i)
      return true;
  return false;
}

// The ISA whose non-matmul ops and LM heads `isa` calls: its own, or the
// one TERN_UK_OPS_FROM in variants.def names (neon_i8mm: neon_dotprod's).
llvm::StringRef opsIsa(llvm::StringRef isa) {
  static const char *const kFrom[][2] = {
#define TERN_UK_VARIANT(l, a, i)
#define TERN_UK_OPS_FROM(i, from) {#i, #from},
#include "runtime/ukernels/variants.def"
#undef TERN_UK_OPS_FROM
#undef TERN_UK_VARIANT
  };
  for (const auto &f : kFrom)
    if (isa == f[0])
      return f[1];
  return isa;
}

// How callees are named (runtime/ukernels/ukernels.h).
struct Naming {
  bool f32act = false;        // --act-quant=none
  bool ref = false;           // --kernel=ref
  std::string isa;            // the module's tern.target (tern-select-kernels); empty: none known
  std::string kvType = "f16"; // the KV cache's element type (kv-type=): f16 | f32
  int64_t decodeBelow = tern::passes::kDefaultDecodeBelow; // the module's tern.decode_below
};

// tern_uk_<op>_<isa> for the ops of ops.h and attention.h (embedding, norms,
// quantization, rope, attention, add, silu/relu2 mul) on the module's target
// ISA (its opsIsa); `_ref` for --kernel=ref or when no target is known;
// `wanted` gets the name asked for when the ISA has no such variant (then
// `_ref`).
// The cuda targets (docs/cuda.md) call launchers tern_uk_<op>_cuda
// (runtime/cuda/launchers.cpp) for every op with a GPU kernel; --kernel=ref
// does not apply there (the CPU `_ref` ukernels cannot read device memory).
bool isCuda(const Naming &nm) { return nm.isa == "cuda"; }
// The ops of ops.h / attention.h with a GPU kernel (runtime/cuda/kernels.h).
bool hasCudaLauncher(llvm::StringRef base) {
  return llvm::is_contained({"tern_uk_embed_f16", "tern_uk_rms_norm_f32",
                             "tern_uk_rms_norm_quantize_i8", "tern_uk_quantize_i8",
                             "tern_uk_rope_neox_f32", "tern_uk_attention_gqa_f16",
                             "tern_uk_add_f32", "tern_uk_silu_mul_f32", "tern_uk_relu2_mul_f32"},
                            base);
}

std::string opCallee(const Naming &nm, llvm::StringRef base, std::string &wanted) {
  if (isCuda(nm))
    return (base + "_cuda").str();
  if (nm.ref || nm.isa.empty())
    return (base + "_ref").str();
  const llvm::StringRef isa = opsIsa(nm.isa);
  if (hasOpsVariant(isa))
    return (base + "_" + isa).str();
  wanted = (base + "_" + isa).str();
  return (base + "_ref").str();
}

// tern_uk_matmul_<layout>[_f32act]_<isa>; `wanted` gets the name the
// kernel choice asked for when the variant does not exist (then `_ref`).
std::string matmulCallee(const Naming &nm, KernelAttr k, std::string &wanted) {
  llvm::StringRef layout = stringifyKernelLayout(k.getLayout());
  llvm::StringRef isa = stringifyIsa(k.getIsa());
  std::string base = ("tern_uk_matmul_" + layout + (nm.f32act ? "_f32act" : "")).str();
  if (isCuda(nm))
    return base + "_cuda";
  if (nm.ref)
    return base + "_ref";
  if (tern::passes::hasUkernelVariant(layout, nm.f32act ? "f32" : "i8", isa))
    return (base + "_" + isa).str();
  wanted = (base + "_" + isa).str();
  return base + "_ref";
}

// The decode copy (decode_kernel / decode_packed, ternc --decode-layout):
// calls of fewer than `decode_below` tokens run `decode_callee` on the
// decode_packed bytes (tern-lower-to-llvm emits the branch).
LogicalResult addDecode(Operation *op, const Naming &nm, Args &a) {
  KernelAttr dk = tern::passes::decodeKernelOf(op);
  if (!dk)
    return success();
  if (nm.f32act)
    return op->emitOpError() << "has a decode_kernel, which only act-quant=token supports";
  std::string wanted, callee = matmulCallee(nm, dk, wanted);
  a.s("decode_callee", callee).s("decode_layout", stringifyKernelLayout(dk.getLayout()));
  a.i("decode_tile_m", dk.getTileM()).i("decode_tile_k", dk.getTileK());
  if (PackedAttr p = tern::passes::decodePackedOf(op))
    a.i("decode_packed_offset", p.getOffset()).i("decode_packed_bytes", p.getBytes());
  a.i("decode_below", nm.decodeBelow);
  if (!wanted.empty())
    a.s("decode_fallback_from", wanted);
  return success();
}

template <typename Op> struct Lower : OpConversionPattern<Op> {
  Lower(MLIRContext *ctx, Naming nm) : OpConversionPattern<Op>(ctx), nm(nm) {}
  using Adaptor = typename OpConversionPattern<Op>::OpAdaptor;

  // The op's callee on the target ISA (opCallee), recording a fallback.
  LogicalResult replaceOp(Op op, ConversionPatternRewriter &rw, llvm::StringRef base,
                          ValueRange args, Args &a) const {
    if (isCuda(nm) && !hasCudaLauncher(base))
      return op.emitOpError() << "has no GPU kernel on the cuda targets (" << base
                              << "; docs/cuda.md)";
    std::string wanted, callee = opCallee(nm, base, wanted);
    return replace(op, rw, callee, args, a, wanted);
  }
  LogicalResult replace(Op op, ConversionPatternRewriter &rw, llvm::StringRef callee,
                        ValueRange args, Args &a, llvm::StringRef wanted = "") const {
    if (!wanted.empty())
      a.s("fallback_from", wanted);
    rw.replaceOpWithNewOp<UKernelCallOp>(op, op->getResultTypes(), rw.getStringAttr(callee), args,
                                         a.dict());
    return success();
  }
  Naming nm;
};

struct LowerEmbed : Lower<EmbedOp> {
  using Lower::Lower;
  LogicalResult matchAndRewrite(EmbedOp op, OpAdaptor ad,
                                ConversionPatternRewriter &rw) const override {
    Args a(op.getContext());
    a.i("vocab", op.getWeight().getRows())
        .i("hidden", op.getWeight().getCols())
        .weight(op.getWeight());
    // One embedding ukernel per table format (ukernels.h): f16 and f32.
    const WeightFormat f = op.getWeight().getFormat();
    if (f != WeightFormat::F16 && f != WeightFormat::F32)
      return op.emitOpError() << "no embedding ukernel reads a " << stringifyWeightFormat(f)
                              << " table (f16 and f32 have one)";
    return replaceOp(op, rw, ("tern_uk_embed_" + stringifyWeightFormat(f)).str(), ad.getOperands(),
                     a);
  }
};

struct LowerNorm : Lower<RmsNormOp> {
  using Lower::Lower;
  LogicalResult matchAndRewrite(RmsNormOp op, OpAdaptor ad,
                                ConversionPatternRewriter &rw) const override {
    Args a(op.getContext());
    a.i("n", width(op.getInput())).f("eps", op.getEpsAttr()).weight(op.getWeight());
    return replaceOp(op, rw, "tern_uk_rms_norm_f32", ad.getOperands(), a);
  }
};

struct LowerNormQuant : Lower<RmsNormQuantizeOp> {
  using Lower::Lower;
  LogicalResult matchAndRewrite(RmsNormQuantizeOp op, OpAdaptor ad,
                                ConversionPatternRewriter &rw) const override {
    Args a(op.getContext());
    a.i("n", width(op.getInput())).f("eps", op.getEpsAttr()).weight(op.getWeight());
    return replaceOp(op, rw, "tern_uk_rms_norm_quantize_i8", ad.getOperands(), a);
  }
};

struct LowerQuant : Lower<QuantizeOp> {
  using Lower::Lower;
  LogicalResult matchAndRewrite(QuantizeOp op, OpAdaptor ad,
                                ConversionPatternRewriter &rw) const override {
    Args a(op.getContext());
    a.i("n", width(op.getInput()));
    return replaceOp(op, rw, "tern_uk_quantize_i8", ad.getOperands(), a);
  }
};

struct LowerBitLinear : Lower<BitLinearOp> {
  using Lower::Lower;
  LogicalResult matchAndRewrite(BitLinearOp op, OpAdaptor ad,
                                ConversionPatternRewriter &rw) const override {
    KernelAttr k = op.getKernelAttr();
    if (!k)
      return rw.notifyMatchFailure(op, "no kernel chosen");
    std::string wanted;
    std::string callee = matmulCallee(nm, k, wanted);
    if (isCuda(nm) && (nm.f32act || k.getLayout() != KernelLayout::I2S))
      return op.emitOpError() << "has no GPU kernel on the cuda targets (only i2s with int8 "
                                 "activations; docs/cuda.md)";
    if (nm.f32act) {
      // Float activations: the matmul reads x itself.
      Args a(op.getContext());
      a.i("m", op.getWeight().getRows()).i("k", op.getWeight().getCols()).i("segments", 1);
      a.i("m0", op.getWeight().getRows());
      a.kernel(k, op.getPackedAttr()).weight(op.getWeight(), "weight0");
      return replace(op, rw, callee, ad.getInput(), a, wanted);
    }
    auto xType = cast<RankedTensorType>(op.getInput().getType());
    auto qType = RankedTensorType::get(xType.getShape(), rw.getI8Type());
    auto sType = RankedTensorType::get({xType.getDimSize(0)}, rw.getF32Type());
    Args qa(op.getContext());
    qa.i("n", xType.getDimSize(1));
    std::string qWanted, qCallee = opCallee(nm, "tern_uk_quantize_i8", qWanted);
    if (!qWanted.empty())
      qa.s("fallback_from", qWanted);
    auto quant =
        UKernelCallOp::create(rw, op.getLoc(), TypeRange{qType, sType}, rw.getStringAttr(qCallee),
                              ValueRange{ad.getInput()}, qa.dict());
    Args a(op.getContext());
    a.i("m", op.getWeight().getRows()).i("k", op.getWeight().getCols()).i("segments", 1);
    a.i("m0", op.getWeight().getRows());
    a.kernel(k, op.getPackedAttr()).weight(op.getWeight(), "weight0");
    if (failed(addDecode(op, nm, a)))
      return failure();
    return replace(op, rw, callee, quant.getResults(), a, wanted);
  }
};

struct LowerMatmul : Lower<TernaryMatmulOp> {
  using Lower::Lower;
  LogicalResult matchAndRewrite(TernaryMatmulOp op, OpAdaptor ad,
                                ConversionPatternRewriter &rw) const override {
    KernelAttr k = op.getKernelAttr();
    if (!k)
      return rw.notifyMatchFailure(op, "no kernel chosen");
    if (nm.f32act)
      return op.emitOpError() << "reads int8 activations but --act-quant=none was asked for "
                                 "(run tern-fuse only with act-quant=token)";
    std::string wanted;
    std::string callee = matmulCallee(nm, k, wanted);
    if (isCuda(nm) && k.getLayout() != KernelLayout::I2S)
      return op.emitOpError() << "has no GPU kernel on the cuda targets (layout '"
                              << stringifyKernelLayout(k.getLayout()) << "'; docs/cuda.md)";
    Args a(op.getContext());
    a.i("m", op.getTotalRows()).i("k", width(op.getInput()));
    a.i("segments", op.getWeights().size()).kernel(k, op.getPackedAttr());
    for (auto [idx, attr] : llvm::enumerate(op.getWeights())) {
      auto w = cast<WeightAttr>(attr);
      a.i(("m" + std::to_string(idx)), w.getRows());
      a.weight(w, "weight" + std::to_string(idx));
    }
    if (failed(addDecode(op, nm, a)))
      return failure();
    return replace(op, rw, callee, ad.getOperands(), a, wanted);
  }
};

struct LowerRope : Lower<RopeOp> {
  using Lower::Lower;
  LogicalResult matchAndRewrite(RopeOp op, OpAdaptor ad,
                                ConversionPatternRewriter &rw) const override {
    Args a(op.getContext());
    a.i("n_heads", op.getNHeads()).i("head_dim", op.getHeadDim()).i("rot_dim", op.getRotDim());
    a.f("freq_base", op.getFreqBaseAttr());
    return replaceOp(op, rw, "tern_uk_rope_neox_f32", ad.getOperands(), a);
  }
};

struct LowerAttention : Lower<AttentionOp> {
  using Lower::Lower;
  LogicalResult matchAndRewrite(AttentionOp op, OpAdaptor ad,
                                ConversionPatternRewriter &rw) const override {
    Args a(op.getContext());
    a.i("layer", op.getLayer()).i("n_heads", op.getNHeads()).i("n_kv_heads", op.getNKvHeads());
    a.i("head_dim", op.getHeadDim()).i("max_ctx", op.getMaxCtx()).f("scale", op.getScaleAttr());
    return replaceOp(op, rw, "tern_uk_attention_gqa_" + nm.kvType, ad.getOperands(), a);
  }
};

template <typename Op> struct LowerElementwise : Lower<Op> {
  // callee: the name without its ISA suffix (opCallee adds it).
  LowerElementwise(MLIRContext *ctx, Naming nm, llvm::StringRef callee)
      : Lower<Op>(ctx, nm), callee(callee.str()) {}
  LogicalResult matchAndRewrite(Op op, typename Lower<Op>::Adaptor ad,
                                ConversionPatternRewriter &rw) const override {
    Args a(op.getContext());
    a.i("n", width(op.getResult()));
    return this->replaceOp(op, rw, callee, ad.getOperands(), a);
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
    if (k.getLayout() != KernelLayout::F16 && k.getLayout() != KernelLayout::Q8)
      return op.emitOpError() << "lm_head layout '" << stringifyKernelLayout(k.getLayout())
                              << "' has no ukernel (only f16 and q8)";
    llvm::StringRef isa = opsIsa(stringifyIsa(k.getIsa()));
    const std::string base =
        std::string("tern_uk_lm_head_") + (k.getLayout() == KernelLayout::Q8 ? "q8_" : "f16_");
    std::string wanted, callee = base + "ref";
    if (isCuda(nm)) {
      if (k.getLayout() != KernelLayout::F16)
        return op.emitOpError() << "lm_head layout '" << stringifyKernelLayout(k.getLayout())
                                << "' has no GPU kernel on the cuda targets (only f16)";
      callee = base + "cuda";
    } else if (!nm.ref) {
      if (hasHeadVariant(isa))
        callee = base + isa.str();
      else
        wanted = base + isa.str();
    }
    return replace(op, rw, callee, ad.getOperands(), a, wanted);
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
      } else if (requirePacked && tern::passes::decodeKernelOf(op) &&
                 !tern::passes::decodePackedOf(op)) {
        op->emitOpError() << "cannot be lowered: decode copy not packed (run tern-pack-weights)";
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
    Naming nm;
    if (actQuant == "none")
      nm.f32act = true;
    else if (actQuant != "token") {
      module.emitError() << "act-quant must be 'token' or 'none', not '" << actQuant << "'";
      return signalPassFailure();
    }
    nm.ref = refKernels;
    if (kvType != "f16" && kvType != "f32") {
      module.emitError() << "kv-type must be 'f16' or 'f32', not '" << kvType << "'";
      return signalPassFailure();
    }
    nm.kvType = kvType;
    if (auto t = module->getAttrOfType<StringAttr>("tern.target"))
      nm.isa = t.getValue().str();
    if (auto d = module->getAttrOfType<IntegerAttr>("tern.decode_below"))
      nm.decodeBelow = d.getInt();
    if (nm.f32act) {
      bool quantized = false;
      module.walk([&](Operation *op) {
        if (isa<QuantizeOp, RmsNormQuantizeOp, TernaryMatmulOp>(op)) {
          op->emitOpError() << "quantizes activations but act-quant=none was asked for "
                               "(with act-quant=none, do not run tern-fuse)";
          quantized = true;
        }
      });
      if (quantized)
        return signalPassFailure();
    }
    RewritePatternSet patterns(ctx);
    patterns.add<LowerEmbed, LowerNorm, LowerNormQuant, LowerQuant, LowerBitLinear, LowerMatmul,
                 LowerRope, LowerAttention, LowerLmHead>(ctx, nm);
    patterns.add<LowerElementwise<SiluMulOp>>(ctx, nm, "tern_uk_silu_mul_f32");
    patterns.add<LowerElementwise<Relu2MulOp>>(ctx, nm, "tern_uk_relu2_mul_f32");
    patterns.add<LowerElementwise<AddOp>>(ctx, nm, "tern_uk_add_f32");
    if (failed(applyFullConversion(module, target, std::move(patterns))))
      return signalPassFailure();
    module->setAttr("tern.level", StringAttr::get(ctx, "kernels"));
    module->setAttr("tern.act_quant", StringAttr::get(ctx, actQuant));
    module->setAttr("tern.kv_type", StringAttr::get(ctx, kvType));
  }
};

} // namespace
