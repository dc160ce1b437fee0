#include "compiler/import/Importer.h"

#include <cmath>
#include <optional>

#include "dialect/TernDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"
#include "runtime/formats/mapping.h"
#include "runtime/gguf/gguf.h"
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

struct Hparams {
  int64_t hidden = 0, layers = 0, ffn = 0, heads = 0, kvHeads = 0, headDim = 0, rotDim = 0;
  int64_t vocab = 0, context = 0;
  double eps = 1e-5, freqBase = 10000.0;
};

class Importer {
public:
  Importer(MLIRContext &ctx, const std::string &path, const ImportOptions &opts)
      : ctx(ctx), path(path), opts(opts), b(&ctx), fileLoc(FileLineColLoc::get(&ctx, path, 0, 0)) {}

  OwningOpRef<ModuleOp> run();

private:
  InFlightDiagnostic error() { return emitError(fileLoc); }
  std::optional<uint64_t> getUInt(llvm::StringRef key, bool required);
  // The weight attribute of tensor `name`, checked against `shape` (row-major).
  std::optional<WeightAttr> weight(llvm::StringRef name, llvm::ArrayRef<int64_t> shape);
  Location loc(llvm::StringRef name) { return NameLoc::get(b.getStringAttr(name), fileLoc); }

  MLIRContext &ctx;
  std::string path;
  ImportOptions opts;
  OpBuilder b;
  Location fileLoc;
  std::unique_ptr<gguf::File> file;
  formats::ModelMapping mapping;
  std::string arch;
};

std::optional<uint64_t> Importer::getUInt(llvm::StringRef key, bool required) {
  std::string full = arch + "." + key.str();
  std::optional<uint64_t> v = file->getUInt(full);
  if (!v && required)
    error() << "missing or non-integer metadata key '" << full << "'";
  return v;
}

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
  auto opened = gguf::File::open(path);
  if (!opened.ok()) {
    error() << "cannot read GGUF: " << std::string(opened.status().message());
    return nullptr;
  }
  file = std::move(*opened);
  formats::MappingOptions mopts;
  mopts.i2sLayout = opts.i2sLayout;
  mapping = formats::verifyMapping(*file, mopts);

  std::optional<std::string> a = file->getString("general.architecture");
  if (!a) {
    error() << "missing metadata key 'general.architecture'";
    return nullptr;
  }
  arch = *a;
  if (!formats::isSupportedArch(arch)) {
    error() << "unsupported architecture '" << arch
            << "' (supported: bitnet, bitnet-b1.58, bitnet-25)";
    return nullptr;
  }
  const bool relu2 = arch != "bitnet";

  Hparams hp;
  auto req = [&](llvm::StringRef key, int64_t &out) {
    std::optional<uint64_t> v = getUInt(key, true);
    if (v)
      out = static_cast<int64_t>(*v);
    return v.has_value();
  };
  if (!req("embedding_length", hp.hidden) || !req("block_count", hp.layers) ||
      !req("feed_forward_length", hp.ffn) || !req("attention.head_count", hp.heads))
    return nullptr;
  hp.kvHeads = static_cast<int64_t>(getUInt("attention.head_count_kv", false).value_or(hp.heads));
  if (hp.heads <= 0 || hp.hidden % hp.heads != 0) {
    error() << "'" << arch << ".embedding_length' " << hp.hidden
            << " is not a multiple of 'attention.head_count' " << hp.heads;
    return nullptr;
  }
  hp.headDim = hp.hidden / hp.heads;
  if (hp.kvHeads <= 0 || hp.heads % hp.kvHeads != 0) {
    error() << "'" << arch << ".attention.head_count' " << hp.heads
            << " is not a multiple of 'attention.head_count_kv' " << hp.kvHeads;
    return nullptr;
  }
  hp.rotDim = static_cast<int64_t>(getUInt("rope.dimension_count", false).value_or(hp.headDim));
  hp.context = static_cast<int64_t>(getUInt("context_length", false).value_or(4096));
  if (opts.maxContext > 0)
    hp.context = opts.maxContext;
  hp.eps = file->getFloat(arch + ".attention.layer_norm_rms_epsilon").value_or(1e-5);
  hp.freqBase = file->getFloat(arch + ".rope.freq_base").value_or(10000.0);
  const gguf::TensorInfo *embd = file->findTensor("token_embd.weight");
  if (!embd || embd->dims.size() != 2) {
    error() << "missing tensor 'token_embd.weight' (or it is not a matrix)";
    return nullptr;
  }
  hp.vocab = static_cast<int64_t>(getUInt("vocab_size", false).value_or(embd->dims[1]));

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
                      b.getNamedAttr("hidden", b.getI64IntegerAttr(hp.hidden)),
                      b.getNamedAttr("layers", b.getI64IntegerAttr(hp.layers)),
                      b.getNamedAttr("ffn", b.getI64IntegerAttr(hp.ffn)),
                      b.getNamedAttr("heads", b.getI64IntegerAttr(hp.heads)),
                      b.getNamedAttr("kv_heads", b.getI64IntegerAttr(hp.kvHeads)),
                      b.getNamedAttr("head_dim", b.getI64IntegerAttr(hp.headDim)),
                      b.getNamedAttr("vocab", b.getI64IntegerAttr(hp.vocab)),
                      b.getNamedAttr("context", b.getI64IntegerAttr(hp.context)),
                      b.getNamedAttr("rms_eps", b.getF32FloatAttr(hp.eps)),
                      b.getNamedAttr("rope_freq_base", b.getF32FloatAttr(hp.freqBase)),
                      b.getNamedAttr("ffn_act", b.getStringAttr(relu2 ? "relu2" : "silu")),
                  }));

  const int64_t dyn = ShapedType::kDynamic;
  auto act = [&](int64_t width) { return RankedTensorType::get({dyn, width}, b.getF32Type()); };
  auto ids = RankedTensorType::get({dyn}, b.getI32Type());
  b.setInsertionPointToEnd(module.getBody());
  auto fnType = b.getFunctionType({ids, ids}, {act(hp.vocab)});
  auto fn = func::FuncOp::create(b, fileLoc, "forward", fnType);
  fn.setArgAttr(0, "tern.name", b.getStringAttr("tokens"));
  fn.setArgAttr(1, "tern.name", b.getStringAttr("positions"));
  Block *entry = fn.addEntryBlock();
  b.setInsertionPointToStart(entry);
  Value tokens = entry->getArgument(0), pos = entry->getArgument(1);
  FloatAttr eps = b.getF32FloatAttr(hp.eps);

  const int64_t qDim = hp.heads * hp.headDim, kvDim = hp.kvHeads * hp.headDim;
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
    return ir::BitLinearOp::create(b, loc(name), act(m), x, *wt, nullptr, nullptr);
  };

  auto embW = w("token_embd.weight", {hp.vocab, hp.hidden});
  if (!embW)
    return nullptr;
  Value x = ir::EmbedOp::create(b, loc("token_embd.weight"), act(hp.hidden), tokens, *embW);
  const float attnScale = 1.0f / std::sqrt(static_cast<float>(hp.headDim));
  for (int64_t l = 0; l < hp.layers; ++l) {
    std::string p = "blk." + std::to_string(l) + ".";
    Value n = norm(x, p + "attn_norm.weight", hp.hidden);
    if (!n)
      return nullptr;
    Value q = linear(n, p + "attn_q.weight", qDim, hp.hidden);
    Value k = q ? linear(n, p + "attn_k.weight", kvDim, hp.hidden) : nullptr;
    Value v = k ? linear(n, p + "attn_v.weight", kvDim, hp.hidden) : nullptr;
    if (!v)
      return nullptr;
    auto i64 = [&](int64_t v) { return b.getI64IntegerAttr(v); };
    q = ir::RopeOp::create(b, loc(p + "rope_q"), q, pos, i64(hp.heads), i64(hp.headDim),
                           i64(hp.rotDim), b.getF32FloatAttr(hp.freqBase));
    k = ir::RopeOp::create(b, loc(p + "rope_k"), k, pos, i64(hp.kvHeads), i64(hp.headDim),
                           i64(hp.rotDim), b.getF32FloatAttr(hp.freqBase));
    Value att = ir::AttentionOp::create(b, loc(p + "attention"), act(qDim), q, k, v, pos, i64(l),
                                        i64(hp.heads), i64(hp.kvHeads), i64(hp.headDim),
                                        i64(hp.context), b.getF32FloatAttr(attnScale));
    att = norm(att, p + "attn_sub_norm.weight", qDim);
    Value o = att ? linear(att, p + "attn_output.weight", hp.hidden, qDim) : nullptr;
    if (!o)
      return nullptr;
    x = ir::AddOp::create(b, loc(p + "attn_residual"), x, o);
    n = norm(x, p + "ffn_norm.weight", hp.hidden);
    Value g = n ? linear(n, p + "ffn_gate.weight", hp.ffn, hp.hidden) : nullptr;
    Value u = g ? linear(n, p + "ffn_up.weight", hp.ffn, hp.hidden) : nullptr;
    if (!u)
      return nullptr;
    Value h = relu2 ? Value(ir::Relu2MulOp::create(b, loc(p + "ffn_act"), g, u))
                    : Value(ir::SiluMulOp::create(b, loc(p + "ffn_act"), g, u));
    h = norm(h, p + "ffn_sub_norm.weight", hp.ffn);
    Value d = h ? linear(h, p + "ffn_down.weight", hp.hidden, hp.ffn) : nullptr;
    if (!d)
      return nullptr;
    x = ir::AddOp::create(b, loc(p + "ffn_residual"), x, d);
  }
  x = norm(x, "output_norm.weight", hp.hidden);
  if (!x)
    return nullptr;
  std::string headName = mapping.find("output.weight") ? "output.weight" : "token_embd.weight";
  auto headW = w(headName, {hp.vocab, hp.hidden});
  if (!headW)
    return nullptr;
  Value logits = ir::LmHeadOp::create(b, loc(headName), act(hp.vocab), x, *headW, nullptr, nullptr);
  func::ReturnOp::create(b, fileLoc, logits);

  if (failed(verify(module)))
    return nullptr;
  return owned;
}

} // namespace

OwningOpRef<ModuleOp> importGGUF(MLIRContext &ctx, const std::string &path,
                                 const ImportOptions &opts) {
  ctx.loadDialect<ir::TernDialect, func::FuncDialect>();
  return Importer(ctx, path, opts).run();
}

} // namespace tern::compiler
