// tern-lower-to-llvm: func @forward of tern.ukernel_call ops becomes the ABI
// entry points (runtime/abi/tern_abi.h) in the LLVM dialect:
//
//   i32 tern_model_forward(const tern_ctx *ctx, const tern_batch *batch)
//   const tern_model_desc *tern_model_describe(void)
//
// plus declarations of the ukernels called. Every shape, tile and weight
// offset is a constant; only the batch (n tokens of several sequences, n_out
// logit rows) is dynamic. The attention ukernels also get the batch's
// per-token sequence ids; the final norm and the lm_head run on the n_out
// rows only (gathered into a scratch slot of their own). docs/codegen.md.
#include "passes/Passes.h"
#include "runtime/abi/tern_abi.h"

#include <cstddef>
#include <map>
#include <string>

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

namespace tern::passes {
#define GEN_PASS_DEF_LOWERTOLLVMPASS
#include "passes/Passes.h.inc"
} // namespace tern::passes

using namespace mlir;
using namespace tern::ir;

namespace {

constexpr int64_t kAlign = 64;
int64_t alignUp(int64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

// Byte offsets in tern_ctx and tern_batch (tern_abi.h, LP64 targets).
constexpr int64_t kCtxWeights = offsetof(tern_ctx, weights);
constexpr int64_t kCtxScratch = offsetof(tern_ctx, scratch);
constexpr int64_t kCtxNSeq = offsetof(tern_ctx, kv) + offsetof(tern_kv_view, n_seq);
constexpr int64_t kCtxTid = offsetof(tern_ctx, tid);
constexpr int64_t kCtxNThreads = offsetof(tern_ctx, nthreads);
constexpr int64_t kCtxBarrierArg = offsetof(tern_ctx, barrier_arg);
constexpr int64_t kCtxBarrier = offsetof(tern_ctx, barrier);
constexpr int64_t kBatchN = offsetof(tern_batch, n);
constexpr int64_t kBatchTokens = offsetof(tern_batch, tokens);
constexpr int64_t kBatchPositions = offsetof(tern_batch, positions);
constexpr int64_t kBatchSeq = offsetof(tern_batch, seq);
constexpr int64_t kBatchNOut = offsetof(tern_batch, n_out);
constexpr int64_t kBatchOutRows = offsetof(tern_batch, out_rows);
constexpr int64_t kBatchLogits = offsetof(tern_batch, logits);

int64_t argInt(UKernelCallOp op, llvm::StringRef key, int64_t dflt = -1) {
  if (auto a = dyn_cast_or_null<IntegerAttr>(op.getStaticArgs().get(key)))
    return a.getInt();
  return dflt;
}
FloatAttr argFloat(UKernelCallOp op, llvm::StringRef key) {
  return dyn_cast_or_null<FloatAttr>(op.getStaticArgs().get(key));
}
llvm::StringRef argStr(UKernelCallOp op, llvm::StringRef key) {
  if (auto a = dyn_cast_or_null<StringAttr>(op.getStaticArgs().get(key)))
    return a.getValue();
  return "";
}

// Per-token bytes of an activation value ([?, W] x elt, or [?] x elt).
int64_t bytesPerToken(Value v) {
  auto t = cast<RankedTensorType>(v.getType());
  int64_t elems = t.getRank() == 2 ? t.getDimSize(1) : 1;
  return elems * int64_t(t.getElementType().getIntOrFloatBitWidth() / 8);
}

enum class Kind {
  Embed,
  RmsNorm,
  RmsNormQuant,
  Quant,
  Matmul,
  MatmulF32,
  Rope,
  Attention,
  Binary,
  LmHead,
  Unknown
};

Kind kindOf(llvm::StringRef callee) {
  if (callee.starts_with("tern_uk_embed_f16") || callee.starts_with("tern_uk_embed_f32"))
    return Kind::Embed;
  if (callee.starts_with("tern_uk_rms_norm_quantize_i8"))
    return Kind::RmsNormQuant;
  if (callee.starts_with("tern_uk_rms_norm_f32"))
    return Kind::RmsNorm;
  if (callee.starts_with("tern_uk_quantize_i8"))
    return Kind::Quant;
  if (callee.starts_with("tern_uk_matmul_"))
    return callee.contains("_f32act_") ? Kind::MatmulF32 : Kind::Matmul;
  if (callee.starts_with("tern_uk_rope_neox_f32"))
    return Kind::Rope;
  if (callee.starts_with("tern_uk_attention_gqa_f32") ||
      callee.starts_with("tern_uk_attention_gqa_f16"))
    return Kind::Attention;
  if (callee.starts_with("tern_uk_add_f32") || callee.starts_with("tern_uk_silu_mul_f32") ||
      callee.starts_with("tern_uk_relu2_mul_f32"))
    return Kind::Binary;
  if (callee.starts_with("tern_uk_lm_head_f16") || callee.starts_with("tern_uk_lm_head_q8"))
    return Kind::LmHead;
  return Kind::Unknown;
}

struct LowerToLLVMPass : tern::passes::impl::LowerToLLVMPassBase<LowerToLLVMPass> {
  using Base::Base;

  void runOnOperation() override;
};

void LowerToLLVMPass::runOnOperation() {
  ModuleOp module = getOperation();
  MLIRContext *ctx = &getContext();
  auto fwd = module.lookupSymbol<func::FuncOp>("forward");
  if (!fwd || fwd.getBody().getBlocks().size() != 1) {
    module.emitError() << "tern-lower-to-llvm expects one single-block func @forward "
                          "(run tern-lower-to-kernels first)";
    return signalPassFailure();
  }
  Block &body = fwd.getBody().front();
  if (fwd.getNumArguments() != 2) {
    fwd.emitError() << "@forward must take (tokens, positions)";
    return signalPassFailure();
  }
  auto ret = dyn_cast<func::ReturnOp>(body.getTerminator());
  if (!ret || ret.getNumOperands() != 1) {
    fwd.emitError() << "@forward must return the logits";
    return signalPassFailure();
  }
  Value logitsValue = ret.getOperand(0);

  llvm::SmallVector<UKernelCallOp> calls;
  for (Operation &op : body.without_terminator()) {
    auto call = dyn_cast<UKernelCallOp>(op);
    if (!call) {
      op.emitOpError() << "cannot be lowered to LLVM: only tern.ukernel_call may appear in "
                          "@forward (run tern-lower-to-kernels first)";
      return signalPassFailure();
    }
    if (kindOf(call.getCallee()) == Kind::Unknown) {
      call.emitOpError() << "calls '" << call.getCallee() << "', which is no known ukernel";
      return signalPassFailure();
    }
    if (!argStr(call, "decode_callee").empty() &&
        (kindOf(call.getCallee()) != Kind::Matmul || argInt(call, "decode_packed_offset") < 0 ||
         argInt(call, "decode_tile_m") <= 0 || argInt(call, "decode_tile_k") <= 0 ||
         argInt(call, "decode_below") < 2)) {
      call.emitOpError() << "has a decode_callee but is no int8 matmul with decode_packed_offset, "
                            "decode_tile_m, decode_tile_k and decode_below >= 2";
      return signalPassFailure();
    }
    calls.push_back(call);
  }
  auto lmHead = logitsValue.getDefiningOp<UKernelCallOp>();
  if (!lmHead || kindOf(lmHead.getCallee()) != Kind::LmHead) {
    fwd.emitError() << "@forward must return the result of an lm_head ukernel";
    return signalPassFailure();
  }

  // ---- weights section layout: packed blob, then the raw tensors read ----
  int64_t packedBytes = 0;
  if (auto a = module->getAttrOfType<IntegerAttr>("tern.packed_bytes"))
    packedBytes = a.getInt();
  int64_t dataOffset = 0;
  if (auto a = module->getAttrOfType<IntegerAttr>("tern.data_offset"))
    dataOffset = a.getInt();
  int64_t cursor = alignUp(packedBytes);
  llvm::StringMap<int64_t> rawOffset;
  // A tied f16 head is packed as the GGUF's bytes (tern-pack-weights'
  // packDense): the embedding reads the same bytes there, not a copy.
  for (UKernelCallOp call : calls)
    if (kindOf(call.getCallee()) == Kind::LmHead && argStr(call, "layout") == "f16" &&
        !argStr(call, "weight").empty() && argInt(call, "packed_offset") >= 0 &&
        argInt(call, "packed_bytes") == argInt(call, "weight_bytes"))
      rawOffset[argStr(call, "weight")] = argInt(call, "packed_offset");
  llvm::SmallVector<Attribute> layout;
  Builder b0(ctx);
  for (UKernelCallOp call : calls) {
    if (argInt(call, "packed_offset") >= 0)
      continue; // reads packed weights only
    llvm::StringRef name = argStr(call, "weight");
    if (name.empty())
      continue;
    int64_t src = argInt(call, "weight_offset"), bytes = argInt(call, "weight_bytes");
    if (src < 0 || bytes <= 0) {
      call.emitOpError() << "weight '" << name << "' has no weight_offset/weight_bytes";
      return signalPassFailure();
    }
    auto [it, inserted] = rawOffset.try_emplace(name, cursor);
    if (!inserted && argInt(call, "weight_bytes") > 0 && it->second < alignUp(packedBytes) &&
        kindOf(call.getCallee()) != Kind::Embed) {
      call.emitOpError() << "weight '" << name
                         << "' is shared with a packed head, which only "
                            "the f16 embedding may read";
      return signalPassFailure();
    }
    if (inserted) {
      layout.push_back(b0.getDictionaryAttr({
          b0.getNamedAttr("name", b0.getStringAttr(name)),
          b0.getNamedAttr("source_offset", b0.getI64IntegerAttr(dataOffset + src)),
          b0.getNamedAttr("bytes", b0.getI64IntegerAttr(bytes)),
          b0.getNamedAttr("offset", b0.getI64IntegerAttr(cursor)),
      }));
      cursor = alignUp(cursor + bytes);
    }
    // Static args now name the weights-section offset; the GGUF one stays.
    NamedAttrList args(call.getStaticArgs());
    args.set("weight_source_offset", b0.getI64IntegerAttr(src));
    args.set("weight_offset", b0.getI64IntegerAttr(it->second));
    call.setStaticArgsAttr(args.getDictionary(ctx));
  }
  const int64_t weightsBytes = cursor;
  module->setAttr("tern.weights", b0.getArrayAttr(layout));
  module->setAttr("tern.weights_bytes", b0.getI64IntegerAttr(weightsBytes));

  // ---- the kernel list (JSON) ----
  llvm::json::Array kernels;
  for (UKernelCallOp call : calls) {
    llvm::json::Object o;
    o["callee"] = call.getCallee().str();
    llvm::json::Array ws;
    for (llvm::StringRef key : {"weight", "weight0", "weight1", "weight2"})
      if (!argStr(call, key).empty())
        ws.push_back(argStr(call, key).str());
    if (!ws.empty())
      o["weights"] = std::move(ws);
    for (llvm::StringRef key : {"m", "k", "tile_m", "tile_k", "layer"})
      if (argInt(call, key) >= 0)
        o[key] = argInt(call, key);
    if (!argStr(call, "layout").empty())
      o["layout"] = argStr(call, "layout").str();
    if (!argStr(call, "fallback_from").empty())
      o["fallback_from"] = argStr(call, "fallback_from").str();
    if (!argStr(call, "decode_callee").empty()) {
      // The decode copy (ternc --decode-layout): what calls of fewer than
      // `below` tokens run instead.
      llvm::json::Object d;
      d["callee"] = argStr(call, "decode_callee").str();
      d["layout"] = argStr(call, "decode_layout").str();
      d["tile_m"] = argInt(call, "decode_tile_m");
      d["tile_k"] = argInt(call, "decode_tile_k");
      d["below"] = argInt(call, "decode_below");
      d["packed_bytes"] = argInt(call, "decode_packed_bytes");
      o["packed_bytes"] = argInt(call, "packed_bytes"); // what decode steps do not read
      if (!argStr(call, "decode_fallback_from").empty())
        d["fallback_from"] = argStr(call, "decode_fallback_from").str();
      o["decode"] = std::move(d);
    }
    kernels.push_back(std::move(o));
  }
  std::string kernelsJson = llvm::formatv("{0}", llvm::json::Value(std::move(kernels))).str();
  module->setAttr("tern.kernels_json", b0.getStringAttr(kernelsJson));

  // ---- scratch planning: one slot per value, reused by liveness ----
  llvm::DenseMap<Operation *, size_t> index;
  for (auto [i, call] : llvm::enumerate(calls))
    index[call] = i;
  llvm::DenseMap<Value, size_t> lastUse;
  for (UKernelCallOp call : calls)
    for (Value v : call.getArgs())
      lastUse[v] = index[call];
  // The final norm feeding the lm_head (when it is its only user) and the
  // lm_head run on the output rows only, gathered into a slot of their own.
  UKernelCallOp finalNorm = lmHead.getArgs()[0].getDefiningOp<UKernelCallOp>();
  if (finalNorm &&
      (kindOf(finalNorm.getCallee()) != Kind::RmsNorm || !finalNorm.getResult(0).hasOneUse()))
    finalNorm = nullptr;
  // They are emitted after every other call: keep their inputs alive to the end.
  if (finalNorm) {
    lastUse[finalNorm.getArgs()[0]] = calls.size();
    lastUse[finalNorm.getResult(0)] = calls.size();
  } else {
    lastUse[lmHead.getArgs()[0]] = calls.size();
  }

  struct Slot {
    int64_t width; // bytes per token, multiple of 64
    bool busy;
  };
  std::vector<Slot> slots;
  llvm::DenseMap<Value, size_t> slotOf;
  for (UKernelCallOp call : calls) {
    size_t i = index[call];
    for (Value r : call.getResults()) {
      if (r == logitsValue)
        continue;
      int64_t w = alignUp(bytesPerToken(r));
      size_t best = slots.size();
      for (size_t s = 0; s < slots.size(); ++s)
        if (!slots[s].busy && slots[s].width == w) {
          best = s;
          break;
        }
      if (best == slots.size())
        slots.push_back({w, false});
      slots[best].busy = true;
      slotOf[r] = best;
      if (r.use_empty())
        slots[best].busy = false;
    }
    for (Value v : call.getArgs())
      if (lastUse.lookup(v) == i && slotOf.count(v))
        slots[slotOf[v]].busy = false;
  }
  std::vector<int64_t> slotPrefix(slots.size());
  int64_t scratchPerToken = 0;
  for (size_t s = 0; s < slots.size(); ++s) {
    slotPrefix[s] = scratchPerToken;
    scratchPerToken += slots[s].width;
  }
  // The gathered output rows: [n_out <= n][row of the head's input].
  Value headIn = finalNorm ? finalNorm.getArgs()[0] : lmHead.getArgs()[0];
  const int64_t gatherRow = bytesPerToken(headIn);
  const int64_t gatherPrefix = scratchPerToken;
  scratchPerToken += alignUp(gatherRow);
  const int64_t scratchFixed = 0;
  module->setAttr("tern.scratch_per_token", b0.getI64IntegerAttr(scratchPerToken));
  module->setAttr("tern.scratch_fixed", b0.getI64IntegerAttr(scratchFixed));
  module->setAttr("tern.max_batch", b0.getI64IntegerAttr(maxBatch));

  // ---- hyperparameters for the descriptor ----
  auto hp = module->getAttrOfType<DictionaryAttr>("tern.hparams");
  auto hpInt = [&](llvm::StringRef k) -> int64_t {
    if (hp)
      if (auto a = dyn_cast_or_null<IntegerAttr>(hp.get(k)))
        return a.getInt();
    return 0;
  };
  int64_t maxCtx = hpInt("context");
  for (UKernelCallOp call : calls)
    if (kindOf(call.getCallee()) == Kind::Attention && argInt(call, "max_ctx") > 0)
      maxCtx = argInt(call, "max_ctx");
  bool actQuant = true;
  if (auto a = module->getAttrOfType<StringAttr>("tern.act_quant"))
    actQuant = a.getValue() != "none";

  // ---- emit ----
  OpBuilder b(ctx);
  b.setInsertionPointToEnd(module.getBody());
  Location loc = fwd.getLoc();
  auto ptrTy = LLVM::LLVMPointerType::get(ctx);
  auto i8 = b.getI8Type();
  auto i32 = b.getI32Type();
  auto i64 = b.getI64Type();
  auto f32 = b.getF32Type();
  auto voidTy = LLVM::LLVMVoidType::get(ctx);

  // cuda targets (docs/cuda.md): the host code must not touch scratch.
  const bool cudaTarget = [&] {
    auto t = module->getAttrOfType<StringAttr>("tern.target");
    return t && t.getValue() == "cuda";
  }();

  // Ukernel declarations, with the C signature of ukernels.h.
  llvm::StringMap<LLVM::LLVMFuncOp> decls;
  auto declareName = [&](llvm::StringRef name) -> LLVM::LLVMFuncOp {
    if (auto it = decls.find(name); it != decls.end())
      return it->second;
    llvm::SmallVector<Type> a{ptrTy, i64};
    switch (kindOf(name)) {
    case Kind::Embed:
      a.append({ptrTy, ptrTy, ptrTy, i64, i64});
      break;
    case Kind::RmsNorm:
      a.append({ptrTy, ptrTy, ptrTy, i64, f32});
      break;
    case Kind::RmsNormQuant:
      a.append({ptrTy, ptrTy, ptrTy, ptrTy, i64, f32});
      break;
    case Kind::Quant:
      a.append({ptrTy, ptrTy, ptrTy, i64});
      break;
    case Kind::Matmul:
      a.append({ptrTy, ptrTy, ptrTy, i64, i64, i64, i64, ptrTy, i64, ptrTy, i64, ptrTy, i64});
      break;
    case Kind::MatmulF32:
      a.append({ptrTy, ptrTy, i64, i64, i64, i64, ptrTy, i64, ptrTy, i64, ptrTy, i64});
      break;
    case Kind::Rope:
      a.append({ptrTy, ptrTy, ptrTy, i64, i64, i64, f32});
      break;
    case Kind::Attention: // q, k, v, pos, seq, out
      a.append({ptrTy, ptrTy, ptrTy, ptrTy, ptrTy, ptrTy, i64, i64, i64, i64, f32});
      break;
    case Kind::Binary:
      a.append({ptrTy, ptrTy, ptrTy, i64});
      break;
    case Kind::LmHead:
      a.append({ptrTy, ptrTy, ptrTy, i64, i64, i64, i64});
      break;
    case Kind::Unknown:
      break;
    }
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(module.getBody());
    auto f = LLVM::LLVMFuncOp::create(b, loc, name, LLVM::LLVMFunctionType::get(voidTy, a));
    decls[name] = f;
    return f;
  };
  auto declare = [&](UKernelCallOp call) { return declareName(call.getCallee()); };

  auto fnTy = LLVM::LLVMFunctionType::get(i32, {ptrTy, ptrTy});
  auto entry = LLVM::LLVMFuncOp::create(b, loc, "tern_model_forward", fnTy);
  Block *eb = entry.addEntryBlock(b);
  Region &rg = entry.getBody();
  auto newBlock = [&](bool withIndex) {
    Block *blk = new Block();
    rg.push_back(blk);
    if (withIndex)
      blk->addArgument(i64, loc);
    return blk;
  };
  Block *tokHead = newBlock(true), *tokBody = newBlock(false), *outHead = newBlock(true),
        *outBody = newBlock(false), *run = newBlock(false), *fail = newBlock(false);
  Value cctx = eb->getArgument(0), batch = eb->getArgument(1);

  auto c64 = [&](int64_t v) -> Value { return LLVM::ConstantOp::create(b, loc, i64, v); };
  auto gep = [&](Value base, Value off) -> Value {
    return LLVM::GEPOp::create(b, loc, ptrTy, i8, base, ValueRange{off});
  };
  auto loadAt = [&](Type t, Value base, int64_t off) -> Value {
    return LLVM::LoadOp::create(b, loc, t, gep(base, c64(off)));
  };
  auto icmp = [&](LLVM::ICmpPredicate p, Value x, Value y) -> Value {
    return LLVM::ICmpOp::create(b, loc, p, x, y);
  };
  // i32 element i of `base`, sign-extended.
  auto elem = [&](Value base, Value i) -> Value {
    Value ptr = LLVM::GEPOp::create(b, loc, ptrTy, i32, base, ValueRange{i});
    return LLVM::SExtOp::create(b, loc, i64, LLVM::LoadOp::create(b, loc, i32, ptr));
  };
  using P = LLVM::ICmpPredicate;

  // entry: the batch's fields; 1 <= n <= max_batch, 0 <= n_out <= n.
  b.setInsertionPointToEnd(eb);
  Value n = loadAt(i64, batch, kBatchN), tokens = loadAt(ptrTy, batch, kBatchTokens),
        positions = loadAt(ptrTy, batch, kBatchPositions), seqs = loadAt(ptrTy, batch, kBatchSeq),
        nOut = loadAt(i64, batch, kBatchNOut), outRows = loadAt(ptrTy, batch, kBatchOutRows),
        logits = loadAt(ptrTy, batch, kBatchLogits), nSeq = loadAt(i64, cctx, kCtxNSeq);
  Value ok = LLVM::AndOp::create(b, loc, icmp(P::sge, n, c64(1)), icmp(P::sle, n, c64(maxBatch)));
  ok = LLVM::AndOp::create(b, loc, ok, icmp(P::sge, nOut, c64(0)));
  ok = LLVM::AndOp::create(b, loc, ok, icmp(P::sle, nOut, n));
  LLVM::CondBrOp::create(b, loc, ok, tokHead, ValueRange{c64(0)}, fail, ValueRange{});
  // every token: 0 <= position < max_ctx, 0 <= seq < n_seq
  b.setInsertionPointToEnd(tokHead);
  Value ti = tokHead->getArgument(0);
  LLVM::CondBrOp::create(b, loc, icmp(P::slt, ti, n), tokBody, ValueRange{}, outHead,
                         ValueRange{c64(0)});
  b.setInsertionPointToEnd(tokBody);
  Value bad = LLVM::OrOp::create(b, loc, icmp(P::uge, elem(positions, ti), c64(maxCtx)),
                                 icmp(P::uge, elem(seqs, ti), nSeq));
  LLVM::CondBrOp::create(b, loc, bad, fail, ValueRange{}, tokHead,
                         ValueRange{LLVM::AddOp::create(b, loc, ti, c64(1))});
  // every output row: 0 <= out_rows[j] < n
  b.setInsertionPointToEnd(outHead);
  Value oj = outHead->getArgument(0);
  LLVM::CondBrOp::create(b, loc, icmp(P::slt, oj, nOut), outBody, ValueRange{}, run, ValueRange{});
  b.setInsertionPointToEnd(outBody);
  LLVM::CondBrOp::create(b, loc, icmp(P::uge, elem(outRows, oj), n), fail, ValueRange{}, outHead,
                         ValueRange{LLVM::AddOp::create(b, loc, oj, c64(1))});
  b.setInsertionPointToEnd(fail);
  LLVM::ReturnOp::create(b, loc, ValueRange{LLVM::ConstantOp::create(b, loc, i32, 1)});

  // run: the calls.
  b.setInsertionPointToEnd(run);
  Value weights = LLVM::LoadOp::create(b, loc, ptrTy, gep(cctx, c64(kCtxWeights)));
  Value scratch = LLVM::LoadOp::create(b, loc, ptrTy, gep(cctx, c64(kCtxScratch)));
  Value nullPtr = LLVM::ZeroOp::create(b, loc, ptrTy);
  BlockArgument tokArg = body.getArgument(0), posArg = body.getArgument(1);
  Value gathered = gep(scratch, LLVM::MulOp::create(b, loc, n, c64(gatherPrefix)));

  auto ptrOf = [&](Value v) -> Value {
    if (v == tokArg)
      return tokens;
    if (v == posArg)
      return positions;
    if (v == logitsValue)
      return logits;
    size_t s = slotOf.lookup(v);
    return gep(scratch, LLVM::MulOp::create(b, loc, n, c64(slotPrefix[s])));
  };
  auto weightPtr = [&](int64_t off) -> Value { return gep(weights, c64(off)); };
  auto fconst = [&](FloatAttr a) -> Value {
    return LLVM::ConstantOp::create(b, loc, f32, b.getF32FloatAttr(a ? a.getValueAsDouble() : 0));
  };

  // The head: the final norm and the lm_head run last, on the n_out rows.
  // In a parallel region (ABI 4: ctx->nthreads > 1, every thread runs this
  // function) each thread gathers its slice [n_out*tid/T, n_out*(tid+1)/T)
  // of the rows, then all meet at ctx->barrier before the head reads them.
  auto emitHead = [&]() -> LogicalResult {
    Block *gHead = newBlock(true), *gBody = newBlock(false), *sync = newBlock(false),
          *wait = newBlock(false), *head = newBlock(false), *done = newBlock(false);
    Value nthr32 = loadAt(i32, cctx, kCtxNThreads), tid32 = loadAt(i32, cctx, kCtxTid);
    Value inRegion = icmp(P::sgt, nthr32, LLVM::ConstantOp::create(b, loc, i32, 1));
    Value threads =
        LLVM::SelectOp::create(b, loc, inRegion, LLVM::SExtOp::create(b, loc, i64, nthr32), c64(1));
    Value tid =
        LLVM::SelectOp::create(b, loc, inRegion, LLVM::SExtOp::create(b, loc, i64, tid32), c64(0));
    Value j0 = LLVM::SDivOp::create(b, loc, LLVM::MulOp::create(b, loc, nOut, tid), threads);
    Value j1 = LLVM::SDivOp::create(
        b, loc, LLVM::MulOp::create(b, loc, nOut, LLVM::AddOp::create(b, loc, tid, c64(1))),
        threads);
    LLVM::CondBrOp::create(b, loc, icmp(P::sgt, nOut, c64(0)), gHead, ValueRange{j0}, done,
                           ValueRange{});
    if (cudaTarget) {
      // cuda targets: scratch is device memory, so the rows are gathered by
      // a GPU kernel (runtime/cuda/launchers.cpp), in one call (no region).
      gBody->erase();
      b.setInsertionPointToEnd(gHead);
      LLVM::LLVMFuncOp gather;
      {
        OpBuilder::InsertionGuard g(b);
        b.setInsertionPointToStart(module.getBody());
        gather = LLVM::LLVMFuncOp::create(
            b, loc, "tern_uk_gather_rows_cuda",
            LLVM::LLVMFunctionType::get(voidTy, {ptrTy, i64, ptrTy, ptrTy, ptrTy, i64}));
      }
      LLVM::CallOp::create(
          b, loc, gather, ValueRange{cctx, nOut, outRows, ptrOf(headIn), gathered, c64(gatherRow)});
      LLVM::BrOp::create(b, loc, ValueRange{}, sync);
    } else {
      // gather: row j of `gathered` = row out_rows[j] of the head's input
      b.setInsertionPointToEnd(gHead);
      Value j = gHead->getArgument(0);
      LLVM::CondBrOp::create(b, loc, icmp(P::slt, j, j1), gBody, ValueRange{}, sync, ValueRange{});
      b.setInsertionPointToEnd(gBody);
      Value src = gep(ptrOf(headIn), LLVM::MulOp::create(b, loc, elem(outRows, j), c64(gatherRow)));
      Value dst = gep(gathered, LLVM::MulOp::create(b, loc, j, c64(gatherRow)));
      LLVM::MemcpyOp::create(b, loc, dst, src, c64(gatherRow), /*isVolatile=*/false);
      LLVM::BrOp::create(b, loc, ValueRange{LLVM::AddOp::create(b, loc, j, c64(1))}, gHead);
    }
    b.setInsertionPointToEnd(sync);
    LLVM::CondBrOp::create(b, loc, inRegion, wait, ValueRange{}, head, ValueRange{});
    b.setInsertionPointToEnd(wait);
    Value barrierFn = loadAt(ptrTy, cctx, kCtxBarrier);
    Value barrierArg = loadAt(ptrTy, cctx, kCtxBarrierArg);
    LLVM::CallOp::create(b, loc, LLVM::LLVMFunctionType::get(voidTy, {ptrTy, i32}),
                         ValueRange{barrierFn, barrierArg, tid32});
    LLVM::BrOp::create(b, loc, ValueRange{}, head);
    b.setInsertionPointToEnd(head);
    Value x = gathered;
    if (finalNorm) {
      llvm::SmallVector<Value> a{cctx,
                                 nOut,
                                 gathered,
                                 weightPtr(argInt(finalNorm, "weight_offset")),
                                 ptrOf(finalNorm.getResult(0)),
                                 c64(argInt(finalNorm, "n")),
                                 fconst(argFloat(finalNorm, "eps"))};
      LLVM::LLVMFuncOp callee = declare(finalNorm);
      if (a.size() != callee.getFunctionType().getNumParams())
        return finalNorm.emitOpError() << "static arguments do not fit the ukernel signature of '"
                                       << finalNorm.getCallee() << "'";
      LLVM::CallOp::create(b, finalNorm.getLoc(), callee, a);
      x = ptrOf(finalNorm.getResult(0));
    }
    llvm::SmallVector<Value> a{cctx,
                               nOut,
                               x,
                               weightPtr(argInt(lmHead, "packed_offset")),
                               logits,
                               c64(argInt(lmHead, "hidden")),
                               c64(argInt(lmHead, "vocab")),
                               c64(argInt(lmHead, "tile_m")),
                               c64(argInt(lmHead, "tile_k"))};
    LLVM::LLVMFuncOp callee = declare(lmHead);
    if (a.size() != callee.getFunctionType().getNumParams())
      return lmHead.emitOpError() << "static arguments do not fit the ukernel signature of '"
                                  << lmHead.getCallee() << "'";
    LLVM::CallOp::create(b, lmHead.getLoc(), callee, a);
    LLVM::BrOp::create(b, loc, ValueRange{}, done);
    b.setInsertionPointToEnd(done);
    return success();
  };

  for (UKernelCallOp call : calls) {
    if (call == finalNorm || call == lmHead)
      continue;
    LLVM::LLVMFuncOp callee = declare(call);
    llvm::SmallVector<Value> a{cctx, n};
    // The decode copy's call (matmuls with a decode_callee): the same
    // arguments but its packed bytes and tiles.
    llvm::SmallVector<Value> decodeArgs;
    auto in = [&](unsigned i) { return ptrOf(call.getArgs()[i]); };
    auto out = [&](unsigned i) { return ptrOf(call.getResult(i)); };
    switch (kindOf(call.getCallee())) {
    case Kind::Embed:
      a.append({in(0), weightPtr(argInt(call, "weight_offset")), out(0),
                c64(argInt(call, "hidden")), c64(argInt(call, "vocab"))});
      break;
    case Kind::RmsNorm:
      a.append({in(0), weightPtr(argInt(call, "weight_offset")), out(0), c64(argInt(call, "n")),
                fconst(argFloat(call, "eps"))});
      break;
    case Kind::RmsNormQuant:
      a.append({in(0), weightPtr(argInt(call, "weight_offset")), out(0), out(1),
                c64(argInt(call, "n")), fconst(argFloat(call, "eps"))});
      break;
    case Kind::Quant:
      a.append({in(0), out(0), out(1), c64(argInt(call, "n"))});
      break;
    case Kind::Matmul:
    case Kind::MatmulF32: {
      a.push_back(in(0));
      if (kindOf(call.getCallee()) == Kind::Matmul)
        a.push_back(in(1));
      a.append({weightPtr(argInt(call, "packed_offset")), c64(argInt(call, "m")),
                c64(argInt(call, "k")), c64(argInt(call, "tile_m")), c64(argInt(call, "tile_k"))});
      for (unsigned s = 0; s < 3; ++s) {
        if (s < call.getNumResults()) {
          int64_t ms = argInt(call, ("m" + std::to_string(s)));
          if (ms < 0)
            ms = bytesPerToken(call.getResult(s)) / 4;
          a.append({out(s), c64(ms)});
        } else {
          a.append({nullPtr, c64(0)});
        }
      }
      if (!argStr(call, "decode_callee").empty()) {
        const size_t packedAt = kindOf(call.getCallee()) == Kind::Matmul ? 4 : 3;
        decodeArgs = a;
        decodeArgs[packedAt] = weightPtr(argInt(call, "decode_packed_offset"));
        decodeArgs[packedAt + 3] = c64(argInt(call, "decode_tile_m"));
        decodeArgs[packedAt + 4] = c64(argInt(call, "decode_tile_k"));
      }
      break;
    }
    case Kind::Rope:
      a.append({in(0), in(1), out(0), c64(argInt(call, "n_heads")), c64(argInt(call, "head_dim")),
                c64(argInt(call, "rot_dim")), fconst(argFloat(call, "freq_base"))});
      break;
    case Kind::Attention:
      a.append({in(0), in(1), in(2), in(3), seqs, out(0), c64(argInt(call, "layer")),
                c64(argInt(call, "n_heads")), c64(argInt(call, "n_kv_heads")),
                c64(argInt(call, "head_dim")), fconst(argFloat(call, "scale"))});
      break;
    case Kind::Binary:
      a.append({in(0), in(1), out(0), c64(argInt(call, "n"))});
      break;
    case Kind::LmHead: // emitHead
    case Kind::Unknown:
      break;
    }
    if (a.size() != callee.getFunctionType().getNumParams()) {
      call.emitOpError() << "static arguments do not fit the ukernel signature of '"
                         << call.getCallee() << "'";
      return signalPassFailure();
    }
    if (decodeArgs.empty()) {
      LLVM::CallOp::create(b, call.getLoc(), callee, a);
      continue;
    }
    // n < decode_below: the decode copy; else the main layout. n is the
    // same on every thread of the region, so all take the same branch.
    LLVM::LLVMFuncOp decodeCallee = declareName(argStr(call, "decode_callee"));
    if (kindOf(argStr(call, "decode_callee")) != kindOf(call.getCallee())) {
      call.emitOpError() << "decode_callee '" << argStr(call, "decode_callee")
                         << "' is not the same kind of ukernel as '" << call.getCallee() << "'";
      return signalPassFailure();
    }
    Block *small = newBlock(false), *large = newBlock(false), *next = newBlock(false);
    LLVM::CondBrOp::create(b, loc, icmp(P::slt, n, c64(argInt(call, "decode_below"))), small,
                           ValueRange{}, large, ValueRange{});
    b.setInsertionPointToEnd(small);
    LLVM::CallOp::create(b, call.getLoc(), decodeCallee, decodeArgs);
    LLVM::BrOp::create(b, loc, ValueRange{}, next);
    b.setInsertionPointToEnd(large);
    LLVM::CallOp::create(b, call.getLoc(), callee, a);
    LLVM::BrOp::create(b, loc, ValueRange{}, next);
    b.setInsertionPointToEnd(next);
  }
  if (failed(emitHead()))
    return signalPassFailure();
  LLVM::ReturnOp::create(b, loc, ValueRange{LLVM::ConstantOp::create(b, loc, i32, 0)});

  // ---- the descriptor ----
  b.setInsertionPointToEnd(module.getBody());
  std::string js = kernelsJson + std::string(1, '\0');
  LLVM::GlobalOp::create(b, loc, LLVM::LLVMArrayType::get(i8, js.size()), /*isConstant=*/true,
                         LLVM::Linkage::Internal, "tern_model_kernels", b.getStringAttr(js));
  llvm::SmallVector<Type> fields{i32, i32};
  for (int i = 0; i < 12; ++i)
    fields.push_back(i64);
  fields.push_back(ptrTy);
  auto descTy = LLVM::LLVMStructType::getLiteral(ctx, fields);
  auto desc = LLVM::GlobalOp::create(b, loc, descTy, /*isConstant=*/true, LLVM::Linkage::Internal,
                                     "tern_model_desc", Attribute(), /*alignment=*/8);
  {
    OpBuilder::InsertionGuard g(b);
    Block *init = b.createBlock(&desc.getInitializerRegion());
    (void)init;
    Value d = LLVM::UndefOp::create(b, loc, descTy);
    int64_t pos = 0;
    auto put = [&](Value v) {
      int64_t idx[1] = {pos++};
      d = LLVM::InsertValueOp::create(b, loc, d, v, idx);
    };
    put(LLVM::ConstantOp::create(b, loc, i32, int32_t(TERN_ABI_VERSION)));
    put(LLVM::ConstantOp::create(b, loc, i32, actQuant ? 1 : 0));
    for (int64_t v : {hpInt("hidden"), hpInt("layers"), hpInt("heads"), hpInt("kv_heads"),
                      hpInt("head_dim"), hpInt("ffn"), hpInt("vocab"), maxCtx, int64_t(maxBatch),
                      scratchPerToken, scratchFixed, weightsBytes})
      put(LLVM::ConstantOp::create(b, loc, i64, v));
    put(LLVM::AddressOfOp::create(b, loc, ptrTy, "tern_model_kernels"));
    LLVM::ReturnOp::create(b, loc, ValueRange{d});
  }
  auto describe = LLVM::LLVMFuncOp::create(b, loc, "tern_model_describe",
                                           LLVM::LLVMFunctionType::get(ptrTy, {}));
  b.setInsertionPointToStart(describe.addEntryBlock(b));
  LLVM::ReturnOp::create(b, loc,
                         ValueRange{LLVM::AddressOfOp::create(b, loc, ptrTy, "tern_model_desc")});

  fwd.erase();
  module->setAttr("tern.level", StringAttr::get(ctx, "llvm"));
}

} // namespace
