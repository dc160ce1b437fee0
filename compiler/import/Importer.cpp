#include "compiler/import/Importer.h"

#include <cmath>
#include <optional>

#include "dialect/TernDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"
#include "runtime/formats/mapping.h"
#include "runtime/gguf/gguf.h"
#include "runtime/model/config.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using tern::ir::WeightAttr;
using tern::ir::WeightFormat;

namespace tern::compiler {
namespace {

std::optional<WeightFormat> toDialectFormat(formats::Format f) {
  switch (f) {
  case formats::Format::F32:
    return WeightFormat::F32;
  case formats::Format::F16:
    return WeightFormat::F16;
  case formats::Format::BF16:
    return WeightFormat::BF16;
  case formats::Format::Q8_0:
    return WeightFormat::Q8_0;
  case formats::Format::TQ1_0:
    return WeightFormat::TQ1_0;
  case formats::Format::TQ2_0:
    return WeightFormat::TQ2_0;
  case formats::Format::I2_S:
    return WeightFormat::I2_S;
  case formats::Format::TL1:
    return WeightFormat::TL1;
  case formats::Format::TL2:
    return WeightFormat::TL2;
  default:
    return std::nullopt;
  }
}

std::string shapeStr(llvm::ArrayRef<int64_t> s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i)
    out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

class Importer {
public:
  Importer(MLIRContext &ctx, const SourceModel &source, const ImportOptions &opts)
      : ctx(ctx), path(source.path), opts(opts), b(&ctx),
        fileLoc(FileLineColLoc::get(&ctx, path, 0, 0)), file(source.file.get()),
        mapping(source.mapping) {
    this->opts.i2sLayout = source.i2sLayout;
  }

  OwningOpRef<ModuleOp> run();

private:
  InFlightDiagnostic error() { return emitError(fileLoc); }
  // The weight attribute of tensor `name`, checked against `shape` (row-major).
  std::optional<WeightAttr> weight(llvm::StringRef name, llvm::ArrayRef<int64_t> shape);
  Location loc(llvm::StringRef name) { return NameLoc::get(b.getStringAttr(name), fileLoc); }

  MLIRContext &ctx;
  std::string path;
  ImportOptions opts;
  OpBuilder b;
  Location fileLoc;
  const gguf::File *file;
  const formats::ModelMapping &mapping;
};

std::optional<WeightAttr> Importer::weight(llvm::StringRef name, llvm::ArrayRef<int64_t> shape) {
  const formats::TensorMapping *t = mapping.find(name);
  if (!t) {
    error() << "missing tensor '" << name << "' (expected shape " << shapeStr(shape) << ")";
    return std::nullopt;
  }
  llvm::SmallVector<int64_t> rowMajor(t->dims.rbegin(), t->dims.rend());
  if (llvm::ArrayRef<int64_t>(rowMajor) != shape) {
    error() << "tensor '" << name << "' has shape " << shapeStr(rowMajor)
            << " (GGUF dims reversed), expected " << shapeStr(shape);
    return std::nullopt;
  }
  if (!t->resolved) {
    std::string cands;
    for (const formats::TypeInfo *c : t->candidates)
      cands += std::string(cands.empty() ? "" : ", ") + c->name + " (" +
               formats::namespaceName(c->ns) + ")";
    error() << "cannot determine the format of tensor '" << name << "' (type id " << t->typeId
            << ", candidates: " << (cands.empty() ? "none" : cands) << "): " << t->reason;
    return std::nullopt;
  }
  std::optional<WeightFormat> f = toDialectFormat(t->resolved->format);
  if (!f) {
    error() << "tensor '" << name << "' is stored as " << t->resolved->name
            << ", which ternc cannot execute (supported: F32, F16, BF16, Q8_0, TQ1_0, TQ2_0, "
               "I2_S, TL1, TL2)";
    return std::nullopt;
  }
  return WeightAttr::getChecked([&] { return error(); }, &ctx, name, shape, *f, t->offset,
                                t->bytes);
}

OwningOpRef<ModuleOp> Importer::run() {
  // Hyperparameters, arch rules and the tied head: the one reader every
  // path uses (runtime/model/config.h), so its errors read the same here.
  absl::StatusOr<model::ModelConfig> config = model::readModelConfig(*file);
  if (!config.ok()) {
    error() << std::string(config.status().message());
    return nullptr;
  }
  const model::ModelConfig &hp = *config;
  const std::string &arch = hp.arch;
  const bool relu2 = hp.ffnAct == model::FfnActivation::Relu2Gated;
  const int64_t context = opts.maxContext > 0 ? opts.maxContext : int64_t(hp.nCtxTrain);
  const int64_t hidden = hp.nEmbd, layers = hp.nLayer, ffn = hp.nFf, heads = hp.nHead;
  const int64_t kvHeads = hp.nHeadKv, headDim = hp.headDim, rotDim = hp.nRot;
  const int64_t vocab = hp.nVocab;

  ModuleOp module = ModuleOp::create(fileLoc);
  OwningOpRef<ModuleOp> owned(module);
  module->setAttr("tern.source", b.getStringAttr(path));
  module->setAttr("tern.arch", b.getStringAttr(arch));
  module->setAttr("tern.data_offset", b.getI64IntegerAttr(file->dataOffset()));
  module->setAttr("tern.i2s_layout", b.getStringAttr(formats::i2sLayoutName(opts.i2sLayout)));
  if (mapping.fileType)
    module->setAttr("tern.file_type", b.getStringAttr(mapping.fileTypeName));
  module->setAttr("tern.hparams",
                  b.getDictionaryAttr({
                      b.getNamedAttr("hidden", b.getI64IntegerAttr(hidden)),
                      b.getNamedAttr("layers", b.getI64IntegerAttr(layers)),
                      b.getNamedAttr("ffn", b.getI64IntegerAttr(ffn)),
                      b.getNamedAttr("heads", b.getI64IntegerAttr(heads)),
                      b.getNamedAttr("kv_heads", b.getI64IntegerAttr(kvHeads)),
                      b.getNamedAttr("head_dim", b.getI64IntegerAttr(headDim)),
                      b.getNamedAttr("vocab", b.getI64IntegerAttr(vocab)),
                      b.getNamedAttr("context", b.getI64IntegerAttr(context)),
                      b.getNamedAttr("rms_eps", b.getF32FloatAttr(hp.rmsEps)),
                      b.getNamedAttr("rope_freq_base", b.getF32FloatAttr(hp.ropeFreqBase)),
                      b.getNamedAttr("ffn_act", b.getStringAttr(relu2 ? "relu2" : "silu")),
                  }));
  // The resolved configuration, as the artifact's metadata carries it.
  module->setAttr("tern.model_config", b.getStringAttr(model::toJson(hp).dump()));

  const int64_t dyn = ShapedType::kDynamic;
  auto act = [&](int64_t width) { return RankedTensorType::get({dyn, width}, b.getF32Type()); };
  auto ids = RankedTensorType::get({dyn}, b.getI32Type());
  b.setInsertionPointToEnd(module.getBody());
  auto fnType = b.getFunctionType({ids, ids}, {act(vocab)});
  auto fn = func::FuncOp::create(b, fileLoc, "forward", fnType);
  fn.setArgAttr(0, "tern.name", b.getStringAttr("tokens"));
  fn.setArgAttr(1, "tern.name", b.getStringAttr("positions"));
  Block *entry = fn.addEntryBlock();
  b.setInsertionPointToStart(entry);
  Value tokens = entry->getArgument(0), pos = entry->getArgument(1);
  FloatAttr eps = b.getF32FloatAttr(hp.rmsEps);

  const int64_t qDim = heads * headDim, kvDim = kvHeads * headDim;
  auto w = [&](const std::string &name, llvm::ArrayRef<int64_t> shape) {
    return weight(name, shape);
  };
  auto norm = [&](Value x, const std::string &name, int64_t n) -> Value {
    auto wt = w(name, {n});
    if (!wt)
      return nullptr;
    return ir::RmsNormOp::create(b, loc(name), x, *wt, eps);
  };
  auto linear = [&](Value x, const std::string &name, int64_t m, int64_t k) -> Value {
    auto wt = w(name, {m, k});
    if (!wt)
      return nullptr;
    return ir::BitLinearOp::create(b, loc(name), act(m), x, *wt, nullptr, nullptr, nullptr,
                                   nullptr);
  };

  auto embW = w("token_embd.weight", {vocab, hidden});
  if (!embW)
    return nullptr;
  Value x = ir::EmbedOp::create(b, loc("token_embd.weight"), act(hidden), tokens, *embW);
  const float attnScale = 1.0f / std::sqrt(static_cast<float>(headDim));
  for (int64_t l = 0; l < layers; ++l) {
    std::string p = "blk." + std::to_string(l) + ".";
    Value n = norm(x, p + "attn_norm.weight", hidden);
    if (!n)
      return nullptr;
    Value q = linear(n, p + "attn_q.weight", qDim, hidden);
    Value k = q ? linear(n, p + "attn_k.weight", kvDim, hidden) : nullptr;
    Value v = k ? linear(n, p + "attn_v.weight", kvDim, hidden) : nullptr;
    if (!v)
      return nullptr;
    auto i64 = [&](int64_t v) { return b.getI64IntegerAttr(v); };
    q = ir::RopeOp::create(b, loc(p + "rope_q"), q, pos, i64(heads), i64(headDim), i64(rotDim),
                           b.getF32FloatAttr(hp.ropeFreqBase));
    k = ir::RopeOp::create(b, loc(p + "rope_k"), k, pos, i64(kvHeads), i64(headDim), i64(rotDim),
                           b.getF32FloatAttr(hp.ropeFreqBase));
    Value att = ir::AttentionOp::create(b, loc(p + "attention"), act(qDim), q, k, v, pos, i64(l),
                                        i64(heads), i64(kvHeads), i64(headDim), i64(context),
                                        b.getF32FloatAttr(attnScale));
    att = norm(att, p + "attn_sub_norm.weight", qDim);
    Value o = att ? linear(att, p + "attn_output.weight", hidden, qDim) : nullptr;
    if (!o)
      return nullptr;
    x = ir::AddOp::create(b, loc(p + "attn_residual"), x, o);
    n = norm(x, p + "ffn_norm.weight", hidden);
    Value g = n ? linear(n, p + "ffn_gate.weight", ffn, hidden) : nullptr;
    Value u = g ? linear(n, p + "ffn_up.weight", ffn, hidden) : nullptr;
    if (!u)
      return nullptr;
    Value h = relu2 ? Value(ir::Relu2MulOp::create(b, loc(p + "ffn_act"), g, u))
                    : Value(ir::SiluMulOp::create(b, loc(p + "ffn_act"), g, u));
    h = norm(h, p + "ffn_sub_norm.weight", ffn);
    Value d = h ? linear(h, p + "ffn_down.weight", hidden, ffn) : nullptr;
    if (!d)
      return nullptr;
    x = ir::AddOp::create(b, loc(p + "ffn_residual"), x, d);
  }
  x = norm(x, "output_norm.weight", hidden);
  if (!x)
    return nullptr;
  std::string headName = mapping.find("output.weight") ? "output.weight" : "token_embd.weight";
  auto headW = w(headName, {vocab, hidden});
  if (!headW)
    return nullptr;
  Value logits = ir::LmHeadOp::create(b, loc(headName), act(vocab), x, *headW, nullptr, nullptr);
  func::ReturnOp::create(b, fileLoc, logits);

  if (failed(verify(module)))
    return nullptr;
  return owned;
}

} // namespace

OwningOpRef<ModuleOp> importGGUF(MLIRContext &ctx, const SourceModel &source,
                                 const ImportOptions &opts) {
  ctx.loadDialect<ir::TernDialect, func::FuncDialect>();
  return Importer(ctx, source, opts).run();
}

OwningOpRef<ModuleOp> importGGUF(MLIRContext &ctx, const std::string &path,
                                 const ImportOptions &opts) {
  absl::StatusOr<std::shared_ptr<const SourceModel>> source = openSourceModel(path, opts.i2sLayout);
  if (!source.ok()) {
    emitError(FileLineColLoc::get(&ctx, path, 0, 0)) << std::string(source.status().message());
    return nullptr;
  }
  return importGGUF(ctx, **source, opts);
}

} // namespace tern::compiler
