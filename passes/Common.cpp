#include "passes/Common.h"

#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace tern::ir;

namespace tern::passes {

std::string sourcePath(ModuleOp module, llvm::StringRef option) {
  if (!option.empty())
    return option.str();
  if (auto s = module->getAttrOfType<StringAttr>("tern.source"))
    return s.getValue().str();
  return "";
}

FailureOr<formats::I2SLayout> i2sLayoutOf(ModuleOp module) {
  auto s = module->getAttrOfType<StringAttr>("tern.i2s_layout");
  if (!s)
    return formats::I2SLayout::X86_QK128;
  if (std::optional<formats::I2SLayout> l = formats::parseI2SLayout(s.getValue().str()))
    return *l;
  return module.emitError() << "tern.i2s_layout: '" << s.getValue() << "' is not one of "
                            << formats::i2sLayoutChoices();
}

std::string shapeString(llvm::ArrayRef<int64_t> shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

std::string MatrixInfo::names() const {
  std::string out;
  for (WeightAttr w : weights)
    out += (out.empty() ? "'" : ", '") + w.getName().str() + "'";
  return out;
}

std::optional<MatrixInfo> matrixInfo(Operation *op) {
  MatrixInfo info;
  if (auto b = dyn_cast<BitLinearOp>(op)) {
    info.weights.push_back(b.getWeight());
  } else if (auto t = dyn_cast<TernaryMatmulOp>(op)) {
    for (Attribute a : t.getWeights())
      info.weights.push_back(cast<WeightAttr>(a));
  } else if (auto h = dyn_cast<LmHeadOp>(op)) {
    info.weights.push_back(h.getWeight());
    info.ternaryRole = isTernaryFormat(h.getWeight().getFormat());
  } else {
    return std::nullopt;
  }
  for (WeightAttr w : info.weights)
    info.rows += w.getRows();
  info.cols = info.weights.front().getCols();
  return info;
}

KernelAttr kernelOf(Operation *op) { return op->getAttrOfType<KernelAttr>("kernel"); }
PackedAttr packedOf(Operation *op) { return op->getAttrOfType<PackedAttr>("packed"); }

KernelAttr decodeKernelOf(Operation *op) { return op->getAttrOfType<KernelAttr>("decode_kernel"); }
PackedAttr decodePackedOf(Operation *op) { return op->getAttrOfType<PackedAttr>("decode_packed"); }

std::string ukernelIsas(llvm::StringRef layout, llvm::StringRef act) {
  static const char *const kVariants[][3] = {
#define TERN_UK_VARIANT(l, a, i) {#l, #a, #i},
#include "runtime/ukernels/variants.def"
#undef TERN_UK_VARIANT
  };
  std::string out;
  for (const auto &v : kVariants)
    if (layout == v[0] && act == v[1] && llvm::StringRef(v[2]) != "ref")
      out += (out.empty() ? "" : ", ") + std::string(v[2]);
  return out;
}

bool hasUkernelVariant(llvm::StringRef layout, llvm::StringRef act, llvm::StringRef isa) {
  static const char *const kVariants[][3] = {
#define TERN_UK_VARIANT(l, a, i) {#l, #a, #i},
#include "runtime/ukernels/variants.def"
#undef TERN_UK_VARIANT
  };
  for (const auto &v : kVariants)
    if (layout == v[0] && act == v[1] && isa == v[2])
      return true;
  return false;
}

} // namespace tern::passes
